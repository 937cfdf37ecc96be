"""How a KNN self-query is judged under each distance metric (phases/knn.py): pure logic."""

from __future__ import annotations

import numpy
import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.knn import (
    FOUND,
    MISSED,
    OUTRANKED,
    UNJUDGED,
    judge_self_query,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.quality import distances

SHORT = numpy.array([0.1, 0.0, 0.0])
LONG = [numpy.array([float(i + 1), 0.5, 0.0]) for i in range(3)]


def hits_for(own, vectors, metric):
    """What a correct index answers: the ids and distances of `vectors`, nearest first."""
    found = distances(own.reshape(1, -1), numpy.array(vectors), metric)[0]
    order = numpy.argsort(found)
    return [(f"d:{i}".encode(), float(found[i])) for i in order], {f"d:{i}".encode(): vectors[i] for i in order}


def test_a_document_among_its_results_is_found():
    hits, vectors = hits_for(SHORT, [SHORT, *LONG[:2]], "ip")
    assert judge_self_query(b"d:0", SHORT, hits, {}, "ip", 3) == (FOUND, "")


def test_under_ip_longer_vectors_rightly_outrank_a_short_one():
    hits, vectors = hits_for(SHORT, LONG, "ip")
    assert judge_self_query(b"me", SHORT, hits, vectors, "ip", 3) == (OUTRANKED, "")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_under_l2_and_cosine_a_document_missing_from_its_own_results_is_missed(metric):
    hits, vectors = hits_for(SHORT, LONG, metric)
    verdict, why = judge_self_query(b"me", SHORT, hits, vectors, metric, 3)
    assert verdict == MISSED and "nearer than a result" in why


def test_distances_that_disagree_with_the_stored_vectors_are_a_miss():
    hits, vectors = hits_for(SHORT, LONG, "ip")
    lying = [(doc_id, distance - 5.0) for doc_id, distance in hits]
    verdict, why = judge_self_query(b"me", SHORT, lying, vectors, "ip", 3)
    assert verdict == MISSED and "differ from those of the stored vectors" in why


def test_fewer_results_than_asked_without_the_document_is_a_miss():
    hits, vectors = hits_for(SHORT, LONG[:2], "ip")
    assert judge_self_query(b"me", SHORT, hits, vectors, "ip", 3)[0] == MISSED


def test_results_that_cannot_be_read_back_leave_it_unjudged():
    hits, vectors = hits_for(SHORT, LONG, "ip")
    vectors[hits[0][0]] = None
    verdict, why = judge_self_query(b"me", SHORT, hits, vectors, "ip", 3)
    assert verdict == UNJUDGED and "could not be read back" in why


def test_duplicates_at_distance_zero_may_take_the_place_of_the_document():
    hits, vectors = hits_for(SHORT, [SHORT.copy(), SHORT.copy(), SHORT.copy()], "l2")
    assert judge_self_query(b"me", SHORT, hits, vectors, "l2", 3) == (OUTRANKED, "")
