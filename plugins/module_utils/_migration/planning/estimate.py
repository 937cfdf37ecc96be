# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a migration will cost: backup size, disk (RDB/AOF), memory before and after.

The backup size follows the backup format byte for byte (backup_format.record_size): vector sizes
are fixed by the schema, so the only inputs not known in advance are key lengths and the sizes of
renamed non-vector values. Those come from the audit: exact when it read every document
(`backup_bytes_exact`), otherwise the sample's mean times the document count.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Dict, List, Optional

from ..backup.format import BLOCK_HEADER_SIZE, ENTRY_OVERHEAD, FILE_MAGIC, RECORD_OVERHEAD
from ..core.deps import BaseModel, Field
from ..redis.stats import IndexStats
from ..schema.model import DATATYPE_WIDTH, FieldSpec, IndexSchema
from ..schema.rewrites import DocumentRewrites
from ..vectors.audit import AuditResult

# Headroom asked of the backup directory on top of the estimate (the header, filesystem blocks).
FREE_SPACE_MARGIN = 1.05
# RESP framing of one HSET (or JSON.SET) in the AOF, and of MULTI/EXEC around a script's effects.
AOF_COMMAND_OVERHEAD = 40
AOF_TRANSACTION_OVERHEAD = 30


class VectorFieldCost(BaseModel):
    field: str
    dims: int
    source_datatype: str
    target_datatype: str
    source_bytes_per_doc: int
    target_bytes_per_doc: int


class Estimate(BaseModel):
    documents: int
    documents_rewritten: int
    batch_size: int
    vector_fields: List[VectorFieldCost] = Field(default_factory=list)
    backup_bytes: int = 0
    backup_bytes_exact: bool = True
    # staged.bin: the converted vectors, staged before the drop (exact but where documents lack a vector).
    staged_bytes: int = 0
    backup_breakdown: Dict[str, int] = Field(default_factory=dict)
    memory_before_bytes: Dict[str, int] = Field(default_factory=dict)
    memory_after_bytes: Dict[str, int] = Field(default_factory=dict)
    memory_delta_bytes: int = 0
    rdb_delta_bytes: int = 0
    aof_enabled: bool = False
    aof_growth_bytes: int = 0
    backup_dir: Optional[str] = None
    backup_dir_free_bytes: Optional[int] = None
    backup_dir_required_bytes: Optional[int] = None
    backup_fits: Optional[bool] = None


def _mean(total: int, count: int) -> float:
    return total / count if count else 0.0


def _vector_index_bytes(algorithm: str, docs: int, dims: int, width: int, m: Optional[int]) -> float:
    """Rough in-memory size of a vector index: the vectors plus, for HNSW, its graph links."""
    data = docs * dims * width
    if algorithm == "hnsw":
        links = m or 16
        # level 0 keeps 2*M links of 4 bytes; upper levels add about 1/ln(M) of that again.
        data += docs * (2 * links * 4) * (1 + 1 / math.log(max(links, 2)))
    return data


def _origin(source: IndexSchema, location: str, quant) -> Optional[FieldSpec]:
    """The source vector field whose bytes end up at `location`."""
    wanted = quant.source_location if quant else location
    return next((f for f in source.vector_fields() if source.identifier(f) == wanted), None)


def estimate(
    source: IndexSchema,
    target: IndexSchema,
    stats: IndexStats,
    rewrites: DocumentRewrites,
    audit: AuditResult,
    aof_enabled: bool,
    batch_size: int,
    backup_dir: Optional[str] = None,
) -> Estimate:
    docs = stats.num_docs
    # A complete audit walked exactly the documents the migration will walk (with a SCAN of the
    # prefixes this includes documents the index failed); otherwise the index's count stands in.
    walked = audit.documents - audit.missing_keys if audit.mode == "all" else docs
    rewritten = walked if rewrites.any else 0
    result = Estimate(documents=docs, documents_rewritten=rewritten, batch_size=batch_size, aof_enabled=aof_enabled)
    _backup_files(result, rewrites, audit, rewritten, batch_size)
    _memory(result, source, target, stats, rewrites)
    if aof_enabled and rewritten:
        result.aof_growth_bytes = _aof_per_document(rewrites, audit) * rewritten
    if backup_dir:
        _backup_dir_room(result, backup_dir)
    return result


def _backup_files(
    result: Estimate, rewrites: DocumentRewrites, audit: AuditResult, rewritten: int, batch_size: int
) -> None:
    """data.bin byte for byte (exact when the audit read every document), and staged.bin."""
    audited = max(audit.documents - audit.missing_keys, 0)
    exact = audit.mode == "all"
    key_bytes = audit.key_bytes if exact else round(_mean(audit.key_bytes, audit.documents) * rewritten)
    entries = rewrites.backup_entries()
    fixed = sum(ENTRY_OVERHEAD + len(location.encode()) + (size or 0) for location, size, _absent in entries)
    variable = 0.0
    for location, size, absent in entries:
        if size is None and not absent:
            total, _count = audit.value_bytes.get(location, [0, 0])
            variable += total if exact else _mean(total, audited) * rewritten
            exact = exact and location in audit.value_bytes
    if rewritten:
        blocks = math.ceil(rewritten / batch_size)
        breakdown = {
            "file_magic": len(FILE_MAGIC),
            "block_headers": blocks * BLOCK_HEADER_SIZE,
            "record_framing": rewritten * RECORD_OVERHEAD,
            "keys": int(key_bytes),
            "entries": rewritten * fixed + int(round(variable)),
        }
        result.backup_breakdown = breakdown
        result.backup_bytes = sum(breakdown.values())
    result.backup_bytes_exact = exact or not rewritten
    if rewritten and rewrites.quantize:
        per_doc = sum(
            ENTRY_OVERHEAD + len(q.location.encode()) + q.dims * DATATYPE_WIDTH[q.target] for q in rewrites.quantize
        )
        result.staged_bytes = (
            len(FILE_MAGIC)
            + math.ceil(rewritten / batch_size) * BLOCK_HEADER_SIZE
            + rewritten * (RECORD_OVERHEAD + per_doc)
            + int(key_bytes)
        )


def _memory(
    result: Estimate, source: IndexSchema, target: IndexSchema, stats: IndexStats, rewrites: DocumentRewrites
) -> None:
    """Vectors in the documents and in the index, before and after; the RDB grows by the documents' part."""
    docs = stats.num_docs
    quantized = {q.field: q for q in rewrites.quantize}
    before_docs = after_docs = 0
    before_index = after_index = 0.0
    for field in target.vector_fields():
        attrs = field.attrs
        quant = quantized.get(field.name)
        src_type = quant.source if quant else attrs.datatype
        origin = _origin(source, target.identifier(field), quant)
        src_attrs = origin.attrs if origin is not None else attrs
        if quant or src_attrs.datatype != attrs.datatype:
            result.vector_fields.append(
                VectorFieldCost(
                    field=field.name,
                    dims=attrs.dims,
                    source_datatype=src_type,
                    target_datatype=attrs.datatype,
                    source_bytes_per_doc=attrs.dims * DATATYPE_WIDTH[src_type],
                    target_bytes_per_doc=attrs.dims * DATATYPE_WIDTH[attrs.datatype],
                )
            )
        if source.storage == "hash":
            before_docs += docs * attrs.dims * DATATYPE_WIDTH[src_type]
            after_docs += docs * attrs.dims * DATATYPE_WIDTH[attrs.datatype]
        before_index += _vector_index_bytes(
            src_attrs.algorithm, docs, attrs.dims, DATATYPE_WIDTH[src_attrs.datatype], src_attrs.m
        )
        after_index += _vector_index_bytes(attrs.algorithm, docs, attrs.dims, DATATYPE_WIDTH[attrs.datatype], attrs.m)
    measured = stats.vector_index_bytes
    scaled_after = measured * after_index / before_index if before_index and measured else after_index
    result.memory_before_bytes = {
        "vectors_in_documents": before_docs,
        "vector_index": int(measured or before_index),
        "other_index": max(stats.index_bytes - measured, 0),
    }
    result.memory_after_bytes = {
        "vectors_in_documents": after_docs,
        "vector_index": int(scaled_after),
        "other_index": max(stats.index_bytes - measured, 0),
    }
    result.memory_delta_bytes = sum(result.memory_after_bytes.values()) - sum(result.memory_before_bytes.values())
    result.rdb_delta_bytes = after_docs - before_docs


def _aof_per_document(rewrites: DocumentRewrites, audit: AuditResult) -> int:
    """What every rewritten document appends to the AOF until its next rewrite."""
    per_doc = AOF_TRANSACTION_OVERHEAD + round(_mean(audit.key_bytes, audit.documents))
    for quant in rewrites.quantize:
        per_doc += AOF_COMMAND_OVERHEAD + len(quant.location) + quant.dims * DATATYPE_WIDTH[quant.target]
    for move in rewrites.moves:
        per_doc += 2 * AOF_COMMAND_OVERHEAD + len(move.old_location) + len(move.new_location)
    if rewrites.prefix:
        per_doc += AOF_COMMAND_OVERHEAD + round(_mean(audit.key_bytes, audit.documents))
    return per_doc


def _backup_dir_room(result: Estimate, backup_dir: str) -> None:
    result.backup_dir = backup_dir
    probe = backup_dir if os.path.isdir(backup_dir) else os.path.dirname(os.path.abspath(backup_dir))
    if os.path.isdir(probe):
        result.backup_dir_free_bytes = shutil.disk_usage(probe).free
        result.backup_dir_required_bytes = int((result.backup_bytes + result.staged_bytes) * FREE_SPACE_MARGIN)
        result.backup_fits = result.backup_dir_free_bytes >= result.backup_dir_required_bytes
