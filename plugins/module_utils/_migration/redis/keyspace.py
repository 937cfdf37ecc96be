# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keys an index covers: prefix arithmetic and bounded sampling.

Planning must stay fast on an index of any size, so sampling reads a bounded number of keys: the
first documents by the index's own order (FT.SEARCH, NOCONTENT) and a bounded SCAN over the index's
prefixes, whose hash-table order spreads the sample over the whole key space. Keys are bytes:
Redis keys need not be valid UTF-8.
"""

from __future__ import annotations

import base64
import string
from typing import Any, Iterator, List, Optional

from .resp import as_map

# Per-query timeout override: 0 means none. The module's default (500 ms, or less where an operator
# lowered it) silently returns partial results, which would leave documents out of a backup.
NO_TIMEOUT = ("TIMEOUT", "0")
# SCAN calls spent on one sample; each examines about COUNT keys of the whole database.
SCAN_CALLS = 20
SCAN_COUNT = 1000
_GLOB_SPECIAL = b"*?[]\\"


def prefixes_overlap(left: str, right: str) -> bool:
    """FT.CREATE PREFIX semantics: a key matches a prefix when it starts with it."""
    return left.startswith(right) or right.startswith(left)


def covered_by(key: bytes, prefixes: List[str]) -> bool:
    return any(key.startswith(p.encode()) for p in prefixes)


def renamed_key(key: bytes, old_prefix: str, new_prefix: str) -> bytes:
    return new_prefix.encode() + key[len(old_prefix.encode()) :]


def separator_in_use(keys: List[bytes], prefixes: List[str]) -> Optional[str]:
    """The key separator the sampled keys show: the punctuation right after their prefix (`doc:` + `/1`),
    else the one the prefix ends with (`doc:` + `1`). None when a key shows none, or they disagree: no
    server reports a separator, so the keys are the only witness of the application's convention."""
    found = set()
    for key in keys:
        prefix = max((p.encode() for p in prefixes if p and key.startswith(p.encode())), key=len, default=b"")
        if not prefix:
            continue
        rest = key[len(prefix) :]
        if rest[:1] and chr(rest[0]) in string.punctuation:
            found.add(chr(rest[0]))
        elif chr(prefix[-1]) in string.punctuation:
            found.add(chr(prefix[-1]))
        else:
            return None
    return found.pop() if len(found) == 1 else None


def glob_escape(prefix: bytes) -> bytes:
    return b"".join(b"\\" + bytes([c]) if c in _GLOB_SPECIAL else bytes([c]) for c in prefix)


def key_to_text(key: bytes) -> Any:
    """A key as YAML/JSON can hold it: the string when it is UTF-8, else {base64: ...}."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(key).decode()}


def key_from_text(value: Any) -> bytes:
    if isinstance(value, dict):
        return base64.b64decode(value["base64"])
    return str(value).encode("utf-8")


def _open_key_cursor(client, index: str, count: int):
    """The first reply of an FT.AGGREGATE cursor over the index's document keys, `count` a read."""
    return client.execute_command(
        "FT.AGGREGATE",
        index,
        "*",
        "LOAD",
        "1",
        "@__key",
        "WITHCURSOR",
        "COUNT",
        str(count),
        *NO_TIMEOUT,
        "DIALECT",
        "2",
    )


def _head_keys(client, index: str, count: int) -> List[bytes]:
    """The first `count` documents of the index. An FT.AGGREGATE cursor reads only what it returns;
    FT.SEARCH would count every document of the index first, whatever its LIMIT."""
    reply = _open_key_cursor(client, index, count)
    rows, cursor = reply
    if int(cursor):
        client.execute_command("FT.CURSOR", "DEL", index, str(cursor))
    return _aggregate_keys(rows)[:count]


def _scan_keys(client, prefixes: List[str], storage: str, count: int) -> List[bytes]:
    wanted = "ReJSON-RL" if storage == "json" else "hash"
    found: List[bytes] = []
    for prefix in prefixes:
        cursor = 0
        for _call in range(SCAN_CALLS):
            cursor, keys = client.scan(
                cursor=cursor, match=glob_escape(prefix.encode()) + b"*", count=SCAN_COUNT, _type=wanted
            )
            found.extend(keys)
            if int(cursor) == 0 or len(found) >= count:
                break
    return found[:count]


def sample_keys(client, index: str, prefixes: List[str], storage: str, size: int, head: int = 0) -> List[bytes]:
    """Up to `size` distinct document keys: first `head` (at least a tenth) from the index's own
    order, which is stable from run to run, then from a bounded SCAN, whose hash-table order spreads
    the rest over the whole key space so that lengths and values are representative."""
    if size <= 0:
        return []
    first = _head_keys(client, index, min(size, max(head, size // 10, 1)))
    spread = _scan_keys(client, prefixes, storage, size)
    seen, sample = set(), []
    for key in first + spread:
        if key not in seen:
            seen.add(key)
            sample.append(key)
        if len(sample) >= size:
            break
    return sample


def iter_index_keys(client, index: str, batch: int = 1000) -> Iterator[List[bytes]]:
    """Every document key of the index, in batches, through an FT.AGGREGATE cursor."""
    reply = _open_key_cursor(client, index, batch)
    while True:
        rows, cursor = reply
        keys = _aggregate_keys(rows)
        if keys:  # the last read of a cursor may be empty
            yield keys
        if not int(cursor):
            return
        reply = client.execute_command("FT.CURSOR", "READ", index, str(cursor), "COUNT", str(batch))


def iter_prefix_keys(client, prefixes: List[str], storage: str, batch: int = 1000) -> Iterator[List[bytes]]:
    """Every key of the index's type under its prefixes, in batches, by SCAN. A key under two
    overlapping prefixes is yielded once (under the first); SCAN itself may repeat a key, which
    callers tolerate (every rewrite is idempotent)."""
    wanted = "ReJSON-RL" if storage == "json" else "hash"
    for position, prefix in enumerate(prefixes):
        earlier = [p.encode() for p in prefixes[:position]]
        cursor = 0
        while True:
            cursor, keys = client.scan(
                cursor=cursor, match=glob_escape(prefix.encode()) + b"*", count=batch, _type=wanted
            )
            keys = [k for k in keys if not any(k.startswith(e) for e in earlier)]
            if keys:
                yield keys
            if int(cursor) == 0:
                break  # on to the next prefix


def iter_keys(
    client, index: str, prefixes: List[str], storage: str, whole_prefix: bool, batch: int = 1000
) -> Iterator[List[bytes]]:
    """The documents a migration must cover: the index's own (FT.AGGREGATE cursor), or with
    `whole_prefix` every key under its prefixes (SCAN), which includes documents the index failed
    to index or has not reached yet."""
    if whole_prefix:
        return iter_prefix_keys(client, prefixes, storage, batch)
    return iter_index_keys(client, index, batch)


def _aggregate_keys(rows: Any) -> List[bytes]:
    if isinstance(rows, dict) or (not isinstance(rows, list)):
        rows = as_map(rows).get("results", [])
        return [as_map(as_map(r)["extra_attributes"])["__key"] for r in rows]
    keys = []
    for row in rows[1:]:  # RESP2: [count, [field, value, ...], ...]
        if (
            len(row) == 2 and row[0] == b"__key"
        ):  # the usual row, read without building a map (a backup reads every one)
            keys.append(row[1])
        else:
            keys.append(as_map(row)["__key"])
    return keys


def indexed_keys(client, index: str, keys: List[bytes], limit: Optional[int] = None) -> set:
    """Which of `keys` the index holds (a document it refused - a value it cannot parse - is not). `limit`
    is the server's MAXSEARCHRESULTS: the keys are asked for that many at a time."""
    found: set = set()
    page = len(keys) if not limit else limit
    for start in range(0, len(keys), max(1, page)):
        chunk = keys[start : start + page]
        reply = client.execute_command(
            "FT.SEARCH",
            index,
            "*",
            "INKEYS",
            str(len(chunk)),
            *chunk,
            "NOCONTENT",
            "LIMIT",
            "0",
            str(len(chunk)),
            *NO_TIMEOUT,
            "DIALECT",
            "2",
        )
        if isinstance(reply, dict) or (isinstance(reply, list) and reply and isinstance(reply[0], dict)):
            top = as_map(reply[0] if isinstance(reply, list) else reply)
            found.update(as_map(row)["id"] for row in top.get("results", []))
        else:
            found.update(reply[1:])
    return found
