"""A SCRIPT FLUSH in the middle of a drop/recreate migration: the server forgets the migration's scripts
after the index was dropped, and the migration loads them again and finishes, every byte right."""

from __future__ import annotations

import numpy
import pytest
import redis
from test_redis_index_migrate import QUANT16, dump_hashes, expected_after_quantize, load, make_plan, run

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import failpoints


def flush_calls(client) -> int:
    return int(client.info("commandstats").get("cmdstat_script|flush", {}).get("calls", 0))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_script_flush_mid_rewrite_is_survived(clean_redis, redis_url, tmp_path, monkeypatch, workers):
    load(clean_redis, docs=400)
    before = dump_hashes(clean_redis, b"doc:*")
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    original_hit = failpoints.hit

    def hit(phase, point):
        # After the first rewritten block (the index is gone, staged vectors are being written): anyone
        # with SCRIPT FLUSH empties the script cache - in each worker too, since workers fork with this.
        if phase == "quantize" and point == 1:
            other = redis.Redis.from_url(redis_url)
            other.script_flush()
            other.close()
        original_hit(phase, point)

    monkeypatch.setattr(failpoints, "hit", hit)
    flushes = flush_calls(clean_redis)
    outcome = run(clean_redis, redis_url, plan, tmp_path / "b", batch_size=50, workers=workers)

    assert flush_calls(clean_redis) - flushes == workers  # once per process that rewrote blocks
    assert outcome.report.result == "succeeded" and outcome.report.validation["passed"]
    after = dump_hashes(clean_redis, b"doc:*")
    assert after == expected_after_quantize(before)  # every byte of every document
    assert all(len(doc[b"vec"]) == 16 * 2 for doc in after.values())
    assert numpy.frombuffer(after[b"doc:7"][b"vec"], numpy.float16).dtype == numpy.float16
