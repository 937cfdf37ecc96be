"""Run a module's main() in-process, the way Ansible would, and return its result dict."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import pytest
from module_args import patch_module_args


class ModuleFailed(AssertionError):
    def __init__(self, result: dict):
        super().__init__(result.get("msg"))
        self.result = result


def run_module(
    module, args: dict[str, Any], capsys, check_mode: bool = False, diff: bool = False, expect_failure: bool = False
) -> dict:
    """Call module.main() with `args`; return the parsed JSON it printed.

    Raises ModuleFailed when the module failed and a failure was not expected."""
    full = dict(args)
    full["_ansible_check_mode"] = check_mode
    full["_ansible_diff"] = diff
    full.setdefault("_ansible_remote_tmp", tempfile.gettempdir())
    full.setdefault("_ansible_tmpdir", tempfile.gettempdir())
    capsys.readouterr()
    with patch_module_args(full):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    if result.get("failed") and not expect_failure:
        raise ModuleFailed(result)
    if expect_failure and not result.get("failed"):
        raise AssertionError(f"module succeeded but a failure was expected: {result}")
    result["_raw"] = out
    return result


def without_env(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
