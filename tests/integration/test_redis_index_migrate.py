"""redis_index_migrate and the executor against the real server: every byte checked."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import numpy
import pytest
import redis
from datasets import dump_hashes, wait_for
from module_runner import run_module

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import migrate
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
    MigrateOptions,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import (
    BackupStore,
    read_header,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    BackupInvalid,
    LockHeld,
    PreflightFailed,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import create_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.lock import lock_key
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import (
    index_exists,
    snapshot_index,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import parse_patch
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_migrate

DRIVER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support", "migrate_driver.py")
DTYPES = {"float32": numpy.float32, "float64": numpy.float64, "float16": numpy.float16}
DOCS, DIMS, BATCH = 300, 16, 50


def bfloat16_bytes(values: numpy.ndarray) -> bytes:
    """Independent reference: float32 -> bfloat16 by round-to-nearest-even, written out plainly."""
    out = bytearray()
    for bits in values.astype(numpy.float32).view(numpy.uint32).tolist():
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        out += int(rounded & 0xFFFF).to_bytes(2, "little")
    return bytes(out)


def encode(values: numpy.ndarray, datatype: str) -> bytes:
    if datatype == "bfloat16":
        return bfloat16_bytes(values)
    return values.astype(DTYPES[datatype]).tobytes()


def decode(raw: bytes, datatype: str) -> numpy.ndarray:
    if datatype == "bfloat16":
        return (numpy.frombuffer(raw, numpy.uint16).astype(numpy.uint32) << 16).view(numpy.float32)
    return numpy.frombuffer(raw, DTYPES[datatype])


def load(client, datatype="float32", algorithm="FLAT", storage="hash", index="idx", prefix="doc:", docs=DOCS, seed=7):
    rng = numpy.random.default_rng(seed)
    vectors = rng.standard_normal((docs, DIMS)).astype(numpy.float64)
    params = ["TYPE", datatype.upper(), "DIM", str(DIMS), "DISTANCE_METRIC", "COSINE"]
    if storage == "hash":
        client.execute_command(
            "FT.CREATE",
            index,
            "ON",
            "HASH",
            "PREFIX",
            "1",
            prefix,
            "SCHEMA",
            "title",
            "TEXT",
            "tag",
            "TAG",
            "vec",
            "VECTOR",
            algorithm,
            str(len(params)),
            *params,
        )
    else:
        client.execute_command(
            "FT.CREATE",
            index,
            "ON",
            "JSON",
            "PREFIX",
            "1",
            prefix,
            "SCHEMA",
            "$.title",
            "AS",
            "title",
            "TEXT",
            "$.tag",
            "AS",
            "tag",
            "TAG",
            "$.vec",
            "AS",
            "vec",
            "VECTOR",
            algorithm,
            str(len(params)),
            *params,
        )
    pipe = client.pipeline(transaction=False)
    for i in range(docs):
        key = f"{prefix}{i}"
        if storage == "hash":
            pipe.hset(key, mapping={"title": f"document {i}", "tag": f"t{i % 3}", "vec": encode(vectors[i], datatype)})
        else:
            pipe.execute_command(
                "JSON.SET",
                key,
                "$",
                json.dumps({"title": f"document {i}", "tag": f"t{i % 3}", "vec": vectors[i].tolist()}),
            )
    pipe.execute()
    wait_for(client, index, docs)
    return vectors


def make_plan(client, changes, index="idx", **kwargs):
    return create_plan(client, index, patch=parse_patch({"version": 1, "changes": changes}), **kwargs)


def run(client, url, plan, backup_dir, **options):
    options.setdefault("batch_size", BATCH)
    options.setdefault("accept_data_loss", True)
    return migrate(client, lambda: redis.Redis.from_url(url), plan, str(backup_dir), MigrateOptions(**options))


QUANT16 = {"update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}]}


# --- conversions, algorithms, storage ----------------------------------------------------------


@pytest.mark.parametrize(
    "source, target",
    [
        ("float32", "float16"),
        ("float32", "bfloat16"),
        ("float32", "float64"),
        ("float64", "float32"),
        ("float16", "float32"),
        ("float64", "float16"),
        ("float16", "bfloat16"),
        ("bfloat16", "float32"),
    ],
)
def test_every_conversion_writes_the_exact_bytes(clean_redis, redis_url, tmp_path, source, target):
    vectors = load(clean_redis, datatype=source)
    stored = {i: clean_redis.hget(f"doc:{i}", "vec") for i in range(DOCS)}
    plan = make_plan(
        clean_redis, {"update_fields": [{"name": "vec", "attrs": {"datatype": target}}]}, mode="drop_recreate"
    )
    outcome = run(clean_redis, redis_url, plan, tmp_path)
    assert outcome.changed and outcome.report.result == "succeeded"
    for i in range(DOCS):
        original = decode(stored[i], source).astype(numpy.float64 if source == "float64" else numpy.float32)
        expected = encode(original, target)
        assert clean_redis.hget(f"doc:{i}", "vec") == expected, f"doc:{i}"
        assert clean_redis.hget(f"doc:{i}", "title") == f"document {i}".encode()
    live = snapshot_index(clean_redis, "idx")
    assert live.snapshot.index_schema.field("vec").attrs.datatype == target
    assert live.stats.num_docs == DOCS
    validation = outcome.report.validation
    assert validation["passed"] and validation["knn_checked"] == 10 and validation["knn_missed"] == []
    del vectors


@pytest.mark.parametrize("algorithm", ["FLAT", "HNSW"])
def test_hash_quantization_on_flat_and_hnsw_keeps_search_working(clean_redis, redis_url, tmp_path, algorithm):
    vectors = load(clean_redis, algorithm=algorithm)
    outcome = run(clean_redis, redis_url, make_plan(clean_redis, QUANT16), tmp_path)
    assert outcome.report.validation["passed"]
    query = vectors[5].astype(numpy.float16).tobytes()
    reply = clean_redis.execute_command(
        "FT.SEARCH",
        "idx",
        "*=>[KNN 3 @vec $v AS score]",
        "PARAMS",
        "2",
        "v",
        query,
        "SORTBY",
        "score",
        "NOCONTENT",
        "DIALECT",
        "2",
    )
    assert reply[1] == b"doc:5"
    assert outcome.report.quality["vec"]["recall_at_10"] > 0.95
    assert snapshot_index(clean_redis, "idx").snapshot.index_schema.field("vec").attrs.algorithm == algorithm.lower()


@pytest.mark.parametrize("algorithm", ["FLAT", "HNSW"])
def test_json_datatype_change_reindexes_without_touching_documents(clean_redis, redis_url, tmp_path, algorithm):
    load(clean_redis, storage="json", algorithm=algorithm, prefix="j:")
    before = {i: clean_redis.execute_command("JSON.GET", f"j:{i}") for i in range(DOCS)}
    outcome = run(clean_redis, redis_url, make_plan(clean_redis, QUANT16), tmp_path)
    assert outcome.report.result == "succeeded" and outcome.report.validation["passed"]
    assert {i: clean_redis.execute_command("JSON.GET", f"j:{i}") for i in range(DOCS)} == before
    assert outcome.report.documents == 0  # nothing to back up: no document changes
    assert snapshot_index(clean_redis, "idx").snapshot.index_schema.field("vec").attrs.datatype == "float16"


# --- renames ---------------------------------------------------------------------------------------


def test_rename_field_index_and_prefix_together(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    clean_redis.execute_command("FT.ALIASADD", "live", "idx")
    clean_redis.expire("doc:3", 5000)
    before = dump_hashes(clean_redis, b"doc:*")
    plan = make_plan(
        clean_redis,
        {
            "rename_fields": [{"old_name": "title", "new_name": "headline"}],
            "index": {"name": "idx_v2", "prefix": "item:"},
            **QUANT16,
        },
        aliases=["live"],
        mode="drop_recreate",
    )
    outcome = run(clean_redis, redis_url, plan, tmp_path)
    assert outcome.report.validation["passed"], outcome.report.validation
    assert not index_exists(clean_redis, "idx") and index_exists(clean_redis, "idx_v2")
    assert clean_redis.execute_command("FT.INFO", "live")[1] == b"idx_v2"  # the alias moved with it
    assert list(clean_redis.scan_iter(match="doc:*")) == []
    for key, fields in before.items():
        new_key = b"item:" + key[len(b"doc:") :]
        after = clean_redis.hgetall(new_key)
        assert after[b"headline"] == fields[b"title"] and b"title" not in after
        assert after[b"tag"] == fields[b"tag"]
        assert after[b"vec"] == numpy.frombuffer(fields[b"vec"], numpy.float32).astype(numpy.float16).tobytes()
    assert 0 < clean_redis.ttl("item:3") <= 5000  # RENAME keeps the TTL


def test_json_field_rename_moves_the_path_exactly(clean_redis, redis_url, tmp_path):
    load(clean_redis, storage="json", prefix="j:")
    clean_redis.execute_command("JSON.SET", "j:0", "$.title", json.dumps("0.1 + 1e-300 é"))
    plan = make_plan(clean_redis, {"rename_fields": [{"old_name": "title", "new_name": "headline"}]})
    outcome = run(clean_redis, redis_url, plan, tmp_path)
    assert outcome.report.validation["passed"]
    doc = json.loads(clean_redis.execute_command("JSON.GET", "j:0"))
    assert doc["headline"] == "0.1 + 1e-300 é" and "title" not in doc
    fields = {f.name: f for f in snapshot_index(clean_redis, "idx").snapshot.index_schema.fields}
    assert fields["headline"].path == "$.headline"


def test_key_rename_via_dump_restore_keeps_ttl_and_bytes(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=60)
    clean_redis.pexpire("doc:1", 900_000)
    before = dump_hashes(clean_redis, b"doc:*")
    plan = make_plan(clean_redis, {"index": {"prefix": "moved:"}})
    outcome = run(clean_redis, redis_url, plan, tmp_path, key_rename_method="dump_restore")
    assert outcome.report.validation["passed"]
    assert {b"moved:" + k[4:]: v for k, v in before.items()} == dump_hashes(clean_redis, b"moved:*")
    assert 800_000 < clean_redis.pttl("moved:1") <= 900_000


def test_prefix_collision_is_refused_before_the_drop(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=20)
    clean_redis.hset("item:7", "someone", "else")
    with pytest.raises(PreflightFailed, match="key\\(s\\) the prefix change would create already exist"):
        run(
            clean_redis,
            redis_url,
            make_plan(clean_redis, {"index": {"prefix": "item:"}}, mode="drop_recreate"),
            tmp_path,
        )
    assert index_exists(clean_redis, "idx") and clean_redis.hgetall("item:7") == {b"someone": b"else"}


# --- crashes, resume, the lock, tampering ----------------------------------------------------------


def expected_after_quantize(before):
    return {
        k: {**v, b"vec": numpy.frombuffer(v[b"vec"], numpy.float32).astype(numpy.float16).tobytes()}
        for k, v in before.items()
    }


def run_killed(url, plan_path, backup_dir, failpoint, **options):
    args = {
        "url": url,
        "plan": str(plan_path),
        "backup_dir": str(backup_dir),
        "options": {"batch_size": BATCH, "accept_data_loss": True, **options},
    }
    env = dict(os.environ, INDEXOPS_FAILPOINT=failpoint)
    return subprocess.run(
        [sys.executable, DRIVER, json.dumps(args)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "failpoint",
    [
        "backup:start",
        "backup:3",
        "drop:start",
        "drop:0",
        "move_fields:2",
        "rename_keys:start",
        "rename_keys:4",
        "quantize:start",
        "quantize:3",
        "create:start",
        "create:0",
        "wait:start",
        "validate:start",
    ],
)
def test_killed_in_every_phase_then_resumed_to_the_exact_bytes(clean_redis, redis_url, tmp_path, failpoint):
    load(clean_redis)
    before = dump_hashes(clean_redis, b"doc:*")
    plan = make_plan(
        clean_redis,
        {"rename_fields": [{"old_name": "title", "new_name": "headline"}], "index": {"prefix": "item:"}, **QUANT16},
        mode="drop_recreate",
    )
    plan_path = tmp_path / "plan.yaml"
    write_plan(plan, str(plan_path))
    killed = run_killed(redis_url, plan_path, tmp_path / "b", failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    outcome = run(clean_redis, redis_url, plan, tmp_path / "b")  # the same call again
    assert outcome.changed and outcome.report.result == "succeeded"
    expected = {b"item:" + k[4:]: v for k, v in expected_after_quantize(before).items()}
    for fields in expected.values():
        fields[b"headline"] = fields.pop(b"title")
    assert dump_hashes(clean_redis, b"item:*") == expected
    assert list(clean_redis.scan_iter(match="doc:*")) == []
    assert outcome.report.validation["passed"] and outcome.report.conflicts == 0
    assert not clean_redis.exists(lock_key("idx"))
    assert run(clean_redis, redis_url, plan, tmp_path / "b").changed is False


def test_killed_with_workers_resumes(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=600)
    before = dump_hashes(clean_redis, b"doc:*")
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    write_plan(plan, str(tmp_path / "plan.yaml"))
    # The parent dies at its start of quantize, after forking nothing: then a worker run is killed by
    # its parent's death mid-way (PR_SET_PDEATHSIG) - no writer survives into the resumed run.
    killed = run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "b", "quantize:4", workers=3)
    assert killed.returncode != 0
    outcome = run(clean_redis, redis_url, plan, tmp_path / "b", workers=3)
    assert dump_hashes(clean_redis, b"doc:*") == expected_after_quantize(before)
    assert outcome.report.validation["passed"]


def test_concurrent_second_run_is_refused(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=100)
    plan = make_plan(clean_redis, QUANT16)
    write_plan(plan, str(tmp_path / "plan.yaml"))
    args = {
        "url": redis_url,
        "plan": str(tmp_path / "plan.yaml"),
        "backup_dir": str(tmp_path / "b"),
        "options": {"batch_size": BATCH, "accept_data_loss": True},
    }
    first = subprocess.Popen(
        [sys.executable, DRIVER, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, INDEXOPS_FAILPOINT="quantize:1:pause=4"),
    )
    try:
        import time  # pylint: disable=import-outside-toplevel

        for _attempt in range(200):
            if clean_redis.exists(lock_key("idx")):
                break
            time.sleep(0.02)
        with pytest.raises(LockHeld) as err:
            run(clean_redis, redis_url, plan, tmp_path / "b2")
        assert "another migration of idx holds the lock" in str(err.value)
        assert err.value.details["lock_holder"]["pid"] == first.pid
    finally:
        first.wait(timeout=60)
    assert first.returncode == 0


def test_stale_lock_of_a_dead_process_is_taken_over(clean_redis, redis_url, tmp_path):
    import socket  # pylint: disable=import-outside-toplevel

    load(clean_redis, docs=20)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    clean_redis.set(
        lock_key("idx"),
        json.dumps({"token": "x", "host": socket.gethostname(), "pid": int(dead.stdout), "purpose": "migration"}),
        px=60_000,
    )
    assert run(clean_redis, redis_url, make_plan(clean_redis, QUANT16), tmp_path).report.result == "succeeded"


@pytest.mark.parametrize("damage", ["flip", "truncate", "header"])
def test_tampered_backup_is_refused_before_any_write(clean_redis, redis_url, tmp_path, damage):
    load(clean_redis)
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    write_plan(plan, str(tmp_path / "plan.yaml"))
    assert run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "b", "quantize:2").returncode == -signal.SIGKILL
    store = BackupStore.for_plan(str(tmp_path / "b"), plan.checksum)
    data = store.path("data.bin")
    if damage == "flip":
        with open(data, "r+b") as handle:
            handle.seek(os.path.getsize(data) // 2)
            byte = handle.read(1)
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte[0] ^ 0x01]))
    elif damage == "truncate":
        with open(data, "r+b") as handle:
            handle.truncate(os.path.getsize(data) - 100)
    else:
        header = json.loads(open(store.path("header.json"), encoding="utf-8").read())
        header["data_records"] += 1
        with open(store.path("header.json"), "w", encoding="utf-8") as handle:
            json.dump(header, handle)
    state = dump_hashes(clean_redis, b"doc:*")
    with pytest.raises(BackupInvalid):
        run(clean_redis, redis_url, plan, tmp_path / "b")
    assert dump_hashes(clean_redis, b"doc:*") == state
    assert not index_exists(clean_redis, "idx")  # the drop had happened; nothing more was done


def test_deleted_key_stays_deleted_and_changed_vector_is_kept(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    write_plan(plan, str(tmp_path / "plan.yaml"))
    assert run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "b", "quantize:start").returncode == -signal.SIGKILL
    clean_redis.delete("doc:10")
    mine = numpy.ones(DIMS, numpy.float32).tobytes()
    clean_redis.hset("doc:11", "vec", mine)  # someone else wrote during the window
    outcome = run(clean_redis, redis_url, plan, tmp_path / "b")
    counters = outcome.report.phases["quantize"]["counters"]
    assert counters["gone"] == 1 and counters["gone_keys"] == ["doc:10"]
    assert counters["conflict"] == 1 and counters["conflict_keys"] == ["doc:11"]
    assert outcome.report.validation["passed"], outcome.report.validation
    assert outcome.report.validation["documents_gone"] == 1
    assert not clean_redis.exists("doc:10")
    assert clean_redis.hget("doc:11", "vec") == mine
    assert outcome.report.conflicts == 1


# --- backup contents, estimate, module behaviour ---------------------------------------------------


def test_backup_holds_every_original_byte_with_safe_permissions(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    before = dump_hashes(clean_redis, b"doc:*")
    plan = make_plan(
        clean_redis,
        {"rename_fields": [{"old_name": "title", "new_name": "headline"}], **QUANT16},
        batch_size=BATCH,
        mode="drop_recreate",
    )
    outcome = run(clean_redis, redis_url, plan, tmp_path)
    store = BackupStore.for_plan(str(tmp_path), plan.checksum)
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    for name in os.listdir(store.directory):
        assert stat.S_IMODE(os.stat(store.path(name)).st_mode) == 0o600, name
    records = {r.key: r for _b, rs in store.iter_blocks() for r in rs}
    assert set(records) == set(before)
    for key, fields in before.items():
        assert records[key].value(b"vec") == fields[b"vec"]
        assert records[key].value(b"title") == fields[b"title"]
        assert records[key].value(b"headline") is None
    assert os.path.getsize(store.path("data.bin")) == plan.estimate.backup_bytes  # exact, as planned
    assert read_header(store.directory).status == "completed"
    assert outcome.report.backup_path == store.directory


def test_sampled_estimate_is_close(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=3000)
    plan = make_plan(clean_redis, QUANT16, audit_sample=200, batch_size=BATCH, mode="drop_recreate")
    assert plan.audit.mode == "sample" and not plan.estimate.backup_bytes_exact
    run(clean_redis, redis_url, plan, tmp_path)
    written = os.path.getsize(BackupStore.for_plan(str(tmp_path), plan.checksum).path("data.bin"))
    assert abs(written - plan.estimate.backup_bytes) / written < 0.02


def test_malformed_vector_stops_before_the_drop(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=50)
    plan = make_plan(clean_redis, QUANT16)
    clean_redis.hset("doc:bad", mapping={"title": "bad", "vec": b"\x01" * 20})  # written after planning
    with pytest.raises(PreflightFailed, match="1 document\\(s\\) hold vectors of the wrong size.*doc:bad"):
        run(clean_redis, redis_url, plan, tmp_path)
    assert index_exists(clean_redis, "idx")
    assert len(clean_redis.hget("doc:0", "vec")) == DIMS * 4


@pytest.mark.parametrize("make_bad", ["a_file", "cannot_create"])
def test_unusable_backup_dir_fails_before_anything(clean_redis, redis_url, capsys, tmp_path, make_bad):
    load(clean_redis, docs=20)
    if make_bad == "a_file":
        (tmp_path / "file").write_text("x")
        backup_dir = tmp_path / "file"
        message = "exists and is not a directory"
    else:
        backup_dir = "/proc/indexops-backups"  # not creatable, even by root
        message = "cannot create backup_dir /proc/indexops-backups"
    args = {
        "redis_url": redis_url,
        "index": "idx",
        "patch": {"version": 1, "changes": QUANT16},
        "backup_dir": str(backup_dir),
        "accept_data_loss": True,
    }
    failed = run_module(redis_index_migrate, args, capsys, expect_failure=True)
    assert message in failed["msg"] and failed["error_type"] == "preflight_failed"
    assert index_exists(clean_redis, "idx") and not clean_redis.exists(lock_key("idx"))


def test_module_check_mode_diff_lossy_gate_and_idempotence(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis, docs=40)
    before = dump_hashes(clean_redis)
    args = {
        "redis_url": redis_url,
        "index": "idx",
        "patch": {"version": 1, "changes": QUANT16},
        "backup_dir": str(tmp_path / "b"),
        "report_out": str(tmp_path / "report.yaml"),
    }
    refused = run_module(redis_index_migrate, args, capsys, expect_failure=True)
    assert "need accept_data_loss=true" in refused["msg"]
    args["accept_data_loss"] = True
    dry = run_module(redis_index_migrate, args, capsys, check_mode=True, diff=True)
    assert dry["changed"] and dry["result"] == "would_migrate"
    assert "+    datatype: float16" in dry["diff"]["after"] or "datatype: float16" in dry["diff"]["after"]
    assert dump_hashes(clean_redis) == before and not (tmp_path / "b").exists()
    done = run_module(redis_index_migrate, args, capsys)
    assert done["changed"] and done["result"] == "succeeded" and (tmp_path / "report.yaml").exists()
    again = run_module(redis_index_migrate, args, capsys)  # the same task: its completed migration answers
    assert again["changed"] is False and again["result"] == "already_completed"


def test_failed_migration_reports_phase_and_resumes(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis, docs=40)
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    write_plan(plan, str(tmp_path / "plan.yaml"))
    args = {
        "redis_url": redis_url,
        "plan_file": str(tmp_path / "plan.yaml"),
        "backup_dir": str(tmp_path / "b"),
        "accept_data_loss": True,
        "wait_timeout": 0,
    }
    failed = run_module(redis_index_migrate, args, capsys, expect_failure=True)
    assert failed["phase"] == "wait" and failed["source_index_exists"] is False and failed["target_index_exists"]
    assert (
        failed["msg"].startswith(f"{redis_url[8:]} index None: migration stopped in phase wait")
        or "migration stopped in phase wait" in failed["msg"]
    )
    assert os.path.exists(failed["report_path"])
    args["wait_timeout"] = 60
    resumed = run_module(redis_index_migrate, args, capsys)
    assert resumed["changed"] and resumed["result"] == "succeeded"
    assert resumed["report"]["phases"]["quantize"]["counters"]["written"] == 40


def load_wide_hnsw(client, docs=5000, dims=384):
    """An HNSW index big enough to be approximate (self-queries miss at the default EF_RUNTIME)."""
    client.execute_command(
        "FT.CREATE",
        "idx",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "doc:",
        "SCHEMA",
        "vec",
        "VECTOR",
        "HNSW",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        str(dims),
        "DISTANCE_METRIC",
        "COSINE",
    )
    vectors = numpy.random.default_rng(1).random((docs, dims), dtype=numpy.float32)
    pipe = client.pipeline(transaction=False)
    for i in range(docs):
        pipe.hset(f"doc:{i}", "vec", vectors[i].tobytes())
    pipe.execute()
    wait_for(client, "idx", docs, 120)


def test_hnsw_validation_at_a_realistic_scale(clean_redis, redis_url, tmp_path):
    load_wide_hnsw(clean_redis)
    outcome = run(
        clean_redis, redis_url, make_plan(clean_redis, QUANT16, mode="drop_recreate"), tmp_path, batch_size=500
    )
    validation = outcome.report.validation
    assert validation["passed"] and validation["knn_checked"] == 10
    assert len(validation["knn_missed"]) <= validation["knn_allowed_misses"] == 2


def test_hnsw_validation_still_catches_garbled_vectors(clean_redis, redis_url, tmp_path):
    load_wide_hnsw(clean_redis)
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    write_plan(plan, str(tmp_path / "plan.yaml"))
    assert (
        run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "b", "validate:start", batch_size=500).returncode
        == -signal.SIGKILL
    )
    rng = numpy.random.default_rng(99)  # right length, wrong content: what a broken encoder would write
    for key in clean_redis.scan_iter(match="doc:*"):
        clean_redis.hset(key, "vec", rng.random(384).astype(numpy.float16).tobytes())
    from datasets import wait_for as settle  # pylint: disable=import-outside-toplevel

    settle(clean_redis, "idx", 5000, 120)
    with pytest.raises(Exception, match="KNN self-queries did not find their own document"):
        run(clean_redis, redis_url, plan, tmp_path / "b", batch_size=500)
