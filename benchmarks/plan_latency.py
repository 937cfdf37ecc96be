#!/usr/bin/env python
"""Planning latency of our planner next to the redisvl index migrator's, on the same private server.

Requirement: planning must not scan the whole keyspace - at most 0.5 s on an index of any size.

    python benchmarks/plan_latency.py [--sizes 10000,100000,500000] [--runs 20]

(`make bench` builds .venv-bench and runs this.) One private Redis with search is started here
(tools/redis_search_server.py) and nothing else is ever connected to. One hash index (text, tag,
384-d float32 FLAT cosine vector) is grown to each size in turn and fully indexed; then, with the
same patch (embedding float32 -> float16, one YAML file), both planners are timed alternately:
one warm-up each, excluded, then --runs timed runs each. Around one more run of each, the deltas of
INFO commandstats show what each planner asked the server for, and a few more runs of ours are
timed step by step. Exits 1 when our p95 exceeds 0.5 s at any size, 2 when the benchmark itself
cannot run. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from importlib import metadata

import numpy
import redis
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "indexops", "redis_search")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, COLLECTIONS)

from bench_common import INDEX, BenchError, environment, int_list, wait_indexed  # noqa: E402  pylint: disable=wrong-import-position
from redis_search_server import RedisSearchServer, ServerError  # noqa: E402  pylint: disable=wrong-import-position

TARGET_SECONDS = 0.5
PREFIX = "bench:doc:"
DIMS = 384
LOAD_BATCH = 5000
PATCH = {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}}
WORDS = (
    "red",
    "fast",
    "quiet",
    "ancient",
    "bright",
    "small",
    "green",
    "heavy",
    "lucky",
    "silent",
    "river",
    "engine",
    "garden",
    "signal",
    "window",
    "market",
    "planet",
    "ticket",
    "mirror",
    "forest",
)
GENRES = ("news", "sports", "science", "travel", "food", "music", "finance", "health")
BREAKDOWN_RUNS = 5
GROWTH_MIN_DOCS = 100_000
# Functions of planner.py timed one by one in the breakdown (names missing from planner.py are skipped).
PHASES = (
    "snapshot_index",
    "detect_capabilities",
    "_other_indexes",
    "index_exists",
    "classify",
    "sample_keys",
    "_audit",
    "estimate",
    "alias_targets",
    "aliases_of",
    "collect_warnings",
)


def _ours():
    """Our planner, through the collection's import path (.build/collections, made by `make bench`)."""
    if not os.path.isdir(LINK):
        raise BenchError(f"{LINK} is missing; run `make bench` (it creates the collection link)")
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning import planner
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema import patch

    return planner, patch.parse_patch


def _peer():
    """redisvl's MigrationPlanner and version, or (None, why not)."""
    try:
        from redisvl.migration import MigrationPlanner  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        return None, f"redisvl.migration cannot be imported ({err}); install benchmarks/requirements.txt"
    return MigrationPlanner, metadata.version("redisvl")


# ---- data -----------------------------------------------------------------------------------------


def create_index(client) -> None:
    client.execute_command(
        "FT.CREATE",
        INDEX,
        "ON",
        "HASH",
        "PREFIX",
        "1",
        PREFIX,
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


def load(client, start: int, stop: int, rng) -> None:
    """HSET documents start..stop-1 in pipelined batches; vectors uniform random float32."""
    for first in range(start, stop, LOAD_BATCH):
        count = min(LOAD_BATCH, stop - first)
        vectors = rng.random((count, DIMS), dtype=numpy.float32)
        words = rng.integers(0, len(WORDS), size=(count, 3))
        pipe = client.pipeline(transaction=False)
        for row in range(count):
            doc = first + row
            pipe.hset(
                f"{PREFIX}{doc}",
                mapping={
                    "title": " ".join(WORDS[w] for w in words[row]) + f" {doc}",
                    "genre": GENRES[doc % len(GENRES)],
                    "embedding": vectors[row].tobytes(),
                },
            )
        pipe.execute()


# ---- measurement ----------------------------------------------------------------------------------


def p95(samples: list) -> float:
    return float(numpy.percentile(samples, 95))


def server_counters(client) -> dict:
    """calls (+ rejected) and usec per command, and bytes the server has written to clients."""
    info = client.info("stats", "commandstats")
    counters = {"net_output_bytes": int(info.get("total_net_output_bytes", 0))}
    for key, value in info.items():
        if key.startswith("cmdstat_") and isinstance(value, dict):
            name = key[len("cmdstat_") :].upper()
            counters[name] = (
                int(value.get("calls", 0)) + int(value.get("rejected_calls", 0)),
                int(value.get("usec", 0)),
            )
    return counters


def counter_delta(before: dict, after: dict, baseline: dict | None = None) -> dict:
    """Per command: (calls, usec) added between two snapshots, minus what the snapshots themselves add."""
    delta = {}
    for name, value in after.items():
        if name == "net_output_bytes":
            delta[name] = value - before.get(name, 0) - (baseline or {}).get(name, 0)
            continue
        calls = value[0] - before.get(name, (0, 0))[0] - (baseline or {}).get(name, (0, 0))[0]
        usec = value[1] - before.get(name, (0, 0))[1] - (baseline or {}).get(name, (0, 0))[1]
        if calls > 0:
            delta[name] = (calls, max(usec, 0))
    return delta


def observe(client, baseline: dict, func) -> dict:
    before = server_counters(client)
    func()
    return counter_delta(before, server_counters(client), baseline)


@contextlib.contextmanager
def timed_phases(module, sink: dict):
    """Time the functions of PHASES that `module` calls through its globals; restore them after."""
    saved = {name: getattr(module, name) for name in PHASES if callable(getattr(module, name, None))}

    def wrap(name, func):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                sink[name] = sink.get(name, 0.0) + time.perf_counter() - start

        return timed

    for name, func in saved.items():
        setattr(module, name, wrap(name, func))
    try:
        yield sink
    finally:
        for name, func in saved.items():
            setattr(module, name, func)


class Bench:
    """Both planners, the shared patch file and the server, for one index."""

    def __init__(self, server, client, patch_path: str):
        self.server, self.client, self.patch_path = server, client, patch_path
        self.planner, self.parse_patch = _ours()
        self.peer_class, note = _peer()
        self.peer_version = note if self.peer_class else None
        self.peer_error = None if self.peer_class else note

    def ours(self, **options):
        """Our plan as a playbook gets it: read and parse the patch file, then plan (default audit sample)."""
        with open(self.patch_path, encoding="utf-8") as handle:
            patch = self.parse_patch(yaml.safe_load(handle))
        return self.planner.create_plan(self.client, INDEX, patch=patch, **options)

    def theirs(self, shared_client: bool = False):
        """redisvl's plan as its docs show it: from the patch file and a URL (it connects on each call)."""
        connection = {"redis_client": self.client} if shared_client else {"redis_url": self.server.url}
        return self.peer_class().create_plan(index_name=INDEX, schema_patch_path=self.patch_path, **connection)

    def try_theirs(self):
        """One redisvl plan, or None after recording precisely why it could not be made."""
        if self.peer_error:
            return None
        try:
            return self.theirs()
        except Exception as err:  # pylint: disable=broad-exception-caught
            self.peer_error = (
                f"redisvl {self.peer_version} MigrationPlanner.create_plan failed: {type(err).__name__}: {err}"
            )
            return None

    def measure(self, runs: int) -> dict:
        """Time every variant `runs` times, interleaved so that drift and noise hit all alike.

        The comparison is ours (default audit sample) against redisvl (redis_url). For context only:
        ours with audit_sample=0, and redisvl handed the benchmark's already open client."""
        ours_plan, theirs_plan = self.ours(), self.try_theirs()  # warm-up, not timed
        variants = {"ours": self.ours, "ours_no_audit": lambda: self.ours(audit_sample=0)}
        if not self.peer_error:
            self.theirs(shared_client=True)  # warm-up
            variants.update(theirs=self.theirs, theirs_client=lambda: self.theirs(shared_client=True))
        samples: dict = {"ours": [], "ours_no_audit": [], "theirs": [], "theirs_client": []}
        for _run in range(runs):
            for name, func in variants.items():
                start = time.perf_counter()
                func()
                samples[name].append(time.perf_counter() - start)
        return dict(samples, ours_plan=ours_plan, theirs_plan=theirs_plan)

    def reads(self, baseline: dict, runs: int = BREAKDOWN_RUNS) -> dict:
        """Server commands of one plan of each; our plan's time per step, median of `runs` more plans."""
        ours = observe(self.client, baseline, self.ours)
        theirs = observe(self.client, baseline, self.theirs) if not self.peer_error else {}
        steps: dict = {}
        for _run in range(runs):
            phases: dict = {}
            with timed_phases(self.planner, phases):
                start = time.perf_counter()
                self.ours()
                phases["total"] = time.perf_counter() - start
            phases["rest"] = phases["total"] - sum(v for k, v in phases.items() if k != "total")
            for name, value in phases.items():
                steps.setdefault(name, []).append(value)
        return {
            "ours": ours,
            "theirs": theirs,
            "phases": {name: statistics.median(values) for name, values in steps.items()},
        }


# ---- report ---------------------------------------------------------------------------------------


def seconds(samples: list) -> str:
    return f"{statistics.median(samples):.4f} / {p95(samples):.4f}" if samples else "n/a"


def describe_plans(result: dict) -> str:
    ours = result["ours_plan"]
    text = (
        f"ours: supported={ours.classification.supported}, mode={ours.mode}, audit={ours.audit.mode} "
        f"({ours.audit.documents} docs)"
    )
    theirs = result["theirs_plan"]
    if theirs is not None:
        text += (
            f"; redisvl: supported={theirs.diff_classification.supported}, mode={theirs.mode}, "
            f"key_sample={len(theirs.source.keyspace.key_sample)} keys"
        )
    return text


def print_reads(docs: int, reads: dict) -> None:
    ours, theirs = reads["ours"], reads["theirs"]
    names = sorted(
        {n for n in ours if n != "net_output_bytes"} | {n for n in theirs if n != "net_output_bytes"},
        key=lambda n: (-ours.get(n, (0, 0))[1] - theirs.get(n, (0, 0))[1], n),
    )
    print(f"\nWhat one plan asked the server for at {docs:,} docs (INFO commandstats delta; server time in ms):")
    print(f"  {'command':<22}{'ours calls':>11}{'ours ms':>10}{'redisvl calls':>15}{'redisvl ms':>12}")
    for name in names:
        mine, peer = ours.get(name, (0, 0)), theirs.get(name, (0, 0))
        print(f"  {name:<22}{mine[0]:>11}{mine[1] / 1000:>10.2f}{peer[0]:>15}{peer[1] / 1000:>12.2f}")
    total_ours = [sum(v[i] for k, v in ours.items() if k != "net_output_bytes") for i in (0, 1)]
    total_theirs = [sum(v[i] for k, v in theirs.items() if k != "net_output_bytes") for i in (0, 1)]
    print(
        f"  {'total':<22}{total_ours[0]:>11}{total_ours[1] / 1000:>10.2f}{total_theirs[0]:>15}{total_theirs[1] / 1000:>12.2f}"
    )
    print(
        f"  {'~bytes sent to client':<22}{ours.get('net_output_bytes', 0):>21,}{theirs.get('net_output_bytes', 0):>27,}"
    )
    phases = reads["phases"]
    parts = ", ".join(
        f"{k} {v * 1000:.1f}" for k, v in sorted(phases.items(), key=lambda kv: -kv[1]) if k not in ("total", "rest")
    )
    print(
        f"  ours by step (ms, median of {BREAKDOWN_RUNS} plans; total {phases['total'] * 1000:.1f}): {parts}; "
        f"rest (diff, rewrites, plan model, patch file) {phases['rest'] * 1000:.1f}"
    )


def growth(rows: list, key: str, crossing: bool) -> str:
    """Least-squares slope of the median against the document count (and where a line reaches the target)."""
    points = [(docs, statistics.median(result[key])) for docs, result in rows if result[key]]
    if not points:
        return "n/a (not measured)"
    if len(points) < 2 or points[-1][0] < GROWTH_MIN_DOCS or points[-1][0] < 5 * points[0][0]:
        return f"n/a (needs sizes up to >= {GROWTH_MIN_DOCS:,} docs, 5x apart, for a slope above the noise)"
    slope, intercept = numpy.polyfit([docs for docs, _median in points], [median for _docs, median in points], 1)
    text = f"{slope * 1e9:+.1f} ms per million docs"
    if crossing and slope > 0:
        text += f" (a straight line through these sizes reaches {TARGET_SECONDS} s at ~{(TARGET_SECONDS - intercept) / slope / 1e6:,.1f}M docs)"
    return text


def print_table(rows: list, runs: int) -> bool:
    print(
        f"\nPlanning latency, {runs} timed runs each after one warm-up (seconds; median / p95). Target: ours p95 <= "
        f"{TARGET_SECONDS} s."
    )
    header = (
        f"{'docs':>10}  {'ours med / p95':>17}  {'redisvl med / p95':>19}  {'redisvl/ours (med)':>18}  {'target':>6}"
    )
    print(header)
    print("-" * len(header))
    passed = True
    for docs, result in rows:
        ours, theirs = result["ours"], result["theirs"]
        ok = p95(ours) <= TARGET_SECONDS
        passed = passed and ok
        ratio = f"{statistics.median(theirs) / statistics.median(ours):.2f}" if theirs else "n/a"
        print(f"{docs:>10,}  {seconds(ours):>17}  {seconds(theirs):>19}  {ratio:>18}  {'PASS' if ok else 'FAIL':>6}")
    print(
        "\nContext, not the comparison (median s): ours without the vector audit (audit_sample=0); redisvl handed the"
    )
    print("benchmark's open client instead of a URL (no connection set-up per plan).")
    print(f"{'docs':>10}  {'ours audit_sample=0':>20}  {'redisvl redis_client':>21}")
    for docs, result in rows:
        mine, peer = result["ours_no_audit"], result["theirs_client"]
        peer_text = f"{statistics.median(peer):.4f}" if peer else "n/a"
        print(f"{docs:>10,}  {statistics.median(mine):>20.4f}  {peer_text:>21}")
    print(
        f"\nGrowth of the median with size: ours {growth(rows, 'ours', True)}; redisvl {growth(rows, 'theirs', False)}."
    )
    return passed


def run(args) -> int:
    rng = numpy.random.default_rng(args.seed)
    rows = []
    with RedisSearchServer() as server, tempfile.TemporaryDirectory(prefix="plan-latency-") as tmp:
        client = redis.Redis.from_url(server.url, protocol=2)
        patch_path = os.path.join(tmp, "schema_patch.yaml")
        with open(patch_path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(PATCH, handle, sort_keys=False)
        bench = Bench(server, client, patch_path)
        print(f"plan_latency: private server {server.url} (pid {server.process.pid})")
        print(f"plan_latency: {environment(client, bench.peer_version)}")
        print(f"plan_latency: patch {PATCH}")
        baseline = counter_delta(server_counters(client), server_counters(client))
        create_index(client)
        loaded = 0
        for docs in args.sizes:
            start = time.perf_counter()
            load(client, loaded, docs, rng)
            wait_indexed(client, docs)
            loaded = docs
            print(
                f"\nplan_latency: {docs:,} docs loaded and indexed in {time.perf_counter() - start:.1f} s "
                "(one index, grown from the previous size)",
                flush=True,
            )
            result = bench.measure(args.runs)
            print(f"  plans: {describe_plans(result)}")
            if bench.peer_error:
                print(f"  redisvl NOT measured: {bench.peer_error}")
            print_reads(docs, bench.reads(baseline))
            rows.append((docs, result))
        client.close()
    passed = print_table(rows, args.runs)
    if bench.peer_error:
        print(f"redisvl not measured: {bench.peer_error}")
    print("Machine noise applies: wall-clock times; both planners, this script and the server share the same cores.")
    return 0 if passed else 1


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        type=int_list,
        default=int_list("10000,100000,500000"),
        help="document counts, comma-separated (default 10000,100000,500000)",
    )
    parser.add_argument("--runs", type=int, default=20, help="timed runs per planner and size (default 20)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the random documents")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        return run(args)
    except (BenchError, ServerError) as err:
        print(f"plan_latency: cannot run: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
