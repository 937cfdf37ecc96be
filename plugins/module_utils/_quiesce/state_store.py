# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The quiesce state file: every user's exact ACL LIST line from before the window.

It is written (atomically, mode 0600 in a 0700 directory: the lines hold password hashes) before
the first ACL change, so that a run killed at any point can be released later from it. It is
removed only after every user was released (its rules read back as expected) or found deleted or
already restored. It also names the users that existed and were left alone (excluded or not listed),
so that a user created during the window stands out, and what the server's ACL file was like.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Dict, Optional

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import IndexOpsError
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.files import DIR_MODE, write_atomic

FORMAT = "indexops.redis_search/write-quiesce"
# A replica set's file: each member's state (this format) under its address (set_state.py).
SET_FORMAT = "indexops.redis_search/write-quiesce-set"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 lacks left_alone and acl_file: read as "none recorded"


class StateFileInvalid(IndexOpsError):
    """The state file is unreadable, of another format, or belongs to another server."""

    kind = "state_file_invalid"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def new_state(
    endpoint: str,
    run_id: str,
    migrating_user: str,
    denied_commands: list,
    left_alone: list = (),
    acl_file: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "endpoint": endpoint,
        "run_id": run_id,
        "created_at": utc_now(),
        "migrating_user": migrating_user,
        "denied_commands": list(denied_commands),
        "left_alone": sorted(left_alone),
        "acl_file": acl_file,
        "users": {},
    }


def load(path: str, endpoint: str) -> Optional[Dict[str, Any]]:
    """The state in `path`, or None when there is none. Refuses another server's state."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise StateFileInvalid(
            f"cannot read the quiesce state file {path}: {err}",
            hint="restore it from a copy, or restore the users' rules by hand",
        ) from None
    if isinstance(state, dict) and state.get("format") == SET_FORMAT:
        raise StateFileInvalid(
            f"{path} holds the quiesce of a replica set ({', '.join(sorted(state.get('members') or {}))}), "
            "not of one server",
            hint="give the replica set as when it was quiesced (members, or sentinel)",
        )
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("users"), dict):
        raise StateFileInvalid(f"{path} is not a write-quiesce state file")
    if state.get("version") not in READABLE_VERSIONS:
        raise StateFileInvalid(
            f"{path} has state format version {state.get('version')}, this module reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    if state.get("endpoint") != endpoint:
        raise StateFileInvalid(
            f"{path} belongs to {state.get('endpoint')}, not {endpoint}",
            hint="each Redis server needs its own state_file",
        )
    state.setdefault("left_alone", [])
    state.setdefault("acl_file", None)
    return state


def save(path: str, state: Dict[str, Any]) -> None:
    """Replace `path` with `state` so that a crash leaves the old or the new file, never half of one."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=DIR_MODE)
    data = json.dumps(state, indent=2, sort_keys=True).encode() + b"\n"
    write_atomic(os.path.abspath(path), data, prefix=".quiesce-")


def remove(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class StateFile:
    """One server's state in a file of its own. The runner reads and writes a state through this interface
    (load, save, remove, path); a replica set keeps each member's state in one file instead (set_state.py)."""

    def __init__(self, path: str, endpoint: str):
        self.path, self.endpoint = path, endpoint

    def load(self) -> Optional[Dict[str, Any]]:
        return load(self.path, self.endpoint)

    def save(self, state: Dict[str, Any]) -> None:
        save(self.path, state)

    def remove(self) -> bool:
        return remove(self.path)


def at(state_file: Any, endpoint: str) -> Any:
    """The store of a state: `state_file` itself when it is one, else the file at that path."""
    return state_file if hasattr(state_file, "load") else StateFile(state_file, endpoint)
