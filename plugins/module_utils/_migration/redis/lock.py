# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One migration (or rollback) of an index at a time, across every host that can reach the server.

The lock is a Redis string `indexops:lock:<index>` holding the owner's token, host, pid and plan,
set with NX and a TTL. A thread refreshes the TTL while the work runs; if the key ever stops
holding our token (it expired and someone else took it) the work stops at the next batch. A lock
whose owner died expires by itself; one whose owner is a dead process on this very host is taken
over at once. A string key is never indexed by a HASH or JSON index, so it cannot show up in one.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from typing import List, Optional, Sequence

from ..core.errors import LockHeld, MigrationFailed

LOCK_TTL_MS = 60_000
REFRESH_SECONDS = 15.0
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lock_key(index: str) -> str:
    return f"indexops:lock:{index}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse_holder(raw) -> dict:
    try:
        holder = json.loads(raw)
    except ValueError:
        holder = None
    return holder if isinstance(holder, dict) else {"token": "?", "host": "?", "pid": 0, "purpose": "unknown"}


def owner_gone(holder: dict) -> bool:
    """Whether the holder is a process of this host that no longer runs: its lock is stale. (A process on
    another host cannot be checked from here; its lock stays until its TTL runs out.)"""
    try:
        pid = int(holder.get("pid") or 0)
    except (TypeError, ValueError):
        return False
    return holder.get("host") == socket.gethostname() and pid > 0 and not _pid_alive(pid)


def read_lock(client, index: str) -> Optional[dict]:
    """The lock on `index`, None when there is none: {index, holder, ttl_ms, stale}."""
    return _read_lock(client, lock_key(index), index)


def _read_lock(client, key, index: str) -> Optional[dict]:
    raw, ttl = client.get(key), client.pttl(key)
    if raw is None:  # none, or released meanwhile
        return None
    holder = _parse_holder(raw)
    return {"index": index, "holder": holder, "ttl_ms": ttl, "stale": owner_gone(holder)}


def held_locks(client) -> List[dict]:
    """Every migration or rollback lock on the server, by index name: {index, holder, ttl_ms, stale}."""
    prefix = lock_key("")
    found = []
    for key in client.scan_iter(match=prefix + "*", count=1000):
        name = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else str(key)
        lock = _read_lock(client, key, name[len(prefix) :])
        if lock is not None:
            found.append(lock)
    return sorted(found, key=lambda lock: lock["index"])


class IndexLock:
    def __init__(self, client, index: str, purpose: str, plan_id: str = ""):
        self.client = client
        self.key = lock_key(index)
        self.index = index
        self.token = json.dumps(
            {
                "token": secrets.token_hex(8),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "purpose": purpose,
                "plan": plan_id,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            sort_keys=True,
        )
        self.lost = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _holder(self) -> Optional[dict]:
        raw = self.client.get(self.key)
        return None if raw is None else _parse_holder(raw)

    def acquire(self) -> None:
        if self.client.set(self.key, self.token, nx=True, px=LOCK_TTL_MS):
            self._start_refresh()
            return
        raw = self.client.get(self.key)
        if raw is not None and raw == self.token.encode():
            # Our own SET took the lock, but its reply was lost with the connection, and the client's retry
            # found the key taken - by us (the token is unique to this attempt).
            self._start_refresh()
            return
        holder = self._holder() or {}
        if owner_gone(holder):
            # Its owner died on this host: the lock is stale. Take it over only if it is still that one.
            stale = self.client.get(self.key)
            if (
                stale is not None
                and self.client.eval(_RELEASE, 1, self.key, stale)
                and self.client.set(self.key, self.token, nx=True, px=LOCK_TTL_MS)
            ):
                self._start_refresh()
                return
            holder = self._holder() or holder
        ttl = self.client.pttl(self.key)
        raise LockHeld(
            f"another {holder.get('purpose', 'migration')} of {self.index} holds the lock "
            f"(host {holder.get('host')}, pid {holder.get('pid')}, since {holder.get('since')})",
            hint=f"wait for it to finish; if its owner died the lock expires in {max(ttl, 0) / 1000:.0f} s",
            details={"lock_holder": holder, "lock_ttl_ms": ttl},
        )

    def _start_refresh(self) -> None:
        self._thread = threading.Thread(target=self._refresh_loop, name=f"lock-{self.index}", daemon=True)
        self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                if not self.client.eval(_REFRESH, 1, self.key, self.token, LOCK_TTL_MS):
                    self.lost = True
                    return
            except Exception:  # pylint: disable=broad-exception-caught
                # A network blip: try again next round; the TTL leaves room for several misses.
                continue

    def refresh_in(self, pipe) -> None:
        """Queue the refresh of this lock (its TTL set again while the key holds our token) on a pipeline: a
        write that replicates, whose reply says whether the lock is still ours (durability.py)."""
        pipe.eval(_REFRESH, 1, self.key, self.token, LOCK_TTL_MS)

    def check(self) -> None:
        """Called between batches: stop if another process now owns the lock."""
        if self.lost:
            raise MigrationFailed(
                f"the lock on {self.index} was lost (it expired and another process took it); "
                "stopped before writing more",
                hint="re-run when the other process has finished",
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.client.eval(_RELEASE, 1, self.key, self.token)
        except Exception:  # pylint: disable=broad-exception-caught
            pass  # it expires by itself

    def __enter__(self) -> "IndexLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire_locks(client, names: Sequence[str], purpose: str, plan_id: str = "") -> List[IndexLock]:
    """Locks on several names, all or none (each released again when a later one is held elsewhere).
    A migration or rollback that renames an index holds its target name too: that reserves the name, so
    two runs renaming different indexes to the same name cannot both drop theirs."""
    taken: List[IndexLock] = []
    try:
        for name in dict.fromkeys(names):
            lock = IndexLock(client, name, purpose, plan_id)
            lock.acquire()
            taken.append(lock)
    except Exception:
        release_locks(taken)
        raise
    return taken


def release_locks(locks: Sequence[IndexLock]) -> None:
    for lock in reversed(list(locks)):
        lock.release()
