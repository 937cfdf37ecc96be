#!/usr/bin/env python
"""Read downtime, apply time, re-index, validation and memory of a migration: ours next to redisvl's
and next to the raw floor, per scenario, in one run. (`make bench-migrate`; docs/benchmarks.md.)

    python benchmarks/migrate_scenarios.py [--scenarios a,b] [--scale 0.1] [--runs 1] [--tools a,b]
        [--search-module-args 'ARG VALUE' ...]

Scenarios (documents x dimensions, the change):
    flat-200k      200,000 x 384 FLAT, float32 -> float16        raw, redisvl, ours w1, ours w2
    hnsw-20k       20,000 x 128 HNSW, float32 -> float16         raw, redisvl, ours w1, ours w2
    flat-1m        1,000,000 x 64 FLAT, float32 -> float16       raw, redisvl, ours w1, ours w2
    flat-100k-64   100,000 x 64 FLAT, float32 -> float16         ours w1 (memory: 100k against 1M)
    online-hnsw    20,000 x 128 HNSW, M 16 -> 24                  ours online, ours drop_recreate, redisvl
    online-flat    200,000 x 384 FLAT -> HNSW (M 16, EF_C 200)    ours online, ours drop_recreate, redisvl
    rewrite-flat   200,000 x 384 FLAT, float32 -> float16         ours online (swap), ours side_by_side (then
                   (online: expand, build, swap, convert,          finish), ours drop_recreate, redisvl
                   rebuild, swap, contract)
    rewrite-hnsw   20,000 x 128 HNSW, float32 -> float16          the same
    rename-hnsw    20,000 x 128 HNSW, field genre -> category     ours online, ours drop_recreate, redisvl
    validate-flat  200,000 x 384 FLAT, title weight 2             ours online (build, validate, swap: no
                                                                  rewrite), and the same with the validation's
                                                                  KNN queries back to back (as before issue 20)
The rewrite and rename scenarios also measure a baseline: the same poller for BASELINE_SECONDS with no migration
running, the floor of its longest gap on this machine at this moment.
For the rewrite scenarios also: the server's CPU seconds (INFO cpu, user + sys) over the migration, the
polls with no answer (failed reads), and the peak of used_memory above where it started (sampled every poll)
next to the plan's estimate of the online window's peak; for ours, the poller's longest gap within each phase
(every phase a gap overlaps) and the server's SLOWLOG (commands over 10 ms) by phase.
--scale multiplies every document count (0.1 for a quick run). --search-module-args 'BG_INDEX_SLEEP_GAP 10' starts
every server with those search-module load arguments; repeated (with '' for the default server), each variant is
measured in the same run, interleaved tool by tool, and reported as a scenario of its own.

Each measurement gets a private Redis with search of its own (tools/redis_search_server.py), the
same seeded documents, fully indexed. A poller process queries the index by its name (KNN 3 filtered
to document 0, every 10 ms) from before the migration until after it; a reply with at least one document is an answer
(with the float32 query, or the float16 one once the index is float16), and a complete one when
FT.INFO then says the index holds every document (not indexing, 100%). The read downtime is the
longest time between two complete answers - an index still building answers, but not with all of
its documents; the longest time between any two answers is shown beside it ("no answer"). The migration runs in a child process (its peak RSS, and that of
its largest forked worker, are its own):
    ours      create_plan + migrate() (batch 500, accept_data_loss, fresh backup dir);
    redisvl   MigrationPlanner().create_plan + MigrationExecutor().apply (batch 500);
    raw       the floor: FT.DROPINDEX, then pipelined HGET -> NumPy -> HSET in batches of 500 in one
              process (no backup, no check of any kind), FT.CREATE of the target, wait.
Every run's result is checked (index definition, document count, no failures, sampled bytes). Exits 1
when one of our runs fails its check, 2 when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, COLLECTIONS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import INDEX, BenchError, environment, ft_info, wait_indexed  # noqa: E402  pylint: disable=wrong-import-position
from migrate_throughput import (  # noqa: E402  pylint: disable=wrong-import-position
    BATCH_SIZE,
    PREFIX,
    load,
    run_child_spec,
    verify,
)
from redis_search_server import RedisSearchServer, ServerError  # noqa: E402  pylint: disable=wrong-import-position

FLOAT16 = {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}}
HNSW_M24 = {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"m": 24}}]}}
TO_HNSW = {
    "version": 1,
    "changes": {
        "update_fields": [{"name": "embedding", "attrs": {"algorithm": "hnsw", "m": 16, "ef_construction": 200}}]
    },
}
RENAME_GENRE = {"version": 1, "changes": {"rename_fields": [{"old_name": "genre", "new_name": "category"}]}}
QUANTIZE_TOOLS = ("raw", "redisvl", "ours-w1", "ours-w2")
ONLINE_TOOLS = ("ours-online", "ours-drop_recreate", "redisvl")
REWRITE_TOOLS = ("baseline", "ours-online", "ours-side_by_side", "ours-drop_recreate", "redisvl")
RENAME_TOOLS = ("baseline", *ONLINE_TOOLS)
VALIDATE_TOOLS = ("baseline", "ours-online", "ours-online-unspaced")
TITLE_WEIGHT = {"version": 1, "changes": {"update_fields": [{"name": "title", "attrs": {"weight": 2}}]}}
SCENARIOS = {
    "flat-200k": {"docs": 200_000, "dims": 384, "algorithm": "flat", "patch": FLOAT16, "tools": QUANTIZE_TOOLS},
    "hnsw-20k": {"docs": 20_000, "dims": 128, "algorithm": "hnsw", "patch": FLOAT16, "tools": QUANTIZE_TOOLS},
    "flat-1m": {"docs": 1_000_000, "dims": 64, "algorithm": "flat", "patch": FLOAT16, "tools": QUANTIZE_TOOLS},
    "flat-100k-64": {"docs": 100_000, "dims": 64, "algorithm": "flat", "patch": FLOAT16, "tools": ("ours-w1",)},
    "online-hnsw": {"docs": 20_000, "dims": 128, "algorithm": "hnsw", "patch": HNSW_M24, "tools": ONLINE_TOOLS},
    "online-flat": {"docs": 200_000, "dims": 384, "algorithm": "flat", "patch": TO_HNSW, "tools": ONLINE_TOOLS},
    "rewrite-flat": {"docs": 200_000, "dims": 384, "algorithm": "flat", "patch": FLOAT16, "tools": REWRITE_TOOLS},
    "rewrite-hnsw": {"docs": 20_000, "dims": 128, "algorithm": "hnsw", "patch": FLOAT16, "tools": REWRITE_TOOLS},
    "rename-hnsw": {"docs": 20_000, "dims": 128, "algorithm": "hnsw", "patch": RENAME_GENRE, "tools": RENAME_TOOLS},
    "validate-flat": {
        "docs": 200_000,
        "dims": 384,
        "algorithm": "flat",
        "patch": TITLE_WEIGHT,
        "tools": VALIDATE_TOOLS,
    },
}
DEFAULT = "flat-200k,hnsw-20k,flat-1m,flat-100k-64,online-hnsw,online-flat,rewrite-flat,rewrite-hnsw,rename-hnsw,validate-flat"
POLL_SECONDS = 0.010
BASELINE_SECONDS = 10.0
SLOW_MICROSECONDS = 10_000  # SLOWLOG threshold during a measurement
CHILD_TIMEOUT = 7200.0


# ---- the poller (a process of its own) ----------------------------------------------------------------


def poller_main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    client = redis.Redis.from_url(spec["url"], protocol=2, socket_timeout=30)
    queries = [bytes.fromhex(spec["vector32"]), bytes.fromhex(spec["vector16"])]
    answered, complete = [], []
    polls = 0
    memory_peak = 0
    while not os.path.exists(spec["stop"]):
        polls += 1
        ok = False
        for vector in queries:
            try:
                # Filtered to document 0 (its number is a token of its title): a real KNN query through the
                # vector index, but not a brute-force pass over every vector each 10 ms, which would slow the
                # very server being measured.
                reply = client.execute_command(
                    "FT.SEARCH",
                    INDEX,
                    "(@title:0)=>[KNN 3 @embedding $v]",
                    "PARAMS",
                    "2",
                    "v",
                    vector,
                    "NOCONTENT",
                    "LIMIT",
                    "0",
                    "3",
                    "TIMEOUT",
                    "0",
                    "DIALECT",
                    "2",
                )
            except redis.RedisError:
                continue  # no such index, or the other datatype: try the other query
            ok = bool(reply) and int(reply[0]) > 0
            if ok:
                break
        now = time.time()  # wall clock: the migration's phases are recorded in it
        try:
            memory_peak = max(memory_peak, int(client.info("memory")["used_memory"]))
        except redis.RedisError:
            pass
        if ok:
            answered.append(now)
            # From an index that holds every document, or from one still building (a partial answer)?
            try:
                info = ft_info(client)
                if int(info["indexing"]) == 0 and float(info["percent_indexed"]) >= 1.0:
                    complete.append(now)
            except redis.RedisError:
                pass
        time.sleep(POLL_SECONDS)

    def longest(times):
        gaps = [b - a for a, b in zip(times, times[1:])]
        return max(gaps) if gaps else None

    with open(spec["out"], "w", encoding="utf-8") as handle:
        json.dump(
            {
                "polls": polls,
                "answered": len(answered),
                "complete": len(complete),
                "longest_gap_seconds": longest(complete),
                "longest_unanswered_seconds": longest(answered),
                "failed_reads": polls - len(answered),
                "used_memory_peak": memory_peak,
                "complete_at": complete,
            },
            handle,
        )
    return 0


# ---- the child: one migration ----------------------------------------------------------------------------


def _child_ours(spec: dict) -> dict:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import migrate
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
        MigrateOptions,
    )
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning import planner
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis import connection
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema import patch

    if spec.get("knn_back_to_back"):
        # pylint: disable-next=import-outside-toplevel
        from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases import online

        online.KNN_IDLE_RATIO = 0.0  # the validation's queries as they were sent before they were spaced
    settings = connection.ConnectionSettings(url=spec["url"])
    client = connection.connect(settings)
    plan = planner.create_plan(
        client,
        INDEX,
        patch=patch.parse_patch(spec["patch"]),
        batch_size=BATCH_SIZE,
        backup_dir=spec["backup_dir"],
        mode=spec.get("mode", "auto"),
        cutover=spec.get("cutover", "swap"),
    )
    start = time.perf_counter()

    def apply(finish: bool):
        options = MigrateOptions(
            batch_size=BATCH_SIZE,
            workers=spec["workers"],
            accept_data_loss=True,
            wait_timeout=CHILD_TIMEOUT,
            finish=finish,
        )
        return migrate(client, lambda: connection.connect(settings), plan, spec["backup_dir"], options).report

    report = apply(False)
    if report.result == "side_by_side":
        time.sleep(1.0)  # clients move over meanwhile; then the finish run swaps and contracts
        report = apply(True)
    phases = {name: state.get("seconds", 0.0) for name, state in report.phases.items()}
    windows = {
        name: [_epoch(state["started_at"]), _epoch(state.get("finished_at") or report.finished_at)]
        for name, state in report.phases.items()
        if state.get("started_at")
    }
    return {
        "apply_seconds": time.perf_counter() - start,
        "mode": report.mode,
        "estimated_peak_bytes": plan.online.memory_needed_bytes if plan.mode == "online" and plan.online else None,
        "estimated_online_seconds": plan.durations.online_seconds if plan.durations else None,
        "estimated_drop_recreate_seconds": plan.durations.drop_recreate_seconds if plan.durations else None,
        "result": report.result,
        "reindex_seconds": phases.get("wait"),
        "validate_seconds": phases.get("validate"),
        "phases": phases,
        "phase_windows": windows,
    }


def _epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp).timestamp()


def _child_baseline(spec: dict) -> dict:
    """No migration: the poller alone, for its floor."""
    time.sleep(BASELINE_SECONDS)
    return {"apply_seconds": BASELINE_SECONDS, "result": "succeeded"}


def _child_redisvl(spec: dict) -> dict:
    from redisvl.migration import MigrationExecutor, MigrationPlanner  # pylint: disable=import-outside-toplevel

    plan = MigrationPlanner().create_plan(index_name=INDEX, schema_patch_path=spec["patch_path"], redis_url=spec["url"])
    start = time.perf_counter()
    report = MigrationExecutor().apply(
        plan, redis_url=spec["url"], backup_dir=spec["backup_dir"], batch_size=BATCH_SIZE, num_workers=spec["workers"]
    )
    timings = report.timings.model_dump()
    return {
        "apply_seconds": time.perf_counter() - start,
        "result": report.result,
        "reindex_seconds": timings.get("initial_indexing_duration_seconds"),
        "validate_seconds": timings.get("validation_duration_seconds"),
    }


def _child_raw(spec: dict) -> dict:
    """The floor: no backup, no checks - drop, rewrite as fast as one process pipelines, create, wait."""
    client = redis.Redis.from_url(spec["url"], protocol=2)
    dims, docs = spec["dims"], spec["docs"]
    start = time.perf_counter()
    client.execute_command("FT.DROPINDEX", INDEX)
    for first in range(0, docs, BATCH_SIZE):
        keys = [f"{PREFIX}{i}" for i in range(first, min(first + BATCH_SIZE, docs))]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "embedding")
        values = pipe.execute()
        converted = (
            numpy.frombuffer(b"".join(values), dtype=numpy.float32).reshape(len(keys), dims).astype(numpy.float16)
        )
        pipe = client.pipeline(transaction=False)
        for key, row in zip(keys, converted):
            pipe.hset(key, "embedding", row.tobytes())
        pipe.execute()
    rewritten = time.perf_counter()
    params = ["TYPE", "FLOAT16", "DIM", str(dims), "DISTANCE_METRIC", "COSINE"]
    if spec["algorithm"] == "hnsw":
        params += ["M", "16", "EF_CONSTRUCTION", "200"]
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
        spec["algorithm"].upper(),
        str(len(params)),
        *params,
    )
    wait_indexed(client, docs, CHILD_TIMEOUT)
    done = time.perf_counter()
    return {
        "apply_seconds": done - start,
        "result": "succeeded",
        "rewrite_seconds": rewritten - start,
        "reindex_seconds": done - rewritten,
    }


def child_main(spec_path: str) -> int:
    runners = {"raw": _child_raw, "redisvl": _child_redisvl, "baseline": _child_baseline}
    return run_child_spec(spec_path, lambda tool: runners.get(tool, _child_ours))


# ---- one measurement ----------------------------------------------------------------------------------------


def _tool_spec(tool: str) -> dict:
    if tool.startswith("ours-w"):
        # The quantize scenarios measure the drop_recreate path (a rewrite runs online by default since issue 20:
        # rewrite-flat and rewrite-hnsw measure that).
        return {"tool": "ours", "workers": int(tool[len("ours-w") :]), "mode": "drop_recreate"}
    if tool == "ours-online-unspaced":
        return {"tool": "ours", "workers": 1, "mode": "online", "knn_back_to_back": True}
    if tool == "ours-side_by_side":
        return {"tool": "ours", "workers": 1, "mode": "online", "cutover": "side_by_side"}
    if tool.startswith("ours-"):
        return {"tool": "ours", "workers": 1, "mode": tool[len("ours-") :]}
    return {"tool": tool, "workers": 1}


def create_index(client, dims: int, algorithm: str) -> None:
    params = ["TYPE", "FLOAT32", "DIM", str(dims), "DISTANCE_METRIC", "COSINE"]
    if algorithm == "hnsw":
        params += ["M", "16", "EF_CONSTRUCTION", "200"]
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


def _check_rename(client, docs: int) -> list:
    info = ft_info(client)
    problems = []
    names = [[t.decode() if isinstance(t, bytes) else t for t in attribute][3] for attribute in info["attributes"]]
    if "category" not in names or "genre" in names:
        problems.append(f"fields are {names}")
    if int(info["num_docs"]) != docs or int(info["hash_indexing_failures"]):
        problems.append(f"num_docs {info['num_docs']}, failures {info['hash_indexing_failures']}")
    pipe = client.pipeline(transaction=False)
    for doc in range(0, docs, max(docs // 300, 1)):
        pipe.hmget(f"{PREFIX}{doc}", ["genre", "category"])
    if any(old is not None or new is None for old, new in pipe.execute()):
        problems.append("a sampled document still has genre, or has no category")
    return problems


def _check_online(client, docs: int, patch: dict) -> list:
    if "rename_fields" in patch["changes"]:
        return _check_rename(client, docs)
    info = ft_info(client)
    attrs = {}
    for attribute in info["attributes"]:
        tokens = [t.decode() if isinstance(t, bytes) else t for t in attribute]
        if "embedding" in tokens:
            attrs = dict(zip(tokens[::2], tokens[1::2]))
    wanted = patch["changes"]["update_fields"][0]["attrs"]
    problems = []
    if str(attrs.get("algorithm", "")).lower() != str(wanted.get("algorithm", attrs.get("algorithm", ""))).lower():
        problems.append(f"algorithm is {attrs.get('algorithm')}")
    if "m" in wanted and str(attrs.get("M")) != str(wanted["m"]):
        problems.append(f"M is {attrs.get('M')}")
    if int(info["num_docs"]) != docs or int(info["hash_indexing_failures"]):
        problems.append(f"num_docs {info['num_docs']}, failures {info['hash_indexing_failures']}")
    return problems


def _server_cpu(client) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _sleep_gap(client) -> str:
    """The server's BG_INDEX_SLEEP_GAP as FT.CONFIG GET reports it (what a --search-module-args variant set)."""
    reply = client.execute_command("FT.CONFIG", "GET", "BG_INDEX_SLEEP_GAP")
    return reply[0][1].decode() if reply and reply[0][1] is not None else "?"


def measure(scenario: dict, tool: str, docs: int, seed: int, search_args: tuple = ()) -> dict:
    spec = _tool_spec(tool)
    with (
        RedisSearchServer(search_args=search_args) as server,
        tempfile.TemporaryDirectory(prefix="migrate-scenarios-") as tmp,
    ):
        client = redis.Redis.from_url(server.url, protocol=2)
        try:
            create_index(client, scenario["dims"], scenario["algorithm"])
            load(client, docs, scenario["dims"], seed)
            wait_indexed(client, docs, CHILD_TIMEOUT)
            query = numpy.frombuffer(client.hget(f"{PREFIX}0", "embedding"), dtype=numpy.float32)
            patch_path = os.path.join(tmp, "patch.yaml")
            with open(patch_path, "w", encoding="utf-8") as handle:
                yaml.safe_dump(scenario["patch"], handle)
            os.mkdir(os.path.join(tmp, "backups"))
            spec.update(
                {
                    "url": server.url,
                    "patch": scenario["patch"],
                    "patch_path": patch_path,
                    "docs": docs,
                    "dims": scenario["dims"],
                    "algorithm": scenario["algorithm"],
                    "backup_dir": os.path.join(tmp, "backups"),
                    "result_path": os.path.join(tmp, "result.json"),
                }
            )
            poll = {
                "url": server.url,
                "stop": os.path.join(tmp, "stop"),
                "out": os.path.join(tmp, "poll.json"),
                "vector32": query.tobytes().hex(),
                "vector16": query.astype(numpy.float16).tobytes().hex(),
            }
            for name, data in (("spec.json", spec), ("poll-spec.json", poll)):
                with open(os.path.join(tmp, name), "w", encoding="utf-8") as handle:
                    json.dump(data, handle)
            poller = subprocess.Popen([sys.executable, __file__, "--poller", os.path.join(tmp, "poll-spec.json")])
            time.sleep(0.5)  # answered before the migration starts
            memory_before = int(client.info("memory")["used_memory"])
            client.config_set("slowlog-log-slower-than", SLOW_MICROSECONDS)
            client.config_set("slowlog-max-len", 10_000)
            client.slowlog_reset()
            cpu_before = _server_cpu(client)
            done = subprocess.run(
                [sys.executable, __file__, "--child", os.path.join(tmp, "spec.json")],
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT,
                check=False,
            )
            cpu_after = _server_cpu(client)
            time.sleep(0.5)
            with open(poll["stop"], "w", encoding="utf-8") as handle:
                handle.write("stop")
            poller.wait(timeout=60)
            if not os.path.exists(spec["result_path"]):
                return {
                    "error": f"child exited {done.returncode}: " + " | ".join(done.stderr.strip().splitlines()[-3:])
                }
            with open(spec["result_path"], encoding="utf-8") as handle:
                result = json.load(handle)
            with open(poll["out"], encoding="utf-8") as handle:
                result["poll"] = json.load(handle)
            result["server_cpu_seconds"] = cpu_after - cpu_before
            result["bg_index_sleep_gap"] = _sleep_gap(client)
            result["slow"] = [
                [entry["start_time"], entry["duration"], entry["command"].split(b" ")[0].decode(errors="replace")]
                for entry in client.slowlog_get(-1)
            ]
            result["memory_peak_above_start"] = max(result["poll"]["used_memory_peak"] - memory_before, 0)
            if tool == "baseline":
                result["problems"] = []
            elif "error" not in result:
                result["problems"] = (
                    verify(client, docs, scenario["dims"], seed, 300)
                    if scenario["patch"] is FLOAT16
                    else _check_online(client, docs, scenario["patch"])
                )
        finally:
            client.close()
    return result


# ---- report ---------------------------------------------------------------------------------------------


def med(results: list, key: str):
    values = [r[key] for r in results if "error" not in r and not r.get("problems") and r.get(key) is not None]
    return statistics.median(values) if values else None


def downtime(results: list, key: str = "longest_gap_seconds"):
    values = [r["poll"][key] for r in results if "error" not in r and r.get("poll") and r["poll"].get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def ratio(a, b) -> str:
    return "n/a" if not a or not b else f"{a / b:.2f}"


def print_scenario(name: str, scenario: dict, docs: int, rows: dict, variant: tuple = ()) -> dict:
    print(
        f"\n== {name}{_variant_label(variant)}: {docs:,} x {scenario['dims']} {scenario['algorithm'].upper()}, "
        f"{json.dumps(scenario['patch']['changes'])} =="
    )
    print(
        f"{'tool':<20}{'apply s':>9}{'read downtime s':>17}{'no answer s':>13}{'re-index s':>12}{'validate s':>12}"
        f"{'RSS MB main/worker':>20}  check"
    )
    figures = {}
    for tool in [t for t in scenario["tools"] if t in rows]:
        results = rows[tool]
        failed = [r for r in results if "error" in r or r.get("problems")]
        check = (
            "verified" if not failed else "FAILED: " + (failed[0].get("error") or "; ".join(failed[0]["problems"][:2]))
        )
        figures[tool] = {
            "apply": med(results, "apply_seconds"),
            "downtime": downtime(results),
            "unanswered": downtime(results, "longest_unanswered_seconds"),
            "reindex": med(results, "reindex_seconds"),
            "validate": med(results, "validate_seconds"),
            "rewrite": med(results, "rewrite_seconds"),
            "rss": med(results, "peak_rss_mb"),
            "rss_workers": med(results, "peak_rss_children_mb"),
            "ok": not failed,
        }
        f = figures[tool]
        rss = fmt(f["rss"], ".0f") + (f"/{fmt(f['rss_workers'], '.0f')}" if tool == "ours-w2" else "")
        print(
            f"{tool:<20}{fmt(f['apply']):>9}{fmt(f['downtime']):>17}{fmt(f['unanswered']):>13}{fmt(f['reindex']):>12}"
            f"{fmt(f['validate']):>12}"
            f"{rss:>20}  {check}"
        )
    _print_rewrite_figures(scenario, rows)
    raw, peer = figures.get("raw"), figures.get("redisvl")
    ours = figures.get("ours-w1") or figures.get("ours-online")
    if raw and ours and raw.get("rewrite") is not None:
        floor = raw["rewrite"] + raw["reindex"]
        print(
            f"read downtime, ours w1 / (raw rewrite {raw['rewrite']:.2f} + re-index {raw['reindex']:.2f}): "
            f"{ratio(ours['downtime'], floor)} (target <= 1.2)"
        )
    if peer and ours:
        print(
            f"read downtime, {'ours online' if 'ours-online' in figures else 'ours w1'} / redisvl: "
            f"{ratio(ours['downtime'], peer['downtime'])}" + ("" if "ours-online" in figures else " (target <= 0.6)")
        )
        print(f"apply, ours / redisvl: {ratio(ours['apply'], peer['apply'])}" + (" (target <= 0.8)" if raw else ""))
    if figures.get("ours-w1") and figures.get("ours-w2"):
        print(
            f"apply, workers 2 speed-up: {ratio(figures['ours-w1']['apply'], figures['ours-w2']['apply'])} "
            "(target >= 1.4)"
        )
    if figures.get("ours-drop_recreate") and figures.get("ours-online"):
        print(
            f"read downtime, online {fmt(figures['ours-online']['downtime'], '.3f')} s against drop_recreate "
            f"{fmt(figures['ours-drop_recreate']['downtime'])} s"
        )
    return figures


def _phase_of_second(windows: dict, second: int) -> str:
    """The phase that overlaps the whole second `second` most, "-" when none does."""
    overlap = [(min(end, second + 1) - max(start, second), name) for name, (start, end) in windows.items()]
    best = max(overlap, default=(0.0, "-"))
    return best[1] if best[0] > 0 else "-"


def _print_phases(tool: str, run: int, result: dict) -> None:
    """Per phase of ours: the poller's longest gap within it, and the server's slow commands during it."""
    windows = result.get("phase_windows")
    times = (result.get("poll") or {}).get("complete_at") or []
    if not windows:
        return
    longest: dict = {}
    for before, after in zip(times, times[1:]):
        # Every phase the gap overlaps (a phase of a few ms, the swap, lies inside one gap or two).
        phases = [name for name, (start, end) in windows.items() if start < after and before < end] or ["-"]
        for phase in phases:
            longest[phase] = max(longest.get(phase, 0.0), after - before)
    order = sorted(windows, key=lambda name: windows[name][0]) + ["-"]
    if "side_by_side" in windows:
        # What a side_by_side migration's first run (no finish) costs the reader, apart from the finish.
        stop = windows["side_by_side"][0]
        first = [b - a for a, b in zip(times, times[1:]) if b <= stop]
        later = [b - a for a, b in zip(times, times[1:]) if b > stop]
        print(
            f"  {tool} run {run}: longest gap until the side_by_side stop {max(first or [0]) * 1000:.0f} ms, "
            f"from it through the finish {max(later or [0]) * 1000:.0f} ms"
        )
    took = ", ".join(f"{name} {result['phases'].get(name, 0.0):.2f}" for name in order[:-1])
    print(f"  {tool} run {run}: seconds by phase: {took}")
    gaps = ", ".join(f"{name} {longest[name] * 1000:.0f}" for name in order if name in longest)
    print(f"  {tool} run {run}: longest gap overlapping each phase (ms; '-': none): {gaps}")
    slow: dict = {}
    for start, micros, command in result.get("slow") or []:
        # SLOWLOG stamps whole seconds: the phase that overlaps that second most.
        entry = slow.setdefault((_phase_of_second(windows, start), command), [0, 0])
        entry[0], entry[1] = entry[0] + 1, max(entry[1], micros)
    listed = ", ".join(
        f"{phase} {command} x{count} (max {micros / 1000:.0f})"
        for (phase, command), (count, micros) in sorted(slow.items(), key=lambda item: order.index(item[0][0]))
    )
    print(f"  {tool} run {run}: server commands over {SLOW_MICROSECONDS // 1000} ms by phase (ms): {listed or 'none'}")


def _print_rewrite_figures(scenario: dict, rows: dict) -> None:
    """Failed reads, server CPU, and for ours the estimates beside the measured duration and memory peak."""
    if scenario["tools"] not in (REWRITE_TOOLS, ONLINE_TOOLS, RENAME_TOOLS, VALIDATE_TOOLS):
        return
    print(
        f"{'tool':<20}{'failed reads':>13}{'server CPU s':>14}{'mem peak MB':>13}{'estimated MB':>14}"
        f"{'est. online s':>15}{'est. drop s':>13}"
    )
    for tool in [t for t in scenario["tools"] if t in rows]:
        results = [r for r in rows[tool] if "error" not in r]
        if not results:
            continue

        def middle(key, scale=1.0, results=results):
            values = [r[key] / scale for r in results if r.get(key) is not None]
            return statistics.median(values) if values else None

        failed = statistics.median([r["poll"].get("failed_reads", 0) for r in results if r.get("poll")] or [0])
        print(
            f"{tool:<20}{failed:>13.0f}{fmt(middle('server_cpu_seconds')):>14}"
            f"{fmt(middle('memory_peak_above_start', 1e6), '.1f'):>13}{fmt(middle('estimated_peak_bytes', 1e6), '.1f'):>14}"
            f"{fmt(middle('estimated_online_seconds'), '.1f'):>15}{fmt(middle('estimated_drop_recreate_seconds'), '.1f'):>13}"
        )
    for tool in [t for t in scenario["tools"] if t in rows]:
        for run, result in enumerate(rows[tool], 1):
            _print_phases(tool, run, result)


def _variant_label(variant: tuple) -> str:
    return f" [search module: {' '.join(variant)}]" if variant else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=DEFAULT, help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every document count (0.1: quick run)")
    parser.add_argument("--runs", type=int, default=1, help="measurements per tool (median)")
    parser.add_argument(
        "--tools",
        type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
        default=[],
        help="only these tools of each scenario (e.g. ours-online,ours-w1); default: all",
    )
    parser.add_argument(
        "--search-module-args",
        dest="variants",
        action="append",
        type=lambda text: tuple(text.split()),
        help="extra load arguments of the search module, e.g. 'BG_INDEX_SLEEP_GAP 10'; repeat it to measure "
        "each variant in the same run ('' is the default server); default: the default server only",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--poller", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.poller:
        return poller_main(args.poller)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    variants = list(dict.fromkeys(args.variants or [()]))
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or args.scale <= 0 or args.runs < 1:
        parser.error(f"unknown scenario(s) {unknown}" if unknown else "--scale and --runs must be positive")
    try:
        peer = metadata.version("redisvl")
    except metadata.PackageNotFoundError:
        print("migrate_scenarios: cannot run: redisvl is not installed (make bench-migrate)", file=sys.stderr)
        return 2
    try:
        with RedisSearchServer() as server:
            probe = redis.Redis.from_url(server.url, protocol=2)
            print(f"migrate_scenarios: {environment(probe, peer)}; scale {args.scale}, runs {args.runs}")
            probe.close()
        began, failed, memory = time.perf_counter(), False, {}
        for name in names:
            scenario = SCENARIOS[name]
            docs = max(int(scenario["docs"] * args.scale), 1000)
            rows = {variant: {} for variant in variants}
            for run in range(args.runs):
                chosen = [t for t in scenario["tools"] if not args.tools or t in args.tools]
                tools = chosen if run % 2 == 0 else chosen[::-1]
                # Variants interleaved tool by tool: on a loaded machine, each meets the same load.
                for tool in tools:
                    for variant in variants:
                        result = measure(scenario, tool, docs, args.seed, variant)
                        rows[variant].setdefault(tool, []).append(result)
                        print(
                            f"  {name}{_variant_label(variant)} {tool} run {run + 1}: apply "
                            f"{fmt(result.get('apply_seconds'))} s, read downtime "
                            f"{fmt((result.get('poll') or {}).get('longest_gap_seconds'))} s, BG_INDEX_SLEEP_GAP "
                            f"{result.get('bg_index_sleep_gap', '?')}"
                            + (f", {result['error']}" if "error" in result else "")
                            + (f", WRONG: {result['problems'][:2]}" if result.get("problems") else ""),
                            flush=True,
                        )
            for variant in variants:
                figures = print_scenario(name, scenario, docs, rows[variant], variant)
                failed = failed or any(not f["ok"] for tool, f in figures.items() if tool.startswith("ours"))
                if "ours-w1" in figures and scenario["dims"] == 64:
                    memory[docs] = figures["ours-w1"]["rss"]
        if len(memory) >= 2:
            low, high = min(memory), max(memory)
            print(
                f"\nours peak RSS (main): {memory[low]:.1f} MB at {low:,} docs, {memory[high]:.1f} MB at {high:,}: "
                f"grows {memory[high] - memory[low]:+.1f} MB (target: <= 100 MB, grows <= 10 MB)"
            )
        print(
            f"\nTotal {time.perf_counter() - began:.0f} s. Wall-clock times on a shared machine: ratios within one "
            "run are what counts."
        )
        return 1 if failed else 0
    except (BenchError, ServerError) as err:
        print(f"migrate_scenarios: cannot run: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
