# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A machine-readable record of how long a migration (or a batch of them) took and how fast it went:
what `benchmark_out` writes (docs/formats.md).

Per phase: its seconds (added up over the attempts of a resumed migration, as in the report), the
documents it went through and the bytes of backup data it wrote or applied, and both per second.
Then the read gap (downtime_seconds), this run's wall-clock seconds and the peak resident memory of
this process and of its finished children (the backup and rewrite workers).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional

from ..core.files import write_atomic
from ..core.yamlio import dump_yaml

try:
    import resource
except ImportError:  # not on POSIX
    resource = None

BENCHMARK_FORMAT = "indexops.redis_search/benchmark"
# Phases that rewrite documents block by block (drop_recreate, and an online rewrite: online_rewrite.py).
REWRITE_PHASES = ("move_fields", "rename_keys", "quantize", "expand", "convert", "contract")
OUTCOMES = ("written", "already", "gone", "conflict")


def peak_rss() -> Dict[str, Optional[int]]:
    """Peak resident set size in bytes of this process and of its waited-for children (workers)."""
    if resource is None:
        return {"self_bytes": None, "children_bytes": None}
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {
        "self_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit,
        "children_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * unit,
    }


def _rate(amount: Optional[int], seconds: float) -> Optional[float]:
    if amount is None or seconds <= 0:
        return None
    return round(amount / seconds, 1)


def _phase(name: str, state: Dict[str, Any], backup_bytes: int) -> Dict[str, Any]:
    counters = state.get("counters") or {}
    seconds = float(state.get("seconds") or 0.0)
    documents = nbytes = None
    if name == "backup":
        documents, nbytes = counters.get("documents"), counters.get("bytes")
    elif name in REWRITE_PHASES and counters.get("blocks"):
        documents = sum(int(counters.get(outcome, 0)) for outcome in OUTCOMES)
        # The backup's blocks the phase applied (each holds the originals of the documents it changed).
        nbytes = backup_bytes * int(counters.get("blocks_done", 0)) // int(counters["blocks"])
    elif name == "wait":
        documents = counters.get("num_docs")
    return {
        "seconds": seconds,
        "documents": documents,
        "documents_per_second": _rate(documents, seconds),
        "bytes": nbytes,
        "bytes_per_second": _rate(nbytes, seconds),
    }


def migration_benchmark(report, run_seconds: float) -> Dict[str, Any]:
    """The record of one migration, from its report (report.py) and this run's wall-clock seconds."""
    backup_bytes = int(((report.phases.get("backup") or {}).get("counters") or {}).get("bytes", 0) or 0)
    return {
        "format": BENCHMARK_FORMAT,
        "format_version": 1,
        "kind": "migration",
        "source_index": report.source_index,
        "target_index": report.target_index,
        "mode": report.mode,
        "result": report.result,
        "plan_checksum": report.plan_checksum,
        "attempt": report.attempt,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "run_seconds": round(run_seconds, 3),
        "documents": report.documents,
        "downtime_seconds": report.downtime_seconds,
        "phases": {name: _phase(name, state, backup_bytes) for name, state in report.phases.items()},
        "peak_rss": peak_rss(),
    }


def batch_benchmark(batch_id: str, indexes: Dict[str, Dict[str, Any]], run_seconds: float) -> Dict[str, Any]:
    """The record of a batch run: each index it ran (a migration record, or its result and seconds)."""
    return {
        "format": BENCHMARK_FORMAT,
        "format_version": 1,
        "kind": "batch",
        "batch_id": batch_id,
        "run_seconds": round(run_seconds, 3),
        "indexes": indexes,
        "peak_rss": peak_rss(),
    }


def write_benchmark(record: Dict[str, Any], path: str) -> None:
    write_atomic(os.path.abspath(os.path.expanduser(path)), dump_yaml(record).encode("utf-8"))
