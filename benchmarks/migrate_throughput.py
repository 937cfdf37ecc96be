#!/usr/bin/env python
"""Apply speed and memory of our migration executor next to the redisvl index migrator's, same run.

    python benchmarks/migrate_throughput.py [--sizes 20000,50000,100000] [--dims 384] [--algorithm flat|hnsw]
                                            [--workers 1,2] [--runs 1]

(`make bench-migrate` builds .venv-bench and runs this.) The change is float32 -> float16 of the
vector field of a hash index (text + tag + vector). Every measurement gets a private Redis with
search of its own (tools/redis_search_server.py; nothing else is ever connected to), loaded with
the same seeded documents and fully indexed. The migration then runs in a child process (this
script with --child), so that its peak RSS is its own: ours plans with create_plan and applies with
migrate() (fresh backup dir, accept_data_loss, batch 500); redisvl plans with
MigrationPlanner().create_plan and applies with MigrationExecutor().apply (batch 500), both with
1 and 2 workers. Planning is timed apart from applying. After each run the benchmark checks the
result itself: the index (FLOAT16, every document indexed, no failures), the number of keys, and
for a sample the stored bytes (vector = float16 of the original, text and tag untouched) and a KNN
self-query. Exits 1 when one of our migrations fails or fails that check, or when our peak RSS grows
with the document count (see print_memory), 2 when the benchmark itself cannot run. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
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

from bench_common import INDEX, BenchError, environment, ft_info, int_list, wait_indexed  # noqa: E402  pylint: disable=wrong-import-position
from redis_search_server import RedisSearchServer, ServerError  # noqa: E402  pylint: disable=wrong-import-position

PREFIX = "bench:doc:"
LOAD_BATCH = 5000
BATCH_SIZE = 500
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
TOOLS = ("ours", "redisvl")
VERIFY_KNN = 5
CHILD_TIMEOUT = 7200.0
# Our phases in the order migrate() runs them (move_fields and rename_keys do nothing for this change).
OUR_PHASES = ("backup", "drop", "quantize", "create", "wait", "validate")
# redisvl's report timings (MigrationTimings) shown in the breakdown.
PEER_TIMINGS = ("drop", "quantize", "recreate", "initial_indexing", "validation")
# Memory verdict. A key held in a list costs ~56 B (a 48 B bytes object and an 8 B pointer): ~0.5 MB per
# 10k documents. Peaks (median over runs) move by up to ~1.1 MB with no growth per document: a forked worker
# settles ~0.5 MB higher from 50k documents on, and a single run can add ~0.6 MB (allocator arenas). So ours
# is FLAT when its peak grows by at most NOISE_MB over the whole span of sizes; spans where a list of keys
# would not add twice that get no verdict.
KEY_LIST_MB_PER_10K = 0.5
NOISE_MB = 1.5


# ---- data (the parent: server, documents, checks) -------------------------------------------------


def create_index(client, dims: int, algorithm: str, hnsw: tuple) -> None:
    params = ["TYPE", "FLOAT32", "DIM", str(dims), "DISTANCE_METRIC", "COSINE"]
    if algorithm == "hnsw":
        params += ["M", str(hnsw[0]), "EF_CONSTRUCTION", str(hnsw[1])]
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
        algorithm.upper(),
        str(len(params)),
        *params,
    )


def block_data(seed: int, block: int, count: int, dims: int):
    """Documents block*LOAD_BATCH .. +count-1: the same for every measurement and for the checks."""
    rng = numpy.random.default_rng([seed, block])
    vectors = rng.random((count, dims), dtype=numpy.float32)
    words = rng.integers(0, len(WORDS), size=(count, 3))
    first = block * LOAD_BATCH
    titles = [" ".join(WORDS[w] for w in words[row]) + f" {first + row}" for row in range(count)]
    genres = [GENRES[(first + row) % len(GENRES)] for row in range(count)]
    return vectors, titles, genres


def load(client, docs: int, dims: int, seed: int) -> None:
    """HSET every document in pipelined batches of LOAD_BATCH."""
    for block in range((docs + LOAD_BATCH - 1) // LOAD_BATCH):
        count = min(LOAD_BATCH, docs - block * LOAD_BATCH)
        vectors, titles, genres = block_data(seed, block, count, dims)
        pipe = client.pipeline(transaction=False)
        for row in range(count):
            pipe.hset(
                f"{PREFIX}{block * LOAD_BATCH + row}",
                mapping={"title": titles[row], "genre": genres[row], "embedding": vectors[row].tobytes()},
            )
        pipe.execute()


def vector_datatype(info: dict) -> str:
    for attribute in info.get("attributes", []):
        tokens = [t.decode() if isinstance(t, bytes) else t for t in attribute]
        if "embedding" in tokens and "data_type" in tokens:
            return str(tokens[tokens.index("data_type") + 1]).upper()
    return "?"


def count_keys(client) -> int:
    return sum(1 for _key in client.scan_iter(match=f"{PREFIX}*", count=10000, _type="hash"))


def verify(client, docs: int, dims: int, seed: int, sample: int) -> list:
    """Problems with the migrated data (empty when right): index, key count, sampled bytes, KNN."""
    problems = []
    try:
        info = ft_info(client)
    except redis.ResponseError as err:
        return [f"FT.INFO {INDEX}: {err}"]
    if vector_datatype(info) != "FLOAT16":
        problems.append(f"index vector datatype is {vector_datatype(info)}, not FLOAT16")
    indexed = int(info["num_docs"]) == docs and int(info["indexing"]) == 0 and float(info["percent_indexed"]) >= 1.0
    if not indexed:
        problems.append(f"index not complete: num_docs={info['num_docs']}, percent_indexed={info['percent_indexed']}")
    # A fresh index fails every document whose vector is not dims float16 values: this covers all of them.
    if int(info["hash_indexing_failures"]) != 0:
        problems.append(f"{info['hash_indexing_failures']} documents failed indexing")
    keys = count_keys(client)
    if keys != docs:
        problems.append(f"{keys} hashes under {PREFIX}, {docs} expected")
    rng = numpy.random.default_rng([seed, 1_000_003])
    ids = sorted({int(i) for i in rng.integers(0, docs, size=min(sample, docs))})
    pipe = client.pipeline(transaction=False)
    for doc in ids:
        pipe.hmget(f"{PREFIX}{doc}", ["title", "genre", "embedding"])
    stored = dict(zip(ids, pipe.execute()))
    wrong = []
    for block in sorted({doc // LOAD_BATCH for doc in ids}):
        count = min(LOAD_BATCH, docs - block * LOAD_BATCH)
        vectors, titles, genres = block_data(seed, block, count, dims)
        for doc in (d for d in ids if d // LOAD_BATCH == block):
            row = doc - block * LOAD_BATCH
            want = [titles[row].encode(), genres[row].encode(), vectors[row].astype(numpy.float16).tobytes()]
            if stored[doc] != want:
                wrong.append(doc)
    if wrong:
        problems.append(
            f"{len(wrong)} of {len(ids)} sampled documents differ from float16(original) (first: {PREFIX}{wrong[0]})"
        )
    # Exact whatever the algorithm: the text filter (the document's number is a token of its title)
    # leaves one candidate, which the search module then compares by brute force.
    for doc in ids[:VERIFY_KNN]:
        try:
            reply = client.execute_command(
                "FT.SEARCH",
                INDEX,
                f"(@title:{doc})=>[KNN 1 @embedding $v AS dist]",
                "PARAMS",
                "2",
                "v",
                stored[doc][2] or b"",
                "RETURN",
                "1",
                "dist",
                "DIALECT",
                "2",
            )
        except redis.ResponseError as err:
            problems.append(f"KNN self-query of {PREFIX}{doc}: {err}")
            break
        fields = dict(zip(reply[2][::2], reply[2][1::2])) if len(reply) > 2 else {}
        if reply[1:2] != [f"{PREFIX}{doc}".encode()] or float(fields.get(b"dist", "inf")) > 1e-3:
            problems.append(f"KNN self-query of {PREFIX}{doc} (filtered to it) did not return it at distance 0")
    return problems


def tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, name)) for folder, _dirs, names in os.walk(path) for name in names)


# ---- the child: one migration, in a process of its own ----------------------------------------------


def _own_peak_mb() -> float:
    """VmHWM of this process. Not ru_maxrss: Linux carries that over an exec, so it would include
    the RSS of the benchmark process this child was forked from."""
    with open("/proc/self/status", encoding="ascii") as status_file:
        for line in status_file:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise BenchError("no VmHWM in /proc/self/status (Linux only)")


def _children_peak_mb() -> float:
    """Peak RSS of the largest waited-for child (our forked workers; ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def _child_ours(spec: dict) -> dict:
    if not os.path.isdir(LINK):
        raise BenchError(f"{LINK} is missing; run `make bench-migrate` (it creates the collection link)")
    # pylint: disable=import-outside-toplevel
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import migrate
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
        MigrateOptions,
    )
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.report import MigrationReport
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import errors
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning import planner
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis import connection
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema import patch

    # pylint: enable=import-outside-toplevel
    settings = connection.ConnectionSettings(url=spec["url"])
    client = connection.connect(settings)
    start = time.perf_counter()
    with open(spec["patch_path"], encoding="utf-8") as handle:
        parsed = patch.parse_patch(yaml.safe_load(handle))
    plan = planner.create_plan(
        client, INDEX, patch=parsed, batch_size=spec["batch_size"], backup_dir=spec["backup_dir"]
    )
    plan_seconds = time.perf_counter() - start
    before = _own_peak_mb()
    options = MigrateOptions(batch_size=spec["batch_size"], workers=spec["workers"], accept_data_loss=True)
    failure = None
    start = time.perf_counter()
    try:
        report = migrate(client, lambda: connection.connect(settings), plan, spec["backup_dir"], options).report
    except errors.IndexOpsError as err:
        # It stopped and says where; the report it saved still holds the time of every phase it ran.
        path = err.details.get("report_path")
        if not path or not os.path.exists(path):
            raise
        with open(path, encoding="utf-8") as handle:
            report = MigrationReport(**yaml.safe_load(handle))
        failure = {"phase": err.details.get("phase"), "message": err.message}
    apply_seconds = time.perf_counter() - start
    return {
        "plan_seconds": plan_seconds,
        "apply_seconds": apply_seconds,
        "rss_before_apply_mb": before,
        "result": report.result,
        "documents": report.documents,
        "downtime": report.downtime_seconds,
        "phases": {name: state.get("seconds", 0.0) for name, state in report.phases.items()},
        "validation": report.validation,
        "conflicts": report.conflicts,
        "failure": failure,
    }


def _child_redisvl(spec: dict) -> dict:
    try:
        from redisvl.migration import MigrationExecutor, MigrationPlanner  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise BenchError(f"redisvl.migration cannot be imported ({err}); install benchmarks/requirements.txt") from None
    start = time.perf_counter()
    plan = MigrationPlanner().create_plan(index_name=INDEX, schema_patch_path=spec["patch_path"], redis_url=spec["url"])
    plan_seconds = time.perf_counter() - start
    before = _own_peak_mb()
    start = time.perf_counter()
    report = MigrationExecutor().apply(
        plan,
        redis_url=spec["url"],
        backup_dir=spec["backup_dir"],
        batch_size=spec["batch_size"],
        num_workers=spec["workers"],
    )
    apply_seconds = time.perf_counter() - start
    timings = report.timings.model_dump()
    return {
        "plan_seconds": plan_seconds,
        "apply_seconds": apply_seconds,
        "rss_before_apply_mb": before,
        "result": report.result,
        "downtime": timings.get("downtime_duration_seconds"),
        "phases": {name: timings.get(f"{name}_duration_seconds") for name in PEER_TIMINGS + ("total_migration",)},
        "validation": report.validation.model_dump(mode="json"),
        "failure": None
        if report.result == "succeeded"
        else {"phase": "validate", "message": "; ".join(map(str, report.validation.errors[:3])) or report.result},
    }


def child_main(spec_path: str) -> int:
    return run_child_spec(spec_path, lambda tool: _child_ours if tool == "ours" else _child_redisvl)


def run_child_spec(spec_path: str, runner_for) -> int:
    """The child process of a benchmark: one measurement by `runner_for(tool)`, with its peak RSS and that
    of its largest forked worker, written to the spec's result_path."""
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    try:
        result = runner_for(spec["tool"])(spec)
    except Exception as err:  # pylint: disable=broad-exception-caught
        result = {"error": f"{type(err).__name__}: {err}"[:2000]}
    result["peak_rss_mb"] = _own_peak_mb()
    result["peak_rss_children_mb"] = _children_peak_mb()
    with open(spec["result_path"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


def run_child(spec: dict, tmp: str) -> dict:
    spec_path = os.path.join(tmp, "spec.json")
    spec["result_path"] = os.path.join(tmp, "result.json")
    with open(spec_path, "w", encoding="utf-8") as handle:
        json.dump(spec, handle)
    try:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", spec_path],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no result after {CHILD_TIMEOUT:.0f} s"}
    if not os.path.exists(spec["result_path"]):
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return {"error": f"child exited {done.returncode} without a result: {tail}"}
    with open(spec["result_path"], encoding="utf-8") as handle:
        return json.load(handle)


# ---- one measurement ----------------------------------------------------------------------------------


def measure(args, tool: str, docs: int, dims: int, workers: int) -> dict:
    """A fresh server, the documents, one migration in a child process, then the checks."""
    with RedisSearchServer() as server, tempfile.TemporaryDirectory(prefix="migrate-throughput-") as tmp:
        client = redis.Redis.from_url(server.url, protocol=2)
        try:
            start = time.perf_counter()
            create_index(client, dims, args.algorithm, (args.hnsw_m, args.hnsw_ef_construction))
            load(client, docs, dims, args.seed)
            wait_indexed(client, docs, args.index_timeout)
            prepared = time.perf_counter() - start
            patch_path = os.path.join(tmp, "schema_patch.yaml")
            with open(patch_path, "w", encoding="utf-8") as handle:
                yaml.safe_dump(PATCH, handle, sort_keys=False)
            backup_dir = os.path.join(tmp, "backups")
            os.mkdir(backup_dir)
            spec = {
                "tool": tool,
                "url": server.url,
                "patch_path": patch_path,
                "backup_dir": backup_dir,
                "batch_size": BATCH_SIZE,
                "workers": workers,
            }
            result = run_child(spec, tmp)
            result["backup_bytes"] = tree_bytes(backup_dir)
            result["problems"] = [] if "error" in result else verify(client, docs, dims, args.seed, args.verify_sample)
            result["prepared_seconds"] = prepared
        finally:
            client.close()
    return result


def status(result: dict) -> str:
    if "error" in result:
        return f"FAILED ({result['error']})"
    failure = result.get("failure")
    stopped = f"FAILED in {failure['phase']}: {failure['message']}" if failure else ""
    if result["problems"]:
        return (stopped + "; " if stopped else "") + "WRONG: " + "; ".join(result["problems"][:3])
    return f"{stopped}; data verified" if stopped else "verified"


def short_status(results: list) -> str:
    names = set()
    for result in results:
        failure = result.get("failure")
        if "error" in result or result["problems"]:
            names.add("FAILED" if "error" in result else "WRONG")
        elif failure:
            names.add(f"stopped in {failure['phase']}*, data verified")
        else:
            names.add("verified")
    return " + ".join(sorted(names))


def timed(result: dict) -> bool:
    """Whether a run's times count: it did all the work and the data checks out. A run its own
    validation stopped at the very end (failure in validate, data right) counts, and is marked."""
    failure = result.get("failure")
    return "error" not in result and not result["problems"] and (not failure or failure["phase"] == "validate")


# ---- report ---------------------------------------------------------------------------------------------


def median_of(results: list, key: str):
    values = [r[key] for r in results if timed(r) and r.get(key) is not None]
    return statistics.median(values) if values else None


def median_phase(results: list, name: str):
    values = [r["phases"].get(name) for r in results if timed(r)]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def median_other(results: list, names: tuple):
    """Median over runs of (apply wall - the listed phases) of each run."""
    values = [r["apply_seconds"] - sum(r["phases"].get(n) or 0.0 for n in names) for r in results if timed(r)]
    return statistics.median(values) if values else None


def fmt(value, spec: str = ".2f", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)


def peak(results: list, key: str = "peak_rss_mb"):
    """Median over runs of a peak RSS (a run that failed still measured its memory)."""
    values = [r[key] for r in results if key in r]
    return statistics.median(values) if values else None


def process_peak(results: list, workers: int, tool: str):
    """The largest process: our forked workers are processes of their own (max of main and workers);
    redisvl's workers are threads of the one process."""
    main = peak(results)
    if tool == "ours" and workers > 1 and main is not None:
        return max(main, peak(results, "peak_rss_children_mb") or 0.0)
    return main


def print_config(rows: dict, sizes: list, dims: int, workers: int, args) -> None:
    runs = f"median of {args.runs} runs" if args.runs > 1 else "one run each"
    print(
        f"\n== {args.algorithm.upper()} {dims}-d float32 -> float16, workers {workers}, batch {BATCH_SIZE} "
        f"({runs}; apply time only, planning excluded) =="
    )
    header = (
        f"{'docs':>9}  {'ours s':>8} {'docs/s':>8} {'RSS MB':>7}   {'redisvl s':>9} {'docs/s':>8} {'RSS MB':>7}"
        f"   {'redisvl/ours':>12}  check (ours / redisvl)"
    )
    print(header)
    print("-" * len(header))
    for docs in sizes:
        ours, peer = rows[("ours", docs, dims, workers)], rows[("redisvl", docs, dims, workers)]
        mine, theirs = median_of(ours, "apply_seconds"), median_of(peer, "apply_seconds")
        ratio = fmt(theirs / mine if mine and theirs else None)
        marks = ["*" if any(timed(r) and r.get("failure") for r in rs) else "" for rs in (ours, peer)]
        print(
            f"{docs:>9,}  {fmt(mine) + marks[0]:>8} {fmt(docs / mine if mine else None, ',.0f'):>8} "
            f"{fmt(process_peak(ours, workers, 'ours'), '.0f'):>7}   {fmt(theirs) + marks[1]:>9} "
            f"{fmt(docs / theirs if theirs else None, ',.0f'):>8} {fmt(process_peak(peer, workers, 'redisvl'), '.0f'):>7}"
            f"   {ratio:>12}  {short_status(ours)} / {short_status(peer)}"
        )
    for docs in sizes:
        for tool in TOOLS:
            for run_no, result in enumerate(rows[(tool, docs, dims, workers)], start=1):
                if status(result) != "verified":
                    print(f"  {tool} {docs:,} run {run_no}: {status(result)}")
    if any(
        timed(r) and r.get("failure") for docs in sizes for tool in TOOLS for r in rows[(tool, docs, dims, workers)]
    ):
        print(
            "* the tool's own validation stopped the migration at its very end; all its work was done and the data "
            "checks out, so its time is shown - but the run failed."
        )
    print("Ours by phase (s, from the report; 'other' = apply wall - phases: preflight, lock, report):")
    names = "".join(f"{n:>9}" for n in OUR_PHASES)
    print(f"{'docs':>9}  {'plan':>6}{names}{'other':>8}{'downtime':>10}{'backup MB':>11}")
    for docs in sizes:
        ours = rows[("ours", docs, dims, workers)]
        phases = [median_phase(ours, n) for n in OUR_PHASES]
        other = median_other(ours, OUR_PHASES)
        backup = median_of(ours, "backup_bytes")
        print(
            f"{docs:>9,}  {fmt(median_of(ours, 'plan_seconds')):>6}"
            + "".join(f"{fmt(p):>9}" for p in phases)
            + f"{fmt(other):>8}{fmt(median_of(ours, 'downtime')):>10}{fmt(backup / 1e6 if backup else None, '.1f'):>11}"
        )
    print(
        "redisvl by step (s, from report.timings; 'other' = apply wall - these: enumerate, dump, set-up"
        + ("; with workers > 1 its dump runs inside quantize, after the drop):" if workers > 1 else "):")
    )
    names = "".join(f"{n:>11}" for n in ("drop", "quantize", "recreate", "indexing", "validation"))
    print(f"{'docs':>9}  {'plan':>6}{names}{'other':>8}{'downtime':>10}{'backup MB':>11}")
    for docs in sizes:
        peer = rows[("redisvl", docs, dims, workers)]
        phases = [median_phase(peer, n) for n in PEER_TIMINGS]
        other = median_other(peer, PEER_TIMINGS)
        backup = median_of(peer, "backup_bytes")
        print(
            f"{docs:>9,}  {fmt(median_of(peer, 'plan_seconds')):>6}"
            + "".join(f"{fmt(p):>11}" for p in phases)
            + f"{fmt(other):>8}{fmt(median_of(peer, 'downtime')):>10}{fmt(backup / 1e6 if backup else None, '.1f'):>11}"
        )


def growth(points: list) -> str:
    """RSS growth per 10k documents between consecutive sizes, and over the whole span."""
    points = [(docs, mb) for docs, mb in points if mb is not None]
    if len(points) < 2:
        return "n/a (needs two sizes)"
    steps = [(b[1] - a[1]) / (b[0] - a[0]) * 10_000 for a, b in zip(points, points[1:])]
    span = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0]) * 10_000
    text = ", ".join(f"{s:+.2f}" for s in steps)
    return f"{text} (whole span {span:+.2f}) MB per 10k docs"


def span_mb(points: list):
    points = [(docs, mb) for docs, mb in points if mb is not None]
    return (points[-1][1] - points[0][1]) if len(points) >= 2 else None


def print_memory(rows: dict, sizes: list, dims_list: list, workers_list: list):
    """Peak RSS per size and its growth; returns whether ours stayed flat (None: no verdict)."""
    print(
        "\n== Peak RSS of the migrating Python process (MB, median over runs; main: VmHWM, base = its peak after "
        "imports and plan) =="
    )
    print(
        "ours with workers > 1: main = the process that runs migrate(); worker = the largest forked worker (ru_maxrss"
    )
    print(
        "of RUSAGE_CHILDREN; it shares the main process's pages copy-on-write, so main + workers x worker is an upper"
    )
    print("bound). redisvl runs its workers as threads of its one process.")
    worst = None
    for dims in dims_list:
        for workers in workers_list:
            for tool in TOOLS:
                kinds = [("main", "peak_rss_mb")] + (
                    [("worker", "peak_rss_children_mb")] if tool == "ours" and workers > 1 else []
                )
                for kind, key in kinds:
                    points = [(docs, peak(rows[(tool, docs, dims, workers)], key)) for docs in sizes]
                    base = [peak(rows[(tool, docs, dims, workers)], "rss_before_apply_mb") for docs in sizes]
                    label = f"{tool} {dims}-d w{workers} {kind}"
                    values = ", ".join(
                        f"{docs // 1000}k {fmt(mb, '.1f')}" + (f" (base {fmt(b, '.1f')})" if kind == "main" else "")
                        for (docs, mb), b in zip(points, base)
                    )
                    print(f"  {label:<24} {values}; growth {growth(points)}")
                    grown = span_mb(points)
                    if tool == "ours" and grown is not None:
                        worst = grown if worst is None else max(worst, grown)
    span = sizes[-1] - sizes[0]
    held = KEY_LIST_MB_PER_10K * span / 10_000
    if worst is None or held < 2 * NOISE_MB:
        print(
            f"Ours: no verdict: over {span:,} docs a list of keys would add only ~{held:.1f} MB, within twice the "
            f"{NOISE_MB} MB noise; use sizes further apart (e.g. --sizes 20000,200000)."
        )
        return None
    flat = worst <= NOISE_MB
    print(
        f"Ours: {'FLAT' if flat else 'NOT FLAT'}: its largest peak growth from {sizes[0]:,} to {sizes[-1]:,} docs is "
        f"{worst:+.1f} MB (allowed: {NOISE_MB} MB of noise); holding one key per document in a list would add ~{held:.0f} MB."
    )
    return flat


def run(args) -> int:
    if not os.path.isdir(LINK):
        raise BenchError(f"{LINK} is missing; run `make bench-migrate` (it creates the collection link)")
    try:
        peer_version = metadata.version("redisvl")
    except metadata.PackageNotFoundError:
        raise BenchError("redisvl is not installed; install benchmarks/requirements.txt (make bench-migrate)") from None
    with RedisSearchServer() as server:
        probe = redis.Redis.from_url(server.url, protocol=2)
        print(f"migrate_throughput: {environment(probe, peer_version)}")
        probe.close()
    print(
        f"migrate_throughput: patch {PATCH}; sizes {args.sizes}, dims {args.dims}, {args.algorithm}, "
        f"workers {args.workers}, runs {args.runs}, seed {args.seed}; a fresh private server per measurement"
    )
    rows: dict = {}
    failed_ours = False
    began = time.perf_counter()
    for docs in args.sizes:
        for dims in args.dims:
            for workers in args.workers:
                for run_no in range(args.runs):
                    order = TOOLS if run_no % 2 == 0 else TOOLS[::-1]
                    for tool in order:
                        result = measure(args, tool, docs, dims, workers)
                        rows.setdefault((tool, docs, dims, workers), []).append(result)
                        text = status(result)
                        failed_ours = failed_ours or (tool == "ours" and text != "verified")
                        print(
                            f"  {tool:<7} {docs:>8,} docs {dims}-d w{workers} run {run_no + 1}: "
                            f"apply {fmt(result.get('apply_seconds'))} s, plan {fmt(result.get('plan_seconds'), '.3f')} s, "
                            f"peak RSS {fmt(result.get('peak_rss_mb'), '.1f')} MB"
                            + (
                                f" (worker {result['peak_rss_children_mb']:.1f})"
                                if tool == "ours" and workers > 1 and "peak_rss_children_mb" in result
                                else ""
                            )
                            + f"; data ready in {result['prepared_seconds']:.1f} s; {text}",
                            flush=True,
                        )
    for dims in args.dims:
        for workers in args.workers:
            print_config(rows, args.sizes, dims, workers, args)
    flat = print_memory(rows, args.sizes, args.dims, args.workers)
    print(
        f"\nTotal {time.perf_counter() - began:.0f} s. Machine noise applies: wall-clock times; the server, the "
        "migrating process and its workers share the same cores."
    )
    return 1 if failed_ours or flat is False else 0


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        type=int_list,
        default=int_list("20000,50000,100000"),
        help="document counts, comma-separated (default 20000,50000,100000)",
    )
    parser.add_argument("--dims", type=int_list, default=[384], help="vector dimensions, comma-separated (default 384)")
    parser.add_argument("--algorithm", choices=("flat", "hnsw"), default="flat", help="vector index (default flat)")
    parser.add_argument("--workers", type=int_list, default=int_list("1,2"), help="worker counts (default 1,2)")
    parser.add_argument("--runs", type=int, default=1, help="measurements per tool and configuration (default 1)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the random documents")
    parser.add_argument("--verify-sample", type=int, default=500, help="documents compared byte by byte after each run")
    parser.add_argument("--hnsw-m", type=int, default=16, help="HNSW M (default 16)")
    parser.add_argument("--hnsw-ef-construction", type=int, default=200, help="HNSW EF_CONSTRUCTION (default 200)")
    parser.add_argument("--index-timeout", type=float, default=3600.0, help="seconds to wait for the source index")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.runs < 1 or args.verify_sample < 1:
        parser.error("--runs and --verify-sample must be at least 1")
    try:
        return run(args)
    except (BenchError, ServerError) as err:
        print(f"migrate_throughput: cannot run: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
