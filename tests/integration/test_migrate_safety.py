"""Safety holes a hostile run found in the migration (issue 13), each reproduced on the real server.

Every test here failed before its fix: it asserts what Redis and the backup hold afterwards.
"""
from __future__ import annotations

import json
import os
import signal

import numpy
import pytest
from datasets import wait_for
from test_redis_index_migrate import DIMS, QUANT16, dump_hashes, load, make_plan, run, run_killed

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.snapshot import snapshot_index


def f16(raw: bytes) -> bytes:
    return numpy.frombuffer(raw, numpy.float32).astype(numpy.float16).tobytes()


# --- 3. every prefix of a multi-prefix index is backed up and converted ---------------------------------

def test_multi_prefix_index_scanned_by_prefix_converts_every_prefix(clean_redis, redis_url, tmp_path):
    clean_redis.execute_command("FT.CREATE", "idx", "ON", "HASH", "PREFIX", "2", "a:", "b:", "SCHEMA", "n", "NUMERIC",
                                "vec", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", str(DIMS),
                                "DISTANCE_METRIC", "L2")
    rng = numpy.random.default_rng(5)
    for prefix in ("a:", "b:"):
        for i in range(40):
            clean_redis.hset(f"{prefix}{i}", mapping={"n": i, "vec": rng.random(DIMS, dtype=numpy.float32).tobytes()})
    # One value the index cannot parse: the index is no longer complete, so the migration walks the prefixes.
    clean_redis.hset("a:bad", mapping={"n": "not a number", "vec": rng.random(DIMS, dtype=numpy.float32).tobytes()})
    wait_for(clean_redis, "idx", 80)
    before = {**dump_hashes(clean_redis, b"a:*"), **dump_hashes(clean_redis, b"b:*")}
    plan = make_plan(clean_redis, QUANT16)
    outcome = run(clean_redis, redis_url, plan, tmp_path)
    assert outcome.report.documents == 81
    for key, fields in before.items():
        assert clean_redis.hget(key, "vec") == f16(fields[b"vec"]), key
    assert snapshot_index(clean_redis, "idx").stats.num_docs == 80


# --- a low query timeout on the server must not cut a backup short or fail a correct validation ---------

@pytest.fixture
def low_query_timeout(clean_redis):
    """The module's query timeout at 1 ms with partial results on timeout (the server's ON_TIMEOUT RETURN)."""
    old = {name: clean_redis.execute_command("FT.CONFIG", "GET", name)[0][1] for name in ("TIMEOUT", "ON_TIMEOUT")}
    clean_redis.execute_command("FT.CONFIG", "SET", "TIMEOUT", "1")
    clean_redis.execute_command("FT.CONFIG", "SET", "ON_TIMEOUT", "RETURN")
    yield
    for name, value in old.items():
        clean_redis.execute_command("FT.CONFIG", "SET", name, value)


def test_low_server_query_timeout_does_not_fail_a_correct_migration(clean_redis, redis_url, tmp_path,
                                                                    low_query_timeout):
    docs, dims = 40000, 128
    clean_redis.execute_command("FT.CREATE", "idx", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA", "vec", "VECTOR",
                                "FLAT", "6", "TYPE", "FLOAT32", "DIM", str(dims), "DISTANCE_METRIC", "L2")
    vectors = numpy.random.default_rng(2).random((docs, dims), dtype=numpy.float32)
    pipe = clean_redis.pipeline(transaction=False)
    for i in range(docs):
        pipe.hset(f"doc:{i}", "vec", vectors[i].tobytes())
    pipe.execute()
    wait_for(clean_redis, "idx", docs, 60)
    outcome = run(clean_redis, redis_url, make_plan(clean_redis, QUANT16), tmp_path, batch_size=1000)
    assert outcome.report.documents == docs
    assert outcome.report.validation["passed"] and outcome.report.validation["knn_missed"] == []
    assert clean_redis.hget("doc:39999", "vec") == vectors[39999].astype(numpy.float16).tobytes()
