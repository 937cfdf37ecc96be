# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fitting int8/uint8 parameters to a field's values: running statistics of the values in constant memory
(RangeStats) and one global scale (and offset) from them (fit_quant_params)."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from ..core.deps import numpy
from ..schema.model import DISTANCE_METRICS
from .codec import decode_batch
from .datatypes import FLOAT_DATATYPES, INT_DATATYPES, need_numpy, normal_datatype
from .quantization import DEFAULT_PERCENTILE, QuantParams


class RangeStats:
    """Running value statistics of a vector field, in constant memory.

    Keeps the exact count, min, max and max |v| of the finite values, and a histogram whose bins
    are float32 values truncated to their upper 16 bits: 2 x 32640 counters (about 0.5 MiB),
    each bin 2^-7 (0.8%) wide relative to its values, whatever the number of vectors. High
    percentiles come from the histogram, interpolated within a bin.
    """

    _MAGNITUDES = 0x7F80  # finite float32 magnitudes by upper 16 bits; larger ones share the last bin

    def __init__(self, datatype: Optional[str] = None):
        need_numpy("measure vector values")
        self.datatype = None if datatype is None else normal_datatype(datatype)
        self.count = 0
        self.non_finite = 0
        self.min = math.inf
        self.max = -math.inf
        self.max_abs = 0.0
        self._pos = numpy.zeros(self._MAGNITUDES, dtype=numpy.int64)
        self._neg = numpy.zeros(self._MAGNITUDES, dtype=numpy.int64)

    def update(self, values: Any) -> "RangeStats":
        """Add a batch of values (any shape)."""
        flat = numpy.asarray(values).reshape(-1)
        if flat.dtype.kind not in "fiu":
            raise TypeError(f"expected numeric values, not {flat.dtype}")
        if flat.dtype.kind == "f":
            finite = numpy.isfinite(flat)
            kept = int(numpy.count_nonzero(finite))
            if kept != flat.size:
                self.non_finite += flat.size - kept
                flat = flat[finite]
        if flat.size == 0:
            return self
        low, high = float(flat.min()), float(flat.max())
        self.count += flat.size
        self.min = min(self.min, low)
        self.max = max(self.max, high)
        self.max_abs = max(self.max_abs, abs(low), abs(high))
        with numpy.errstate(over="ignore"):
            bits = flat.astype("<f4").view("<u4")
        magnitude = (bits >> 16) & 0x7FFF
        numpy.minimum(magnitude, self._MAGNITUDES - 1, out=magnitude)
        magnitude += (bits >> 31) * self._MAGNITUDES
        counts = numpy.bincount(magnitude, minlength=2 * self._MAGNITUDES)
        self._pos += counts[: self._MAGNITUDES]
        self._neg += counts[self._MAGNITUDES :]
        return self

    def update_buffers(self, buffers: Sequence[bytes], datatype: str, dims: int) -> "RangeStats":
        """Add a batch of stored vectors (float datatypes)."""
        datatype = normal_datatype(datatype)
        if datatype not in FLOAT_DATATYPES:
            raise ValueError(f"range statistics are for float vectors, not {datatype}")
        self.datatype = self.datatype or datatype
        return self.update(decode_batch(buffers, datatype, dims))

    def merge(self, other: "RangeStats") -> "RangeStats":
        """Add the statistics of another accumulator (e.g. of another worker)."""
        self.count += other.count
        self.non_finite += other.non_finite
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.max_abs = max(self.max_abs, other.max_abs)
        self._pos += other._pos
        self._neg += other._neg
        self.datatype = self.datatype or other.datatype
        return self

    def _magnitude_edges(self):
        codes = numpy.arange(self._MAGNITUDES + 1, dtype=numpy.uint32) << 16
        edges = codes.view(numpy.float32).astype(numpy.float64)
        return numpy.minimum(edges[:-1], self.max_abs), numpy.minimum(edges[1:], self.max_abs)

    def _signed_bins(self):
        """Counts and [low, high] edges of every bin, in ascending order of value."""
        low, high = self._magnitude_edges()
        counts = numpy.concatenate([self._neg[::-1], self._pos])
        lows = numpy.clip(numpy.concatenate([-high[::-1], low]), self.min, self.max)
        highs = numpy.clip(numpy.concatenate([-low[::-1], high]), self.min, self.max)
        return counts, lows, highs

    def _abs_bins(self):
        low, high = self._magnitude_edges()
        return self._pos + self._neg, low, high

    @staticmethod
    def _quantile(counts, lows, highs, q: float) -> float:
        total = counts.sum()
        cumulative = numpy.cumsum(counts)
        target = q * total
        i = min(int(numpy.searchsorted(cumulative, target, side="left")), len(counts) - 1)
        before = cumulative[i] - counts[i]
        inside = (target - before) / counts[i] if counts[i] else 1.0
        return float(lows[i] + min(max(inside, 0.0), 1.0) * (highs[i] - lows[i]))

    def quantile(self, q: float) -> float:
        """Estimated q-quantile (0..1) of the finite values."""
        self._require_values()
        if q <= 0:
            return self.min
        if q >= 1:
            return self.max
        return min(max(self._quantile(*self._signed_bins(), q), self.min), self.max)

    def abs_quantile(self, q: float) -> float:
        """Estimated q-quantile (0..1) of |v| over the finite values."""
        self._require_values()
        if q >= 1:
            return self.max_abs
        if q <= 0:
            return 0.0 if self.min <= 0 <= self.max else min(abs(self.min), abs(self.max))
        return min(self._quantile(*self._abs_bins(), q), self.max_abs)

    def fraction_outside(self, low: float, high: float) -> float:
        """Estimated share of the finite values below `low` or above `high`."""
        if not self.count:
            return 0.0
        counts, lows, highs = self._signed_bins()

        def below(x: float) -> float:
            width = highs - lows
            part = numpy.where(width > 0, (x - lows) / numpy.where(width > 0, width, 1.0), (x >= highs) * 1.0)
            return float((counts * numpy.clip(part, 0.0, 1.0)).sum())

        return min(max((below(low) + counts.sum() - below(high)) / self.count, 0.0), 1.0)

    def _require_values(self) -> None:
        if not self.count:
            raise ValueError("no finite values have been measured")

    def to_dict(self) -> dict[str, Any]:
        empty = not self.count
        return {
            "count": self.count,
            "non_finite": self.non_finite,
            "datatype": self.datatype,
            "min": None if empty else self.min,
            "max": None if empty else self.max,
            "max_abs": None if empty else self.max_abs,
        }


def _float32(value: float) -> float:
    """The nearest float32, as a Python float (exact), so both sides compute with the same scale."""
    return float(numpy.float32(value))


def fit_quant_params(
    target: str,
    metric: str,
    stats: RangeStats,
    *,
    percentile: float = DEFAULT_PERCENTILE,
    source_datatype: Optional[str] = None,
) -> QuantParams:
    """Fit one global scale (and offset) for converting a whole field to int8 or uint8.

    One scale for every vector: per-vector scales would change the relative lengths of vectors,
    which L2 and IP depend on. The range covers `percentile` of the values (by |v| for the
    symmetric scheme, both tails together for the affine one), so a few outliers are clipped
    rather than crushing the resolution of all other values; 100 covers everything.

    int8:               symmetric, any metric.
    uint8, cosine/ip:   offset 0 (zero must stay zero), so only for data without negative values.
    uint8, l2:          affine; the offset cancels in differences.
    """
    target = normal_datatype(target, "target")
    if target not in INT_DATATYPES:
        raise ValueError(f"quantization parameters are for int8 or uint8, not {target}")
    metric = str(metric).strip().lower()
    if metric not in DISTANCE_METRICS:
        raise ValueError(f"metric must be one of {', '.join(DISTANCE_METRICS)}, not {metric!r}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {percentile!r}")
    if stats.non_finite:
        raise ValueError(f"{stats.non_finite} values are NaN or infinite; {target} cannot represent them")
    if not stats.count:
        raise ValueError("no values to fit quantization parameters to")
    source = normal_datatype(source_datatype or stats.datatype or "float32", "source_datatype")
    tail = (100.0 - percentile) / 100.0
    if target == "int8":
        limit = stats.abs_quantile(1.0 - tail)
        scale = _float32(limit / 127) if limit > 0 else 1.0
        params = QuantParams("int8", "symmetric", scale, 0.0, metric, source, 0.0, percentile)
    elif metric in ("cosine", "ip"):
        if stats.min < 0:
            raise ValueError(
                f"uint8 with the {metric} metric needs non-negative embeddings (zero must stay zero, so no "
                f"offset is possible), but the smallest value is {stats.min:g}; use int8 instead, or the l2 metric"
            )
        limit = stats.abs_quantile(1.0 - tail)
        scale = _float32(limit / 255) if limit > 0 else 1.0
        params = QuantParams("uint8", "affine", scale, 0.0, metric, source, 0.0, percentile)
    else:
        low, high = stats.quantile(tail / 2), stats.quantile(1.0 - tail / 2)
        offset = _float32(low)
        scale = _float32((high - offset) / 255) if high > offset else 1.0
        params = QuantParams("uint8", "affine", scale, offset, metric, source, 0.0, percentile)
    if params.scale < numpy.finfo(numpy.float32).tiny or not math.isfinite(params.scale):
        raise ValueError(f"the values span {stats.min:g}..{stats.max:g}, too little or too much for a float32 scale")
    # Codes round to nearest: a value is clipped only beyond half a step past the extreme codes.
    low, high = params.range
    clipped = stats.fraction_outside(low - params.scale / 2, high + params.scale / 2)
    return QuantParams(params.datatype, params.scheme, params.scale, params.offset, metric, source, clipped, percentile)
