# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration report: what happened, phase by phase, with the figures an operator checks."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..backup.store import BackupStore, documents_of
from ..core.deps import BaseModel, Field
from ..core.files import write_atomic
from ..core.yamlio import dump_yaml
from ..planning.plan import MigrationPlan

REPORT_FORMAT = "indexops.redis_search/report"
REPORT_FILE = "report.yaml"


class MigrationReport(BaseModel):
    format: str = REPORT_FORMAT
    format_version: int = 1
    result: str  # succeeded | failed | nothing_to_do | already_completed | would_migrate | would_resume
    mode: str = "drop_recreate"
    source_index: str
    target_index: str
    plan_checksum: str
    backup_path: Optional[str] = None
    attempt: int = 0
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    downtime_seconds: Optional[float] = None
    documents: int = 0
    phases: Dict[str, Any] = Field(default_factory=dict)
    quant_params: Dict[str, Any] = Field(default_factory=dict)
    quality: Dict[str, Any] = Field(default_factory=dict)
    validation: Dict[str, Any] = Field(default_factory=dict)
    conflicts: int = 0
    caught_up: int = 0  # documents an online rewrite's catch-up expanded again from the application's last write
    warnings: List[str] = Field(default_factory=list)
    error: Optional[Dict[str, Any]] = None


def build_report(plan: MigrationPlan, result: str, store: Optional[BackupStore] = None) -> MigrationReport:
    report = MigrationReport(
        result=result,
        mode=plan.mode,
        source_index=plan.source.index,
        target_index=plan.final_index,
        plan_checksum=plan.checksum,
        warnings=list(plan.warnings),
    )
    if store is None:
        return report
    header = store.header
    report.backup_path = store.directory
    report.attempt = header.attempt
    report.started_at = header.created_at
    report.finished_at = header.updated_at
    catch_up = header.phases.get("catch_up")
    counters = catch_up.counters if catch_up is not None else {}
    report.caught_up = int(counters.get("caught_up", 0))
    report.documents = documents_of(header)
    report.quant_params = header.quant_params
    report.quality = header.quality
    report.error = header.error
    report.phases = {name: state.model_dump() for name, state in header.phases.items() if state.started_at}
    report.validation = header.phases["validate"].counters
    # The catch-up looked at every document again: what expand found changed is caught up, or counted by the
    # phases after it (convert, contract), which find it still changed.
    recounted = ("expand",) if catch_up is not None and catch_up.done else ()
    report.conflicts = sum(
        int(state.counters.get("conflict", 0)) for name, state in header.phases.items() if name not in recounted
    )
    report.warnings += catch_up_warnings(counters)
    # The index is unavailable from the drop until the new one has indexed everything.
    window = ("drop", "move_fields", "rename_keys", "quantize", "create", "wait")
    if plan.mode == "online":
        # The source serves until the swap's EXEC and the new index from then on: no read gap.
        report.downtime_seconds = 0.0 if header.phases.get("swap") and header.phases["swap"].done else None
    elif header.phases["drop"].started_at:
        report.downtime_seconds = round(sum(header.phases[p].seconds for p in window), 3)
    return report


def catch_up_warnings(counters: Dict[str, Any]) -> List[str]:
    """What an online rewrite's catch-up could not take back from the application's writes in the window."""
    found = []
    if counters.get("changed") or counters.get("added"):
        found.append(
            f"The application wrote during the online window: {counters.get('caught_up', 0)} document(s) changed or "
            f"added since the backup were caught up in {counters.get('rounds', 0)} round(s); a write after the "
            "catch-up's last look and before the swap is not, and is left as written (a conflict of the phases "
            "after it). Stop writes for the window (the write_quiesce role) to rule that out."
        )
    if counters.get("still_changed"):
        found.append(
            f"{counters['still_changed']} document(s) were still being changed after the catch-up's last round and "
            f"were not caught up (first: {', '.join(map(str, counters.get('still_changed_keys', [])[:5]))})."
        )
    if counters.get("not_rewritable"):
        found.append(
            f"{counters['not_rewritable']} document(s) the application changed or added hold no vector the migration "
            "can convert (none, or of the wrong size) and were left as written (first: "
            f"{', '.join(map(str, counters.get('not_rewritable_keys', [])[:5]))})."
        )
    return found


def save_report(report: MigrationReport, *paths: Optional[str]) -> None:
    text = dump_yaml(report.model_dump(mode="json")).encode("utf-8")
    for path in paths:
        if path:
            write_atomic(path, text)
