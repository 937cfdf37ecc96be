"""redis_index_batch against the real server: plan once, apply to the end, every byte checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy
import yaml
from datasets import wait_for
from module_runner import run_module
from test_migrate_safety import server_state
from test_redis_index_migrate import QUANT16, dump_hashes, load

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import (
    BackupStore,
    read_header,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.batch.plan import BatchPlan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.batch.state import read_state, save_state
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import plan_from_dict
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.lock import lock_key
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import (
    index_exists,
    snapshot_index,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_batch, redis_index_validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = os.path.join(ROOT, "plugins", "modules", "redis_index_batch.py")
MIGRATED = ("idx_a", "idx_b", "idx_c")
DOCS, BATCH = 200, 50  # 4 backup blocks per index: a failure at quantize:2 leaves half converted
PATCH = {"version": 1, "changes": QUANT16}
FAIL_AFTER_DROP = "quantize:2:raise"


def prefix_of(index: str) -> bytes:
    return index[-1].encode() + b":"


def load_batch(client) -> dict:
    """idx_a, idx_b, idx_c (hash, float32 `vec`, prefixes a:, b:, c:) and idx_z, which has no `vec`.
    Returns every hash of every index, as it was."""
    for n, name in enumerate(MIGRATED):
        load(client, index=name, prefix=prefix_of(name).decode(), docs=DOCS, seed=20 + n)
    client.execute_command("FT.CREATE", "idx_z", "ON", "HASH", "PREFIX", "1", "z:", "SCHEMA", "title", "TEXT")
    for i in range(15):
        client.hset(f"z:{i}", "title", f"note {i}")
    wait_for(client, "idx_z", 15)
    return dump_hashes(client)


def converted(before: dict, indexes=MIGRATED) -> dict:
    """The exact bytes float32 -> float16 must leave in the migrated indexes' documents."""
    wanted = tuple(prefix_of(i) for i in indexes)
    return {
        k: {**v, b"vec": numpy.frombuffer(v[b"vec"], numpy.float32).astype(numpy.float16).tobytes()}
        for k, v in before.items()
        if k.startswith(wanted)
    }


def subset(hashes: dict, *indexes: str) -> dict:
    wanted = tuple(prefix_of(i) for i in indexes)
    return {k: v for k, v in hashes.items() if k.startswith(wanted)}


def plan_args(redis_url, tmp_path, **extra) -> dict:
    """Planning options (pattern idx_* unless another selection is given; None leaves an option out)."""
    args = {
        "redis_url": redis_url,
        "state": "planned",
        "patch": PATCH,
        # The drop_recreate path, whose phases the failure points below name (a rewrite plans online by default:
        # test_engine_correctness.py runs a batch online).
        "mode": "drop_recreate",
        "plan_out": str(tmp_path / "batch.yaml"),
        "batch_size": BATCH,
        **extra,
    }
    if not {"indexes", "indexes_file"} & set(extra):
        args.setdefault("pattern", "idx_*")
    return {k: v for k, v in args.items() if v is not None}


def apply_args(redis_url, tmp_path, state="applied", **extra) -> dict:
    return {
        "redis_url": redis_url,
        "state": state,
        "plan_file": str(tmp_path / "batch.yaml"),
        "backup_dir": str(tmp_path / "b"),
        "batch_size": BATCH,
        "accept_data_loss": True,
        **extra,
    }


def by_name(result: dict) -> dict:
    return {entry["name"]: entry for entry in result["indexes"]}


def backups(tmp_path) -> list:
    root = tmp_path / "b"
    return sorted(os.listdir(root)) if root.exists() else []


# --- planning -------------------------------------------------------------------------------------------


def test_plan_skips_the_index_the_patch_does_not_fit_and_seals_every_plan(clean_redis, redis_url, capsys, tmp_path):
    load_batch(clean_redis)
    before = server_state(clean_redis)
    dry = run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys, check_mode=True)
    assert dry["changed"] and not (tmp_path / "batch.yaml").exists()

    planned = run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)
    assert planned["changed"] and planned["result"] == "planned"
    assert planned["applicable"] == list(MIGRATED)
    [skipped] = planned["skipped_indexes"]
    assert skipped["name"] == "idx_z" and "'vec'" in skipped["reason"] and "does not fit" in skipped["reason"]
    entries = by_name(planned)
    assert entries["idx_a"]["lossy"] == ["vec float32->float16"] and entries["idx_a"]["documents"] == DOCS
    assert entries["idx_a"]["prefixes"] == ["a:"] and entries["idx_z"]["plan_checksum"] is None
    # The file holds each index's own sealed plan, loadable as redis_index_migrate loads one.
    with open(tmp_path / "batch.yaml", encoding="utf-8") as handle:
        import yaml  # pylint: disable=import-outside-toplevel

        on_disk = yaml.safe_load(handle)
    assert on_disk["checksum"] == planned["batch_plan"]["checksum"] and on_disk["checksum"][7:19] == planned["batch_id"]
    for entry in on_disk["indexes"][:3]:
        plan = plan_from_dict(entry["plan"])
        assert plan.checksum == entry["plan_checksum"] and plan.source.index == entry["name"]
        assert plan.target().field("vec").attrs.datatype == "float16"
    assert on_disk["indexes"][3] == {**on_disk["indexes"][3], "applicable": False, "plan": None}
    assert any("idx_z is skipped" in str(w) for w in planned.get("warnings", []))
    assert server_state(clean_redis) == before  # planning changed nothing

    again = run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)
    assert again["changed"] is False and again["batch_id"] == planned["batch_id"]


def test_selection_by_list_and_file_keeps_its_order_and_skips_unknown_names(clean_redis, redis_url, capsys, tmp_path):
    load_batch(clean_redis)
    listed = run_module(
        redis_index_batch, plan_args(redis_url, tmp_path, indexes=["idx_c", "missing", "idx_a"]), capsys
    )
    assert [e["name"] for e in listed["indexes"]] == ["idx_c", "missing", "idx_a"]
    assert listed["applicable"] == ["idx_c", "idx_a"]
    assert listed["skipped_indexes"] == [{"name": "missing", "reason": "no index or alias named 'missing'"}]
    names = tmp_path / "names.txt"
    names.write_text("# tenants\nidx_b\n\n  idx_a  \nidx_b\n", encoding="utf-8")
    filed = run_module(
        redis_index_batch, plan_args(redis_url, tmp_path, indexes_file=str(names), plan_out=None), capsys
    )
    assert filed["applicable"] == ["idx_b", "idx_a"] and filed["batch_plan"]["selection"]["kind"] == "file"
    # Aliases are declared per index (FT.DROPINDEX drops them; this server cannot list them).
    clean_redis.execute_command("FT.ALIASADD", "live_a", "idx_a")
    aliased = run_module(
        redis_index_batch,
        plan_args(redis_url, tmp_path, indexes=["idx_a"], plan_out=None, aliases={"idx_a": ["live_a"]}),
        capsys,
    )
    assert plan_from_dict(aliased["batch_plan"]["indexes"][0]["plan"]).source.aliases == ["live_a"]
    stray = run_module(
        redis_index_batch,
        plan_args(redis_url, tmp_path, indexes=["idx_a"], plan_out=None, aliases={"idx_b": ["live_a"]}),
        capsys,
        expect_failure=True,
    )
    assert "aliases names indexes that are not in the batch: idx_b" in stray["msg"]


def test_overlapping_prefixes_are_refused_at_plan_time(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis, index="idx_main", prefix="p:", docs=30)
    load(clean_redis, index="idx_premium", prefix="p:premium:", docs=30, seed=3)
    refused = run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys, expect_failure=True)
    assert refused["error_type"] == "plan_blocked" and "refusing the batch plan" in refused["msg"]
    assert "idx_main <-> idx_premium" in refused["msg"]
    assert [c["indexes"] for c in refused["conflicts"]] == [["idx_main", "idx_premium"]]
    assert not (tmp_path / "batch.yaml").exists()
    # Not only vector rewrites: two index-only changes of overlapping indexes are refused as well.
    tag = {"version": 1, "changes": {"add_fields": [{"name": "extra", "type": "tag"}]}}
    refused = run_module(redis_index_batch, plan_args(redis_url, tmp_path, patch=tag), capsys, expect_failure=True)
    assert refused["conflicts"] == [
        {
            "indexes": ["idx_main", "idx_premium"],
            "kind": "overlapping_prefixes",
            "reason": "idx_main <-> idx_premium: 'p:' <-> 'p:premium:'",
        }
    ]
    # A skipped index does not take part: idx_notes covers p: too but has no `vec` for the patch.
    clean_redis.execute_command("FT.DROPINDEX", "idx_premium")
    clean_redis.execute_command("FT.CREATE", "idx_notes", "ON", "HASH", "PREFIX", "1", "p:", "SCHEMA", "title", "TEXT")
    planned = run_module(redis_index_batch, plan_args(redis_url, tmp_path, pattern="idx_*"), capsys)
    assert planned["applicable"] == ["idx_main"] and planned["skipped_indexes"][0]["name"] == "idx_notes"


def test_two_indexes_moved_onto_one_prefix_are_refused_at_plan_time(clean_redis, redis_url, capsys, tmp_path):
    load_batch(clean_redis)
    before = server_state(clean_redis)
    onto_m = {"version": 1, "changes": {"index": {"prefix": "m:"}}}
    refused = run_module(
        redis_index_batch,
        plan_args(redis_url, tmp_path, indexes=["idx_a", "idx_b"], patch=onto_m),
        capsys,
        expect_failure=True,
    )
    assert refused["error_type"] == "plan_blocked" and "\n" not in refused["msg"]
    assert refused["conflicts"] == [
        {
            "indexes": ["idx_a", "idx_b"],
            "kind": "overlapping_prefixes",
            "reason": "idx_a <-> idx_b: 'm:' <-> 'm:' once the prefix changes are applied "
            "(their keys would end up under one prefix)",
        }
    ]
    assert not (tmp_path / "batch.yaml").exists() and server_state(clean_redis) == before
    # One index moved onto a prefix of its own is no conflict, and the entry says where its keys go.
    planned = run_module(redis_index_batch, plan_args(redis_url, tmp_path, indexes=["idx_a"], patch=onto_m), capsys)
    assert by_name(planned)["idx_a"]["target_prefixes"] == ["m:"] and by_name(planned)["idx_a"]["prefixes"] == ["a:"]


def test_an_index_outside_the_batch_reading_the_vectors_refuses_it(clean_redis, redis_url, capsys, tmp_path):
    load_batch(clean_redis)
    clean_redis.execute_command(
        "FT.CREATE",
        "reader",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "b:",
        "SCHEMA",
        "vec",
        "VECTOR",
        "FLAT",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        "16",
        "DISTANCE_METRIC",
        "L2",
    )
    refused = run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys, expect_failure=True)
    [conflict] = refused["conflicts"]
    assert conflict["kind"] == "shared_keys" and conflict["indexes"] == ["idx_b", "reader"]
    assert "index 'reader' is not in this batch" in conflict["reason"] and "also indexes vec" in conflict["reason"]
    assert not (tmp_path / "batch.yaml").exists()


# --- applying -------------------------------------------------------------------------------------------


def test_fail_fast_after_a_drop_then_resume_then_retry_failed_then_rollback(
    clean_redis, redis_url, capsys, tmp_path, monkeypatch
):
    original = load_batch(clean_redis)
    schemas = {name: snapshot_index(clean_redis, name).snapshot.index_schema.to_dict() for name in MIGRATED}
    run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)

    # 1. The first index fails after its drop: fail_fast stops the batch there.
    monkeypatch.setenv("INDEXOPS_FAILPOINT", FAIL_AFTER_DROP)
    failed = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys, expect_failure=True)
    assert failed["error_type"] == "batch_failed" and failed["result"] == "failed" and failed["changed"] is True
    assert failed["ran"] == ["idx_a"]
    assert failed["counts"] == {"pending": 2, "running": 0, "succeeded": 0, "failed": 1, "skipped": 1}
    [fault] = failed["failures"]
    assert fault["name"] == "idx_a" and fault["phase"] == "quantize" and fault["index_dropped"] is True
    assert "failure injected at quantize:2" in fault["error"]
    assert not index_exists(clean_redis, "idx_a")
    now = dump_hashes(clean_redis)
    halfway = [k for k in subset(original, "idx_a") if now[k][b"vec"] != original[k][b"vec"]]
    # Two blocks done when the failure hits - and the third, already on the wire (its outcome unread,
    # so not in the ledger: the resume writes it again, which changes nothing).
    assert len(halfway) in (2 * BATCH, 3 * BATCH)
    assert subset(now, "idx_b", "idx_c", "idx_z") == subset(original, "idx_b", "idx_c", "idx_z")
    state = read_state(failed["state_file"])
    assert [(r.name, r.status) for r in state.indexes] == [
        ("idx_a", "failed"),
        ("idx_b", "pending"),
        ("idx_c", "pending"),
        ("idx_z", "skipped"),
    ]
    assert state.backup_dir == str(tmp_path / "b") and state.batch_id == failed["batch_id"]
    header = read_header(state.entry("idx_a").backup_path)
    assert header.status == "failed" and header.phases["drop"].done and not header.phases["quantize"].done

    # 2. Status, readable: counts, the failure, what a resume would do.
    status = run_module(redis_index_batch, {"state": "status", "plan_file": str(tmp_path / "batch.yaml")}, capsys)
    assert status["changed"] is False and status["result"] == "failed"
    text = "\n".join(status["summary"])
    assert "failed - 1 failed, 2 pending, 1 skipped" in status["summary"][0]
    assert "FAILED    idx_a: migration stopped in phase quantize" in text and "the index was dropped" in text
    assert "next: resume migrates idx_b" in text and "next: resume migrates idx_c" in text
    assert (
        f"next: idx_a stays failed; retry_failed=true resumes it from phase quantize with its plan and backup "
        f"{state.entry('idx_a').backup_path}" in text
    )

    # 3. Resume finishes the rest; idx_a stays failed, so the task still fails.
    resumed = run_module(
        redis_index_batch, apply_args(redis_url, tmp_path, state="resumed"), capsys, expect_failure=True
    )
    assert resumed["result"] == "partial_failure" and resumed["ran"] == ["idx_b", "idx_c"]
    assert [by_name(resumed)[n]["status"] for n in MIGRATED] == ["failed", "succeeded", "succeeded"]
    assert subset(dump_hashes(clean_redis), "idx_b", "idx_c") == converted(original, ("idx_b", "idx_c"))

    # 4. retry_failed finishes idx_a from its own plan and backup: every vector byte as converted.
    retried = run_module(redis_index_batch, apply_args(redis_url, tmp_path, state="resumed", retry_failed=True), capsys)
    assert retried["changed"] and retried["result"] == "completed" and retried["ran"] == ["idx_a"]
    entry = by_name(retried)["idx_a"]
    assert entry["status"] == "succeeded" and entry["attempts"] == 2 and entry["validation_passed"] is True
    assert entry["backup_path"] == state.entry("idx_a").backup_path and entry["documents"] == DOCS
    assert dump_hashes(clean_redis) == {**converted(original), **subset(original, "idx_z")}
    assert snapshot_index(clean_redis, "idx_a").snapshot.index_schema.field("vec").attrs.datatype == "float16"
    assert not clean_redis.exists(lock_key("idx_a"))

    # 5. Applying the same plan again changes nothing; the report says what happened.
    again = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys)
    assert again["changed"] is False and again["result"] == "completed" and again["ran"] == []
    with open(retried["report_file"], encoding="utf-8") as handle:
        import yaml  # pylint: disable=import-outside-toplevel

        report = yaml.safe_load(handle)
    assert report["format"] == "indexops.redis_search/batch-report" and report["status"] == "completed"
    assert report["summary"] == {"total": 4, "pending": 0, "running": 0, "succeeded": 3, "failed": 0, "skipped": 1}
    assert report["runs"] == 3

    # 6. Each index validates on its own afterwards (plan and backup found by its name).
    for name in MIGRATED:
        checked = run_module(
            redis_index_validate, {"redis_url": redis_url, "index": name, "backup_dir": str(tmp_path / "b")}, capsys
        )
        assert checked["passed"] and checked["backup_verified"] and checked["validation"]["vectors_compared"] == 10

    # 7. Each index rolls back to every original byte and its original schema.
    for name in MIGRATED:
        changed, result = rollback(clean_redis, choose_backup(str(tmp_path / "b"), name))
        assert changed and result.validation["passed"], result.problems
        assert snapshot_index(clean_redis, name).snapshot.index_schema.to_dict() == schemas[name]
    assert dump_hashes(clean_redis) == original


def test_continue_on_error_finishes_the_others_and_a_drifted_index_is_left_untouched(
    clean_redis, redis_url, capsys, tmp_path, monkeypatch
):
    original = load_batch(clean_redis)
    run_module(redis_index_batch, plan_args(redis_url, tmp_path, failure_policy="continue_on_error"), capsys)
    # idx_c changes after the review: its reviewed plan no longer describes it.
    clean_redis.execute_command("FT.ALTER", "idx_c", "SCHEMA", "ADD", "added", "TAG")
    drifted = server_state(clean_redis)
    monkeypatch.setenv("INDEXOPS_FAILPOINT", FAIL_AFTER_DROP)
    failed = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys, expect_failure=True)
    assert failed["result"] == "partial_failure" and failed["ran"] == list(MIGRATED)
    entries = by_name(failed)
    assert [entries[n]["status"] for n in MIGRATED] == ["failed", "succeeded", "failed"]
    assert entries["idx_a"]["error"]["index_dropped"] is True
    assert "idx_c changed since the plan was made" in entries["idx_c"]["error"]["message"]
    assert entries["idx_c"]["error"]["index_dropped"] is False and entries["idx_c"]["backup_path"] is None
    now = dump_hashes(clean_redis)
    assert subset(now, "idx_b") == converted(original, ("idx_b",))
    assert subset(now, "idx_c") == subset(original, "idx_c")  # nothing of the drifted index was touched
    assert server_state(clean_redis)[1][b"idx_c"] == drifted[1][b"idx_c"]

    retried = run_module(
        redis_index_batch, apply_args(redis_url, tmp_path, retry_failed=True), capsys, expect_failure=True
    )
    assert retried["ran"] == ["idx_a", "idx_c"]
    assert [by_name(retried)[n]["status"] for n in MIGRATED] == ["succeeded", "succeeded", "failed"]
    assert subset(dump_hashes(clean_redis), "idx_a", "idx_b") == converted(original, ("idx_a", "idx_b"))
    assert "idx_c changed since the plan was made" in retried["msg"]


def test_lossy_conversions_are_accepted_for_every_index_before_the_first_starts(
    clean_redis, redis_url, capsys, tmp_path
):
    load_batch(clean_redis)
    run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)
    before = server_state(clean_redis)
    refused = run_module(
        redis_index_batch, apply_args(redis_url, tmp_path, accept_data_loss=False), capsys, expect_failure=True
    )
    assert refused["error_type"] == "preflight_failed" and "in 3 index(es) need accept_data_loss=true" in refused["msg"]
    assert all(f"{name}: vec float32->float16" in refused["msg"] for name in MIGRATED)
    assert server_state(clean_redis) == before and backups(tmp_path) == []
    assert not os.path.exists(tmp_path / "batch.state.json")


def test_check_mode_runs_each_preflight_and_writes_nothing(clean_redis, redis_url, capsys, tmp_path):
    load_batch(clean_redis)
    run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)
    before = server_state(clean_redis)
    dry = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys, check_mode=True)
    assert dry["changed"] and dry["result"] == "would_apply"
    assert dry["would"] == [{"name": n, "result": "would_migrate"} for n in MIGRATED]
    assert server_state(clean_redis) == before and not (tmp_path / "b").exists()
    assert not os.path.exists(tmp_path / "batch.state.json")


def test_resume_refuses_another_backup_dir_another_plan_and_an_edited_plan(
    clean_redis, redis_url, capsys, tmp_path, monkeypatch
):
    load_batch(clean_redis)
    run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)
    nothing = run_module(
        redis_index_batch, apply_args(redis_url, tmp_path, state="resumed"), capsys, expect_failure=True
    )
    assert "no batch state" in nothing["msg"] and "to resume" in nothing["msg"]
    monkeypatch.setenv("INDEXOPS_FAILPOINT", FAIL_AFTER_DROP)
    first = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys, expect_failure=True)
    state_before = open(first["state_file"], "rb").read()

    other_dir = run_module(
        redis_index_batch,
        {**apply_args(redis_url, tmp_path, state="resumed"), "backup_dir": str(tmp_path / "elsewhere")},
        capsys,
        expect_failure=True,
    )
    assert f"was started with backup_dir {tmp_path / 'b'}" in other_dir["msg"]
    # Another batch plan (planned again: a new id) with this state file.
    run_module(
        redis_index_batch,
        plan_args(redis_url, tmp_path, plan_out=str(tmp_path / "other.yaml"), pattern="idx_[bc]"),
        capsys,
    )
    other_plan = run_module(
        redis_index_batch,
        {
            **apply_args(redis_url, tmp_path, state="resumed"),
            "plan_file": str(tmp_path / "other.yaml"),
            "state_file": first["state_file"],
        },
        capsys,
        expect_failure=True,
    )
    assert f"belongs to batch {first['batch_id']}, not to this batch plan" in other_plan["msg"]
    # An edited batch plan (an index's plan swapped out) is refused before anything.
    text = (
        (tmp_path / "batch.yaml")
        .read_text(encoding="utf-8")
        .replace("failure_policy: fail_fast", "failure_policy: continue_on_error")
    )
    (tmp_path / "batch.yaml").write_text(text, encoding="utf-8")
    edited = run_module(
        redis_index_batch, apply_args(redis_url, tmp_path, state="resumed"), capsys, expect_failure=True
    )
    assert "was changed after it was written" in edited["msg"] and edited["error_type"] == "invalid_plan"
    assert open(first["state_file"], "rb").read() == state_before  # none of them wrote the state


def test_a_batch_plan_field_edited_and_resealed_is_refused(clean_redis, redis_url, capsys, tmp_path):
    """The batch's checksum is plain SHA-256, which anyone can recompute: its own fields are also sealed into
    every per-index plan."""
    load_batch(clean_redis)
    planned = run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)
    data = yaml.safe_load((tmp_path / "batch.yaml").read_text(encoding="utf-8"))
    data["failure_policy"] = "continue_on_error"
    data["checksum"] = BatchPlan.model_validate(data).content_checksum()  # only the outer checksum recomputed
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    before = server_state(clean_redis)
    for check_mode in (True, False):
        refused = run_module(
            redis_index_batch, apply_args(redis_url, tmp_path), capsys, check_mode=check_mode, expect_failure=True
        )
        assert (
            refused["error_type"] == "invalid_plan"
            and "its own fields (failure_policy, selection, patch or "
            "index entries) are not the ones its plan of idx_a was sealed with"
            in refused["msg"]
        )
    assert server_state(clean_redis) == before and backups(tmp_path) == []
    assert not os.path.exists(tmp_path / "batch.state.json")
    fields = BatchPlan.model_validate(planned["batch_plan"]).fields_checksum()
    assert all(plan_from_dict(e["plan"]).batch_fields == fields for e in planned["batch_plan"]["indexes"][:3])


def test_a_state_resealed_as_succeeded_is_checked_against_the_backups_and_the_server(
    clean_redis, redis_url, capsys, tmp_path, monkeypatch
):
    load_batch(clean_redis)
    run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)
    monkeypatch.setenv("INDEXOPS_FAILPOINT", FAIL_AFTER_DROP)
    first = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys, expect_failure=True)
    monkeypatch.delenv("INDEXOPS_FAILPOINT", raising=False)
    assert not index_exists(clean_redis, "idx_a")  # dropped half-way
    state = read_state(first["state_file"])
    for run in state.indexes:
        if run.status != "skipped":
            run.status, run.result = "succeeded", "succeeded"
    state.status = "completed"
    save_state(state, first["state_file"])  # re-sealed: its own checksum is right
    forged, before = open(first["state_file"], "rb").read(), server_state(clean_redis)
    said = "says idx_a succeeded, but its backup"
    for state_option in ("resumed", "applied"):
        refused = run_module(
            redis_index_batch, apply_args(redis_url, tmp_path, state=state_option), capsys, expect_failure=True
        )
        assert said in refused["msg"] and "says failed in phase quantize" in refused["msg"]
    status = run_module(
        redis_index_batch, {"state": "status", "plan_file": str(tmp_path / "batch.yaml")}, capsys, expect_failure=True
    )
    assert said in status["msg"]
    # The index's backup header re-sealed as completed as well: the server holds no such index.
    store = BackupStore.for_plan(str(tmp_path / "b"), state.entry("idx_a").plan_checksum)
    store.header.status = store.header.phase = "completed"
    store.save()
    refused = run_module(
        redis_index_batch, apply_args(redis_url, tmp_path, state="resumed"), capsys, expect_failure=True
    )
    assert "says idx_a succeeded, but the server does not hold its new index 'idx_a'" in refused["msg"]
    assert open(first["state_file"], "rb").read() == forged and server_state(clean_redis) == before


def test_a_killed_batch_resumes_the_interrupted_index(clean_redis, redis_url, capsys, tmp_path):
    original = load_batch(clean_redis)
    run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)
    # The module itself, in a process of its own, killed half way through idx_a's quantize phase.
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": apply_args(redis_url, tmp_path)}), encoding="utf-8")
    env = dict(os.environ, INDEXOPS_FAILPOINT="quantize:2", PYTHONPATH=os.path.join(ROOT, ".build", "collections"))
    killed = subprocess.run(
        [sys.executable, MODULE, str(args)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    state = read_state(str(tmp_path / "batch.state.json"))
    assert state.status == "running" and state.current == "idx_a" and state.entry("idx_a").status == "running"

    status = run_module(redis_index_batch, {"state": "status", "plan_file": str(tmp_path / "batch.yaml")}, capsys)
    assert status["result"] == "running"
    assert any(line.startswith("next: resume continues idx_a from phase quantize") for line in status["summary"])

    resumed = run_module(redis_index_batch, apply_args(redis_url, tmp_path, state="resumed"), capsys)
    assert resumed["result"] == "completed" and resumed["ran"] == list(MIGRATED)
    assert by_name(resumed)["idx_a"]["attempts"] == 2
    assert dump_hashes(clean_redis) == {**converted(original), **subset(original, "idx_z")}


def test_a_new_plan_after_a_completed_batch_starts_afresh_and_keeps_the_old_state(
    clean_redis, redis_url, capsys, tmp_path
):
    load_batch(clean_redis)
    run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys)
    first = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys)
    assert first["result"] == "completed"
    # Next change, planned into the same file: the finished batch's state is set aside, not in the way.
    bfloat = {"version": 1, "changes": {"update_fields": [{"name": "vec", "attrs": {"datatype": "bfloat16"}}]}}
    run_module(redis_index_batch, plan_args(redis_url, tmp_path, patch=bfloat), capsys)
    second = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys)
    assert second["result"] == "completed" and second["batch_id"] != first["batch_id"]
    assert os.path.exists(first["state_file"][: -len(".json")] + f".{first['batch_id']}.json")
    assert snapshot_index(clean_redis, "idx_a").snapshot.index_schema.field("vec").attrs.datatype == "bfloat16"
    # An unfinished batch, though, is never set aside by another plan.
    run_module(redis_index_batch, plan_args(redis_url, tmp_path, patch=PATCH), capsys)
    os.environ["INDEXOPS_FAILPOINT"] = FAIL_AFTER_DROP
    try:
        run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys, expect_failure=True)
    finally:
        os.environ.pop("INDEXOPS_FAILPOINT", None)
    run_module(
        redis_index_batch, plan_args(redis_url, tmp_path, patch=bfloat, plan_out=str(tmp_path / "b2.yaml")), capsys
    )
    refused = run_module(
        redis_index_batch,
        {**apply_args(redis_url, tmp_path), "plan_file": str(tmp_path / "b2.yaml"), "state_file": second["state_file"]},
        capsys,
        expect_failure=True,
    )
    assert "belongs to batch" in refused["msg"]
