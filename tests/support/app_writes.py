"""An application that keeps writing while a migration runs, and helpers to check what it left.

The application updates a document where it currently lives: under the new key name once the
migration renamed it, at the new field location once the migration moved it, and with a value as
long as the one stored there (float32 before the rewrite, float16 after). It also deletes documents
(under whichever name they have) and adds new ones. Each write is one server-side script or command,
so the test knows exactly what the application wrote, in which order, whatever the interleaving
with the migration.
"""

from __future__ import annotations

import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

# KEYS[1] old key name, KEYS[2] new key name; ARGV[1] old field, ARGV[2] new field, ARGV[3..] candidate
# values: the one as long as the stored value (else the first). Returns {key, field, value}.
HASH_WRITE = """
local key = KEYS[1]
if redis.call('EXISTS', KEYS[2]) == 1 then key = KEYS[2] end
if redis.call('EXISTS', key) == 0 then return false end
local field = ARGV[1]
if redis.call('HEXISTS', key, ARGV[2]) == 1 then field = ARGV[2] end
local current = redis.call('HGET', key, field)
local value = ARGV[3]
for i = 3, #ARGV do
  if current and #ARGV[i] == #current then value = ARGV[i] end
end
redis.call('HSET', key, field, value)
return {key, field, value}
"""

# The same for JSON documents: ARGV[1] old path, ARGV[2] new path, ARGV[3] the JSON text to set.
# Returns {key, path, what JSON.GET now returns for that path}.
JSON_WRITE = """
local key = KEYS[1]
if redis.call('EXISTS', KEYS[2]) == 1 then key = KEYS[2] end
if redis.call('EXISTS', key) == 0 then return false end
local path = ARGV[1]
local there = redis.call('JSON.GET', key, ARGV[2])
if there and there ~= '[]' then path = ARGV[2] end
redis.call('JSON.SET', key, path, ARGV[3])
return {key, path, redis.call('JSON.GET', key, path)}
"""

# KEYS[1] old key name, KEYS[2] new key name: delete the document under whichever name it has.
# Returns the name deleted, or false when it was gone already.
DELETE = """
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('DEL', KEYS[i]); return KEYS[i] end
end
return false
"""

Write = Tuple[str, str, bytes, str, bytes]  # (document id, kind, key written, field written, value)


class AppWriter:
    """Runs `updates` ((document id, kind, old key, new key, old field, new field, candidates)) one
    by one in a thread, remembering the last value written per (document, kind)."""

    def __init__(self, client, json_storage: bool = False):
        self.client = client
        self.json_storage = json_storage
        self.script = client.register_script(JSON_WRITE if json_storage else HASH_WRITE)
        self.deleter = client.register_script(DELETE)
        self.last: Dict[Tuple[str, str], Tuple[bytes, bytes, bytes]] = {}
        # Every value written per (document, kind), in order; documents deleted {id: name}; keys added {key: value}.
        self.history: Dict[Tuple[str, str], List[bytes]] = {}
        self.deleted: Dict[str, bytes] = {}
        self.added: Dict[bytes, object] = {}
        self.count = 0
        self._queue: List[tuple] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self.error: Optional[BaseException] = None

    def write(
        self,
        doc: str,
        kind: str,
        old_key: str,
        new_key: str,
        old_field: str,
        new_field: str,
        candidates: Sequence[bytes],
    ) -> None:
        reply = self.script(keys=[old_key, new_key], args=[old_field, new_field, *candidates])
        if reply:
            with self._lock:
                self.last[(doc, kind)] = (reply[0], reply[1], reply[2])
                self.history.setdefault((doc, kind), []).append(reply[2])
                self.count += 1

    def delete(self, doc: str, old_key: str, new_key: str) -> None:
        """Delete the document under whichever name it has now."""
        reply = self.deleter(keys=[old_key, new_key])
        if reply:
            with self._lock:
                self.deleted[doc] = reply
                self.count += 1

    def add(self, key: str, value) -> None:
        """A new document: a mapping for a hash, a JSON-serializable object for JSON."""
        import json  # pylint: disable=import-outside-toplevel

        if self.json_storage:
            self.client.execute_command("JSON.SET", key, "$", json.dumps(value))
            # What the server keeps: it prints doubles with 17 significant digits at most.
            value = json.loads(self.client.execute_command("JSON.GET", key))
        else:
            self.client.hset(key, mapping=value)
        with self._lock:
            self.added[key.encode()] = value
            self.count += 1

    def start(self, updates: List[object]) -> None:
        """Run `updates` in a thread: tuples are updates (see write), callables are run as they are."""
        self._queue = list(updates)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for update in self._queue:
                if self._stop.is_set():
                    return
                if callable(update):
                    update()
                else:
                    self.write(*update)
                time.sleep(0.002)  # let the migration run between writes
        except BaseException as err:  # noqa: BLE001 - reported by stop()
            self.error = err

    def wait_for(self, writes: int, timeout: float = 10.0) -> None:
        """Until the thread has made `writes` writes in all (or has run out of updates)."""
        deadline = time.monotonic() + timeout
        while self.count < writes and self._thread is not None and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"the writer made {self.count} of {writes} writes in {timeout} s")
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.error is not None:
            raise self.error

    @property
    def documents(self) -> Dict[str, set]:
        """{kind: documents the application wrote}."""
        found: Dict[str, set] = {}
        for doc, kind in self.last:
            found.setdefault(kind, set()).add(doc)
        return found


def dump_everything(client) -> Dict[bytes, bytes]:
    """DUMP of every key: any write to any key shows up as a difference."""
    return {key: client.dump(key) for key in sorted(client.scan_iter(count=1000))}


WRITE_COMMANDS = (
    "hset",
    "hdel",
    "del",
    "unlink",
    "set",
    "rename",
    "restore",
    "evalsha",
    "eval",
    "json.set",
    "json.del",
    "ft.create",
    "ft.dropindex",
    "ft.aliasupdate",
    "ft.aliasadd",
    "ft.aliasdel",
    "expire",
    "pexpire",
)


def write_counters(client) -> Dict[str, int]:
    """Calls (including rejected and failed ones) of every command that can write, and the server's
    count of changes since its last save."""
    # Lower-case keys: the server names module commands in upper case (cmdstat_FT.CREATE) but not JSON's.
    stats = {key.lower(): value for key, value in client.info("commandstats").items()}
    counters = {}
    for name in WRITE_COMMANDS:
        entry = stats.get(f"cmdstat_{name}") or {}
        counters[name] = (
            int(entry.get("calls", 0)) + int(entry.get("rejected_calls", 0)) + int(entry.get("failed_calls", 0))
        )
    counters["rdb_changes_since_last_save"] = int(client.info("persistence")["rdb_changes_since_last_save"])
    return counters
