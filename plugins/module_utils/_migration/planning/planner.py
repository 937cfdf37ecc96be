# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a migration plan. Nothing here writes to disk, and the only write to Redis is the create
check: the target definition is created under a throwaway name on a prefix no key has and dropped
at once (create_check.py), so that a definition the server refuses is blocked now, not after the drop.

snapshot -> merge patch (or take the target schema) -> diff -> per-document rewrites -> live
context -> classify -> create check -> sample and audit -> estimate -> warnings -> sealed plan.
Every read is bounded (a key sample, FT.INFO of each index), so planning takes the same time on
any index size, unless the caller asks for a full audit.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..core.deps import BaseModel, ValidationError, field_validator
from ..core.errors import SchemaInvalid
from ..core.limits import BatchSize, SampleSize, check_schema, check_text, explain_options
from ..redis.capabilities import ServerCapabilities, detect_capabilities
from ..redis.catalog import OtherIndex, alias_targets, aliases_of, other_indexes
from ..redis.create_check import CreateCheckUnavailable, check_create
from ..redis.doc_memory import document_memory
from ..redis.keyspace import iter_keys, key_to_text, sample_keys, separator_in_use
from ..redis.snapshot import IndexSnapshot, index_exists, snapshot_index
from ..schema.changes import INDEX_RENAME
from ..schema.model import IndexSchema
from ..schema.online_layout import online_layout
from ..schema.patch import SchemaPatch
from ..schema.rewrites import DocumentRewrites, Quantize
from ..vectors.audit import AuditResult, audit_keys, backup_refusals
from .classify import Classification, LiveContext, classify
from .derive import Derivation, derive
from .estimate import Estimate, estimate
from .modes import AUTO, CUTOVERS, DROP_RECREATE, MODES, SWAP, ModeDecision, choose_mode, stem
from .online_cost import OnlineMemory, durations, online_memory
from .plan import MigrationPlan, Renames, SourceState
from .plan_warnings import collect_warnings

DEFAULT_BATCH_SIZE = 500


class PlanningOptions(BaseModel):
    """The bounds of the planning options (named as the modules' options), checked by create_plan
    and, through this model, by the modules before they connect."""

    audit_sample_size: SampleSize = 1000
    audit_all: bool = False
    key_sample_size: SampleSize = 20
    batch_size: BatchSize = DEFAULT_BATCH_SIZE
    mode: str = AUTO
    cutover: str = SWAP
    side_by_side_alias: Optional[str] = None

    @field_validator("mode", "cutover")
    @classmethod
    def _known_choice(cls, value: str, info) -> str:
        choices = {"mode": MODES, "cutover": CUTOVERS}[info.field_name]
        if value not in choices:
            raise ValueError(f"{info.field_name} must be one of {', '.join(choices)}, not {value!r}")
        return value


def _target_refusal(client, target: IndexSchema) -> tuple[Optional[str], Optional[str]]:
    """(the server's refusal of the target definition or None, a warning when it could not be asked)."""
    try:
        return check_create(client, target), None
    except CreateCheckUnavailable as err:
        return None, (
            f"Whether the server accepts the target definition could not be checked ({err.message}); "
            "redis_index_migrate checks it again before dropping anything"
        )


def whole_prefix(source: IndexSchema, stats) -> bool:
    """Whether a migration must walk every key under the prefixes rather than the index's own
    documents: when the index failed some of them or has not reached them all. Not with a FILTER,
    whose excluded keys may belong to other applications."""
    return (stats.hash_indexing_failures > 0 or not stats.fully_indexed) and not source.index.filter


def _audit(
    client,
    index: str,
    source: IndexSchema,
    keys: List[bytes],
    audit_all: bool,
    measure: List[str],
    scan: bool,
    quantize: List[Quantize],
    batch: int = 1000,
) -> AuditResult:
    if not audit_all:
        result = audit_keys(client, source, keys, measure, quantize)
        result.mode = "sample" if keys or source.vector_fields() else "skipped"
        return result
    total = AuditResult(mode="all")
    total.value_bytes = {location: [0, 0] for location in measure}
    for chunk in iter_keys(client, index, source.index.prefix, source.storage, scan, batch):
        total.add(audit_keys(client, source, chunk, measure, quantize))
    total.mode = "all"
    return total


def requested_changes(patch: Optional[SchemaPatch], target_schema: Optional[IndexSchema]) -> dict:
    """What a plan records as asked for: the patch in its file shape, or the full target schema."""
    return {"patch": patch.to_dict()} if patch is not None else {"target_schema": target_schema.to_dict()}


def create_plan(
    client,
    index: str,
    *,
    patch: Optional[SchemaPatch] = None,
    target_schema: Optional[IndexSchema] = None,
    aliases: List[str] = (),
    audit_sample: int = 1000,
    audit_all: bool = False,
    key_sample: int = 20,
    backup_dir: Optional[str] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    endpoint: str = "",
    capabilities: Optional[ServerCapabilities] = None,
    created_at: Optional[str] = None,
    mode: str = AUTO,
    cutover: str = SWAP,
    side_by_side_alias: Optional[str] = None,
) -> MigrationPlan:
    """Plan the change of `index` described by `patch` or by a full `target_schema`.

    Raises SchemaInvalid for options or schema values out of bounds (limits.py); a target the
    server refuses (create check) is a blocked reason quoting the server."""
    choice = {"mode": mode, "cutover": cutover, "side_by_side_alias": side_by_side_alias}
    sizes = {"audit_sample_size": audit_sample, "audit_all": audit_all, "key_sample_size": key_sample}
    _check_request(index, patch, target_schema, {**sizes, "batch_size": batch_size, **choice})
    snap = snapshot_index(client, index)
    caps = capabilities or detect_capabilities(client)
    keys = _key_sample(client, snap, target_schema, audit_sample, key_sample)
    derived = derive(snap.snapshot.index_schema, patch, target_schema)
    found = _judge(client, snap, derived, caps, keys, audit_sample, audit_all, batch_size, backup_dir)
    found.aliases, found.aliases_complete = _aliases(client, index, snap.name, caps, aliases)
    found.decision = _choose_mode(client, choice, snap, derived, caps, keys, audit_sample, found)
    return _sealed_plan(
        snap,
        derived,
        caps,
        found,
        source=_source_state(snap, index, endpoint, keys[:key_sample], found.aliases, found.aliases_complete),
        requested=requested_changes(patch, target_schema),
        requested_mode=mode,
        created_at=created_at,
    )


@dataclass
class _Findings:
    """What planning found out about the change on this server, filled in as create_plan goes."""

    classification: Classification
    others: List[OtherIndex]
    unchecked: Optional[str]
    audit: AuditResult
    cost: Estimate
    aliases: List[str] = field(default_factory=list)
    aliases_complete: bool = False
    decision: Optional[ModeDecision] = None


def _key_sample(
    client, snap: IndexSnapshot, target_schema: Optional[IndexSchema], audit_sample: int, key_sample: int
) -> List[bytes]:
    """The sampled keys (the key sample first, then the rest of the audit sample), and the key separator they
    show taken into the source schema."""
    source = snap.snapshot.index_schema
    keys = sample_keys(
        client, snap.name, source.index.prefix, source.storage, max(audit_sample, key_sample), head=key_sample
    )
    _take_key_separator(source, keys, target_schema)
    return keys


def _judge(
    client,
    snap: IndexSnapshot,
    derived: Derivation,
    caps: ServerCapabilities,
    keys: List[bytes],
    audit_sample: int,
    audit_all: bool,
    batch_size: int,
    backup_dir: Optional[str],
) -> _Findings:
    """The verdict on the change (classification, create check), the audit of the stored values and the estimate."""
    classification, others, unchecked = _classify(client, snap, derived, caps)
    audit = _audit_source(client, snap, keys, audit_sample, audit_all, derived.rewrites)
    source = snap.snapshot.index_schema
    # What the migration's backup phase would refuse is blocked now, not found after the task started.
    _block(classification, backup_refusals(audit, source, derived.rewrites.quantize))
    cost = estimate(
        source, derived.target, snap.stats, derived.rewrites, audit, caps.aof_enabled, batch_size, backup_dir
    )
    return _Findings(classification, others, unchecked, audit, cost)


def _choose_mode(
    client,
    choice: Dict[str, Any],
    snap: IndexSnapshot,
    derived: Derivation,
    caps: ServerCapabilities,
    keys: List[bytes],
    audit_sample: int,
    found: _Findings,
) -> ModeDecision:
    """The mode (with its memory measured on the sampled keys), and what an online one needs blocked: a side
    field sampled documents already hold, a side_by_side_alias already taken."""
    source, classification = snap.snapshot.index_schema, found.classification
    memory = _online_memory(client, keys, found.cost, derived.rewrites, found.audit)
    decision = _decide_mode(client, choice, source, derived, memory, caps, found.aliases, classification)
    _block(classification, _side_fields_taken(client, keys[:audit_sample], decision, source.storage))
    side_by_side_alias = choice["side_by_side_alias"]
    if decision.online and side_by_side_alias and index_exists(client, side_by_side_alias):
        _block(
            classification,
            [f"an index or alias named {side_by_side_alias!r} exists; choose another side_by_side_alias"],
        )
    return decision


def _sealed_plan(
    snap: IndexSnapshot,
    derived: Derivation,
    caps: ServerCapabilities,
    found: _Findings,
    *,
    source: SourceState,
    requested: dict,
    requested_mode: str,
    created_at: Optional[str],
) -> MigrationPlan:
    """The plan as it is written and reviewed, sealed by its checksum."""
    schema, target, rewrites, decision = snap.snapshot.index_schema, derived.target, derived.rewrites, found.decision
    renamed = any(c.kind == INDEX_RENAME for c in derived.changes)
    layout = decision.online.layout if decision.online else None
    plan = MigrationPlan(
        created_at=created_at or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        source=source,
        requested_changes=requested,
        target_schema=target.to_dict(),
        changes=derived.changes,
        renames=Renames(
            index={"from": schema.name, "to": target.name} if renamed else None,
            prefix=rewrites.prefix.model_dump() if rewrites.prefix else None,
            fields=derived.renames,
        ),
        rewrites=rewrites,
        classification=found.classification,
        mode=decision.mode,
        requested_mode=requested_mode,
        mode_reason=decision.reason,
        online=decision.online,
        durations=durations(schema, target, snap.stats, found.cost, layout, rewrites),
        warnings=_warnings(snap, derived, caps, found),
        audit=found.audit,
        estimate=found.cost,
        server=caps,
    )
    return plan.seal()


def _warnings(snap: IndexSnapshot, derived: Derivation, caps: ServerCapabilities, found: _Findings) -> List[str]:
    """What the operator must know (plan_warnings.py), then the mode's warning and the unasked create check's."""
    warnings = collect_warnings(
        snap.snapshot.index_schema,
        derived.target,
        snap.stats,
        derived.changes,
        derived.rewrites,
        found.classification,
        found.audit,
        found.cost,
        caps,
        found.others,
        found.aliases,
        found.aliases_complete,
        snap.snapshot.unobserved,
        found.decision.online,
    )
    return warnings + [w for w in (found.decision.warning, found.unchecked) if w]


def _audit_source(
    client, snap: IndexSnapshot, keys: List[bytes], audit_sample: int, audit_all: bool, rewrites
) -> AuditResult:
    """The audit of the stored vectors (and of the values a backup stores whole): of the key sample, or of
    every document when asked for - or when the sample is as large as the index: the estimate is then exact."""
    if not audit_sample and not audit_all:
        return AuditResult(mode="skipped")
    source, stats = snap.snapshot.index_schema, snap.stats
    audit_all = audit_all or (stats.num_docs <= audit_sample and stats.fully_indexed)
    return _audit(
        client,
        snap.name,
        source,
        keys[:audit_sample],
        audit_all,
        [m.old_location for m in rewrites.moves],
        whole_prefix(source, stats),
        rewrites.quantize,
    )


def _online_memory(
    client, keys: List[bytes], cost: Estimate, rewrites: DocumentRewrites, audit: AuditResult
) -> OnlineMemory:
    """The online window's peak memory, with the document sizes it needs measured on the key sample."""
    layout = online_layout(rewrites)
    json_moves = [m.old_location for m in rewrites.moves] if rewrites.storage == "json" and layout else []
    sizes = document_memory(client, keys, whole=bool(layout and layout.copy_keys), json_paths=json_moves)
    return online_memory(cost, rewrites, layout, audit, sizes)


def _side_fields_taken(client, keys: List[bytes], decision: ModeDecision, storage: str) -> List[str]:
    """A side field must be a name no document has: a sampled document that has one blocks the plan."""
    layout = decision.online.layout if decision.online else None
    if not layout or not layout.side_fields or not keys or storage != "hash":
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        for side in layout.side_fields:
            pipe.hexists(key, side.side)
    found = pipe.execute()
    sides = layout.side_fields
    taken = sorted({sides[i % len(sides)].side for i, there in enumerate(found) if there})
    return (
        [
            f"sampled documents already hold {', '.join(taken)}, the side field(s) an online migration writes the "
            "converted vectors to; rename those fields, or use mode drop_recreate"
        ]
        if taken
        else []
    )


def _decide_mode(
    client,
    choice: Dict[str, Any],
    source: IndexSchema,
    derived: Derivation,
    memory: OnlineMemory,
    caps: ServerCapabilities,
    aliases: List[str],
    classification: Classification,
) -> ModeDecision:
    """Online or drop_recreate (modes.py), recorded in the classification; a requested mode that cannot be had
    blocks the plan."""
    if derived.changes:
        decision = choose_mode(
            choice["mode"],
            source,
            derived.target,
            derived.rewrites,
            memory,
            caps,
            aliases,
            lambda name: index_exists(client, name),
            cutover=choice["cutover"],
            side_by_side_alias=choice["side_by_side_alias"],
        )
    else:
        decision = ModeDecision(mode=DROP_RECREATE, reason="nothing to change")
    classification.mode = decision.mode
    _block(classification, [decision.blocked] if decision.blocked else [])
    return decision


def _source_state(
    snap: IndexSnapshot, index: str, endpoint: str, keys: List[bytes], aliases: List[str], complete: bool
) -> SourceState:
    """What the plan records of the source as it was seen."""
    return SourceState(
        index=snap.name,
        requested_as=index,
        endpoint=endpoint,
        index_schema=snap.snapshot.index_schema.to_dict(),
        unobserved=snap.snapshot.unobserved,
        unrecognized=snap.snapshot.unrecognized,
        stats=snap.stats.model_dump(),
        key_sample=[key_to_text(k) for k in keys],
        aliases=aliases,
        aliases_complete=complete,
    )


def _check_request(
    index: str, patch: Optional[SchemaPatch], target_schema: Optional[IndexSchema], options: Dict[str, Any]
) -> None:
    """Options and schema values within bounds (limits.py), before anything is read."""
    if (patch is None) == (target_schema is None):
        raise SchemaInvalid("give either a patch or a target schema")
    try:
        PlanningOptions(**options)
    except ValidationError as err:
        raise explain_options(err) from None
    check_text(index, "index name", "index")
    if target_schema is not None:
        check_schema(target_schema, "target schema")
    alias = options["side_by_side_alias"]
    if alias is not None:
        check_text(alias, "side_by_side_alias", "side_by_side_alias")
        if options["cutover"] != "side_by_side":
            raise SchemaInvalid(
                "side_by_side_alias is only used with cutover side_by_side",
                hint="set cutover: side_by_side, or leave side_by_side_alias out",
            )


def _take_key_separator(source: IndexSchema, keys: List[bytes], target_schema: Optional[IndexSchema]) -> None:
    """No server reports a key separator (it is how applications build keys): the sampled keys show it. A
    target schema that states a separator the keys contradict asks to change it (blocked); one that states
    none, or keys that show none, leave it as the application has it."""
    in_use = separator_in_use(keys, source.index.prefix)
    if target_schema is None:
        source.index.key_separator = in_use or source.index.key_separator
        return
    stated = "key_separator" in target_schema.index.model_fields_set
    source.index.key_separator = in_use if stated and in_use else target_schema.index.key_separator


def _classify(
    client, snap: IndexSnapshot, derived: Derivation, caps: ServerCapabilities
) -> Tuple[Classification, List[OtherIndex], Optional[str]]:
    """(the verdict against the server as it is, the other indexes read for it, a warning when the server
    could not be asked whether it accepts the target definition)."""
    source, target, changes = snap.snapshot.index_schema, derived.target, derived.changes
    renamed = any(c.kind == INDEX_RENAME for c in changes)
    live = LiveContext(
        capabilities=caps,
        others=other_indexes(client, [snap.name]),
        target_name_taken=renamed and index_exists(client, target.name),
    )
    classification = classify(source, target, changes, derived.rewrites, live, snap.snapshot.unrecognized)
    refusal, unchecked = _target_refusal(client, target) if changes else (None, None)
    if refusal:
        _block(
            classification,
            [
                f"the server refuses the target definition: {refusal} (a throwaway FT.CREATE of the "
                "exact target, dropped at once); correct the schema"
            ],
        )
    return classification, live.others, unchecked


def _block(classification: Classification, reasons: List[str]) -> None:
    if reasons:
        classification.blocked_reasons += reasons
        classification.supported = False


def _aliases(client, index: str, name: str, caps: ServerCapabilities, aliases: List[str]) -> Tuple[List[str], bool]:
    """The index's aliases and whether the list is complete. Declared ones must lead to it; found without being
    named: the one it was planned through, and the name an index made by an online migration goes by
    (`products` for `products--v2`). FT.DROPINDEX would drop them all."""
    declared = alias_targets(client, list(aliases))
    missing = [a for a, t in declared.items() if t != name]
    if missing:
        raise SchemaInvalid(
            f"aliases {', '.join(missing)} do not point at {name}", hint="list only aliases of the index being migrated"
        )
    probed = [other for other in dict.fromkeys([index, stem(name)]) if other != name and other not in declared]
    declared.update({a: t for a, t in alias_targets(client, probed).items() if t == name})
    return aliases_of(client, name, caps, declared)


def summarize(plan: MigrationPlan) -> List[str]:
    """A few lines a person can read in a job log."""
    source = plan.source.index
    lines = []
    if plan.classification.nothing_to_do:
        return [f"{source}: nothing to do - the live index already has the requested schema"]
    state = "supported" if plan.classification.supported else "BLOCKED"
    lines.append(
        f"{source}: {len(plan.changes)} change(s), {state}, mode {plan.mode}, "
        f"{plan.source.stats.get('num_docs', 0)} documents"
    )
    lines += [f"  - {c.describe()}" + (f"  [blocked: {c.reason}]" if c.blocked else "") for c in plan.changes]
    for reason in plan.classification.blocked_reasons:
        if not any(reason.endswith(c.reason or "\0") for c in plan.changes):
            lines.append(f"  blocked: {reason}")
    if plan.estimate.documents_rewritten:
        exact = "exact" if plan.estimate.backup_bytes_exact else "estimated from a sample"
        lines.append(
            f"  backup: {plan.estimate.backup_bytes} bytes ({exact}) for {plan.estimate.documents_rewritten} "
            "rewritten documents"
        )
    if plan.durations is not None:
        times = plan.durations
        lines.append(
            f"  estimated: online {times.online_seconds} s ({times.online_builds} build(s), no read gap), "
            f"drop_recreate {times.drop_recreate_seconds} s with a read gap of {times.drop_recreate_read_gap_seconds} s"
        )
    if plan.mode == "online" and plan.online is not None:
        steps = "expand, build, swap, contract" if plan.online.layout else "build, swap"
        lines.append(
            f"  online steps: {steps}; cutover {plan.online.cutover}; about {plan.online.memory_needed_bytes} bytes "
            "more memory at the peak"
        )
    if plan.audit.mode != "skipped":
        lines.append(
            f"  audit ({plan.audit.mode}): {plan.audit.documents} documents, "
            f"{plan.audit.malformed_count} malformed vectors"
        )
    lines += [f"  warning: {w}" for w in plan.warnings]
    return lines
