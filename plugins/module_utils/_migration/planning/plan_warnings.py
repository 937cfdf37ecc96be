# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything the operator must know before applying a plan, as one sentence each."""

from __future__ import annotations

from typing import List, Optional

from ..redis.capabilities import ServerCapabilities
from ..redis.catalog import OtherIndex
from ..redis.keyspace import prefixes_overlap
from ..redis.stats import IndexStats
from ..schema.changes import FIELD_ADD, FIELD_REMOVE, VECTOR_DATATYPE, Change
from ..schema.model import IndexSchema
from ..schema.rewrites import DocumentRewrites
from ..vectors.audit import AuditResult
from ..vectors.codec import describe_conversion
from .classify import Classification
from .estimate import Estimate
from .modes import OnlineSwap

# BG_INDEX_SLEEP_GAP advised for online builds of an HNSW index, and what it changed in the benchmark
# (docs/benchmarks.md, "Background indexing"): a reader's longest wait while the new index builds.
ADVISED_SLEEP_GAP = 10
MEASURED_EFFECT = (
    "in our benchmark, an online rename at 20,000 x 128 HNSW on 2 CPUs, a reader's longest wait during the build "
    "was 86 to 104 ms at 100 and 31 to 32 ms at 10, for a build about 10% longer"
)


def _size(num: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(num) < 1024 or unit == "TiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    return str(num)


def collect_warnings(
    source: IndexSchema,
    target: IndexSchema,
    stats: IndexStats,
    changes: List[Change],
    rewrites: DocumentRewrites,
    classification: Classification,
    audit: AuditResult,
    estimate: Estimate,
    caps: ServerCapabilities,
    others: List[OtherIndex],
    aliases: List[str],
    aliases_complete: bool,
    unobserved: List[str],
    online: Optional[OnlineSwap] = None,
) -> List[str]:
    if classification.nothing_to_do:
        return []
    found = [_mode_warning(source, stats, rewrites, classification, online)]
    found += background_indexing_warning(
        target, caps.bg_index_sleep_gap, online is not None and classification.mode == "online"
    )
    found += _change_warnings(changes, target)
    found += _index_warnings(source, target, stats)
    found += _alias_warnings(source, caps, aliases)
    found += _unobserved_warnings(unobserved)
    for other in others:
        overlap = any(prefixes_overlap(m, t) for m in source.index.prefix for t in other.prefixes)
        if overlap and (rewrites.moves or rewrites.prefix) and other.name not in classification.shared_key_indexes:
            found.append(
                f"Index {other.name!r} covers some of the same keys; renaming keys or fields changes what it indexes."
            )
    found += _audit_warnings(source, stats, rewrites, audit)
    found += _cost_warnings(audit, estimate)
    return found


def _mode_warning(
    source: IndexSchema,
    stats: IndexStats,
    rewrites: DocumentRewrites,
    classification: Classification,
    online: Optional[OnlineSwap],
) -> str:
    """What the index's users see during the migration: nothing (online), or a read gap."""
    if online is not None and classification.mode == "online":
        if online.layout is None:
            said = (
                f"Online: {online.index} is built beside {source.name} from the same documents while {source.name} "
                f"keeps serving (about {_size(online.memory_needed_bytes)} more memory until the swap), then "
                f"swapped in at once: {', '.join(online.names)} lead to {online.index} from then on. Writes go on; "
                "documents written during the build are indexed by both."
            )
        else:
            said = _rewrite_online_warning(source, rewrites, online)
        if online.cutover == "side_by_side":
            alias = f" (and {online.side_by_side_alias})" if online.side_by_side_alias else ""
            said += (
                f" Side by side: the first run stops once {online.first_index}{alias} serves beside {source.name}; "
                f"move the clients to it at their own pace, then run the same task again with finish: true to swap "
                "and contract."
            )
        return said
    return (
        f"Downtime: {source.name} is dropped and recreated; queries fail from the drop until the new index has "
        f"indexed all {stats.num_docs} documents, and writes in that window are not indexed"
        + (" and may be overwritten by the rewrite" if rewrites.any else "")
        + ". Stop reads and writes for the migration window."
    )


def _rewrite_online_warning(source: IndexSchema, rewrites: DocumentRewrites, online: OnlineSwap) -> str:
    """The steps of an online rewrite, and what the application must do during and after it."""
    layout = online.layout
    if layout.copy_keys:
        where = f"each document is copied under its new key ({rewrites.prefix.new!r}) with its new layout"
        contract = "the old keys are deleted"
    else:
        where = "the new values are written beside the old ones in each document"
        contract = "the old values are removed"
    said = (
        f"Online: {where} while {source.name} keeps serving (expand), {online.first_index} is built on them (build), "
        f"then swapped in at once (swap) and {contract} (contract); about {_size(online.memory_needed_bytes)} more "
        "memory at the peak."
    )
    if layout.side_fields:
        said += (
            f" The vectors are converted in place after the swap, while {online.first_index} serves from the side "
            f"field(s) {', '.join(layout.side_locations)}; then {online.index} is built on them and swapped in the "
            "same way: two builds."
        )
    if rewrites.quantize:
        types = ", ".join(sorted({q.target for q in rewrites.quantize}))
        said += (
            f" From the swap on, {', '.join(online.names)} expect {types} query vectors: query with the index's "
            "current datatype (or retry with the other on the server's blob-size error)."
        )
    return said + (
        " Writes: stop them for the window (the write_quiesce role), or documents the application changes before "
        "the swap keep what it wrote and are reported as conflicts; from the swap on it must write the new layout."
    )


def background_indexing_warning(target: IndexSchema, sleep_gap: Optional[int], online: bool) -> List[str]:
    """Advice for an online migration that builds an HNSW index while the source serves: the search module
    indexes BG_INDEX_SLEEP_GAP documents per hold of the server's lock, and HNSW insertions are slow enough that
    each hold is a read gap. A smaller value, set when the module loads (restart), shortens it."""
    hnsw = [f.name for f in target.vector_fields() if f.attrs.algorithm == "hnsw"]
    if not online or not hnsw or sleep_gap is None or sleep_gap <= ADVISED_SLEEP_GAP:
        return []
    return [
        f"Background indexing: the server indexes {sleep_gap} documents per hold of its lock "
        f"(BG_INDEX_SLEEP_GAP {sleep_gap}), and each hold of the online build of HNSW field(s) {', '.join(hnsw)} "
        f"is a pause for every client ({MEASURED_EFFECT}). "
        f"To shorten it, load the search module with BG_INDEX_SLEEP_GAP {ADVISED_SLEEP_GAP} (--loadmodule "
        f"redisearch.so BG_INDEX_SLEEP_GAP {ADVISED_SLEEP_GAP}, or on the loadmodule line of redis.conf); it "
        "cannot be changed at runtime, so it takes a server restart before the migration."
    ]


def _change_warnings(changes: List[Change], target: IndexSchema) -> List[str]:
    """What each applied change costs: precision, a field no longer searchable, documents that drop out."""
    found = []
    for change in changes:
        if change.blocked:
            continue
        if change.kind == VECTOR_DATATYPE:
            conversion = describe_conversion(change.before, change.after)
            if conversion["lossy"] and change.rewrites_documents:
                found.append(
                    f"Lossy quantization of {change.field!r}: {change.before} -> {change.after}, "
                    f"{conversion['precision']}. The original bytes are kept in the backup; applications "
                    f"must send {change.after} query vectors."
                )
            elif conversion["lossy"]:
                found.append(
                    f"{change.field!r} is indexed as {change.after} from now on ({conversion['precision']}); "
                    "JSON documents keep their numbers unchanged, only the index's copy loses precision."
                )
            if change.after == "uint8" and change.rewrites_documents:
                found.append(
                    f"uint8 with the {target.field(change.field).attrs.distance_metric} metric needs "
                    "non-negative values unless the metric is l2; the migration checks all values first."
                )
        elif change.kind == FIELD_REMOVE and change.before == "vector":
            found.append(
                f"Removing vector field {change.field!r}: its bytes stay in the documents "
                "but are no longer indexed or searchable."
            )
        elif change.kind == FIELD_ADD and change.after in ("numeric", "geo", "geoshape"):
            found.append(
                f"Adding {change.after} field {change.field!r}: documents whose value there cannot be "
                "parsed fail indexing and drop out of the index."
            )
    return found


def _index_warnings(source: IndexSchema, target: IndexSchema, stats: IndexStats) -> List[str]:
    """What the index itself makes uncertain: a FILTER, a combination that crashed the server, failures, indexing."""
    found = []
    if target.index.filter:
        found.append(
            "The index has a FILTER: a new index's first scan can skip documents that were indexed when "
            "written (for example ones missing the filtered field), so the document count is not validated."
        )
    if (
        target.index.max_text_fields
        and target.index.no_fields
        and source.index.max_text_fields
        and source.index.no_fields
    ):
        found.append(
            "MAXTEXTFIELDS with NOFIELDS crashed redis-server (search 2.10.5) when indexing in our tests; "
            "recreating this index repeats that combination."
        )
    if stats.hash_indexing_failures:
        found.append(
            f"The source index reports {stats.hash_indexing_failures} indexing failure(s) over its life "
            "(this counter never decreases); documents that failed are not in it. The migration also scans "
            "its prefixes so that every covered document is found."
        )
    if not stats.fully_indexed:
        found.append(
            f"The source index is still indexing ({stats.percent_indexed:.0%}); the migration waits for it "
            "to finish before it starts."
        )
    return found


def _alias_warnings(source: IndexSchema, caps: ServerCapabilities, aliases: List[str]) -> List[str]:
    if caps.alias_listing:
        return (
            [f"Aliases {', '.join(aliases)} are dropped with the index and re-pointed at the new one."]
            if aliases
            else []
        )
    declared = f" Declared aliases that will be moved: {', '.join(aliases)}." if aliases else ""
    return [
        f"This server cannot list aliases (FT.ALIASLIST needs search 8.10) and FT.DROPINDEX drops every alias of "
        f"{source.name}.{declared} Name every alias in `aliases` or it will be lost."
    ]


def _unobserved_warnings(unobserved: List[str]) -> List[str]:
    """Settings the server did not report: the new index gets the defaults unless the target sets them."""
    found = []
    hidden = [u for u in unobserved if not u.endswith(".initial_cap") and u != "index.key_separator"]
    if hidden:
        found.append(
            f"The server did not report {', '.join(hidden)}; the new index uses server defaults for them "
            "unless the target schema sets them."
        )
    caps_set = [u.split(".")[1] for u in unobserved if u.endswith(".initial_cap")]
    if caps_set:
        found.append(
            f"INITIAL_CAP of {', '.join(caps_set)} is never reported by the server; it is a preallocation "
            "hint and the new index uses the default unless the target schema sets initial_cap."
        )
    return found


def _cost_warnings(audit: AuditResult, estimate: Estimate) -> List[str]:
    found = []
    if audit.missing_keys:
        found.append(f"{audit.missing_keys} sampled keys vanished while planning: is something writing?")
    if estimate.aof_enabled and estimate.aof_growth_bytes:
        found.append(
            f"AOF is on: rewriting {estimate.documents_rewritten} documents appends about "
            f"{_size(estimate.aof_growth_bytes)} to it until the next rewrite."
        )
    if estimate.backup_fits is False:
        found.append(
            f"The backup directory has {_size(estimate.backup_dir_free_bytes or 0)} free; the backup needs "
            f"about {_size(estimate.backup_dir_required_bytes or 0)}."
        )
    return found


def _audit_warnings(
    source: IndexSchema, stats: IndexStats, rewrites: DocumentRewrites, audit: AuditResult
) -> List[str]:
    """Vectors the migration leaves as they are, and what a sampled audit could not check. (Wrong sizes in
    the fields it rewrites are blocked reasons: audit.backup_refusals.)"""
    found = []
    rewritten = {q.source_location for q in rewrites.quantize}
    refused = {f.name for f in source.vector_fields() if source.identifier(f) in rewritten}
    left = [m for m in audit.malformed if not (m.field in refused and m.found is not None)]
    count = audit.malformed_count - sum(audit.wrong_size.get(name, 0) for name in refused)
    if count > 0 and left:
        found.append(
            f"{count} of {audit.documents} audited documents hold no vector or one of the wrong size in a "
            f"field the migration does not rewrite (first: {left[0].key} {left[0].field}); it leaves them as "
            "they are, and a vector of the wrong size keeps its document out of the index, before and after."
        )
    if rewrites.quantize and audit.mode != "all":
        targets = ", ".join(sorted({q.target for q in rewrites.quantize}))
        found.append(
            f"The audit checked the vectors of {audit.documents} of {stats.num_docs} documents; the migration "
            "checks every one before it changes anything and refuses to start on a vector of the wrong size "
            f"or a value {targets} cannot hold (audit_all: true checks them all now)."
        )
    return found
