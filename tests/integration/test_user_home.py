"""`make demo` keeps Ansible's state in the checkout: nothing under ~/.ansible (ANSIBLE_HOME, and
ANSIBLE_REMOTE_TEMP for the module files of connection-local tasks, which default to ~/.ansible/tmp)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from playbook_runner import ROOT


@pytest.mark.playbook
def test_make_demo_writes_nothing_under_the_users_home(tmp_path):
    if os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, ".venv")):
        pytest.skip("make demo runs in the checkout's .venv, and this run has another (make test-matrix)")
    home = tmp_path / "home"
    home.mkdir()
    real_home = os.path.expanduser("~")
    env = dict(
        os.environ,
        HOME=str(home),
        # pip's configuration and cache stay the user's: only Ansible's state is under test
        XDG_CONFIG_HOME=os.environ.get("XDG_CONFIG_HOME", os.path.join(real_home, ".config")),
        XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME", os.path.join(real_home, ".cache")),
    )
    for name in ("ANSIBLE_HOME", "ANSIBLE_REMOTE_TEMP", "ANSIBLE_LOCAL_TEMP", "MAKEFLAGS", "MAKELEVEL"):
        env.pop(name, None)  # what make exports itself, not what the test's caller set
    done = subprocess.run(["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "failed=0" in done.stdout
    assert sorted(str(path.relative_to(home)) for path in home.rglob("*")) == []
