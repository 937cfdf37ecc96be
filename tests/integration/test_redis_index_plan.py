"""redis_index_plan and the planner against the real server."""

from __future__ import annotations

import json
import os

import numpy
import pytest
import yaml
from datasets import wait_for
from module_runner import run_module
from playbook_runner import run_playbook
from redis_search_server import RedisSearchServer

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    PlanInvalid,
    SchemaInvalid,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning import (
    estimate as estimate_module,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import (
    read_plan,
    write_plan,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import create_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import snapshot_index
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import parse_patch
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_migrate, redis_index_plan

QUANTIZE = {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}}


def load_products(client, count=600, dims=8, index="products", prefix="product", storage="hash", algorithm="FLAT"):
    """The reference walkthrough's catalogue (hash) or its JSON twin."""
    rng = numpy.random.default_rng(42)
    vectors = rng.random((count, dims), dtype=numpy.float32)
    vector_args = [algorithm, "6", "TYPE", "FLOAT32", "DIM", str(dims), "DISTANCE_METRIC", "COSINE"]
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
            "name",
            "TEXT",
            "category",
            "TAG",
            "embedding",
            "VECTOR",
            *vector_args,
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
            "$.name",
            "AS",
            "name",
            "TEXT",
            "$.category",
            "AS",
            "category",
            "TAG",
            "$.embedding",
            "AS",
            "embedding",
            "VECTOR",
            *vector_args,
        )
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        doc = {"name": f"product {i}", "category": "electronics" if i % 2 == 0 else "books"}
        if storage == "hash":
            pipe.hset(f"{prefix}:{i}", mapping={**doc, "embedding": vectors[i].tobytes()})
        else:
            pipe.execute_command(
                "JSON.SET", f"{prefix}:{i}", "$", json.dumps({**doc, "embedding": vectors[i].tolist()})
            )
    pipe.execute()
    wait_for(client, index, count)
    return vectors


def plan(client, changes, index="products", **kwargs):
    return create_plan(client, index, patch=parse_patch({"version": 1, "changes": changes}), **kwargs)


def server_state(client):
    """Everything planning must leave as it was: the indexes, every key's bytes, the schema. (Not the
    dirty counter: the create check's throwaway FT.CREATE and FT.DROPINDEX count as two changes.)"""
    return (
        sorted(client.execute_command("FT._LIST")),
        {key: client.dump(key) for key in client.scan_iter()},
        client.info("commandstats").get("cmdstat_hset"),
        snapshot_index(client, "products").snapshot.index_schema.to_dict(),
    )


# --- the reference walkthrough ------------------------------------------------------------------


def test_reference_patch_is_supported_online_with_its_steps(client):
    load_products(client)
    result = plan(client, QUANTIZE["changes"])
    assert result.classification.supported and not result.classification.nothing_to_do
    assert [(c.kind, c.field, c.before, c.after, c.rewrites_documents) for c in result.changes] == [
        ("vector_datatype_change", "embedding", "float32", "float16", True)
    ]
    # A datatype change in place runs online by default (issue 20): expand, build, swap, contract, twice built.
    assert result.mode == "online" and result.online.layout.builds == 2
    assert any(w.startswith("Online: the new values are written beside the old ones") for w in result.warnings)
    lossy = next(w for w in result.warnings if w.startswith("Lossy quantization of 'embedding'"))
    assert "2^-11" in lossy and "65504" in lossy
    assert result.rewrites.quantize[0].location == "embedding"
    # 600 documents is below the audit sample, so every one was read and the backup size is exact.
    assert result.audit.mode == "all" and result.audit.documents == 600
    assert result.estimate.backup_bytes_exact
    keys = sum(len(f"product:{i}") for i in range(600))
    framing = 16 + 2 * 52 + 600 * (4 + 2 + 4) + 600 * (2 + 4 + len("embedding") + 8 * 4)
    assert result.estimate.backup_bytes == keys + framing
    assert result.estimate.vector_fields[0].target_bytes_per_doc == 16
    assert result.estimate.rdb_delta_bytes == -600 * 16


@pytest.mark.parametrize("protocol", [2, 3])
def test_same_plan_under_both_protocols(clean_redis, redis_url, protocol):
    import redis  # pylint: disable=import-outside-toplevel

    load_products(clean_redis)
    reference = plan(redis.Redis.from_url(redis_url, protocol=2), QUANTIZE["changes"])
    other = plan(redis.Redis.from_url(redis_url, protocol=protocol), QUANTIZE["changes"])
    assert reference.same_content(other)


@pytest.mark.playbook
def test_check_mode_playbook_changes_nothing(tmp_path):
    """The walkthrough's patch planned in check mode: nothing in Redis, nothing on disk."""
    with RedisSearchServer() as server:
        import redis  # pylint: disable=import-outside-toplevel

        client = redis.Redis.from_url(server.url)
        load_products(client)
        backup_dir = tmp_path / "backups"
        backup_dir.mkdir()
        before = server_state(client)
        playbook = f"""
- name: Dry run of the walkthrough's migration
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan embedding float32 -> float16
      indexops.redis_search.redis_index_plan:
        redis_url: {server.url}
        index: products
        patch_file: schema_patch.yaml
        plan_out: {tmp_path}/migration_plan.yaml
        backup_dir: {backup_dir}
      check_mode: true
      diff: true
      register: dry
    - name: It is supported, would write the plan, and runs online (no downtime)
      ansible.builtin.assert:
        that:
          - dry.supported
          - dry.changed
          - dry.plan.classification.mode == 'online'
          - dry.plan_warnings | select('match', '^Online') | list | length == 1
          - dry.plan.estimate.backup_fits
"""
        done = run_playbook(playbook, files={"schema_patch.yaml": yaml.safe_dump(QUANTIZE)}, args=("--diff",))
        after = server_state(client)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "-    datatype: float32" in done.stdout and "+    datatype: float16" in done.stdout
    assert before == after
    assert not os.path.exists(tmp_path / "migration_plan.yaml")
    assert os.listdir(backup_dir) == []


@pytest.mark.playbook
def test_check_diff_shows_the_diff_without_plan_out(tmp_path):
    """`ansible-playbook --check --diff` with no plan_out: the task would write nothing, but the dry
    run must still show the schema diff (Ansible prints diffs of changed tasks only)."""
    with RedisSearchServer() as server:
        import redis  # pylint: disable=import-outside-toplevel

        client = redis.Redis.from_url(server.url)
        load_products(client, count=50)
        before = server_state(client)
        playbook = f"""
- name: Dry run without a plan file
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan embedding float32 -> float16
      indexops.redis_search.redis_index_plan:
        redis_url: {server.url}
        index: products
        patch: {json.dumps(QUANTIZE)}
      register: dry
    - name: Nothing to do is not a change, even in check mode
      indexops.redis_search.redis_index_plan:
        redis_url: {server.url}
        index: products
        patch: {
            json.dumps(
                {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float32"}}]}}
            )
        }
      register: same
    - name: The first would change the index, the second would not
      ansible.builtin.assert:
        that:
          - dry is changed and dry.supported
          - same is not changed and same.nothing_to_do
"""
        done = run_playbook(playbook, args=("--check", "--diff"))
        after = server_state(client)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "--- before: products (live)" in done.stdout and "+++ after: products (planned)" in done.stdout
    assert "-    datatype: float32" in done.stdout and "+    datatype: float16" in done.stdout
    assert before == after
    assert list(tmp_path.iterdir()) == []


def test_check_mode_reports_changed_only_for_a_real_change(clean_redis, redis_url, capsys):
    load_products(clean_redis, count=10)
    args = {"redis_url": redis_url, "index": "products", "patch": QUANTIZE}
    assert run_module(redis_index_plan, args, capsys, check_mode=True, diff=True)["changed"] is True
    # Outside check mode the same plan without plan_out writes nothing: not a change.
    assert run_module(redis_index_plan, args, capsys)["changed"] is False
    blocked = {
        **args,
        "fail_on_blocked": False,
        "patch": {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"dims": 4}}]}},
    }
    assert run_module(redis_index_plan, blocked, capsys, check_mode=True)["changed"] is False


# --- the create check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, server_says",
    [
        ({"index": {"filter": "@name=="}}, "Syntax error"),
        ({"index": {"filter": "nosuchfunction(@name)"}}, "Unknown function"),
    ],
)
def test_a_target_the_server_refuses_is_blocked_with_its_message(clean_redis, changes, server_says):
    load_products(clean_redis, count=10)
    lists_before = clean_redis.execute_command("FT._LIST")
    result = plan(clean_redis, changes)
    assert not result.classification.supported
    reason = next(r for r in result.classification.blocked_reasons if "the server refuses the target definition" in r)
    assert server_says in reason
    assert clean_redis.execute_command("FT._LIST") == lists_before


def test_a_target_the_server_accepts_is_not_blocked(clean_redis):
    load_products(clean_redis, count=10)
    result = plan(clean_redis, {"index": {"filter": "@name!=''", "language": "german"}})
    assert result.classification.supported, result.classification.blocked_reasons


def test_planning_options_are_checked_by_the_library(clean_redis):
    load_products(clean_redis, count=5)
    for kwargs, message in [
        ({"batch_size": 0}, "batch_size must be 1 or more, not 0"),
        ({"audit_sample": -1}, "audit_sample_size must be 0 or more, not -1"),
        ({"key_sample": -2}, "key_sample_size must be 0 or more, not -2"),
    ]:
        with pytest.raises(SchemaInvalid, match=message):
            plan(clean_redis, QUANTIZE["changes"], **kwargs)
    with pytest.raises(SchemaInvalid, match="index name 'products\\\\nx' contains the control character"):
        plan(clean_redis, QUANTIZE["changes"], index="products\nx")


# --- blocked rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"update_fields": [{"name": "embedding", "attrs": {"dims": 16}}]}, "new dimensions need new embeddings"),
        ({"index": {"storage_type": "json"}}, "changing the storage type"),
        ({"index": {"key_separator": "-"}}, "the key separator is how applications build keys"),
        (
            {"add_fields": [{"name": "v2", "type": "vector", "attrs": {"dims": 8, "algorithm": "flat"}}]},
            "the documents hold no vectors for it",
        ),
        ({"update_fields": [{"name": "category", "type": "text"}]}, "cannot follow a type change"),
        ({"update_fields": [{"name": "name", "path": "title"}]}, "use rename_fields to move a field"),
        ({"update_fields": [{"name": "embedding", "attrs": {"datatype": "int8"}}]}, "does not accept INT8 vectors"),
        ({"update_fields": [{"name": "embedding", "attrs": {"datatype": "uint8"}}]}, "does not accept UINT8 vectors"),
        (
            {"update_fields": [{"name": "embedding", "attrs": {"algorithm": "svs-vamana"}}]},
            "does not accept the SVS-VAMANA algorithm",
        ),
    ],
)
def test_blocked_changes(clean_redis, changes, fragment):
    load_products(clean_redis, count=50)
    result = plan(clean_redis, changes)
    assert not result.classification.supported
    assert any(fragment in reason for reason in result.classification.blocked_reasons), (
        result.classification.blocked_reasons
    )


def test_json_path_change_is_blocked(clean_redis):
    load_products(clean_redis, count=20, storage="json", prefix="jp")
    result = plan(clean_redis, {"update_fields": [{"name": "name", "path": "$.title"}]})
    assert not result.classification.supported
    assert result.changes[0].kind == "field_path_change" and result.changes[0].after == "$.title"


def test_prefix_change_of_multi_prefix_index_is_blocked(clean_redis):
    clean_redis.execute_command("FT.CREATE", "multi", "ON", "HASH", "PREFIX", "2", "a:", "b:", "SCHEMA", "t", "TEXT")
    result = plan(clean_redis, {"index": {"prefix": "c:"}}, index="multi")
    assert "several prefixes" in result.classification.blocked_reasons[0]


def test_single_prefix_change_is_supported_and_renames_keys(clean_redis):
    load_products(clean_redis, count=20)
    result = plan(clean_redis, {"index": {"prefix": "item"}})
    assert result.classification.supported
    assert result.rewrites.prefix.model_dump() == {"old": "product", "new": "item"}
    assert result.renames.prefix == {"old": "product", "new": "item"}


@pytest.mark.parametrize("taken", ["other", "other_alias"])
def test_index_rename_to_a_taken_name_is_blocked(clean_redis, taken):
    load_products(clean_redis, count=10)
    clean_redis.execute_command("FT.CREATE", "other", "ON", "HASH", "PREFIX", "1", "zzz:", "SCHEMA", "t", "TEXT")
    clean_redis.execute_command("FT.ALIASADD", "other_alias", "other")
    result = plan(clean_redis, {"index": {"name": taken}})
    assert f"an index or alias named {taken!r} already exists" in result.classification.blocked_reasons[0]
    free = plan(clean_redis, {"index": {"name": "products_v2"}})
    assert free.classification.supported and free.renames.index == {"from": "products", "to": "products_v2"}


def test_quantizing_keys_another_index_reads_is_blocked(clean_redis):
    load_products(clean_redis, count=20)
    clean_redis.execute_command(
        "FT.CREATE",
        "shadow",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "product:1",
        "SCHEMA",
        "embedding",
        "VECTOR",
        "FLAT",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        "8",
        "DISTANCE_METRIC",
        "L2",
    )
    clean_redis.execute_command(
        "FT.CREATE", "names_only", "ON", "HASH", "PREFIX", "1", "product", "SCHEMA", "name", "TEXT"
    )
    result = plan(clean_redis, QUANTIZE["changes"])
    assert result.classification.shared_key_indexes == ["shadow"]
    assert "index 'shadow'" in result.classification.blocked_reasons[0]
    # An index on the same keys that does not read the vector is no obstacle to quantization...
    clean_redis.execute_command("FT.DROPINDEX", "shadow")
    assert plan(clean_redis, QUANTIZE["changes"]).classification.supported
    # ...but renaming the keys would take its documents away: blocked.
    renamed = plan(clean_redis, {"index": {"prefix": "item"}})
    assert renamed.classification.shared_key_indexes == ["names_only"]


# --- warnings ------------------------------------------------------------------------------------


def test_failures_malformed_vectors_removed_vector_and_unobserved(clean_redis):
    load_products(clean_redis, count=30)
    clean_redis.hset("product:bad", mapping={"name": "bad", "embedding": b"\x00" * 12})  # 3 floats, not 8
    wait_for(clean_redis, "products", 30)
    result = plan(clean_redis, {"remove_fields": ["embedding"]})
    assert result.source.stats["hash_indexing_failures"] == 1
    assert any("1 indexing failure(s)" in w for w in result.warnings)
    assert any("Removing vector field 'embedding'" in w for w in result.warnings)
    assert any(w.startswith("INITIAL_CAP of embedding") for w in result.warnings)
    # The bounded sample includes a SCAN of the prefix, so it finds the document the index rejected.
    assert result.audit.malformed_count == 1
    assert result.audit.malformed[0].model_dump() == {
        "key": "product:bad",
        "field": "embedding",
        "found": 12,
        "expected": 32,
        "unit": "bytes",
    }
    assert any("1 of" in w and "wrong size" in w for w in result.warnings)


def test_what_the_migration_refuses_is_blocked_by_the_plan(clean_redis, redis_url, capsys, tmp_path):
    """Vectors of the wrong size in the field the migration rewrites: its backup phase refuses them, so the
    plan is blocked (the plan task, check mode and the migration stop before any backup)."""
    load_products(clean_redis, count=30)
    clean_redis.hset("product:bad", mapping={"name": "bad", "embedding": b"\x00" * 12})  # 3 floats, not 8
    result = plan(clean_redis, QUANTIZE["changes"])
    assert result.audit.mode == "all" and not result.classification.supported
    assert result.classification.blocked_reasons == [
        "1 audited document(s) hold 'embedding' vectors of the wrong size (first: product:bad: 12 bytes, expected 32); "
        "the migration refuses to convert them to float16: fix or delete those documents, then plan again"
    ]
    args = {"redis_url": redis_url, "index": "products", "patch": QUANTIZE}
    failed = run_module(redis_index_plan, args, capsys, expect_failure=True)
    assert failed["error_type"] == "plan_blocked" and "vectors of the wrong size" in failed["msg"]
    migrate_args = {**args, "backup_dir": str(tmp_path / "b"), "accept_data_loss": True}
    for check_mode in (True, False):
        refused = run_module(redis_index_migrate, migrate_args, capsys, check_mode=check_mode, expect_failure=True)
        assert refused["error_type"] == "plan_blocked" and "product:bad" in refused["msg"]
    assert not (tmp_path / "b").exists()
    assert len(clean_redis.hget("product:1", "embedding")) == 32
    # A sample that missed it cannot be sure, and says what it did not check.
    sampled = plan(clean_redis, QUANTIZE["changes"], audit_sample=5, key_sample=5)
    assert sampled.audit.mode == "sample" and sampled.classification.supported
    assert (
        "The audit checked the vectors of 5 of 30 documents; the migration checks every one before it changes "
        "anything and refuses to start on a vector of the wrong size or a value float16 cannot hold "
        "(audit_all: true checks them all now)." in sampled.warnings
    )
    # The same document is no obstacle to a change that leaves its vector as it is.
    untouched = plan(clean_redis, {"add_fields": [{"name": "note", "type": "text"}]})
    assert untouched.classification.supported and untouched.classification.blocked_reasons == []


def test_values_the_target_type_cannot_hold_block_the_plan(clean_redis):
    load_products(clean_redis, count=20)
    big = numpy.full(8, 1e6, dtype=numpy.float32)  # float16 ends at 65504
    clean_redis.hset("product:3", "embedding", big.tobytes())
    wait_for(clean_redis, "products", 20)
    result = plan(clean_redis, QUANTIZE["changes"])
    assert result.classification.blocked_reasons == [
        "8 value(s) of 'embedding' in the audited documents are too large for float16 and would become infinite; the "
        "migration refuses them: choose a wider datatype (bfloat16 keeps float32's range)"
    ]
    bfloat = plan(clean_redis, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "bfloat16"}}]})
    assert bfloat.classification.supported


def test_audit_finds_malformed_json_vector(clean_redis):
    load_products(clean_redis, count=10, storage="json", prefix="j")
    clean_redis.execute_command("JSON.SET", "j:odd", "$", json.dumps({"name": "odd", "embedding": [1.0, 2.0]}))
    result = plan(clean_redis, QUANTIZE["changes"])
    assert [m.key for m in result.audit.malformed] == ["j:odd"]
    assert result.audit.malformed[0].unit == "elements" and result.audit.malformed[0].found == 2


def test_json_datatype_change_rewrites_nothing(client):
    load_products(client, count=40, storage="json", prefix="j")
    result = plan(client, QUANTIZE["changes"])
    assert result.classification.supported and not result.classification.rewrites_documents
    assert result.changes[0].rewrites_documents is False
    assert result.estimate.backup_bytes == 0 and result.estimate.documents_rewritten == 0
    assert any("JSON documents keep their numbers unchanged" in w for w in result.warnings)


def test_aliases_declared_and_undeclared(clean_redis):
    load_products(clean_redis, count=10)
    clean_redis.execute_command("FT.ALIASADD", "live", "products")
    result = plan(clean_redis, QUANTIZE["changes"], aliases=["live"])
    assert result.source.aliases == ["live"] and result.source.aliases_complete is False
    assert any("Declared aliases that will be moved: live" in w for w in result.warnings)
    with pytest.raises(SchemaInvalid, match="do not point at products"):
        plan(clean_redis, QUANTIZE["changes"], aliases=["nope"])


def test_aof_growth_warning():
    with RedisSearchServer(extra_args=("--appendonly", "yes")) as server:
        import redis  # pylint: disable=import-outside-toplevel

        client = redis.Redis.from_url(server.url)
        load_products(client, count=100)
        result = plan(client, QUANTIZE["changes"])
    assert result.estimate.aof_enabled and result.estimate.aof_growth_bytes > 100 * 16
    assert any(w.startswith("AOF is on: rewriting 100 documents") for w in result.warnings)


def test_background_indexing_advice_follows_the_servers_sleep_gap(clean_redis):
    """The advice on BG_INDEX_SLEEP_GAP for an online HNSW build: given on the default server (100), not on one
    whose search module was loaded with BG_INDEX_SLEEP_GAP 10; never for a FLAT index."""
    hnsw_m24 = {"update_fields": [{"name": "embedding", "attrs": {"m": 24}}]}
    with RedisSearchServer(search_args=("BG_INDEX_SLEEP_GAP", "10")) as server:
        import redis  # pylint: disable=import-outside-toplevel

        client = redis.Redis.from_url(server.url)
        load_products(client, count=100, algorithm="HNSW")
        small = plan(client, hnsw_m24)
    load_products(clean_redis, count=100, algorithm="HNSW")
    default = plan(clean_redis, hnsw_m24)
    assert (small.server.bg_index_sleep_gap, default.server.bg_index_sleep_gap) == (10, 100)
    assert small.mode == default.mode == "online"
    assert not any(w.startswith("Background indexing") for w in small.warnings)
    (advice,) = [w for w in default.warnings if w.startswith("Background indexing")]
    assert "(BG_INDEX_SLEEP_GAP 100)" in advice and "--loadmodule redisearch.so BG_INDEX_SLEEP_GAP 10" in advice
    clean_redis.flushall()
    load_products(clean_redis, count=100)
    flat = plan(clean_redis, QUANTIZE["changes"])
    assert flat.mode == "online" and not any(w.startswith("Background indexing") for w in flat.warnings)


def test_backup_dir_without_room(clean_redis, tmp_path, monkeypatch):
    load_products(clean_redis, count=50)
    fits = plan(clean_redis, QUANTIZE["changes"], backup_dir=str(tmp_path))
    assert fits.estimate.backup_fits is True and fits.estimate.backup_dir_free_bytes > 0

    class Usage:  # a nearly full disk; the real one cannot be filled in a test
        free = 100

    monkeypatch.setattr(estimate_module.shutil, "disk_usage", lambda path: Usage)
    full = plan(clean_redis, QUANTIZE["changes"], backup_dir=str(tmp_path))
    assert full.estimate.backup_fits is False
    assert any(w.startswith("The backup directory has 100 B free") for w in full.warnings)


def test_nothing_to_do(client):
    load_products(client, count=10)
    result = plan(client, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float32"}}]})
    assert result.classification.nothing_to_do and result.classification.supported
    assert result.changes == [] and result.warnings == [] and result.estimate.backup_bytes == 0


def test_renames_of_field_index_and_prefix(clean_redis):
    load_products(clean_redis, count=10)
    result = plan(
        clean_redis,
        {"rename_fields": [{"old_name": "name", "new_name": "title"}], "index": {"name": "catalog", "prefix": "item"}},
    )
    assert result.classification.supported
    move = result.rewrites.moves[0]
    assert (move.old_location, move.new_location) == ("name", "title")
    assert result.renames.index == {"from": "products", "to": "catalog"}
    assert [f["name"] for f in result.target_schema["fields"]] == ["title", "category", "embedding"]
    # The backup keeps each moved value and marks its destination: the estimate measured the values.
    assert result.audit.value_bytes == {"name": [sum(len(f"product {i}") for i in range(10)), 10]}


def test_target_schema_input(clean_redis):
    load_products(clean_redis, count=10)
    target = snapshot_index(clean_redis, "products").snapshot.index_schema.to_dict()
    target["fields"][2]["attrs"].update(algorithm="hnsw", m=32)
    del target["fields"][2]["attrs"]["block_size"]
    target["fields"].append({"name": "price", "type": "numeric", "attrs": {"sortable": True}})
    result = create_plan(clean_redis, "products", target_schema=parse_schema(target))
    kinds = sorted((c.kind, c.attribute) for c in result.changes)
    assert ("field_add", None) in kinds and ("vector_algorithm_change", "algorithm") in kinds
    assert ("field_attribute", "m") in kinds
    assert result.classification.supported and not result.classification.rewrites_documents
    assert any("numeric field 'price'" in w for w in result.warnings)


def test_a_target_schema_changing_the_key_separator_is_blocked_and_changes_nothing(
    clean_redis, redis_url, capsys, tmp_path
):
    """No server reports a key separator: the sampled keys (product:<i>) show the one in use."""
    load_products(clean_redis, count=20)
    keys = {key: clean_redis.dump(key) for key in clean_redis.scan_iter()}
    target = snapshot_index(clean_redis, "products").snapshot.index_schema.to_dict()
    target["index"]["key_separator"] = "/"
    result = create_plan(clean_redis, "products", target_schema=parse_schema(target))
    assert not result.classification.nothing_to_do and not result.classification.supported
    assert [(c.kind, c.before, c.after) for c in result.changes] == [("key_separator_change", ":", "/")]
    assert any("the key separator is how applications build keys" in r for r in result.classification.blocked_reasons)
    args = {"redis_url": redis_url, "index": "products", "target_schema": target, "backup_dir": str(tmp_path / "b")}
    failed = run_module(redis_index_migrate, args, capsys, expect_failure=True)
    assert failed["error_type"] == "plan_blocked" and "key_separator ':' -> '/'" in failed["msg"]
    assert {key: clean_redis.dump(key) for key in clean_redis.scan_iter()} == keys
    assert not (tmp_path / "b").exists()
    # The separator the keys use, stated or left out, is no change.
    target["index"]["key_separator"] = ":"
    assert create_plan(clean_redis, "products", target_schema=parse_schema(target)).classification.nothing_to_do
    del target["index"]["key_separator"]
    assert create_plan(clean_redis, "products", target_schema=parse_schema(target)).classification.nothing_to_do


def test_a_stated_key_separator_the_keys_use_is_no_change(clean_redis):
    load_products(clean_redis, count=10, prefix="item/")  # keys item/:<i>: the prefix is followed by ':'
    target = snapshot_index(clean_redis, "products").snapshot.index_schema.to_dict()
    target["index"]["key_separator"] = ":"
    assert create_plan(clean_redis, "products", target_schema=parse_schema(target)).classification.nothing_to_do
    target["index"]["key_separator"] = "/"
    blocked = create_plan(clean_redis, "products", target_schema=parse_schema(target))
    assert [(c.kind, c.before, c.after) for c in blocked.changes] == [("key_separator_change", ":", "/")]
    assert plan(clean_redis, {"index": {"key_separator": ":"}}).classification.nothing_to_do


# --- the module: plan file, idempotence, strict errors --------------------------------------------


def test_plan_file_written_once_and_edits_refused(clean_redis, redis_url, capsys, tmp_path):
    load_products(clean_redis, count=30)
    path = tmp_path / "plan.yaml"
    args = {"redis_url": redis_url, "index": "products", "patch": QUANTIZE, "plan_out": str(path)}
    first = run_module(redis_index_plan, args, capsys)
    assert first["changed"] and path.exists()
    assert read_plan(str(path)).checksum == first["plan"]["checksum"]
    second = run_module(redis_index_plan, args, capsys)
    assert second["changed"] is False
    text = path.read_text()
    path.write_text(text.replace("datatype: float16", "datatype: bfloat16"))
    with pytest.raises(PlanInvalid, match="changed after it was written"):
        read_plan(str(path))
    third = run_module(redis_index_plan, args, capsys)  # an edited file is replaced
    assert third["changed"] and path.read_text() != text.replace("datatype: float16", "datatype: bfloat16")


def test_plan_round_trips_through_yaml(clean_redis, tmp_path):
    load_products(clean_redis, count=30)
    original = plan(clean_redis, {"rename_fields": [{"old_name": "name", "new_name": "title"}]})
    write_plan(original, str(tmp_path / "p.yaml"))
    loaded = read_plan(str(tmp_path / "p.yaml"))
    assert loaded.to_dict() == original.to_dict()
    assert loaded.target().field("title").type == "text"


def test_blocked_plan_fails_the_task_unless_asked_not_to(clean_redis, redis_url, capsys, tmp_path):
    load_products(clean_redis, count=10)
    args = {
        "redis_url": redis_url,
        "index": "products",
        "plan_out": str(tmp_path / "p.yaml"),
        "patch": {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"dims": 4}}]}},
    }
    failed = run_module(redis_index_plan, args, capsys, expect_failure=True)
    assert failed["error_type"] == "plan_blocked" and "new dimensions need new embeddings" in failed["msg"]
    assert not (tmp_path / "p.yaml").exists()
    kept = run_module(redis_index_plan, {**args, "fail_on_blocked": False}, capsys)
    assert kept["supported"] is False and kept["changed"] and (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize(
    "patch_data, message",
    [
        ({"version": 1, "chnages": {}}, "unknown key 'chnages'"),
        ({"version": 1, "changes": {"update_feilds": []}}, "unknown section 'update_feilds'"),
        (
            {"version": 1, "changes": {"update_fields": [{"name": "embeding", "attrs": {"datatype": "float16"}}]}},
            "the index has no field 'embeding'; fields of products: name, category, embedding",
        ),
        (
            {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"data_type": "float16"}}]}},
            "unknown vector field attribute 'data_type'; did you mean 'datatype'?",
        ),
        (
            {"version": 1, "changes": {"index": {"prefixes": "x"}}},
            "unknown index option 'prefixes'; did you mean 'prefix'?",
        ),
        (
            {"version": 1, "changes": {"rename_fields": [{"old_name": "name", "new_name": "category"}]}},
            "a field of that name exists",
        ),
        ({"version": 2, "changes": {}}, "unsupported version 2"),
    ],
)
def test_strict_input_errors(clean_redis, redis_url, capsys, patch_data, message):
    load_products(clean_redis, count=5)
    before = clean_redis.dbsize()
    failed = run_module(
        redis_index_plan,
        {"redis_url": redis_url, "index": "products", "patch": patch_data},
        capsys,
        expect_failure=True,
    )
    assert message in failed["msg"]
    assert failed["error_type"] == "invalid_input"
    assert clean_redis.dbsize() == before


def test_patch_file_errors_name_the_file(clean_redis, redis_url, capsys, tmp_path):
    load_products(clean_redis, count=5)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nchanges:\n  update_fields: [\n")
    failed = run_module(
        redis_index_plan,
        {"redis_url": redis_url, "index": "products", "patch_file": str(bad)},
        capsys,
        expect_failure=True,
    )
    assert f"patch file {bad} is not valid YAML at line" in failed["msg"]
    missing = run_module(
        redis_index_plan, {"redis_url": redis_url, "index": "nope", "patch": QUANTIZE}, capsys, expect_failure=True
    )
    assert missing["error_type"] == "index_not_found" and "no index or alias named 'nope'" in missing["msg"]
