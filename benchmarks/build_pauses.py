#!/usr/bin/env python
"""How long the server pauses its clients while the search module builds an index in the background, per
BG_INDEX_SLEEP_GAP (the documents it indexes per hold of the server's lock). (`make bench-build-pauses`;
docs/benchmarks.md, "Background indexing".)

    python benchmarks/build_pauses.py [--docs 20000] [--dims 128] [--algorithm hnsw] [--gaps 100,20,10] [--runs 2]

For each gap, a private server started with `BG_INDEX_SLEEP_GAP <gap>` as a load argument of the search module
(it cannot be changed at runtime), the benchmark's seeded documents loaded with no index, then: a client sends
PING every 2 ms for 3 s (the floor), then FT.CREATE of the index (HNSW: M 16, EF_CONSTRUCTION 200) and PING every
2 ms, with FT.INFO every 50th, until it is indexed. Reported: the build's seconds, the longest time between two
replies and the 99th percentile, the count over 20 ms, and the floor's longest. The gaps are interleaved, in
reverse order on every other run. No migration runs: this is the build alone, the `wait` and `rebuild` phases of
an online migration.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import BenchError, environment, ft_info, int_list  # noqa: E402  pylint: disable=wrong-import-position
from migrate_scenarios import create_index  # noqa: E402  pylint: disable=wrong-import-position
from migrate_throughput import load  # noqa: E402  pylint: disable=wrong-import-position
from redis_search_server import RedisSearchServer, ServerError  # noqa: E402  pylint: disable=wrong-import-position

PING_SECONDS = 0.002
FLOOR_SECONDS = 3.0
INFO_EVERY = 50
SLOW = 0.020


def _replies(client, until) -> list:
    """Times between successive replies while until() is false."""
    gaps, last, sent = [], time.perf_counter(), 0
    while not until(sent):
        client.ping()
        sent += 1
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
        time.sleep(PING_SECONDS)
    return gaps


def measure(gap: int, args) -> dict:
    with RedisSearchServer(search_args=("BG_INDEX_SLEEP_GAP", str(gap))) as server:
        client = redis.Redis.from_url(server.url, protocol=2)
        try:
            load(client, args.docs, args.dims, args.seed)
            floor_end = time.perf_counter() + FLOOR_SECONDS
            floor = _replies(client, lambda sent: time.perf_counter() >= floor_end)
            start = time.perf_counter()
            create_index(client, args.dims, args.algorithm)

            def built(sent: int) -> bool:
                if sent % INFO_EVERY:
                    return False
                info = ft_info(client)
                return int(info["indexing"]) == 0 and int(info["num_docs"]) == args.docs

            gaps = sorted(_replies(client, built))
            took = time.perf_counter() - start
        finally:
            client.close()
    return {
        "build": took,
        "longest": gaps[-1],
        "p99": gaps[int(len(gaps) * 0.99)],
        "slow": sum(g > SLOW for g in gaps),
        "floor": max(floor),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--algorithm", choices=("hnsw", "flat"), default="hnsw")
    parser.add_argument("--gaps", type=int_list, default=[100, 20, 10], help="BG_INDEX_SLEEP_GAP values")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    try:
        with RedisSearchServer() as server:
            probe = redis.Redis.from_url(server.url, protocol=2)
            print(
                f"build_pauses: {environment(probe, 'not used')}; {args.docs:,} x {args.dims} {args.algorithm.upper()}"
            )
            probe.close()
        rows: dict = {gap: [] for gap in args.gaps}
        for run in range(args.runs):
            for gap in args.gaps if run % 2 == 0 else args.gaps[::-1]:
                result = measure(gap, args)
                rows[gap].append(result)
                print(
                    f"  gap {gap} run {run + 1}: build {result['build']:.2f} s, longest {result['longest'] * 1000:.0f}"
                    f" ms, p99 {result['p99'] * 1000:.1f} ms, over {SLOW * 1000:.0f} ms {result['slow']}, floor "
                    f"{result['floor'] * 1000:.0f} ms",
                    flush=True,
                )
    except (BenchError, ServerError) as err:
        print(f"build_pauses: cannot run: {err}", file=sys.stderr)
        return 2
    print(
        f"\n{'BG_INDEX_SLEEP_GAP':>18}{'build s':>9}{'longest ms':>12}{'(max)':>7}{'p99 ms':>8}"
        f"{'over ' + str(int(SLOW * 1000)) + ' ms':>12}{'floor ms':>10}"
    )
    for gap, results in rows.items():

        def middle(key, results=results):
            return statistics.median(r[key] for r in results)

        print(
            f"{gap:>18}{middle('build'):>9.2f}{middle('longest') * 1000:>12.0f}"
            f"{max(r['longest'] for r in results) * 1000:>7.0f}{middle('p99') * 1000:>8.1f}{middle('slow'):>12.0f}"
            f"{middle('floor') * 1000:>10.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
