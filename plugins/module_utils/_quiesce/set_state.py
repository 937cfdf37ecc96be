# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The quiesce state of a replica set: one file, each member's state (state_store's format) under its
address.

One file, because a window is one decision over the whole set: its release, after a killed run or a
failover, must find every server that was quiesced, also one that is down at the time (it stays
recorded until it is released). Each member's part is read and written through the same interface as a
single server's file (load, save, remove), so the runner works on either. The file is written
atomically (mode 0600 in a 0700 directory: it holds password hashes) and removed when no member is left.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from . import state_store
from .state_store import SET_FORMAT, StateFileInvalid

VERSION = 1


def is_set_file(path: Optional[str]) -> bool:
    """Whether `path` holds a replica set's quiesce (False when there is no such file, or another kind)."""
    if not path:
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("format") == SET_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class SetStateFile:
    """A replica set's state file; `member(address)` is the store of one member's state."""

    def __init__(self, path: Optional[str], endpoint: str):
        self.path, self.endpoint = path, endpoint
        self.data = self._read() if path else self._new()

    @classmethod
    def empty(cls, endpoint: str) -> "SetStateFile":
        """No file: nothing recorded (a verification without a state file)."""
        return cls(None, endpoint)

    def _new(self) -> Dict[str, Any]:
        return {
            "format": SET_FORMAT,
            "version": VERSION,
            "endpoint": self.endpoint,
            "created_at": state_store.utc_now(),
            "members": {},
        }

    def _read(self) -> Dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return self._new()
        except (OSError, ValueError) as err:
            raise StateFileInvalid(
                f"cannot read the quiesce state file {self.path}: {err}",
                hint="restore it from a copy, or restore the users' rules by hand on every server",
            ) from None
        if isinstance(data, dict) and data.get("format") == state_store.FORMAT:
            raise StateFileInvalid(
                f"{self.path} holds the quiesce of one server ({data.get('endpoint')}), not of a replica set",
                hint="release it with the options it was quiesced with (without members or sentinel), then quiesce "
                "the replica set",
            )
        if not isinstance(data, dict) or data.get("format") != SET_FORMAT or not isinstance(data.get("members"), dict):
            raise StateFileInvalid(f"{self.path} is not a write-quiesce state file")
        if data.get("version") != VERSION:
            raise StateFileInvalid(
                f"{self.path} has replica set state format version {data.get('version')}, this module reads {VERSION}"
            )
        return data

    def members(self) -> List[str]:
        """The recorded members, in the order they were recorded."""
        return list(self.data["members"])

    def check_same_set(self, addresses: List[str]) -> None:
        """Refuse another replica set's file: recorded members, none of them among `addresses`, under another
        endpoint."""
        recorded = self.members()
        if recorded and self.data.get("endpoint") != self.endpoint and not set(recorded) & set(addresses):
            raise StateFileInvalid(
                f"{self.path} belongs to the replica set {self.data.get('endpoint')} ({', '.join(recorded)}), "
                f"not {self.endpoint} ({', '.join(addresses) or 'no member given'})",
                hint="each replica set needs its own state_file",
            )

    def member(self, address: str) -> "MemberState":
        return MemberState(self, address)

    def write(self) -> None:
        if self.data["members"]:
            state_store.save(self.path, self.data)
        else:
            state_store.remove(self.path)


class MemberState:
    """One member's part of a SetStateFile, with a single server's store interface."""

    def __init__(self, owner: SetStateFile, address: str):
        self.owner, self.address = owner, address

    @property
    def path(self) -> str:
        return self.owner.path

    def load(self) -> Optional[Dict[str, Any]]:
        state = self.owner.data["members"].get(self.address)
        if state is None:
            return None
        state.setdefault("left_alone", [])
        state.setdefault("acl_file", None)
        return json.loads(json.dumps(state))  # a copy: the runner's changes count only once saved

    def save(self, state: Dict[str, Any]) -> None:
        self.owner.data["members"][self.address] = state
        self.owner.write()

    def remove(self) -> bool:
        found = self.owner.data["members"].pop(self.address, None) is not None
        if found:
            self.owner.write()
        return found
