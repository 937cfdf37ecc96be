# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vector bytes from one datatype to another, for migrations that rewrite stored vectors.

RediSearch stores a hash vector as `dims` little-endian elements of the field's datatype. Here a
batch of such byte strings is converted at once: the bytes are joined, read with one
`numpy.frombuffer`, converted as one matrix and split again, because the migrator feeds millions
of vectors through `convert_batch`.

Float conversions are numpy casts (round to nearest, ties to even). numpy has no bfloat16, so
bfloat16 is handled as its raw 16 bits: the upper half of a float32, rounded to nearest even.
int8 and uint8 need a `QuantParams`: one global scale (and, for uint8 with l2, an offset) fitted to
the data with `RangeStats` and `fit_quant_params` (fitting.py), and published so applications can encode their
query vectors the same way (see docs/quantization.md).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..core.deps import numpy
from .datatypes import (
    FLOAT_DATATYPES,
    INT_DATATYPES,
    STORAGE,
    MalformedVector,
    VectorOverflow,
    expected_length,
    need_numpy,
    normal_datatype,
)
from .quantization import QuantParams, dequantize, quantize

# Bits that are all set exactly when a value is inf or NaN, for the 16-bit floats.
_EXPONENT_MASK = {"float16": 0x7C00, "bfloat16": 0x7F80}

OVERFLOW_POLICIES = ("error", "allow")


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
    return dequantize(raw, params)


def _stored(values, datatype: str, params: Optional[QuantParams]):
    """Float values -> stored elements of `datatype`."""
    if datatype in INT_DATATYPES:
        return quantize(values, params, datatype)
    # Overflow is checked afterwards (VectorOverflow); a signalling NaN stays a NaN.
    with numpy.errstate(over="ignore", invalid="ignore"):
        if datatype == "bfloat16":
            return _bfloat16_from_float32(values.astype("<f4", copy=False))
        return values.astype(STORAGE[datatype], copy=False)


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
        raise MalformedVector(
            int(lengths[first]), expected, index=first, count=int(bad.size), datatype=datatype, dims=dims
        )
    return numpy.frombuffer(data, dtype=STORAGE[datatype]).reshape(count, dims)


def decode(buf: bytes, datatype: str, dims: int, params: Optional[QuantParams] = None):
    """One stored vector -> its values (float64 for float64, else float32).

    int8/uint8 are dequantized with `params`, or given as their raw integers without."""
    need_numpy("decode vectors")
    datatype = normal_datatype(datatype)
    expected = expected_length(datatype, dims)
    size = memoryview(buf).nbytes
    if size != expected:
        raise MalformedVector(size, expected, datatype=datatype, dims=dims)
    return _writable(_values(numpy.frombuffer(buf, dtype=STORAGE[datatype]), datatype, params), datatype, params)


def decode_batch(buffers: Sequence[bytes], datatype: str, dims: int, params: Optional[QuantParams] = None):
    """Stored vectors -> an (n, dims) array of their values (see `decode`)."""
    need_numpy("decode vectors")
    datatype = normal_datatype(datatype)
    return _writable(_values(_matrix(buffers, datatype, dims), datatype, params), datatype, params)


def _writable(values, datatype: str, params: Optional[QuantParams]):
    if datatype in INT_DATATYPES and params is not None:
        return values.astype(numpy.float32)
    kind = numpy.float64 if datatype == "float64" else numpy.float32
    return values.astype(kind)


def encode_batch(
    values: Any, datatype: str, params: Optional[QuantParams] = None, *, overflow: str = "error"
) -> list[bytes]:
    """An (n, dims) array of values -> stored vectors of `datatype`."""
    need_numpy("encode vectors")
    datatype = normal_datatype(datatype)
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
    return [data[start : start + width].tobytes() for start in range(0, stored.nbytes, width)]


def convert_batch(
    buffers: Sequence[bytes],
    source: str,
    target: str,
    dims: int,
    params: Optional[QuantParams] = None,
    *,
    overflow: str = "error",
) -> list[bytes]:
    """Convert stored vectors from `source` to `target` datatype, all at once.

    `params` quantizes to int8/uint8, or dequantizes from them (without, an integer source is read
    as its raw integers). int8 <-> uint8 is refused: dequantize to float32 first, then fit new
    parameters. With overflow="error" (default), finite values that the target would turn into
    infinity raise VectorOverflow instead of being written; "allow" writes the infinities.
    """
    need_numpy("convert vectors")
    source, target = normal_datatype(source, "source"), normal_datatype(target, "target")
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {overflow!r}")
    if source in INT_DATATYPES and target in INT_DATATYPES and source != target:
        raise ValueError(
            f"{source} -> {target} is not converted directly: dequantize to float32 with the "
            f"{source} parameters, then fit parameters for {target}"
        )
    matrix = _matrix(buffers, source, dims)
    if source == target:
        return buffers if isinstance(buffers, list) else list(buffers)
    values = _values(matrix, source, params if source in INT_DATATYPES else None)
    return _finish(
        values, _stored(values, target, params if target in INT_DATATYPES else None), source, target, overflow
    )


def check_overflow(
    buffers: Sequence[bytes], source: str, target: str, dims: int, params: Optional[QuantParams] = None
) -> dict[str, Any]:
    """What converting these vectors would lose at the edges of the target's range.

    overflow:       finite values that would become inf (float16 beyond +-65504, ...)
    underflow:      non-zero values that would become zero (float targets)
    clipped:        values beyond the quantization range (int targets)
    zeroed_vectors: non-zero vectors that would become all zeros (no direction left for cosine)
    """
    need_numpy("check vectors")
    source, target = normal_datatype(source, "source"), normal_datatype(target, "target")
    values = _values(_matrix(buffers, source, dims), source, params if source in INT_DATATYPES else None)
    report = {
        "source": source,
        "target": target,
        "vectors": int(values.shape[0]),
        "values": int(values.size),
        "overflow": 0,
        "overflow_vectors": 0,
        "first_overflow": None,
        "underflow": 0,
        "clipped": 0,
        "zeroed_vectors": 0,
    }
    if not values.size or source == target:
        return report
    finite = numpy.isfinite(values)
    if target in INT_DATATYPES:
        if params is None or params.datatype != target:
            raise ValueError(f"checking a conversion to {target} needs its QuantParams")
        safe = numpy.where(finite, values, 0)
        codes = numpy.rint((safe - safe.dtype.type(params.offset)) / safe.dtype.type(params.scale))
        report["clipped"] = int(numpy.count_nonzero(finite & ((codes < params.qmin) | (codes > params.qmax))))
        zero_after = dequantize(quantize(safe, params, target), params) == 0
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


_PRECISION = {
    "float64": "~15-16 significant decimal digits (53-bit significand), range +-1.8e308",
    "float32": "~7 significant decimal digits (relative error <= 2^-24 ~ 6.0e-8), range +-3.4e38",
    "float16": (
        "~3 significant decimal digits (relative error <= 2^-11 ~ 4.9e-4), range +-65504: larger magnitudes "
        "become inf, magnitudes below 6.1e-5 lose relative precision and below 3.0e-8 become 0"
    ),
    "bfloat16": (
        "~2-3 significant decimal digits (relative error <= 2^-8 ~ 3.9e-3), range +-3.4e38 like float32 "
        "(magnitudes from ~3.396e38 become inf)"
    ),
}

_WIDENING = {
    ("float16", "float32"),
    ("float16", "float64"),
    ("bfloat16", "float32"),
    ("bfloat16", "float64"),
    ("float32", "float64"),
}


def describe_conversion(source: str, target: str) -> dict[str, Any]:
    """{"lossy", "precision", "supported"}: what converting stored values from source to target costs."""
    source, target = normal_datatype(source, "source"), normal_datatype(target, "target")
    if source == target:
        return {"lossy": False, "supported": True, "precision": "unchanged (same datatype)"}
    if (source, target) in _WIDENING:
        return {"lossy": False, "supported": True, "precision": f"exact: every {source} value is a {target} value"}
    if source in INT_DATATYPES and target in INT_DATATYPES:
        return {
            "lossy": True,
            "supported": False,
            "precision": f"not converted directly: dequantize {source} to float32, then quantize to {target}",
        }
    if source in INT_DATATYPES:
        exact = target in ("float32", "float64")
        note = "exact for the raw integers; dequantized values (q * scale + offset) are rounded once to " + (
            "float32" if target == "float32" else target
        )
        return {"lossy": not exact, "supported": True, "precision": note if exact else f"{note}: {_PRECISION[target]}"}
    if target == "int8":
        return {
            "lossy": True,
            "supported": True,
            "precision": (
                "255 levels (codes -127..127, symmetric so that zero stays zero) over [-c, c], c fitted to the data "
                "(the 99.99th percentile of |v| by default); absolute error <= scale/2 = c/254 within the range, "
                "values beyond it are clipped; about 2 significant decimal digits for the largest values"
            ),
        }
    if target == "uint8":
        return {
            "lossy": True,
            "supported": True,
            "precision": (
                "256 levels (codes 0..255) over a range fitted to the data (offset 0 for cosine/ip, "
                "which need non-negative values); absolute error <= scale/2 = range/510 within the "
                "range, values beyond it are clipped"
            ),
        }
    text = _PRECISION[target]
    if source == "bfloat16" and target == "float16":
        text = (
            "exact for magnitudes within 6.1e-5..65504 (float16 has more significand bits than bfloat16); "
            "larger magnitudes become inf, smaller ones lose precision or become 0"
        )
    elif source == "float16" and target == "bfloat16":
        text = f"{text}; float16's range fits, so only precision is lost"
    elif source == "float64" and target == "bfloat16":
        text = (
            f"{text}; rounded via float32, so a value within 2^-29 of a halfway point may round "
            f"the other way than a direct rounding would (one bfloat16 step)"
        )
    return {"lossy": True, "supported": True, "precision": text}
