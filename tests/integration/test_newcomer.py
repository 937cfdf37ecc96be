"""What a newcomer meets first: installing the collection, reading its docs, a Redis to try it on.

- The tarball `ansible-galaxy collection build` makes installs into any collections path, documents
  itself with ansible-doc from there, and ships every file its playbooks and tests use, and LICENSE.
- Every module's documentation lists requirements.txt (numpy included).
- tools/redis_search_server.py never leaves a server or its directory behind when it is stopped by
  a signal, as a command (`run`, `serve`) or as a library.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest
import redis
from child_processes import gone, read_line, spawn, wait_gone
from playbook_runner import ROOT, collections_path

BIN = os.path.dirname(sys.executable)
SERVER_TOOL = os.path.join(ROOT, "tools", "redis_search_server.py")
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")))


def ansible_env(tmp_path, collections: str) -> dict:
    """Only `collections` is searched, and Ansible writes nothing outside tmp_path."""
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=collections,
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
    )
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


def ansible_doc(module: str, env: dict) -> dict:
    done = subprocess.run(
        [os.path.join(BIN, "ansible-doc"), "-j", f"indexops.redis_search.{module}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[f"indexops.redis_search.{module}"]["doc"]


# -- the tarball (README "Install") --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> str:
    """The collection as README's install builds it, from this checkout."""
    if not os.path.exists(os.path.join(ROOT, "galaxy.yml")):
        pytest.skip("an installed collection has no galaxy.yml to build from")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(out), ROOT],
        capture_output=True,
        text=True,
        env=ansible_env(out, str(out / "none")),
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = glob.glob(str(out / "indexops-redis_search-*.tar.gz"))
    return path


def test_tarball_installs_into_a_collections_path_and_ansible_doc_reads_it_there(tarball, tmp_path):
    collections = tmp_path / "collections"
    env = ansible_env(tmp_path, str(collections))
    install = [os.path.join(BIN, "ansible-galaxy"), "collection", "install", tarball, "-p", str(collections)]
    done = subprocess.run(install, capture_output=True, text=True, env=env, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    installed = collections / "ansible_collections" / "indexops" / "redis_search"
    assert (installed / "MANIFEST.json").is_file()
    doc = ansible_doc("redis_index_migrate", env)
    assert doc["filename"].startswith(str(installed) + os.sep)  # the installed copy, not the checkout
    assert "backup_dir" in doc["options"] and "redis_url" in doc["options"]
    # The installed tests find everything they import (conftest needs tools/redis_search_server.py).
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/unit",
            "tests/integration",
        ],
        cwd=installed,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


# A path into a directory or file the build may leave out: `tools/<name>.<ext>`,
# `os.path.join(..., "tools", "<name>.<ext>")` or a quoted Makefile.
REFERENCE = re.compile(
    r"""(?<![\w.-])((?:tools|benchmarks)/[\w.-]+\.\w+)"""
    r"""|["']((?:tools|benchmarks))["'],\s*["']([\w.-]+\.\w+)["']"""
    r"""|["'](Makefile)["']"""
)


def test_tarball_ships_what_its_playbooks_and_tests_use_and_the_license(tarball):
    with tarfile.open(tarball) as archive:
        members = set(archive.getnames())
        texts = {
            name: archive.extractfile(name).read().decode("utf-8", "replace")
            for name in members
            if name.startswith(("playbooks/", "tests/", "tools/", "roles/")) and archive.getmember(name).isfile()
        }
        license_text = archive.extractfile("LICENSE").read().decode() if "LICENSE" in members else ""
    assert "plugins/doc_fragments/connection.py" in members
    assert "tools/redis_search_server.py" in members and "playbooks/demo.yml" in members
    missing = set()
    for name, text in texts.items():
        for match in REFERENCE.finditer(text):
            needed = match.group(1) or match.group(4) or f"{match.group(2)}/{match.group(3)}"
            if needed not in members:
                missing.add(f"{name} needs {needed}")
    assert not missing, sorted(missing)
    # galaxy.yml says GPL-3.0-or-later: the licence's text travels with the collection.
    assert license_text.split()[:5] == ["GNU", "GENERAL", "PUBLIC", "LICENSE", "Version"]
    assert "Version 3, 29 June 2007" in license_text and "END OF TERMS AND CONDITIONS" in license_text
    assert not [m for m in members if m.startswith((".venv", ".build", ".ansible", "benchmarks"))]


# -- requirements in every module's documentation ----------------------------------------------------------


def _normalised(requirement: str) -> str:
    """`redis (the Python client) >= 5.0, < 9` and `redis>=5.0,<9` both become `redis>=5.0,<9`."""
    return re.sub(r"\s+|\(.*?\)", "", requirement).lower()


@pytest.mark.parametrize("module", MODULES)
def test_every_module_documents_requirements_txt(module, tmp_path):
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as handle:
        wanted = sorted(_normalised(line.split("#", 1)[0]) for line in handle if line.split("#", 1)[0].strip())
    assert any(w.startswith("numpy") for w in wanted)
    doc = ansible_doc(module, ansible_env(tmp_path, collections_path()))
    assert sorted(_normalised(r) for r in doc.get("requirements", [])) == wanted


# -- tools/redis_search_server.py: nothing left behind -----------------------------------------------------

BANNER = re.compile(r"on (redis://\S+) \(pid (\d+), data (\S+?)\)")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_run_stopped_by_a_signal_leaves_no_server_command_or_directory(signum, leftovers):
    child = "import os, time; print('child', os.getpid(), flush=True); time.sleep(120)"
    run = spawn([sys.executable, SERVER_TOOL, "run", "--", sys.executable, "-c", child], leftovers)
    banner = read_line(run, BANNER)
    server_pid, data_dir = int(banner.group(2)), banner.group(3)
    leftovers.pids.append(server_pid)
    leftovers.dirs.append(data_dir)
    child_pid = int(read_line(run, re.compile(r"child (\d+)")).group(1))
    leftovers.pids.append(child_pid)
    assert not gone(server_pid) and os.path.isdir(data_dir)

    run.send_signal(signum)
    assert run.wait(timeout=60) == 128 + signum
    assert wait_gone(child_pid), "the command outlived run"
    assert wait_gone(server_pid), "redis-server outlived run"
    assert not os.path.exists(data_dir), "run left its data directory"


LIBRARY = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {tools!r})
    from redis_search_server import RedisSearchServer, send_command
    server = RedisSearchServer().start()
    print("server on", server.url, "(pid", str(server.process.pid) + ", data", server.data_dir + ")", flush=True)
    if sys.argv[1] == "fork":
        child = os.fork()
        if child == 0:  # a forked worker terminated the way multiprocessing terminates one
            os.kill(os.getpid(), signal.SIGTERM)
            os._exit(0)
        print("worker", os.waitpid(child, 0)[1], flush=True)
        print("after", send_command(server.port, "PING").decode(), flush=True)
        server.stop()
        sys.exit(0)
    print("ready", flush=True)
    time.sleep(120)
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_library_server_goes_with_its_process(signum, leftovers):
    script = LIBRARY.format(tools=os.path.dirname(SERVER_TOOL))
    user = spawn([sys.executable, "-c", script, "sleep"], leftovers)
    banner = read_line(user, BANNER)
    server_pid, data_dir = int(banner.group(2)), banner.group(3)
    leftovers.pids.append(server_pid)
    leftovers.dirs.append(data_dir)
    read_line(user, re.compile("ready"))

    user.send_signal(signum)
    code = user.wait(timeout=60)
    # The process still ends the way the signal ends it (Python re-raises an uncaught Ctrl-C, too).
    assert code == -signum, user.stderr.read()
    assert wait_gone(server_pid), "redis-server outlived the process that started it"
    assert not os.path.exists(data_dir), "the data directory outlived the process that started it"


def test_a_forked_worker_that_is_terminated_leaves_its_parents_server_alone(leftovers):
    script = LIBRARY.format(tools=os.path.dirname(SERVER_TOOL))
    user = spawn([sys.executable, "-c", script, "fork"], leftovers)
    banner = read_line(user, BANNER)
    leftovers.pids.append(int(banner.group(2)))
    leftovers.dirs.append(banner.group(3))
    assert read_line(user, re.compile(r"worker (\d+)")).group(1) == str(signal.SIGTERM.value)
    assert read_line(user, re.compile(r"after (\S+)")).group(1) == "PONG"
    assert user.wait(timeout=60) == 0, user.stderr.read()
    assert wait_gone(int(banner.group(2))) and not os.path.exists(banner.group(3))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_serve_keeps_a_server_until_told_to_stop(signum, leftovers):
    serve = spawn([sys.executable, SERVER_TOOL, "serve"], leftovers)
    banner = read_line(serve, BANNER)
    url, server_pid, data_dir = banner.group(1), int(banner.group(2)), banner.group(3)
    leftovers.pids.append(server_pid)
    leftovers.dirs.append(data_dir)
    assert read_line(serve, re.compile(r"^export REDIS_URL=(\S+)$")).group(1) == url

    time.sleep(0.5)  # still there after its start
    client = redis.Redis.from_url(url, protocol=2)
    info = client.info("server")
    assert info["process_id"] == server_pid
    assert b"search" in b" ".join(
        m[b"name"] for m in client.execute_command("MODULE", "LIST") for m in [dict(zip(m[::2], m[1::2]))]
    )
    client.close()

    serve.send_signal(signum)
    assert serve.wait(timeout=60) == 0, serve.stderr.read()
    assert wait_gone(server_pid), "redis-server outlived serve"
    assert not os.path.exists(data_dir), "serve left its data directory"
