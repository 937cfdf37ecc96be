"""Engine correctness that outside suites found (issue 18, part A), each reproduced on the real server.

Every test here failed before its fix: it asserts what Redis and the backup hold afterwards.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal

import numpy
import pytest
import redis
import yaml
from datasets import wait_for
from module_runner import run_module
from restartable_server import RestartableServer
from test_migrate_safety import f16, planned, server_state
from test_redis_index_migrate import QUANT16, dump_hashes, load, run, run_killed

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import migrate
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
    MigrateOptions,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import BackupStore
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import failpoints
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    MigrationFailed,
    PreflightFailed,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import (
    real_name,
    snapshot_index,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback
from ansible_collections.indexops.redis_search.plugins.modules import (
    redis_index_batch,
    redis_index_migrate,
    redis_index_validate,
)

DIMS = 16


def load_unnormalised(client, docs=300, metric="IP", algorithm="FLAT", seed=11):
    """Hashes whose vectors' norms spread from 0.01 to 100 (log-uniform): under inner product a short vector
    is far from being its own nearest neighbour (a longer one pointing about the same way scores higher)."""
    rng = numpy.random.default_rng(seed)
    norms = numpy.exp(rng.uniform(numpy.log(0.01), numpy.log(100.0), (docs, 1)))
    vectors = (rng.standard_normal((docs, DIMS)) * norms).astype(numpy.float32)
    params = ["TYPE", "FLOAT32", "DIM", str(DIMS), "DISTANCE_METRIC", metric]
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
        algorithm,
        str(len(params)),
        *params,
    )
    pipe = client.pipeline(transaction=False)
    for i in range(docs):
        pipe.hset(f"doc:{i}", mapping={"title": f"document {i}", "vec": vectors[i].tobytes()})
    pipe.execute()
    wait_for(client, "idx", docs)
    return vectors


def ip_self_misses(vectors) -> int:
    """How many documents are not among the 10 nearest to their own vector under IP (the old check's misses)."""
    scores = vectors.astype(numpy.float64) @ vectors.astype(numpy.float64).T
    kth = numpy.sort(scores, axis=1)[:, -10]
    return int((numpy.diag(scores) < kth).sum())


# --- 1. a drop_recreate migration that ends on DISTANCE_METRIC IP validates correctly -------------------------


@pytest.mark.parametrize("algorithm", ["FLAT", "HNSW"])
def test_quantizing_an_ip_index_with_unnormalised_vectors_validates(
    clean_redis, redis_url, tmp_path, capsys, algorithm
):
    vectors = load_unnormalised(clean_redis, algorithm=algorithm)
    assert ip_self_misses(vectors) > 200  # of 300: the data the old check could not judge
    plan, _path = planned(
        clean_redis,
        tmp_path,
        {"update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}]},
        mode="drop_recreate",
    )
    outcome = run(clean_redis, redis_url, plan, tmp_path / "b")
    validation = outcome.report.validation
    assert outcome.report.result == "succeeded" and validation["passed"], validation
    assert validation["knn_checked"] == 10 and validation["knn_missed"] == []
    # Most sampled documents rank below longer vectors on their own query; each was judged, none unjudged.
    assert validation["knn_outranked"] >= 5 and validation["knn_unjudged"] == []
    # What Redis and the backup hold: every vector is the float16 conversion of its backed-up original.
    store = BackupStore.for_plan(str(tmp_path / "b"), plan.checksum)
    originals = {r.key: r.value(b"vec") for _b, records in store.iter_blocks() for r in records}
    assert len(originals) == 300
    for key, original in originals.items():
        assert clean_redis.hget(key, "vec") == numpy.frombuffer(original, numpy.float32).astype(numpy.float16).tobytes()
    assert snapshot_index(clean_redis, "idx").snapshot.index_schema.field("vec").attrs.distance_metric == "ip"
    # redis_index_validate judges the same way, read-only.
    before = server_state(clean_redis)
    result = run_module(
        redis_index_validate,
        {"redis_url": redis_url, "plan_file": str(tmp_path / "plan.yaml"), "backup_dir": str(tmp_path / "b")},
        capsys,
    )
    assert result["passed"] and result["validation"]["knn_missed"] == []
    assert server_state(clean_redis) == before


def test_moving_to_ip_with_a_rewrite_validates(clean_redis, redis_url, tmp_path):
    vectors = load_unnormalised(clean_redis, metric="COSINE")
    assert ip_self_misses(vectors) > 200
    plan, _path = planned(
        clean_redis,
        tmp_path,
        {
            "rename_fields": [{"old_name": "title", "new_name": "headline"}],
            "update_fields": [{"name": "vec", "attrs": {"distance_metric": "ip"}}],
        },
        mode="drop_recreate",
    )
    assert plan.mode == "drop_recreate"
    outcome = run(clean_redis, redis_url, plan, tmp_path / "b")
    validation = outcome.report.validation
    assert outcome.report.result == "succeeded" and validation["passed"], validation
    assert validation["knn_checked"] == 10 and validation["knn_missed"] == [] and validation["knn_outranked"] >= 5
    for i in range(300):
        assert clean_redis.hget(f"doc:{i}", "vec") == vectors[i].tobytes()
        assert clean_redis.hget(f"doc:{i}", "headline") == f"document {i}".encode()
        assert clean_redis.hget(f"doc:{i}", "title") is None


# --- 2. a server with a low MAXSEARCHRESULTS: the migration and redis_index_validate work within it -----------


@pytest.fixture
def max_search_results(clean_redis):
    """Set the server's MAXSEARCHRESULTS for one test; put back afterwards."""
    old = clean_redis.execute_command("FT.CONFIG", "GET", "MAXSEARCHRESULTS")[0][1]

    def set_to(value: int) -> None:
        clean_redis.execute_command("FT.CONFIG", "SET", "MAXSEARCHRESULTS", str(value))

    yield set_to
    clean_redis.execute_command("FT.CONFIG", "SET", "MAXSEARCHRESULTS", old)


def test_low_max_search_results_migrates_and_validates(clean_redis, redis_url, tmp_path, capsys, max_search_results):
    load(clean_redis, docs=120)
    before = dump_hashes(clean_redis, b"doc:*")
    max_search_results(10)
    plan, _path = planned(clean_redis, tmp_path, QUANT16, mode="drop_recreate")
    assert len(plan.source.key_sample) == 20  # more keys than one search may return
    outcome = run(clean_redis, redis_url, plan, tmp_path / "b")
    validation = outcome.report.validation
    assert outcome.report.result == "succeeded" and validation["passed"], validation
    assert validation["keys_checked"] == 20 and validation["knn_checked"] == 10 and validation["knn_missed"] == []
    assert dump_hashes(clean_redis, b"doc:*") == {k: {**v, b"vec": f16(v[b"vec"])} for k, v in before.items()}
    result = run_module(
        redis_index_validate,
        {"redis_url": redis_url, "plan_file": str(tmp_path / "plan.yaml"), "backup_dir": str(tmp_path / "b")},
        capsys,
    )
    assert result["passed"] and result["validation"]["keys_checked"] == 20
    # A limit below the KNN depth: the self-queries ask for no more rows than the server allows.
    max_search_results(3)
    result = run_module(
        redis_index_validate,
        {"redis_url": redis_url, "plan_file": str(tmp_path / "plan.yaml"), "backup_dir": str(tmp_path / "b")},
        capsys,
    )
    assert result["passed"] and result["validation"]["knn_missed"] == []


def test_low_max_search_results_online(clean_redis, redis_url, tmp_path, max_search_results):
    load(clean_redis, docs=120)
    max_search_results(10)
    plan, _path = planned(clean_redis, tmp_path, {"update_fields": [{"name": "vec", "attrs": {"algorithm": "hnsw"}}]})
    assert plan.mode == "online"
    outcome = run(clean_redis, redis_url, plan, tmp_path / "b")
    assert outcome.report.result == "succeeded" and outcome.report.validation["passed"]
    assert outcome.report.validation["keys_checked"] == 20 and outcome.report.validation["keys_missing"] == []
    assert real_name(clean_redis, "idx") == plan.online.index


def test_max_search_results_zero_is_refused_before_anything(clean_redis, redis_url, tmp_path, max_search_results):
    load(clean_redis, docs=60)
    plan, _path = planned(clean_redis, tmp_path, QUANT16)
    max_search_results(0)
    before = server_state(clean_redis)
    with pytest.raises(PreflightFailed) as err:
        run(clean_redis, redis_url, plan, tmp_path / "b")
    assert "MAXSEARCHRESULTS is 0" in err.value.message and "nothing in Redis was changed" in err.value.message
    assert "FT.CONFIG SET MAXSEARCHRESULTS" in err.value.hint
    assert server_state(clean_redis) == before


# --- 3. resuming after Redis went back to an older snapshot, with a field rename and quantization ---------------


@pytest.fixture
def rdb_server():
    """A private server that keeps its data in an RDB file only (SAVE), SIGKILLed and started again from it."""
    server = RestartableServer()
    server.extra_args = ()  # RDB only: what a restart loads is the last SAVE
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("first, second", [(2, 5), (5, 2)])
def test_resume_after_an_older_snapshot_refuses_with_nothing_written(rdb_server, tmp_path, first, second):
    """Field rename and quantization (8 blocks). The run is killed after `first` quantize blocks and the server
    saves its RDB; the resumed run is killed after `second` more (blocks 0-6 in the ledger); Redis restarts from
    that RDB. A block's script is sent before the previous block is ledgered, so the RDB holds blocks 0-`first`
    converted: (2, 5) loses blocks 3-6, (5, 2) only block 6 - the last one the ledger recorded, which a sample
    spread over the run (blocks 0, 2, 5, 7) does not read."""
    client = redis.Redis.from_url(rdb_server.url, protocol=2)
    load(client, docs=400)  # 8 blocks of 50
    originals = dump_hashes(client, b"doc:*")
    plan, path = planned(
        client,
        tmp_path,
        {"rename_fields": [{"old_name": "title", "new_name": "headline"}], **QUANT16},
        mode="drop_recreate",
    )
    assert run_killed(rdb_server.url, path, tmp_path / "b", f"quantize:{first}").returncode == -signal.SIGKILL
    client.save()
    shutil.copy(os.path.join(rdb_server.data_dir, "dump.rdb"), tmp_path / "older.rdb")
    assert run_killed(rdb_server.url, path, tmp_path / "b", f"quantize:{second}").returncode == -signal.SIGKILL
    store = BackupStore.for_plan(str(tmp_path / "b"), plan.checksum)
    assert store.done_blocks("quantize") == set(range(7)) and store.header.phases["move_fields"].done
    rdb_server.crash()
    shutil.copy(tmp_path / "older.rdb", os.path.join(rdb_server.data_dir, "dump.rdb"))
    rdb_server.restart()
    client = redis.Redis.from_url(rdb_server.url, protocol=2)
    # The last block the ledger recorded holds moved but unconverted vectors again.
    lost = [r.key for block_no, records in store.iter_blocks() if block_no == 6 for r in records]
    assert all(client.hget(key, "vec") == originals[key][b"vec"] and client.hget(key, "headline") for key in lost)
    before = server_state(client)
    backup_before = {name: open(store.path(name), "rb").read() for name in os.listdir(store.directory)}
    with pytest.raises(PreflightFailed) as err:
        run(client, rdb_server.url, plan, tmp_path / "b")
    assert "cannot resume" in err.value.message and "older snapshot" in err.value.message
    assert "before phase(s) quantize" in err.value.message
    assert "redis_index_rollback" in err.value.hint
    # Nothing written: not a key, not an index, and the backup holds what it held (but for the failure note).
    assert server_state(client) == before and client.execute_command("FT._LIST") == []
    backup_after = {name: open(store.path(name), "rb").read() for name in os.listdir(store.directory)}
    assert {n: v for n, v in backup_after.items() if n not in ("header.json", "report.yaml")} == {
        n: v for n, v in backup_before.items() if n not in ("header.json", "report.yaml")
    }
    # The way out: roll back, then apply again.
    rollback(client, choose_backup(str(tmp_path / "b"), "idx"))
    assert dump_hashes(client, b"doc:*") == originals
    outcome = run(client, rdb_server.url, plan, tmp_path / "b")
    assert outcome.report.result == "succeeded" and outcome.report.validation["passed"]
    expected = {k: {b"headline": v[b"title"], b"tag": v[b"tag"], b"vec": f16(v[b"vec"])} for k, v in originals.items()}
    assert dump_hashes(client, b"doc:*") == expected


# --- 4. the source changed during an online build: the swap refuses, the source intact ------------------------

CHANGES = {
    "alter": lambda client: client.execute_command("FT.ALTER", "idx", "SCHEMA", "ADD", "added", "NUMERIC"),
    "alias_moved": lambda client: client.execute_command("FT.ALIASUPDATE", "live", "other"),
    "alias_deleted": lambda client: client.execute_command("FT.ALIASDEL", "live"),
}


@pytest.mark.parametrize("when", [("validate", "start"), ("swap", 0)], ids=["during_build", "before_transaction"])
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_source_changed_during_an_online_build_is_not_swapped(
    clean_redis, redis_url, tmp_path, monkeypatch, change, when
):
    load(clean_redis, docs=120)
    clean_redis.execute_command(
        "FT.CREATE", "other", "ON", "HASH", "PREFIX", "1", "elsewhere:", "SCHEMA", "n", "NUMERIC"
    )
    clean_redis.execute_command("FT.ALIASADD", "live", "idx")
    plan, _path = planned(
        clean_redis, tmp_path, {"update_fields": [{"name": "vec", "attrs": {"algorithm": "hnsw"}}]}, aliases=["live"]
    )
    assert plan.mode == "online" and plan.online.names == ["idx", "live"]
    real_hit = failpoints.hit

    def hit(phase, point):
        if (phase, point) == when:  # someone else, while the migration runs
            CHANGES[change](clean_redis)
        real_hit(phase, point)

    monkeypatch.setattr(failpoints, "hit", hit)
    keys_before = server_state(clean_redis)[0]
    with pytest.raises(MigrationFailed) as err:
        run(clean_redis, redis_url, plan, tmp_path / "b")
    assert "changed while idx--v2 was built" in err.value.message and "nothing was swapped" in err.value.message
    if when == ("swap", 0):  # after the last check: the swap script's own guard refused
        assert (
            "the definition of idx changed (FT.ALTER" if change == "alter" else "alias live no longer leads to idx"
        ) in err.value.message
    # The source serves as it was left: its definition (with the FT.ALTER), its alias where someone put it.
    assert sorted(clean_redis.execute_command("FT._LIST")) == [b"idx", b"other"]
    fields = [f.name for f in snapshot_index(clean_redis, "idx").snapshot.index_schema.fields]
    assert fields == (["title", "tag", "vec", "added"] if change == "alter" else ["title", "tag", "vec"])
    expected_alias = {"alter": "idx", "alias_moved": "other", "alias_deleted": None}[change]
    assert real_name(clean_redis, "live") == expected_alias
    assert snapshot_index(clean_redis, "idx").snapshot.index_schema.field("vec").attrs.algorithm == "flat"
    assert server_state(clean_redis)[0] == keys_before
    # Run again, the same task is refused again: the source is no longer what was planned.
    monkeypatch.setattr(failpoints, "hit", real_hit)
    with pytest.raises((PreflightFailed, MigrationFailed), match="changed since the plan was made|no longer lead"):
        run(clean_redis, redis_url, plan, tmp_path / "b")
    assert sorted(clean_redis.execute_command("FT._LIST")) == [b"idx", b"other"]
    assert real_name(clean_redis, "live") == expected_alias


# --- benchmark_out: the run's timings and throughput, machine-readable ------------------------------------------


def read_yaml_file(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_migrate_writes_a_benchmark_record_of_the_run(clean_redis, redis_url, tmp_path, capsys):
    load(clean_redis, docs=300)
    _plan, path = planned(
        clean_redis,
        tmp_path,
        {"rename_fields": [{"old_name": "title", "new_name": "headline"}], **QUANT16},
        mode="drop_recreate",
    )
    out = tmp_path / "bench.yaml"
    args = {
        "redis_url": redis_url,
        "plan_file": str(path),
        "backup_dir": str(tmp_path / "b"),
        "accept_data_loss": True,
        "batch_size": 50,
        "workers": 2,
        "benchmark_out": str(out),
    }
    run_module(redis_index_migrate, args, capsys, check_mode=True)
    assert not out.exists()  # check mode writes nothing
    result = run_module(redis_index_migrate, args, capsys)
    report = result["report"]
    record = read_yaml_file(out)
    assert record["format"] == "indexops.redis_search/benchmark" and record["format_version"] == 1
    assert (record["kind"], record["result"], record["source_index"], record["mode"]) == (
        "migration",
        "succeeded",
        "idx",
        "drop_recreate",
    )
    assert record["documents"] == 300 and record["downtime_seconds"] == report["downtime_seconds"]
    assert list(record["phases"]) == list(report["phases"])
    for name, figures in record["phases"].items():
        assert figures["seconds"] == report["phases"][name]["seconds"], name
    backup_bytes = os.path.getsize(os.path.join(result["backup_path"], "data.bin"))
    phases = record["phases"]
    assert phases["backup"]["documents"] == 300 and phases["backup"]["bytes"] == backup_bytes
    for name in ("move_fields", "quantize"):
        assert phases[name]["documents"] == 300 and phases[name]["bytes"] == backup_bytes, name
    assert phases["wait"]["documents"] == 300 and phases["wait"]["bytes"] is None
    assert phases["drop"]["documents"] is None and phases["validate"]["documents"] is None
    for figures in phases.values():
        for amount, rate in (("documents", "documents_per_second"), ("bytes", "bytes_per_second")):
            if figures[amount] is not None and figures["seconds"] > 0:
                assert figures[rate] == pytest.approx(figures[amount] / figures["seconds"], abs=0.1)
    assert record["run_seconds"] >= sum(f["seconds"] for f in phases.values()) - 0.01
    # Peak RSS of this process (the module ran in it) and of the two workers it forked and waited for.
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert 20_000_000 < record["peak_rss"]["self_bytes"] <= own_peak
    assert record["peak_rss"]["children_bytes"] > 0
    # The same task again changes nothing, and leaves the record of the run that did.
    written = out.read_bytes()
    assert run_module(redis_index_migrate, args, capsys)["changed"] is False
    assert out.read_bytes() == written


def test_a_failed_migration_still_writes_its_benchmark(clean_redis, redis_url, tmp_path, monkeypatch):
    load(clean_redis, docs=100)
    plan, _path = planned(clean_redis, tmp_path, QUANT16, mode="drop_recreate")
    monkeypatch.setenv("INDEXOPS_FAILPOINT", "quantize:1:raise")
    with pytest.raises(MigrationFailed):
        migrate(
            clean_redis,
            lambda: redis.Redis.from_url(redis_url),
            plan,
            str(tmp_path / "b"),
            MigrateOptions(batch_size=50, accept_data_loss=True),
            benchmark_out=str(tmp_path / "bench.yaml"),
        )
    record = read_yaml_file(tmp_path / "bench.yaml")
    assert record["result"] == "failed" and record["phases"]["backup"]["documents"] == 100
    assert "quantize" in record["phases"] and "create" not in record["phases"]  # where it stopped


def test_batch_writes_a_benchmark_record_per_index(clean_redis, redis_url, tmp_path, capsys):
    for name, prefix in (("idx_a", "a:"), ("idx_b", "b:")):
        load(clean_redis, index=name, prefix=prefix, docs=100)
    run_module(
        redis_index_batch,
        {
            "redis_url": redis_url,
            "state": "planned",
            "pattern": "idx_*",
            "patch": {"version": 1, "changes": QUANT16},
            "plan_out": str(tmp_path / "batch.yaml"),
            "batch_size": 50,
        },
        capsys,
    )
    out = tmp_path / "bench.yaml"
    result = run_module(
        redis_index_batch,
        {
            "redis_url": redis_url,
            "state": "applied",
            "plan_file": str(tmp_path / "batch.yaml"),
            "backup_dir": str(tmp_path / "b"),
            "accept_data_loss": True,
            "benchmark_out": str(out),
        },
        capsys,
    )
    assert result["changed"]
    record = read_yaml_file(out)
    assert record["kind"] == "batch" and record["batch_id"] == result["batch_id"]
    assert sorted(record["indexes"]) == ["idx_a", "idx_b"]
    for name, entry in record["indexes"].items():
        assert entry["kind"] == "migration" and entry["result"] == "succeeded" and entry["source_index"] == name
        # Planned online (a batch plans as redis_index_plan does): the rewrite phases are expand, convert, contract.
        assert entry["mode"] == "online" and entry["phases"]["backup"]["documents"] == 100
        assert all(entry["phases"][phase]["documents"] == 100 for phase in ("expand", "convert", "contract"))
    assert record["run_seconds"] >= sum(e["run_seconds"] for e in record["indexes"].values()) - 0.01
    assert record["peak_rss"]["self_bytes"] > 0
