"""Start ansible-playbook in the background (in its own process group), to kill it mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

from playbook_runner import BIN, collections_path


def start_playbook(playbook_text: str, inventory: str, extra_vars: str = "{}") -> subprocess.Popen:
    workdir = tempfile.mkdtemp(prefix="indexops-play-")
    path = os.path.join(workdir, "play.yml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(playbook_text)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_USERNAME", "REDIS_PASSWORD")}
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": collections_path(),
            "ANSIBLE_HOME": os.path.join(workdir, "home"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(workdir, "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PATH": BIN + os.pathsep + env.get("PATH", ""),
        }
    )
    return subprocess.Popen(
        [os.path.join(BIN, "ansible-playbook"), "-i", inventory, path, "-e", extra_vars],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_playbook(process: subprocess.Popen) -> str:
    """SIGKILL the playbook and every process it started (its own session); return its output."""
    os.killpg(process.pid, signal.SIGKILL)
    output, _stderr = process.communicate(timeout=30)
    return output


def local_inventory(path: str, host: str, url: str, **group_vars: str) -> str:
    """One Redis host (connection local); `group_vars` as Python literals, e.g. a connection dict."""
    lines = [
        f"[redis_search]\n{host} redis_url={url} ansible_connection=local ansible_python_interpreter={sys.executable}",
        "[redis_search:vars]",
    ] + [f"{name}={value}" for name, value in group_vars.items()]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path
