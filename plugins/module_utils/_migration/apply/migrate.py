# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a plan: preflight, then the phases in order, each resumable, under the index's lock.

    preflight   live index equals the plan's snapshot, fully indexed; target name free; the server
                accepts the target's vectors; backup directory writable with room; lock taken
    backup      enumerate the documents and write every byte that will change (source still live)
    drop        collision checks for renamed keys, then FT.DROPINDEX (documents stay)
    move_fields renamed fields move in each document
    rename_keys prefix change: keys are renamed
    quantize    vectors re-encoded from the backup's originals
    create      FT.CREATE of the exact target; aliases re-pointed
    wait        until the new index has indexed everything
    validate    schema, document count, sampled keys, KNN self-queries

Re-running the same call continues from the first phase not done. Nothing is deleted: the backup
stays for audits and rollback, and a failure leaves a header that says where it stopped.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Iterator, Optional

from ..backup.links import refuse_links
from ..backup.store import HEADER, PLAN, BackupHeader, BackupStore, PhaseState, check_backup_dir, safe_name
from ..core import failpoints
from ..core.deps import BaseModel
from ..core.errors import IndexOpsError, MigrationFailed, PreflightFailed
from ..core.sealed import utc_now
from ..planning.modes import ONLINE
from ..planning.plan import MigrationPlan
from ..redis.connection import lost_connection
from ..redis.durability import Durability
from ..redis.lock import acquire_locks, release_locks
from ..redis.scripts import Scripts
from ..redis.sentinel import follow_failover
from ..redis.snapshot import index_exists, read_schema, real_name
from .benchmark import migration_benchmark, write_benchmark
from .phases import backup, create, drop, online, online_rewrite, resume_check, rewrite, validate
from .phases.context import Context, MigrateOptions
from .preflight import check_dir_readonly, preflight, require_applicable, resume_checks, target_matches
from .report import REPORT_FILE, MigrationReport, build_report, save_report


class Outcome(BaseModel):
    changed: bool
    report: MigrationReport


def _needed(plan: MigrationPlan, phase: str) -> bool:
    rewrites = plan.rewrites
    return {
        "backup": rewrites.any,
        "move_fields": bool(rewrites.moves),
        "rename_keys": rewrites.prefix is not None,
        "quantize": bool(rewrites.quantize),
    }.get(phase, True)


def _run_validate(ctx: Context) -> None:
    result = validate.run(ctx)
    ctx.store.phase("validate").counters.update(result.model_dump())
    if not result.passed:
        raise MigrationFailed(
            "validation failed: " + "; ".join(result.problems),
            hint="the data is intact and backed up; inspect, then re-run or roll back",
            details={"validation": result.model_dump()},
        )


def _count(phase: str, function: Callable[[Context], dict]) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        ctx.store.phase(phase).counters.update(function(ctx))

    return run


DROP_RECREATE_PHASES = [
    ("backup", backup.run),
    ("drop", drop.run),
    ("move_fields", _count("move_fields", rewrite.move_fields)),
    ("rename_keys", _count("rename_keys", rewrite.rename_keys)),
    ("quantize", _count("quantize", rewrite.quantize)),
    ("create", create.run_create),
    ("wait", create.run_wait),
    ("validate", _run_validate),
]
ONLINE_PHASES = [
    ("create", online.run_create),
    ("wait", online.run_wait),
    ("validate", online.run_validate),
    ("swap", online.run_swap),
]
# Phases an online migration redoes after a failure before its swap, once the new index is dropped.
ONLINE_BUILD = ("create", "wait", "validate")


def phases_of(plan: MigrationPlan) -> list:
    if plan.mode != ONLINE:
        return DROP_RECREATE_PHASES
    build_and_swap = online.with_cutover(plan.online, ONLINE_PHASES)
    if plan.online_layout is not None:
        return online_rewrite.phases(plan.online_layout, build_and_swap)
    return build_and_swap


def migrate(
    client,
    connect: Callable[[], object],
    plan: MigrationPlan,
    backup_dir: Optional[str],
    options: MigrateOptions,
    check_mode: bool = False,
    report_out: Optional[str] = None,
    endpoint: Optional[str] = None,
    benchmark_out: Optional[str] = None,
) -> Outcome:
    run_began = time.monotonic()
    if plan.classification.nothing_to_do:
        return Outcome(changed=False, report=build_report(plan, "nothing_to_do"))
    require_applicable(plan, options, endpoint, {"report_out": report_out, "benchmark_out": benchmark_out})
    root = check_dir_readonly(backup_dir) if check_mode else check_backup_dir(backup_dir)
    store = _earlier_attempt(plan, root)
    resume = store is not None and store.header.status in ("running", "failed", online.SIDE_BY_SIDE)
    done = _done_already(client, plan, options, store)
    if done is not None:
        return done
    durability = Durability.for_run(client, options.replication)  # refuses too few replicas, in check mode too
    if check_mode:
        return _dry_run(client, plan, options, root, store, resume)
    locks = acquire_locks(client, [plan.source.index, plan.target_index, plan.final_index], "migration", plan.plan_id)
    phase = "preflight"
    try:
        if resume:
            resume_checks(client, plan, store)
        else:
            store = _start(client, plan, options, root, store)
        ctx = Context(
            client=client,
            connect=connect,
            plan=plan,
            source=plan.source_schema(),
            target=plan.target(),
            store=store,
            options=options,
            lock=locks[0],
            scripts=Scripts(client),
            durability=durability,
        )
        if resume:
            resume_check.check(ctx)
        for phase in _run_phases(ctx):  # noqa: B007 - the phase a failure stopped in is reported below
            pass
    except online.SideBySide:
        store.header.status = store.header.phase = online.SIDE_BY_SIDE
        store.save()
        return Outcome(changed=True, report=build_report(plan, online.SIDE_BY_SIDE, store))
    except Exception as err:  # pylint: disable=broad-exception-caught
        # A failover: what follows (clean-up, where it stopped, the locks released) goes to the new primary.
        failover = follow_failover(client, options.replication.failover_timeout)
        if plan.mode == ONLINE:
            _clean_up_online(client, plan, store)
        failure = _failed(client, plan, store, phase, err, report_out)
        failure.message += failover
        if store is not None:
            _save_benchmark(build_report(plan, "failed", store), run_began, benchmark_out)
        raise failure from None
    finally:
        release_locks(locks)
    report = build_report(plan, "succeeded", store)
    _save_completed_report(report, store, report_out)
    _save_benchmark(report, run_began, benchmark_out)
    return Outcome(changed=True, report=report)


def _done_already(
    client, plan: MigrationPlan, options: MigrateOptions, store: Optional[BackupStore]
) -> Optional[Outcome]:
    """Nothing to write: the migration completed, or stopped side by side (until a run with `finish`)."""
    if store is not None and store.header.status == "completed" and target_matches(client, plan):
        return Outcome(changed=False, report=build_report(plan, "already_completed", store))
    if store is not None and store.header.status == online.SIDE_BY_SIDE and not options.finish:
        return Outcome(changed=False, report=build_report(plan, online.SIDE_BY_SIDE, store))
    return None


def _dry_run(
    client, plan: MigrationPlan, options: MigrateOptions, root: str, store: Optional[BackupStore], resume: bool
) -> Outcome:
    """Check mode: would_migrate after a read-only preflight, or would_resume."""
    if not resume:
        preflight(client, plan, options.model_copy(update={"wait_timeout": 0}), root, check_mode=True)
    return Outcome(changed=True, report=build_report(plan, "would_resume" if resume else "would_migrate", store))


def _earlier_attempt(plan: MigrationPlan, root: str) -> Optional[BackupStore]:
    """The newest backup of this plan in `root`, if any; refused while a rollback of it is unfinished."""
    store = BackupStore.for_plan(root, plan.checksum) if os.path.isdir(root) else None
    if store is None:
        return None
    refuse_links(store.directory)
    if store.header.status == "rolling_back":
        raise PreflightFailed(
            f"a rollback of this plan ({store.directory}) did not finish; the documents are between two states",
            hint="run redis_index_rollback again to finish it (with "
            "accept_validation_failure=true if its validation keeps failing), "
            "then migrate",
        )
    return store


def _start(
    client, plan: MigrationPlan, options: MigrateOptions, root: str, earlier: Optional[BackupStore]
) -> BackupStore:
    """A new attempt: the preflight, then its backup directory, whose header says where the attempt is."""
    docs = preflight(client, plan, options, root)
    attempt = earlier.header.attempt + 1 if earlier is not None else 1
    header = BackupHeader(
        plan_checksum=plan.checksum,
        plan_id=plan.plan_id,
        attempt=attempt,
        source_index=plan.source.index,
        target_index=plan.target_index,
        storage=plan.rewrites.storage,
        batch_size=options.batch_size,
    )
    header.phases["backup"].counters["source_num_docs"] = docs
    _clear_half_created(root, header)
    return BackupStore.create(root, header, plan.to_yaml())


def _run_phases(ctx: Context) -> Iterator[str]:
    """Run each phase not done yet, in order, each recorded in the header as it starts and ends. Yields
    each phase's name before it runs, so that the caller knows where a failure stopped."""
    store, plan = ctx.store, ctx.plan
    store.header.status, store.header.error = "running", None
    for phase, run in phases_of(plan):
        yield phase
        state = store.phase(phase)
        if state.done:
            continue
        # The replicas hold what the phase starts from (before the drop: every document the backup read),
        # and, before it is recorded done, what it wrote.
        ctx.confirm_replicated(f"the start of phase {phase}")
        store.header.phase = phase
        state.started_at = state.started_at or utc_now()
        store.save()
        failpoints.hit(phase, "start")
        began = time.monotonic()
        if _needed(plan, phase):
            run(ctx)
        ctx.confirm_replicated(f"the end of phase {phase}")
        state.done, state.finished_at = True, utc_now()
        state.seconds += round(time.monotonic() - began, 3)
        store.save()
    store.header.status, store.header.phase = "completed", "completed"
    store.save()


def _save_benchmark(report: MigrationReport, began: float, path: Optional[str]) -> None:
    """benchmark_out: the run's timings and throughput. Like the report, a file that cannot be written
    does not change the migration's outcome: a warning."""
    if not path:
        return
    try:
        write_benchmark(migration_benchmark(report, time.monotonic() - began), path)
    except OSError as err:
        report.warnings.append(f"the benchmark record could not be written to {path}: {err.strerror}")


def _clear_half_created(root: str, header: BackupHeader) -> None:
    """A run killed while it created its backup directory (after the mkdir, before the header) left a
    directory no listing knows (it has no header) under the very name this attempt needs. It holds at most
    what the creation writes - the plan, a temporary file - and nothing of Redis: remove it, or the same
    task run again is refused for good ("already exists"). Anything else in it is left, and refused."""
    name = f"{safe_name(header.source_index)}-{header.plan_id}" + (f"-{header.attempt}" if header.attempt > 1 else "")
    directory = os.path.join(root, name)
    if os.path.islink(directory) or not os.path.isdir(directory) or os.path.exists(os.path.join(directory, HEADER)):
        return
    leftovers = os.listdir(directory)
    if not all(entry == PLAN or entry.startswith(".tmp-") for entry in leftovers):
        return
    for entry in leftovers:
        os.unlink(os.path.join(directory, entry))
    os.rmdir(directory)


def _clean_up_online(client, plan: MigrationPlan, store: Optional[BackupStore]) -> None:
    """An online migration that failed before its swap drops the index it built (the source served all
    along), so that nothing is left beside the source; the next run builds it again."""
    if store is None or store.phase("swap").done:
        return
    try:
        if real_name(client, plan.source.index) != plan.source.index:
            return  # the swap happened after all (or the source is gone): keep what serves
        name = plan.final_index
        if real_name(client, name) == name:
            if not read_schema(client, name).matches(plan.final_schema()):
                return  # not ours
            client.execute_command("FT.DROPINDEX", name)
        for phase in ONLINE_BUILD:
            store.header.phases[phase] = PhaseState()
        # And the catch-up, before the swap of the rebuilt index (its records and counters stay).
        store.phase("catch_up").done = False
        store.header.phases["create"].counters["dropped_after_failure"] = name
    except Exception:  # pylint: disable=broad-exception-caught
        pass  # the re-run finds the index and goes on with it, or a rollback drops it


def _save_completed_report(report: MigrationReport, store: BackupStore, report_out: Optional[str]) -> None:
    """The migration is complete whatever happens here: a report that cannot be written is a warning."""
    for path in (store.path(REPORT_FILE), report_out):
        if not path:
            continue
        try:
            save_report(report, path)
        except OSError as err:
            report.warnings.append(
                f"the migration completed, but its report could not be written to {path}: {err.strerror}"
            )


def _describe(err: Exception, phase: str, store: Optional[BackupStore]) -> str:
    if isinstance(err, IndexOpsError):
        return err.message
    if lost_connection(err):
        return lost_connection(err)
    if isinstance(err, OSError) and store is not None:
        # Every file a running phase writes is in the backup directory (a full disk, a quota, a file-size limit).
        return f"cannot write the backup in {store.directory}: {err.strerror or err}"
    return f"{type(err).__name__}: {err}"


def _failed(
    client, plan: MigrationPlan, store: Optional[BackupStore], phase: str, err: Exception, report_out: Optional[str]
) -> IndexOpsError:
    """Record where it stopped and return the error to raise, with what the operator needs: the phase,
    whether Redis was changed, the backup and how to go on."""
    message = _describe(err, phase, store)
    dropped = store is not None and store.phase("drop").done
    swapped = False
    try:
        # After the drop, a target of the same name may hold the name: the old index is gone all the same.
        source_exists = not dropped and index_exists(client, plan.source.index)
        target_exists = dropped and index_exists(client, plan.target_index)
        # An online swap whose reply was lost did happen: the source's name leads to the new index.
        swapped = plan.mode == ONLINE and real_name(client, plan.source.index) == plan.final_index
    except Exception:  # pylint: disable=broad-exception-caught
        source_exists = target_exists = None
    report_path = None
    recorded = True
    if store is not None:
        store.header.status = "failed"
        store.header.error = {"phase": phase, "message": message, "at": utc_now()}
        try:
            store.save()
            report_path = store.path(REPORT_FILE)
            save_report(build_report(plan, "failed", store), report_path, report_out)
        except OSError as save_err:
            # A full disk: the header on disk still says where it was; the re-run works from that.
            recorded = False
            message += f" (the backup header could not be updated either: {save_err.strerror})"
    details = {
        "phase": phase,
        "source_index_exists": source_exists,
        "target_index_exists": target_exists,
        "backup_path": store.directory if store else None,
        "report_path": report_out or report_path,
        "failure_recorded": recorded,
    }
    said = "nothing was changed" in message
    changed = "the index was dropped" if dropped else ("" if said else "nothing in Redis was changed yet")
    if swapped:
        changed = f"the swap happened: {plan.source.index} leads to {plan.final_index}"
    where = "".join(f"; {part}" for part in (changed, f"backup {store.directory}" if store else "") if part)
    hint = getattr(err, "hint", None) or "fix the cause, then re-run the same task: it resumes from this phase"
    if dropped and "redis_index_rollback" not in hint:
        hint += "; or roll back with redis_index_rollback"
    if isinstance(err, IndexOpsError):
        err.details.update(details)
        err.message = f"migration stopped in phase {phase}: {message}{where}"
        err.hint = hint
        return err
    return MigrationFailed(f"migration stopped in phase {phase}: {message}{where}", hint=hint, details=details)
