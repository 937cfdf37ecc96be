"""--diff of the modules that change Redis and had none: redis_index_rollback and redis_index_batch show each
index's schema before and after, redis_write_quiesce each user's ACL line before and after - in check mode what
would change - and never a secret."""

from __future__ import annotations

import yaml
from module_runner import run_module
from quiesce_setup import APP, MIGRATOR, acl_lines, create_users, reset_acl
from test_redis_index_batch import apply_args, load_batch, plan_args
from test_redis_index_migrate import QUANT16, load, make_plan, run

from ansible_collections.indexops.redis_search.plugins.modules import (
    redis_index_batch,
    redis_index_rollback,
    redis_write_quiesce,
)


def vec_type(schema_yaml: str, field: str = "vec") -> str:
    fields = {f["name"]: f for f in yaml.safe_load(schema_yaml)["fields"]}
    return fields[field]["attrs"]["datatype"].lower()


def test_rollback_diff_goes_from_the_migrated_schema_back_to_the_source(clean_redis, redis_url, tmp_path, capsys):
    load(clean_redis)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16), tmp_path)
    args = {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path)}

    preview = run_module(redis_index_rollback, args, capsys, check_mode=True, diff=True)
    assert preview["changed"] and preview["result"] == "would_roll_back"
    assert (vec_type(preview["diff"]["before"]), vec_type(preview["diff"]["after"])) == ("float16", "float32")
    assert preview["diff"]["after_header"] == "idx (restored)"

    done = run_module(redis_index_rollback, args, capsys, diff=True)
    assert done["result"] == "rolled_back" and done["diff"] == preview["diff"]
    again = run_module(redis_index_rollback, args, capsys, diff=True)
    assert not again["changed"] and "diff" not in again


def test_batch_diff_has_one_entry_per_index_it_migrates(clean_redis, redis_url, tmp_path, capsys):
    load_batch(clean_redis)
    planned = run_module(redis_index_batch, plan_args(redis_url, tmp_path), capsys, diff=True)
    assert [vec_type(d["before"]) + ">" + vec_type(d["after"]) for d in planned["diff"]] == ["float32>float16"] * 3

    preview = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys, check_mode=True, diff=True)
    assert preview["changed"]
    assert [d["before_header"] for d in preview["diff"]] == [f"{name} (live)" for name in ("idx_a", "idx_b", "idx_c")]

    applied = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys, diff=True)
    assert applied["changed"] and applied["ran"] == ["idx_a", "idx_b", "idx_c"]
    assert [(vec_type(d["before"]), vec_type(d["after"])) for d in applied["diff"]] == [("float32", "float16")] * 3
    again = run_module(redis_index_batch, apply_args(redis_url, tmp_path), capsys, diff=True)
    assert not again["changed"] and "diff" not in again


def test_quiesce_diff_shows_each_users_acl_line_without_secrets(clean_redis, redis_server, tmp_path, capsys):
    create_users(clean_redis)
    # A user whose rules hold a clear-text password rule as ACL SETUSER takes it, and a hash.
    clean_redis.execute_command("ACL", "SETUSER", "ops", "reset", "on", ">ops-Secret-1", "~ops:*", "+@all")
    args = {
        "redis_url": redis_server.url,
        "username": MIGRATOR[0],
        "password": MIGRATOR[1],
        "state_file": str(tmp_path / "state.json"),
        "users": [APP[0], "ops"],
    }
    try:
        before = acl_lines(clean_redis)
        preview = run_module(redis_write_quiesce, {**args, "state": "quiesced"}, capsys, check_mode=True, diff=True)
        assert acl_lines(clean_redis) == before  # check mode wrote nothing
        lines = preview["diff"]["before"].splitlines()
        assert [line.split(" ")[1] for line in lines] == [APP[0], "ops"]
        assert all("#<redacted>" in line for line in lines)
        assert all("-@write" not in line for line in lines)
        assert all("-@write" in line for line in preview["diff"]["after"].splitlines())

        quiesced = run_module(redis_write_quiesce, {**args, "state": "quiesced"}, capsys, diff=True)
        after = acl_lines(clean_redis)
        assert quiesced["diff"]["before"].splitlines() == lines
        # After is the server's own line as read back, hashes hidden.
        assert quiesced["diff"]["after"] == "".join(
            redis_write_quiesce.shown(after[name].decode()) + "\n" for name in (APP[0], "ops")
        )
        assert run_module(redis_write_quiesce, {**args, "state": "quiesced"}, capsys, diff=True).get("diff") is None

        released = run_module(redis_write_quiesce, {**args, "state": "released"}, capsys, diff=True)
        assert released["diff"]["before"] == quiesced["diff"]["after"]
        assert released["diff"]["after"] == quiesced["diff"]["before"]
        for result in (preview, quiesced, released):
            text = result["_raw"]
            assert "ops-Secret-1" not in text and APP[1] not in text and MIGRATOR[1] not in text
            for line in before.values():
                for token in line.decode().split(" "):
                    if token.startswith("#"):
                        assert token[1:] not in text  # no password hash either
    finally:
        reset_acl(clean_redis)


def test_clear_text_password_rules_are_masked():
    line = "user x on >pw-one <pw-two #" + "a" * 64 + " ~k:* (>pw-three ~s:* +get) +@all"
    assert (
        redis_write_quiesce.shown(line)
        == "user x on ><redacted> <<redacted> #<redacted> ~k:* (><redacted> ~s:* +get) +@all"
    )
