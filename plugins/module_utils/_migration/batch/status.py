# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a batch state means to a person: counts, the failed indexes and why, what a resume would do,
and the batch report file. Reads files only (the state and each index's backup header), never Redis,
so it answers while the server is down."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from ..backup.store import BackupStore
from ..core.errors import BackupInvalid, PlanInvalid
from ..core.sealed import utc_now
from ..core.yamlio import dump_yaml
from .plan import read_batch_plan
from .state import (
    FAILED,
    NOT_STARTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    BatchState,
    locate_state,
    new_state,
    overall_status,
    read_state,
    require_trusted,
)

REPORT_FORMAT = "indexops.redis_search/batch-report"
REPORT_VERSION = 1


def _backup_of(state: BatchState, plan_checksum: Optional[str]) -> Optional[BackupStore]:
    if not plan_checksum or not state.backup_dir:
        return None
    try:
        return BackupStore.for_plan(state.backup_dir, plan_checksum)
    except (BackupInvalid, OSError):
        return None


def _where(store: Optional[BackupStore]) -> Dict[str, Any]:
    """Where an index's own migration stands, from its backup header."""
    if store is None:
        return {"backup_path": None, "migration_status": None, "phase": None, "index_dropped": False}
    header = store.header
    return {
        "backup_path": store.directory,
        "migration_status": header.status,
        "phase": header.phase,
        "index_dropped": header.phases["drop"].done and header.status != "rolled_back",
    }


def next_steps(state: BatchState) -> List[str]:
    """What state=resumed would do, index by index (and what retry_failed would add)."""
    steps = []
    verb = "state=applied" if overall_status(state) == NOT_STARTED else "resume"
    for run in state.indexes:
        if run.status in (PENDING, RUNNING):
            where = _where(_backup_of(state, run.plan_checksum))
            if where["backup_path"] and where["migration_status"] in ("running", "failed"):
                steps.append(f"{verb} continues {run.name} from phase {where['phase']} (backup {where['backup_path']})")
            else:
                steps.append(f"{verb} migrates {run.name}")
        elif run.status == FAILED:
            where = _where(_backup_of(state, run.plan_checksum))
            if where["migration_status"] == "rolled_back":
                how = "from the start, into a new backup (its migration was rolled back)"
            elif where["index_dropped"]:
                how = (
                    f"from phase {where['phase']} with its plan and backup {where['backup_path']} (its index was "
                    "dropped: finish it, or roll it back with redis_index_rollback)"
                )
            elif where["backup_path"]:
                how = f"from phase {where['phase']} with its backup {where['backup_path']} (its index is untouched)"
            else:
                how = "from the start (nothing of it was changed)"
            steps.append(f"{run.name} stays failed; retry_failed=true resumes it {how}")
    return steps or ["nothing: every applicable index is done"]


def _line(run) -> str:
    if run.status == SUCCEEDED:
        return f"  succeeded {run.name}: {run.result}, {run.documents} documents in {run.duration_seconds:.1f} s" + (
            f" (backup {run.backup_path})" if run.backup_path else ""
        )
    if run.status == FAILED:
        return f"  FAILED    {run.name}: {(run.error or {}).get('message', 'failed')}"
    if run.status == SKIPPED:
        return f"  skipped   {run.name}: {run.skip_reason}"
    return f"  {run.status:<9} {run.name}"


def describe(state: BatchState, state_file: str, report_file: Optional[str] = None) -> Dict[str, Any]:
    """The status a module returns: readable lines in `summary`, the same facts as structure."""
    counts = state.counts()
    status = overall_status(state)
    failed = []
    for run in state.indexes:
        if run.status == FAILED:
            where = _where(_backup_of(state, run.plan_checksum))
            failed.append(
                {
                    "name": run.name,
                    "error": (run.error or {}).get("message"),
                    "kind": (run.error or {}).get("kind"),
                    "hint": (run.error or {}).get("hint"),
                    "phase": where["phase"] or (run.error or {}).get("phase"),
                    "index_dropped": where["index_dropped"],
                    "backup_path": where["backup_path"],
                }
            )
    steps = next_steps(state)
    head = ", ".join(f"{counts[s]} {s}" for s in (SUCCEEDED, FAILED, RUNNING, PENDING, SKIPPED) if counts[s])
    summary = [f"batch {state.batch_id} ({state.failure_policy}, {len(state.indexes)} indexes): {status} - {head}"]
    summary += [_line(run) for run in state.indexes]
    summary += [f"next: {step}" for step in steps]
    return {
        "result": status,
        "batch_id": state.batch_id,
        "counts": counts,
        "failures": failed,
        "next": steps,
        "summary": summary,
        "indexes": [run.model_dump(mode="json") for run in state.indexes],
        "state_file": state_file,
        "report_file": report_file,
        "backup_dir": state.backup_dir,
    }


def build_report(state: BatchState, state_file: str) -> Dict[str, Any]:
    counts = state.counts()
    return {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "batch_id": state.batch_id,
        "batch_plan_checksum": state.batch_plan_checksum,
        "batch_plan_file": state.batch_plan_file,
        "status": overall_status(state),
        "failure_policy": state.failure_policy,
        "backup_dir": state.backup_dir,
        "state_file": state_file,
        "started_at": state.created_at,
        "finished_at": utc_now(),
        "runs": state.runs,
        "summary": {"total": len(state.indexes), **counts},
        "total_duration_seconds": round(sum(run.duration_seconds for run in state.indexes), 3),
        "indexes": [run.model_dump(mode="json", exclude={"plan_checksum"}) for run in state.indexes],
    }


def report_text(state: BatchState, state_file: str) -> str:
    return (
        "# indexops.redis_search batch report (the state file is the authority; this is its readable account)\n"
        + dump_yaml(build_report(state, state_file))
    )


def current_status(
    batch_plan_file: Optional[str], state_file: Optional[str], backup_dir: Optional[str] = None
) -> Dict[str, Any]:
    """The status of a batch from its state file; a batch not started yet is all pending."""
    state_path, report_path = locate_state(batch_plan_file, state_file)
    if os.path.exists(state_path):
        state = read_state(state_path)
        batch = read_batch_plan(batch_plan_file) if batch_plan_file else None
        require_trusted(state, state_path, batch, backup_dir)  # against the backups (files only: no server here)
        return describe(state, state_path, report_path if os.path.exists(report_path) else None)
    if not batch_plan_file:
        raise PlanInvalid(f"no batch state file at {state_path}", hint="check state_file, or give plan_file")
    state = new_state(read_batch_plan(batch_plan_file), batch_plan_file, backup_dir or "")
    return describe(state, state_path, None)
