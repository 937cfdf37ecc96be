"""The backup pass across worker processes: the same files, checks and samples as one process."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy
import pytest
import redis
from datasets import dump_hashes, wait_for

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import migrate
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases import backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.backup import (
    BatchWork,
    Findings,
    read_pass,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
    MigrateOptions,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.format import (
    decode_records,
    iter_blocks,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import (
    BackupStore,
    read_header,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.workers import OrderedPool
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    MigrationFailed,
    PreflightFailed,
    SchemaInvalid,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import create_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import index_exists
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import parse_patch
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.rewrites import (
    DocumentRewrites,
    Quantize,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.fitting import (
    RangeStats,
    fit_quant_params,
)

DRIVER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support", "migrate_driver.py")
DOCS, DIMS, BATCH = 300, 16, 40  # 8 batches
QUANT16 = {"update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}]}
RENAME = {"rename_fields": [{"old_name": "title", "new_name": "headline"}]}
DEFINING_INFO = ("index_name", "index_options", "index_definition", "attributes", "num_docs")


def load(client, docs=DOCS, seed=7):
    rng = numpy.random.default_rng(seed)
    vectors = rng.standard_normal((docs, DIMS)).astype(numpy.float32)
    client.execute_command(
        "FT.CREATE",
        "idx",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "doc:",
        "SCHEMA",
        "title",
        "TEXT",
        "vec",
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
    for i in range(docs):
        pipe.hset(f"doc:{i}", mapping={"title": f"document {i}", "vec": vectors[i].tobytes()})
    pipe.execute()
    wait_for(client, "idx", docs)
    return vectors


def make_plan(client, changes):
    return create_plan(client, "idx", patch=parse_patch({"version": 1, "changes": changes}))


def run(client, url, plan, backup_dir, connect=None, **options):
    options.setdefault("batch_size", BATCH)
    options.setdefault("accept_data_loss", True)
    return migrate(
        client, connect or (lambda: redis.Redis.from_url(url)), plan, str(backup_dir), MigrateOptions(**options)
    )


def defining_info(client, name="idx"):
    reply = client.execute_command("FT.INFO", name)
    info = dict(zip(reply[::2], reply[1::2]))
    return {key: info.get(key.encode()) for key in DEFINING_INFO}


def decoded(store, name):
    """The file's bytes, and its records block by block as (key, entries)."""
    with open(store.path(name), "rb") as stream:
        content = stream.read()
    blocks = [
        [(r.key, r.entries) for _i, r in decode_records(b.payload, b.record_count, b.block_no)]
        for b in iter_blocks(io.BytesIO(content))
    ]
    return content, blocks


def backup_of(client, url, plan, backup_dir, workers):
    outcome = run(client, url, plan, backup_dir, workers=workers)
    assert outcome.report.result == "succeeded"
    store = BackupStore.for_plan(str(backup_dir), plan.checksum)
    return outcome, store


def no_workers_left():
    assert multiprocessing.active_children() == []


@pytest.fixture
def pools(monkeypatch):
    """The worker counts of the pools the backup starts."""
    started = []

    class Recorded(backup.OrderedPool):
        def __init__(self, workers, *args, **kwargs):
            started.append(workers)
            super().__init__(workers, *args, **kwargs)

    monkeypatch.setattr(backup, "OrderedPool", Recorded)
    return started


# --- the same backup, byte for byte ------------------------------------------------------------------


def test_two_workers_write_the_same_backup_as_one(clean_redis, redis_url, tmp_path, pools):
    vectors = load(clean_redis)
    before = dump_hashes(clean_redis, b"doc:*")
    plan = make_plan(clean_redis, {**RENAME, **QUANT16})
    _one, single = backup_of(clean_redis, redis_url, plan, tmp_path / "w1", workers=1)
    assert pools == []

    clean_redis.flushall()
    load(clean_redis)
    assert dump_hashes(clean_redis, b"doc:*") == before
    outcome, double = backup_of(clean_redis, redis_url, plan, tmp_path / "w2", workers=2)
    assert pools == [2]
    no_workers_left()

    assert double.header.data_blocks == single.header.data_blocks == 8
    for name in ("data.bin", "staged.bin"):
        content_1, blocks_1 = decoded(single, name)
        content_2, blocks_2 = decoded(double, name)
        assert len(blocks_2) == 8 and blocks_2 == blocks_1, name
        assert content_2 == content_1, name
    for name in (
        "data_chain",
        "data_records",
        "data_bytes",
        "staged_chain",
        "staged_records",
        "staged_bytes",
        "quality",
    ):
        assert getattr(double.header, name) == getattr(single.header, name), name
    assert double.verify().ok and double.verify_staged().ok
    keys = [key for block in decoded(double, "data.bin")[1] for key, _entries in block]
    assert sorted(keys) == sorted(before) and len(keys) == DOCS

    # The migrated documents hold exactly the float16 conversion of their originals.
    after = dump_hashes(clean_redis, b"doc:*")
    for i in range(DOCS):
        fields = after[f"doc:{i}".encode()]
        assert fields[b"vec"] == vectors[i].astype(numpy.float16).tobytes(), f"doc:{i}"
        assert fields[b"headline"] == f"document {i}".encode() and b"title" not in fields
    assert outcome.report.validation["passed"]
    assert read_header(double.directory).phases["backup"].counters["documents"] == DOCS


def test_two_workers_write_the_same_json_backup_as_one(clean_redis, redis_url, tmp_path, pools):
    def load_json():
        clean_redis.execute_command(
            "FT.CREATE",
            "idx",
            "ON",
            "JSON",
            "PREFIX",
            "1",
            "j:",
            "SCHEMA",
            "$.title",
            "AS",
            "title",
            "TEXT",
            "$.n",
            "AS",
            "n",
            "NUMERIC",
        )
        pipe = clean_redis.pipeline(transaction=False)
        for i in range(DOCS):
            pipe.execute_command("JSON.SET", f"j:{i}", "$", json.dumps({"title": f"document {i} é", "n": i}))
        pipe.execute()
        wait_for(clean_redis, "idx", DOCS)

    load_json()
    plan = make_plan(clean_redis, RENAME)
    _one, single = backup_of(clean_redis, redis_url, plan, tmp_path / "w1", workers=1)
    clean_redis.flushall()
    load_json()
    _two, double = backup_of(clean_redis, redis_url, plan, tmp_path / "w2", workers=2)
    assert pools == [2]
    assert double.header.data_blocks == 8 and decoded(double, "data.bin") == decoded(single, "data.bin")
    assert double.header.data_chain == single.header.data_chain and double.verify().ok
    assert json.loads(clean_redis.execute_command("JSON.GET", "j:7", "$"))[0] == {"headline": "document 7 é", "n": 7}


def test_two_workers_over_a_single_batch_stay_in_process(clean_redis, redis_url, tmp_path, pools):
    load(clean_redis, docs=30)
    plan = make_plan(clean_redis, QUANT16)
    _outcome, store = backup_of(clean_redis, redis_url, plan, tmp_path, workers=2)
    assert pools == []
    assert store.header.data_blocks == 1 and store.verify().ok and store.verify_staged().ok


# --- refusals before the drop --------------------------------------------------------------------


def test_malformed_vector_in_a_later_batch_is_refused_before_the_drop(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    plan = make_plan(clean_redis, QUANT16)
    clean_redis.hset("doc:bad", mapping={"title": "bad", "vec": b"\x01" * 20})  # after planning; enumerated last
    before, info = dump_hashes(clean_redis), defining_info(clean_redis)
    with pytest.raises(PreflightFailed, match="1 document\\(s\\) hold vectors of the wrong size.*doc:bad") as caught:
        run(clean_redis, redis_url, plan, tmp_path, workers=2)
    assert "phase backup" in str(caught.value) and "nothing was changed" in str(caught.value)
    no_workers_left()
    assert index_exists(clean_redis, "idx") and defining_info(clean_redis) == info
    assert dump_hashes(clean_redis) == before


def test_overflow_in_a_later_batch_is_refused_before_the_drop(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    plan = make_plan(clean_redis, QUANT16)
    clean_redis.hset("doc:huge", mapping={"title": "huge", "vec": numpy.full(DIMS, 1e6, numpy.float32).tobytes()})
    before, info = dump_hashes(clean_redis), defining_info(clean_redis)
    with pytest.raises(PreflightFailed, match="16 value\\(s\\) of 'vec' are too large"):
        run(clean_redis, redis_url, plan, tmp_path, workers=2)
    no_workers_left()
    assert defining_info(clean_redis) == info and dump_hashes(clean_redis) == before


def test_a_worker_that_cannot_connect_fails_the_backup_clearly(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    before = dump_hashes(clean_redis)
    plan = make_plan(clean_redis, QUANT16)
    closed = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    with pytest.raises(MigrationFailed, match="phase backup: backup worker 1 failed: lost the connection to Redis"):
        run(clean_redis, redis_url, plan, tmp_path, connect=lambda: closed, workers=2)
    no_workers_left()
    assert dump_hashes(clean_redis) == before and index_exists(clean_redis, "idx")
    outcome = run(clean_redis, redis_url, plan, tmp_path, workers=2)  # the same call again, connected
    assert outcome.report.result == "succeeded"


# --- int8/uint8: the ranges measured by the workers, merged --------------------------------------


def test_merged_range_statistics_fit_the_same_params():
    rng = numpy.random.default_rng(3)
    values = (rng.standard_normal((4000, 24)) * rng.uniform(0.1, 3.0, 24)).astype(numpy.float32)
    values[17, 3] = 41.5  # an outlier the percentile clips
    whole = RangeStats().update_buffers([v.tobytes() for v in values], "float32", 24)
    parts = [RangeStats(), RangeStats()]
    for number, start in enumerate(range(0, 4000, 250)):  # round-robin batches, like the workers get them
        parts[number % 2].update_buffers([v.tobytes() for v in values[start : start + 250]], "float32", 24)
    merged = RangeStats().merge(parts[0]).merge(parts[1])
    assert merged.to_dict() == whole.to_dict()
    for target, metric in (("int8", "l2"), ("int8", "ip"), ("int8", "cosine"), ("uint8", "l2")):
        assert fit_quant_params(target, metric, merged, source_datatype="float32") == fit_quant_params(
            target, metric, whole, source_datatype="float32"
        )


@pytest.mark.parametrize("target", ["int8", "uint8"])
def test_int8_read_pass_in_two_workers_matches_one_process(clean_redis, redis_url, target):
    vectors = load(clean_redis, docs=700)
    rewrites = DocumentRewrites(
        quantize=[
            Quantize(
                field="vec",
                location="vec",
                source_location="vec",
                dims=DIMS,
                source="float32",
                target=target,
                metric="l2",
            )
        ]
    )
    work = BatchWork.of(rewrites)
    assert not work.inline  # staged by the second pass, once the scale is known
    keys = [f"doc:{i}".encode() for i in range(700)]

    def one_pass(workers):
        ranges, findings, written = {"vec": RangeStats()}, Findings(["vec"]), []
        batches = iter([keys[i : i + 60] for i in range(0, 700, 60)])
        read_pass(
            clean_redis,
            lambda: redis.Redis.from_url(redis_url),
            batches,
            work,
            ranges,
            findings,
            workers,
            lambda result: written.append((result.records, result.staged)),
        )
        return ranges["vec"], findings, written

    stats_1, findings_1, written_1 = one_pass(1)
    stats_2, findings_2, written_2 = one_pass(2)
    no_workers_left()
    assert written_2 == written_1 and all(staged is None for _records, staged in written_2)
    assert stats_2.to_dict() == stats_1.to_dict() and stats_1.count == 700 * DIMS
    assert fit_quant_params(target, "l2", stats_2, source_datatype="float32") == fit_quant_params(
        target, "l2", stats_1, source_datatype="float32"
    )
    assert findings_2.samples == findings_1.samples and len(findings_1.samples["vec"]) == 700
    assert findings_1.samples["vec"][:3] == [v.tobytes() for v in vectors[:3]]


def test_quality_sample_keeps_the_first_vectors_in_enumeration_order(clean_redis, redis_url, monkeypatch):
    monkeypatch.setattr(backup, "QUALITY_SAMPLE", 130)  # full in the middle of the fourth batch
    load(clean_redis, docs=400)
    work = BatchWork.of(
        DocumentRewrites(
            quantize=[
                Quantize(
                    field="vec",
                    location="vec",
                    source_location="vec",
                    dims=DIMS,
                    source="float32",
                    target="float16",
                    metric="l2",
                )
            ]
        )
    )
    keys = [f"doc:{i}".encode() for i in range(400)]
    findings = Findings(["vec"])
    read_pass(
        clean_redis,
        lambda: redis.Redis.from_url(redis_url),
        iter([keys[i : i + 40] for i in range(0, 400, 40)]),
        work,
        {},
        findings,
        3,
        lambda result: None,
    )
    assert findings.samples["vec"] == [clean_redis.hget(key, "vec") for key in keys[:130]]


# --- the pool itself -----------------------------------------------------------------------------


def _slow_double(_state, task):
    time.sleep(0.001 * (task % 7))  # workers finish out of order
    return task * 2


def test_pool_returns_results_in_submission_order_with_bounded_tasks_out():
    sent = []

    def tasks():
        for task in range(200):
            sent.append(task)
            yield task

    with OrderedPool(3, lambda: None, _slow_double, lambda _state: "done", depth=2) as pool:
        found = []
        for result in pool.map(tasks()):
            found.append(result)
            assert len(sent) - len(found) <= 3 * 2
        assert found == [task * 2 for task in range(200)]
        assert pool.finish() == ["done"] * 3
    no_workers_left()


def test_pool_names_a_worker_error_and_keeps_a_library_error_whole():
    def failing(_state, task):
        if task == 5:
            raise ValueError("bad value")
        if task == 7:
            raise SchemaInvalid("wrong schema", hint="fix it")
        return task

    with pytest.raises(MigrationFailed, match="backup worker 2 failed: ValueError: bad value"):
        with OrderedPool(4, lambda: None, failing, lambda _state: None, name="backup") as pool:
            list(pool.map(range(10)))
    no_workers_left()
    with pytest.raises(SchemaInvalid, match="backup worker 4: wrong schema; fix it"):
        with OrderedPool(4, lambda: None, failing, lambda _state: None, name="backup") as pool:
            list(pool.map(iter([0, 1, 2, 7])))
    no_workers_left()


def test_pool_reports_a_worker_that_died():
    def dying(_state, task):
        if task == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return task

    with pytest.raises(MigrationFailed, match="backup worker 2 died without reporting \\(exit code -9\\)"):
        with OrderedPool(2, lambda: None, dying, lambda _state: None, name="backup") as pool:
            list(pool.map(range(10)))
    no_workers_left()


# --- killed mid-way, then the same call again ----------------------------------------------------


def driver_processes(marker):
    """Processes (the driver or its forked workers) whose command line carries `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                if marker.encode() in stream.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("failpoint", ["backup:2", "backup:5"])
def test_killed_in_a_parallel_backup_then_run_again(clean_redis, redis_url, tmp_path, failpoint):
    vectors = load(clean_redis)
    before = dump_hashes(clean_redis)
    plan = make_plan(clean_redis, {**RENAME, **QUANT16})
    write_plan(plan, str(tmp_path / "plan.yaml"))
    args = {
        "url": redis_url,
        "plan": str(tmp_path / "plan.yaml"),
        "backup_dir": str(tmp_path / "b"),
        "options": {"batch_size": BATCH, "accept_data_loss": True, "workers": 2},
    }
    killed = subprocess.run(
        [sys.executable, DRIVER, json.dumps(args)],
        env=dict(os.environ, INDEXOPS_FAILPOINT=failpoint),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    deadline = time.monotonic() + 10
    while driver_processes(str(tmp_path / "plan.yaml")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver_processes(str(tmp_path / "plan.yaml")) == [], "a worker outlived its parent"
    assert dump_hashes(clean_redis) == before and index_exists(clean_redis, "idx")

    outcome = run(clean_redis, redis_url, plan, tmp_path / "b", workers=2)  # the same call again
    assert outcome.changed and outcome.report.result == "succeeded"
    store = BackupStore.for_plan(str(tmp_path / "b"), plan.checksum)
    assert store.verify().ok and store.header.data_records == DOCS
    after = dump_hashes(clean_redis)
    for i in range(DOCS):
        assert after[f"doc:{i}".encode()] == {
            b"headline": f"document {i}".encode(),
            b"vec": vectors[i].astype(numpy.float16).tobytes(),
        }
    assert run(clean_redis, redis_url, plan, tmp_path / "b", workers=2).changed is False
