# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The phases of an online migration: the target built beside the live source, then swapped in.

    create    FT.CREATE of the exact target under its own name (modes.py) on the same prefixes
    wait      until it has indexed everything (progress in the header, for redis_index_info)
    validate  against the live source: schema, document counts, sampled documents, KNN agreement
    swap      one MULTI/EXEC of one script: unless the source's definition or aliases changed during the
              build (then nothing is swapped), the source is dropped and its name and aliases lead
              to the new index

The source serves every query until the EXEC and the new index every query after it. Each phase
is safe to run again; a failure before the swap drops the new index (migrate.py), so that nothing
is left beside the source.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ...core import failpoints
from ...core.deps import Field, numpy
from ...core.errors import MigrationFailed
from ...redis.capabilities import detect_capabilities, require_search_results
from ...redis.catalog import aliases_of
from ...redis.connection import execute_once
from ...redis.keyspace import indexed_keys, key_from_text, key_to_text, renamed_key
from ...redis.scripts import GUARDED_SWAP, SOURCE_CHANGED
from ...redis.snapshot import read_info, read_schema, real_name
from ...redis.stats import stats_from_info
from ...redis.waiting import StillIndexing, wait_until_indexed
from ...schema.changes import FIELD_ADD, INDEX_OPTION, VECTOR_DATATYPE
from ...schema.model import IndexSchema
from ...schema.online_layout import interim_schema
from ...vectors.codec import convert_batch, encode_batch
from ...vectors.knn import KNN_K, SpacedQueries
from ...vectors.quantization import QuantParams
from .context import Context
from .create import create_once
from .validate import IndexCheck

KNN_SAMPLE = 10
# Share of one index's top 10 the other must also return, on average, where either is approximate (HNSW)
# or the datatype changed (ties break differently). A wrong definition shares almost nothing; a correct
# HNSW index over hard data shares less than one might think: 77% at EF_RUNTIME 1000 for 200k uniform
# random 384-d vectors (M 16, EF_CONSTRUCTION 200), which an 80% floor failed.
APPROXIMATE_AGREEMENT = 0.5
# The validation's KNN queries run while the source serves, each a brute-force pass on a large FLAT index (24 to
# 39 ms at 200k x 384): after each, the server is left idle for as long as it took, so that a reader's query and
# the commands it sends with it run between two of them (vectors/knn.py). Validation takes twice as long; only
# online validation is spaced - drop_recreate's serves no reader at that point it could spare a wait.
KNN_IDLE_RATIO = 1.0


class OnlineValidation(IndexCheck):
    doc_count_source: int = 0
    doc_count_target: int = 0
    doc_count_tolerance: int = 0
    keys_checked: int = 0
    keys_missing: List[Any] = Field(default_factory=list)
    knn_fields: Dict[str, Any] = Field(default_factory=dict)
    knn_queries: int = 0
    knn_query_ms_median: float = 0.0
    knn_query_ms_max: float = 0.0
    problems: List[str] = Field(default_factory=list)


class Build(NamedTuple):
    """One build of an online migration: the index it makes (`new`, named) beside the one that serves."""

    new: IndexSchema
    serving: IndexSchema
    phase: str = ""  # the phase whose counters it records ("" = create, wait, validate, swap)


def first_build(ctx: Context) -> Build:
    """The build beside the source: the target, or - a datatype change in place - the interim index on the
    side fields."""
    plan = ctx.plan
    layout = plan.online_layout
    if layout is not None and layout.side_fields:
        return Build(interim_schema(plan.final_schema(), layout, plan.online.interim_index), ctx.source)
    return Build(plan.final_schema(), ctx.source)


def final_build(ctx: Context) -> Build:
    """A datatype change in place: the target on the converted original locations, beside the interim index."""
    first = first_build(ctx)
    return Build(ctx.plan.final_schema(), first.new, "rebuild")


def _counter(build: Build, phase: str) -> str:
    return build.phase or phase


def create_built(ctx: Context, build: Build) -> None:
    name = build.new.name
    if real_name(ctx.client, name) == name:
        if not read_schema(ctx.client, name).matches(build.new):
            raise MigrationFailed(
                f"an index named {name!r} exists with another definition; nothing was changed",
                hint="drop it or choose another target name, then plan again",
            )
    else:
        create_once(ctx.client, build.new)
    failpoints.hit(_counter(build, "create"), 0)


def wait_built(ctx: Context, build: Build) -> None:
    phase = _counter(build, "wait")

    def report(stats) -> None:
        ctx.progress(phase, num_docs=stats.num_docs, percent_indexed=stats.percent_indexed)

    name = build.new.name
    try:
        wait_until_indexed(ctx.client, name, ctx.options.wait_timeout, on_poll=report)
    except StillIndexing as err:
        raise MigrationFailed(
            f"{name} was still indexing after {ctx.options.wait_timeout:.0f} s ({err}); "
            f"{build.serving.name} kept serving",
            hint="raise wait_timeout and re-run the same task",
        ) from None


def run_create(ctx: Context) -> None:
    create_built(ctx, first_build(ctx))


def run_wait(ctx: Context) -> None:
    wait_built(ctx, first_build(ctx))


# -- validation against the live source ----------------------------------------------------------------


def _membership_may_change(ctx: Context) -> bool:
    """Whether the new index may hold other documents than the source: another FILTER, new numeric/geo
    fields whose values may not parse, a narrower datatype whose range some values exceed."""
    for change in ctx.plan.changes:
        if change.kind == INDEX_OPTION and change.attribute in ("filter", "language_field", "score_field"):
            return True
        if change.kind == FIELD_ADD and change.after in ("numeric", "geo", "geoshape", "vector"):
            return True
        if change.kind == VECTOR_DATATYPE:
            return True
    return False


def _counts(ctx: Context, build: Build) -> Tuple[int, int, int]:
    """(source documents, target documents, how far the source moved while they were read): writes go on."""
    client = ctx.client
    first = stats_from_info(read_info(client, build.serving.name)).num_docs
    target = stats_from_info(read_info(client, build.new.name)).num_docs
    second = stats_from_info(read_info(client, build.serving.name)).num_docs
    return second, target, abs(second - first)


def _top(queries: SpacedQueries, client, index: str, field, vector: bytes, limit: Optional[int]) -> List[bytes]:
    return [doc_id for doc_id, _distance in queries.nearest(client, index, field, vector, KNN_K, limit)]


def _query_vectors(ctx: Context, build: Build, keys: List[bytes], before, after) -> List[Tuple[bytes, bytes]]:
    """(query for the source, query for the target) from sampled documents' own vectors."""
    client, found = ctx.client, []
    location = build.serving.identifier(before)
    for key in keys:
        if build.serving.storage == "hash":
            raw = client.hget(key, location)
            if raw is None:
                continue
            if before.attrs.datatype == after.attrs.datatype:
                found.append((raw, raw))
                continue
            params = ctx.store.header.quant_params.get(after.name)
            try:
                converted = convert_batch(
                    [raw],
                    before.attrs.datatype,
                    after.attrs.datatype,
                    after.attrs.dims,
                    QuantParams.from_dict(params) if params else None,
                )[0]
            except ValueError:
                continue
            found.append((raw, converted))
            continue
        text = client.execute_command("JSON.GET", key, location)
        values = json.loads(text)[0] if text and text != b"[]" else None
        if not values:
            continue
        matrix = numpy.asarray([values], dtype=numpy.float64)
        try:
            found.append(
                (encode_batch(matrix, before.attrs.datatype)[0], encode_batch(matrix, after.attrs.datatype)[0])
            )
        except ValueError:
            continue  # a value the narrower type cannot hold: not a usable query
    return found[:KNN_SAMPLE]


def _moved_key(ctx: Context, build: Build, key: bytes, back: bool = False) -> bytes:
    """A document's key as the new index sees it (`back`: as the serving one does): a prefix change online
    builds the new index on copies under the new prefix."""
    prefix = ctx.plan.rewrites.prefix
    if prefix is None or list(build.new.index.prefix) == list(build.serving.index.prefix):
        return key
    old, new = (prefix.new, prefix.old) if back else (prefix.old, prefix.new)
    return renamed_key(key, old, new) if key.startswith(old.encode()) else key


TIE_TOLERANCE = 1e-3  # relative: a narrower datatype moves distances by about its precision


def _tied(ctx: Context, queries: SpacedQueries, build: Build, source, target, limit: Optional[int]) -> set:
    """Documents the new index returns at a distance no farther than the source's 10th (within the datatype's
    precision): equally right answers - among equal vectors which of them make the top 10 is arbitrary, and
    two indexes break the ties differently."""
    hits = queries.nearest(ctx.client, build.serving.name, source[0], source[1], KNN_K, limit)
    if not hits:
        return set()
    bound = max(distance for _id, distance in hits)
    bound += abs(bound) * TIE_TOLERANCE + 1e-6
    found = queries.nearest(ctx.client, build.new.name, target[0], target[1], KNN_K, limit)
    return {_moved_key(ctx, build, doc, back=True) for doc, distance in found if distance <= bound}


def _knn_agreement(
    ctx: Context, queries: SpacedQueries, build: Build, keys: List[bytes], limit: Optional[int]
) -> Dict[str, Any]:
    """Per vector field: the share of the source's top 10 that the target also returns, for queries with
    sampled documents' own vectors. Where the metric changed, rankings differ by design: not compared."""
    found: Dict[str, Any] = {}
    for after in build.new.vector_fields():
        before = build.serving.field(after.name)
        if before is None or before.type != "vector" or before.attrs.distance_metric != after.attrs.distance_metric:
            continue
        exact = (
            before.attrs.algorithm == after.attrs.algorithm == "flat" and before.attrs.datatype == after.attrs.datatype
        )
        shares = []
        for source_query, target_query in _query_vectors(ctx, build, keys, before, after):
            expected = _top(queries, ctx.client, build.serving.name, before, source_query, limit)
            if not expected:
                continue
            got = {
                _moved_key(ctx, build, k, back=True)
                for k in _top(queries, ctx.client, build.new.name, after, target_query, limit)
            }
            tied = _tied(ctx, queries, build, (before, source_query), (after, target_query), limit)
            shares.append(min(len(got & (set(expected) | tied)), len(expected)) / len(expected))
        mean = sum(shares) / len(shares) if shares else 1.0
        wanted = 1.0 if exact else APPROXIMATE_AGREEMENT
        found[after.name] = {
            "queries": len(shares),
            "agreement": round(mean, 4),
            "required": wanted,
            "passed": mean >= wanted - 1e-9,
        }
    return found


def validate(ctx: Context, build: Optional[Build] = None) -> OnlineValidation:
    build = build or first_build(ctx)
    client, result = ctx.client, OnlineValidation()
    new, serving = build.new.name, build.serving.name
    result.schema_differences = read_schema(client, new).differs_from(build.new)
    result.schema_match = not result.schema_differences
    source, target, moved = _counts(ctx, build)
    result.doc_count_source, result.doc_count_target, result.doc_count_tolerance = source, target, moved
    result.doc_count_checked = not _membership_may_change(ctx)
    algorithms = {
        (build.serving.field(f.name).attrs.algorithm if build.serving.field(f.name) else None, f.attrs.algorithm)
        for f in build.new.vector_fields()
    }
    # An approximate (HNSW) source may count fewer documents than an exact (FLAT) target finds.
    more_allowed = ("hnsw", "flat") in algorithms
    limit = require_search_results(client, f"cannot validate {new}")
    keys = [key_from_text(k) for k in ctx.plan.source.key_sample]
    in_source = indexed_keys(client, serving, keys, limit)
    moved_keys = {_moved_key(ctx, build, k): k for k in keys if k in in_source}
    in_target = {moved_keys[k] for k in indexed_keys(client, new, list(moved_keys), limit)}
    result.keys_checked = len(in_source)
    result.keys_missing = [key_to_text(k) for k in keys if k in in_source and k not in in_target]
    queries = SpacedQueries(KNN_IDLE_RATIO)
    result.knn_fields = _knn_agreement(ctx, queries, build, [k for k in keys if k in in_target], limit)
    if queries.took:
        result.knn_queries = len(queries.took)
        result.knn_query_ms_median = round(float(numpy.median(queries.took)) * 1000, 1)
        result.knn_query_ms_max = round(max(queries.took) * 1000, 1)

    if not result.schema_match:
        result.problems.append("schema differs from the target: " + "; ".join(result.schema_differences[:5]))
    if result.doc_count_checked:
        low, high = source - moved, source + moved + (target if more_allowed else 0)
        if not low <= target <= high:
            result.problems.append(f"{target} documents indexed by {new}, {source} by {serving}")
    elif source and not target:
        result.problems.append(f"{new} indexed no document; {serving} holds {source}")
    if result.doc_count_checked and result.keys_missing:
        result.problems.append(
            f"{len(result.keys_missing)} sampled document(s) missing from {new} (first: {result.keys_missing[0]})"
        )
    for name, knn in result.knn_fields.items():
        if not knn["passed"]:
            result.problems.append(
                f"KNN on {name!r}: the new index returns {knn['agreement']:.0%} of the source's top "
                f"{KNN_K} (at least {knn['required']:.0%} expected)"
            )
    result.passed = not result.problems
    return result


def validate_built(ctx: Context, build: Build) -> None:
    result = validate(ctx, build)
    ctx.store.phase(_counter(build, "validate")).counters.update(result.model_dump())
    if not result.passed:
        raise MigrationFailed(
            "validation failed: "
            + "; ".join(result.problems)
            + f"; {build.serving.name} kept serving and is unchanged",
            hint="inspect the plan and the documents, then re-run or plan again",
            details={"validation": result.model_dump()},
        )


def run_validate(ctx: Context) -> None:
    validate_built(ctx, first_build(ctx))


# -- the swap -----------------------------------------------------------------------------------------------


def swapped(ctx: Context, build: Optional[Build] = None) -> bool:
    """Whether the source's name already leads to the build's index (the swap's EXEC ran) - or to the index
    a later build made."""
    build = build or first_build(ctx)
    return real_name(ctx.client, _probe(ctx)) in (build.new.name, ctx.plan.final_index)


def _probe(ctx: Context) -> str:
    """A name that leads to the serving index before each swap and to the new one after it: the source's own
    name disappears with it when it was a generation (`idx--v2`), its names stay."""
    names = ctx.plan.online.names
    return names[0] if names else ctx.source.name


def _source_as_planned(ctx: Context, build: Build, names: List[str]) -> None:
    """The serving index still has the definition the plan was made from, and each of its names still leads
    to it: what someone changed during the build (FT.ALTER, an alias moved, deleted or added) would be lost
    by the swap."""
    client, source = ctx.client, build.serving.name
    found = read_schema(client, source).differs_from(build.serving)
    if found:
        _refuse_swap(build, f"its definition changed: {'; '.join(found[:3])}")
    moved = [name for name in names if name != source and real_name(client, name) != source]
    if moved:
        _refuse_swap(build, f"alias(es) {', '.join(moved)} no longer lead to it")
    caps = detect_capabilities(client, probe=False)
    if caps.alias_listing:
        aliases, _complete = aliases_of(client, source, caps, {})
        added = sorted(set(aliases) - set(names))
        if added:
            _refuse_swap(build, f"alias(es) {', '.join(added)} were added to it")


def _refuse_swap(build: Build, what: str) -> None:
    raise MigrationFailed(
        f"{build.serving.name} changed while {build.new.name} was built ({what}); nothing was "
        f"swapped: {build.serving.name} serves as it is",
        hint="plan again against the index as it is now (the index built beside it is dropped)",
    )


def swap_built(ctx: Context, build: Build, phase: str = "swap", extra: Optional[List[str]] = None) -> None:
    plan, client = ctx.plan, ctx.client
    final, names = build.new.name, list(plan.online.names)
    moved = names + list(extra or [])
    serving = build.serving.name
    ctx.store.header.aliases = names
    ctx.store.save()
    probe = _probe(ctx)
    if real_name(client, probe) == final:
        return
    if real_name(client, probe) != serving:
        raise MigrationFailed(
            f"{probe} is gone or leads elsewhere than {serving}; nothing was swapped",
            hint=f"{final} holds the target; point the names at it by hand or roll back",
        )
    # The definition's fingerprint first, then the check that it is the planned one: a change after the
    # check changes the fingerprint, which the swap script compares before it writes anything.
    fingerprint = client.execute_command("EVAL", GUARDED_SWAP, "0", serving, final, "", *moved)
    _source_as_planned(ctx, build, moved)
    failpoints.hit(phase, 0)
    # One script in one transaction: no client sees the source gone and its names not yet moved, and
    # nothing changes the source between the script's check and its drop. The names are added after the
    # drop, which removes the source's own aliases with it.
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("EVAL", GUARDED_SWAP, "0", serving, final, fingerprint, *moved)
    replies = execute_once(client, pipe, raise_on_error=False)
    errors = [str(r) for r in replies if isinstance(r, Exception)]
    refused = [e for e in errors if e.startswith(SOURCE_CHANGED)]
    if refused:
        _refuse_swap(build, refused[0][len(SOURCE_CHANGED) :].strip())
    wrong = [n for n in moved if real_name(client, n) != final]
    if errors or wrong:
        raise MigrationFailed(
            f"the swap did not complete: {'; '.join(errors) or 'names not moved: ' + ', '.join(wrong)}",
            hint=f"{final} holds the target; re-run the same task, or point the names at it by hand",
        )
    ctx.progress(phase, force=True, names=names, index=final)


def run_swap(ctx: Context) -> None:
    build = first_build(ctx)
    if swapped(ctx, build):
        ctx.store.header.aliases = list(ctx.plan.online.names)
        ctx.store.save()
        return
    swap_built(ctx, build)


# -- side by side -------------------------------------------------------------------------------------------


SIDE_BY_SIDE = "side_by_side"


def with_cutover(online_plan, build_and_swap: list) -> list:
    """create, wait, validate, swap - with a side-by-side stop before the swap when the plan asks for one."""
    if online_plan is None or online_plan.cutover != SIDE_BY_SIDE:
        return build_and_swap
    at = [name for name, _run in build_and_swap].index("swap")
    return [*build_and_swap[:at], (SIDE_BY_SIDE, run_side_by_side), *build_and_swap[at:]]


class SideBySide(Exception):
    """Not a failure: a side_by_side migration stops here until a run with finish."""


def run_side_by_side(ctx: Context) -> None:
    """The first index serves beside the source (under its own name, and the alias the plan names); without
    `finish` the run stops here, each name leading where it did."""
    online_plan, build = ctx.plan.online, first_build(ctx)
    alias = online_plan.side_by_side_alias
    if alias and not swapped(ctx, build) and real_name(ctx.client, alias) != build.new.name:
        ctx.client.execute_command("FT.ALIASUPDATE", alias, build.new.name)
    ctx.progress(SIDE_BY_SIDE, force=True, index=build.new.name, alias=alias)
    if not ctx.options.finish:
        raise SideBySide(build.new.name)


def side_by_side_names(ctx: Context) -> List[str]:
    """The names a later swap moves: the alias of a side-by-side migration goes with the others."""
    alias = ctx.plan.online.side_by_side_alias
    return [alias] if alias and ctx.plan.online.cutover == SIDE_BY_SIDE else []
