"""redis_index_rollback against the real server: back to exactly where it started."""

from __future__ import annotations

import hashlib
import os
import signal

import numpy
import pytest
from datasets import wait_for
from module_runner import run_module
from test_redis_index_migrate import (
    BATCH,
    DIMS,
    DOCS,
    QUANT16,
    dump_hashes,
    load,
    make_plan,
    run,
    run_killed,
)

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import (
    BackupStore,
    read_header,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import create_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import (
    index_exists,
    snapshot_index,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import parse_patch
from ansible_collections.indexops.redis_search.plugins.modules import (
    redis_index_migrate,
    redis_index_rollback,
    redis_index_validate,
)

RICH_INDEX = [  # every kind of index option, so "recreated exactly" means something
    "FT.CREATE",
    "idx",
    "ON",
    "HASH",
    "PREFIX",
    "1",
    "doc:",
    "FILTER",
    '@title!="hidden"',
    "LANGUAGE",
    "german",
    "SCORE",
    "0.8",
    "NOOFFSETS",
    "STOPWORDS",
    "2",
    "der",
    "die",
    "SCHEMA",
    "title",
    "TEXT",
    "NOSTEM",
    "WEIGHT",
    "2.5",
    "SORTABLE",
    "tag",
    "TAG",
    "SEPARATOR",
    ";",
    "CASESENSITIVE",
    "vec",
    "VECTOR",
    "HNSW",
    "14",
    "TYPE",
    "FLOAT32",
    "DIM",
    str(DIMS),
    "DISTANCE_METRIC",
    "L2",
    "M",
    "12",
    "EF_CONSTRUCTION",
    "150",
    "EF_RUNTIME",
    "30",
    "EPSILON",
    "0.03",
]


def command_stats(client):
    """INFO commandstats with lower-case keys: the server names module commands FT.CREATE but json.set."""
    return {key.lower(): value for key, value in client.info("commandstats").items()}


def state(client):
    """Documents, index definition and aliases: what a rollback must give back."""
    schema = snapshot_index(client, "idx").snapshot.index_schema.to_dict() if index_exists(client, "idx") else None
    return dump_hashes(client), schema


def rich(client, docs=200):
    rng = numpy.random.default_rng(3)
    client.execute_command(*RICH_INDEX)
    pipe = client.pipeline(transaction=False)
    for i in range(docs):
        pipe.hset(
            f"doc:{i}",
            mapping={
                "title": f"titel {i}",
                "tag": f"a;b{i % 4}",
                "vec": rng.standard_normal(DIMS).astype(numpy.float32).tobytes(),
            },
        )
    pipe.execute()
    wait_for(client, "idx", docs)


def roll(client, backup_dir, index="idx", **kwargs):
    return rollback(client, choose_backup(str(backup_dir), index), **kwargs)


def test_rollback_after_completed_quantization_restores_every_byte(clean_redis, redis_url, tmp_path):
    rich(clean_redis)
    clean_redis.execute_command("FT.ALIASADD", "live", "idx")
    before = state(clean_redis)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16, aliases=["live"], mode="drop_recreate"), tmp_path)
    assert state(clean_redis) != before
    changed, result = roll(clean_redis, tmp_path)
    assert changed and result.result == "rolled_back"
    assert result.restored == 200 and result.skipped_deleted == 0 and result.dropped_target and result.recreated_source
    assert state(clean_redis) == before  # every byte of every document, and every index option
    assert clean_redis.execute_command("FT.INFO", "live")[1] == b"idx"
    query = clean_redis.hget("doc:7", "vec")  # float32 again: a float32 query finds the document
    reply = clean_redis.execute_command(
        "FT.SEARCH", "idx", "*=>[KNN 1 @vec $v]", "PARAMS", "2", "v", query, "NOCONTENT", "DIALECT", "2"
    )
    assert reply[1:] == [b"doc:7"]
    assert result.validation["passed"] and result.validation["values_checked"] > 0
    again_changed, again = roll(clean_redis, tmp_path)
    assert not again_changed and again.result == "already_rolled_back"


@pytest.mark.parametrize("failpoint", ["backup:3", "drop:0", "quantize:2", "create:0", "validate:start"])
def test_rollback_after_a_migration_killed_in_any_phase(clean_redis, redis_url, tmp_path, failpoint):
    load(clean_redis)
    before = state(clean_redis)
    plan = make_plan(
        clean_redis,
        {"rename_fields": [{"old_name": "title", "new_name": "headline"}], "index": {"prefix": "item:"}, **QUANT16},
        mode="drop_recreate",
    )
    write_plan(plan, str(tmp_path / "plan.yaml"))
    assert run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "b", failpoint).returncode == -signal.SIGKILL
    changed, result = roll(clean_redis, tmp_path / "b")
    assert changed and result.validation["passed"]
    assert state(clean_redis) == before
    assert list(clean_redis.scan_iter(match="item:*")) == []


def test_rollback_of_index_prefix_and_field_renames(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    clean_redis.execute_command("FT.ALIASADD", "live", "idx")
    clean_redis.pexpire("doc:4", 600_000)
    before = state(clean_redis)
    plan = make_plan(
        clean_redis,
        {
            "rename_fields": [{"old_name": "title", "new_name": "headline"}],
            "index": {"name": "idx_v2", "prefix": "item:"},
        },
        aliases=["live"],
        mode="drop_recreate",
    )
    run(clean_redis, redis_url, plan, tmp_path)
    assert index_exists(clean_redis, "idx_v2") and not index_exists(clean_redis, "idx")
    changed, result = roll(clean_redis, tmp_path, index="idx_v2")  # found by its new name too
    assert changed and result.dropped_target
    assert not index_exists(clean_redis, "idx_v2")
    assert state(clean_redis) == before
    assert clean_redis.execute_command("FT.INFO", "live")[1] == b"idx"
    assert 500_000 < clean_redis.pttl("doc:4") <= 600_000


@pytest.mark.parametrize(
    "changes",
    [
        {"rename_fields": [{"old_name": "title", "new_name": "headline"}]},
        {"rename_fields": [{"old_name": "title", "new_name": "headline"}], **QUANT16},
    ],
    ids=["rename", "rename_and_quantize"],
)
def test_a_field_rename_and_its_rollback_keep_the_field_order(clean_redis, redis_url, tmp_path, changes):
    """Small hashes (listpack, as these: 16-d float32 vectors are 64 bytes) keep their fields in the order
    written: the renamed field takes the old one's place, and back, so the DUMP bytes are the original ones."""
    load(clean_redis)
    clean_redis.pexpire("doc:4", 600_000)
    assert clean_redis.object("encoding", "doc:1") == b"listpack"
    order = [list(clean_redis.hgetall(f"doc:{i}")) for i in range(3)]
    dumps = {key: clean_redis.dump(key) for key in clean_redis.scan_iter(match="doc:*")}
    run(clean_redis, redis_url, make_plan(clean_redis, changes), tmp_path)
    old, new = changes["rename_fields"][0]["old_name"].encode(), changes["rename_fields"][0]["new_name"].encode()
    renamed = [[new if f == old else f for f in fields] for fields in order]
    assert [list(clean_redis.hgetall(f"doc:{i}")) for i in range(3)] == renamed
    _changed, result = roll(clean_redis, tmp_path)
    assert result.restored == DOCS and result.validation["passed"]
    assert {key: clean_redis.dump(key) for key in clean_redis.scan_iter(match="doc:*")} == dumps
    assert 500_000 < clean_redis.pttl("doc:4") <= 600_000


def test_a_hash_table_gets_its_contents_back_whatever_the_order(clean_redis, redis_url, tmp_path):
    """A hash with a value over 64 bytes (a 64-d float32 vector) is a hash table: no field order to keep."""
    clean_redis.execute_command(
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
        "64",
        "DISTANCE_METRIC",
        "L2",
    )
    rng = numpy.random.default_rng(8)
    for i in range(50):
        clean_redis.hset(f"doc:{i}", mapping={"title": f"t {i}", "vec": rng.random(64, dtype=numpy.float32).tobytes()})
    clean_redis.pexpire("doc:4", 600_000)
    wait_for(clean_redis, "idx", 50)
    assert clean_redis.object("encoding", "doc:1") == b"hashtable"
    before = dump_hashes(clean_redis)
    run(
        clean_redis,
        redis_url,
        make_plan(clean_redis, {"rename_fields": [{"old_name": "title", "new_name": "name"}]}),
        tmp_path,
    )
    _changed, result = roll(clean_redis, tmp_path)
    assert result.restored == 50 and dump_hashes(clean_redis) == before
    assert 500_000 < clean_redis.pttl("doc:4") <= 600_000


def test_json_rollback(clean_redis, redis_url, tmp_path):
    load(clean_redis, storage="json", prefix="j:")
    before = {k: clean_redis.execute_command("JSON.GET", k) for k in clean_redis.scan_iter(match="j:*")}
    schema = snapshot_index(clean_redis, "idx").snapshot.index_schema.to_dict()
    run(
        clean_redis,
        redis_url,
        make_plan(
            clean_redis, {"rename_fields": [{"old_name": "title", "new_name": "name"}], **QUANT16}, mode="drop_recreate"
        ),
        tmp_path,
    )
    roll(clean_redis, tmp_path)
    assert {k: clean_redis.execute_command("JSON.GET", k) for k in clean_redis.scan_iter(match="j:*")} == before
    assert snapshot_index(clean_redis, "idx").snapshot.index_schema.to_dict() == schema


def test_deleted_key_stays_deleted(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    before, _schema = state(clean_redis)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16), tmp_path)
    clean_redis.delete("doc:9", "doc:10")
    changed, result = roll(clean_redis, tmp_path)
    assert changed and result.skipped_deleted == 2 and sorted(result.skipped_keys) == ["doc:10", "doc:9"]
    assert not clean_redis.exists("doc:9") and not clean_redis.exists("doc:10")
    after, _schema = state(clean_redis)
    assert after == {k: v for k, v in before.items() if k not in (b"doc:9", b"doc:10")}
    assert result.validation["doc_count_expected"] == result.validation["doc_count_actual"] == 298


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_backup_is_refused_with_nothing_written(clean_redis, redis_url, tmp_path, capsys, damage):
    load(clean_redis)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16), tmp_path)
    store = choose_backup(str(tmp_path), "idx")
    data = store.path("data.bin")
    with open(data, "r+b") as handle:
        if damage == "flip":
            handle.seek(1000)
            byte = handle.read(1)
            handle.seek(1000)
            handle.write(bytes([byte[0] ^ 0x80]))
        else:
            handle.truncate(os.path.getsize(data) - 1)
    migrated = state(clean_redis)
    commands = command_stats(clean_redis)
    failed = run_module(
        redis_index_rollback,
        {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path)},
        capsys,
        expect_failure=True,
    )
    assert failed["error_type"] == "backup_invalid" and "failed verification" in failed["msg"]
    assert "nothing was written" in failed["msg"]
    assert state(clean_redis) == migrated
    writes = ("cmdstat_hset", "cmdstat_evalsha", "cmdstat_eval", "cmdstat_ft.create", "cmdstat_ft.dropindex")
    assert all(k in commands for k in ("cmdstat_hset", "cmdstat_ft.create", "cmdstat_ft.dropindex"))
    after = command_stats(clean_redis)
    assert {k: after.get(k) for k in writes} == {k: commands.get(k) for k in writes}
    assert read_header(store.directory).status == "completed"


def test_partial_rollback_restores_the_verified_records(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    before, _schema = state(clean_redis)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16, batch_size=BATCH), tmp_path)
    store = choose_backup(str(tmp_path), "idx")
    with open(store.path("data.bin"), "r+b") as handle:  # damage one record of the first block
        handle.seek(16 + 52 + 10)
        byte = handle.read(1)
        handle.seek(16 + 52 + 10)
        handle.write(bytes([byte[0] ^ 0x01]))
    changed, result = rollback(clean_redis, choose_backup(str(tmp_path), "idx"), partial=True)
    assert changed and result.restored == 300 - BATCH
    assert len(result.unverified) == BATCH and {u["block"] for u in result.unverified} == {0}
    after, _schema = state(clean_redis)
    restored = [k for k in before if after[k][b"vec"] == before[k][b"vec"]]
    assert len(restored) == 300 - BATCH
    # The unverified documents keep the migrated bytes: the rebuilt source may not index them, and may not be
    # refused for it (an online rollback counts them among those it left as they are).
    assert result.validation["documents_not_restored"] == BATCH


def test_the_right_backup_among_many(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    load(clean_redis, index="other", prefix="o:", docs=20)
    original = state(clean_redis)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16, index="other"), tmp_path)
    bogus = tmp_path / "zzz-000000000000"  # a damaged backup of yet another index
    bogus.mkdir()
    (bogus / "header.json").write_text("{not json")
    first = make_plan(clean_redis, QUANT16)
    run(clean_redis, redis_url, first, tmp_path)
    second = make_plan(clean_redis, {"update_fields": [{"name": "vec", "attrs": {"datatype": "float32"}}]})
    run(clean_redis, redis_url, second, tmp_path)  # float16 -> float32: the newest migration of idx
    _changed, result = roll(clean_redis, tmp_path)
    assert result.backup_path == BackupStore.for_plan(str(tmp_path), second.checksum).directory
    _changed, result = roll(clean_redis, tmp_path)  # then the one before it
    assert result.backup_path == BackupStore.for_plan(str(tmp_path), first.checksum).directory
    docs, _schema = state(clean_redis)
    assert {k: v for k, v in docs.items() if k.startswith(b"doc:")} == {
        k: v for k, v in original[0].items() if k.startswith(b"doc:")
    }
    assert len(clean_redis.hget("o:1", "vec")) == DIMS * 2  # the other index stays migrated


def test_every_migration_of_a_chain_rolled_back_leaves_nothing_to_roll_back(clean_redis, redis_url, tmp_path, capsys):
    load(clean_redis)
    original = state(clean_redis)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16, mode="drop_recreate"), tmp_path)
    run(
        clean_redis,
        redis_url,
        make_plan(clean_redis, {"rename_fields": [{"old_name": "title", "new_name": "name"}]}, mode="drop_recreate"),
        tmp_path,
    )
    args = {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path)}
    first, second = run_module(redis_index_rollback, args, capsys), run_module(redis_index_rollback, args, capsys)
    assert first["changed"] and second["changed"] and first["backup_path"] != second["backup_path"]
    assert state(clean_redis) == original
    headers = {d: open(os.path.join(tmp_path, d, "header.json"), "rb").read() for d in os.listdir(tmp_path)}
    third = run_module(redis_index_rollback, args, capsys)
    assert third["changed"] is False and third["result"] == "already_rolled_back"
    assert third["backup_path"] == second["backup_path"]  # the one rolled back last: its source is what Redis holds
    assert state(clean_redis) == original
    assert {d: open(os.path.join(tmp_path, d, "header.json"), "rb").read() for d in os.listdir(tmp_path)} == headers


def test_rollback_and_validate_by_the_alias_the_migration_was_run_with(clean_redis, redis_url, tmp_path, capsys):
    load(clean_redis)
    clean_redis.execute_command("FT.ALIASADD", "idx_live", "idx")
    before = state(clean_redis)
    migrate_args = {
        "redis_url": redis_url,
        "index": "idx_live",
        "mode": "drop_recreate",
        "patch": {"version": 1, "changes": QUANT16},
        "backup_dir": str(tmp_path / "b"),
        "accept_data_loss": True,
    }
    done = run_module(redis_index_migrate, migrate_args, capsys)
    assert done["changed"] and done["plan"]["source"]["requested_as"] == "idx_live"
    args = {"redis_url": redis_url, "index": "idx_live", "backup_dir": str(tmp_path / "b")}
    checked = run_module(redis_index_validate, args, capsys)
    assert checked["passed"] and checked["backup_path"] == done["backup_path"]
    rolled = run_module(redis_index_rollback, args, capsys)
    assert rolled["changed"] and rolled["backup_path"] == done["backup_path"]
    assert state(clean_redis) == before and clean_redis.execute_command("FT.INFO", "idx_live")[1] == b"idx"
    # Killed after the drop (which dropped the alias with the index): found by the name it was planned through.
    plan = create_plan(
        clean_redis, "idx_live", patch=parse_patch({"version": 1, "changes": QUANT16}), mode="drop_recreate"
    )
    write_plan(plan, str(tmp_path / "plan.yaml"))
    assert run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "c", "quantize:2").returncode == -signal.SIGKILL
    assert not index_exists(clean_redis, "idx_live")
    again = run_module(redis_index_rollback, {**args, "backup_dir": str(tmp_path / "c")}, capsys)
    assert again["changed"] and again["restored"] + again["already_restored"] == 300
    assert state(clean_redis) == before and clean_redis.execute_command("FT.INFO", "idx_live")[1] == b"idx"


def test_check_mode_then_module_idempotence_then_reapply(clean_redis, redis_url, tmp_path, capsys):
    load(clean_redis)
    before = state(clean_redis)
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    run(clean_redis, redis_url, plan, tmp_path)
    migrated = state(clean_redis)
    args = {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path)}
    preview = run_module(redis_index_rollback, args, capsys, check_mode=True)
    assert preview["changed"] and preview["result"] == "would_roll_back" and preview["records"] == 300
    assert state(clean_redis) == migrated
    done = run_module(redis_index_rollback, args, capsys)
    assert done["changed"] and done["restored"] == 300 and state(clean_redis) == before
    again = run_module(redis_index_rollback, args, capsys)
    assert again["changed"] is False and again["result"] == "already_rolled_back"

    first = BackupStore.for_plan(str(tmp_path), plan.checksum)
    fingerprint = hashlib.sha256(open(first.path("data.bin"), "rb").read()).hexdigest()
    outcome = run(clean_redis, redis_url, plan, tmp_path)  # the same plan, applied again
    assert outcome.report.result == "succeeded" and outcome.report.attempt == 2
    assert outcome.report.backup_path != first.directory
    assert hashlib.sha256(open(first.path("data.bin"), "rb").read()).hexdigest() == fingerprint
    assert read_header(first.directory).status == "rolled_back"
    assert state(clean_redis) == migrated


def test_missing_backup_dir_and_unknown_index(clean_redis, redis_url, tmp_path, capsys):
    load(clean_redis, docs=10)
    missing = run_module(
        redis_index_rollback,
        {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path / "nope")},
        capsys,
        expect_failure=True,
    )
    assert "does not exist" in missing["msg"] and not (tmp_path / "nope").exists()
    unknown = run_module(
        redis_index_rollback,
        {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path)},
        capsys,
        expect_failure=True,
    )
    assert "no backup of index 'idx'" in unknown["msg"]
