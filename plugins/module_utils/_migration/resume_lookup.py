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
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

from .backup_store import PLAN, BackupHeader, list_backups
from .errors import PlanInvalid, PreflightFailed
from .plan import MigrationPlan, read_plan

UNFINISHED = ("running", "failed", "rolling_back")


def changed_redis(header: BackupHeader) -> bool:
    """Whether the migration got as far as changing Redis (the drop; an online run's first index)."""
    return any(header.phases[name].done or header.phases[name].started_at
               for name in ("drop", "create") if name in header.phases)


def unfinished_plan(backup_dir: Optional[str], index: str, requested: Dict[str, Any]) -> Optional[MigrationPlan]:
    """The plan of the newest unfinished migration of `index` (its name before or after, or the alias it
    was planned through) that changed Redis and asked for `requested`; None when there is none."""
    if not backup_dir or not os.path.isdir(os.path.expanduser(backup_dir)):
        return None
    for directory, header, _error in reversed(list_backups(os.path.abspath(os.path.expanduser(backup_dir)))):
        if header is None or header.status not in UNFINISHED or not changed_redis(header):
            continue
        if index not in (header.source_index, header.target_index):
            try:
                plan = read_plan(os.path.join(directory, PLAN))
            except PlanInvalid:
                continue
            if index != plan.source.requested_as:
                continue
        plan = read_plan(os.path.join(directory, PLAN))
        if plan.checksum != header.plan_checksum:
            continue  # not this backup's plan: the backup's own checks refuse it when it is used
        if plan.requested_changes == requested:
            return plan
        raise PreflightFailed(
            f"an unfinished migration of {index} ({directory}, stopped in phase {header.phase}) changed Redis "
            "and asked for other changes; nothing was changed",
            hint=f"finish it first (re-run it with plan_file: {os.path.join(directory, PLAN)}) or roll it back with "
                 "redis_index_rollback, then run this task")
    return None
