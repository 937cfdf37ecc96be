# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a lossy vector conversion costs, measured on a sample of the stored vectors.

recall@k compares exact (brute-force) nearest neighbours within the sample, by the index's
distance metric, computed once from the original values and once from the converted ones. Only the
ranking matters, so a conversion that scales every distance alike (int8 with one global scale)
loses nothing by that alone.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..core.deps import numpy
from ..schema.model import DISTANCE_METRICS
from .codec import convert_batch, decode_batch
from .datatypes import INT_DATATYPES, need_numpy
from .quantization import QuantParams

DEFAULT_QUERIES = 200


def _matrix(values: Any, name: str):
    matrix = numpy.asarray(values, dtype=numpy.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (vectors x dims), not {matrix.ndim}-d")
    return matrix


def _metric(metric: str) -> str:
    normal = str(metric).strip().lower()
    if normal not in DISTANCE_METRICS:
        raise ValueError(f"metric must be one of {', '.join(DISTANCE_METRICS)}, not {metric!r}")
    return normal


def distances(queries: Any, data: Any, metric: str):
    """(queries x data) distances as RediSearch defines them: l2 squared Euclidean, ip 1 - dot,
    cosine 1 - cosine similarity (a zero vector has similarity 0 to everything). A NaN distance
    becomes inf: never a neighbour. (An infinite ip dot product stays -inf, the best match, as a
    server would rank it.)"""
    need_numpy("measure conversion quality")
    metric = _metric(metric)
    queries, data = _matrix(queries, "queries"), _matrix(data, "data")
    with numpy.errstate(all="ignore"):
        dot = queries @ data.T
        if metric == "ip":
            result = 1.0 - dot
        elif metric == "cosine":
            norm_q = numpy.linalg.norm(queries, axis=1)
            norm_d = numpy.linalg.norm(data, axis=1)
            inv_q = numpy.where(norm_q > 0, 1.0 / numpy.where(norm_q > 0, norm_q, 1.0), 0.0)
            inv_d = numpy.where(norm_d > 0, 1.0 / numpy.where(norm_d > 0, norm_d, 1.0), 0.0)
            result = 1.0 - dot * inv_q[:, None] * inv_d[None, :]
        else:
            result = (queries * queries).sum(axis=1)[:, None] + (data * data).sum(axis=1)[None, :] - 2.0 * dot
            numpy.maximum(result, 0.0, out=result)  # cancellation can leave tiny negatives
    result[numpy.isnan(result)] = numpy.inf
    return result


def query_rows(count: int, queries: Optional[int] = None):
    """Which rows serve as queries: evenly spread over the sample, the same every run."""
    wanted = min(count, DEFAULT_QUERIES if queries is None else queries)
    if wanted <= 0:
        raise ValueError(f"queries must be positive, not {queries!r}")
    return numpy.arange(wanted, dtype=numpy.int64) * count // wanted


def recall_at_k(original: Any, converted: Any, metric: str, k: int = 10, queries: Optional[int] = None) -> float:
    """Mean share of each query's true k nearest neighbours (by the original values) that the
    converted values also rank among the k nearest. Each query is excluded from its own list.

    Ties count as found: a converted neighbour whose original distance equals the k-th smallest
    is a true neighbour (duplicates in the sample would otherwise make recall depend on order)."""
    need_numpy("measure conversion quality")
    original, converted = _matrix(original, "original"), _matrix(converted, "converted")
    if original.shape != converted.shape:
        raise ValueError(f"original {original.shape} and converted {converted.shape} differ in shape")
    count = original.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k < count:
        raise ValueError(f"k must be between 1 and the sample size - 1 ({count - 1}), not {k!r}")
    rows = query_rows(count, queries)
    span = numpy.arange(rows.size)
    truth = distances(original[rows], original, metric)
    found = distances(converted[rows], converted, metric)
    truth[span, rows] = numpy.inf
    found[span, rows] = numpy.inf
    kth = numpy.partition(truth, k - 1, axis=1)[:, k - 1]
    nearest = numpy.argpartition(found, k - 1, axis=1)[:, :k]
    hits = numpy.take_along_axis(truth, nearest, axis=1) <= kth[:, None]
    return float(hits.sum(axis=1).mean() / k)


def error_stats(original: Any, converted: Any) -> dict[str, float]:
    """Element errors of a conversion.

    max_abs_error:  largest |converted - original| over elements finite on both sides
    mean_rel_error: mean over vectors of ||converted - original|| / ||original|| (per vector, not
                    per element: tiny elements would make per-element ratios meaningless)
    non_finite:     share of converted elements that are NaN or infinite
    """
    need_numpy("measure conversion quality")
    original, converted = _matrix(original, "original"), _matrix(converted, "converted")
    if original.shape != converted.shape:
        raise ValueError(f"original {original.shape} and converted {converted.shape} differ in shape")
    if not original.size:
        return {"max_abs_error": 0.0, "mean_rel_error": 0.0, "non_finite": 0.0}
    finite = numpy.isfinite(converted)
    both = finite & numpy.isfinite(original)
    with numpy.errstate(all="ignore"):
        error = numpy.where(both, numpy.abs(converted - original), 0.0)
        reference = numpy.linalg.norm(numpy.where(both, original, 0.0), axis=1)
        relative = numpy.linalg.norm(error, axis=1)[reference > 0] / reference[reference > 0]
    return {
        "max_abs_error": float(error.max()),
        "mean_rel_error": float(relative.mean()) if relative.size else 0.0,
        "non_finite": float(1.0 - numpy.count_nonzero(finite) / finite.size),
    }


def quality_report(
    original_bytes: Sequence[bytes],
    source: str,
    target: str,
    dims: int,
    metric: str,
    params: Optional[QuantParams] = None,
    k: int = 10,
    queries: Optional[int] = None,
) -> dict[str, Any]:
    """Convert a sample like the migration would and measure the cost.

    Overflowing values are written as inf here (not refused) so that they show in `non_finite`
    and in the recall. recall_at_<k> is None when the sample has no more than k vectors."""
    need_numpy("measure conversion quality")
    metric = _metric(metric)
    if not original_bytes:
        raise ValueError("the sample is empty")
    converted_bytes = convert_batch(original_bytes, source, target, dims, params, overflow="allow")
    original = decode_batch(original_bytes, source, dims, params if source in INT_DATATYPES else None)
    converted = decode_batch(converted_bytes, target, dims, params if target in INT_DATATYPES else None)
    count = original.shape[0]
    recall = recall_at_k(original, converted, metric, k, queries) if count > k else None
    report: dict[str, Any] = {
        "sample_size": count,
        "queries": int(query_rows(count, queries).size),
        "k": k,
        "metric": metric,
        f"recall_at_{k}": recall,
    }
    report.update(error_stats(original, converted))
    return report
