"""Measuring what a vector conversion costs: recall@k and element errors (pure logic)."""

from __future__ import annotations

import math

import numpy
import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.codec import (
    convert_batch,
    decode_batch,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.fitting import (
    RangeStats,
    fit_quant_params,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.quality import (
    distances,
    error_stats,
    quality_report,
    recall_at_k,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.quantization import QuantParams

METRICS = ("l2", "ip", "cosine")


@pytest.fixture(scope="module")
def embeddings() -> numpy.ndarray:
    """600 random 384-d float32 vectors: little neighbour structure, so rounding shows in recall."""
    return numpy.random.default_rng(11).standard_normal((600, 384)).astype(numpy.float32)


def buffers(matrix) -> list[bytes]:
    return [row.tobytes() for row in matrix]


def reference_distance(a, b, metric: str) -> float:
    a, b = [float(x) for x in a], [float(x) for x in b]
    dot = sum(x * y for x, y in zip(a, b))
    if metric == "l2":
        return sum((x - y) ** 2 for x, y in zip(a, b))
    if metric == "ip":
        return 1 - dot
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 1 - (dot / norms if norms else 0.0)


@pytest.mark.parametrize("metric", METRICS)
def test_distances_follow_redisearch_definitions(metric):
    data = numpy.random.default_rng(2).standard_normal((6, 5))
    data[3] = 0.0  # a zero vector, also as a query: cosine must not produce NaN
    got = distances(data[:4], data, metric)
    for i in range(4):
        for j in range(6):
            assert got[i, j] == pytest.approx(reference_distance(data[i], data[j], metric), abs=1e-9)
    assert numpy.isfinite(got).all()


@pytest.mark.parametrize("metric", METRICS)
def test_non_finite_vectors_are_infinitely_far(metric):
    got = distances(numpy.array([[math.inf, 0.0], [1.0, 0.0]]), numpy.array([[1.0, 0.0], [math.nan, 1.0]]), metric)
    assert got[0, 1] == got[1, 1] == math.inf  # NaN: never a neighbour
    # An infinite dot product is the best possible ip match, as on the server.
    assert got[0, 0] == (-math.inf if metric == "ip" else math.inf)
    assert got[1, 0] == pytest.approx(reference_distance([1, 0], [1, 0], metric))


def test_ip_and_cosine_rank_differently():
    query = numpy.array([[1.0, 0.0]])
    data = numpy.array([[10.0, 3.0], [0.5, 0.005]])  # long but less aligned / short and aligned
    assert distances(query, data, "ip").argmin() == 0
    assert distances(query, data, "cosine").argmin() == 1


def test_recall_of_a_known_case_excludes_each_query_itself():
    # Points on a line; converted, point 2 moves from 3 to 0.4. True nearest neighbours (k=1):
    # 0->1, 1->0, 2->1, 3->2, 4->3. Converted: 0->2, 1->2, 2->0, 3->4, 4->3. One hit in five.
    original = numpy.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    converted = original.copy()
    converted[2] = 0.4
    assert recall_at_k(original, converted, "l2", k=1) == pytest.approx(0.2)
    assert recall_at_k(original, original, "l2", k=1) == 1.0


def test_duplicates_in_the_sample_count_as_found():
    original = numpy.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    converted = original.copy()
    converted[1, 0] = 1.0000001  # tips the tie between the duplicates the other way
    assert recall_at_k(original, converted, "l2", k=1) == 1.0


@pytest.mark.parametrize("metric", METRICS)
def test_unchanged_values_have_full_recall(embeddings, metric):
    assert recall_at_k(embeddings, embeddings.copy(), metric) == 1.0


@pytest.mark.parametrize("metric", METRICS)
def test_float16_keeps_recall_close_to_one(embeddings, metric):
    report = quality_report(buffers(embeddings), "float32", "float16", 384, metric)
    assert report["recall_at_10"] > 0.95
    assert 0 < report["mean_rel_error"] <= 2.0**-11
    assert report["non_finite"] == 0
    # Independent: the largest rounding error of a float16 cast.
    assert report["max_abs_error"] == pytest.approx(
        numpy.abs(embeddings.astype(numpy.float16).astype(numpy.float64) - embeddings).max()
    )


@pytest.mark.parametrize("metric", METRICS)
def test_int8_keeps_recall_high_and_a_destructive_scale_does_not(embeddings, metric):
    stats = RangeStats("float32").update(embeddings)
    fitted = fit_quant_params("int8", metric, stats)
    good = quality_report(buffers(embeddings), "float32", "int8", 384, metric, fitted)
    assert good["recall_at_10"] > 0.9
    # One step as wide as the largest value: every element becomes -1, 0 or 1.
    crushed = QuantParams("int8", "symmetric", stats.max_abs, metric=metric)
    bad = quality_report(buffers(embeddings), "float32", "int8", 384, metric, crushed)
    assert bad["recall_at_10"] < 0.5
    assert bad["recall_at_10"] < good["recall_at_10"] - 0.4
    assert bad["mean_rel_error"] > 10 * good["mean_rel_error"]


def test_uint8_with_l2_keeps_recall_high(embeddings):
    params = fit_quant_params("uint8", "l2", RangeStats().update(embeddings))
    assert quality_report(buffers(embeddings), "float32", "uint8", 384, "l2", params)["recall_at_10"] > 0.9


def test_overflow_shows_as_non_finite_and_lost_recall(embeddings):
    sample = embeddings[:300].copy()
    sample[:30] *= 40000.0  # some elements of these vectors exceed float16's range
    expected = numpy.count_nonzero(numpy.abs(sample) >= 65520) / sample.size
    assert expected > 0
    report = quality_report(buffers(sample), "float32", "float16", 384, "l2")
    assert report["non_finite"] == pytest.approx(expected)
    assert report["recall_at_10"] < 0.99


def test_error_stats_known_values():
    original = numpy.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0], [2.0, 2.0]])
    converted = numpy.array([[3.0, 4.5], [1.0, 0.0], [0.0, 0.0], [2.0, math.inf]])
    stats = error_stats(original, converted)
    # Vector errors: 0.5/5, 0/1, (zero vector skipped), 0/2 over the finite element.
    assert stats["max_abs_error"] == 0.5
    assert stats["mean_rel_error"] == pytest.approx((0.1 + 0 + 0) / 3)
    assert stats["non_finite"] == 1 / 8


def test_report_names_k_and_handles_small_samples(embeddings):
    sample = buffers(embeddings[:50])
    report = quality_report(sample, "float32", "bfloat16", 384, "cosine", k=5, queries=20)
    assert set(report) == {
        "sample_size",
        "queries",
        "k",
        "metric",
        "recall_at_5",
        "max_abs_error",
        "mean_rel_error",
        "non_finite",
    }
    assert (report["sample_size"], report["queries"], report["k"]) == (50, 20, 5)
    assert quality_report(sample[:10], "float32", "float16", 384, "l2")["recall_at_10"] is None


def test_report_reads_quantized_sources_with_their_params(embeddings):
    params = fit_quant_params("int8", "l2", RangeStats().update(embeddings))
    codes = convert_batch(buffers(embeddings[:100]), "float32", "int8", 384, params)
    report = quality_report(codes, "int8", "float32", 384, "l2", params)
    assert report["recall_at_10"] == 1.0 and report["max_abs_error"] == 0
    assert decode_batch(codes, "int8", 384, params).dtype == numpy.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "k must be"),
        ({"k": 5}, "k must be"),
        ({"metric": "hamming"}, "metric must be"),
        ({"queries": 0}, "queries must be positive"),
    ],
)
def test_recall_refuses_bad_arguments(kwargs, message):
    data = numpy.eye(5)
    arguments = {"metric": "l2", "k": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        recall_at_k(data, data, **arguments)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        recall_at_k(numpy.eye(4), numpy.eye(5)[:4, :5], "l2", k=1)
    with pytest.raises(ValueError, match="differ in shape"):
        error_stats(numpy.eye(3), numpy.eye(4))
