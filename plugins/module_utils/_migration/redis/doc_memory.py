# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What documents cost the server in memory, read on a sample: MEMORY USAGE of a key (a whole document,
for a copy beside it) and JSON.DEBUG MEMORY of a JSONPath (a value copied to another path).

One pipelined round trip; a key gone meanwhile, or a user who may not send these commands, only makes
the sample smaller (an empty sample gives None, and the estimate says what it assumed instead)."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from ..core.deps import BaseModel, Field


class DocumentMemory(BaseModel):
    """Means over the documents that answered, in bytes (None: no document answered)."""

    sampled: int = 0
    key_bytes: Optional[int] = None  # MEMORY USAGE <key> SAMPLES 0
    path_bytes: Dict[str, int] = Field(default_factory=dict)  # JSON.DEBUG MEMORY <key> <path>


def _first(reply) -> Optional[int]:
    if isinstance(reply, Exception) or reply is None:
        return None
    if isinstance(reply, list):
        return int(reply[0]) if reply and reply[0] is not None else None
    return int(reply)


def document_memory(
    client, keys: Sequence[bytes], whole: bool, json_paths: Sequence[str] = (), limit: int = 100
) -> DocumentMemory:
    """The memory of up to `limit` of `keys`: whole documents (`whole`) and the values at `json_paths`."""
    keys = list(keys)[:limit]
    if not keys or not (whole or json_paths):
        return DocumentMemory()
    pipe = client.pipeline(transaction=False)
    for key in keys:
        if whole:
            pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
        for path in json_paths:
            pipe.execute_command("JSON.DEBUG", "MEMORY", key, path)
    replies = pipe.execute(raise_on_error=False)
    step = int(whole) + len(json_paths)
    wholes: List[int] = []
    paths: Dict[str, List[int]] = {path: [] for path in json_paths}
    for row in (replies[i : i + step] for i in range(0, len(replies), step)):
        if whole:
            found = _first(row[0])
            if found:
                wholes.append(found)
        for path, reply in zip(json_paths, row[int(whole) :]):
            found = _first(reply)
            if found:
                paths[path].append(found)
    return DocumentMemory(
        sampled=len(keys),
        key_bytes=round(sum(wholes) / len(wholes)) if wholes else None,
        path_bytes={path: round(sum(values) / len(values)) for path, values in paths.items() if values},
    )
