"""redis_index_validate against the real server: a completed migration checked again, read-only."""

from __future__ import annotations

import signal

import numpy
import pytest
from datasets import wait_for
from module_runner import run_module
from test_migrate_safety import planned, server_state
from test_redis_index_migrate import DIMS, QUANT16, load, make_plan, run, run_killed
from test_rollback_safety import _forge

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.format import encode_record
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import BackupInvalid
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_validate

DOCS = 120


def validate_args(redis_url, tmp_path, **extra) -> dict:
    return {
        "redis_url": redis_url,
        "plan_file": str(tmp_path / "plan.yaml"),
        "backup_dir": str(tmp_path / "b"),
        **extra,
    }


def migrated(client, redis_url, tmp_path, changes=None):
    load(client, docs=DOCS)
    # The drop_recreate path, whose validation these tests judge (an online rewrite: test_online_rewrite.py).
    plan, _path = planned(client, tmp_path, changes or QUANT16, mode="drop_recreate")
    outcome = run(client, redis_url, plan, tmp_path / "b")
    assert outcome.report.validation["passed"]
    return plan


def test_a_completed_migration_validates_and_nothing_changes(clean_redis, redis_url, capsys, tmp_path):
    migrated(clean_redis, redis_url, tmp_path)
    before = server_state(clean_redis)
    result = run_module(redis_index_validate, validate_args(redis_url, tmp_path), capsys)
    assert result["changed"] is False and result["passed"] and result["problems"] == []
    assert result["backup_verified"] and result["migration_status"] == "completed"
    validation = result["validation"]
    assert validation["doc_count_actual"] == validation["doc_count_expected"] == DOCS
    assert validation["vectors_compared"] == 10 and validation["vectors_differing"] == []
    assert validation["indexing_failures_checked"] and validation["indexing_failures_after"] == 0
    assert validation["documents_beyond_source"] == 0 and validation["source_approximate"] is False
    by_index = run_module(
        redis_index_validate,
        {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path / "b")},
        capsys,
        check_mode=True,
    )
    assert by_index["passed"] and by_index["backup_path"] == result["backup_path"]
    assert server_state(clean_redis) == before


def test_a_vector_that_is_not_the_conversion_of_its_original_fails(clean_redis, redis_url, capsys, tmp_path):
    migrated(clean_redis, redis_url, tmp_path)
    # Right length, right type, wrong values: only the comparison with the backup can tell.
    clean_redis.hset("doc:0", "vec", numpy.full(DIMS, 0.5, numpy.float16).tobytes())
    wait_for(clean_redis, "idx", DOCS)
    failed = run_module(redis_index_validate, validate_args(redis_url, tmp_path), capsys, expect_failure=True)
    assert failed["error_type"] == "validation_failed" and failed["passed"] is False
    assert failed["validation"]["vectors_differing"] == [{"key": "doc:0", "field": "vec"}]
    reported = run_module(redis_index_validate, validate_args(redis_url, tmp_path, fail_on_problems=False), capsys)
    assert reported["passed"] is False and "1 of 10 sampled vectors differ" in reported["problems"][0]


def test_indexing_failures_that_rose_fail_though_the_count_matches(clean_redis, redis_url, capsys, tmp_path):
    migrated(clean_redis, redis_url, tmp_path)
    # A document the new index refuses (a vector of the wrong size): the count alone would not show it.
    clean_redis.hset("doc:bad", mapping={"title": "bad", "vec": numpy.zeros(DIMS // 2, numpy.float16).tobytes()})
    wait_for(clean_redis, "idx", DOCS)
    failed = run_module(redis_index_validate, validate_args(redis_url, tmp_path), capsys, expect_failure=True)
    assert failed["validation"]["doc_count_actual"] == DOCS
    assert failed["problems"] == [
        "indexing failures rose from 0 (source) to 1: the new index refuses documents the source indexed"
    ]


def test_a_forged_backup_rollback_refuses_is_not_verified(clean_redis, redis_url, capsys, tmp_path):
    """Re-sealed with a record outside the index (every checksum right): rollback refuses it, so does validate."""
    migrated(clean_redis, redis_url, tmp_path)
    store = choose_backup(str(tmp_path / "b"), "idx")
    _forge(store, encode_record(b"other:1", [(b"vec", b"\x00" * DIMS * 4)]))
    assert choose_backup(str(tmp_path / "b"), "idx").verify().ok  # the checksums alone pass it
    before = server_state(clean_redis)
    failed = run_module(redis_index_validate, validate_args(redis_url, tmp_path), capsys, expect_failure=True)
    assert failed["backup_verified"] is False and failed["passed"] is False
    assert "backup record 'other:1' is outside the index's key prefixes" in failed["backup_problems"][0]
    assert failed["problems"][-1].startswith("the backup fails verification (a rollback would refuse it")
    with pytest.raises(BackupInvalid, match="outside the index's key prefixes"):
        rollback(clean_redis, choose_backup(str(tmp_path / "b"), "idx"), check_mode=True)
    assert server_state(clean_redis) == before


def test_documents_deleted_since_the_migration_are_counted_and_fail_the_count(clean_redis, redis_url, capsys, tmp_path):
    migrated(clean_redis, redis_url, tmp_path)
    clean_redis.delete("doc:110", "doc:111", "doc:112")  # after the migration and its own validation
    wait_for(clean_redis, "idx", DOCS - 3)
    failed = run_module(redis_index_validate, validate_args(redis_url, tmp_path), capsys, expect_failure=True)
    validation = failed["validation"]
    assert validation["documents_deleted_since_migration"] == 3 and validation["documents_gone"] == 0
    assert (validation["doc_count_expected"], validation["doc_count_actual"]) == (DOCS, DOCS - 3)
    assert failed["problems"] == [
        f"{DOCS - 3} documents indexed, {DOCS} expected (3 document(s) of the backup "
        "deleted since the migration: validate before the application writes again)"
    ]


def load_with_unparsable(client, algorithm: str, bad: int = 5) -> None:
    """`idx` over doc:* whose numeric `n` does not parse in `bad` documents: the source counts them as
    indexing failures, not documents; without `n` they index."""
    params = ["TYPE", "FLOAT32", "DIM", str(DIMS), "DISTANCE_METRIC", "L2"]
    client.execute_command(
        "FT.CREATE",
        "idx",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "doc:",
        "SCHEMA",
        "n",
        "NUMERIC",
        "vec",
        "VECTOR",
        algorithm,
        str(len(params)),
        *params,
    )
    vectors = numpy.random.default_rng(4).random((DOCS, DIMS), dtype=numpy.float32)
    for i in range(DOCS):
        client.hset(f"doc:{i}", mapping={"n": "not a number" if i >= DOCS - bad else i, "vec": vectors[i].tobytes()})
    wait_for(client, "idx", DOCS - bad)


def test_hnsw_to_flat_accepts_the_documents_the_approximate_source_did_not_count(
    clean_redis, redis_url, capsys, tmp_path
):
    load_with_unparsable(clean_redis, "HNSW")
    # Quantized too, so that the vectors are rewritten and the migration drops and recreates the index.
    flat16 = {"algorithm": "flat", "datatype": "float16"}
    change = {"remove_fields": ["n"], "update_fields": [{"name": "vec", "attrs": flat16}]}
    plan, _path = planned(clean_redis, tmp_path, change, mode="drop_recreate")
    outcome = run(clean_redis, redis_url, plan, tmp_path / "b")
    assert outcome.report.validation["passed"] and outcome.report.validation["documents_beyond_source"] == 5
    result = run_module(redis_index_validate, validate_args(redis_url, tmp_path), capsys)
    validation = result["validation"]
    assert result["passed"] and validation["source_approximate"]
    assert (validation["doc_count_expected"], validation["doc_count_actual"]) == (DOCS - 5, DOCS)
    assert validation["documents_beyond_source"] == 5 and validation["indexing_failures_before"] == 5


def test_a_flat_source_gets_no_such_allowance(clean_redis, redis_url, tmp_path):
    load_with_unparsable(clean_redis, "FLAT")
    plan = make_plan(clean_redis, {"remove_fields": ["n"], **QUANT16}, mode="drop_recreate")
    with pytest.raises(Exception, match=f"{DOCS} documents indexed, {DOCS - 5} expected"):
        run(clean_redis, redis_url, plan, tmp_path / "b")


def test_a_migration_that_stopped_before_its_index_was_built_is_refused(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis, docs=DOCS)
    planned(clean_redis, tmp_path, QUANT16, mode="drop_recreate")
    killed = run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "b", "quantize:start")
    assert killed.returncode == -signal.SIGKILL
    refused = run_module(redis_index_validate, validate_args(redis_url, tmp_path), capsys, expect_failure=True)
    assert refused["error_type"] == "preflight_failed" and "stopped in phase quantize" in refused["msg"]
    assert "resume it with redis_index_migrate" in refused["msg"]


def test_a_rolled_back_migration_is_refused(clean_redis, redis_url, capsys, tmp_path):
    migrated(clean_redis, redis_url, tmp_path)
    rollback(clean_redis, choose_backup(str(tmp_path / "b"), "idx"))
    refused = run_module(redis_index_validate, validate_args(redis_url, tmp_path), capsys, expect_failure=True)
    assert "was rolled back" in refused["msg"] and refused["error_type"] == "preflight_failed"


def test_an_online_migration_is_validated_after_its_swap(clean_redis, redis_url, capsys, tmp_path):
    load(clean_redis, docs=120)
    plan = make_plan(clean_redis, {"update_fields": [{"name": "title", "attrs": {"weight": 2}}]})
    assert plan.mode == "online"
    run(clean_redis, redis_url, plan, tmp_path / "b")
    args = {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path / "b")}
    done = run_module(redis_index_validate, args, capsys)
    assert done["passed"] and done["target_index"] == "idx--v2"
    assert done["validation"]["names"] == {"idx": "idx--v2"} and done["validation"]["keys_missing"] == []
    # Someone points the name elsewhere: caught.
    clean_redis.execute_command("FT.CREATE", "other", "ON", "HASH", "PREFIX", "1", "nothing:", "SCHEMA", "t", "TEXT")
    clean_redis.execute_command("FT.ALIASUPDATE", "idx", "other")
    failed = run_module(redis_index_validate, {**args, "fail_on_problems": False}, capsys)
    assert not failed["passed"] and "idx do not lead to idx--v2" in failed["problems"][0]
