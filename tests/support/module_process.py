"""Run one of the collection's modules in a process of its own, as Ansible does for each task, and print
its JSON result. A test can then run the same task again in a fresh process - the way a re-run after a
failure happens - and a lock left by the first is one of a dead process.

argv[1] is a JSON object: module (e.g. redis_index_migrate), args (the task's options), and optionally
arm: {"checkpoint": "phase:point", "control": port, "cut": {...}} - when the run first reaches the
checkpoint, the cutting proxy listening for control on that port is armed with that cut (see
cutting_proxy.py), or muted at once with "mute": true instead of "cut".
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), ".build", "collections"))

from cutting_proxy import arm_remotely  # noqa: E402  pylint: disable=wrong-import-position
from module_args import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import failpoints  # noqa: E402


def main() -> int:
    spec = json.loads(sys.argv[1])
    arm = spec.get("arm")
    if arm:
        original, armed = failpoints.hit, []

        def hit(phase, point):
            if not armed and f"{phase}:{point}" == arm["checkpoint"]:
                armed.append(True)
                arm_remotely(arm["control"], arm.get("cut"), mute=arm.get("mute", False))
            original(phase, point)

        failpoints.hit = hit
    module = importlib.import_module(f"ansible_collections.indexops.redis_search.plugins.modules.{spec['module']}")
    args = {**spec["args"], "_ansible_remote_tmp": tempfile.gettempdir(), "_ansible_tmpdir": tempfile.gettempdir()}
    with patch_module_args(args):
        try:
            module.main()
        except SystemExit as done:
            return int(done.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
