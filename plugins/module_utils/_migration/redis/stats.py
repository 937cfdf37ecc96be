# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Index statistics from a parsed FT.INFO: document counts, indexing state, memory."""

from __future__ import annotations

from typing import Dict, Optional

from ..core.deps import BaseModel, Field
from .ftinfo import FtInfo
from .resp import as_float, as_int

MB = 1024 * 1024


class IndexStats(BaseModel):
    num_docs: int = 0
    max_doc_id: int = 0
    num_terms: int = 0
    num_records: int = 0
    hash_indexing_failures: int = 0
    indexing: bool = False
    percent_indexed: float = 1.0
    total_indexing_time_ms: float = 0.0
    # Every *_sz_mb / *_size_mb figure FT.INFO reports, as given (MiB).
    memory_mb: Dict[str, float] = Field(default_factory=dict)
    vector_index_bytes: int = 0
    index_bytes: int = 0
    last_indexing_error: Optional[str] = None
    last_indexing_error_key: Optional[str] = None

    @property
    def fully_indexed(self) -> bool:
        """Done building. (`hash_indexing_failures` never decreases, so it is not part of this.)"""
        return not self.indexing and self.percent_indexed >= 1.0


def stats_from_info(info: FtInfo) -> IndexStats:
    raw = info.stats
    memory = {k: as_float(v, 0.0) for k, v in raw.items() if k.endswith("_sz_mb") or k.endswith("_size_mb")}
    errors = raw.get("Index Errors") or {}
    last_error = errors.get("last indexing error") if isinstance(errors, dict) else None
    last_key = errors.get("last indexing error key") if isinstance(errors, dict) else None
    vector_mb = memory.get("vector_index_sz_mb", 0.0)
    return IndexStats(
        num_docs=as_int(raw.get("num_docs"), 0),
        max_doc_id=as_int(raw.get("max_doc_id"), 0),
        num_terms=as_int(raw.get("num_terms"), 0),
        num_records=as_int(raw.get("num_records"), 0),
        hash_indexing_failures=as_int(raw.get("hash_indexing_failures"), 0),
        indexing=bool(as_int(raw.get("indexing"), 0)),
        percent_indexed=as_float(raw.get("percent_indexed"), 1.0),
        total_indexing_time_ms=as_float(raw.get("total_indexing_time"), 0.0),
        memory_mb=memory,
        vector_index_bytes=int(vector_mb * MB),
        index_bytes=int((memory.get("total_index_memory_sz_mb", 0.0) + vector_mb) * MB),
        last_indexing_error=None if last_error in (None, "N/A") else str(last_error),
        last_indexing_error_key=None if last_key in (None, "N/A") else str(last_key),
    )
