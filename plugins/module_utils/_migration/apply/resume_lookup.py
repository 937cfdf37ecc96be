# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The unfinished migration an on-the-fly task left behind, so that running the same task again
continues it.

A task that plans and applies in one go (`index` with a patch or target schema) cannot plan again
once its migration has changed Redis: the source index may be gone (dropped), or the index it finds
is the half-made target, which would plan as "nothing to do". So before planning, the backup
directory is asked for a migration of this index that changed Redis and did not finish: the same
request resumes it from its own plan; another request is refused until it is finished or rolled
back. A migration that stopped before changing anything is not resumed - planning again is as safe
and sees the index as it is now.

After the migration completed, the request may no longer fit the index (a renamed field is gone
under its old name): the same task run again finds its completed migration, and reports it done
while the server still holds its target.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, Optional, Tuple

from ..backup.store import PLAN, BackupHeader, list_backups
from ..core.errors import PlanInvalid, PreflightFailed
from ..planning.plan import MigrationPlan, read_plan
from .preflight import target_matches

UNFINISHED = ("running", "failed", "side_by_side", "rolling_back")


def changed_redis(header: BackupHeader) -> bool:
    """Whether the migration got as far as changing Redis (the drop; an online run's first index)."""
    return any(
        header.phases[name].done or header.phases[name].started_at
        for name in ("drop", "expand", "create")
        if name in header.phases
    )


def _plans_of(
    backup_dir: Optional[str], index: str, statuses: tuple
) -> Iterator[Tuple[str, BackupHeader, MigrationPlan]]:
    """(directory, header, plan) of each migration of `index` (its name before or after, or the alias it was
    planned through) in one of `statuses`, newest first. A plan that is not its backup's is passed over (the
    backup's own checks refuse it when it is used); an unreadable plan of this index's backup is refused."""
    if not backup_dir or not os.path.isdir(os.path.expanduser(backup_dir)):
        return
    for directory, header, _error in reversed(list_backups(os.path.abspath(os.path.expanduser(backup_dir)))):
        if header is None or header.status not in statuses:
            continue
        try:
            plan = read_plan(os.path.join(directory, PLAN))
        except PlanInvalid:
            if index in (header.source_index, header.target_index):
                raise  # this index's own migration: never planned over as if it were not there
            continue
        if index not in (header.source_index, header.target_index, plan.source.requested_as):
            continue
        if plan.checksum == header.plan_checksum:
            yield directory, header, plan


def unfinished_plan(backup_dir: Optional[str], index: str, requested: Dict[str, Any]) -> Optional[MigrationPlan]:
    """The plan of the newest unfinished migration of `index` (its name before or after, or the alias it
    was planned through) that changed Redis and asked for `requested`; None when there is none."""
    for directory, header, plan in _plans_of(backup_dir, index, UNFINISHED):
        if not changed_redis(header):
            continue
        if plan.requested_changes == requested:
            return plan
        raise PreflightFailed(
            f"an unfinished migration of {index} ({directory}, stopped in phase {header.phase}) changed Redis "
            "and asked for other changes; nothing was changed",
            hint=f"finish it first (re-run it with plan_file: {os.path.join(directory, PLAN)}) or roll it back with "
            "redis_index_rollback, then run this task",
        )
    return None


def completed_plan(client, backup_dir: Optional[str], index: str, requested: Dict[str, Any]) -> Optional[MigrationPlan]:
    """The plan of the newest completed migration of `index` that asked for `requested`, while the server
    holds its target; None otherwise (the index changed since, or it was rolled back: plan again)."""
    for _directory, _header, plan in _plans_of(backup_dir, index, ("completed",)):
        if plan.requested_changes == requested:
            return plan if target_matches(client, plan) else None
    return None
