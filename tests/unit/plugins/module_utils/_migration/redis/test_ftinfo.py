"""FT.INFO parsing against replies recorded from a real server, in both protocols."""

from __future__ import annotations

import pytest
from ft_info_replies import RESP2, RESP3

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.ftinfo import parse_ft_info
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.stats import stats_from_info


@pytest.fixture(params=["resp2", "resp3"])
def info(request):
    return parse_ft_info(RESP2 if request.param == "resp2" else RESP3)


def test_index_level_settings(info):
    assert info.name == "idx"
    assert set(info.options) == {"NOOFFSETS", "NOFREQS", "NOHL"}
    assert info.definition["key_type"] == "HASH"
    assert info.definition["prefixes"] == ["a:", "b:"]
    assert info.definition["filter"] == "@n>0"
    assert info.definition["default_language"] == "german"
    assert float(info.definition["default_score"]) == 0.5
    assert sorted(info.stopwords) == ["bar", "foo"]
    assert info.unrecognized == []


def test_bare_flag_tokens_are_flags_not_pairs(info):
    title = next(a for a in info.attributes if a.attribute == "title")
    assert title.identifier == "t"
    assert title.type == "TEXT"
    assert title.flags == {"SORTABLE", "NOSTEM"}
    assert float(title.params["WEIGHT"]) == 2.0
    tx2 = next(a for a in info.attributes if a.attribute == "tx2")
    assert tx2.flags == {"SORTABLE", "UNF", "INDEXEMPTY", "INDEXMISSING"}


def test_vector_attributes(info):
    hnsw = next(a for a in info.attributes if a.attribute == "h")
    assert hnsw.params["algorithm"] == "HNSW"
    assert hnsw.params["data_type"] == "FLOAT16"
    assert int(hnsw.params["dim"]) == 4
    assert int(hnsw.params["M"]) == 8
    assert int(hnsw.params["ef_construction"]) == 100
    tag = next(a for a in info.attributes if a.attribute == "g")
    assert tag.params["SEPARATOR"] == "|" and tag.flags == {"CASESENSITIVE"}


def test_stats_same_in_both_protocols():
    two, three = stats_from_info(parse_ft_info(RESP2)), stats_from_info(parse_ft_info(RESP3))
    assert two.num_docs == three.num_docs == 1
    assert two.percent_indexed == three.percent_indexed == 1.0
    assert two.hash_indexing_failures == three.hash_indexing_failures == 0
    assert two.fully_indexed and three.fully_indexed
    assert two.memory_mb.keys() == three.memory_mb.keys()
    assert two.vector_index_bytes == three.vector_index_bytes > 0


def test_unknown_tokens_are_kept_not_dropped():
    reply = [
        b"index_name",
        b"x",
        b"index_options",
        [b"NEWOPTION"],
        b"index_definition",
        [b"key_type", b"HASH", b"prefixes", [b""]],
        b"attributes",
        [[b"identifier", b"f", b"attribute", b"f", b"type", b"TEXT", b"WEIGHT", b"1", b"FUTUREFLAG"]],
        b"num_docs",
        0,
    ]
    info = parse_ft_info(reply)
    assert info.attributes[0].unrecognized == ["FUTUREFLAG"]
    assert info.unrecognized == ["index option NEWOPTION"]
