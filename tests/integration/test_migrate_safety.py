"""Safety holes a hostile run found in the migration (issue 13), each reproduced on the real server.

Every test here failed before its fix: it asserts what Redis and the backup hold afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy
import pytest
import redis
from datasets import wait_for
from module_runner import run_module
from redis_search_server import RedisSearchServer
from test_redis_index_migrate import DIMS, QUANT16, dump_hashes, load, make_plan, run, run_killed

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    LockHeld,
    PlanBlocked,
    PlanInvalid,
    PreflightFailed,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import (
    MigrationPlan,
    write_plan,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import create_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.ftcreate import create_args
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import (
    index_exists,
    snapshot_index,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import parse_patch
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_migrate


def f16(raw: bytes) -> bytes:
    return numpy.frombuffer(raw, numpy.float32).astype(numpy.float16).tobytes()


# --- 3. every prefix of a multi-prefix index is backed up and converted ---------------------------------


def test_multi_prefix_index_scanned_by_prefix_converts_every_prefix(clean_redis, redis_url, tmp_path):
    clean_redis.execute_command(
        "FT.CREATE",
        "idx",
        "ON",
        "HASH",
        "PREFIX",
        "2",
        "a:",
        "b:",
        "SCHEMA",
        "n",
        "NUMERIC",
        "vec",
        "VECTOR",
        "FLAT",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        str(DIMS),
        "DISTANCE_METRIC",
        "L2",
    )
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


def test_low_server_query_timeout_does_not_fail_a_correct_migration(
    clean_redis, redis_url, tmp_path, low_query_timeout
):
    docs, dims = 40000, 128
    clean_redis.execute_command(
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
        "FLAT",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        str(dims),
        "DISTANCE_METRIC",
        "L2",
    )
    vectors = numpy.random.default_rng(2).random((docs, dims), dtype=numpy.float32)
    pipe = clean_redis.pipeline(transaction=False)
    for i in range(docs):
        pipe.hset(f"doc:{i}", "vec", vectors[i].tobytes())
    pipe.execute()
    wait_for(clean_redis, "idx", docs, 60)
    outcome = run(
        clean_redis, redis_url, make_plan(clean_redis, QUANT16, mode="drop_recreate"), tmp_path, batch_size=1000
    )
    assert outcome.report.documents == docs
    assert outcome.report.validation["passed"] and outcome.report.validation["knn_missed"] == []
    assert clean_redis.hget("doc:39999", "vec") == vectors[39999].astype(numpy.float16).tobytes()


# --- helpers -------------------------------------------------------------------------------------------

DRIVER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support", "migrate_driver.py")


def driver_args(url, plan_path, backup_dir, fsize_limit=None, **options):
    args = {
        "url": url,
        "plan": str(plan_path),
        "backup_dir": str(backup_dir),
        "fsize_limit": fsize_limit,
        "options": {"batch_size": 50, "accept_data_loss": True, **options},
    }
    return [sys.executable, DRIVER, json.dumps(args)]


def start_paused(url, plan_path, backup_dir, failpoint):
    """A migration in a process of its own, paused at `failpoint` (phase:point:pause=seconds)."""
    return subprocess.Popen(
        driver_args(url, plan_path, backup_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, INDEXOPS_FAILPOINT=failpoint),
    )


def backing_up(backup_dir) -> bool:
    """Whether a migration into `backup_dir` passed its preflight and is writing its backup."""
    return any(
        os.path.exists(os.path.join(backup_dir, d, "data.bin"))
        for d in (os.listdir(backup_dir) if os.path.isdir(backup_dir) else [])
    )


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def server_state(client):
    """Every key's DUMP and every index's definition: what 'nothing was changed' compares."""
    keys = {k: client.dump(k) for k in client.scan_iter(count=1000) if not k.startswith(b"indexops:lock:")}
    indexes = {
        name: snapshot_index(client, name).snapshot.index_schema.to_dict()
        for name in sorted(client.execute_command("FT._LIST"))
    }
    return keys, indexes


def planned(client, tmp_path, changes, **kwargs):
    plan = make_plan(client, changes, **kwargs)
    path = tmp_path / "plan.yaml"
    write_plan(plan, str(path))
    return plan, path


def second_index(client, name="other", prefix="doc:", vector=True):
    schema = ["tag", "TAG"] + (
        ["vec", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", str(DIMS), "DISTANCE_METRIC", "COSINE"]
        if vector
        else []
    )
    client.execute_command("FT.CREATE", name, "ON", "HASH", "PREFIX", "1", prefix, "SCHEMA", *schema)


# --- 7. other indexes that read the keys or fields a migration changes -------------------------------------


def test_prefix_change_into_another_indexs_prefix_is_blocked(clean_redis):
    load(clean_redis, docs=20)
    second_index(clean_redis, "items", prefix="item:", vector=False)
    plan = make_plan(clean_redis, {"index": {"prefix": "item:"}})
    assert not plan.classification.supported
    assert any("covers the new prefix 'item:'" in r for r in plan.classification.blocked_reasons)


def test_prefix_change_under_another_index_is_blocked(clean_redis):
    load(clean_redis, docs=20)
    second_index(clean_redis, "titles", prefix="doc:", vector=False)
    plan = make_plan(clean_redis, {"index": {"prefix": "moved:"}})
    assert any("would take its documents away" in r for r in plan.classification.blocked_reasons)


def test_field_move_read_by_another_index_is_blocked(clean_redis):
    load(clean_redis, docs=20)
    clean_redis.execute_command("FT.CREATE", "titles", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA", "title", "TEXT")
    plan = make_plan(clean_redis, {"rename_fields": [{"old_name": "title", "new_name": "headline"}]})
    assert any("also reads title of the same keys" in r for r in plan.classification.blocked_reasons)


def test_sibling_index_created_after_planning_is_refused_before_anything(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=60)
    plan, _path = planned(clean_redis, tmp_path, QUANT16)
    assert plan.classification.supported
    second_index(clean_redis, "sibling")  # reads the vectors the plan rewrites
    before = server_state(clean_redis)
    with pytest.raises(PlanBlocked, match="index 'sibling'.*also indexes vec of the same keys"):
        run(clean_redis, redis_url, plan, tmp_path / "b")
    assert server_state(clean_redis) == before
    assert not (tmp_path / "b").exists() or os.listdir(tmp_path / "b") == []


def test_sibling_index_created_during_the_backup_is_refused_before_the_drop(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=300)
    _plan, path = planned(clean_redis, tmp_path, QUANT16, mode="drop_recreate")
    before = server_state(clean_redis)
    worker = start_paused(redis_url, path, tmp_path / "b", "backup:2:pause=3")
    wait_until(lambda: backing_up(tmp_path / "b"))
    second_index(clean_redis, "sibling")
    out, _err = worker.communicate(timeout=60)
    assert worker.returncode == 1
    failure = json.loads(out)["failed"]
    assert "migration stopped in phase drop: another index now shares the keys" in failure
    assert "nothing was changed" in failure
    clean_redis.execute_command("FT.DROPINDEX", "sibling")
    assert server_state(clean_redis) == before


# --- 8. an index planned through an alias keeps the alias ---------------------------------------------------


def test_migration_through_an_alias_keeps_and_restores_the_alias(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=40)
    clean_redis.execute_command("FT.ALIASADD", "live", "idx")
    # No `aliases` given: the requested alias counts.
    plan = make_plan(clean_redis, QUANT16, index="live", mode="drop_recreate")
    assert plan.source.index == "idx" and plan.source.aliases == ["live"]
    run(clean_redis, redis_url, plan, tmp_path)
    assert clean_redis.execute_command("FT.INFO", "live")[1] == b"idx"
    assert snapshot_index(clean_redis, "live").snapshot.index_schema.field("vec").attrs.datatype == "float16"
    _changed, result = rollback(clean_redis, choose_backup(str(tmp_path), "idx"))
    assert result.aliases == ["live"]
    assert snapshot_index(clean_redis, "live").snapshot.index_schema.field("vec").attrs.datatype == "float32"


# --- 9. permissions are checked before anything changes -------------------------------------------------------


@pytest.fixture
def acl_users(clean_redis, redis_url):
    """make(name, *rules): an ACL user with those rules, and a client connected as it."""
    made = []
    port = redis_url.rsplit(":", 1)[1].split("/")[0]

    def make(name, *rules):
        clean_redis.execute_command("ACL", "SETUSER", name, "reset", "on", ">secret-pw", *rules)
        made.append(name)
        return redis.Redis.from_url(f"redis://{name}:secret-pw@127.0.0.1:{port}/0")

    yield make
    for name in made:
        clean_redis.execute_command("ACL", "DELUSER", name)


@pytest.mark.parametrize(
    "rules, missing",
    [
        (("~*", "+@all", "-ft.dropindex"), "FT.DROPINDEX"),
        (("~*", "+@all", "-hset"), "HSET"),
        (("~*", "+@all", "-evalsha", "-eval"), "EVAL, EVALSHA"),
        (("~doc:*", "~indexops:lock:*", "+@all"), "FT.AGGREGATE"),  # search commands treat index names as keys
    ],
)
def test_missing_permissions_are_refused_before_anything(clean_redis, redis_url, tmp_path, acl_users, rules, missing):
    load(clean_redis, docs=60)
    plan = make_plan(clean_redis, QUANT16)
    user = acl_users("migrator", *rules)
    before = server_state(clean_redis)
    with pytest.raises(PreflightFailed) as err:
        run(user, redis_url, plan, tmp_path / "b")
    assert "the Redis user may not run" in err.value.message and missing in err.value.message
    assert "nothing was changed" in err.value.message and "ACL SETUSER" in err.value.hint
    assert server_state(clean_redis) == before


def test_user_with_every_permission_it_needs_migrates(clean_redis, redis_url, tmp_path, acl_users):
    load(clean_redis, docs=60)
    plan = make_plan(clean_redis, QUANT16)
    user = acl_users("migrator", "~doc:*", "~idx*", "~indexops:lock:*", "+@all")
    assert run(user, redis_url, plan, tmp_path / "b").report.validation["passed"]


# --- 10. resuming after the server went back to an older snapshot -----------------------------------------------


def snapshot_keys(client, pattern=b"doc:*"):
    return {k: (client.dump(k), client.pttl(k)) for k in client.scan_iter(match=pattern)}


def restore_keys(client, dumps):
    for key, (payload, ttl) in dumps.items():
        client.restore(key, max(ttl, 0), payload, replace=True)


@pytest.mark.parametrize("index_back", [True, False])
def test_resume_refuses_a_keyspace_older_than_its_ledger(clean_redis, redis_url, tmp_path, index_back):
    load(clean_redis)
    originals = dump_hashes(clean_redis, b"doc:*")
    old = snapshot_keys(clean_redis)
    definition = snapshot_index(clean_redis, "idx").snapshot.index_schema
    plan, path = planned(clean_redis, tmp_path, QUANT16, mode="drop_recreate")
    killed = run_killed(redis_url, path, tmp_path / "b", "quantize:3")
    assert killed.returncode == -signal.SIGKILL
    # The server comes back from a snapshot taken before the migration: documents (and index) as they were.
    restore_keys(clean_redis, old)
    if index_back:
        clean_redis.execute_command("FT.CREATE", *create_args(definition))
        wait_for(clean_redis, "idx", 300)
    before = server_state(clean_redis)
    with pytest.raises(PreflightFailed) as err:
        run(clean_redis, redis_url, plan, tmp_path / "b")
    assert "cannot resume" in err.value.message and "older snapshot" in err.value.message
    assert ("is back" if index_back else "holds its original bytes") in err.value.message
    assert "redis_index_rollback" in err.value.hint
    assert server_state(clean_redis) == before
    # The way out: roll back, then apply again.
    rollback(clean_redis, choose_backup(str(tmp_path / "b"), "idx"))
    assert dump_hashes(clean_redis, b"doc:*") == originals
    outcome = run(clean_redis, redis_url, plan, tmp_path / "b")
    assert outcome.report.result == "succeeded" and outcome.report.attempt == 2
    assert dump_hashes(clean_redis, b"doc:*") == {k: {**v, b"vec": f16(v[b"vec"])} for k, v in originals.items()}


# --- 11. two renames to the same new name ---------------------------------------------------------------------


def test_two_renames_to_the_same_name_cannot_both_drop(clean_redis, redis_url, tmp_path):
    load(clean_redis, index="a", prefix="a:", docs=100)
    load(clean_redis, index="b", prefix="b:", docs=100, seed=8)
    (tmp_path / "pa").mkdir()
    _plan_a, path_a = planned(
        clean_redis, tmp_path / "pa", {"index": {"name": "shared"}, **QUANT16}, index="a", mode="drop_recreate"
    )
    plan_b = make_plan(clean_redis, {"index": {"name": "shared"}, **QUANT16}, index="b", mode="drop_recreate")
    worker = start_paused(redis_url, path_a, tmp_path / "ba", "backup:1:pause=3")
    wait_until(lambda: backing_up(tmp_path / "ba"))
    before_b = dump_hashes(clean_redis, b"b:*")
    with pytest.raises(LockHeld, match="shared"):
        run(clean_redis, redis_url, plan_b, tmp_path / "bb")
    assert index_exists(clean_redis, "b") and dump_hashes(clean_redis, b"b:*") == before_b
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, out + err
    assert index_exists(clean_redis, "shared") and not index_exists(clean_redis, "a")
    with pytest.raises(PreflightFailed, match="an index or alias named 'shared' exists"):
        run(clean_redis, redis_url, plan_b, tmp_path / "bb")
    assert index_exists(clean_redis, "b")


# --- 12. a forged plan is judged by what it asks, not by what it says of itself --------------------------------


def reseal(plan, edit):
    """The plan edited by `edit` and sealed again, as anyone can (the checksum is a plain SHA-256)."""
    data = plan.to_dict()
    edit(data)
    return MigrationPlan.model_validate(data).seal()


def test_resealed_plan_with_a_blocked_change_is_refused(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=40)
    plan = make_plan(clean_redis, {"update_fields": [{"name": "vec", "attrs": {"dims": DIMS * 2}}]})
    assert not plan.classification.supported

    def unblock(data):
        data["classification"].update(supported=True, blocked_reasons=[])
        for change in data["changes"]:
            change.update(blocked=False, reason=None)

    forged = reseal(plan, unblock)
    before = server_state(clean_redis)
    with pytest.raises(PlanBlocked, match="new dimensions need new embeddings"):
        run(clean_redis, redis_url, forged, tmp_path / "b")
    assert server_state(clean_redis) == before


def test_resealed_plan_with_edited_rewrites_is_refused(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=40)
    plan = make_plan(clean_redis, QUANT16)

    def other_bytes(data):
        data["rewrites"]["quantize"][0]["target"] = "bfloat16"  # the index says float16, the bytes would not

    forged = reseal(plan, other_bytes)
    before = server_state(clean_redis)
    with pytest.raises(PlanInvalid, match="document rewrites do not follow"):
        run(clean_redis, redis_url, forged, tmp_path / "b")
    assert server_state(clean_redis) == before


# --- errors that refuse before anything changes ------------------------------------------------------------------


def module_args(redis_url, tmp_path, **extra):
    return {
        "redis_url": redis_url,
        "index": "idx",
        "patch": {"version": 1, "changes": QUANT16},
        "backup_dir": str(tmp_path / "b"),
        "accept_data_loss": True,
        **extra,
    }


def test_report_out_in_a_missing_directory_is_refused_first(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis, docs=20)
    before = server_state(clean_redis)
    failed = run_module(
        redis_index_migrate,
        module_args(redis_url, tmp_path, report_out=str(tmp_path / "no" / "r.yaml")),
        capsys,
        expect_failure=True,
    )
    assert "the directory of report_out" in failed["msg"] and "does not exist" in failed["msg"]
    assert "\n" not in failed["msg"]
    assert server_state(clean_redis) == before


def test_index_next_to_a_plan_of_another_index_is_refused(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis, docs=20)
    load(clean_redis, index="other", prefix="o:", docs=20)
    _plan, path = planned(clean_redis, tmp_path, QUANT16, index="other")
    before = server_state(clean_redis)
    failed = run_module(
        redis_index_migrate,
        {
            "redis_url": redis_url,
            "index": "idx",
            "plan_file": str(path),
            "backup_dir": str(tmp_path / "b"),
            "accept_data_loss": True,
        },
        capsys,
        expect_failure=True,
    )
    assert "the plan is for index 'other', not 'idx'" in failed["msg"]
    assert server_state(clean_redis) == before


def test_plan_from_another_server_is_refused(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis, docs=20)
    with RedisSearchServer() as elsewhere:
        other = redis.Redis.from_url(elsewhere.url)
        load(other, docs=20)
        plan = create_plan(
            other, "idx", patch=parse_patch({"version": 1, "changes": QUANT16}), endpoint=elsewhere.url.split("//")[1]
        )
        write_plan(plan, str(tmp_path / "plan.yaml"))
        other.close()
    before = server_state(clean_redis)
    failed = run_module(
        redis_index_migrate,
        {
            "redis_url": redis_url,
            "plan_file": str(tmp_path / "plan.yaml"),
            "backup_dir": str(tmp_path / "b"),
            "accept_data_loss": True,
        },
        capsys,
        expect_failure=True,
    )
    assert "the plan was made against 127.0.0.1:" in failed["msg"] and "this connection is" in failed["msg"]
    assert server_state(clean_redis) == before


def test_full_backup_disk_fails_cleanly_and_the_rerun_resumes(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    before = dump_hashes(clean_redis, b"doc:*")
    _plan, path = planned(clean_redis, tmp_path, QUANT16, mode="drop_recreate")
    state = server_state(clean_redis)
    full = subprocess.run(
        driver_args(redis_url, path, tmp_path / "b", fsize_limit=8000),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert full.returncode == 1, full.stdout + full.stderr
    failure = json.loads(full.stdout)["failed"]
    assert failure.startswith("migration stopped in phase backup: cannot write the backup in ")
    assert ": File too large; nothing in Redis was changed yet" in failure
    assert "nothing in Redis was changed yet" in failure and "backup " + str(tmp_path / "b") in failure
    assert server_state(clean_redis) == state
    resumed = subprocess.run(
        driver_args(redis_url, path, tmp_path / "b"), capture_output=True, text=True, timeout=120, check=False
    )
    assert json.loads(resumed.stdout)["result"] == "succeeded", resumed.stdout + resumed.stderr
    assert dump_hashes(clean_redis, b"doc:*") == {k: {**v, b"vec": f16(v[b"vec"])} for k, v in before.items()}


# --- rollback: the same permission check and the target name's lock ---------------------------------------------


def test_rollback_without_the_permissions_it_needs_is_refused_before_anything(
    clean_redis, redis_url, tmp_path, acl_users
):
    load(clean_redis, docs=60)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16), tmp_path)
    user = acl_users("restorer", "~*", "+@all", "-hset")
    before = server_state(clean_redis)
    with pytest.raises(PreflightFailed, match="may not run HSET, which the rollback needs"):
        rollback(user, choose_backup(str(tmp_path), "idx"))
    assert server_state(clean_redis) == before


def test_rollback_of_a_rename_waits_for_a_run_holding_the_target_name(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=60)
    run(clean_redis, redis_url, make_plan(clean_redis, {"index": {"name": "renamed"}, **QUANT16}), tmp_path)
    clean_redis.set(
        "indexops:lock:renamed",
        json.dumps({"token": "x", "host": "elsewhere", "pid": 1, "purpose": "migration"}),
        px=60_000,
    )
    before = server_state(clean_redis)
    with pytest.raises(LockHeld, match="another migration of renamed holds the lock"):
        rollback(clean_redis, choose_backup(str(tmp_path), "idx"))
    assert server_state(clean_redis) == before
    assert not clean_redis.exists("indexops:lock:idx")  # the first lock was given back


# --- 4. the exact target definition is proven to be accepted before the drop -----------------------------------


def test_a_target_the_server_refuses_is_refused_before_anything(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=40)
    plan = make_plan(clean_redis, {"index": {"filter": "@title=='x'"}})
    assert plan.classification.supported

    def unparsable_filter(data):  # a consistent plan (request and target agree) the server cannot parse
        data["requested_changes"]["patch"]["changes"]["index"]["filter"] = "@title=="
        data["target_schema"]["index"]["filter"] = "@title=="
        for change in data["changes"]:
            if change["attribute"] == "filter":
                change["after"] = "@title=="

    forged = reseal(plan, unparsable_filter)
    before = server_state(clean_redis)
    with pytest.raises(PreflightFailed, match="the server refuses the target definition"):
        run(clean_redis, redis_url, forged, tmp_path / "b")
    assert server_state(clean_redis) == before


# --- 6. an on-the-fly task (index + patch) resumes its own migration -------------------------------------------


@pytest.mark.parametrize("failpoint", ["drop:start", "quantize:2", "create:0", "validate:start"])
def test_on_the_fly_task_rerun_resumes_after_a_crash(clean_redis, redis_url, capsys, tmp_path, failpoint):
    load(clean_redis)
    originals = dump_hashes(clean_redis, b"doc:*")
    _plan, path = planned(clean_redis, tmp_path, QUANT16, mode="drop_recreate")  # what the task plans on the fly
    killed = run_killed(redis_url, path, tmp_path / "b", failpoint)
    assert killed.returncode == -signal.SIGKILL
    args = module_args(redis_url, tmp_path)
    again = run_module(redis_index_migrate, args, capsys)
    assert again["changed"] and again["result"] == "succeeded"
    assert again["report"]["plan_checksum"] == _plan.checksum  # its own plan, not a new one
    assert dump_hashes(clean_redis, b"doc:*") == {k: {**v, b"vec": f16(v[b"vec"])} for k, v in originals.items()}
    assert run_module(redis_index_migrate, args, capsys)["changed"] is False


def test_on_the_fly_task_with_other_changes_waits_for_the_unfinished_one(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis)
    _plan, path = planned(clean_redis, tmp_path, QUANT16, mode="drop_recreate")
    assert run_killed(redis_url, path, tmp_path / "b", "quantize:2").returncode == -signal.SIGKILL
    before = server_state(clean_redis)
    other = module_args(
        redis_url,
        tmp_path,
        patch={"version": 1, "changes": {"update_fields": [{"name": "vec", "attrs": {"datatype": "bfloat16"}}]}},
    )
    failed = run_module(redis_index_migrate, other, capsys, expect_failure=True)
    assert "an unfinished migration of idx" in failed["msg"] and "asked for other changes" in failed["msg"]
    assert "plan_file" in failed["hint"] and "redis_index_rollback" in failed["hint"]
    assert server_state(clean_redis) == before


def test_on_the_fly_task_that_stopped_before_changing_anything_plans_again(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis)
    _plan, path = planned(clean_redis, tmp_path, QUANT16)
    assert run_killed(redis_url, path, tmp_path / "b", "backup:2").returncode == -signal.SIGKILL
    clean_redis.hset("doc:1", "title", "changed since")  # a fresh plan sees the index as it is now
    done = run_module(redis_index_migrate, module_args(redis_url, tmp_path), capsys)
    assert done["result"] == "succeeded" and done["report"]["plan_checksum"] != _plan.checksum


@pytest.mark.parametrize(
    "changes, mode, no_longer_fits",
    [
        ({"rename_fields": [{"old_name": "title", "new_name": "headline"}]}, "drop_recreate", "no field 'title'"),
        ({"index": {"name": "idx_v2"}}, "online", None),
    ],
)
def test_on_the_fly_task_run_again_after_success_changes_nothing(
    clean_redis, redis_url, capsys, tmp_path, changes, mode, no_longer_fits
):
    """A renamed field: the request no longer fits the migrated index; its completed migration answers."""
    load(clean_redis, docs=40)
    args = module_args(redis_url, tmp_path, patch={"version": 1, "changes": changes}, mode=mode)
    done = run_module(redis_index_migrate, args, capsys)
    assert done["changed"] and done["result"] == "succeeded" and done["plan"]["mode"] == mode
    after = server_state(clean_redis)
    for check_mode in (True, False):
        again = run_module(redis_index_migrate, args, capsys, check_mode=check_mode)
        assert again["changed"] is False and again["result"] == "already_completed"
        assert again["backup_path"] == done["backup_path"]
    assert server_state(clean_redis) == after and os.listdir(tmp_path / "b") == [os.path.basename(done["backup_path"])]
    if no_longer_fits:
        # Changed by hand since: the request is planned against the index as it is now, where it does not fit.
        clean_redis.execute_command("FT.ALTER", "idx", "SCHEMA", "ADD", "extra", "TAG")
        failed = run_module(redis_index_migrate, args, capsys, expect_failure=True)
        assert no_longer_fits in failed["msg"]


# --- the conversion is staged before the drop: after it, the quantize phase only writes --------------------


def test_converted_vectors_are_staged_before_the_drop_and_checked(clean_redis, redis_url, tmp_path):
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import BackupStore
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import BackupInvalid

    load(clean_redis)
    originals = dump_hashes(clean_redis, b"doc:*")
    # The batch size run_killed uses.
    plan, path = planned(clean_redis, tmp_path, QUANT16, batch_size=50, mode="drop_recreate")
    assert run_killed(redis_url, path, tmp_path / "b", "drop:0").returncode == -signal.SIGKILL
    store = BackupStore.for_plan(str(tmp_path / "b"), plan.checksum)
    staged = {r.key: r.value(b"vec") for _b, records in store_blocks(store.path("staged.bin")) for r in records}
    assert staged == {k: f16(v[b"vec"]) for k, v in originals.items()}  # converted while the index served
    assert os.path.getsize(store.path("staged.bin")) == plan.estimate.staged_bytes
    assert dump_hashes(clean_redis, b"doc:*") == originals  # nothing written yet
    with open(store.path("staged.bin"), "r+b") as handle:  # one flipped byte
        handle.seek(os.path.getsize(store.path("staged.bin")) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    before = server_state(clean_redis)
    with pytest.raises(BackupInvalid, match="staged conversions"):
        run(clean_redis, redis_url, plan, tmp_path / "b")
    assert server_state(clean_redis) == before


def store_blocks(path):
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.format import (
        decode_records,
        iter_blocks,
    )

    with open(path, "rb") as stream:
        for block in iter_blocks(stream):
            yield block.block_no, [r for _i, r in decode_records(block.payload, block.record_count)]


def test_int8_targets_are_staged_in_a_second_pass_with_their_fitted_scale(tmp_path):
    """int8/uint8 need the scale over every value before converting any (this server lacks them, so the
    pass is checked on its own): staged.bin holds exactly the codec's conversion with those parameters."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.backup import (
        stage_from_backup,
    )
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.format import encode_record
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import (
        BackupHeader,
        BackupStore,
    )
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.rewrites import (
        DocumentRewrites,
        Quantize,
    )
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.codec import convert_batch
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.fitting import (
        RangeStats,
        fit_quant_params,
    )

    rewrites = DocumentRewrites(
        quantize=[
            Quantize(
                field="vec",
                location="vec",
                source_location="vec",
                dims=DIMS,
                source="float32",
                target="int8",
                metric="l2",
            )
        ]
    )
    store = BackupStore.create(
        str(tmp_path),
        BackupHeader(
            plan_checksum="sha256:" + "0" * 64,
            plan_id="0" * 12,
            source_index="idx",
            target_index="idx",
            storage="hash",
            batch_size=3,
        ),
        "plan: {}\n",
    )
    vectors = numpy.random.default_rng(4).standard_normal((7, DIMS)).astype(numpy.float32)
    writer = store.data_writer()
    for start in range(0, 7, 3):
        writer.write_block(
            [
                encode_record(f"k{i}".encode(), [(b"vec", vectors[i].tobytes() if i != 5 else None)])
                for i in range(start, min(start + 3, 7))
            ]
        )
    writer.close()
    store.header.data_blocks, store.header.data_records = writer.blocks, writer.records
    store.header.data_bytes, store.header.data_chain = writer.bytes, writer.chain
    stats = RangeStats()
    stats.update_buffers([v.tobytes() for v in vectors], "float32", DIMS)
    params = fit_quant_params("int8", "l2", stats, source_datatype="float32")
    stage_from_backup(store, rewrites, {"vec": params})
    assert store.verify_staged().ok and store.header.staged_records == 7
    staged = {r.key: r.value(b"vec") for _b, records in store_blocks(store.path("staged.bin")) for r in records}
    expected = convert_batch([v.tobytes() for v in vectors], "float32", "int8", DIMS, params)
    assert staged == {f"k{i}".encode(): (expected[i] if i != 5 else None) for i in range(7)}
