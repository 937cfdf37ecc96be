#!/usr/bin/env python
"""How long planning a batch of small indexes takes (redis_index_batch state=planned).

Requirement: a batch of 20 small indexes plans in under 2 s.

    python benchmarks/batch_plan_latency.py [--indexes 20] [--docs 200] [--runs 5]

(`make bench-batch` runs this in the benchmark venv.) One private Redis with search is started here
(tools/redis_search_server.py) and nothing else is ever connected to. `--indexes` hash indexes
(text, tag, 64-d float32 FLAT cosine vector), `--docs` documents each on prefixes of their own, are
planned together with one patch (embedding float32 -> float16) selected by a pattern: one warm-up
run, excluded, then --runs timed runs of the whole batch plan (selection, every per-index plan with
its create check and full audit, the overlap check, the seal). Prints each run, the median and the
worst, and the per-index cost. Exits 1 when the median exceeds 2 s, 2 when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "indexops", "redis_search")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, COLLECTIONS)

from bench_common import BenchError, environment  # noqa: E402  pylint: disable=wrong-import-position
from redis_search_server import RedisSearchServer, ServerError  # noqa: E402  pylint: disable=wrong-import-position

TARGET_SECONDS = 2.0
DIMS = 64
PATCH = {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}}


def _library():
    if not os.path.isdir(LINK):
        raise BenchError(f"{LINK} is missing; run `make bench-batch` (it creates the collection link)")
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.batch import plan as batch_plan
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema import patch

    return batch_plan, patch.parse_patch


def build(client, indexes: int, docs: int) -> None:
    rng = numpy.random.default_rng(9)
    for n in range(indexes):
        name, prefix = f"tenant_{n:02d}", f"t{n:02d}:"
        client.execute_command(
            "FT.CREATE",
            name,
            "ON",
            "HASH",
            "PREFIX",
            "1",
            prefix,
            "SCHEMA",
            "title",
            "TEXT",
            "genre",
            "TAG",
            "embedding",
            "VECTOR",
            "FLAT",
            "6",
            "TYPE",
            "FLOAT32",
            "DIM",
            str(DIMS),
            "DISTANCE_METRIC",
            "COSINE",
        )
        pipe = client.pipeline(transaction=False)
        for i, vector in enumerate(rng.random((docs, DIMS), dtype=numpy.float32)):
            pipe.hset(
                f"{prefix}{i}", mapping={"title": f"item {i}", "genre": f"g{i % 5}", "embedding": vector.tobytes()}
            )
        pipe.execute()
    deadline = time.monotonic() + 120
    for n in range(indexes):
        while True:
            info = dict(zip(*[iter(client.execute_command("FT.INFO", f"tenant_{n:02d}"))] * 2))
            if int(info[b"num_docs"]) == docs and int(info[b"indexing"]) == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"tenant_{n:02d} did not finish indexing")
            time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indexes", type=int, default=20)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    try:
        batch_plan, parse_patch = _library()
        server = RedisSearchServer().start()
    except (BenchError, ServerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        client = redis.Redis.from_url(server.url, protocol=2)
        print(environment(client, None))
        build(client, args.indexes, args.docs)
        patch = parse_patch(PATCH)

        def plan_once() -> float:
            began = time.perf_counter()
            selection = batch_plan.resolve_selection(client, "pattern", "tenant_*")
            batch = batch_plan.create_batch_plan(client, selection, patch, endpoint=server.url)
            elapsed = time.perf_counter() - began
            if len(batch.applicable()) != args.indexes:
                raise BenchError(f"{len(batch.applicable())} of {args.indexes} indexes applicable")
            return elapsed

        plan_once()  # warm-up: imports, first connections, the server's caches
        samples = [plan_once() for _run in range(args.runs)]
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        server.stop()
    median = statistics.median(samples)
    print(f"batch plan of {args.indexes} indexes x {args.docs} documents ({DIMS}-d float32 FLAT, float32 -> float16):")
    print("  runs:   " + ", ".join(f"{s:.3f} s" for s in samples))
    print(f"  median: {median:.3f} s   worst: {max(samples):.3f} s   per index: {median / args.indexes * 1000:.0f} ms")
    verdict = "meets" if median <= TARGET_SECONDS else "MISSES"
    print(f"  {verdict} the target: under {TARGET_SECONDS:.0f} s for the batch")
    return 0 if median <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
