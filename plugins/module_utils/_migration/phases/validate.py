# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phase `validate`: the new index is what the plan promised.

- its schema equals the target schema (every attribute the server reports);
- it holds as many documents as the source did when the migration started (not checked when the
  change alters membership: a new FILTER, or new numeric/geo fields whose values may not parse);
- the plan's sampled keys exist (under their new names after a prefix change);
- a KNN query with each sampled document's own stored vector finds that document.
"""
from __future__ import annotations

import json
from typing import Any, List

from ..changes import FIELD_ADD
from ..codec import QuantParams, encode_batch
from ..deps import BaseModel, Field, numpy
from ..keyspace import key_from_text, key_to_text, renamed_key
from ..resp import as_map
from ..schema import differences
from ..snapshot import query_escape, read_info, snapshot_index
from ..stats import stats_from_info
from .context import Context
from .create import NOT_REPORTED

KNN_SAMPLE = 10
KNN_K = 10


class ValidationResult(BaseModel):
    passed: bool = False
    schema_match: bool = False
    schema_differences: List[str] = Field(default_factory=list)
    doc_count_checked: bool = True
    doc_count_expected: int = 0
    doc_count_actual: int = 0
    keys_checked: int = 0
    keys_missing: List[Any] = Field(default_factory=list)
    knn_checked: int = 0
    knn_missed: List[Any] = Field(default_factory=list)
    documents_gone: int = 0
    documents_conflicting: int = 0
    problems: List[str] = Field(default_factory=list)


def _ids(reply: Any) -> List[bytes]:
    if isinstance(reply, dict) or (isinstance(reply, list) and reply and isinstance(reply[0], dict)):
        top = as_map(reply[0] if isinstance(reply, list) else reply)
        return [as_map(r)["id"] for r in top.get("results", [])]
    return list(reply[1:])


def _query_vector(client, ctx: Context, key: bytes, field) -> bytes:
    location = ctx.target.identifier(field)
    if ctx.target.storage == "hash":
        return client.hget(key, location)
    raw = client.execute_command("JSON.GET", key, location)
    values = json.loads(raw)[0] if raw else None
    if values is None:
        return None
    params = ctx.store.header.quant_params.get(field.name)
    return encode_batch(numpy.asarray([values], dtype=numpy.float64), field.attrs.datatype,
                        QuantParams.from_dict(params) if params else None)[0]


def _membership_changes(ctx: Context) -> bool:
    """Whether the new index may hold other documents than the old: with any FILTER (a first scan skips
    documents a live write indexed), or new numeric/geo fields whose values may not parse."""
    return bool(ctx.target.index.filter) or any(c.kind == FIELD_ADD and c.after in ("numeric", "geo", "geoshape")
                                                for c in ctx.plan.changes)


def run(ctx: Context) -> ValidationResult:
    client, target = ctx.client, ctx.target
    result = ValidationResult()
    live = snapshot_index(client, target.name)
    result.schema_differences = differences(target, live.snapshot.index_schema,
                                            NOT_REPORTED + tuple(live.snapshot.unobserved))
    result.schema_match = not result.schema_differences
    result.doc_count_actual = stats_from_info(read_info(client, target.name)).num_docs
    source_docs = int(ctx.store.phase("backup").counters.get("source_num_docs", ctx.plan.source.stats.get("num_docs", 0)))
    # Keys deleted during the window stay deleted, and documents someone else changed meanwhile were
    # left as they made them (they may or may not fit the new index): both are reported, not failures.
    rewrite_counters = [ctx.store.phase(p).counters for p in ("move_fields", "rename_keys", "quantize")]
    gone = max([int(c.get("gone", 0)) for c in rewrite_counters] or [0])
    conflicts = sum(int(c.get("conflict", 0)) for c in rewrite_counters)
    gone_keys = {str(k) for c in rewrite_counters for k in c.get("gone_keys", [])}
    result.doc_count_expected = source_docs - gone
    result.doc_count_checked = not _membership_changes(ctx)
    result.documents_gone, result.documents_conflicting = gone, conflicts

    prefix = ctx.plan.rewrites.prefix
    keys = [key_from_text(k) for k in ctx.plan.source.key_sample]
    keys = [renamed_key(k, prefix.old, prefix.new) if prefix else k for k in keys]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    exists = pipe.execute() if keys else []
    result.keys_checked = len(keys)
    result.keys_missing = [key_to_text(k) for k, e in zip(keys, exists) if not e and str(key_to_text(k)) not in gone_keys]

    present = [k for k, e in zip(keys, exists) if e][:KNN_SAMPLE]
    for field in target.vector_fields():
        name = query_escape(field.name)
        for key in present:
            vector = _query_vector(client, ctx, key, field)
            if vector is None:
                continue
            reply = client.execute_command("FT.SEARCH", target.name, f"*=>[KNN {KNN_K} @{name} $v]", "PARAMS", "2", "v",
                                           vector, "NOCONTENT", "LIMIT", "0", str(KNN_K), "DIALECT", "2")
            result.knn_checked += 1
            if key not in _ids(reply):
                result.knn_missed.append({"key": key_to_text(key), "field": field.name})

    if not result.schema_match:
        result.problems.append("schema differs from the target: " + "; ".join(result.schema_differences[:5]))
    low = result.doc_count_expected - conflicts
    if result.doc_count_checked and not low <= result.doc_count_actual <= result.doc_count_expected:
        expected = f"{low} to {result.doc_count_expected}" if conflicts else str(result.doc_count_expected)
        result.problems.append(f"{result.doc_count_actual} documents indexed, {expected} expected")
    if result.keys_missing:
        result.problems.append(f"{len(result.keys_missing)} sampled key(s) missing (first: {result.keys_missing[0]})")
    if result.knn_missed:
        result.problems.append(f"{len(result.knn_missed)} of {result.knn_checked} KNN self-queries did not find "
                               f"their own document (first: {result.knn_missed[0]['key']})")
    result.passed = not result.problems
    return result
