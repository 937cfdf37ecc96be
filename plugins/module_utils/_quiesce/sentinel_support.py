# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a quiesced user keeps so that Sentinel can still fail the replica set over during a window.

A Sentinel connects to every server of the set as one ACL user (`sentinel auth-user`, or `default`), and
to promote a replica it sends `MULTI / SLAVEOF NO ONE / CONFIG REWRITE / CLIENT KILL TYPE normal / EXEC`;
it sends `SLAVEOF` to the other servers, and `SCRIPT KILL` to a busy primary. A quiesce denies all of these
(they can break a window), and a transaction with one denied command does not run at all: with its user
quiesced, Sentinel's failover stalled at "wait-promotion" and aborted again and again. So the users the
Sentinels connect as - seen on each server's connections, which Sentinel names `sentinel-<id>-cmd` and
`sentinel-<id>-pubsub` - are quiesced without denying these commands; they still lose every write.
"""

from __future__ import annotations

from typing import List, Sequence

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.deps import redis_exceptions
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.resp import decode

# What Sentinel sends to the servers it watches, of what a quiesce denies.
SENTINEL_COMMANDS = ("slaveof", "replicaof", "config|rewrite", "client|kill", "script|kill")


def _is_sentinel(name: str) -> bool:
    return name.startswith("sentinel-") and name.endswith(("-cmd", "-pubsub"))


def users_of_sentinels(client, endpoint: str, warnings: List[str]) -> List[str]:
    """The ACL users of the Sentinels' connections to this server (CLIENT LIST), sorted."""
    try:
        clients = client.client_list()
    except redis_exceptions.ResponseError:  # NoPermissionError included
        warnings.append(
            f"{endpoint}: the migrating user may not run CLIENT LIST: which user the Sentinels connect as is "
            "unknown, and a quiesce of that user would keep Sentinel from failing over during the window"
        )
        return []
    found = {
        str(decode(entry.get("user")))
        for entry in clients
        if _is_sentinel(str(decode(entry.get("name") or ""))) and entry.get("user")
    }
    return sorted(found)


def denied_to(user: str, deny: Sequence[str], sentinel_users: Sequence[str]) -> List[str]:
    """The commands denied by name to `user`: all of `deny`, less what Sentinel needs when it connects as `user`."""
    if user not in sentinel_users:
        return list(deny)
    return [name for name in deny if name not in SENTINEL_COMMANDS]


def kept_warning(endpoint: str, users: Sequence[str]) -> str:
    return (
        f"{endpoint}: the Sentinels connect as ACL user(s) {', '.join(users)}: quiesced, but they keep "
        f"{', '.join(name.upper().replace('|', ' ') for name in SENTINEL_COMMANDS)} so that Sentinel can fail over "
        "during the window; an application logging in as them may run these too - give the Sentinels a user of "
        "their own (sentinel auth-user)"
    )
