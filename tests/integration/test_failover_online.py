"""Online migrations (expand, build, swap, contract: apply/phases/online_rewrite.py) and their rollbacks on a primary
with a replica behind Sentinel: the primary is SIGKILLed at each step, Sentinel promotes the replica, and the same
task run again through Sentinel finishes on the new primary - every document as drop_recreate leaves its twin, no
side field left, the index as planned under the planned names; a rollback gives every original byte and the source
index back. A batch whose primary fails over between two indexes is continued the same way."""

from __future__ import annotations

import os
from typing import Dict

import numpy
import pytest
import yaml
from cutting_proxy import CuttingProxy
from datasets import dump_hashes
from matrices import representative
from module_runner import run_module
from test_failover_migration import (
    address,
    finished,
    ledgered,
    phase_of,
    recorded_keys,
    replicate_through,
    sentinel_of,
    start_task,
    store_of,
    wait_until,
)
from test_online_migration import definition
from test_online_rewrite import RENAME16, dumps
from test_redis_index_migrate import BATCH, DOCS, QUANT16, load

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.lock import lock_key
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import (
    real_name,
    snapshot_index,
)
from ansible_collections.indexops.redis_search.plugins.modules import (
    redis_index_batch,
    redis_index_migrate,
    redis_index_rollback,
)

INTERIM, FINAL = "idx--v2", "idx--v3"  # the in-place float16 conversion builds both (online_rewrite.py)
FIELDS = {b"title", b"tag", b"vec"}


def online_task(replica_set, backup_dir, index="idx", changes=None, **extra) -> dict:
    """The float16 conversion of `index`, planned and applied as the planner chooses (online), the same task each
    time it is run."""
    return {
        "sentinel": sentinel_of(replica_set),
        "index": index,
        "patch": {"version": 1, "changes": changes or QUANT16},
        "backup_dir": str(backup_dir),
        "batch_size": BATCH,
        "accept_data_loss": True,
        "failover_timeout": 30,
        **extra,
    }


def rollback_task(replica_set, backup_dir) -> dict:
    return {"sentinel": sentinel_of(replica_set), "index": "idx", "backup_dir": str(backup_dir)}


def twins(client):
    """idx on doc: and, with the same documents, its twin tw on tw:, which a drop_recreate run converts for
    comparison."""
    vectors = load(client)
    load(client, index="tw", prefix="tw:")
    return vectors


def converted(vectors, i: int) -> bytes:
    return vectors[i].astype(numpy.float32).astype(numpy.float16).tobytes()


def assert_as_drop_recreate_leaves_it(replica_set, client, tmp_path, capsys, changes=None) -> None:
    """idx's documents and definition are what a drop_recreate run of the same change leaves on its twin, byte for
    byte (DUMP: encoding, field order, values), no side field is left, and every document is indexed under the
    planned names (in place: idx leads to idx--v3, built after the interim idx--v2; a rename: to idx--v2)."""
    twin = online_task(replica_set, tmp_path / "twin", index="tw", changes=changes, mode="drop_recreate")
    assert run_module(redis_index_migrate, twin, capsys)["result"] == "succeeded"
    assert dumps(client, "doc:") == dumps(client, "tw:")
    vector, final = ("vec", FINAL) if changes in (None, QUANT16) else ("embedding", INTERIM)
    for key in client.scan_iter(match="doc:*"):
        assert set(client.hkeys(key)) == {b"title", b"tag", vector.encode()}, key
    ours, theirs = definition(client, "idx"), definition(client, "tw")
    assert ours["index"].pop("prefix") == "doc:" and theirs["index"].pop("prefix") == "tw:"
    assert ours == theirs
    assert real_name(client, "idx") == final
    assert sorted(client.execute_command("FT._LIST")) == sorted([final.encode(), b"tw"])
    live = snapshot_index(client, "idx")
    assert live.snapshot.index_schema.field(vector).attrs.datatype == "float16"
    assert live.stats.num_docs == DOCS and live.stats.hash_indexing_failures == 0


def assert_failover_named(result: dict, replica_set, old, new) -> None:
    assert result["failed"], result
    assert (
        f"; the Sentinels now name {address(new)} the primary of {replica_set.service} (a failover from "
        f"{address(old)}): run the same task again to continue there"
    ) in result["msg"], result["msg"]


def kill_when(replica_set, running, reached, what: str):
    """Once `reached()`: SIGKILL the primary, wait for Sentinel to promote the replica; (old, new, the run's
    result)."""
    try:
        wait_until(reached, what=what)
        old = replica_set.kill_primary()
        new = replica_set.wait_for_failover(timeout=30)
        result = finished(running)
    finally:
        if running.poll() is None:
            running.kill()
    return old, new, result


def side_fields(client, key) -> Dict[bytes, bytes]:
    return {name: value for name, value in client.hgetall(key).items() if name not in FIELDS}


# --- a migration: the primary killed at each step ----------------------------------------------------------------

# (failpoint the run is held at, what says it is there, the phase its message names)
STEPS = {
    "expand": ("expand:2:pause=3", lambda b, c: ledgered(b, "expand") == 2, "expand"),
    "wait": ("wait:start:pause=3", lambda b, c: phase_of(b) == "wait", "wait"),
    "swap": ("swap:0:pause=3", lambda b, c: phase_of(b) == "swap", "swap"),
    "after-swap": ("convert:start:pause=3", lambda b, c: phase_of(b) == "convert", "convert"),
    "rebuild": ("rebuild:0:pause=3", lambda b, c: FINAL.encode() in c.execute_command("FT._LIST"), "rebuild"),
    "swap-final": ("swap_final:0:pause=3", lambda b, c: phase_of(b) == "swap_final", "swap_final"),
    "contract": ("contract:2:pause=3", lambda b, c: ledgered(b, "contract") == 2, "contract"),
    # a field rename with a conversion: one build (idx--v2), the new name written beside the old
    "rename-expand": ("expand:2:pause=3", lambda b, c: ledgered(b, "expand") == 2, "expand"),
    "rename-swap": ("swap:0:pause=3", lambda b, c: phase_of(b) == "swap", "swap"),
}


@pytest.mark.parametrize("step", representative(STEPS, kept=["expand", "swap", "contract", "rename-swap"]))
def test_primary_killed_during_an_online_conversion_the_same_task_finishes_on_the_new_primary(
    replica_set, tmp_path, capsys, step
):
    failpoint, reached, phase = STEPS[step]
    changes = RENAME16 if step.startswith("rename") else QUANT16
    primary = replica_set.client(protocol=2)
    vectors = twins(primary)
    replica_set.wait_until_replicas_synced()
    backup_dir = tmp_path / "b"
    task = online_task(replica_set, backup_dir, changes=changes)
    running = start_task("redis_index_migrate", task, failpoint)
    old, new, result = kill_when(replica_set, running, lambda: reached(backup_dir, primary), f"the run at {step}")
    primary.close()
    assert_failover_named(result, replica_set, old, new)
    assert f"index 'idx': migration stopped in phase {phase}: " in result["msg"], result["msg"]
    promoted = replica_set.client(new, protocol=2)
    assert promoted.exists(lock_key("idx")) == 0
    # Every block a ledger recorded is on the new primary (WAIT before each record).
    for key in recorded_keys(backup_dir, "expand"):
        i = int(key.split(b":")[1])
        if not store_of(backup_dir).header.phases["contract"].started_at:
            assert list(side_fields(promoted, key).values()) == [converted(vectors, i)], key
    for key in recorded_keys(backup_dir, "contract"):
        assert side_fields(promoted, key) == {}, key
        assert promoted.hget(key, "vec") == converted(vectors, int(key.split(b":")[1])), key

    done = run_module(redis_index_migrate, task, capsys)
    assert done["changed"] and done["result"] == "succeeded", done
    assert done["report"]["validation"]["passed"]
    assert_as_drop_recreate_leaves_it(replica_set, promoted, tmp_path, capsys, changes)
    again = run_module(redis_index_migrate, task, capsys)
    assert not again["changed"]
    promoted.close()


# (where the replica stops receiving, the phase the run stops in, what the promoted replica then holds)
LAGS = {
    # expand's first block is written on the primary alone: nothing of expand is recorded
    "expand": ("expand:start", "expand", lambda c: real_name(c, "idx") == "idx" and not c.hlen("doc:0") > 3),
    # the swap's MULTI/EXEC runs on the primary alone: the swap is not recorded, the source serves on the replica
    "swap": ("swap:0", "swap", lambda c: real_name(c, "idx") == "idx" and c.hlen("doc:0") == 4),
    # the final index is created on the primary after the replica went quiet: rebuild is not recorded done
    "rebuild": ("rebuild:start", "rebuild", lambda c: real_name(c, "idx") == INTERIM),
    # contract's first block deletes side fields on the primary alone
    "contract": ("contract:start", "contract", lambda c: real_name(c, "idx") == FINAL and c.hlen("doc:0") == 4),
}


@pytest.mark.parametrize("lag", representative(LAGS, kept=["expand", "contract"]))
def test_writes_the_replica_never_got_are_not_recorded_and_the_rerun_redoes_them_on_the_new_primary(
    replica_set, tmp_path, capsys, lag
):
    """The replica follows through a proxy that goes quiet at a step of the online conversion: its link stays up,
    it receives nothing more. The run fails at the step's first WAIT and records nothing the replica lacks; the old
    primary dies, and the same task finishes on the promoted replica, which is where the last record left it."""
    checkpoint, phase, where = LAGS[lag]
    old_node, (replica,) = replica_set.primary(), replica_set.replicas()
    primary = replica_set.client(protocol=2)
    twins(primary)
    proxy = CuttingProxy(old_node.port)
    follower = replica_set.client(replica, protocol=2)
    backup_dir = tmp_path / "b"
    try:
        replicate_through(proxy, primary, follower)
        task = online_task(replica_set, backup_dir, replicas_wait_timeout=1)
        mute = {"checkpoint": checkpoint, "control": proxy.control_port, "mute": True}
        running = start_task("redis_index_migrate", task, f"{checkpoint}:pause=0", arm=mute)
        try:
            result = finished(running)
        finally:
            if running.poll() is None:
                running.kill()
        assert result["error_type"] == "replication_timeout", result
        assert f"migration stopped in phase {phase}: " in result["msg"], result["msg"]
        header = store_of(backup_dir).header
        assert not header.phases[phase].done
        if phase in ("expand", "contract"):
            assert ledgered(backup_dir, phase) == 0
        replica_set.kill_primary()
        new = replica_set.wait_for_failover(timeout=30)
    finally:
        proxy.close()
        follower.close()
        primary.close()
    assert new is replica
    promoted = replica_set.client(new, protocol=2)
    assert where(promoted)
    done = run_module(redis_index_migrate, task, capsys)
    assert done["changed"] and done["result"] == "succeeded", done
    assert_as_drop_recreate_leaves_it(replica_set, promoted, tmp_path, capsys)
    promoted.close()


@pytest.mark.parametrize(
    "phase, changes",
    representative(
        [("expand", QUANT16), ("contract", QUANT16), ("contract", RENAME16)],
        kept=["contract"],
        ids=["expand", "contract", "rename-contract"],
    ),
)
def test_without_the_waits_a_rerun_on_a_replica_that_lacks_recorded_blocks_is_refused(
    replica_set, tmp_path, capsys, phase, changes
):
    """The control of the test above (replicas_wait_count 0): the run records blocks of `phase` the lagging replica
    never got; after the failover the re-run finds documents as they were before those blocks and refuses, naming
    the way out, instead of skipping them (side fields left, an interim index without them); the rollback it
    names gives every original byte back."""
    old_node, (replica,) = replica_set.primary(), replica_set.replicas()
    primary = replica_set.client(protocol=2)
    twins(primary)
    originals = dumps(primary, "doc:")
    source = definition(primary, "idx")
    proxy = CuttingProxy(old_node.port)
    follower = replica_set.client(replica, protocol=2)
    backup_dir = tmp_path / "b"
    try:
        replicate_through(proxy, primary, follower)
        task = online_task(replica_set, backup_dir, changes=changes, replicas_wait_count=0)
        mute = {"checkpoint": f"{phase}:start", "control": proxy.control_port, "mute": True}
        running = start_task("redis_index_migrate", task, f"{phase}:3:pause=3", arm=mute)
        old, new, result = kill_when(
            replica_set, running, lambda: ledgered(backup_dir, phase) == 3, f"3 {phase} blocks"
        )
    finally:
        proxy.close()
        follower.close()
        primary.close()
    assert new is replica
    assert_failover_named(result, replica_set, old, new)
    promoted = replica_set.client(new, protocol=2)
    before = "its original bytes" if phase == "expand" else "its bytes from before phase(s) contract"
    refused = run_module(redis_index_migrate, task, capsys, expect_failure=True)
    assert "cannot resume: " in refused["msg"] and f"holds {before} although the ledgers record" in refused["msg"]
    assert "redis_index_rollback" in refused["hint"]
    back = run_module(redis_index_rollback, rollback_task(replica_set, backup_dir), capsys)
    assert back["result"] == "rolled_back", back
    assert dumps(promoted, "doc:") == originals
    assert definition(promoted, "idx") == source
    promoted.close()


# --- a rollback of an online migration -------------------------------------------------------------------------

ROLLBACK_STEPS = {
    "restore": (f"rollback:{3 * BATCH}:pause=3", "restored"),
    "swap-back": ("rollback_swap:0:pause=3", "swap back"),
}


@pytest.mark.parametrize("step", representative(ROLLBACK_STEPS, kept=["restore"]))
def test_primary_killed_during_an_online_rollback_the_same_rollback_finishes_on_the_new_primary(
    replica_set, tmp_path, capsys, step
):
    failpoint, _what = ROLLBACK_STEPS[step]
    primary = replica_set.client(protocol=2)
    vectors = load(primary)
    originals = dumps(primary, "doc:")
    source = definition(primary, "idx")
    replica_set.wait_until_replicas_synced()
    backup_dir = tmp_path / "b"
    migrated = run_module(redis_index_migrate, online_task(replica_set, backup_dir), capsys)
    assert migrated["result"] == "succeeded" and real_name(primary, "idx") == FINAL
    task = rollback_task(replica_set, backup_dir)
    running = start_task("redis_index_rollback", task, failpoint)

    def reached() -> bool:
        if step == "restore":
            last = 3 * BATCH - 1
            return primary.hget(f"doc:{last}", "vec") == vectors[last].astype(numpy.float32).tobytes()
        # The source's definition rebuilt beside FINAL, and indexed: the rollback validates, then swaps back.
        rebuilt = [n for n in primary.execute_command("FT._LIST") if n != FINAL.encode()]
        return bool(rebuilt) and snapshot_index(primary, rebuilt[0].decode()).stats.num_docs == DOCS

    old, new, result = kill_when(replica_set, running, reached, f"the rollback at {step}")
    primary.close()
    assert_failover_named(result, replica_set, old, new)
    promoted = replica_set.client(new, protocol=2)
    assert promoted.exists(lock_key("idx")) == 0

    done = run_module(redis_index_rollback, task, capsys)
    assert done["changed"] and done["result"] == "rolled_back", done
    assert dumps(promoted, "doc:") == originals  # every original byte back
    assert definition(promoted, "idx") == source
    (rebuilt,) = promoted.execute_command("FT._LIST")
    assert real_name(promoted, "idx") == rebuilt.decode()
    live = snapshot_index(promoted, "idx")
    assert live.stats.num_docs == DOCS and live.stats.hash_indexing_failures == 0
    again = run_module(redis_index_rollback, task, capsys)
    assert not again["changed"]
    promoted.close()


# --- a batch whose primary fails over between two indexes ------------------------------------------------------


BATCHED = ("idx_a", "idx_b", "idx_c")


@pytest.mark.parametrize("policy", representative(["fail_fast", "continue_on_error"], kept=["continue_on_error"]))
def test_batch_whose_primary_fails_over_between_two_indexes_stops_and_finishes_on_the_new_primary(
    replica_set, tmp_path, capsys, policy
):
    """idx_a is migrated, the primary dies before idx_b starts: idx_b fails naming the new primary and - whatever
    the failure policy - idx_c is not started on a primary the batch did not begin on; the same task run again
    finishes both there."""
    primary = replica_set.client(protocol=2)
    for n, name in enumerate(BATCHED):
        load(primary, index=name, prefix=f"{name[-1]}:", seed=20 + n)
    originals = dump_hashes(primary)
    replica_set.wait_until_replicas_synced()
    common = {"sentinel": sentinel_of(replica_set), "batch_size": BATCH}
    planned = run_module(
        redis_index_batch,
        {
            **common,
            "state": "planned",
            "pattern": "idx_*",
            "patch": {"version": 1, "changes": QUANT16},
            "failure_policy": policy,
            "plan_out": str(tmp_path / "batch.yaml"),
        },
        capsys,
    )
    assert planned["changed"]
    with open(tmp_path / "batch.yaml", encoding="utf-8") as stream:
        modes = {entry["name"]: entry["plan"]["mode"] for entry in yaml.safe_load(stream)["indexes"]}
    assert modes == {name: "online" for name in BATCHED}
    task = {
        **common,
        "state": "applied",
        "plan_file": str(tmp_path / "batch.yaml"),
        "backup_dir": str(tmp_path / "b"),
        "accept_data_loss": True,
        "retry_failed": True,
        "failover_timeout": 30,
    }
    # Held once idx_a is done, before idx_b starts.
    running = start_task("redis_index_batch", task, "batch:idx_b:pause=3")

    def between() -> bool:
        state = tmp_path / "batch.state.json"
        return os.path.exists(state) and '"succeeded"' in state.read_text() and real_name(primary, "idx_a") != "idx_a"

    old, new, result = kill_when(replica_set, running, between, "idx_a migrated")
    primary.close()
    assert_failover_named(result, replica_set, old, new)
    statuses = {entry["name"]: entry["status"] for entry in result["indexes"]}
    assert statuses == {"idx_a": "succeeded", "idx_b": "failed", "idx_c": "pending"}, statuses
    promoted = replica_set.client(new, protocol=2)
    assert promoted.keys(lock_key("*")) == []  # the batch's lock released on the new primary
    assert [real_name(promoted, name) for name in BATCHED] == ["idx_a--v3", "idx_b", "idx_c"]

    done = run_module(redis_index_batch, task, capsys)
    assert done["changed"] and done["result"] == "completed", done
    # Every document of every index converted, no side field left.
    expected = {
        key: {**fields, b"vec": numpy.frombuffer(fields[b"vec"], numpy.float32).astype(numpy.float16).tobytes()}
        for key, fields in originals.items()
    }
    assert dump_hashes(promoted) == expected
    for name in BATCHED:
        assert real_name(promoted, name) == f"{name}--v3"
        live = snapshot_index(promoted, name)
        assert live.snapshot.index_schema.field("vec").attrs.datatype == "float16"
        assert live.stats.num_docs == DOCS and live.stats.hash_indexing_failures == 0
    promoted.close()
