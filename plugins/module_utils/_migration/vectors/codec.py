# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vector bytes from one datatype to another, for migrations that rewrite stored vectors.

RediSearch stores a hash vector as `dims` little-endian elements of the field's datatype. Here a
batch of such byte strings is converted at once: the bytes are joined, read with one
`numpy.frombuffer`, converted as one matrix and split again, because the migrator feeds millions
of vectors through `convert_batch`.

Float conversions are numpy casts (round to nearest, ties to even). numpy has no bfloat16, so
bfloat16 is handled as its raw 16 bits: the upper half of a float32, rounded to nearest even.
int8 and uint8 need a `QuantParams`: one global scale (and, for uint8 with l2, an offset) fitted to
the data with `RangeStats` and `fit_quant_params`, and published so applications can encode their
query vectors the same way (see docs/quantization.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence

from ..core.deps import numpy
from ..core.errors import DependencyMissing
from ..schema.model import DATATYPE_WIDTH, DISTANCE_METRICS, VECTOR_DATATYPES

FLOAT_DATATYPES = ("float64", "float32", "float16", "bfloat16")
INT_DATATYPES = ("int8", "uint8")
# Storage dtypes, always little-endian; bfloat16 has no numpy dtype, its bits are read as uint16.
_STORAGE = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "bfloat16": "<u2", "int8": "i1", "uint8": "u1"}
# Bits that are all set exactly when a value is inf or NaN, for the 16-bit floats.
_EXPONENT_MASK = {"float16": 0x7C00, "bfloat16": 0x7F80}
FLOAT16_MAX = 65504.0
DEFAULT_PERCENTILE = 99.99
SCHEMES = {"int8": "symmetric", "uint8": "affine"}
QUANT_RANGE = {"int8": (-127, 127), "uint8": (0, 255)}
OVERFLOW_POLICIES = ("error", "allow")


class MalformedVector(ValueError):
    """A stored vector whose byte length does not match the datatype and dims."""

    def __init__(self, actual: int, expected: int, *, index: Optional[int] = None, count: int = 1,
                 datatype: Optional[str] = None, dims: Optional[int] = None):
        self.actual = actual
        self.expected = expected
        self.index = index
        self.count = count
        self.datatype = datatype
        self.dims = dims
        where = "the vector" if index is None else f"vector {index} of the batch"
        shape = f" ({dims} x {datatype})" if datatype and dims else ""
        more = f"; {count} malformed vectors in the batch" if count > 1 else ""
        super().__init__(f"{where} has {actual} bytes, expected {expected}{shape}{more}")


class VectorOverflow(ValueError):
    """Finite values that the target datatype would turn into infinity."""

    def __init__(self, count: int, index: int, source: str, target: str):
        self.count = count
        self.index = index
        self.source = source
        self.target = target
        super().__init__(f"{count} finite values would become infinite converting {source} to {target} "
                         f"(first in vector {index} of the batch); the values are beyond the range of {target}")


class NonFiniteValues(ValueError):
    """NaN or infinite values where the target (int8/uint8) cannot represent them."""

    def __init__(self, count: int, index: int, target: str):
        self.count = count
        self.index = index
        self.target = target
        super().__init__(f"{count} values are NaN or infinite (first in vector {index} of the batch); "
                         f"{target} cannot represent them")


def _need_numpy(what: str) -> None:
    if numpy is None:
        raise DependencyMissing(f"numpy is required to {what}",
                                hint="install it on the host that runs the module: pip install numpy")


def _datatype(value: Any, role: str = "datatype") -> str:
    normal = str(value).strip().lower() if value is not None else ""
    if normal not in VECTOR_DATATYPES:
        raise ValueError(f"{role} must be one of {', '.join(VECTOR_DATATYPES)}, not {value!r}")
    return normal


def expected_length(datatype: str, dims: int) -> int:
    """Byte length of one stored vector."""
    if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
        raise ValueError(f"dims must be a positive integer, not {dims!r}")
    return DATATYPE_WIDTH[_datatype(datatype)] * dims


# ---------------------------------------------------------------------------------------------
# Quantization parameters and the statistics they are fitted from.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuantParams:
    """How float values map to int8/uint8 codes, for every vector of a field alike.

    symmetric (int8):  q = clip(rint(v / scale), -127, 127)             v ~ q * scale
    affine (uint8):    q = clip(rint((v - offset) / scale), 0, 255)     v ~ q * scale + offset

    `scale` and `offset` are float32 values (stored as Python floats, exactly), so an application
    computing in float32 gets the same codes as the migration.
    """

    datatype: str
    scheme: str
    scale: float
    offset: float = 0.0
    metric: Optional[str] = None
    source_datatype: str = "float32"
    clip_fraction: float = 0.0
    percentile: float = DEFAULT_PERCENTILE

    def __post_init__(self):
        datatype = str(self.datatype).lower()
        if datatype not in INT_DATATYPES:
            raise ValueError(f"QuantParams apply to int8 or uint8, not {self.datatype!r}")
        if self.scheme != SCHEMES[datatype]:
            raise ValueError(f"{datatype} uses the {SCHEMES[datatype]} scheme, not {self.scheme!r}")
        scale, offset = float(self.scale), float(self.offset)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, not {self.scale!r}")
        if not math.isfinite(offset):
            raise ValueError(f"offset must be finite, not {self.offset!r}")
        if self.scheme == "symmetric" and offset != 0:
            raise ValueError("the symmetric scheme has no offset")
        metric = None if self.metric is None else str(self.metric).lower()
        if metric is not None and metric not in DISTANCE_METRICS:
            raise ValueError(f"metric must be one of {', '.join(DISTANCE_METRICS)}, not {self.metric!r}")
        if metric in ("cosine", "ip") and offset != 0:
            # An offset moves the origin: angles and dot products would no longer be comparable.
            raise ValueError(f"{metric} needs zero to stay zero: the offset must be 0")
        source = _datatype(self.source_datatype, "source_datatype")
        if source not in FLOAT_DATATYPES:
            raise ValueError(f"source_datatype must be a float type, not {self.source_datatype!r}")
        if not 0.0 <= float(self.clip_fraction) <= 1.0:
            raise ValueError(f"clip_fraction must be between 0 and 1, not {self.clip_fraction!r}")
        for name, value in (("datatype", datatype), ("scale", scale), ("offset", offset), ("metric", metric),
                            ("source_datatype", source), ("clip_fraction", float(self.clip_fraction)),
                            ("percentile", float(self.percentile))):
            object.__setattr__(self, name, value)

    @property
    def qmin(self) -> int:
        return QUANT_RANGE[self.datatype][0]

    @property
    def qmax(self) -> int:
        return QUANT_RANGE[self.datatype][1]

    @property
    def range(self) -> tuple[float, float]:
        """The values that map to the lowest and highest code; anything beyond is clipped."""
        return self.qmin * self.scale + self.offset, self.qmax * self.scale + self.offset

    def to_dict(self) -> dict[str, Any]:
        """Everything an application needs to encode query vectors like the migration did."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        low, high = self.range
        data.update(qmin=self.qmin, qmax=self.qmax, range=[low, high])
        if self.scheme == "symmetric":
            data["encode"] = f"q = clip(rint(v / scale), {self.qmin}, {self.qmax}) as {self.datatype}"
            data["decode"] = "v = q * scale"
        else:
            data["encode"] = f"q = clip(rint((v - offset) / scale), {self.qmin}, {self.qmax}) as {self.datatype}"
            data["decode"] = "v = q * scale + offset"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuantParams":
        """Read back `to_dict()` output (derived keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class RangeStats:
    """Running value statistics of a vector field, in constant memory.

    Keeps the exact count, min, max and max |v| of the finite values, and a histogram whose bins
    are float32 values truncated to their upper 16 bits: 2 x 32640 counters (about 0.5 MiB),
    each bin 2^-7 (0.8%) wide relative to its values, whatever the number of vectors. High
    percentiles come from the histogram, interpolated within a bin.
    """

    _MAGNITUDES = 0x7F80  # finite float32 magnitudes by upper 16 bits; larger ones share the last bin

    def __init__(self, datatype: Optional[str] = None):
        _need_numpy("measure vector values")
        self.datatype = None if datatype is None else _datatype(datatype)
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
        self._pos += counts[:self._MAGNITUDES]
        self._neg += counts[self._MAGNITUDES:]
        return self

    def update_buffers(self, buffers: Sequence[bytes], datatype: str, dims: int) -> "RangeStats":
        """Add a batch of stored vectors (float datatypes)."""
        datatype = _datatype(datatype)
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
        return {"count": self.count, "non_finite": self.non_finite, "datatype": self.datatype,
                "min": None if empty else self.min, "max": None if empty else self.max,
                "max_abs": None if empty else self.max_abs}


def _float32(value: float) -> float:
    """The nearest float32, as a Python float (exact), so both sides compute with the same scale."""
    return float(numpy.float32(value))


def fit_quant_params(target: str, metric: str, stats: RangeStats, *, percentile: float = DEFAULT_PERCENTILE,
                     source_datatype: Optional[str] = None) -> QuantParams:
    """Fit one global scale (and offset) for converting a whole field to int8 or uint8.

    One scale for every vector: per-vector scales would change the relative lengths of vectors,
    which L2 and IP depend on. The range covers `percentile` of the values (by |v| for the
    symmetric scheme, both tails together for the affine one), so a few outliers are clipped
    rather than crushing the resolution of all other values; 100 covers everything.

    int8:               symmetric, any metric.
    uint8, cosine/ip:   offset 0 (zero must stay zero), so only for data without negative values.
    uint8, l2:          affine; the offset cancels in differences.
    """
    target = _datatype(target, "target")
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
    source = _datatype(source_datatype or stats.datatype or "float32", "source_datatype")
    tail = (100.0 - percentile) / 100.0
    if target == "int8":
        limit = stats.abs_quantile(1.0 - tail)
        scale = _float32(limit / 127) if limit > 0 else 1.0
        params = QuantParams("int8", "symmetric", scale, 0.0, metric, source, 0.0, percentile)
    elif metric in ("cosine", "ip"):
        if stats.min < 0:
            raise ValueError(
                f"uint8 with the {metric} metric needs non-negative embeddings (zero must stay zero, so no "
                f"offset is possible), but the smallest value is {stats.min:g}; use int8 instead, or the l2 metric")
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


# ---------------------------------------------------------------------------------------------
# Element conversions on matrices.
# ---------------------------------------------------------------------------------------------

def _bfloat16_from_float32(values):
    """float32 -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN, inf stays inf."""
    bits = values.view("<u4")
    # Adding 0x7FFF plus the lowest kept bit carries into the kept half exactly when the dropped
    # half is above 0x8000, or equal to it with an odd kept half (ties to even).
    rounded = bits >> 16
    rounded &= 1
    rounded += 0x7FFF
    rounded += bits
    rounded >>= 16
    out = rounded.astype("<u2")
    nan = numpy.isnan(values)
    if nan.any():
        # The carry would turn a NaN with a large payload into inf; keep the sign, set the quiet bit.
        out[nan] = ((bits[nan] >> 16) | 0x0040).astype("<u2")
    return out


def _float32_from_bfloat16(bits):
    # Native dtypes on both sides of the view: shifts yield native integers on any host.
    return (bits.astype(numpy.uint32) << 16).view(numpy.float32)


def _quantize(values, params: Optional[QuantParams], target: str):
    if params is None:
        raise ValueError(f"converting to {target} needs QuantParams (fit them with fit_quant_params)")
    if params.datatype != target:
        raise ValueError(f"these QuantParams are for {params.datatype}, not {target}")
    finite = numpy.isfinite(values)
    if not finite.all():
        bad = ~finite
        raise NonFiniteValues(int(numpy.count_nonzero(bad)), int(numpy.argmax(bad.any(axis=-1))) if bad.ndim > 1 else 0,
                              target)
    # Same arithmetic as the published formula, in the values' own precision (float32 for float32
    # sources, like an application's numpy code).
    kind = values.dtype.type
    shifted = values - kind(params.offset) if params.offset else values
    codes = shifted / kind(params.scale)
    numpy.rint(codes, out=codes)
    numpy.clip(codes, params.qmin, params.qmax, out=codes)
    return codes.astype(_STORAGE[target])


def _dequantize(codes, params: QuantParams):
    # float64: q * scale is exact there, so the result is rounded once, to the target type.
    values = codes.astype(numpy.float64) * params.scale
    if params.offset:
        values += params.offset
    return values


def _values(raw, datatype: str, params: Optional[QuantParams]):
    """Stored elements -> float values (float64 for float64 and dequantized ints, else float32)."""
    if datatype in ("float64", "float32"):
        return raw
    if datatype == "float16":
        return raw.astype(numpy.float32)
    if datatype == "bfloat16":
        return _float32_from_bfloat16(raw)
    if params is None:
        # Raw integers: exact in every float type.
        return raw.astype(numpy.float32)
    if params.datatype != datatype:
        raise ValueError(f"these QuantParams are for {params.datatype}, not {datatype}")
    return _dequantize(raw, params)


def _stored(values, datatype: str, params: Optional[QuantParams]):
    """Float values -> stored elements of `datatype`."""
    if datatype in INT_DATATYPES:
        return _quantize(values, params, datatype)
    # Overflow is checked afterwards (VectorOverflow); a signalling NaN stays a NaN.
    with numpy.errstate(over="ignore", invalid="ignore"):
        if datatype == "bfloat16":
            return _bfloat16_from_float32(values.astype("<f4", copy=False))
        return values.astype(_STORAGE[datatype], copy=False)


def _non_finite(stored, datatype: str):
    if datatype in _EXPONENT_MASK:
        mask = _EXPONENT_MASK[datatype]
        return (stored.view("<u2") & mask) == mask
    return ~numpy.isfinite(stored)


def _matrix(buffers: Sequence[bytes], datatype: str, dims: int):
    """Validate every length, then read the whole batch as one (n, dims) array."""
    expected = expected_length(datatype, dims)
    count = len(buffers)
    # join names the item of a non-bytes entry (None, str) in its TypeError.
    data = b"".join(buffers)
    # Every length, not just the total: a long and a short vector would balance out.
    lengths = numpy.fromiter(map(len, buffers), dtype=numpy.int64, count=count)
    bad = numpy.flatnonzero(lengths != expected)
    if bad.size:
        first = int(bad[0])
        raise MalformedVector(int(lengths[first]), expected, index=first, count=int(bad.size),
                              datatype=datatype, dims=dims)
    return numpy.frombuffer(data, dtype=_STORAGE[datatype]).reshape(count, dims)


def decode(buf: bytes, datatype: str, dims: int, params: Optional[QuantParams] = None):
    """One stored vector -> its values (float64 for float64, else float32).

    int8/uint8 are dequantized with `params`, or given as their raw integers without."""
    _need_numpy("decode vectors")
    datatype = _datatype(datatype)
    expected = expected_length(datatype, dims)
    size = memoryview(buf).nbytes
    if size != expected:
        raise MalformedVector(size, expected, datatype=datatype, dims=dims)
    return _writable(_values(numpy.frombuffer(buf, dtype=_STORAGE[datatype]), datatype, params), datatype, params)


def decode_batch(buffers: Sequence[bytes], datatype: str, dims: int, params: Optional[QuantParams] = None):
    """Stored vectors -> an (n, dims) array of their values (see `decode`)."""
    _need_numpy("decode vectors")
    datatype = _datatype(datatype)
    return _writable(_values(_matrix(buffers, datatype, dims), datatype, params), datatype, params)


def _writable(values, datatype: str, params: Optional[QuantParams]):
    if datatype in INT_DATATYPES and params is not None:
        return values.astype(numpy.float32)
    kind = numpy.float64 if datatype == "float64" else numpy.float32
    return values.astype(kind)


def encode_batch(values: Any, datatype: str, params: Optional[QuantParams] = None, *, overflow: str = "error") -> list[bytes]:
    """An (n, dims) array of values -> stored vectors of `datatype`."""
    _need_numpy("encode vectors")
    datatype = _datatype(datatype)
    matrix = numpy.asarray(values)
    if matrix.ndim != 2 or matrix.dtype.kind not in "fiu":
        raise ValueError(f"expected a 2-d numeric array, not {matrix.ndim}-d {matrix.dtype}")
    if matrix.dtype.kind != "f" or matrix.dtype.itemsize < 4:
        matrix = matrix.astype(numpy.float32)
    return _finish(matrix, _stored(matrix, datatype, params), f"{matrix.dtype}", datatype, overflow)


def _finish(values, stored, source: str, target: str, overflow: str) -> list[bytes]:
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {overflow!r}")
    if overflow == "error" and target in FLOAT_DATATYPES and stored.size:
        inf = _non_finite(stored, target)
        if inf.any():
            inf &= numpy.isfinite(values)
            if inf.any():
                raise VectorOverflow(int(numpy.count_nonzero(inf)), int(numpy.argmax(inf.any(axis=1))), source, target)
    # Slices of a view: one big bytes copy first would cost more than the conversion (page faults).
    data = memoryview(numpy.ascontiguousarray(stored).reshape(-1).view(numpy.uint8))
    width = stored.shape[1] * stored.itemsize
    return [data[start:start + width].tobytes() for start in range(0, stored.nbytes, width)]


def convert_batch(buffers: Sequence[bytes], source: str, target: str, dims: int, params: Optional[QuantParams] = None,
                  *, overflow: str = "error") -> list[bytes]:
    """Convert stored vectors from `source` to `target` datatype, all at once.

    `params` quantizes to int8/uint8, or dequantizes from them (without, an integer source is read
    as its raw integers). int8 <-> uint8 is refused: dequantize to float32 first, then fit new
    parameters. With overflow="error" (default), finite values that the target would turn into
    infinity raise VectorOverflow instead of being written; "allow" writes the infinities.
    """
    _need_numpy("convert vectors")
    source, target = _datatype(source, "source"), _datatype(target, "target")
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {overflow!r}")
    if source in INT_DATATYPES and target in INT_DATATYPES and source != target:
        raise ValueError(f"{source} -> {target} is not converted directly: dequantize to float32 with the "
                         f"{source} parameters, then fit parameters for {target}")
    matrix = _matrix(buffers, source, dims)
    if source == target:
        return buffers if isinstance(buffers, list) else list(buffers)
    values = _values(matrix, source, params if source in INT_DATATYPES else None)
    return _finish(values, _stored(values, target, params if target in INT_DATATYPES else None), source, target, overflow)


def check_overflow(buffers: Sequence[bytes], source: str, target: str, dims: int,
                   params: Optional[QuantParams] = None) -> dict[str, Any]:
    """What converting these vectors would lose at the edges of the target's range.

    overflow:       finite values that would become inf (float16 beyond +-65504, ...)
    underflow:      non-zero values that would become zero (float targets)
    clipped:        values beyond the quantization range (int targets)
    zeroed_vectors: non-zero vectors that would become all zeros (no direction left for cosine)
    """
    _need_numpy("check vectors")
    source, target = _datatype(source, "source"), _datatype(target, "target")
    values = _values(_matrix(buffers, source, dims), source, params if source in INT_DATATYPES else None)
    report = {"source": source, "target": target, "vectors": int(values.shape[0]), "values": int(values.size),
              "overflow": 0, "overflow_vectors": 0, "first_overflow": None, "underflow": 0, "clipped": 0,
              "zeroed_vectors": 0}
    if not values.size or source == target:
        return report
    finite = numpy.isfinite(values)
    if target in INT_DATATYPES:
        if params is None or params.datatype != target:
            raise ValueError(f"checking a conversion to {target} needs its QuantParams")
        safe = numpy.where(finite, values, 0)
        codes = numpy.rint((safe - safe.dtype.type(params.offset)) / safe.dtype.type(params.scale))
        report["clipped"] = int(numpy.count_nonzero(finite & ((codes < params.qmin) | (codes > params.qmax))))
        zero_after = _dequantize(_quantize(safe, params, target), params) == 0
    else:
        stored = _stored(values, target, None)
        back = _values(stored, target, None)
        inf = finite & ~numpy.isfinite(back)
        rows = inf.any(axis=1)
        report["overflow"] = int(numpy.count_nonzero(inf))
        report["overflow_vectors"] = int(numpy.count_nonzero(rows))
        report["first_overflow"] = int(numpy.argmax(rows)) if rows.any() else None
        zero_after = back == 0
        report["underflow"] = int(numpy.count_nonzero(zero_after & (values != 0) & finite))
    nonzero = (values != 0).any(axis=1)
    report["zeroed_vectors"] = int(numpy.count_nonzero(nonzero & zero_after.all(axis=1)))
    return report


# ---------------------------------------------------------------------------------------------
# What a conversion costs, in words, for plan warnings.
# ---------------------------------------------------------------------------------------------

_PRECISION = {
    "float64": "~15-16 significant decimal digits (53-bit significand), range +-1.8e308",
    "float32": "~7 significant decimal digits (relative error <= 2^-24 ~ 6.0e-8), range +-3.4e38",
    "float16": ("~3 significant decimal digits (relative error <= 2^-11 ~ 4.9e-4), range +-65504: larger magnitudes "
                "become inf, magnitudes below 6.1e-5 lose relative precision and below 3.0e-8 become 0"),
    "bfloat16": ("~2-3 significant decimal digits (relative error <= 2^-8 ~ 3.9e-3), range +-3.4e38 like float32 "
                 "(magnitudes from ~3.396e38 become inf)"),
}
_WIDENING = {("float16", "float32"), ("float16", "float64"), ("bfloat16", "float32"), ("bfloat16", "float64"),
             ("float32", "float64")}


def describe_conversion(source: str, target: str) -> dict[str, Any]:
    """{"lossy", "precision", "supported"}: what converting stored values from source to target costs."""
    source, target = _datatype(source, "source"), _datatype(target, "target")
    if source == target:
        return {"lossy": False, "supported": True, "precision": "unchanged (same datatype)"}
    if (source, target) in _WIDENING:
        return {"lossy": False, "supported": True, "precision": f"exact: every {source} value is a {target} value"}
    if source in INT_DATATYPES and target in INT_DATATYPES:
        return {"lossy": True, "supported": False,
                "precision": f"not converted directly: dequantize {source} to float32, then quantize to {target}"}
    if source in INT_DATATYPES:
        exact = target in ("float32", "float64")
        note = ("exact for the raw integers; dequantized values (q * scale + offset) are rounded once to "
                + ("float32" if target == "float32" else target))
        return {"lossy": not exact, "supported": True,
                "precision": note if exact else f"{note}: {_PRECISION[target]}"}
    if target == "int8":
        return {"lossy": True, "supported": True,
                "precision": ("255 levels (codes -127..127, symmetric so that zero stays zero) over [-c, c], c fitted to the data (the 99.99th percentile "
                              "of |v| by default); absolute error <= scale/2 = c/254 within the range, values beyond "
                              "it are clipped; about 2 significant decimal digits for the largest values")}
    if target == "uint8":
        return {"lossy": True, "supported": True,
                "precision": ("256 levels (codes 0..255) over a range fitted to the data (offset 0 for cosine/ip, "
                              "which need non-negative values); absolute error <= scale/2 = range/510 within the "
                              "range, values beyond it are clipped")}
    text = _PRECISION[target]
    if source == "bfloat16" and target == "float16":
        text = ("exact for magnitudes within 6.1e-5..65504 (float16 has more significand bits than bfloat16); "
                "larger magnitudes become inf, smaller ones lose precision or become 0")
    elif source == "float16" and target == "bfloat16":
        text = f"{text}; float16's range fits, so only precision is lost"
    elif source == "float64" and target == "bfloat16":
        text = (f"{text}; rounded via float32, so a value within 2^-29 of a halfway point may round "
                f"the other way than a direct rounding would (one bfloat16 step)")
    return {"lossy": True, "supported": True, "precision": text}
