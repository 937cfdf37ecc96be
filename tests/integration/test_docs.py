"""Every module renders with ansible-doc, EXAMPLES and RETURN included."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
from playbook_runner import ROOT, collections_path

MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")))


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_examples_and_return(module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1")
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-doc"), f"indexops.redis_search.{module}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "EXAMPLES:" in done.stdout and "RETURN VALUES:" in done.stdout
    assert "redis_url" in done.stdout  # the connection doc fragment was merged
