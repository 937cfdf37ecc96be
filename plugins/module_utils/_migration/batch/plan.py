# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan one schema patch across many indexes, reviewed once.

    select      the indexes: a list, a glob pattern over the server's index names, or a file
    plan        each index on its own (planner.create_plan, the same sealed plan redis_index_plan
                writes); an index the patch does not fit, that has nothing to do or whose change is
                blocked is kept with the reason it is skipped
    refuse      two applicable indexes with overlapping prefixes (same key type) before or after
                their prefix changes, or an index - in the batch or not - that reads the vectors or
                fields a plan rewrites: the batch is not written
    seal        every per-index plan, the selection, the patch and the failure policy, under one
                checksum, so that apply runs exactly what was reviewed; every per-index plan also
                carries the checksum of the batch's own fields under its own checksum, so that an
                edited field with only the batch's checksum recomputed is refused

Nothing here writes to Redis except the planner's create check (a throwaway index, dropped at once).
"""

from __future__ import annotations

import datetime
import fnmatch
import os
from typing import Any, ClassVar, Dict, List, Optional

from ..apply.preflight import lossy_changes
from ..core.deps import BaseModel, Field
from ..core.errors import IndexNotFound, PlanBlocked, PlanInvalid, SchemaInvalid
from ..core.files import write_atomic
from ..core.limits import check_text
from ..core.sealed import SealedDocument, SealedFormat, checksum_of
from ..core.yamlio import read_written_yaml
from ..planning.plan import MigrationPlan, plan_from_dict
from ..planning.planner import create_plan
from ..redis.capabilities import detect_capabilities
from ..redis.create_check import CHECK_PREFIX
from ..redis.keyspace import prefixes_overlap
from ..redis.snapshot import list_indexes
from ..schema.patch import SchemaPatch

BATCH_PLAN_FORMAT = "indexops.redis_search/batch-plan"
BATCH_PLAN_VERSION = 1
FAILURE_POLICIES = ("fail_fast", "continue_on_error")
SELECTION_KINDS = ("list", "pattern", "file")
BATCH_PLAN_FILE = SealedFormat(
    BATCH_PLAN_FORMAT,
    BATCH_PLAN_VERSION,
    "batch plan",
    create="create one with redis_index_batch state=planned",
    newer="re-create it with this collection's redis_index_batch",
    malformed="re-create it with redis_index_batch state=planned",
    edited="batch plans cannot be edited; plan the batch again",
)


class Selection(BaseModel):
    kind: str  # list | pattern | file
    value: Any  # the names, the pattern or the file's path, as given
    names: List[str] = Field(default_factory=list)  # what it resolved to, in batch order


class BatchEntry(BaseModel):
    """One selected index: its plan when applicable, else why it is skipped."""

    name: str
    applicable: bool
    skip_reason: Optional[str] = None
    source_index: Optional[str] = None
    target_index: Optional[str] = None
    storage: Optional[str] = None
    prefixes: List[str] = Field(default_factory=list)
    target_prefixes: List[str] = Field(default_factory=list)  # after the migration (a prefix change moves keys)
    documents: int = 0
    rewrites_documents: bool = False
    lossy: List[str] = Field(default_factory=list)
    backup_bytes: int = 0
    plan_checksum: Optional[str] = None
    plan: Optional[Dict[str, Any]] = None

    def migration_plan(self) -> MigrationPlan:
        """The sealed per-index plan, verified (an edited one is refused)."""
        plan = plan_from_dict(self.plan, f"the batch plan's plan of {self.name}")
        if plan.checksum != self.plan_checksum:
            raise PlanInvalid(
                f"the batch plan's entry {self.name} does not carry the plan it names",
                hint="re-create the batch plan with redis_index_batch state=planned",
            )
        return plan


class BatchPlan(SealedDocument):
    HEADER: ClassVar[str] = (
        "# indexops.redis_search batch plan: one patch, every index's own sealed plan. Review it, then\n"
        "# apply it with redis_index_batch state=applied. Do not edit: an edited plan is refused.\n"
    )

    format: str = BATCH_PLAN_FORMAT
    format_version: int = BATCH_PLAN_VERSION
    endpoint: str = ""
    failure_policy: str = "fail_fast"
    selection: Selection
    patch: Dict[str, Any]
    indexes: List[BatchEntry] = Field(default_factory=list)

    def _own_fields(self) -> Dict[str, Any]:
        """The batch's own fields - policy, selection, patch, each entry but its plan - without the checksum
        and created_at (planning the same batch again must give the same plans)."""
        data = self.to_dict()
        for key in ("checksum", "created_at"):
            data.pop(key, None)
        data["indexes"] = [{k: v for k, v in e.items() if k not in ("plan", "plan_checksum")} for e in data["indexes"]]
        return data

    def fields_checksum(self) -> str:
        """The checksum of the batch's own fields, which every per-index plan carries (MigrationPlan.batch_fields)
        under its own checksum."""
        return checksum_of(self._own_fields())

    def bind_plans(self) -> "BatchPlan":
        """Give every per-index plan the batch's own fields' checksum, sealed into its own (before `seal`)."""
        fields = self.fields_checksum()
        for entry in self.indexes:
            if entry.plan is not None:
                plan = entry.migration_plan()
                plan.batch_fields = fields
                entry.plan, entry.plan_checksum = plan.seal().to_dict(), plan.checksum
        return self

    @property
    def batch_id(self) -> str:
        return self.short_id

    def applicable(self) -> List[BatchEntry]:
        return [e for e in self.indexes if e.applicable]

    def same_content(self, other: "BatchPlan") -> bool:
        """Equal but for timestamps and the volatile figures of the per-index plans: nothing to rewrite."""
        if self._own_fields() != other._own_fields():
            return False
        return all(
            (a.plan is None) == (b.plan is None)
            and (a.plan is None or a.migration_plan().same_content(b.migration_plan()))
            for a, b in zip(self.indexes, other.indexes)
        )


class Conflict(BaseModel):
    indexes: List[str]
    kind: str  # overlapping_prefixes | shared_keys
    reason: str


# -- selection ---------------------------------------------------------------------------------------


def read_index_file(path: str) -> List[str]:
    """One index name a line; blank lines and lines starting with # are ignored."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise SchemaInvalid(f"cannot read indexes_file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise SchemaInvalid(f"indexes_file {path} is not UTF-8 text (one index name a line)") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def resolve_selection(client, kind: str, value: Any) -> Selection:
    """The index names a selection stands for, in batch order (given order; sorted for a pattern)."""
    if kind == "list":
        names = [str(n) for n in value]
    elif kind == "file":
        names = read_index_file(str(value))
    elif kind == "pattern":
        names = [n for n in list_indexes(client) if fnmatch.fnmatchcase(n, str(value)) and CHECK_PREFIX not in n]
    else:
        raise SchemaInvalid(f"unknown selection {kind!r}", hint=f"choose one of {', '.join(SELECTION_KINDS)}")
    for name in names:
        check_text(name, "index name", f"the {kind} selection")
    names = list(dict.fromkeys(names))  # the same name twice is one index
    if not names:
        raise SchemaInvalid(f"the {kind} selection {value!r} names no index", hint="check the names or the pattern")
    return Selection(kind=kind, value=value, names=names)


# -- conflicts ---------------------------------------------------------------------------------------


def overlapping_pairs(entries: List[BatchEntry]) -> List[Conflict]:
    """Applicable indexes of one key type whose prefixes overlap (FT.CREATE PREFIX semantics: one is a
    string prefix of the other), before or after their migrations: migrating them in one batch changes the
    same keys twice, or moves two indexes' keys onto one prefix."""
    found = []
    applicable = [e for e in entries if e.applicable]
    for i, left in enumerate(applicable):
        for right in applicable[i + 1 :]:
            if left.storage != right.storage:
                continue
            pairs = [(a, b) for a in left.prefixes for b in right.prefixes if prefixes_overlap(a, b)]
            after = [(a, b) for a in _key_space(left) for b in _key_space(right) if prefixes_overlap(a, b)]
            if pairs or after:
                a, b = (pairs or after)[0]
                later = (
                    "" if pairs else (" once the prefix changes are applied (their keys would end up under one prefix)")
                )
                found.append(
                    Conflict(
                        indexes=[left.name, right.name],
                        kind="overlapping_prefixes",
                        reason=f"{left.name} <-> {right.name}: {a!r} <-> {b!r}{later}",
                    )
                )
    return found


def _key_space(entry: BatchEntry) -> List[str]:
    """The prefixes an index covers before and after its migration."""
    return list(dict.fromkeys(entry.prefixes + (entry.target_prefixes or entry.prefixes)))


def _sharing_conflicts(name: str, plan: MigrationPlan, batch_names: Dict[str, str]) -> List[Conflict]:
    """A plan blocked only because other indexes read the keys it changes: each such index is a
    conflict of the batch (an overlap when it is selected too)."""
    found = []
    reasons = plan.classification.blocked_reasons
    for other in plan.classification.shared_key_indexes:
        why = next((r for r in reasons if r.startswith(f"index {other!r}")), "it reads the same keys")
        if other in batch_names:
            found.append(
                Conflict(
                    indexes=[name, batch_names[other]],
                    kind="overlapping_prefixes",
                    reason=f"{name} <-> {batch_names[other]}: {why}",
                )
            )
        else:
            found.append(
                Conflict(
                    indexes=[name, other],
                    kind="shared_keys",
                    reason=f"{name}: {why} (index {other!r} is not in this batch)",
                )
            )
    return found


def _dedupe(conflicts: List[Conflict]) -> List[Conflict]:
    seen, kept = set(), []
    for conflict in conflicts:
        key = (frozenset(conflict.indexes), conflict.kind)
        if key not in seen:
            seen.add(key)
            kept.append(conflict)
    return kept


# -- planning ----------------------------------------------------------------------------------------


def _skipped(name: str, reason: str, plan: Optional[MigrationPlan] = None) -> BatchEntry:
    entry = BatchEntry(name=name, applicable=False, skip_reason=reason)
    if plan is not None:
        entry.source_index, entry.target_index = plan.source.index, plan.target_index
    return entry


def _applicable(name: str, plan: MigrationPlan) -> BatchEntry:
    source = plan.source_schema()
    return BatchEntry(
        name=name,
        applicable=True,
        source_index=plan.source.index,
        target_index=plan.target_index,
        storage=source.storage,
        prefixes=list(source.index.prefix),
        target_prefixes=list(plan.target().index.prefix),
        documents=int(plan.source.stats.get("num_docs", 0)),
        rewrites_documents=plan.rewrites.any,
        lossy=[f"{c.field} {c.before}->{c.after}" for c in lossy_changes(plan)],
        backup_bytes=plan.estimate.backup_bytes,
        plan_checksum=plan.checksum,
        plan=plan.to_dict(),
    )


def _plan_one(client, name: str, patch: SchemaPatch, **planning: Any) -> tuple[Optional[MigrationPlan], Optional[str]]:
    """(plan, None), or (None, why the index is skipped). Errors that are not about this index raise."""
    try:
        return create_plan(client, name, patch=patch, **planning), None
    except IndexNotFound as err:
        return None, err.message
    except SchemaInvalid as err:
        # The patch does not fit this index (a field it lacks, a merged value out of bounds): skip it.
        # Anything else (an alias that points elsewhere) is the operator's to fix: refuse.
        if err.message.startswith("patch"):
            return None, "the patch does not fit this index: " + err.message[len("patch") :].lstrip(": ")
        raise


def create_batch_plan(
    client,
    selection: Selection,
    patch: SchemaPatch,
    *,
    failure_policy: str = "fail_fast",
    aliases: Optional[Dict[str, List[str]]] = None,
    endpoint: str = "",
    created_at: Optional[str] = None,
    **planning: Any,
) -> BatchPlan:
    """Plan `patch` on every selected index, each with create_plan and the same `planning` options
    (audit_sample, audit_all, key_sample, backup_dir, batch_size). Raises PlanBlocked (details:
    conflicts, indexes) when the batch is refused."""
    if failure_policy not in FAILURE_POLICIES:
        raise SchemaInvalid(
            f"unknown failure_policy {failure_policy!r}", hint=f"choose one of {', '.join(FAILURE_POLICIES)}"
        )
    aliases = aliases or {}
    unknown = sorted(set(aliases) - set(selection.names))
    if unknown:
        raise SchemaInvalid(
            f"aliases names indexes that are not in the batch: {', '.join(unknown)}",
            hint="key aliases by the selected index names",
        )
    # Capabilities once for the batch: every plan records the same server.
    planning.update(endpoint=endpoint, capabilities=detect_capabilities(client))
    entries: List[BatchEntry] = []
    plans: Dict[str, MigrationPlan] = {}
    first_of: Dict[str, str] = {}  # source index -> the selected name that planned it first
    for name in selection.names:
        plan, reason = _plan_one(client, name, patch, aliases=aliases.get(name, []), **planning)
        if plan is None:
            entries.append(_skipped(name, reason))
        elif plan.source.index in first_of:
            entries.append(_skipped(name, f"the same index as {first_of[plan.source.index]} (selected twice)", plan))
        else:
            first_of[plan.source.index] = name
            plans[name] = plan
            entries.append(_classified(name, plan))

    batch_names = {plan.source.index: name for name, plan in plans.items()}
    conflicts = overlapping_pairs(entries)
    for entry in entries:
        plan = plans.get(entry.name)
        if plan is not None and entry.skip_reason is None and not entry.applicable:
            conflicts += _sharing_conflicts(entry.name, plan, batch_names)
    conflicts = _dedupe(conflicts)
    batch = (
        BatchPlan(
            created_at=created_at or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            endpoint=endpoint,
            failure_policy=failure_policy,
            selection=selection,
            patch=patch.to_dict(),
            indexes=entries,
        )
        .bind_plans()
        .seal()
    )
    if conflicts:
        raise PlanBlocked(
            f"refusing the batch plan: {len(conflicts)} conflict(s) between indexes that share keys: "
            + "; ".join(c.reason for c in conflicts),
            hint="split the batch into groups of indexes with disjoint prefixes and plan each group on its own, "
            "or migrate the indexes that share keys one at a time by hand",
            details={"conflicts": [c.model_dump() for c in conflicts], "indexes": entry_summaries(batch)},
        )
    return batch


def _classified(name: str, plan: MigrationPlan) -> BatchEntry:
    """Applicable, skipped (nothing to do, or blocked for a reason of its own), or - blocked only because
    other indexes read its keys - left unresolved (skip_reason None, not applicable) for the conflict check."""
    classification = plan.classification
    if classification.nothing_to_do:
        return _skipped(name, "nothing to do: the index already has the requested schema", plan)
    if classification.supported:
        return _applicable(name, plan)
    # classify() adds one reason per index sharing the keys: any more reasons are the change's own.
    if len(classification.blocked_reasons) > len(classification.shared_key_indexes):
        return _skipped(name, "blocked: " + "; ".join(classification.blocked_reasons), plan)
    return BatchEntry(name=name, applicable=False, source_index=plan.source.index, target_index=plan.target_index)


# -- reading and writing -------------------------------------------------------------------------------


def batch_plan_from_dict(data: Any, where: str = "batch plan") -> BatchPlan:
    """Load and verify a batch plan and every per-index plan in it."""
    batch = BATCH_PLAN_FILE.load(data, BatchPlan, where)
    if batch.failure_policy not in FAILURE_POLICIES:
        raise PlanInvalid(f"{where} has an unknown failure_policy {batch.failure_policy!r}")
    fields = batch.fields_checksum()
    for entry in batch.applicable():
        if entry.migration_plan().batch_fields != fields:
            raise PlanInvalid(
                f"{where} was changed after it was written: its own fields (failure_policy, selection, "
                f"patch or index entries) are not the ones its plan of {entry.name} was sealed with "
                "(edited, with the checksum recomputed?); nothing was changed",
                hint="batch plans cannot be edited; plan the batch again",
            )
    return batch


def read_batch_plan(path: str) -> BatchPlan:
    data = read_written_yaml(path, "batch plan file", hint="give the file redis_index_batch wrote (plan_out)")
    return batch_plan_from_dict(data, f"batch plan file {path}")


def write_batch_plan(batch: BatchPlan, path: str) -> None:
    """Atomically, like a single plan (a reader never sees half of it)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise PlanInvalid(
            f"cannot write batch plan file {path}: {directory} does not exist",
            hint="plan_out must be in an existing, writable directory",
        )
    write_atomic(os.path.abspath(path), batch.to_yaml().encode("utf-8"))


# -- review --------------------------------------------------------------------------------------------


def entry_summaries(batch: BatchPlan) -> List[Dict[str, Any]]:
    """Each selected index without its full plan: what a reviewer reads first."""
    return [entry.model_dump(mode="json", exclude={"plan"}) for entry in batch.indexes]


def summarize_batch(batch: BatchPlan) -> List[str]:
    applicable = batch.applicable()
    lines = [
        f"batch {batch.batch_id}: {len(applicable)} of {len(batch.indexes)} selected index(es) applicable, "
        f"failure_policy {batch.failure_policy}"
    ]
    for entry in batch.indexes:
        if entry.applicable:
            lossy = f", lossy: {', '.join(entry.lossy)}" if entry.lossy else ""
            backup = f", backup {entry.backup_bytes} bytes" if entry.rewrites_documents else ", index only"
            lines.append(f"  migrate {entry.name}: {entry.documents} documents{backup}{lossy}")
        else:
            lines.append(f"  skip    {entry.name}: {entry.skip_reason}")
    return lines
