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
import shutil
import time
from typing import Callable, Optional

from ..core import failpoints
from .preflight import (
    require_create_accepted,
    require_same_server,
    require_supported_live,
    require_writable_file,
    verify_derivation,
)
from ..backup.links import refuse_links
from ..backup.store import HEADER, PLAN, BackupHeader, BackupStore, PhaseState, check_backup_dir, safe_name
from ..core.sealed import utc_now
from .benchmark import migration_benchmark, write_benchmark
from ..redis.capabilities import detect_capabilities, require_search_results
from ..schema.changes import VECTOR_DATATYPE
from ..vectors.codec import describe_conversion
from ..redis.connection import lost_connection
from ..core.deps import BaseModel
from ..core.errors import IndexOpsError, MigrationFailed, PlanBlocked, PreflightFailed
from ..planning.estimate import FREE_SPACE_MARGIN
from ..redis.lock import acquire_locks, release_locks
from .commands import migration_commands
from ..redis.permissions import require_permissions
from ..planning.modes import ONLINE, memory_now_fits
from .phases import backup, create, drop, online, resume_check, rewrite, validate
from .phases.context import Context, MigrateOptions
from ..planning.plan import MigrationPlan
from .report import REPORT_FILE, MigrationReport, build_report, save_report
from ..redis.scripts import Scripts
from ..redis.snapshot import SchemaSnapshot, holds, index_exists, live_schema, read_schema, real_name
from ..redis.waiting import StillIndexing, wait_until_indexed

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
        raise MigrationFailed("validation failed: " + "; ".join(result.problems),
                              hint="the data is intact and backed up; inspect, then re-run or roll back",
                              details={"validation": result.model_dump()})


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
    return ONLINE_PHASES if plan.mode == ONLINE else DROP_RECREATE_PHASES


def lossy_changes(plan: MigrationPlan) -> list:
    return [c for c in plan.changes if c.kind == VECTOR_DATATYPE and c.rewrites_documents
            and describe_conversion(c.before, c.after)["lossy"]]


def _source_unchanged(client, plan: MigrationPlan, live: Optional[SchemaSnapshot] = None) -> SchemaSnapshot:
    """The live source index's snapshot (read now, or `live` when read already), which must equal the plan's."""
    live = live or read_schema(client, plan.source.index)
    found = live.differs_from(plan.source_schema())
    if found:
        raise PreflightFailed(f"{plan.source.index} changed since the plan was made: {'; '.join(found[:3])}",
                              hint="re-run redis_index_plan and review the new plan")
    return live


def _wait_source_indexed(client, plan: MigrationPlan, timeout: float) -> int:
    try:
        return wait_until_indexed(client, plan.source.index, timeout, steady=False).num_docs
    except StillIndexing as err:
        raise PreflightFailed(f"{plan.source.index} is still indexing after {timeout:.0f} s ({err}); nothing was "
                              "changed", hint="wait for it, or raise wait_timeout") from None


def preflight(client, plan: MigrationPlan, options: MigrateOptions, backup_root: str, check_mode: bool = False) -> int:
    """Checks before the first write. Returns the source's document count. Read-only but for the create
    check's throwaway index, which check mode leaves to redis_index_plan."""
    # First: without the rights to read the index, nothing below could even look.
    require_permissions(client, migration_commands(plan, plan.server.cluster_enabled), "migration")
    # One read of the source answers whether it exists and whether it is still as planned.
    live = live_schema(client, plan.source.index)
    if live is None:
        raise PreflightFailed(f"index {plan.source.index} does not exist", hint="check the plan's index")
    live = _source_unchanged(client, plan, live)
    for name in dict.fromkeys([plan.target_index, plan.final_index]):
        if name != plan.source.index and index_exists(client, name):
            raise PreflightFailed(f"an index or alias named {name!r} exists", hint="choose another name")
    caps = detect_capabilities(client)
    # Validation reads the new index back through FT.SEARCH: a server that returns no rows cannot judge it.
    require_search_results(client, f"cannot migrate {plan.source.index}")
    if plan.mode == ONLINE:
        fits, why = memory_now_fits(plan.online, caps)
        if not fits:
            raise PreflightFailed(f"the online build no longer fits: {why}; nothing was changed",
                                  hint="free memory or raise maxmemory, or plan again with mode drop_recreate")
    for field in plan.target().vector_fields():
        if not caps.accepts_datatype(field.attrs.datatype) or not caps.accepts_algorithm(field.attrs.algorithm):
            raise PreflightFailed(f"the server does not accept {field.attrs.algorithm.upper()} "
                                  f"{field.attrs.datatype.upper()} vectors for {field.name!r}")
    # The plan's own verdict is never trusted: its changes are classified again against the server as it is
    # (the target's name was read free above).
    require_supported_live(client, plan, caps, live.unrecognized, target_free=True)
    if not check_mode:
        require_create_accepted(client, plan)
    need = int((plan.estimate.backup_bytes + plan.estimate.staged_bytes) * FREE_SPACE_MARGIN)
    existing = backup_root
    while not os.path.isdir(existing):  # check mode: the directory is not created
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if need > free:
        raise PreflightFailed(f"backup_dir {backup_root} has {free} bytes free, the backup needs about {need}",
                              hint="free space or choose another backup_dir")
    return _wait_source_indexed(client, plan, options.wait_timeout)


def _check_dir_readonly(path: Optional[str]) -> str:
    """Check mode: the same verdict as check_backup_dir, without creating anything."""
    if not path:
        return check_backup_dir(path)
    path = os.path.abspath(os.path.expanduser(path))
    probe = path if os.path.exists(path) else os.path.dirname(path)
    if os.path.exists(path) and not os.path.isdir(path):
        return check_backup_dir(path)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise PreflightFailed(f"backup_dir {path} cannot be created or written", hint="choose a writable directory")
    return path


def target_matches(client, plan: MigrationPlan) -> bool:
    """Whether the server holds the plan's new index, with the plan's target definition."""
    return holds(client, plan.final_index, plan.final_schema())


def _resume_checks(client, plan: MigrationPlan, store: BackupStore) -> None:
    """Before continuing a migration that stopped: the source, where nothing was changed yet, must be as
    planned, and allowed; what was changed is checked against the server by resume_check."""
    if store.phase("backup").done:
        store.require_intact()
    if plan.mode == ONLINE:
        started = store.phase("create").started_at
        if store.phase("swap").done or real_name(client, plan.source.index) != plan.source.index:
            return  # swapped (or the source is gone: the swap phase tells which)
        live = _source_unchanged(client, plan)
        if not started:
            caps = detect_capabilities(client)
            require_supported_live(client, plan, caps, live.unrecognized)
        return
    live = live_schema(client, plan.source.index) if not store.phase("drop").done else None
    if live is not None:
        _source_unchanged(client, plan, live)
        caps = detect_capabilities(client)
        require_supported_live(client, plan, caps, live.unrecognized)
        require_permissions(client, migration_commands(plan, caps.cluster_enabled), "migration")


def migrate(client, connect: Callable[[], object], plan: MigrationPlan, backup_dir: Optional[str],
            options: MigrateOptions, check_mode: bool = False, report_out: Optional[str] = None,
            endpoint: Optional[str] = None, benchmark_out: Optional[str] = None) -> Outcome:
    run_began = time.monotonic()
    if plan.classification.nothing_to_do:
        return Outcome(changed=False, report=build_report(plan, "nothing_to_do"))
    # A plan that says it is blocked is refused with its own reasons (an edited one would be refused too).
    if not plan.classification.supported:
        raise PlanBlocked("the plan has blocked changes: " + "; ".join(plan.classification.blocked_reasons))
    require_same_server(plan, endpoint)
    verify_derivation(plan)
    lossy = lossy_changes(plan)
    if lossy and not options.accept_data_loss:
        raise PreflightFailed(
            "lossy conversion(s) " + ", ".join(f"{c.field} {c.before}->{c.after}" for c in lossy)
            + " need accept_data_loss=true", hint="read the plan's warnings; the originals are kept in the backup")
    require_writable_file(report_out, "report_out")
    require_writable_file(benchmark_out, "benchmark_out")
    root = _check_dir_readonly(backup_dir) if check_mode else check_backup_dir(backup_dir)
    store = BackupStore.for_plan(root, plan.checksum) if os.path.isdir(root) else None
    if store is not None:
        refuse_links(store.directory)
    if store is not None and store.header.status == "completed" and target_matches(client, plan):
        return Outcome(changed=False, report=build_report(plan, "already_completed", store))
    if store is not None and store.header.status == "rolling_back":
        raise PreflightFailed(f"a rollback of this plan ({store.directory}) did not finish; the documents are between "
                              "two states", hint="run redis_index_rollback again to finish it (with "
                                                 "accept_validation_failure=true if its validation keeps failing), "
                                                 "then migrate")
    resume = store is not None and store.header.status in ("running", "failed")
    if check_mode:
        if not resume:
            preflight(client, plan, options.model_copy(update={"wait_timeout": 0}), root, check_mode=True)
        return Outcome(changed=True, report=build_report(plan, "would_resume" if resume else "would_migrate", store))

    locks = acquire_locks(client, [plan.source.index, plan.target_index, plan.final_index], "migration", plan.plan_id)
    phase = "preflight"
    try:
        if resume:
            _resume_checks(client, plan, store)
        else:
            docs = preflight(client, plan, options, root)
            attempt = store.header.attempt + 1 if store is not None else 1
            header = BackupHeader(plan_checksum=plan.checksum, plan_id=plan.plan_id, attempt=attempt,
                                  source_index=plan.source.index, target_index=plan.target_index,
                                  storage=plan.rewrites.storage, batch_size=options.batch_size)
            header.phases["backup"].counters["source_num_docs"] = docs
            _clear_half_created(root, header)
            store = BackupStore.create(root, header, plan.to_yaml())
        ctx = Context(client=client, connect=connect, plan=plan, source=plan.source_schema(), target=plan.target(),
                      store=store, options=options, lock=locks[0], scripts=Scripts(client))
        if resume:
            resume_check.check(ctx)
        store.header.status, store.header.error = "running", None
        for phase, run in phases_of(plan):
            state = store.phase(phase)
            if state.done:
                continue
            store.header.phase = phase
            state.started_at = state.started_at or utc_now()
            store.save()
            failpoints.hit(phase, "start")
            began = time.monotonic()
            if _needed(plan, phase):
                run(ctx)
            state.done, state.finished_at = True, utc_now()
            state.seconds += round(time.monotonic() - began, 3)
            store.save()
        store.header.status, store.header.phase = "completed", "completed"
        store.save()
    except Exception as err:  # pylint: disable=broad-exception-caught
        if plan.mode == ONLINE:
            _clean_up_online(client, plan, store)
        failure = _failed(client, plan, store, phase, err, report_out)
        if store is not None:
            _save_benchmark(build_report(plan, "failed", store), run_began, benchmark_out)
        raise failure from None
    finally:
        release_locks(locks)
    report = build_report(plan, "succeeded", store)
    _save_completed_report(report, store, report_out)
    _save_benchmark(report, run_began, benchmark_out)
    return Outcome(changed=True, report=report)


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
            report.warnings.append(f"the migration completed, but its report could not be written to {path}: "
                                   f"{err.strerror}")


def _describe(err: Exception, phase: str, store: Optional[BackupStore]) -> str:
    if isinstance(err, IndexOpsError):
        return err.message
    if lost_connection(err):
        return lost_connection(err)
    if isinstance(err, OSError) and store is not None:
        # Every file a running phase writes is in the backup directory (a full disk, a quota, a file-size limit).
        return f"cannot write the backup in {store.directory}: {err.strerror or err}"
    return f"{type(err).__name__}: {err}"


def _failed(client, plan: MigrationPlan, store: Optional[BackupStore], phase: str, err: Exception,
            report_out: Optional[str]) -> IndexOpsError:
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
    details = {"phase": phase, "source_index_exists": source_exists, "target_index_exists": target_exists,
               "backup_path": store.directory if store else None, "report_path": report_out or report_path,
               "failure_recorded": recorded}
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
