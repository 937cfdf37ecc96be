# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a server stands: its role, its replicas and how far behind they are (INFO replication), and the
one topology refused outright, Redis Cluster.

A search index of the module this collection runs against (no coordinator) indexes only the keys of the
shard it lives on, so through one node of a cluster a migration would back up, rewrite and validate a
part of the documents and call it the whole: refused when connecting, before anything is read.
"""

from __future__ import annotations

from typing import Any, Dict, List

from ..core.deps import redis_exceptions
from ..core.errors import ServerUnsupported
from .resp import as_int, decode

CLUSTER_REASON = (
    "the search module of this server has no coordinator: an index covers only the keys of the shard it "
    "lives on, so a migration through one node would see part of the documents"
)


def refuse_cluster(client, endpoint: str) -> None:
    """ServerUnsupported when the server is a Redis Cluster node (where INFO may be read)."""
    try:
        cluster = client.info("cluster")
    except redis_exceptions.ResponseError:
        return  # INFO denied by ACL: the capabilities check asks again, and says so
    if as_int(decode(cluster).get("cluster_enabled"), 0):
        raise ServerUnsupported(
            f"{endpoint} is a Redis Cluster node: Redis Cluster is not supported ({CLUSTER_REASON})",
            hint="connect to a standalone primary, or to a replica set through its Sentinels (sentinel)",
        )


def _replica_entry(value: Any) -> Dict[str, Any]:
    """One `slaveN` field of INFO replication (redis-py parses it into a dict; a raw string is split)."""
    if isinstance(value, str):
        value = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
    fields = decode(value)
    return {
        "address": f"{fields.get('ip')}:{fields.get('port')}",
        "state": fields.get("state"),
        "offset": as_int(fields.get("offset"), 0),
        "lag_seconds": as_int(fields.get("lag"), None),
    }


def replication_info(client) -> Dict[str, Any]:
    """The server's role; for a primary its connected replicas with their offsets, how many bytes each is
    behind and the seconds since it last acknowledged; for a replica its primary and link."""
    info = decode(client.info("replication"))
    role = "primary" if info.get("role") == "master" else "replica"
    found: Dict[str, Any] = {"role": role, "replication_offset": as_int(info.get("master_repl_offset"), 0)}
    if role == "primary":
        replicas: List[Dict[str, Any]] = []
        for key in sorted(info, key=lambda k: as_int(k[len("slave") :], 0) if str(k)[5:].isdigit() else -1):
            if str(key).startswith("slave") and str(key)[5:].isdigit():
                entry = _replica_entry(info[key])
                entry["behind_bytes"] = max(found["replication_offset"] - entry["offset"], 0)
                replicas.append(entry)
        found["connected_replicas"] = as_int(info.get("connected_slaves"), 0)
        found["replicas"] = replicas
    else:
        found["primary"] = f"{info.get('master_host')}:{info.get('master_port')}"
        found["link"] = info.get("master_link_status")
        found["replication_offset"] = as_int(info.get("slave_repl_offset"), 0)
    return found


def connected_replicas(client) -> int:
    """How many replicas are connected to this primary now (0 for a standalone server)."""
    return as_int(decode(client.info("replication")).get("connected_slaves"), 0) or 0
