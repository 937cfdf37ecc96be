"""The reference walkthrough, as `make demo` runs it, on a fresh server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from playbook_runner import ROOT, run_playbook
from redis_search_server import RedisSearchServer


@pytest.mark.playbook
def test_demo_playbook_runs_the_walkthrough(tmp_path):
    with RedisSearchServer() as server:
        subprocess.run(
            [sys.executable, os.path.join(ROOT, "tools", "load_demo_data.py")],
            check=True,
            env=dict(os.environ, REDIS_URL=server.url),
            capture_output=True,
        )
        done = run_playbook(
            os.path.join(ROOT, "playbooks", "demo.yml"),
            env={"REDIS_URL": server.url, "DEMO_BACKUP_DIR": str(tmp_path / "backups")},
        )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # The playbook's last task asserts every promise of the walkthrough; these pin its output too.
    # The check-mode plan (it would change the index), the migration and the rollback.
    assert "failed=0" in done.stdout and "changed=3" in done.stdout
    assert '"name": "product 0"' in done.stdout
    assert len(os.listdir(tmp_path / "backups")) == 1
