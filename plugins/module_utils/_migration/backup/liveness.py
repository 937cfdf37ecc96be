# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a migration or rollback a backup header calls unfinished still has a process working on it.

A header says `running` (or `rolling_back`) from the phase that starts until the run records how it
ended; a process killed meanwhile (a cancelled or killed job, a host that went down) leaves it saying
so for good. The run holds the index's lock all along, so the lock tells: no lock, or a lock whose
owner is a dead process of this host, means nobody works on it - it was interrupted. A lock owned by a
process on another host cannot be checked from here: it counts as live until its TTL runs out (the
owner refreshes it every 15 s, so within a minute of the owner's death).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..redis.lock import read_lock
from .store import read_header

UNFINISHED = {"running": "migration", "rolling_back": "rollback"}
WAY_OUT = {
    "running": "run the same redis_index_migrate task again (it resumes from phase {phase}), "
    "or roll it back with redis_index_rollback",
    "rolling_back": "run redis_index_rollback again to finish the rollback",
}


def _lock_view(lock: Dict[str, Any]) -> Dict[str, Any]:
    """The lock as an operator sees it: who holds it and for how long it lasts unrefreshed (no token)."""
    holder = lock["holder"]
    return {
        "purpose": holder.get("purpose"),
        "host": holder.get("host"),
        "pid": holder.get("pid"),
        "since": holder.get("since"),
        "ttl_ms": lock["ttl_ms"],
        "owner_gone": lock["stale"],
    }


def _reread(migration: Dict[str, Any]) -> Optional[str]:
    """The header's status now: a run that ended between our reading its header and its lock released the
    lock after recording how it ended."""
    try:
        return read_header(migration["path"]).status
    except Exception:  # pylint: disable=broad-exception-caught
        return None


def with_liveness(client, migrations: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """`migrations` (describe_backups) with each unfinished one checked against its index's lock: a live one
    gets `lock` (holder and TTL); one nobody works on any more gets status `interrupted`, the status its
    header records as `recorded_status`, and the way out as `hint`."""
    for migration in migrations:
        recorded = migration.get("status")
        if recorded not in UNFINISHED:
            continue
        lock = read_lock(client, migration["source_index"])
        if lock is not None and not lock["stale"]:
            migration["lock"] = _lock_view(lock)
            continue
        now = _reread(migration) if lock is None else recorded
        if now != recorded:
            migration["status"] = now  # it ended meanwhile; describe_backups on the next call shows the rest
            continue
        if lock is not None:
            migration["lock"] = _lock_view(lock)
        migration.update(
            status="interrupted",
            recorded_status=recorded,
            hint=f"the {UNFINISHED[recorded]} of {migration['source_index']} stopped in phase {migration['phase']} "
            "and no process works on it any more (its job was cancelled or killed, or its host went down): "
            + WAY_OUT[recorded].format(phase=migration["phase"]),
        )
    return migrations
