"""Hand a module its task arguments the way Ansible does, on every ansible-core the collection claims.

ansible-core 2.19 added `ansible.module_utils.testing.patch_module_args`; before it, a module read them from
`basic._ANSIBLE_ARGS` (which is what that helper patches, with a serialisation profile on top)."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator
from unittest import mock

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args: dict[str, Any] | None = None) -> Iterator[None]:
        encoded = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        with mock.patch.object(basic, "_ANSIBLE_ARGS", encoded):
            yield


__all__ = ["patch_module_args"]
