# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The batch state file: where a batch run stands, index by index, rewritten atomically after each.

A state file belongs to one batch plan (its checksum) and one backup directory; a run with another
plan or another backup directory is refused, so the state, the per-index backups and what was
reviewed always go together. It is self-checksummed like a backup header: a hand-edited state is
refused rather than trusted - and as anyone can recompute that checksum, what it claims is also
checked against the batch plan, each index's backup header and the live server
(require_state_matches).

    pending  -> running -> succeeded | failed
    failed   -> running                              (only with retry_failed)
    skipped                                          (not applicable, from the plan; never runs)
A process killed mid-index leaves it `running`: the next run continues it (migrate() resumes by itself).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, List, Optional

from ..apply.preflight import target_matches
from ..backup.store import BackupStore
from ..core.deps import BaseModel, Field, ValidationError
from ..core.errors import BackupInvalid, PlanInvalid, PreflightFailed
from ..core.files import write_atomic
from ..core.sealed import RecordKind, SealedRecord
from .plan import BatchEntry, BatchPlan

STATE_FORMAT = "indexops.redis_search/batch-state"
STATE_VERSION = 1
_RESTORE_HINT = "restore it from a copy; each index's own backup still says where it stands"
PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED = "pending", "running", "succeeded", "failed", "skipped"
INDEX_STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED)
# The batch as a whole.
NOT_STARTED, IN_PROGRESS, COMPLETED, PARTIAL_FAILURE, STOPPED = (
    "not_started",
    "running",
    "completed",
    "partial_failure",
    "failed",
)


class IndexRun(BaseModel):
    name: str
    status: str = PENDING
    source_index: Optional[str] = None
    target_index: Optional[str] = None
    plan_checksum: Optional[str] = None
    skip_reason: Optional[str] = None
    result: Optional[str] = None  # migrate()'s: succeeded | already_completed | nothing_to_do | failed
    changed: bool = False
    attempts: int = 0
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    duration_seconds: float = 0.0
    documents: int = 0
    backup_path: Optional[str] = None
    report_path: Optional[str] = None
    validation_passed: Optional[bool] = None
    # On failure: message, kind, hint, phase, index_dropped (whether the source index was dropped).
    error: Optional[Dict[str, Any]] = None


class BatchState(SealedRecord):
    KIND: ClassVar[RecordKind] = RecordKind(
        STATE_FORMAT, STATE_VERSION, "batch state", "batch state file", PlanInvalid, _RESTORE_HINT
    )

    format: str = STATE_FORMAT
    format_version: int = STATE_VERSION
    batch_id: str
    batch_plan_checksum: str
    batch_plan_file: str
    backup_dir: str
    failure_policy: str
    status: str = NOT_STARTED
    current: Optional[str] = None
    runs: int = 0
    indexes: List[IndexRun] = Field(default_factory=list)

    def entry(self, name: str) -> IndexRun:
        return next(run for run in self.indexes if run.name == name)

    def counts(self) -> Dict[str, int]:
        found = {status: 0 for status in INDEX_STATUSES}
        for run in self.indexes:
            found[run.status] += 1
        return found


def new_state(batch: BatchPlan, batch_plan_file: str, backup_dir: str) -> BatchState:
    runs = []
    for entry in batch.indexes:
        runs.append(
            IndexRun(
                name=entry.name,
                status=PENDING if entry.applicable else SKIPPED,
                source_index=entry.source_index,
                target_index=entry.target_index,
                plan_checksum=entry.plan_checksum,
                skip_reason=entry.skip_reason,
            )
        )
    return BatchState(
        batch_id=batch.batch_id,
        batch_plan_checksum=batch.checksum,
        batch_plan_file=os.path.abspath(batch_plan_file),
        backup_dir=os.path.abspath(backup_dir) if backup_dir else "",
        failure_policy=batch.failure_policy,
        indexes=runs,
    )


def default_paths(batch_plan_file: str) -> tuple[str, str]:
    """(state file, report file) next to the batch plan: `<plan>.state.json`, `<plan>.report.yaml`.
    Beside the plan rather than in a backup directory, so that a run given another backup_dir finds
    this state and is refused instead of starting over."""
    base, ext = os.path.splitext(os.path.abspath(batch_plan_file))
    if ext not in (".yaml", ".yml"):
        base += ext
    return base + ".state.json", base + ".report.yaml"


def report_path_for(state_file: str) -> str:
    base = os.path.abspath(state_file)
    if base.endswith(".state.json"):
        base = base[: -len(".state.json")]
    return base + ".report.yaml"


def locate_state(batch_plan_file: Optional[str], state_file: Optional[str]) -> tuple[str, str]:
    """(state file, report file): the given state file, else the default beside the batch plan."""
    if state_file:
        return os.path.abspath(state_file), report_path_for(state_file)
    if not batch_plan_file:
        raise PlanInvalid("give the batch plan (plan_file) or its state_file")
    return default_paths(batch_plan_file)


def read_state(path: str) -> BatchState:
    try:
        state = BatchState.read_from(path)
    except OSError as err:
        raise PlanInvalid(f"cannot read batch state file {path}: {err.strerror}") from None
    except (ValueError, ValidationError) as err:
        raise PlanInvalid(
            f"batch state file {path} is unreadable: {str(err).splitlines()[0]}", hint=_RESTORE_HINT
        ) from None
    return state.verified(path)


def save_state(state: BatchState, path: str) -> None:
    write_atomic(os.path.abspath(path), state.sealed_json())


def require_trusted(
    state: BatchState, state_file: str, batch: Optional[BatchPlan], backup_dir: Optional[str], client=None
) -> None:
    """Before a state is used: it belongs to `batch` and `backup_dir` (when a batch plan is given), and what it
    claims holds against the batch plan, the backups and (with `client`) the server."""
    if batch is not None:
        require_same_batch(state, batch, backup_dir, state_file)
    require_state_matches(state, state_file, batch, client)


def require_same_batch(state: BatchState, batch: BatchPlan, backup_dir: Optional[str], state_file: str) -> None:
    """A state continues only the batch plan and the backup directory it was started with."""
    if state.batch_plan_checksum != batch.checksum:
        raise PreflightFailed(
            f"the batch state {state_file} belongs to batch {state.batch_id}, not to this batch plan "
            f"({batch.batch_id}); nothing was changed",
            hint="resume with the batch plan it was started with, or give this plan its own state_file",
        )
    if backup_dir and os.path.abspath(backup_dir) != state.backup_dir:
        raise PreflightFailed(
            f"batch {state.batch_id} was started with backup_dir {state.backup_dir}, not "
            f"{os.path.abspath(backup_dir)}; nothing was changed",
            hint="use the same backup_dir: every index's backup and resume point is there",
        )


def require_state_matches(state: BatchState, state_file: str, batch: Optional[BatchPlan] = None, client=None) -> None:
    """What the state claims, checked against the batch plan, each index's backup header and (with `client`)
    the live server. Its checksum is plain SHA-256: a state re-sealed by hand must not turn an index dropped
    half-way into `succeeded` (and the batch into `completed`), nor skip an index the plan applies."""
    entries = {entry.name: entry for entry in batch.indexes} if batch is not None else None
    if entries is not None and [run.name for run in state.indexes] != list(entries):
        raise PreflightFailed(
            f"the batch state {state_file} does not list the batch plan's indexes; nothing was changed",
            hint=_STATE_HINT,
        )
    for run in state.indexes:
        entry = entries[run.name] if entries is not None else None
        if entry is not None and (
            run.plan_checksum != entry.plan_checksum or (run.status == SKIPPED) != (not entry.applicable)
        ):
            raise PreflightFailed(
                f"the batch state {state_file} does not match its batch plan for {run.name} "
                f"({run.status}); nothing was changed",
                hint=_STATE_HINT,
            )
        why = _contradiction(state, run, entry, client) if run.status == SUCCEEDED else None
        if why:
            raise PreflightFailed(
                f"the batch state {state_file} says {run.name} succeeded, but {why}; nothing was changed",
                hint=_STATE_HINT,
            )


_STATE_HINT = (
    "the state file was edited, or the index changed since: each index's backup says where its migration "
    "stands - resume it with redis_index_migrate (plan_file: the backup's plan.yaml) or roll it back with "
    "redis_index_rollback, then plan the batch again"
)


def _contradiction(state: BatchState, run: IndexRun, entry: Optional[BatchEntry], client) -> Optional[str]:
    """Why the index's backup (or the server) says its migration did not succeed; None when nothing does."""
    try:
        store = BackupStore.for_plan(state.backup_dir, run.plan_checksum) if run.plan_checksum else None
    except BackupInvalid as err:
        return f"its backup is damaged ({err.message})"
    if store is None:
        return f"{state.backup_dir} holds no backup of its plan"
    header = store.header
    if header.status == "rolled_back":
        return None  # rolled back after the batch migrated it: the state's account still holds
    if header.status != "completed":
        return f"its backup {store.directory} says {header.status} in phase {header.phase}"
    if client is not None and entry is not None:
        plan = entry.migration_plan()
        if not target_matches(client, plan):
            return f"the server does not hold its new index {plan.final_index!r} with the plan's definition"
    return None


def work_list(state: BatchState, retry_failed: bool) -> List[IndexRun]:
    """The indexes the next run migrates, in batch order: pending, interrupted (running) and, with
    retry_failed, failed ones."""
    wanted = {PENDING, RUNNING} | ({FAILED} if retry_failed else set())
    return [run for run in state.indexes if run.status in wanted]


def overall_status(state: BatchState) -> str:
    counts = state.counts()
    if counts[RUNNING]:
        return IN_PROGRESS
    if counts[PENDING] and not (counts[SUCCEEDED] or counts[FAILED]):
        return NOT_STARTED
    if counts[PENDING]:
        return STOPPED if counts[FAILED] else IN_PROGRESS
    return PARTIAL_FAILURE if counts[FAILED] else COMPLETED
