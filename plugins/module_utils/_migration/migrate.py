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

from . import failpoints
from .backup_store import BackupHeader, BackupStore, check_backup_dir, utc_now
from .capabilities import detect_capabilities
from .changes import VECTOR_DATATYPE
from .codec import describe_conversion
from .deps import BaseModel
from .errors import IndexOpsError, MigrationFailed, PlanBlocked, PreflightFailed
from .estimate import FREE_SPACE_MARGIN
from .lock import IndexLock
from .phases import backup, create, drop, rewrite, validate
from .phases.context import Context, MigrateOptions
from .plan import MigrationPlan
from .report import REPORT_FILE, MigrationReport, build_report, save_report
from .schema import differences
from .scripts import Scripts
from .snapshot import index_exists, snapshot_index
from .waiting import StillIndexing, wait_until_indexed

NOT_REPORTED = create.NOT_REPORTED


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


PHASES = [
    ("backup", backup.run),
    ("drop", drop.run),
    ("move_fields", _count("move_fields", rewrite.move_fields)),
    ("rename_keys", _count("rename_keys", rewrite.rename_keys)),
    ("quantize", _count("quantize", rewrite.quantize)),
    ("create", create.run_create),
    ("wait", create.run_wait),
    ("validate", _run_validate),
]


def lossy_changes(plan: MigrationPlan) -> list:
    return [c for c in plan.changes if c.kind == VECTOR_DATATYPE and c.rewrites_documents
            and describe_conversion(c.before, c.after)["lossy"]]


def _source_unchanged(client, plan: MigrationPlan) -> None:
    live = snapshot_index(client, plan.source.index).snapshot
    found = differences(plan.source_schema(), live.index_schema, NOT_REPORTED + tuple(live.unobserved))
    if found:
        raise PreflightFailed(f"{plan.source.index} changed since the plan was made: {'; '.join(found[:3])}",
                              hint="re-run redis_index_plan and review the new plan")


def _wait_source_indexed(client, plan: MigrationPlan, timeout: float) -> int:
    try:
        return wait_until_indexed(client, plan.source.index, timeout, steady=False).num_docs
    except StillIndexing as err:
        raise PreflightFailed(f"{plan.source.index} is still indexing after {timeout:.0f} s ({err}); nothing was "
                              "changed", hint="wait for it, or raise wait_timeout") from None


def preflight(client, plan: MigrationPlan, options: MigrateOptions, backup_root: str) -> int:
    """Read-only checks before the first write. Returns the source's document count."""
    if not index_exists(client, plan.source.index):
        raise PreflightFailed(f"index {plan.source.index} does not exist", hint="check the plan's index")
    _source_unchanged(client, plan)
    if plan.target_index != plan.source.index and index_exists(client, plan.target_index):
        raise PreflightFailed(f"an index or alias named {plan.target_index!r} exists", hint="choose another name")
    caps = detect_capabilities(client)
    for field in plan.target().vector_fields():
        if not caps.accepts_datatype(field.attrs.datatype) or not caps.accepts_algorithm(field.attrs.algorithm):
            raise PreflightFailed(f"the server does not accept {field.attrs.algorithm.upper()} "
                                  f"{field.attrs.datatype.upper()} vectors for {field.name!r}")
    need = int(plan.estimate.backup_bytes * FREE_SPACE_MARGIN)
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


def _target_matches(client, plan: MigrationPlan) -> bool:
    if not index_exists(client, plan.target_index):
        return False
    live = snapshot_index(client, plan.target_index).snapshot
    return not differences(plan.target(), live.index_schema, NOT_REPORTED + tuple(live.unobserved))


def migrate(client, connect: Callable[[], object], plan: MigrationPlan, backup_dir: Optional[str],
            options: MigrateOptions, check_mode: bool = False, report_out: Optional[str] = None) -> Outcome:
    if plan.classification.nothing_to_do:
        return Outcome(changed=False, report=build_report(plan, "nothing_to_do"))
    if not plan.classification.supported:
        raise PlanBlocked("the plan has blocked changes: " + "; ".join(plan.classification.blocked_reasons))
    lossy = lossy_changes(plan)
    if lossy and not options.accept_data_loss:
        raise PreflightFailed(
            "lossy conversion(s) " + ", ".join(f"{c.field} {c.before}->{c.after}" for c in lossy)
            + " need accept_data_loss=true", hint="read the plan's warnings; the originals are kept in the backup")
    root = _check_dir_readonly(backup_dir) if check_mode else check_backup_dir(backup_dir)
    store = BackupStore.for_plan(root, plan.checksum) if os.path.isdir(root) else None
    if store is not None and store.header.status == "completed" and _target_matches(client, plan):
        return Outcome(changed=False, report=build_report(plan, "already_completed", store))
    if store is not None and store.header.status == "rolling_back":
        raise PreflightFailed(f"a rollback of this plan ({store.directory}) did not finish; the documents are between "
                              "two states", hint="run redis_index_rollback again to finish it, then migrate")
    resume = store is not None and store.header.status in ("running", "failed")
    if check_mode:
        if not resume:
            preflight(client, plan, options.model_copy(update={"wait_timeout": 0}), root)
        return Outcome(changed=True, report=build_report(plan, "would_resume" if resume else "would_migrate", store))

    lock = IndexLock(client, plan.source.index, "migration", plan.plan_id)
    lock.acquire()
    phase = "preflight"
    try:
        if resume:
            if store.phase("backup").done:
                store.require_intact()
            if not store.phase("drop").done and index_exists(client, plan.source.index):
                _source_unchanged(client, plan)
        else:
            docs = preflight(client, plan, options, root)
            attempt = store.header.attempt + 1 if store is not None else 1
            header = BackupHeader(plan_checksum=plan.checksum, plan_id=plan.plan_id, attempt=attempt,
                                  source_index=plan.source.index, target_index=plan.target_index,
                                  storage=plan.rewrites.storage, batch_size=options.batch_size)
            header.phases["backup"].counters["source_num_docs"] = docs
            store = BackupStore.create(root, header, plan.to_yaml())
        store.header.status, store.header.error = "running", None
        ctx = Context(client=client, connect=connect, plan=plan, source=plan.source_schema(), target=plan.target(),
                      store=store, options=options, lock=lock, scripts=Scripts(client))
        for phase, run in PHASES:
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
        report = build_report(plan, "succeeded", store)
        save_report(report, store.path(REPORT_FILE), report_out)
        return Outcome(changed=True, report=report)
    except Exception as err:  # pylint: disable=broad-exception-caught
        raise _failed(client, plan, store, phase, err, report_out) from None
    finally:
        lock.release()


def _failed(client, plan: MigrationPlan, store: Optional[BackupStore], phase: str, err: Exception,
            report_out: Optional[str]) -> IndexOpsError:
    """Record where it stopped and return the error to raise, with what the operator needs."""
    message = str(err.message if isinstance(err, IndexOpsError) else f"{type(err).__name__}: {err}")
    dropped = store is not None and store.phase("drop").done
    try:
        # After the drop, a target of the same name may hold the name: the old index is gone all the same.
        source_exists = not dropped and index_exists(client, plan.source.index)
        target_exists = dropped and index_exists(client, plan.target_index)
    except Exception:  # pylint: disable=broad-exception-caught
        source_exists = target_exists = None
    report_path = None
    if store is not None:
        store.header.status = "failed"
        store.header.error = {"phase": phase, "message": message, "at": utc_now()}
        store.save()
        report_path = store.path(REPORT_FILE)
        save_report(build_report(plan, "failed", store), report_path, report_out)
    details = {"phase": phase, "source_index_exists": source_exists, "target_index_exists": target_exists,
               "backup_path": store.directory if store else None, "report_path": report_out or report_path}
    if isinstance(err, IndexOpsError):
        err.details.update(details)
        err.message = f"migration stopped in phase {phase}: {err.message}"
        return err
    return MigrationFailed(f"migration stopped in phase {phase}: {message}",
                           hint="re-run the same task to resume from this phase", details=details)
