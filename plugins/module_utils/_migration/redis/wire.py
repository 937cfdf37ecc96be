# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Commands sent the cheap way: packed in one go and pipelined on one connection.

A redis-py pipeline builds and parses each command through Python objects of its own, which costs
the client several times what the server spends on a small command; a migration sends hundreds of
thousands of them. So the hot loops pack RESP themselves (one bytes.join per batch) and send it on
a connection taken from the client's pool, whose reply reader they use as it is. The connection
carries the client's settings (TLS, timeouts, protocol, credentials) because it is the pool's.
"""

from __future__ import annotations

from typing import Any, List, Sequence

from ..core.deps import redis_exceptions


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def pack(*args: Any) -> bytes:
    """One command in RESP: an array of bulk strings."""
    values = [arg if isinstance(arg, bytes) else _bytes(arg) for arg in args]
    return b"*%d\r\n" % len(values) + b"".join([b"$%d\r\n%s\r\n" % (len(value), value) for value in values])


def pooled_connection(pool):
    """A connection taken from `pool`, on every redis-py the collection supports: before 5.3 get_connection
    requires a command name, from 5.3 on passing one is deprecated."""
    try:
        return pool.get_connection()
    except TypeError:
        return pool.get_connection("PING")


class Wire:
    """One connection of a client's pool, held for a phase: send packed commands, read replies in order."""

    def __init__(self, client):
        self.pool = client.connection_pool
        self.connection = pooled_connection(self.pool)
        self.unread = 0

    def send(self, payload: bytes, replies: int = 1) -> None:
        self.connection.send_packed_command([payload])
        self.unread += replies

    def read(self, count: int = 1) -> List[Any]:
        """The next `count` replies; an error reply is returned as the exception, not raised, so that
        the replies after it stay in step."""
        found = []
        for _reply in range(count):
            self.unread -= 1
            try:
                found.append(self.connection.read_response())
            except redis_exceptions.ResponseError as err:
                found.append(err)
        return found

    def call(self, *args: Any) -> Any:
        """One command, its reply (an error reply is raised)."""
        self.send(pack(*args))
        reply = self.read()[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def close(self) -> None:
        # A connection with replies still unread would hand them to the next user of the pool.
        if self.unread:
            self.connection.disconnect()
        self.pool.release(self.connection)

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_values(wire: Wire, keys: Sequence[bytes], locations: Sequence[str], json_storage: bool) -> List[List[Any]]:
    """Each key's values at `locations` (None where absent), one packed round trip: HGET/HMGET for
    hashes, JSON.GET per path for JSON (its reply '[value]', or None for no match)."""
    names = [location.encode() for location in locations]
    if not names:  # nothing backed up (a prefix change alone): no round trip
        return [[] for _key in keys]
    if json_storage:
        wire.send(b"".join(pack(b"JSON.GET", key, name) for key in keys for name in names), len(keys) * len(names))
        replies = wire.read(len(keys) * len(names))
        step = len(names)
        rows = []
        for i in range(len(keys)):
            row = []
            for value in replies[i * step : (i + 1) * step]:
                if isinstance(value, Exception):
                    raise value
                row.append(
                    None if value in (None, b"[]") else (value if isinstance(value, bytes) else str(value).encode())
                )
            rows.append(row)
        return rows
    if len(names) == 1:
        wire.send(b"".join(pack(b"HGET", key, names[0]) for key in keys), len(keys))
        replies = wire.read(len(keys))
        rows = [[value] for value in replies]
    else:
        wire.send(b"".join(pack(b"HMGET", key, *names) for key in keys), len(keys))
        rows = [list(value) if isinstance(value, list) else value for value in wire.read(len(keys))]
    for row in rows:
        if isinstance(row, Exception):
            raise row
        for value in row:
            if isinstance(value, Exception):
                raise value
    return rows
