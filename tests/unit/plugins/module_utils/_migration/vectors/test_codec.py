"""Vector byte conversions between datatypes, quantization parameters (pure logic).

Expected results come from independent computations: struct packing (which rounds to nearest
even and refuses to overflow), a compare-based bfloat16 rounding written here, hard-coded bit
patterns and numpy casts — never from the code under test.
"""

from __future__ import annotations

import json
import math
import pickle
import struct

import numpy
import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.codec import (
    check_overflow,
    convert_batch,
    decode,
    decode_batch,
    describe_conversion,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.datatypes import (
    MalformedVector,
    NonFiniteValues,
    VectorOverflow,
    expected_length,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.fitting import (
    RangeStats,
    fit_quant_params,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.quantization import QuantParams

FLOATS = ("float64", "float32", "float16", "bfloat16")
ALL = FLOATS + ("int8", "uint8")
STORAGE = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "int8": "i1", "uint8": "u1"}
WIDTH = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}
KNOWN = [1.0, -2.5, 65504.0, 1e-8, 3.4e38, math.nan, math.inf, -math.inf]


# --- independent references ------------------------------------------------------------------


def f32_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


def bits_f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def bf16_round(bits32: int) -> int:
    """Round float32 bits to bfloat16 bits by comparing the dropped half with the halfway point."""
    if (bits32 & 0x7F800000) == 0x7F800000 and bits32 & 0x007FFFFF:
        return (bits32 >> 16) | 0x0040
    kept, dropped = bits32 >> 16, bits32 & 0xFFFF
    if dropped > 0x8000 or (dropped == 0x8000 and kept & 1):
        kept += 1
    return kept


def pack_or_inf(fmt: str, value: float, inf: bytes, neg_inf: bytes) -> bytes:
    try:
        return struct.pack(fmt, value)
    except OverflowError:  # struct refuses values that round beyond the format's range
        return inf if value > 0 else neg_inf


def stored(value: float, datatype: str) -> bytes:
    """`value` as one stored element of `datatype`."""
    if datatype == "float64":
        return struct.pack("<d", value)
    if datatype == "float32":
        return pack_or_inf("<f", value, b"\x00\x00\x80\x7f", b"\x00\x00\x80\xff")
    if datatype == "float16":
        return pack_or_inf("<e", value, b"\x00\x7c", b"\x00\xfc")
    bits32 = struct.unpack("<I", stored(value, "float32"))[0]
    return struct.pack("<H", bf16_round(bits32))


def value_of(element: bytes, datatype: str) -> float:
    if datatype == "bfloat16":
        return bits_f32(struct.unpack("<H", element)[0] << 16)
    return struct.unpack({"float64": "<d", "float32": "<f", "float16": "<e"}[datatype], element)[0]


def elements(buf: bytes, datatype: str) -> list[bytes]:
    width = WIDTH[datatype]
    return [buf[i : i + width] for i in range(0, len(buf), width)]


def is_nan(element: bytes, datatype: str) -> bool:
    return math.isnan(value_of(element, datatype))


def random_vectors(count: int = 64, dims: int = 32, seed: int = 7) -> numpy.ndarray:
    return numpy.random.default_rng(seed).standard_normal((count, dims)).astype(numpy.float32)


def as_buffers(matrix: numpy.ndarray, dtype: str = "<f4") -> list[bytes]:
    return [row.astype(dtype).tobytes() for row in matrix]


# --- lengths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", ALL)
def test_expected_length(datatype):
    assert expected_length(datatype, 384) == WIDTH[datatype] * 384


@pytest.mark.parametrize("dims", [0, -1, 1.5, True, "3"])
def test_expected_length_refuses_bad_dims(dims):
    with pytest.raises(ValueError, match="dims"):
        expected_length("float32", dims)


def test_unknown_datatype_names_the_choices():
    with pytest.raises(ValueError, match="float32, float64, float16, bfloat16, int8, uint8"):
        expected_length("float8", 4)


def test_malformed_vector_names_the_first_bad_index():
    good = struct.pack("<4f", 1, 2, 3, 4)
    batch = [good, good, good[:-1], good + b"\x00", good]
    with pytest.raises(MalformedVector) as err:
        convert_batch(batch, "float32", "float16", 4)
    assert (err.value.index, err.value.actual, err.value.expected, err.value.count) == (2, 15, 16, 2)
    assert "vector 2 of the batch has 15 bytes, expected 16" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_lengths_that_balance_out_are_still_malformed():
    good = struct.pack("<4f", 1, 2, 3, 4)
    with pytest.raises(MalformedVector) as err:
        convert_batch([good[:-2], good + b"\x00\x00"], "float32", "float16", 4)
    assert err.value.index == 0


def test_same_type_batch_is_validated_too():
    with pytest.raises(MalformedVector):
        convert_batch([b"\x00" * 8], "float16", "float16", 3)


def test_decode_refuses_a_wrong_length():
    with pytest.raises(MalformedVector) as err:
        decode(b"\x00" * 10, "float32", 3)
    assert (err.value.index, err.value.actual, err.value.expected) == (None, 10, 12)


def test_a_missing_vector_is_named():
    good = struct.pack("<2f", 1, 2)
    with pytest.raises(TypeError, match="item 1"):
        convert_batch([good, None], "float32", "float16", 2)


# --- float conversions, exact bytes --------------------------------------------------------------


@pytest.mark.parametrize("source", FLOATS)
@pytest.mark.parametrize("target", FLOATS)
def test_known_values_in_every_direction(source, target):
    source_bytes = b"".join(stored(v, source) for v in KNOWN)
    result = convert_batch([source_bytes], source, target, len(KNOWN), overflow="allow")
    assert len(result) == 1 and len(result[0]) == WIDTH[target] * len(KNOWN)
    for value, src, got in zip(KNOWN, elements(source_bytes, source), elements(result[0], target)):
        if math.isnan(value):
            assert is_nan(got, target), f"NaN must stay NaN ({source}->{target})"
        else:
            want = stored(value_of(src, source), target)
            assert got == want, f"{value!r}: {source}->{target} gave {got.hex()}, expected {want.hex()}"


@pytest.mark.parametrize(
    "value, half, bfloat",
    [
        (1.0, 0x3C00, 0x3F80),
        (-2.5, 0xC100, 0xC020),
        (65504.0, 0x7BFF, 0x4780),  # bfloat16 rounds 65504 up to 65536
        (1e-8, 0x0000, 0x322C),  # below float16's smallest subnormal / 2: zero
        (3.4e38, 0x7C00, 0x7F80),  # beyond both ranges: inf (3.4e38 > bfloat16's 3.39e38 max)
        (math.inf, 0x7C00, 0x7F80),
        (-math.inf, 0xFC00, 0xFF80),
    ],
)
def test_known_bit_patterns_from_float32(value, half, bfloat):
    buf = struct.pack("<f", value)
    assert convert_batch([buf], "float32", "float16", 1, overflow="allow") == [struct.pack("<H", half)]
    assert convert_batch([buf], "float32", "bfloat16", 1, overflow="allow") == [struct.pack("<H", bfloat)]


@pytest.mark.parametrize(
    "bits, expected",
    [
        (0x3F808000, 0x3F80),  # exactly halfway, kept half even: stays
        (0x3F818000, 0x3F82),  # exactly halfway, kept half odd: up to even
        (0x3F808001, 0x3F81),  # just above halfway: up
        (0x3F807FFF, 0x3F80),  # just below halfway: down
        (0xBF808000, 0xBF80),  # negative, even: stays
        (0xBF818000, 0xBF82),  # negative, odd: away from zero to even
        (0x3FFF8000, 0x4000),  # odd, halfway: carries into the exponent (2.0)
        (0x00008000, 0x0000),  # subnormal halfway, even
        (0x00018000, 0x0002),  # subnormal halfway, odd
        (0x7F7F7FFF, 0x7F7F),  # just below the overflow point: largest finite bfloat16
        (0x7F7F8000, 0x7F80),  # halfway to the next binade, odd: inf
    ],
)
def test_bfloat16_rounds_to_nearest_even(bits, expected):
    assert bf16_round(bits) == expected  # the reference agrees with the hand-made table
    result = convert_batch([struct.pack("<I", bits)], "float32", "bfloat16", 1, overflow="allow")
    assert result == [struct.pack("<H", expected)]


@pytest.mark.parametrize("bits", [0x7F800001, 0x7FC00000, 0x7FFFFFFF, 0x7FFF8000, 0xFF800001, 0xFFFFFFFF])
def test_bfloat16_keeps_nan_quiet_and_signed(bits):
    [result] = convert_batch([struct.pack("<I", bits)], "float32", "bfloat16", 1)
    out = struct.unpack("<H", result)[0]
    assert (out & 0x7F80) == 0x7F80 and out & 0x007F, f"{bits:#x} became {out:#x}, not a NaN"
    assert out & 0x0040, "quiet bit"
    assert out >> 15 == bits >> 31, "sign"


def test_bfloat16_round_trips_every_bit_pattern():
    patterns = numpy.arange(65536, dtype=numpy.uint32)
    raw = [patterns[i : i + 256].astype("<u2").tobytes() for i in range(0, 65536, 256)]
    as_f32 = convert_batch(raw, "bfloat16", "float32", 256)
    # Decoding is exact: the pattern is the upper half of the float32.
    assert b"".join(as_f32) == (patterns << 16).astype("<u4").tobytes()
    nan = ((patterns & 0x7F80) == 0x7F80) & ((patterns & 0x007F) != 0)
    for wide in ("float32", "float64"):
        there = as_f32 if wide == "float32" else convert_batch(raw, "bfloat16", "float64", 256)
        back = numpy.frombuffer(b"".join(convert_batch(there, wide, "bfloat16", 256)), dtype="<u2")
        assert numpy.array_equal(back[~nan], patterns[~nan].astype(numpy.uint16))
        assert numpy.all((back[nan] & 0x7F80) == 0x7F80) and numpy.all(back[nan] & 0x7F)


def test_float16_round_trips_every_bit_pattern():
    patterns = numpy.arange(65536, dtype=numpy.uint32).astype("<u2")
    raw = [patterns[i : i + 256].tobytes() for i in range(0, 65536, 256)]
    reference = patterns.view("<f2").astype(numpy.float32)
    there = convert_batch(raw, "float16", "float32", 256)
    got = numpy.frombuffer(b"".join(there), dtype="<f4")
    nan = numpy.isnan(reference)
    assert numpy.array_equal(got[~nan], reference[~nan]) and numpy.isnan(got[nan]).all()
    back = numpy.frombuffer(b"".join(convert_batch(there, "float32", "float16", 256)), dtype="<u2")
    assert numpy.array_equal(back[~nan], patterns[~nan])


def test_float64_to_bfloat16_goes_through_float32():
    # 1 + 2^-8 + 2^-30: just above the halfway point between two bfloat16 values. Rounded to
    # float32 first it lands exactly on the halfway point and ties to even: down.
    value = 1.0 + 2.0**-8 + 2.0**-30
    [result] = convert_batch([struct.pack("<d", value)], "float64", "bfloat16", 1)
    assert result == struct.pack("<H", 0x3F80)
    assert "via float32" in describe_conversion("float64", "bfloat16")["precision"]


@pytest.mark.parametrize("source, target", [(s, t) for s in FLOATS for t in FLOATS if s != t])
def test_batch_equals_per_vector(source, target):
    matrix = random_vectors() * 10
    batch = [b"".join(stored(float(v), source) for v in row) for row in matrix]
    whole = convert_batch(batch, source, target, matrix.shape[1])
    assert whole == [convert_batch([buf], source, target, matrix.shape[1])[0] for buf in batch]
    if source == "float32" and target in ("float16", "float64"):
        assert whole == [numpy.frombuffer(buf, "<f4").astype(STORAGE[target]).tobytes() for buf in batch]


def test_same_type_returns_the_input():
    batch = as_buffers(random_vectors(4))
    assert convert_batch(batch, "float32", "float32", 32) is batch


def test_empty_batch():
    assert convert_batch([], "float32", "float16", 8) == []


def test_decode_values():
    assert decode(struct.pack("<3f", 1, -2.5, 7), "float32", 3).tolist() == [1, -2.5, 7]
    assert decode(struct.pack("<2d", 0.1, 1e300), "float64", 2).dtype == numpy.float64
    assert decode(struct.pack("<2H", 0x3F80, 0xC020), "bfloat16", 2).tolist() == [1.0, -2.5]
    assert decode(struct.pack("<2e", 0.5, -3), "float16", 2).tolist() == [0.5, -3]
    assert decode(struct.pack("<3b", -128, 0, 127), "int8", 3).tolist() == [-128, 0, 127]
    assert decode(struct.pack("<2B", 0, 255), "uint8", 2).tolist() == [0, 255]
    values = decode(struct.pack("<f", 1), "float32", 1)
    values[0] = 2  # a writable copy, not a view of the bytes
    batch = decode_batch([struct.pack("<2f", 1, 2), struct.pack("<2f", 3, 4)], "float32", 2)
    assert batch.shape == (2, 2) and batch.tolist() == [[1, 2], [3, 4]]


# --- overflow --------------------------------------------------------------------------------


def overflow_batch() -> list[bytes]:
    fine = struct.pack("<8f", *[1.0] * 8)
    return [fine, struct.pack("<8f", 1, 65504, 65519, 65520, -1e5, math.inf, math.nan, 1e-9), fine]


def test_float16_overflow_is_counted():
    report = check_overflow(overflow_batch(), "float32", "float16", 8)
    # 65519 rounds down to 65504; from 65520 (halfway to 65536) values round to inf; inf and NaN
    # were not finite to begin with.
    assert report["overflow"] == 2
    assert report["overflow_vectors"] == 1 and report["first_overflow"] == 1
    assert report["underflow"] == 1  # 1e-9 becomes 0
    assert report["zeroed_vectors"] == 0


def test_float16_overflow_is_refused_unless_allowed():
    with pytest.raises(VectorOverflow) as err:
        convert_batch(overflow_batch(), "float32", "float16", 8)
    assert (err.value.count, err.value.index) == (2, 1)
    written = convert_batch(overflow_batch(), "float32", "float16", 8, overflow="allow")
    assert elements(written[1], "float16")[3:6] == [b"\x00\x7c", b"\x00\xfc", b"\x00\x7c"]


def test_infinities_already_in_the_source_are_not_overflow():
    batch = [struct.pack("<3f", math.inf, -math.inf, math.nan)]
    assert elements(convert_batch(batch, "float32", "float16", 3)[0], "float16")[:2] == [b"\x00\x7c", b"\x00\xfc"]


@pytest.mark.parametrize(
    "source, target, value",
    [
        ("float64", "float32", 1e39),
        ("float64", "float16", 7e4),
        ("float32", "bfloat16", 3.4e38),
        ("bfloat16", "float16", 1e5),
    ],
)
def test_overflow_in_other_narrowing_conversions(source, target, value):
    buf = stored(value, source) + stored(1.0, source)
    with pytest.raises(VectorOverflow):
        convert_batch([buf], source, target, 2)
    assert check_overflow([buf], source, target, 2)["overflow"] == 1


def test_vectors_that_vanish_are_counted():
    tiny = struct.pack("<2f", 1e-9, -2e-9)
    report = check_overflow([tiny, struct.pack("<2f", 0, 0), struct.pack("<2f", 1, 1e-9)], "float32", "float16", 2)
    assert report["zeroed_vectors"] == 1 and report["underflow"] == 3


# --- quantization ------------------------------------------------------------------------------


def int8_codes(matrix, scale):
    return numpy.clip(numpy.rint(matrix / numpy.float32(scale)), -127, 127).astype(numpy.int8)


def test_int8_uses_one_scale_for_every_vector():
    matrix = random_vectors(100, 64) * numpy.geomspace(0.01, 10, 100, dtype=numpy.float32)[:, None]
    params = fit_quant_params("int8", "l2", RangeStats().update(matrix))
    got = numpy.frombuffer(b"".join(convert_batch(as_buffers(matrix), "float32", "int8", 64, params)), dtype=numpy.int8)
    assert numpy.array_equal(got.reshape(matrix.shape), int8_codes(matrix, params.scale))
    # Per-vector scales would stretch the smallest vectors to the full range.
    assert numpy.abs(got.reshape(matrix.shape)[0]).max() <= 3
    assert numpy.abs(got).max() == 127


def test_int8_scale_ignores_rare_outliers_and_reports_clipping():
    values = numpy.random.default_rng(3).uniform(-1, 1, (2000, 500)).astype(numpy.float32)
    values.flat[::20000] = 100.0  # 50 outliers in 1e6 values, 0.005%
    params = fit_quant_params("int8", "cosine", RangeStats().update(values))
    assert 0.99 / 127 < params.scale < 1.01 / 127, "the 99.99th percentile of |v|, not the outliers"
    clipped = numpy.count_nonzero(numpy.abs(values) > 127.5 * params.scale) / values.size
    assert clipped == 50 / values.size
    assert params.clip_fraction == pytest.approx(clipped, rel=0.01)
    everything = fit_quant_params("int8", "cosine", RangeStats().update(values), percentile=100)
    assert everything.scale == float(numpy.float32(100 / 127)) and everything.clip_fraction == 0


@pytest.mark.parametrize(
    "target, metric, shift", [("int8", "ip", 0), ("uint8", "cosine", 3), ("uint8", "l2", 0), ("uint8", "l2", 5)]
)
def test_quantized_round_trip_error_is_at_most_half_a_step(target, metric, shift):
    matrix = random_vectors(200, 48) + numpy.float32(shift)
    matrix = numpy.abs(matrix) if metric == "cosine" else matrix
    params = fit_quant_params(target, metric, RangeStats("float32").update(matrix))
    codes = convert_batch(as_buffers(matrix), "float32", target, 48, params)
    back = decode_batch(convert_batch(codes, target, "float32", 48, params), "float32", 48)
    low, high = params.range
    inside = (matrix >= low) & (matrix <= high)
    assert inside.mean() > 0.999
    error = numpy.abs(back - matrix)
    assert error[inside].max() <= params.scale / 2 * (1 + 1e-5) + 1e-6
    assert numpy.allclose(back[~inside], numpy.clip(matrix[~inside], low, high), atol=params.scale / 2)
    # Independent encoding with the published formula.
    ints = numpy.frombuffer(b"".join(codes), dtype=STORAGE[target]).reshape(matrix.shape)
    shifted = matrix - numpy.float32(params.offset)
    expected = numpy.clip(numpy.rint(shifted / numpy.float32(params.scale)), params.qmin, params.qmax)
    assert numpy.array_equal(ints, expected)


def test_uint8_with_cosine_keeps_zero_and_refuses_negative_values():
    positive = numpy.abs(random_vectors())
    params = fit_quant_params("uint8", "cosine", RangeStats().update(positive))
    assert params.offset == 0 and params.scheme == "affine"
    with pytest.raises(ValueError, match="non-negative") as err:
        fit_quant_params("uint8", "cosine", RangeStats().update(random_vectors()))
    assert "int8" in str(err.value)
    with pytest.raises(ValueError, match="non-negative"):
        fit_quant_params("uint8", "ip", RangeStats().update(random_vectors()))


def test_uint8_with_l2_uses_an_offset_that_cancels_in_differences():
    matrix = random_vectors(300, 16)
    params = fit_quant_params("uint8", "l2", RangeStats().update(matrix))
    assert params.offset < 0
    back = decode_batch(convert_batch(as_buffers(matrix), "float32", "uint8", 16, params), "uint8", 16, params)
    diffs = (back[1:] - back[:-1]) - (matrix[1:] - matrix[:-1])
    low, high = params.range
    inside = ((matrix >= low) & (matrix <= high)).all(axis=1)
    both = inside[1:] & inside[:-1]
    assert numpy.abs(diffs[both]).max() <= params.scale * (1 + 1e-5)


def test_integers_without_params_are_their_raw_values():
    raw = struct.pack("<4b", -128, -1, 0, 127)
    [out] = convert_batch([raw], "int8", "float32", 4)
    assert struct.unpack("<4f", out) == (-128, -1, 0, 127)
    [out] = convert_batch([struct.pack("<2B", 0, 255)], "uint8", "bfloat16", 2)
    assert struct.unpack("<2H", out) == (0x0000, 0x437F)  # 255.0 exactly


def test_quantized_targets_need_matching_params():
    batch = as_buffers(random_vectors(4))
    with pytest.raises(ValueError, match="needs QuantParams"):
        convert_batch(batch, "float32", "int8", 32)
    uint8 = QuantParams("uint8", "affine", 0.01, -1.0, "l2")
    with pytest.raises(ValueError, match="for uint8, not int8"):
        convert_batch(batch, "float32", "int8", 32, uint8)


def test_int8_and_uint8_do_not_convert_into_each_other():
    with pytest.raises(ValueError, match="dequantize"):
        convert_batch([b"\x01\x02"], "int8", "uint8", 2, QuantParams("uint8", "affine", 1.0))
    assert describe_conversion("uint8", "int8")["supported"] is False


def test_non_finite_values_cannot_be_quantized():
    batch = as_buffers(random_vectors(3, 4))
    batch[2] = struct.pack("<4f", 1, math.nan, 2, 3)
    with pytest.raises(NonFiniteValues) as err:
        convert_batch(batch, "float32", "int8", 4, QuantParams("int8", "symmetric", 0.1))
    assert (err.value.count, err.value.index) == (1, 2)
    stats = RangeStats().update(numpy.array([1.0, math.inf, math.nan]))
    assert (stats.count, stats.non_finite) == (1, 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_quant_params("int8", "l2", stats)


@pytest.mark.parametrize(
    "args, message",
    [
        (("int8", "symmetric", 0.0), "positive"),
        (("int8", "symmetric", math.nan), "positive"),
        (("int8", "affine", 0.1), "symmetric scheme"),
        (("uint8", "symmetric", 0.1), "affine scheme"),
        (("int8", "symmetric", 0.1, 1.0), "no offset"),
        (("uint8", "affine", 0.1, -1.0, "cosine"), "zero to stay zero"),
        (("float16", "symmetric", 0.1), "int8 or uint8"),
        (("int8", "symmetric", 0.1, 0.0, "hamming"), "metric"),
    ],
)
def test_quant_params_validation(args, message):
    with pytest.raises(ValueError, match=message):
        QuantParams(*args)


def test_quant_params_publish_and_read_back():
    params = fit_quant_params("uint8", "l2", RangeStats("float16").update(random_vectors()))
    data = json.loads(json.dumps(params.to_dict()))
    assert {"scheme", "scale", "offset", "clip_fraction", "source_datatype", "encode", "decode"} <= set(data)
    assert data["source_datatype"] == "float16" and data["range"] == list(params.range)
    assert QuantParams.from_dict(data) == params
    # The published scale is a float32 value, so float32 and float64 arithmetic agree on it.
    assert float(numpy.float32(params.scale)) == params.scale


# --- range statistics ----------------------------------------------------------------------------


def test_range_stats_memory_does_not_grow():
    stats = RangeStats()
    stats.update(random_vectors(10))
    size = len(pickle.dumps(stats))
    for seed in range(30):
        stats.update(random_vectors(500, 64, seed) * (seed + 1))
    assert abs(len(pickle.dumps(stats)) - size) < 64  # a few bytes for the larger count
    assert stats.count == 10 * 32 + 30 * 500 * 64


def test_range_stats_are_exact_at_the_edges_and_close_in_between():
    values = numpy.random.default_rng(5).standard_normal(400_000) * 3 - 1
    stats = RangeStats()
    for part in numpy.array_split(values, 7):
        stats.update(part)
    assert (stats.min, stats.max, stats.max_abs) == (values.min(), values.max(), numpy.abs(values).max())
    assert stats.abs_quantile(0.9999) == pytest.approx(numpy.percentile(numpy.abs(values), 99.99), rel=0.01)
    for q in (0.0001, 0.01, 0.5, 0.99, 0.9999):
        assert stats.quantile(q) == pytest.approx(numpy.quantile(values, q), rel=0.01, abs=0.01)
    assert stats.fraction_outside(-4, 2) == pytest.approx(numpy.mean((values < -4) | (values > 2)), rel=0.01)


def test_merged_stats_equal_one_pass():
    first, second = random_vectors(100, 16, 1), random_vectors(100, 16, 2) * 5
    merged = RangeStats().update(first).merge(RangeStats().update(second))
    single = RangeStats().update(numpy.concatenate([first, second]))
    assert merged.to_dict() == single.to_dict()
    assert merged.abs_quantile(0.999) == single.abs_quantile(0.999)


def test_update_buffers_records_the_datatype():
    stats = RangeStats().update_buffers([struct.pack("<2e", 1, -3)], "float16", 2)
    assert (stats.datatype, stats.min, stats.max) == ("float16", -3, 1)
    assert fit_quant_params("int8", "l2", stats, percentile=100).source_datatype == "float16"


# --- descriptions ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", FLOATS)
@pytest.mark.parametrize("target", FLOATS)
def test_lossy_flag_is_honest_for_floats(source, target):
    """A conversion called lossless must round-trip every test value; one called lossy must not."""
    described = describe_conversion(source, target)
    assert isinstance(described["precision"], str) and described["precision"]
    samples = [1.0 + 2.0**-20, 1.001, 1e5, 1e-7, 3.3e38, -0.3, 12345.678]
    batch = [b"".join(stored(v, source) for v in samples)]
    there = convert_batch(batch, source, target, len(samples), overflow="allow")
    back = convert_batch(there, target, source, len(samples), overflow="allow")
    assert (back != batch) == described["lossy"]


def test_precision_texts_name_the_numbers():
    assert "2^-11" in describe_conversion("float32", "float16")["precision"]
    assert "65504" in describe_conversion("float32", "float16")["precision"]
    assert "2^-8" in describe_conversion("float32", "bfloat16")["precision"]
    assert "7 significant" in describe_conversion("float64", "float32")["precision"]
    assert "255 levels" in describe_conversion("float32", "int8")["precision"]
    assert "256 levels" in describe_conversion("float16", "uint8")["precision"]
    assert describe_conversion("int8", "float32")["lossy"] is False
    same = {"lossy": False, "supported": True, "precision": "unchanged (same datatype)"}
    assert describe_conversion("float32", "float32") == same


@pytest.mark.parametrize("target, metric", [("int8", "cosine"), ("uint8", "l2")])
def test_the_documented_query_encoding_matches_the_migration(target, metric):
    """docs/quantization.md: what an application does with the published parameters."""
    matrix = random_vectors(50, 24) * 3
    params = fit_quant_params(target, metric, RangeStats().update(matrix))
    published = json.loads(json.dumps(params.to_dict()))
    migrated = convert_batch(as_buffers(matrix), "float32", target, 24, params)
    for query, stored_codes in zip(matrix, migrated):
        q = numpy.asarray(query.tolist(), dtype=numpy.float32)
        scale = numpy.float32(published["scale"])
        if target == "int8":
            blob = numpy.clip(numpy.rint(q / scale), -127, 127).astype(numpy.int8).tobytes()
        else:
            offset = numpy.float32(published["offset"])
            blob = numpy.clip(numpy.rint((q - offset) / scale), 0, 255).astype(numpy.uint8).tobytes()
        assert blob == stored_codes
