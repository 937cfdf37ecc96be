"""Run ansible-playbook as a user would, against this checkout's collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def collections_path() -> str:
    parts = ROOT.split(os.sep)
    if len(parts) >= 3 and parts[-3] == "ansible_collections":
        return os.sep.join(parts[:-3])
    return os.path.join(ROOT, ".build", "collections")


def run_playbook(
    playbook: str,
    extra_vars: dict | None = None,
    env: dict | None = None,
    verbosity: int = 0,
    args: tuple[str, ...] = (),
    timeout: int = 300,
    files: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run `playbook` (a path, or YAML text) on localhost with this venv's Python.

    `files` ({name: text}) are written next to the playbook (vars files, patches, ...)."""
    workdir = tempfile.mkdtemp(prefix="indexops-play-")
    for name, content in (files or {}).items():
        with open(os.path.join(workdir, name), "w", encoding="utf-8") as handle:
            handle.write(content)
    if not os.path.exists(playbook):
        path = os.path.join(workdir, "play.yml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(playbook)
        playbook = path
    inventory = os.path.join(workdir, "inventory.ini")
    with open(inventory, "w", encoding="utf-8") as handle:
        handle.write(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, playbook, *args]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    full_env = dict(os.environ)
    full_env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": collections_path(),
            "ANSIBLE_LOCAL_TEMP": os.path.join(workdir, "tmp"),
            "ANSIBLE_HOME": os.path.join(workdir, "home"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PATH": BIN + os.pathsep + full_env.get("PATH", ""),
        }
    )
    for name in ("REDIS_URL", "REDIS_PASSWORD", "REDIS_USERNAME"):
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
