"""Migrations and rollbacks on a primary with a replica behind Sentinel (tools/redis_replica_set.py): progress is
recorded only once the replica holds it (WAIT), a WAIT that times out fails before anything is recorded, and a
primary SIGKILLed in the middle of a run - the index dropped, the vectors half rewritten - is survived: Sentinel
promotes the replica, and the same task run again through Sentinel finishes on the new primary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import List, Optional

import numpy
import pytest
from cutting_proxy import CuttingProxy
from module_runner import run_module
from test_redis_index_migrate import BATCH, DOCS, QUANT16, load

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.format import (
    decode_records,
    iter_blocks,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import (
    DATA,
    BackupStore,
    list_backups,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.lock import lock_key
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import snapshot_index
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_migrate, redis_index_rollback

MODULE_PROCESS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support", "module_process.py"
)
BLOCKS = DOCS // BATCH


def sentinel_of(replica_set) -> dict:
    return {"service": replica_set.service, "hosts": replica_set.sentinel_addresses()}


def migrate_task(replica_set, backup_dir, **extra) -> dict:
    """One task, run again unchanged after a failure: plan the float16 conversion of idx and apply it."""
    return {
        "sentinel": sentinel_of(replica_set),
        "index": "idx",
        "patch": {"version": 1, "changes": QUANT16},
        "mode": "drop_recreate",  # the drop, the window the failover falls in
        "backup_dir": str(backup_dir),
        "batch_size": BATCH,
        "accept_data_loss": True,
        "failover_timeout": 30,
        **extra,
    }


def rollback_task(replica_set, backup_dir, **extra) -> dict:
    return {"sentinel": sentinel_of(replica_set), "index": "idx", "backup_dir": str(backup_dir), **extra}


def start_task(module: str, args: dict, failpoint: str, arm: Optional[dict] = None) -> subprocess.Popen:
    """The task in a process of its own (as Ansible runs it), held at `failpoint` (phase:point:pause=s); `arm`
    acts on a cutting proxy at a checkpoint (tests/support/module_process.py)."""
    return subprocess.Popen(
        [sys.executable, MODULE_PROCESS, json.dumps({"module": module, "args": args, "arm": arm})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, INDEXOPS_FAILPOINT=failpoint),
    )


def finished(process: subprocess.Popen, timeout: float = 90) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert out.strip(), f"no result (rc {process.returncode}): {err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


def header_of(backup_dir):
    (entry,) = [e for e in list_backups(str(backup_dir)) if e[1] is not None]
    return entry


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached in {timeout} s")


def replicate_through(proxy, primary, follower) -> None:
    """Make `follower` replicate `primary` through the cutting `proxy`, once it holds everything written so far."""
    follower.execute_command("REPLICAOF", "127.0.0.1", proxy.port)
    target = primary.info("replication")["master_repl_offset"]

    def synced() -> bool:
        fields = follower.info("replication")
        return fields.get("master_link_status") == "up" and fields.get("slave_repl_offset", -1) >= target

    wait_until(synced, what="the replica in sync through the proxy")


def phase_of(backup_dir):
    """The phase the (only) backup's header says its run is in, or None before there is one."""
    if not os.path.isdir(backup_dir) or not [e for e in list_backups(str(backup_dir)) if e[1] is not None]:
        return None
    return header_of(backup_dir)[1].phase


def store_of(backup_dir) -> Optional[BackupStore]:
    """The (only) backup in `backup_dir`, once its header is written."""
    found = [e for e in list_backups(str(backup_dir)) if e[1] is not None] if os.path.isdir(backup_dir) else []
    return BackupStore(found[0][0], found[0][1]) if found else None


def ledgered(backup_dir, phase: str) -> int:
    """How many blocks `phase`'s ledgers of the (only) backup record."""
    store = store_of(backup_dir)
    return len(store.done_blocks(phase)) if store is not None else 0


def recorded_keys(backup_dir, phase: str) -> List[bytes]:
    """The keys of the blocks `phase`'s ledgers record as done, read from the backup's data file."""
    store = store_of(backup_dir)
    done = store.done_blocks(phase)
    keys = []
    with open(store.path(DATA), "rb") as stream:
        for block in iter_blocks(stream):
            if block.block_no in done:
                keys += [record.key for _i, record in decode_records(block.payload, block.record_count)]
    return keys


def expected_float16(vectors, i: int) -> bytes:
    """The conversion the migration must write: the stored float32 vector, rounded to float16."""
    return vectors[i].astype(numpy.float32).astype(numpy.float16).tobytes()


def assert_converted_and_indexed(client, vectors) -> None:
    for i in range(DOCS):
        assert client.hget(f"doc:{i}", "vec") == expected_float16(vectors, i), f"doc:{i}"
        assert client.hget(f"doc:{i}", "title") == f"document {i}".encode()
    live = snapshot_index(client, "idx")
    assert live.snapshot.index_schema.field("vec").attrs.datatype == "float16"
    assert live.stats.num_docs == DOCS and live.stats.hash_indexing_failures == 0


def assert_original_and_indexed(client, vectors) -> None:
    for i in range(DOCS):
        assert client.hget(f"doc:{i}", "vec") == vectors[i].astype(numpy.float32).tobytes(), f"doc:{i}"
    live = snapshot_index(client, "idx")
    assert live.snapshot.index_schema.field("vec").attrs.datatype == "float32"
    assert live.stats.num_docs == DOCS


def address(node) -> str:
    return f"127.0.0.1:{node.port}"


# --- durability before progress -------------------------------------------------------------------


def test_every_block_waits_for_the_replica_and_a_wait_that_times_out_fails_before_recording_it(
    replica_set, tmp_path, capsys
):
    primary = replica_set.client(protocol=2)
    vectors = load(primary)
    replica_set.wait_until_replicas_synced()
    (replica,) = replica_set.replicas()
    backup_dir = tmp_path / "b"
    task = migrate_task(replica_set, backup_dir, replicas_wait_timeout=0.5)
    running = start_task("redis_index_migrate", task, "quantize:2:pause=2")
    try:
        wait_until(lambda: ledgered(backup_dir, "quantize") == 2, what="two quantize blocks recorded")
        replica_set.pause_replica(replica)
        result = finished(running)
    finally:
        if running.poll() is None:
            running.kill()
        replica_set.resume_replica(replica)
    assert result["failed"], result
    assert (
        "only 0 of 1 replica(s) acknowledged the writes up to block 2 of phase quantize within 0.5 s (WAIT 1 500): "
        "it was not recorded" in result["msg"]
    ), result["msg"]
    assert result["error_type"] == "replication_timeout"
    assert result["replicas_asked"] == 1 and result["replicas_acknowledged"] == 0
    assert result["replicas_wait_timeout"] == 0.5
    # Block 2 (the third) was written on the primary but is not in the ledger: the re-run redoes it.
    assert ledgered(backup_dir, "quantize") == 2
    assert primary.hget(f"doc:{2 * BATCH}", "vec") == expected_float16(vectors, 2 * BATCH)
    header = header_of(backup_dir)[1]
    assert header.status == "failed" and not header.phases["quantize"].done

    replica_set.wait_until_replicas_synced()
    done = run_module(redis_index_migrate, task, capsys)
    assert done["changed"] and done["result"] == "succeeded", done
    assert_converted_and_indexed(primary, vectors)
    primary.close()


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check-mode"])
def test_a_replicas_wait_count_above_the_connected_replicas_is_refused_before_anything_changes(
    replica_set, tmp_path, capsys, check_mode
):
    primary = replica_set.client(protocol=2)
    load(primary)
    replica_set.wait_until_replicas_synced()
    before = primary.execute_command("FT.INFO", "idx")
    result = run_module(
        redis_index_migrate,
        migrate_task(replica_set, tmp_path / "b", replicas_wait_count=2),
        capsys,
        check_mode=check_mode,  # a dry run says so too, rather than would_migrate
        expect_failure=True,
    )
    endpoint = f"sentinel {replica_set.service}@" + ",".join(sorted(replica_set.sentinel_addresses()))
    assert result["msg"] == (
        f"{endpoint} index 'idx': replicas_wait_count is 2, but the primary has 1 connected replica(s): no progress "
        "could be confirmed; nothing was changed; start or reconnect the replicas (INFO replication lists them), or "
        "lower replicas_wait_count"
    )
    assert primary.execute_command("FT.INFO", "idx")[:2] == before[:2]
    assert not os.path.exists(tmp_path / "b") or not os.listdir(tmp_path / "b")
    primary.close()


@pytest.mark.parametrize("waits", [True, False], ids=["wait", "no-wait"])
def test_a_replica_that_lags_when_the_primary_dies_lacks_nothing_the_run_recorded(replica_set, tmp_path, capsys, waits):
    """The replica follows the primary through a proxy that goes quiet when quantize starts: its link stays up,
    it receives nothing more. With the waits, the run fails at the first block and records nothing the replica
    lacks, and after the failover the same task finishes on it; without them (replicas_wait_count 0, the
    control), the run records blocks the promoted replica never got, and the re-run is refused."""
    old_node, (replica,) = replica_set.primary(), replica_set.replicas()
    primary = replica_set.client(protocol=2)
    vectors = load(primary)
    proxy = CuttingProxy(old_node.port)
    follower = replica_set.client(replica, protocol=2)
    backup_dir = tmp_path / "b"
    try:
        replicate_through(proxy, primary, follower)
        task = migrate_task(
            replica_set, backup_dir, replicas_wait_timeout=1, **({} if waits else {"replicas_wait_count": 0})
        )
        mute = {"checkpoint": "quantize:start", "control": proxy.control_port, "mute": True}
        running = start_task("redis_index_migrate", task, "quantize:3:pause=3", arm=mute)
        try:
            if waits:
                result = finished(running)
                assert result["error_type"] == "replication_timeout", result
                assert "acknowledged the writes up to block 0 of phase quantize within 1 s" in result["msg"]
                assert ledgered(backup_dir, "quantize") == 0
            else:
                wait_until(lambda: ledgered(backup_dir, "quantize") == 3, what="three quantize blocks recorded")
            replica_set.kill_primary()
            new = replica_set.wait_for_failover(timeout=30)
            if not waits:
                result = finished(running)
                assert "the Sentinels now name" in result["msg"], result["msg"]
        finally:
            if running.poll() is None:
                running.kill()
    finally:
        proxy.close()
        follower.close()
        primary.close()
    assert new is replica
    promoted = replica_set.client(new, protocol=2)
    recorded = recorded_keys(backup_dir, "quantize")
    if waits:
        assert recorded == []
        done = run_module(redis_index_migrate, task, capsys)
        assert done["changed"] and done["result"] == "succeeded", done
        assert_converted_and_indexed(promoted, vectors)
    else:
        # The ledger says 3 blocks (4: the next one's reply was already in when the run held) were converted;
        # the promoted replica holds every one of their documents as it was before.
        assert len(recorded) >= 3 * BATCH
        originals = [
            k
            for k in recorded
            if promoted.hget(k, "vec") == vectors[int(k.split(b":")[1])].astype(numpy.float32).tobytes()
        ]
        assert len(originals) == len(recorded)
        refused = run_module(redis_index_migrate, task, capsys, expect_failure=True)
        assert "cannot resume" in refused["msg"] and "older snapshot" in refused["msg"], refused["msg"]
    promoted.close()


# --- failover in the middle of a run ------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_primary_killed_mid_rewrite_with_the_index_dropped_the_same_task_finishes_on_the_new_primary(
    replica_set, tmp_path, capsys, workers
):
    primary = replica_set.client(protocol=2)
    vectors = load(primary)
    replica_set.wait_until_replicas_synced()
    backup_dir = tmp_path / "b"
    task = migrate_task(replica_set, backup_dir, workers=workers)
    # Each process (the run, or each of its workers) holds after its second block of quantize.
    running = start_task("redis_index_migrate", task, "quantize:2:pause=2")
    try:
        wait_until(lambda: ledgered(backup_dir, "quantize") == 2 * workers, what="quantize blocks recorded")
        assert primary.execute_command("FT._LIST") == []  # the index is dropped
        old = replica_set.kill_primary()
        new = replica_set.wait_for_failover(timeout=30)
        result = finished(running)
    finally:
        if running.poll() is None:
            running.kill()
    primary.close()
    # The run that lost its primary says where it stopped and names the new primary.
    assert result["failed"], result
    assert "index 'idx': migration stopped in phase quantize: " in result["msg"]
    assert "; the index was dropped; backup " in result["msg"]
    assert (
        f"; the Sentinels now name {address(new)} the primary of {replica_set.service} (a failover from "
        f"{address(old)}): run the same task again to continue there; "
    ) in result["msg"], result["msg"]
    promoted = replica_set.client(new, protocol=2)
    # Every block the ledgers recorded is on the new primary (WAIT), and the failed run released its lock there.
    assert promoted.exists(lock_key("idx")) == 0
    recorded = recorded_keys(backup_dir, "quantize")
    assert len(recorded) == 2 * workers * BATCH
    for key in recorded:
        i = int(key.split(b":")[1])
        assert promoted.hget(key, "vec") == expected_float16(vectors, i), key

    done = run_module(redis_index_migrate, task, capsys)
    assert done["changed"] and done["result"] == "succeeded", done
    assert_converted_and_indexed(promoted, vectors)
    assert done["report"]["validation"]["passed"]
    again = run_module(redis_index_migrate, task, capsys)
    assert not again["changed"]
    promoted.close()


def test_primary_and_run_both_killed_after_the_drop_the_lock_of_the_dead_run_does_not_block_the_rerun(
    replica_set, tmp_path, capsys
):
    primary = replica_set.client(protocol=2)
    vectors = load(primary)
    replica_set.wait_until_replicas_synced()
    backup_dir = tmp_path / "b"
    task = migrate_task(replica_set, backup_dir)
    running = start_task("redis_index_migrate", task, "quantize:start:pause=20")
    try:
        wait_until(lambda: phase_of(backup_dir) == "quantize", what="the quantize phase")
        assert primary.execute_command("FT._LIST") == []
        holder = primary.get(lock_key("idx"))
        replica_set.kill_primary()
        running.send_signal(signal.SIGKILL)
        running.wait(timeout=10)
        new = replica_set.wait_for_failover(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
    primary.close()
    promoted = replica_set.client(new, protocol=2)
    # The dead run's lock replicated to the new primary, with its TTL.
    assert promoted.get(lock_key("idx")) == holder and promoted.pttl(lock_key("idx")) > 0
    began = time.monotonic()
    done = run_module(redis_index_migrate, task, capsys)
    assert time.monotonic() - began < 30
    assert done["changed"] and done["result"] == "succeeded", done
    assert_converted_and_indexed(promoted, vectors)
    promoted.close()


def test_primary_killed_mid_rollback_the_same_rollback_finishes_on_the_new_primary(replica_set, tmp_path, capsys):
    primary = replica_set.client(protocol=2)
    vectors = load(primary)
    replica_set.wait_until_replicas_synced()
    backup_dir = tmp_path / "b"
    migrated = run_module(redis_index_migrate, migrate_task(replica_set, backup_dir), capsys)
    assert migrated["result"] == "succeeded"
    task = rollback_task(replica_set, backup_dir)
    running = start_task("redis_index_rollback", task, f"rollback:{3 * BATCH}:pause=2")
    try:
        wait_until(
            lambda: (
                primary.hget(f"doc:{3 * BATCH - 1}", "vec") == vectors[3 * BATCH - 1].astype(numpy.float32).tobytes()
            ),
            what="three blocks restored",
        )
        old = replica_set.kill_primary()
        new = replica_set.wait_for_failover(timeout=30)
        result = finished(running)
    finally:
        if running.poll() is None:
            running.kill()
    primary.close()
    assert result["failed"], result
    assert (
        f"; the Sentinels now name {address(new)} the primary of {replica_set.service} (a failover from "
        f"{address(old)}): run the same task again to continue there; "
    ) in result["msg"], result["msg"]
    promoted = replica_set.client(new, protocol=2)
    assert promoted.exists(lock_key("idx")) == 0

    done = run_module(redis_index_rollback, task, capsys)
    assert done["changed"] and done["result"] == "rolled_back", done
    assert_original_and_indexed(promoted, vectors)
    promoted.close()
