# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the server is and what it accepts, found without writing anything.

Vector datatypes and algorithms are probed with an FT.CREATE that the server is bound to refuse:
its schema names the probe field twice, so a server that accepts the vector definition fails on
the duplicate ("Duplicate field") and one that does not fails on the vector arguments. Nothing is
created, and a failed command is not replicated or written to the AOF. Where the probe is not
allowed (ACL, read-only replica), versions decide.
"""

from __future__ import annotations

import secrets
from typing import Dict, List, Optional

from ..core.deps import BaseModel, Field, redis_exceptions
from ..core.errors import PreflightFailed, ServerUnsupported
from ..schema.model import VECTOR_ALGORITHMS, VECTOR_DATATYPES
from .resp import as_map, decode, text

# Lowest search module version known to accept each value, for when probing is not possible.
SINCE_VERSION = {
    "float32": (2, 4, 0),
    "float64": (2, 4, 0),
    "float16": (2, 10, 0),
    "bfloat16": (2, 10, 0),
    "int8": (8, 0, 0),
    "uint8": (8, 0, 0),
    "flat": (2, 4, 0),
    "hnsw": (2, 4, 0),
    "svs-vamana": (8, 2, 0),
}
_ACCEPTED = "duplicate field"


class ServerCapabilities(BaseModel):
    redis_version: str = ""
    redis_mode: str = "standalone"
    cluster_enabled: bool = False
    modules: Dict[str, str] = Field(default_factory=dict)
    search_version: Optional[str] = None
    json_version: Optional[str] = None
    vector_datatypes: List[str] = Field(default_factory=list)
    vector_algorithms: List[str] = Field(default_factory=list)
    detected_by: str = "version"
    alias_listing: bool = False
    aof_enabled: bool = False
    rdb_save_configured: Optional[bool] = None
    used_memory_bytes: int = 0
    maxmemory_bytes: int = 0
    # MAXSEARCHRESULTS: the most rows one FT.SEARCH may ask for (None: not readable, e.g. by ACL).
    max_search_results: Optional[int] = None
    # BG_INDEX_SLEEP_GAP: documents the module indexes in the background per hold of the server's lock, so
    # the longest a reader waits while an index builds (None: not readable). Settable only when it loads.
    bg_index_sleep_gap: Optional[int] = None

    def accepts_datatype(self, datatype: str) -> bool:
        return datatype.lower() in self.vector_datatypes

    def accepts_algorithm(self, algorithm: str) -> bool:
        return algorithm.lower() in self.vector_algorithms


def _version_text(number: int) -> str:
    """MODULE LIST encodes 2.10.5 as 21005."""
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def _version_tuple(version: Optional[str]) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in (version or "0").split(".")[:3])
    except ValueError:
        return (0, 0, 0)


def _modules(client) -> dict[str, str]:
    found = {}
    for entry in client.execute_command("MODULE", "LIST") or []:
        entry = as_map(entry)
        name = str(text(entry.get("name")))
        version = entry.get("ver")
        found[name] = _version_text(int(version)) if isinstance(version, int) else str(text(version))
    return found


def _probe(client, vector_args: list[str]) -> Optional[bool]:
    """True/False when the server accepts/rejects the vector definition; None when we cannot tell."""
    name = f"__indexops_probe_{secrets.token_hex(6)}"
    prefix = f"__indexops_probe_{secrets.token_hex(6)}:"
    args = [
        "FT.CREATE",
        name,
        "ON",
        "HASH",
        "PREFIX",
        "1",
        prefix,
        "SKIPINITIALSCAN",
        "SCHEMA",
        "v",
        "VECTOR",
        *vector_args,
        "v",
        "TEXT",
    ]
    try:
        client.execute_command(*args)
    except redis_exceptions.ResponseError as err:
        message = str(err).lower()
        if _ACCEPTED in message:
            return True
        if "argument" in message:  # "Bad arguments for vector similarity ...: Unknown argument"
            return False
        return None
    # A server that let the duplicate through created an empty index on an unused prefix: remove it.
    client.execute_command("FT.DROPINDEX", name)
    return True


def _probe_vectors(client) -> Optional[tuple[list[str], list[str]]]:
    datatypes, algorithms = [], []
    for datatype in VECTOR_DATATYPES:
        accepted = _probe(client, ["FLAT", "6", "TYPE", datatype.upper(), "DIM", "2", "DISTANCE_METRIC", "L2"])
        if accepted is None:
            return None
        if accepted:
            datatypes.append(datatype)
    for algorithm in VECTOR_ALGORITHMS:
        accepted = _probe(client, [algorithm.upper(), "6", "TYPE", "FLOAT32", "DIM", "2", "DISTANCE_METRIC", "L2"])
        if accepted is None:
            return None
        if accepted:
            algorithms.append(algorithm)
    return datatypes, algorithms


def _has_command(client, name: str) -> bool:
    try:
        # "COMMAND INFO" as one word skips redis-py's reply parser, which fails on unknown commands.
        reply = client.execute_command("COMMAND INFO", name)
    except redis_exceptions.ResponseError:
        return False
    if isinstance(reply, dict):
        return any(v for v in reply.values())
    return bool(reply) and reply[0] is not None


def _search_setting(client, name: str) -> Optional[int]:
    """A numeric setting of the search module; None when it cannot be read (the user may not run FT.CONFIG)
    or is not a number ("unlimited")."""
    try:
        reply = client.execute_command("FT.CONFIG", "GET", name)
    except redis_exceptions.ResponseError:
        return None
    pairs = decode(reply)
    value = dict(pairs).get(name) if isinstance(pairs, list) else (pairs or {}).get(name)
    try:
        return int(str(text(value)))
    except (TypeError, ValueError):
        return None


def search_result_limit(client) -> Optional[int]:
    """The server's MAXSEARCHRESULTS (an FT.SEARCH asking for more rows fails "LIMIT exceeds maximum");
    None when it cannot be read or is unlimited."""
    number = _search_setting(client, "MAXSEARCHRESULTS")
    return number if number is not None and number >= 0 else None


def require_search_results(client, what: str) -> Optional[int]:
    """The server's MAXSEARCHRESULTS, refused when it lets no search return a document: validation reads
    documents back through FT.SEARCH."""
    limit = search_result_limit(client)
    if limit == 0:
        raise PreflightFailed(
            f"{what}: the server's MAXSEARCHRESULTS is 0, so no search returns a document and the "
            "new index could not be validated",
            hint="raise it (FT.CONFIG SET MAXSEARCHRESULTS 10000), then run the task again",
        )
    return limit


def detect_capabilities(client, probe: bool = True) -> ServerCapabilities:
    """Read the server's identity and what it accepts. Raises ServerUnsupported without search."""
    server = client.info("server")
    persistence = client.info("persistence")
    memory = client.info("memory")
    cluster = client.info("cluster")
    modules = _modules(client)
    search = modules.get("search") or modules.get("ft")
    if not search:
        raise ServerUnsupported(
            "the server has no search module (RediSearch / Query Engine)",
            hint="use Redis 8, Redis Stack or Redis Enterprise with search; MODULE LIST shows: "
            + (", ".join(sorted(modules)) or "no modules"),
        )
    caps = ServerCapabilities(
        redis_version=str(server.get("redis_version", "")),
        redis_mode=str(server.get("redis_mode", "standalone")),
        cluster_enabled=bool(int(cluster.get("cluster_enabled", 0) or 0)),
        modules=modules,
        search_version=search,
        json_version=modules.get("ReJSON"),
        alias_listing=_has_command(client, "FT.ALIASLIST"),
        aof_enabled=bool(int(persistence.get("aof_enabled", 0) or 0)),
        used_memory_bytes=int(memory.get("used_memory", 0) or 0),
        maxmemory_bytes=int(memory.get("maxmemory", 0) or 0),
        max_search_results=search_result_limit(client),
        bg_index_sleep_gap=_search_setting(client, "BG_INDEX_SLEEP_GAP"),
    )
    try:
        save = decode(client.config_get("save")).get("save")
        caps.rdb_save_configured = bool(save and str(save).strip())
    except redis_exceptions.ResponseError:
        caps.rdb_save_configured = None
    probed = _probe_vectors(client) if probe else None
    if probed:
        caps.vector_datatypes, caps.vector_algorithms = probed
        caps.detected_by = "probe"
    else:
        have = _version_tuple(search)
        caps.vector_datatypes = [d for d in VECTOR_DATATYPES if have >= SINCE_VERSION[d]]
        caps.vector_algorithms = [a for a in VECTOR_ALGORITHMS if have >= SINCE_VERSION[a]]
    return caps
