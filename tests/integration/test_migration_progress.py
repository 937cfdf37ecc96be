"""Following a running migration, and int8 on servers that accept it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from datasets import dump_hashes
from module_runner import run_module
from playbook_runner import run_playbook
from test_redis_index_migrate import (
    BATCH,
    DRIVER,
    QUANT16,
    expected_after_quantize,
    load,
    make_plan,
    run,
    run_killed,
)

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.capabilities import (
    detect_capabilities,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.lock import lock_key
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_info, redis_index_migrate


def test_info_follows_a_running_migration(clean_redis, redis_url, tmp_path, capsys):
    load(clean_redis)
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    write_plan(plan, str(tmp_path / "plan.yaml"))
    args = {
        "url": redis_url,
        "plan": str(tmp_path / "plan.yaml"),
        "backup_dir": str(tmp_path / "b"),
        "options": {"batch_size": BATCH, "accept_data_loss": True},
    }
    running = subprocess.Popen(
        [sys.executable, DRIVER, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, INDEXOPS_FAILPOINT="quantize:2:pause=3"),
    )
    try:
        seen = None
        for _attempt in range(300):
            info = run_module(
                redis_index_info,
                {"redis_url": redis_url, "backup_dir": str(tmp_path / "b"), "probe_capabilities": False},
                capsys,
            )
            migrations = info.get("migrations") or []
            if migrations and migrations[0]["phase"] == "quantize":
                seen = migrations[0]
                break
            time.sleep(0.02)
        assert seen is not None, "the migration's progress never showed the quantize phase"
        assert seen["status"] == "running" and seen["source_index"] == "idx"
        assert seen["lock"]["pid"] == running.pid and seen["lock"]["owner_gone"] is False
        assert seen["phases_done"] == ["backup", "drop", "move_fields", "rename_keys"]
        assert seen["progress"]["backup"]["documents"] == 300 and seen["documents"] == 300
    finally:
        running.wait(timeout=60)
    assert running.returncode == 0
    done = run_module(
        redis_index_info,
        {"redis_url": redis_url, "backup_dir": str(tmp_path / "b"), "index": "idx", "probe_capabilities": False},
        capsys,
    )
    assert done["migrations"][0]["status"] == "completed"
    assert done["migrations"][0]["phases_done"][-1] == "validate"


def info_of(redis_url, backup_dir, capsys) -> dict:
    """The newest migration redis_index_info reports in backup_dir."""
    info = run_module(
        redis_index_info,
        {"redis_url": redis_url, "backup_dir": str(backup_dir), "index": "idx", "probe_capabilities": False},
        capsys,
    )
    return info["migrations"][-1]


def test_info_says_interrupted_when_the_migrations_process_is_gone(clean_redis, redis_url, tmp_path, capsys):
    """A killed run leaves its header saying `running` for good: info tells it from a live one by the index's
    lock (held by a live process, by a dead one of this host, by another host's, or by nobody)."""
    load(clean_redis)
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    write_plan(plan, str(tmp_path / "plan.yaml"))
    killed = run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "b", "quantize:2")
    assert killed.returncode == -9, killed.stdout + killed.stderr

    # Its lock is still there (60 s TTL), owned by a dead process of this host.
    gone = info_of(redis_url, tmp_path / "b", capsys)
    assert gone["status"] == "interrupted" and gone["recorded_status"] == "running" and gone["phase"] == "quantize"
    assert gone["lock"]["owner_gone"] is True and gone["lock"]["purpose"] == "migration"
    assert "redis_index_migrate" in gone["hint"] and "redis_index_rollback" in gone["hint"]

    # A holder on another host cannot be checked from here: live until its TTL runs out.
    holder = {"token": "t", "host": "elsewhere.example", "pid": 4242, "purpose": "migration", "since": "now"}
    clean_redis.set(lock_key("idx"), json.dumps(holder), px=30_000)
    elsewhere = info_of(redis_url, tmp_path / "b", capsys)
    assert elsewhere["status"] == "running" and elsewhere["lock"]["host"] == "elsewhere.example"
    assert 0 < elsewhere["lock"]["ttl_ms"] <= 30_000 and "hint" not in elsewhere

    clean_redis.delete(lock_key("idx"))  # expired: nobody works on it
    expired = info_of(redis_url, tmp_path / "b", capsys)
    assert expired["status"] == "interrupted" and "lock" not in expired

    outcome = run(clean_redis, redis_url, plan, tmp_path / "b")  # the way out the hint gives: the same run again
    assert outcome.report.result == "succeeded"
    assert info_of(redis_url, tmp_path / "b", capsys)["status"] == "completed"


MODULE_PROCESS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support", "module_process.py"
)


def test_a_cancelled_module_stops_at_a_safe_point_and_the_same_task_resumes(clean_redis, redis_url, tmp_path, capsys):
    """What a module does when its job is cancelled (SIGINT/SIGTERM from ansible-playbook's worker): run by the
    collection's action plugin (INDEXOPS_PROGRESS_DIR set), it writes its progress there, and a signal makes it
    stop at its next safe point - the failure recorded, the lock released - instead of dying in the middle."""
    load(clean_redis)
    before = dump_hashes(clean_redis, b"doc:*")
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    write_plan(plan, str(tmp_path / "plan.yaml"))
    args = {
        "redis_url": redis_url,
        "plan_file": str(tmp_path / "plan.yaml"),
        "backup_dir": str(tmp_path / "b"),
        "accept_data_loss": True,
        "batch_size": BATCH,
    }
    channel = tmp_path / "channel"
    channel.mkdir()
    (channel / "control").write_text("run")
    running = subprocess.Popen(
        [sys.executable, MODULE_PROCESS, json.dumps({"module": "redis_index_migrate", "args": args})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, INDEXOPS_FAILPOINT="wait:start:pause=3", INDEXOPS_PROGRESS_DIR=str(channel)),
    )
    deadline = time.monotonic() + 60
    seen = {}
    while time.monotonic() < deadline and seen.get("phase") != "quantize":
        try:
            seen = json.loads((channel / "progress.json").read_text())
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    assert seen.get("phase") == "quantize" and seen["index"] == "idx" and seen["total"] == 300, seen
    running.send_signal(signal.SIGTERM)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 1, out + err
    result = json.loads(out)
    # The signal came while it paused before the wait; it stopped at the wait's first report.
    assert result["error_type"] == "stopped" and result["phase"] == "wait", result
    assert "migration stopped in phase wait: it was asked to stop: its job was cancelled (SIGTERM)" in result["msg"]
    assert not clean_redis.exists(lock_key("idx"))
    assert info_of(redis_url, tmp_path / "b", capsys)["status"] == "failed"

    resumed = run_module(redis_index_migrate, args, capsys)  # the same task again
    assert resumed["result"] == "succeeded" and resumed["backup_path"] == result["backup_path"]
    assert dump_hashes(clean_redis, b"doc:*") == expected_after_quantize(before)


BATCH_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan the batch
      indexops.redis_search.redis_index_batch:
        redis_url: "{{ url }}"
        state: planned
        pattern: "idx_*"
        patch: {version: 1, changes: {update_fields: [{name: vec, attrs: {datatype: float16}}]}}
        mode: drop_recreate
        plan_out: "{{ dir }}/batch.yaml"
    - name: Apply the batch
      indexops.redis_search.redis_index_batch:
        redis_url: "{{ url }}"
        state: applied
        plan_file: "{{ dir }}/batch.yaml"
        backup_dir: "{{ dir }}/b"
        accept_data_loss: true
"""


@pytest.mark.playbook
def test_a_batch_prints_each_indexes_progress_at_default_verbosity(clean_redis, redis_url, tmp_path):
    """The action plugin of redis_index_batch: lines for each index while the batch runs (each index pauses 1.5 s
    before its wait, so that lines at 0.5 s come whatever the machine's speed)."""
    for number, name in enumerate(("idx_a", "idx_b")):
        load(clean_redis, index=name, prefix=f"{name[-1]}:", seed=30 + number)
    done = run_playbook(
        BATCH_PLAYBOOK,
        {"url": redis_url, "dir": str(tmp_path)},
        env={"INDEXOPS_PROGRESS_SECONDS": "0.5", "INDEXOPS_FAILPOINT": "wait:start:pause=1.5"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("idx_a", "idx_b"):
        assert re.search(
            rf"^localhost {name}: quantize 300/300 documents \(100%\), \d+ s elapsed$", done.stdout, re.M
        ), done.stdout


def test_int8_quantization_on_a_server_that_accepts_it(clean_redis, redis_url, tmp_path):
    if not detect_capabilities(clean_redis).accepts_datatype("int8"):
        pytest.skip("this server's search module rejects INT8 (needs search 8.0); covered by unit tests")
    load(clean_redis)
    plan = make_plan(
        clean_redis, {"update_fields": [{"name": "vec", "attrs": {"datatype": "int8"}}]}, mode="drop_recreate"
    )
    outcome = run(clean_redis, redis_url, plan, tmp_path)
    assert outcome.report.validation["passed"]
    params = outcome.report.quant_params["vec"]
    assert params["scheme"] == "symmetric" and params["scale"] > 0
    assert outcome.report.quality["vec"]["recall_at_10"] > 0.8
