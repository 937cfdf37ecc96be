"""Following a running migration, and int8 on servers that accept it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from module_runner import run_module
from test_redis_index_migrate import BATCH, DRIVER, QUANT16, load, make_plan, run

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.capabilities import (
    detect_capabilities,
)
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_info


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


def test_int8_quantization_on_a_server_that_accepts_it(clean_redis, redis_url, tmp_path):
    if not detect_capabilities(clean_redis).accepts_datatype("int8"):
        pytest.skip("this server's search module rejects INT8 (needs search 8.0); covered by unit tests")
    load(clean_redis)
    plan = make_plan(clean_redis, {"update_fields": [{"name": "vec", "attrs": {"datatype": "int8"}}]})
    outcome = run(clean_redis, redis_url, plan, tmp_path)
    assert outcome.report.validation["passed"]
    params = outcome.report.quant_params["vec"]
    assert params["scheme"] == "symmetric" and params["scale"] > 0
    assert outcome.report.quality["vec"]["recall_at_10"] > 0.8
