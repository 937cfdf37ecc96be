"""The advice on BG_INDEX_SLEEP_GAP: given for an online build of an HNSW index on a server with a large value."""

from __future__ import annotations

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan_warnings import (
    ADVISED_SLEEP_GAP,
    background_indexing_warning,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema


def schema(algorithm):
    return parse_schema(
        {
            "index": {"name": "idx"},
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "v", "type": "vector", "attrs": {"algorithm": algorithm, "dims": 4}},
            ],
        }
    )


def test_default_gap_on_an_online_hnsw_build_is_advised_against():
    (warning,) = background_indexing_warning(schema("hnsw"), 100, online=True)
    assert warning.startswith("Background indexing: the server indexes 100 documents per hold of its lock")
    assert "BG_INDEX_SLEEP_GAP 100" in warning and "HNSW field(s) v " in warning
    assert f"--loadmodule redisearch.so BG_INDEX_SLEEP_GAP {ADVISED_SLEEP_GAP}" in warning
    assert "server restart" in warning


@pytest.mark.parametrize(
    "algorithm, gap, online",
    [
        ("hnsw", ADVISED_SLEEP_GAP, True),  # already small enough
        ("hnsw", 1, True),
        ("hnsw", None, True),  # FT.CONFIG not permitted: nothing known, nothing advised
        ("hnsw", 100, False),  # drop_recreate: the index is down for the build anyway
        ("flat", 100, True),  # a FLAT insertion is cheap: the holds are short
    ],
)
def test_no_advice(algorithm, gap, online):
    assert background_indexing_warning(schema(algorithm), gap, online=online) == []


def test_just_above_the_advised_value_is_advised_against():
    assert background_indexing_warning(schema("hnsw"), ADVISED_SLEEP_GAP + 1, online=True)
