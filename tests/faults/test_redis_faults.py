"""Redis faults during a migration or rollback: connections cut at chosen moments (a TCP proxy on
loopback between the modules and the server) and a server crash with persistence on (AOF, fsync on
every write), restarted on the same port and directory.

Each time the run either rides it out (the connection's retries) or fails with a one-line error that
names the phase and the way on; the same task run again finishes; and Redis then holds exactly what an
uninterrupted run leaves (every key's bytes and name, every index's definition and counts, the
aliases), and a rollback brings back every original byte and key name.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
import redis
from cutting_proxy import CuttingProxy
from fault_scenarios import (
    SCENARIOS,
    capture,
    driver_args,
    load,
    read_trace,
    resolve,
    roll_back,
    run_in_process,
    run_module_process,
    source_index,
    start_driver,
    without_stale_locks,
)
from restartable_server import RestartableServer

pytestmark = pytest.mark.fault


@pytest.fixture
def proxy(redis_server):
    cutting = CuttingProxy(redis_server.port)
    yield cutting
    cutting.close()


def migrate_args(url, scenario, backup_dir) -> dict:
    """The module task, planning on the fly (so that the plan is the connection's own endpoint's)."""
    return {
        "redis_url": url,
        "index": source_index(scenario),
        "patch": {"version": 1, "changes": scenario.changes},
        "aliases": scenario.aliases,
        "batch_size": 50,
        "workers": scenario.workers,
        "mode": scenario.mode,
        "backup_dir": str(backup_dir),
        "accept_data_loss": True,
        "wait_timeout": 60,
    }


def task(module, args, proxy=None, checkpoint=None, cut=None) -> dict:
    """The task in a process of its own, the proxy armed with `cut` when it reaches `checkpoint` ("now":
    before it starts). A failure must be one line, with a hint."""
    arm = None
    if cut is not None and checkpoint == "now":
        proxy.cut(**cut)
    elif cut is not None:
        arm = {"checkpoint": checkpoint, "control": proxy.control_port, "cut": cut}
    result = run_module_process(module, args, arm)
    if result.get("failed"):
        message = result["msg"]
        assert "\n" not in message and "Traceback" not in message, message
        assert result.get("error_type") != "unexpected", result.get("exception", message)
        assert result.get("hint"), result
    return result


def rerun_until_done(module, args, first, expected, outage) -> str:
    """How the run went: rode out the fault (retried), or failed clearly and the same task finished it."""
    if not first.get("failed"):
        assert first["changed"] and first["result"] == expected, first
        return "retried"
    time.sleep(outage)
    again = task(module, args)
    assert not again.get("failed"), again["msg"]
    assert again["changed"] and again["result"] == expected, again
    return "failed_then_resumed"


# -- connections cut during a migration ----------------------------------------------------------------------

# (id, scenario, where the cut is armed, the cut)
MIGRATE_CUTS = [
    ("lock-set-reply-lost", "hash", "now", {"command": "SET", "reply": True}),
    ("backup-read-mid-pipeline", "hash", "backup:start", {"command": "HMGET", "nth": 120}),
    ("collision-check-reply-lost", "hash", "drop:start", {"command": "EXISTS", "nth": 333, "reply": True}),
    ("dropindex-not-sent", "hash", "drop:0", {"command": "FT.DROPINDEX"}),
    ("dropindex-reply-lost", "hash", "drop:0", {"command": "FT.DROPINDEX", "reply": True}),
    ("move-mid-pipeline", "hash", "move_fields:start", {"command": "EVALSHA", "nth": 10}),
    ("rename-reply-lost", "hash", "rename_keys:1", {"command": "EVALSHA", "nth": 20, "reply": True}),
    ("quantize-not-sent", "hash", "quantize:2", {"command": "EVALSHA"}),
    ("quantize-reply-lost", "hash", "quantize:1", {"command": "EVALSHA", "reply": True}),
    ("quantize-outage", "hash", "quantize:2", {"command": "EVALSHA", "outage": 6}),
    ("create-reply-lost", "hash", "create:start", {"command": "FT.CREATE", "reply": True}),
    ("aliasupdate-reply-lost", "hash", "create:0", {"command": "FT.ALIASUPDATE", "reply": True}),
    ("wait-outage", "hash", "wait:start", {"command": "FT.INFO", "outage": 6}),
    ("validate-reply-lost", "hash", "validate:start", {"command": "FT.SEARCH", "nth": 3, "reply": True}),
    ("json-backup-mid-pipeline", "json", "backup:start", {"command": "JSON.GET", "nth": 500}),
    ("json-move-reply-lost", "json", "move_fields:2", {"command": "EVALSHA", "nth": 7, "reply": True}),
    ("json-rename-outage", "json", "rename_keys:start", {"command": "EVALSHA", "nth": 90, "outage": 6}),
    ("online-create-reply-lost", "online", "create:start", {"command": "FT.CREATE", "reply": True}),
    ("online-swap-exec-reply-lost", "online", "swap:0", {"command": "EXEC", "reply": True}),
    ("online-swap-exec-not-sent", "online", "swap:0", {"command": "EXEC"}),
]
FAST_CUTS = {"dropindex-reply-lost", "quantize-outage", "online-swap-exec-reply-lost"}


@pytest.mark.parametrize(
    "name, scenario_name, checkpoint, cut",
    [pytest.param(*c, id=c[0], marks=[pytest.mark.faults_fast] if c[0] in FAST_CUTS else []) for c in MIGRATE_CUTS],
)
def test_connection_cut_during_migration(
    name, scenario_name, checkpoint, cut, clean_redis, proxy, tmp_path, calibrations, record_property
):
    scenario = SCENARIOS[scenario_name]
    calibration = calibrations(scenario_name)
    clean_redis.flushall()
    load(clean_redis, scenario)
    args = migrate_args(proxy.url, scenario, tmp_path / "b")
    first = task("redis_index_migrate", args, proxy, checkpoint, cut)
    assert proxy.cuts, f"the cut was never made: {proxy.seen}"
    if first.get("failed"):
        assert "migration stopped in phase" in first["msg"], first["msg"]
    outcome = rerun_until_done("redis_index_migrate", args, first, "succeeded", cut.get("outage", 0))
    assert without_stale_locks(capture(clean_redis)) == calibration.reference
    undone = task(
        "redis_index_rollback",
        {"redis_url": proxy.url, "index": source_index(scenario), "backup_dir": str(tmp_path / "b")},
    )
    assert undone["result"] == "rolled_back", undone
    now = without_stale_locks(capture(clean_redis))
    if scenario.mode == "online":
        assert now["keys"] == calibration.original["keys"]
    else:
        assert now == calibration.original
    record_property(
        "fault",
        {
            "kind": "connection_cut",
            "case": name,
            "outcome": outcome,
            "cut": proxy.cuts[0]["command"],
            "count": len(proxy.cuts),
            "first_error": first.get("msg"),
        },
    )
    print(f"{name}: {outcome}; first run: {first.get('msg', first.get('result'))}")


ROLLBACK_CUTS = [
    ("restore-mid-pipeline", "hash", "rollback:50", {"command": "EVALSHA", "nth": 25}),
    ("restore-reply-lost", "hash", "rollback:100", {"command": "EVALSHA", "nth": 40, "reply": True}),
    ("restore-outage", "hash", "rollback:150", {"command": "EVALSHA", "nth": 5, "outage": 6}),
    ("permission-check-cut", "hash", "now", {"command": "FT.DROPINDEX"}),  # queued in MULTI by the ACL check
    ("drop-target-reply-lost", "hash", "rollback:300", {"command": "FT.DROPINDEX", "reply": True}),
    ("recreate-reply-lost", "hash", "rollback_index:0", {"command": "FT.CREATE", "reply": True}),
    ("json-restore-reply-lost", "json", "rollback:150", {"command": "EVALSHA", "nth": 3, "reply": True}),
    ("online-swap-back-exec-reply-lost", "online", "now", {"command": "EXEC", "reply": True}),
]


@pytest.mark.parametrize(
    "name, scenario_name, checkpoint, cut",
    [
        pytest.param(*c, id=c[0], marks=[pytest.mark.faults_fast] if c[0] == "restore-reply-lost" else [])
        for c in ROLLBACK_CUTS
    ],
)
def test_connection_cut_during_rollback(
    name, scenario_name, checkpoint, cut, clean_redis, redis_url, proxy, tmp_path, calibrations, record_property
):
    scenario = SCENARIOS[scenario_name]
    calibration = calibrations(scenario_name)
    clean_redis.flushall()
    load(clean_redis, scenario)
    run_in_process(clean_redis, redis_url, calibration.plan, tmp_path / "b", scenario)
    assert capture(clean_redis) == calibration.reference
    args = {"redis_url": proxy.url, "index": source_index(scenario), "backup_dir": str(tmp_path / "b")}
    first = task("redis_index_rollback", args, proxy, checkpoint, cut)
    assert proxy.cuts, f"the cut was never made: {proxy.seen}"
    outcome = rerun_until_done("redis_index_rollback", args, first, "rolled_back", cut.get("outage", 0))
    now = without_stale_locks(capture(clean_redis))
    if scenario.mode == "online":
        assert now["keys"] == calibration.original["keys"]
        assert now["aliases"]["live"] is not None and len(now["indexes"]) == 1
    else:
        assert now == calibration.original
    record_property(
        "fault",
        {
            "kind": "connection_cut",
            "case": f"rollback-{name}",
            "outcome": outcome,
            "cut": proxy.cuts[0]["command"],
            "count": len(proxy.cuts),
            "first_error": first.get("msg"),
        },
    )
    print(f"rollback {name}: {outcome}; first run: {first.get('msg', first.get('result'))}")


# -- the server crashes and comes back from its AOF ----------------------------------------------------------


@pytest.fixture
def persistent_server():
    server = RestartableServer().start()
    client = redis.Redis.from_url(server.url, protocol=2)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "always"}
    client.close()
    yield server
    server.stop()


def finish_after_restart(client, url, scenario, calibration, code, out, backup) -> str:
    """The driver's run either rode out the restart or failed with a clear message; then the same call."""
    if code == 0:
        assert json.loads(out.splitlines()[-1])["result"] == "succeeded", out
        return "retried"
    if code == 1:
        failure = json.loads(out.splitlines()[-1])["failed"]
        assert "\n" not in failure and "migration stopped in phase" in failure, failure
        outcome = "failed_then_resumed"
    else:
        assert code == -signal.SIGKILL, out
        outcome = "killed_then_resumed"
    done = run_in_process(client, url, calibration.plan, backup, scenario)
    assert done.changed and done.report.result == "succeeded", done.report
    return outcome


def _loaded(server, scenario_name):
    """The scenario's documents on the persistent server: (the scenario, a client)."""
    scenario = SCENARIOS[scenario_name]
    client = redis.Redis.from_url(server.url, protocol=2)
    load(client, scenario)
    return scenario, client


def _converged_then_rolled_back(client, backup, scenario, calibration) -> None:
    """Redis holds what an uninterrupted run leaves; then a rollback brings back the original (an online
    rollback builds the source again under a new name: the documents are compared)."""
    assert without_stale_locks(capture(client)) == calibration.reference
    roll_back(client, backup, scenario)
    now = without_stale_locks(capture(client))
    if scenario.mode == "online":
        assert now["keys"] == calibration.original["keys"]
    else:
        assert now == calibration.original


# (id, scenario, where the run is held while the server crashes and restarts)
RESTARTS = [
    ("mid-backup", "hash", "backup:2"),
    ("before-drop", "hash", "drop:0"),
    ("mid-move", "hash", "move_fields:2"),
    ("mid-rename", "hash", "rename_keys:4"),
    ("mid-quantize", "hash", "quantize:3"),
    ("after-create", "hash", "create:0"),
    ("before-wait", "hash", "wait:start"),
    ("before-validate", "hash", "validate:start"),
    ("json-mid-move", "json", "move_fields:3"),
    ("online-before-swap", "online", "swap:0"),
]


@pytest.mark.parametrize(
    "name, scenario_name, checkpoint",
    [pytest.param(*r, id=r[0], marks=[pytest.mark.faults_fast] if r[0] == "mid-quantize" else []) for r in RESTARTS],
)
def test_server_crash_and_restart_mid_migration(
    name, scenario_name, checkpoint, persistent_server, tmp_path, calibrations, record_property
):
    calibration = calibrations(scenario_name)
    url = persistent_server.url
    scenario, client = _loaded(persistent_server, scenario_name)
    assert capture(client) == calibration.original
    backup, trace = tmp_path / "b", tmp_path / "trace"
    proc = start_driver(
        driver_args("migrate", url, scenario, backup, trace, calibration.plan_path), failpoint=f"{checkpoint}:pause=2"
    )
    time.sleep(0.3)
    deadline = time.monotonic() + 60
    while not _paused_at(trace, checkpoint) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.2)  # well inside the pause
    persistent_server.restart()
    out, err = proc.communicate(timeout=180)
    client = redis.Redis.from_url(url, protocol=2)
    outcome = finish_after_restart(client, url, scenario, calibration, proc.returncode, out + err, backup)
    _converged_then_rolled_back(client, backup, scenario, calibration)
    record_property("fault", {"kind": "server_restart", "case": name, "outcome": outcome})
    print(f"{name}: {outcome}")


def _paused_at(trace, checkpoint) -> bool:
    """Whether the run has reached the step of `checkpoint` (it then pauses at the point itself)."""
    phase = checkpoint.split(":")[0]
    return any(e.get("step") == phase for e in read_trace(trace))


def test_server_crash_while_the_migration_runs(persistent_server, tmp_path, calibrations, record_property):
    """No pause: the server is crashed while the quantize phase sends its pipelines, and restarted."""
    calibration = calibrations("hash")
    url = persistent_server.url
    scenario, client = _loaded(persistent_server, "hash")
    backup, trace = tmp_path / "b", tmp_path / "trace"
    proc = start_driver(driver_args("migrate", url, scenario, backup, trace, calibration.plan_path))
    deadline = time.monotonic() + 60
    while not any(e.get("step") == "quantize" for e in read_trace(trace)) and time.monotonic() < deadline:
        time.sleep(0.001)
    persistent_server.restart()
    out, err = proc.communicate(timeout=180)
    client = redis.Redis.from_url(url, protocol=2)
    outcome = finish_after_restart(client, url, scenario, calibration, proc.returncode, out + err, backup)
    _converged_then_rolled_back(client, backup, scenario, calibration)
    record_property("fault", {"kind": "server_restart", "case": "while-running", "outcome": outcome})


@pytest.mark.parametrize("records", [1, 0.5, "last"])
def test_server_and_migration_crash_together(records, persistent_server, tmp_path, calibrations, record_property):
    """A power cut: the migration is SIGKILLed mid-quantize and the server crashes with it; the server comes
    back from its AOF and the same call, run again, finishes."""
    calibration = calibrations("hash")
    url = persistent_server.url
    scenario, client = _loaded(persistent_server, "hash")
    backup, trace = tmp_path / "b", tmp_path / "trace"
    kill = resolve({"step": "quantize", "records": records}, calibration.migrate_steps)
    proc = start_driver(driver_args("migrate", url, scenario, backup, trace, calibration.plan_path, kill=kill))
    proc.communicate(timeout=180)
    assert proc.returncode == -signal.SIGKILL
    persistent_server.restart()
    client = redis.Redis.from_url(url, protocol=2)
    done = run_in_process(client, url, calibration.plan, backup, scenario)
    assert done.changed and done.report.result == "succeeded"
    _converged_then_rolled_back(client, backup, scenario, calibration)
    record_property(
        "fault",
        {
            "kind": "server_restart",
            "case": f"power-cut-quantize-{records}",
            "outcome": "killed_then_resumed",
            "count": 2,
        },
    )


@pytest.mark.parametrize("checkpoint", ["rollback:100", "rollback_index:0"])
def test_server_crash_and_restart_mid_rollback(checkpoint, persistent_server, tmp_path, calibrations, record_property):
    calibration = calibrations("hash")
    url = persistent_server.url
    scenario, client = _loaded(persistent_server, "hash")
    backup, trace = tmp_path / "b", tmp_path / "trace"
    run_in_process(client, url, calibration.plan, backup, scenario)
    proc = start_driver(driver_args("rollback", url, scenario, backup, trace), failpoint=f"{checkpoint}:pause=2")
    deadline = time.monotonic() + 60
    step = "rollback_restore" if checkpoint.startswith("rollback:") else "rollback_index"
    while not any(e.get("step") == step for e in read_trace(trace)) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    persistent_server.restart()
    out, err = proc.communicate(timeout=180)
    client = redis.Redis.from_url(url, protocol=2)
    if proc.returncode == 0:
        outcome = "retried"
    else:
        assert proc.returncode == 1, out + err
        failure = json.loads(out.splitlines()[-1])["failed"]
        assert "\n" not in failure, failure
        changed, result = roll_back(client, backup, scenario)
        assert changed and result.result == "rolled_back"
        outcome = "failed_then_resumed"
    assert without_stale_locks(capture(client)) == calibration.original
    record_property("fault", {"kind": "server_restart", "case": f"rollback-{checkpoint}", "outcome": outcome})


def test_dropped_connections_at_random_moments(clean_redis, proxy, tmp_path, calibrations, record_property):
    """Every connection cut at seeded random moments of one migration and of its rollback."""
    import random  # pylint: disable=import-outside-toplevel

    from fault_scenarios import SEED  # pylint: disable=import-outside-toplevel

    scenario = SCENARIOS["hash"]
    calibration = calibrations("hash")
    clean_redis.flushall()
    load(clean_redis, scenario)
    chooser = random.Random(SEED * 31)
    # The task's process needs about a second to start: the moments fall in its run.
    moments = sorted(chooser.uniform(1.0, 2.5) for _moment in range(4))
    print(f"seed {SEED}: cuts at {moments} s")
    stop = threading.Event()

    def cutter():
        began = time.monotonic()
        for moment in moments:
            if stop.wait(max(0.0, began + moment - time.monotonic())):
                return
            proxy.cut_now()

    thread = threading.Thread(target=cutter, daemon=True)
    args = migrate_args(proxy.url, scenario, tmp_path / "b")
    thread.start()
    results = [task("redis_index_migrate", args)]
    for _attempt in range(5):
        if not results[-1].get("failed"):
            break
        results.append(task("redis_index_migrate", args))
    stop.set()
    thread.join()
    assert not results[-1].get("failed"), results[-1]["msg"]
    assert without_stale_locks(capture(clean_redis)) == calibration.reference
    undone = task("redis_index_rollback", {"redis_url": proxy.url, "index": "idx", "backup_dir": str(tmp_path / "b")})
    assert undone["result"] == "rolled_back", undone
    assert without_stale_locks(capture(clean_redis)) == calibration.original
    record_property(
        "fault",
        {
            "kind": "connection_cut",
            "case": "random-moments",
            "count": len(proxy.cuts),
            "outcome": f"{len(results)} run(s)",
        },
    )


def test_the_proxy_cuts_where_it_is_told(redis_server):
    """The proxy itself: a command not forwarded never runs; a forwarded one runs and its reply is lost."""
    cutting = CuttingProxy(redis_server.port)
    try:
        direct = redis.Redis.from_url(redis_server.url)
        direct.delete("proxy:a", "proxy:b")
        through = redis.Redis.from_url(cutting.url, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0))
        cutting.cut(command="SET", nth=2)
        pipe = through.pipeline(transaction=False)
        pipe.set("proxy:a", 1)
        pipe.set("proxy:b", 2)
        with pytest.raises(redis.ConnectionError):
            pipe.execute()
        assert direct.get("proxy:a") == b"1" and direct.get("proxy:b") is None
        cutting.cut(command="SET", reply=True)
        with pytest.raises(redis.ConnectionError):
            through.set("proxy:b", 3)
        assert direct.get("proxy:b") == b"3"
        assert [c["command"] for c in cutting.cuts] == ["SET", "SET"]
        direct.delete("proxy:a", "proxy:b")
    finally:
        cutting.close()
