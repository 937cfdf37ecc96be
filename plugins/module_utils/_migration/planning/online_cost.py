# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What running a change online costs next to dropping and recreating the index: the memory at the
window's peak, and how long each path takes.

Memory. While the source serves, the server holds the new bytes beside the old (side fields, copied
values or whole copied documents) and the index built on them; with a datatype change in place, the
interim index and the final one coexist after the source is dropped. Each part is sized from what is
known exactly (vector widths, measured value and document sizes on the key sample) through the
allocator's size classes, and an index from FT.INFO's figures plus what FT.INFO does not count
(measured here: about 300 bytes a document for 20k x 128 and 50k x 384, FLAT and HNSW).

Time. Every HSET or HDEL of a document re-indexes it in every index that covers it, so an online
rewrite pays the source's (and later the target's) indexing again for each pass over the documents:
measured at 20k x 128 HNSW (M 16, EF_CONSTRUCTION 200), a side field written in 16.5 s against a 5.7 s
build, removed in 21.9 s; FLAT about 1.5x its build. The index builds are the source's own indexing
time (FT.INFO total_indexing_time) where the algorithm stays; the rest are rates measured on a 2-core
machine - rough, and said to be.

A field renamed in a hash table (any hash holding a vector of more than 16 float32 values) is moved by the
contract with two writes, the new name set and the old removed (scripts.RENAME_FIELD), and each re-indexes the
document: that pass costs twice the others. Measured at 20k x 128 HNSW, genre -> category: expand 19.2 s,
contract 39.1 s (5k: 3.2 s and 5.5 s); counted once, the plan said 33.3 s for a rename that took 53.8 s.
"""

from __future__ import annotations

from typing import Dict, Optional

from ..core.deps import BaseModel, Field
from ..redis.doc_memory import DocumentMemory
from ..redis.stats import IndexStats
from ..schema.model import DATATYPE_WIDTH, IndexSchema
from ..schema.online_layout import OnlineLayout
from ..schema.rewrites import DocumentRewrites
from ..vectors.audit import AuditResult
from .estimate import Estimate

# What an index costs beyond FT.INFO's figures, per document (key names, document table).
INDEX_DOC_OVERHEAD = 300
# A hash field in a hash table: its name and value as strings (3-4 byte headers) and its entry.
HASH_ENTRY_OVERHEAD = 8
# Seconds per document (and per byte read or written) of the passes; measured at 200k x 384 on 2 cores.
BACKUP_SECONDS_PER_DOC = 10e-6
BACKUP_SECONDS_PER_BYTE = 10e-9
WRITE_SECONDS_PER_DOC = 20e-6
# A pass over the documents re-indexes each in the indexes covering it: this times the index's build.
REINDEX_FACTOR = {"flat": 1.5, "hnsw": 3.0, "svs-vamana": 3.0}
# A build when the source's own indexing time does not apply (another algorithm): per document and dimension.
BUILD_SECONDS_PER_DIM = {"flat": 4e-8, "hnsw": 2.2e-6, "svs-vamana": 2.2e-6}
VALIDATE_SECONDS = 1.0
# Redis keeps a hash as a listpack while each value is at most hash-max-listpack-value (64 bytes by default);
# beyond it the hash is a hash table, and a field rename moves the field with two writes.
LISTPACK_VALUE_BYTES = 64


def allocation(size: int) -> int:
    """The bytes jemalloc hands out for a request of `size` (its size classes: 8, 16, then steps of 16 to
    128, then four classes per doubling)."""
    if size <= 8:
        return 8
    if size <= 128:
        return (size + 15) // 16 * 16
    power = 1 << (size - 1).bit_length()
    step = power // 8
    return (size + step - 1) // step * step


def hash_field_bytes(name: str, value_bytes: int) -> int:
    """Memory of one more field in a hash (measured within 1% for values of 64 to 1,536 bytes)."""
    return allocation(value_bytes + 3) + allocation(len(name.encode()) + 4) + HASH_ENTRY_OVERHEAD


class OnlineMemory(BaseModel):
    """The window's memory, in bytes above what the server uses when it starts."""

    peak_bytes: int = 0
    breakdown: Dict[str, int] = Field(default_factory=dict)
    assumed: Optional[str] = None  # what stood in for a figure the sample could not give


class Durations(BaseModel):
    """Seconds each path takes, estimated: the whole run, and for drop_recreate the read gap within it."""

    online_seconds: float = 0.0
    online_builds: int = 1
    drop_recreate_seconds: float = 0.0
    drop_recreate_read_gap_seconds: float = 0.0
    basis: str = ""


def index_bytes(after: Dict[str, int], docs: int) -> int:
    """An index of the estimate's figures (before or after), with what FT.INFO does not count."""
    return int(after.get("vector_index", 0) + after.get("other_index", 0) + docs * INDEX_DOC_OVERHEAD)


def _value_bytes(rewrites: DocumentRewrites, audit: AuditResult, location: str) -> int:
    """The stored size of the value at `location` that a move copies: converted, or as measured."""
    for quant in rewrites.quantize:
        if quant.source_location == location:
            return quant.dims * DATATYPE_WIDTH[quant.target]
    total, count = audit.value_bytes.get(location, [0, 0])
    return round(total / count) if count else 0


def _side_bytes(
    rewrites: DocumentRewrites, layout: OnlineLayout, audit: AuditResult, sizes: DocumentMemory, docs: int
) -> tuple:
    """(bytes of the new values beside the old, what stood in for a missing measurement)."""
    assumed = None
    if layout.copy_keys:
        whole = sizes.key_bytes
        if whole is None:
            # No sample answered MEMORY USAGE: the vectors alone, a lower bound.
            whole = sum(hash_field_bytes(q.location, q.dims * DATATYPE_WIDTH[q.source]) for q in rewrites.quantize)
            assumed = "no document answered MEMORY USAGE: the copies are sized by their vectors alone"
        shrink = sum(
            allocation(q.dims * DATATYPE_WIDTH[q.source] + 3) - allocation(q.dims * DATATYPE_WIDTH[q.target] + 3)
            for q in rewrites.quantize
        )
        return docs * max(whole - shrink, 0), assumed
    per_doc = 0
    for move in rewrites.moves:
        if rewrites.storage == "json":
            measured = sizes.path_bytes.get(move.old_location)
            if measured is None:
                measured = _value_bytes(rewrites, audit, move.old_location)
                assumed = "no document answered JSON.DEBUG MEMORY: moved values are sized by their JSON text"
            per_doc += measured
        else:
            per_doc += hash_field_bytes(move.new_location, _value_bytes(rewrites, audit, move.old_location))
    for side in layout.side_fields:
        quant = next(q for q in rewrites.quantize if q.field == side.field)
        per_doc += hash_field_bytes(side.side, quant.dims * DATATYPE_WIDTH[quant.target])
    return docs * per_doc, assumed


def online_memory(
    estimate: Estimate,
    rewrites: DocumentRewrites,
    layout: Optional[OnlineLayout],
    audit: AuditResult,
    sizes: DocumentMemory,
) -> OnlineMemory:
    """The window's peak: the new values and the first index built while the source serves, or - for a
    datatype change in place - the interim and final indexes together once the source is gone."""
    docs = estimate.documents
    built = index_bytes(estimate.memory_after_bytes, docs)
    if layout is None:
        return OnlineMemory(peak_bytes=built, breakdown={"new_index": built})
    side, assumed = _side_bytes(rewrites, layout, audit, sizes, docs)
    first = side + built
    breakdown = {"new_values": side, "new_index": built, "while_the_source_serves": first}
    peak = first
    if layout.side_fields:
        source = index_bytes(estimate.memory_before_bytes, docs)
        shrunk = 0
        for side_field in layout.side_fields:
            quant = next(q for q in rewrites.quantize if q.field == side_field.field)
            shrunk += docs * (
                allocation(quant.dims * DATATYPE_WIDTH[quant.source] + 3)
                - allocation(quant.dims * DATATYPE_WIDTH[quant.target] + 3)
            )
        second = side + 2 * built - source - shrunk
        breakdown.update(
            {
                "second_index": built,
                "source_index_freed": source,
                "original_vectors_shrunk": shrunk,
                "between_the_swaps": second,
            }
        )
        peak = max(first, second)
    return OnlineMemory(peak_bytes=int(peak), breakdown=breakdown, assumed=assumed)


def _build_seconds(source: IndexSchema, target: IndexSchema, stats: IndexStats) -> float:
    """The target's build: the source's own indexing time when the vector algorithms stay, else a rate."""
    docs = max(stats.num_docs, 1)
    same = all(
        source.field(f.name) is not None
        and source.field(f.name).type == "vector"
        and source.field(f.name).attrs.algorithm == f.attrs.algorithm
        for f in target.vector_fields()
    )
    if same and stats.total_indexing_time_ms > 0:
        return stats.total_indexing_time_ms / 1000
    return sum(
        docs * f.attrs.dims * BUILD_SECONDS_PER_DIM.get(f.attrs.algorithm, 2.2e-6) for f in target.vector_fields()
    )


def _reindex_seconds(schema: IndexSchema, build: float) -> float:
    """One pass of writes over every document re-indexes each in an index of `schema` built in `build` s."""
    algorithms = [f.attrs.algorithm for f in schema.vector_fields()] or ["flat"]
    return build * max(REINDEX_FACTOR.get(a, 3.0) for a in algorithms)


def contract_reindexes(source: IndexSchema, rewrites: Optional[DocumentRewrites]) -> int:
    """How many times the contract re-indexes each document in the new index: twice where it moves a field of a
    hash table (HSET of the new name, HDEL of the old); once where it rewrites a listpack hash whole (DEL, HSET:
    measured as costly as one re-index), removes a side field, or deletes a JSON path."""
    if rewrites is None or rewrites.storage != "hash" or not rewrites.moves:
        return 1
    widths = [f.attrs.dims * DATATYPE_WIDTH.get(f.attrs.datatype, 4) for f in source.vector_fields()]
    return 2 if any(width > LISTPACK_VALUE_BYTES for width in widths) else 1


def durations(
    source: IndexSchema,
    target: IndexSchema,
    stats: IndexStats,
    estimate: Estimate,
    layout: Optional[OnlineLayout],
    rewrites: Optional[DocumentRewrites] = None,
) -> Durations:
    """Both paths, end to end; drop_recreate's read gap is its writes and its build."""
    docs = estimate.documents_rewritten
    per_doc_bytes = sum(v.source_bytes_per_doc + v.target_bytes_per_doc for v in estimate.vector_fields)
    backup = docs * (BACKUP_SECONDS_PER_DOC + BACKUP_SECONDS_PER_BYTE * per_doc_bytes) if docs else 0.0
    writes = docs * WRITE_SECONDS_PER_DOC
    source_build = stats.total_indexing_time_ms / 1000 if stats.total_indexing_time_ms > 0 else None
    target_build = _build_seconds(source, target, stats)
    source_build = source_build if source_build is not None else target_build
    gap = writes + target_build
    result = Durations(
        drop_recreate_seconds=round(backup + gap + VALIDATE_SECONDS, 1),
        drop_recreate_read_gap_seconds=round(gap, 1),
        online_builds=layout.builds if layout else 1,
        basis=(
            f"builds from the source's own indexing time ({source_build:.1f} s); every pass of writes re-indexes "
            "each document in the indexes covering it (HNSW about 3x its build, FLAT 1.5x); rough rates of a "
            "2-core machine for the rest"
        ),
    )
    if layout is None:
        result.online_seconds = round(target_build + VALIDATE_SECONDS, 1)
        return result
    total = backup + target_build + VALIDATE_SECONDS
    if layout.copy_keys:
        total += 2 * writes  # the copies and the deletions: no index covers those keys meanwhile
    else:
        total += writes + _reindex_seconds(source, source_build)  # expand: the source re-indexes each document
        # contract: the new index does (twice for a field moved in a hash table)
        total += contract_reindexes(source, rewrites) * (writes + _reindex_seconds(target, target_build))
        if layout.side_fields:  # the original locations converted, then a second build
            total += writes + _reindex_seconds(target, target_build) + target_build + VALIDATE_SECONDS
    result.online_seconds = round(total, 1)
    return result
