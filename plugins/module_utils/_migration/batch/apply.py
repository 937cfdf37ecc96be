# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a reviewed batch plan: each index, in order, through migrate() - the same engine, lock,
backup and validation as redis_index_migrate - into one backup directory.

Before the first index: the batch plan and every per-index plan verify (checksums), they were made
against this server, the state file (if any) belongs to this plan and this backup directory, and
every lossy conversion the run would make is accepted. Then each index: marked running, migrated,
marked succeeded or failed, and the state file rewritten atomically. fail_fast stops at the first
failure; continue_on_error goes on. A failed index keeps its own backup and resume point, so
retry_failed continues it with the same plan - even after its drop. A batch lock (a Redis key, like
an index's) keeps two runs of one batch apart.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional

from ..apply.benchmark import batch_benchmark, migration_benchmark, write_benchmark
from ..apply.migrate import migrate
from ..apply.phases.context import MigrateOptions
from ..apply.preflight import lossy_changes, require_same_server, require_writable_file
from ..backup.store import BackupStore, check_backup_dir
from ..core import failpoints
from ..core.deps import BaseModel, Field
from ..core.errors import BackupInvalid, IndexOpsError, MigrationFailed, PreflightFailed
from ..core.files import write_atomic
from ..core.sealed import utc_now
from ..planning.plan import MigrationPlan
from ..redis.lock import acquire_locks, release_locks
from ..redis.sentinel import ask_primary, follow_failover, pinned_primary
from .plan import BatchPlan, read_batch_plan
from .state import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    RUNNING,
    SUCCEEDED,
    BatchState,
    IndexRun,
    locate_state,
    new_state,
    overall_status,
    read_state,
    require_trusted,
    save_state,
    work_list,
)
from .status import describe, report_text


class BatchFailed(MigrationFailed):
    """A batch run ended with failed indexes (the others' results are in `details`)."""

    kind = "batch_failed"


class BatchOutcome(BaseModel):
    changed: bool
    result: str
    status: Dict[str, Any] = Field(default_factory=dict)  # batch_status.describe()
    ran: List[str] = Field(default_factory=list)
    would: List[Dict[str, Any]] = Field(default_factory=list)  # check mode: what each index would do


def batch_lock_name(batch: BatchPlan) -> str:
    return f"batch:{batch.batch_id}"


def open_batch(batch_plan_file: Optional[str], state_file: Optional[str]) -> tuple[BatchPlan, str]:
    """(the batch plan, its path): the file given, else the one the state file was started with (its
    checksum is compared with the state's before anything runs)."""
    if batch_plan_file:
        return read_batch_plan(batch_plan_file), batch_plan_file
    state = read_state(state_file)
    return read_batch_plan(state.batch_plan_file), state.batch_plan_file


def _plans(batch: BatchPlan, runs: List[IndexRun], endpoint: Optional[str]) -> Dict[str, MigrationPlan]:
    entries = {entry.name: entry for entry in batch.indexes}
    plans = {}
    for run in runs:
        plan = entries[run.name].migration_plan()
        if plan.checksum != run.plan_checksum:
            raise PreflightFailed(
                f"the batch state's plan of {run.name} is not the batch plan's; nothing was changed",
                hint="the state file belongs to another plan; give this plan its own state_file",
            )
        require_same_server(plan, endpoint)
        plans[run.name] = plan
    return plans


def _require_accepted(plans: Dict[str, MigrationPlan], accept_data_loss: bool) -> None:
    """Every lossy conversion of the run, named at once, before the first index starts."""
    lossy = {name: lossy_changes(plan) for name, plan in plans.items()}
    lossy = {name: changes for name, changes in lossy.items() if changes}
    if lossy and not accept_data_loss:
        listed = "; ".join(
            f"{name}: " + ", ".join(f"{c.field} {c.before}->{c.after}" for c in changes)
            for name, changes in lossy.items()
        )
        raise PreflightFailed(
            f"lossy conversion(s) in {len(lossy)} index(es) need accept_data_loss=true ({listed}); "
            "no index was started",
            hint="read the plans' warnings; the originals are kept in each index's backup",
        )


def _error(err: Exception) -> Dict[str, Any]:
    """index_dropped stays False unless the index's backup says its drop is done (_record_backup)."""
    if isinstance(err, IndexOpsError):
        return {
            "message": err.message,
            "kind": err.kind,
            "hint": err.hint,
            "phase": err.details.get("phase"),
            "index_dropped": False,
        }
    return {
        "message": f"{type(err).__name__}: {err}",
        "kind": "unexpected",
        "hint": None,
        "phase": None,
        "index_dropped": False,
    }


def _record_backup(run: IndexRun, root: str, plan: MigrationPlan) -> None:
    try:
        store = BackupStore.for_plan(root, plan.checksum)
    except (BackupInvalid, OSError):
        store = None
    if store is not None:
        run.backup_path, run.report_path = store.directory, store.path("report.yaml")
        if run.error is not None:
            run.error["index_dropped"] = store.header.phases["drop"].done
            run.error["phase"] = run.error.get("phase") or store.header.phase


def _run_one(
    client,
    connect: Callable[[], Any],
    run: IndexRun,
    plan: MigrationPlan,
    root: str,
    options: MigrateOptions,
    endpoint: Optional[str],
    state: BatchState,
    state_file: str,
    benchmarks: Dict[str, Any],
) -> bool:
    """Migrate one index and record the outcome (and its timings in `benchmarks`). Returns whether
    anything was changed."""
    failpoints.hit("batch", run.name)  # between two indexes
    run.status, run.attempts, run.started_at, run.error = RUNNING, run.attempts + 1, utc_now(), None
    state.current = run.name
    save_state(state, state_file)
    began = time.monotonic()
    changed = False
    try:
        outcome = migrate(client, connect, plan, root, options, endpoint=endpoint)
    except Exception as err:  # pylint: disable=broad-exception-caught
        # Recorded, not raised: failure_policy decides whether the batch goes on. A failure outside the
        # migration's own handling (its first command, on a primary that died between two indexes) follows a
        # failover here, so that the state, the error and the batch's lock go to the primary the re-run uses.
        failover = follow_failover(client, options.replication.failover_timeout)
        run.status, run.result, run.error = FAILED, "failed", _error(err)
        run.error["message"] += failover
        # A failure once the migration has its backup directory has written to disk, if not to Redis.
        changed = isinstance(err, IndexOpsError) and bool(err.details.get("backup_path"))
        benchmarks[run.name] = {"result": "failed", "run_seconds": round(time.monotonic() - began, 3)}
    else:
        report = outcome.report
        run.status, run.result, changed = SUCCEEDED, report.result, outcome.changed
        run.documents = report.documents
        run.validation_passed = report.validation.get("passed") if report.validation else None
        benchmarks[run.name] = migration_benchmark(report, time.monotonic() - began)
    run.changed = run.changed or changed
    run.duration_seconds = round(run.duration_seconds + time.monotonic() - began, 3)
    run.finished_at = utc_now()
    _record_backup(run, root, plan)
    save_state(state, state_file)
    return changed


def _lost_primary(client, primary) -> bool:
    """Whether the batch's primary failed over (or went down) during its last index: then even
    continue_on_error stops, and the re-run continues on the new primary - the indexes left are not
    started on a primary the run did not begin on (nor, its replicas not back yet, without WAIT)."""
    return primary is not None and (pinned_primary(client) != primary or ask_primary(client) != primary)


def _dry_run(
    client, connect, plans: Dict[str, MigrationPlan], backup_dir: str, options: MigrateOptions, endpoint: Optional[str]
) -> tuple[bool, List[Dict[str, Any]]]:
    """Check mode: each index's own dry run (read-only preflight), nothing written anywhere."""
    changed, would = False, []
    for name, plan in plans.items():
        try:
            outcome = migrate(client, connect, plan, backup_dir, options, check_mode=True, endpoint=endpoint)
        except IndexOpsError as err:
            would.append({"name": name, "result": "would_fail", "error": err.message, "kind": err.kind})
            continue
        changed = changed or outcome.changed
        would.append({"name": name, "result": outcome.report.result})
    return changed, would


def apply_batch(
    client,
    connect: Callable[[], Any],
    batch: BatchPlan,
    batch_plan_file: str,
    backup_dir: Optional[str],
    options: MigrateOptions,
    *,
    retry_failed: bool = False,
    resume: bool = False,
    state_file: Optional[str] = None,
    endpoint: Optional[str] = None,
    check_mode: bool = False,
    report_out: Optional[str] = None,
    benchmark_out: Optional[str] = None,
) -> BatchOutcome:
    """Run (or continue) the batch. Raises BatchFailed, with the whole status in its details, when any
    index is failed at the end of the run."""
    began = time.monotonic()
    state_path, report_path = locate_state(batch_plan_file, state_file)
    existing = _continued_state(client, batch, state_path, backup_dir, resume=resume, check_mode=check_mode)
    backup_dir = backup_dir or (existing.backup_dir if existing else None)
    if not backup_dir:
        raise PreflightFailed("a backup directory is required", hint="set backup_dir to a writable directory")
    require_writable_file(state_path, "state_file")
    require_writable_file(report_out, "report_out")
    require_writable_file(benchmark_out, "benchmark_out")
    state = existing or new_state(batch, batch_plan_file, backup_dir)
    todo = work_list(state, retry_failed)
    plans = _plans(batch, todo, endpoint)
    _require_accepted(plans, options.accept_data_loss)

    if check_mode:
        changed, would = _dry_run(client, connect, plans, backup_dir, options, endpoint)
        status = describe(state, state_path, report_path)
        outcome = BatchOutcome(
            changed=changed, result="would_apply" if todo else status["result"], status=status, would=would
        )
        _refuse_would_fail(batch, outcome)
        return outcome

    changed, ran, benchmarks = False, [], {}
    if todo:
        root = check_backup_dir(backup_dir)
        locks = acquire_locks(client, [batch_lock_name(batch)], "batch", batch.batch_id)
        try:
            changed, ran = _run_in_order(
                client,
                batch,
                state,
                state_path,
                todo,
                lambda run: _run_one(
                    client, connect, run, plans[run.name], root, options, endpoint, state, state_path, benchmarks
                ),
            )
            _write_report(state, state_path, report_path, report_out)
        finally:
            release_locks(locks)
        if benchmark_out:
            write_benchmark(batch_benchmark(batch.batch_id, benchmarks, time.monotonic() - began), benchmark_out)
    status = describe(state, state_path, report_path if os.path.exists(report_path) else None)
    outcome = BatchOutcome(changed=changed, result=status["result"], status=status, ran=ran)
    _refuse_failed(batch, outcome)
    return outcome


def _continued_state(
    client, batch: BatchPlan, state_path: str, backup_dir: Optional[str], *, resume: bool, check_mode: bool
) -> Optional[BatchState]:
    """The state this run continues, trusted (require_trusted), or None to start a new one. A state of another
    batch plan that completed is set aside (renamed) for this plan; a resume needs a state."""
    existing = read_state(state_path) if os.path.exists(state_path) else None
    if (
        existing is not None
        and existing.batch_plan_checksum != batch.checksum
        and not resume
        and overall_status(existing) == COMPLETED
        and not check_mode
    ):
        # A finished batch has nothing left to continue: it is kept beside, and this plan starts afresh.
        os.replace(
            state_path,
            f"{state_path[: -len('.json')] if state_path.endswith('.json') else state_path}.{existing.batch_id}.json",
        )
        existing = None
    if existing is not None:
        require_trusted(existing, state_path, batch, backup_dir, client)
    elif resume:
        raise PreflightFailed(
            f"no batch state at {state_path} to resume; nothing was changed",
            hint="start the batch with state=applied (or name its state_file)",
        )
    return existing


def _run_in_order(
    client,
    batch: BatchPlan,
    state: BatchState,
    state_path: str,
    todo: List[IndexRun],
    migrate_one: Callable[[IndexRun], bool],
) -> tuple[bool, List[str]]:
    """(whether anything changed, the indexes run): each index to do in order, through `migrate_one` (_run_one),
    the state saved as the run starts and ends. A failure stops it with fail_fast, or when the primary was lost."""
    changed, ran = False, []
    state.runs += 1
    state.status = IN_PROGRESS
    save_state(state, state_path)
    primary = pinned_primary(client)
    for run in todo:
        ran.append(run.name)
        changed |= migrate_one(run)
        if run.status == FAILED and (batch.failure_policy == "fail_fast" or _lost_primary(client, primary)):
            break
    state.current = None
    state.status = overall_status(state)
    save_state(state, state_path)
    return changed, ran


def _refuse_would_fail(batch: BatchPlan, outcome: BatchOutcome) -> None:
    """Check mode: BatchFailed naming each index whose dry run fails (nothing was changed)."""
    failing = [f"{w['name']} would fail: {w['error']}" for w in outcome.would if w["result"] == "would_fail"]
    if failing:
        raise BatchFailed(
            f"batch {batch.batch_id}: " + "; ".join(failing),
            hint="nothing was changed; resolve the causes first",
            details=_details(outcome),
        )


def _refuse_failed(batch: BatchPlan, outcome: BatchOutcome) -> None:
    """BatchFailed, naming the first failure and the way on, when any index is failed after the run."""
    failed = outcome.status["failures"]
    if failed:
        first = failed[0]
        raise BatchFailed(
            f"batch {batch.batch_id}: {len(failed)} of {len(batch.applicable())} index(es) failed "
            f"(first {first['name']}: {first['error']})",
            hint=("; ".join(outcome.status["next"]) if outcome.status["next"] else None),
            details=_details(outcome),
        )


def _details(outcome: BatchOutcome) -> Dict[str, Any]:
    """What the module returns, on success and failure alike."""
    return {
        "changed": outcome.changed,
        "ran": outcome.ran,
        "would": outcome.would,
        **outcome.status,
        "result": outcome.result,
    }


def outcome_result(outcome: BatchOutcome) -> Dict[str, Any]:
    return _details(outcome)


def _write_report(state: BatchState, state_path: str, report_path: str, report_out: Optional[str]) -> None:
    text = report_text(state, state_path).encode("utf-8")
    for path in (report_path, report_out):
        if path:
            write_atomic(os.path.abspath(path), text)
