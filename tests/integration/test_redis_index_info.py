"""redis_index_info against the real server: lossless schema, stats, capabilities, aliases."""

from __future__ import annotations

import pytest
from module_runner import run_module

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import snapshot_index
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_info

FULL_INDEX = [
    "FT.CREATE",
    "full",
    "ON",
    "HASH",
    "PREFIX",
    "1",
    "doc:",
    "FILTER",
    "@price>=0",
    "LANGUAGE",
    "french",
    "SCORE",
    "0.7",
    "NOOFFSETS",
    "STOPWORDS",
    "3",
    "le",
    "la",
    "les",
    "SCHEMA",
    "title",
    "TEXT",
    "NOSTEM",
    "WEIGHT",
    "3.5",
    "SORTABLE",
    "tags",
    "TAG",
    "SEPARATOR",
    ";",
    "CASESENSITIVE",
    "price",
    "NUMERIC",
    "SORTABLE",
    "where",
    "GEO",
    "flat_vec",
    "VECTOR",
    "FLAT",
    "8",
    "TYPE",
    "FLOAT32",
    "DIM",
    "4",
    "DISTANCE_METRIC",
    "COSINE",
    "BLOCK_SIZE",
    "256",
    "hnsw_vec",
    "VECTOR",
    "HNSW",
    "14",
    "TYPE",
    "FLOAT32",
    "DIM",
    "4",
    "DISTANCE_METRIC",
    "IP",
    "M",
    "12",
    "EF_CONSTRUCTION",
    "150",
    "EF_RUNTIME",
    "25",
    "EPSILON",
    "0.05",
]


@pytest.mark.parametrize("protocol", [2, 3])
def test_schema_shows_every_setting(clean_redis, redis_url, capsys, protocol):
    clean_redis.execute_command(*FULL_INDEX)
    clean_redis.hset("doc:1", mapping={"title": "un titre", "price": 3, "tags": "a;b"})
    result = run_module(redis_index_info, {"redis_url": redis_url, "index": "full", "protocol": protocol}, capsys)

    assert result["changed"] is False and result["exists"] is True
    schema = result["index"]["schema"]
    index = schema["index"]
    assert index["prefix"] == "doc:"
    assert index["filter"] == "@price>=0"
    assert index["language"] == "french"
    assert index["score"] == 0.7
    assert index["no_offsets"] is True
    assert sorted(index["stopwords"]) == ["la", "le", "les"]
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["title"]["type"] == "text"
    assert fields["title"]["attrs"]["weight"] == 3.5
    assert fields["title"]["attrs"]["no_stem"] is True
    assert fields["title"]["attrs"]["sortable"] is True
    assert fields["tags"]["attrs"]["separator"] == ";"
    assert fields["tags"]["attrs"]["case_sensitive"] is True
    assert fields["price"]["type"] == "numeric" and fields["price"]["attrs"]["sortable"] is True
    assert fields["where"]["type"] == "geo"
    flat = fields["flat_vec"]["attrs"]
    assert (flat["algorithm"], flat["datatype"], flat["dims"], flat["distance_metric"], flat["block_size"]) == (
        "flat",
        "float32",
        4,
        "cosine",
        256,
    )
    hnsw = fields["hnsw_vec"]["attrs"]
    assert (hnsw["algorithm"], hnsw["distance_metric"], hnsw["m"], hnsw["ef_construction"]) == ("hnsw", "ip", 12, 150)
    assert hnsw["ef_runtime"] == 25  # not shown by FT.INFO: read from FT.DEBUG VECSIM_INFO
    assert hnsw["epsilon"] == pytest.approx(0.05)
    assert result["index"]["unrecognized"] == []
    assert result["index"]["stats"]["num_docs"] == 1
    assert result["index"]["stats"]["hash_indexing_failures"] == 0
    assert result["index"]["stats"]["percent_indexed"] == 1.0
    assert "vector_index_sz_mb" in result["index"]["stats"]["memory_mb"]


def test_ft_create_recreates_identical_index(clean_redis, redis_url, capsys):
    clean_redis.execute_command(*FULL_INDEX)
    first = run_module(redis_index_info, {"redis_url": redis_url, "index": "full"}, capsys)["index"]
    clean_redis.execute_command("FT.DROPINDEX", "full")
    import shlex

    clean_redis.execute_command(*shlex.split(first["ft_create"]))
    second = run_module(redis_index_info, {"redis_url": redis_url, "index": "full"}, capsys)["index"]
    assert second["schema"] == first["schema"]


def test_phonetic_and_hidden_flags_are_captured(clean_redis, redis_url, capsys):
    clean_redis.execute_command(
        "FT.CREATE",
        "ph",
        "ON",
        "JSON",
        "PREFIX",
        "1",
        "j:",
        "SCHEMA",
        "$.name",
        "AS",
        "name",
        "TEXT",
        "PHONETIC",
        "dm:en",
        "WITHSUFFIXTRIE",
        "INDEXMISSING",
        "$.plain",
        "AS",
        "plain",
        "TEXT",
        "INDEXEMPTY",
        "$.shape",
        "AS",
        "shape",
        "GEOSHAPE",
        "FLAT",
        "$.v",
        "AS",
        "v",
        "VECTOR",
        "HNSW",
        "6",
        "TYPE",
        "BFLOAT16",
        "DIM",
        "3",
        "DISTANCE_METRIC",
        "L2",
    )
    result = run_module(redis_index_info, {"redis_url": redis_url, "index": "ph"}, capsys)
    fields = {f["name"]: f for f in result["index"]["schema"]["fields"]}
    assert fields["name"]["attrs"]["phonetic_matcher"] == "dm:en"
    assert fields["name"]["attrs"]["withsuffixtrie"] and fields["name"]["attrs"]["index_missing"]
    assert fields["name"]["path"] == "$.name"
    assert "phonetic_matcher" not in fields["plain"]["attrs"] and fields["plain"]["attrs"]["index_empty"]
    assert fields["shape"]["attrs"]["coord_system"] == "flat"
    assert fields["v"]["attrs"]["datatype"] == "bfloat16" and fields["v"]["attrs"]["ef_runtime"] == 10


def test_listing_aliases_and_missing_index(clean_redis, redis_url, capsys):
    clean_redis.execute_command("FT.CREATE", "a_idx", "ON", "HASH", "PREFIX", "1", "a:", "SCHEMA", "t", "TEXT")
    clean_redis.execute_command(
        "FT.CREATE",
        "b_idx",
        "ON",
        "JSON",
        "PREFIX",
        "1",
        "b:",
        "SCHEMA",
        "$.v",
        "AS",
        "v",
        "VECTOR",
        "FLAT",
        "6",
        "TYPE",
        "FLOAT16",
        "DIM",
        "2",
        "DISTANCE_METRIC",
        "L2",
    )
    clean_redis.execute_command("FT.ALIASADD", "current", "a_idx")
    result = run_module(
        redis_index_info,
        {"redis_url": redis_url, "aliases": ["current", "nothing", "b_idx"], "index": "current"},
        capsys,
    )
    assert [i["name"] for i in result["indexes"]] == ["a_idx", "b_idx"]
    by_name = {i["name"]: i for i in result["indexes"]}
    assert by_name["a_idx"]["aliases"] == ["current"]
    assert by_name["b_idx"]["storage_type"] == "json"
    assert by_name["b_idx"]["vector_fields"] == [
        {"name": "v", "algorithm": "flat", "datatype": "float16", "dims": 2, "distance_metric": "l2"}
    ]
    assert result["alias_targets"] == {"current": "a_idx", "nothing": None, "b_idx": None}
    assert result["index"]["name"] == "a_idx" and result["index"]["requested_as"] == "current"
    missing = run_module(redis_index_info, {"redis_url": redis_url, "index": "nope"}, capsys)
    assert missing["exists"] is False and missing["index"] is None


def test_capabilities_probe_writes_nothing(clean_redis, redis_url, capsys):
    clean_redis.execute_command("FT.CREATE", "only", "SCHEMA", "t", "TEXT")
    before = (
        clean_redis.execute_command("FT._LIST"),
        clean_redis.dbsize(),
        clean_redis.info("persistence")["rdb_changes_since_last_save"],
    )
    result = run_module(redis_index_info, {"redis_url": redis_url}, capsys, check_mode=True)
    after = (
        clean_redis.execute_command("FT._LIST"),
        clean_redis.dbsize(),
        clean_redis.info("persistence")["rdb_changes_since_last_save"],
    )
    assert before == after
    server = result["server"]
    assert server["detected_by"] == "probe"
    assert server["vector_datatypes"] == ["float32", "float64", "float16", "bfloat16"]  # search 2.10 rejects int8/uint8
    assert server["vector_algorithms"] == ["flat", "hnsw"]
    assert server["search_version"] == "2.10.5" and server["redis_version"].startswith("8.")


def test_unreachable_server_fails_readably(capsys):
    result = run_module(
        redis_index_info, {"host": "127.0.0.1", "port": 1, "connect_timeout": 1}, capsys, expect_failure=True
    )
    assert result["msg"].startswith("127.0.0.1:1/0: cannot connect to 127.0.0.1:1/0")
    assert result["error_type"] == "connection_failed"


@pytest.mark.parametrize("separator", ["\n", "\r", "\t", "\\", "\x01"])
def test_tag_separators_the_server_escapes_are_read_back_exactly(clean_redis, separator):
    clean_redis.execute_command(
        "FT.CREATE", "seps", "ON", "HASH", "PREFIX", "1", "s:", "SCHEMA", "t", "TAG", "SEPARATOR", separator
    )
    schema = snapshot_index(clean_redis, "seps").snapshot.index_schema
    assert schema.field("t").attrs.separator == separator


def test_successive_online_migrations_of_one_index_are_listed_by_the_name_their_tasks_gave(
    clean_redis, redis_url, tmp_path, capsys
):
    """Online, each migration swaps a new index in under the name clients use: the second one's source is
    a--v3, not a. redis_index_info lists both under index=a, with the name both tasks gave (what the
    backup_dirs role's retention groups by)."""
    from test_redis_index_migrate import QUANT16, load, make_plan, run  # pylint: disable=import-outside-toplevel

    load(clean_redis, index="a", prefix="a:", docs=50)
    backups = tmp_path / "b"
    first = make_plan(clean_redis, QUANT16, index="a")
    assert first.mode == "online"
    assert run(clean_redis, redis_url, first, backups).report.result == "succeeded"
    second = make_plan(clean_redis, {"update_fields": [{"name": "vec", "attrs": {"datatype": "float32"}}]}, index="a")
    assert run(clean_redis, redis_url, second, backups).report.result == "succeeded"

    info = run_module(
        redis_index_info,
        {"redis_url": redis_url, "backup_dir": str(backups), "index": "a", "probe_capabilities": False},
        capsys,
    )
    listed = [(m["source_index"], m["requested_as"], m["status"]) for m in info["migrations"]]
    assert listed == [("a", "a", "completed"), ("a--v3", "a", "completed")], listed
