# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phase `validate`: the new index is what the plan promised.

- its schema equals the target schema (every attribute the server reports);
- it holds as many documents as the source did when the migration started (not checked when the
  change alters membership: a new FILTER, or new numeric/geo fields whose values may not parse);
- the plan's sampled keys exist (under their new names after a prefix change);
- a KNN query with each sampled document's own stored vector finds that document, or k documents
  that are at least as near by their own stored vectors (under IP a longer vector may outrank a
  document on its own query: vectors/knn.py judges that for every metric).

An approximate source (HNSW, SVS-VAMANA) may have counted fewer documents than its keys: documents it
failed to index count as indexing failures, and the new index (FLAT, or one with room) may index them.
So the new index may hold up to the source's indexing failures more documents; that is reported
(`documents_beyond_source`), not refused.

Standalone validation (redis_index_validate, `standalone=True`) also refuses more indexing failures
than the source had: validating later, a document count alone may hide documents the new index
refused. And it tells backed-up documents deleted after the migration's own validation from those
its window lost: they are counted (`documents_deleted_since_migration`), not discounted, so the
count fails. The migration's own validation reports the figures without judging them (the source could
gain failures between planning and the run, which the plan does not record).
"""

from __future__ import annotations

import json
from typing import Any, List, NamedTuple, Optional, Set, Tuple

from ...core.deps import BaseModel, Field, numpy
from ...redis.capabilities import require_search_results
from ...redis.keyspace import indexed_keys, key_from_text, key_to_text, renamed_key
from ...redis.snapshot import snapshot_index
from ...schema.changes import FIELD_ADD
from ...vectors.codec import convert_batch, decode_batch, encode_batch
from ...vectors.knn import KNN_K, MISSED, OUTRANKED, UNJUDGED, judge_self_query, nearest
from ...vectors.quantization import QuantParams
from .context import Context

KNN_SAMPLE = 10
# HNSW is approximate: a document's own vector finds it in the top 10 about 80% of the time at the
# default EF_RUNTIME (10) on 384-d data, almost always at 1000 (knn.py searches that wide). Garbled
# vectors find themselves ~never, so accepting a few misses still catches a broken rewrite without
# failing good ones.
APPROXIMATE_MIN_HIT_RATE = 0.8


class IndexCheck(BaseModel):
    """What a validation of a new index reports first, in either mode: the verdict, the schema, and whether
    the document count could be checked."""

    passed: bool = False
    schema_match: bool = False
    schema_differences: List[str] = Field(default_factory=list)
    doc_count_checked: bool = True


class ValidationResult(IndexCheck):
    doc_count_expected: int = 0
    doc_count_actual: int = 0
    keys_checked: int = 0
    keys_missing: List[Any] = Field(default_factory=list)
    knn_checked: int = 0
    knn_missed: List[Any] = Field(default_factory=list)
    # Self-queries whose document k others rightly outrank (IP with vectors of different lengths), and
    # those that could not be judged (their results could not be read back): neither is a failure.
    knn_outranked: int = 0
    knn_unjudged: List[Any] = Field(default_factory=list)
    knn_allowed_misses: int = 0
    vectors_compared: int = 0
    vectors_differing: List[Any] = Field(default_factory=list)
    documents_gone: int = 0
    # Backed-up documents that are gone now although the last rewrite phase found them (deleted later in
    # the window): counted only when the document count would otherwise fail.
    documents_gone_since_rewrite: int = 0
    # Standalone: backed-up documents deleted after the migration's own validation (not the migration's doing,
    # but the count no longer matches the source's).
    documents_deleted_since_migration: int = 0
    documents_conflicting: int = 0
    documents_beyond_source: int = 0
    source_approximate: bool = False
    indexing_failures_before: int = 0
    indexing_failures_after: int = 0
    indexing_failures_checked: bool = False
    problems: List[str] = Field(default_factory=list)


def _stored_vector(client, ctx: Context, key: bytes, field) -> Optional[bytes]:
    """The document's vector as the index holds it (the target's datatype), None when it has none."""
    location = ctx.target.identifier(field)
    if ctx.target.storage == "hash":
        return client.hget(key, location)
    raw = client.execute_command("JSON.GET", key, location)
    values = json.loads(raw)[0] if raw and raw != b"[]" else None
    if values is None:
        return None
    params = ctx.store.header.quant_params.get(field.name)
    return encode_batch(
        numpy.asarray([values], dtype=numpy.float64),
        field.attrs.datatype,
        QuantParams.from_dict(params) if params else None,
    )[0]


def _values(raw: Optional[bytes], field) -> Any:
    """Stored bytes as the values the server computes distances with (int8/uint8: the codes)."""
    if raw is None:
        return None
    try:
        return decode_batch([raw], field.attrs.datatype, field.attrs.dims)[0]
    except ValueError:
        return None  # not a vector of this field's size: no value to compare


def _self_query(client, ctx: Context, field, key: bytes, vector: bytes, limit: Optional[int]) -> Tuple[str, str]:
    """A KNN query with a document's own vector, judged under the field's metric (knn.py). The results'
    vectors are read back only when the document is not among them."""
    k = KNN_K if limit is None else min(KNN_K, limit)
    hits = nearest(client, ctx.target.name, field, vector, k, limit)
    readable = {}
    if len(hits) >= k and all(doc_id != key for doc_id, _distance in hits):
        readable = {doc_id: _values(_stored_vector(client, ctx, doc_id, field), field) for doc_id, _distance in hits}
    return judge_self_query(key, _values(vector, field), hits, readable, field.attrs.distance_metric, k)


def _expected_vectors(ctx: Context, limit: Optional[int]) -> dict:
    """{field: [(final key, expected bytes)]} for the first documents of the backup, converted from their
    originals by the codec, for every quantized field (documents deleted meanwhile are skipped)."""
    rewrites = ctx.plan.rewrites
    if not rewrites.quantize or not ctx.store.has_data():
        return {}
    params = {f: QuantParams.from_dict(p) for f, p in ctx.store.header.quant_params.items()}
    _block_no, records = next(ctx.store.iter_blocks())
    records = [r for r in records if r is not None]
    pipe = ctx.client.pipeline(transaction=False)
    finals = [
        renamed_key(r.key, rewrites.prefix.old, rewrites.prefix.new) if rewrites.prefix else r.key for r in records
    ]
    for key in finals:
        pipe.exists(key)
    alive = pipe.execute() if finals else []
    indexed = indexed_keys(ctx.client, ctx.target.name, [k for k, a in zip(finals, alive) if a], limit)
    chosen = [(k, r) for k, r in zip(finals, records) if k in indexed][:KNN_SAMPLE]
    found = {}
    for quant in rewrites.quantize:
        pairs = [(k, r.value(quant.source_location.encode())) for k, r in chosen]
        pairs = [(k, v) for k, v in pairs if v is not None]
        converted = convert_batch(
            [v for _k, v in pairs], quant.source, quant.target, quant.dims, params.get(quant.field)
        )
        found[quant.field] = [(k, c) for (k, _v), c in zip(pairs, converted)]
    return found


def _missing_now(ctx: Context) -> int:
    """How many of the backup's documents do not exist (under their final name) now."""
    prefix = ctx.plan.rewrites.prefix
    missing = 0
    for _block_no, records in ctx.store.iter_blocks():
        keys = [renamed_key(r.key, prefix.old, prefix.new) if prefix else r.key for r in records if r is not None]
        pipe = ctx.client.pipeline(transaction=False)
        for key in keys:
            pipe.exists(key)
        missing += sum(1 for found in (pipe.execute() if keys else []) if not found)
    return missing


def _membership_changes(ctx: Context) -> bool:
    """Whether the new index may hold other documents than the old: with any FILTER (a first scan skips
    documents a live write indexed), or new numeric/geo fields whose values may not parse."""
    return bool(ctx.target.index.filter) or any(
        c.kind == FIELD_ADD and c.after in ("numeric", "geo", "geoshape") for c in ctx.plan.changes
    )


def _approximate(ctx: Context) -> bool:
    """Whether the source index counted documents through an approximate vector index."""
    return any(field.attrs.algorithm != "flat" for field in ctx.source.vector_fields())


class _Window(NamedTuple):
    """What the migration's window did to the documents, as its phases counted it."""

    source_docs: int  # the source's documents when the migration started
    gone: int  # deleted during the rewrites (stay deleted)
    conflicts: int  # changed by someone else meanwhile (left as they made them)
    gone_keys: Set[str]
    beyond: int  # documents an approximate source failed, which the new index may hold


def run(ctx: Context, standalone: bool = False) -> ValidationResult:
    client, target = ctx.client, ctx.target
    result = ValidationResult()
    live = snapshot_index(client, target.name)
    result.schema_differences = live.snapshot.differs_from(target)
    result.schema_match = not result.schema_differences
    window = _count_figures(ctx, result, live.stats, standalone)
    keys, exists = _sampled_keys(ctx, result, window.gone_keys)
    limit = require_search_results(client, f"cannot validate {target.name}")
    _check_vectors(ctx, result, keys, exists, limit)

    if not result.schema_match:
        result.problems.append("schema differs from the target: " + "; ".join(result.schema_differences[:5]))
    _judge_count(ctx, result, window, standalone)
    # Conflicting documents hold what the application wrote: the new index may refuse them.
    if (
        result.indexing_failures_checked
        and result.indexing_failures_after > result.indexing_failures_before + window.conflicts
    ):
        result.problems.append(
            f"indexing failures rose from {result.indexing_failures_before} (source) to "
            f"{result.indexing_failures_after}: the new index refuses documents the source indexed"
        )
    if result.keys_missing:
        result.problems.append(f"{len(result.keys_missing)} sampled key(s) missing (first: {result.keys_missing[0]})")
    if result.vectors_differing:
        result.problems.append(
            f"{len(result.vectors_differing)} of {result.vectors_compared} sampled vectors differ "
            f"from the conversion of their backed-up original (first: "
            f"{result.vectors_differing[0]['key']})"
        )
    if len(result.knn_missed) > result.knn_allowed_misses:
        result.problems.append(
            f"{len(result.knn_missed)} of {result.knn_checked} KNN self-queries did not find "
            f"their own document (first: {result.knn_missed[0]['key']})"
        )
    result.passed = not result.problems
    return result


def _count_figures(ctx: Context, result: ValidationResult, stats, standalone: bool) -> _Window:
    """The document count found and expected, and what the window did to the documents."""
    result.doc_count_actual = stats.num_docs
    source_docs = int(
        ctx.store.phase("backup").counters.get("source_num_docs", ctx.plan.source.stats.get("num_docs", 0))
    )
    # Keys deleted during the window stay deleted, and documents someone else changed meanwhile were
    # left as they made them (they may or may not fit the new index): both are reported, not failures.
    rewrite_counters = [ctx.store.phase(p).counters for p in ("move_fields", "rename_keys", "quantize")]
    gone = max([int(c.get("gone", 0)) for c in rewrite_counters] or [0])
    conflicts = sum(int(c.get("conflict", 0)) for c in rewrite_counters)
    gone_keys = {str(k) for c in rewrite_counters for k in c.get("gone_keys", [])}
    result.doc_count_expected = source_docs - gone
    result.doc_count_checked = not _membership_changes(ctx)
    result.documents_gone, result.documents_conflicting = gone, conflicts
    result.indexing_failures_before = int(ctx.plan.source.stats.get("hash_indexing_failures", 0))
    result.indexing_failures_after = stats.hash_indexing_failures
    result.indexing_failures_checked = standalone and result.doc_count_checked
    result.source_approximate = _approximate(ctx)
    # The documents an approximate source failed may be indexed now: at most that many more.
    beyond = result.indexing_failures_before if result.source_approximate else 0
    result.documents_beyond_source = max(0, min(result.doc_count_actual - result.doc_count_expected, beyond))
    return _Window(source_docs, gone, conflicts, gone_keys, beyond)


def _sampled_keys(ctx: Context, result: ValidationResult, gone_keys: Set[str]) -> Tuple[List[bytes], List[Any]]:
    """The plan's sampled keys under their final names, and whether each exists (deleted during the window: not
    missing)."""
    prefix = ctx.plan.rewrites.prefix
    keys = [key_from_text(k) for k in ctx.plan.source.key_sample]
    keys = [renamed_key(k, prefix.old, prefix.new) if prefix else k for k in keys]
    pipe = ctx.client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    exists = pipe.execute() if keys else []
    result.keys_checked = len(keys)
    result.keys_missing = [
        key_to_text(k) for k, e in zip(keys, exists) if not e and str(key_to_text(k)) not in gone_keys
    ]
    return keys, exists


def _check_vectors(
    ctx: Context, result: ValidationResult, keys: List[bytes], exists: List[Any], limit: Optional[int]
) -> None:
    """KNN self-queries of sampled documents per vector field, and quantized vectors compared with the
    conversion of their backed-up originals."""
    client, target = ctx.client, ctx.target
    expected = _expected_vectors(ctx, limit)
    indexed = indexed_keys(client, target.name, [k for k, e in zip(keys, exists) if e], limit)
    present = [k for k in keys if k in indexed][:KNN_SAMPLE]
    allowed_misses = 0
    for field in target.vector_fields():
        checked_before = result.knn_checked
        # Quantized fields: query with the backup's original, converted here, and compare the stored
        # bytes with it - a rewrite that wrote the wrong values is caught even if the index agrees.
        samples = expected.get(field.name) or [(k, _stored_vector(client, ctx, k, field)) for k in present]
        for key, vector in samples:
            if vector is None:
                continue
            if field.name in expected:
                result.vectors_compared += 1
                if client.hget(key, ctx.target.identifier(field)) != vector:
                    result.vectors_differing.append({"key": key_to_text(key), "field": field.name})
            result.knn_checked += 1
            verdict, why = _self_query(client, ctx, field, key, vector, limit)
            if verdict == MISSED:
                result.knn_missed.append({"key": key_to_text(key), "field": field.name, "why": why})
            elif verdict == OUTRANKED:
                result.knn_outranked += 1
            elif verdict == UNJUDGED:
                result.knn_unjudged.append({"key": key_to_text(key), "field": field.name, "why": why})
        if field.attrs.algorithm != "flat":
            checked = result.knn_checked - checked_before
            allowed_misses += int(checked * (1 - APPROXIMATE_MIN_HIT_RATE) + 1e-9)
    result.knn_allowed_misses = allowed_misses


def _judge_count(ctx: Context, result: ValidationResult, window: _Window, standalone: bool) -> None:
    """The document count within what the window explains; below it, documents deleted after the rewrites
    are counted first (during the window, or - standalone - since the migration's own validation)."""
    conflicts = window.conflicts
    low = result.doc_count_expected - conflicts
    if result.doc_count_checked and result.doc_count_actual < low and ctx.store.has_data():
        # Documents deleted after the rewrites passed them (during create, wait or this phase) were counted
        # by no phase; no phase after the rewrites removes a document, so they are the window's deletions.
        missing = _missing_now(ctx)
        # Standalone, after the migration's own validation counted its window's deletions: the rest came later.
        recorded = ctx.store.phase("validate").counters.get("documents_gone") if standalone else None
        if recorded is not None and missing > int(recorded):
            result.documents_deleted_since_migration = missing - int(recorded)
            result.documents_gone = int(recorded)
            result.doc_count_expected = window.source_docs - int(recorded)
        elif missing > window.gone:
            result.documents_gone_since_rewrite = missing - window.gone
            result.documents_gone = missing
            result.doc_count_expected = window.source_docs - missing
        low = result.doc_count_expected - conflicts
    high = result.doc_count_expected + window.beyond
    if result.doc_count_checked and not low <= result.doc_count_actual <= high:
        expected = f"{low} to {high}" if low != high else str(high)
        since = result.documents_deleted_since_migration
        result.problems.append(
            f"{result.doc_count_actual} documents indexed, {expected} expected"
            + (
                f" ({since} document(s) of the backup deleted since the migration: validate before the application "
                "writes again)"
                if since
                else ""
            )
        )
