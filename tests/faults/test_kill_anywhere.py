"""Kill anywhere: a migration (hash and JSON, with a field rename that moves data, a prefix change and an
index rename; one worker and two; drop_recreate and online) or a rollback is SIGKILLed - with its
workers - at a named checkpoint, after the k-th Redis command or document record of a step (inside a
pipeline: the server ran part of the batch), or at a seeded random time. Then the same call runs again
to the end, and Redis must hold exactly what an uninterrupted run left (every key's bytes and name,
TTLs, every index's definition and counts, the aliases); then a rollback must bring back every original
byte and key name.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field

import pytest
from fault_scenarios import (
    SCENARIOS,
    SEED,
    capture,
    driver_args,
    last_step,
    load,
    read_trace,
    resolve,
    roll_back,
    run_in_process,
    source_index,
    start_driver,
    without_stale_locks,
)

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import read_header

pytestmark = pytest.mark.kill_point


@dataclass
class Kill:
    scenario: str
    spec: dict  # the driver's kill (fractions and "last" resolved against the calibration), or {"random": i}
    fast: bool = False  # also in `make test`
    id: str = field(default="")

    def __post_init__(self):
        if not self.id:
            if "checkpoint" in self.spec:
                what = self.spec["checkpoint"]
            elif "random" in self.spec:
                what = f"random-{self.spec['random']}@{self.spec['fraction']:.3f}"
            else:
                kind = next(k for k in ("commands", "records", "command", "file_writes") if k in self.spec)
                value = self.spec[kind]
                if isinstance(value, float):
                    value = f"{value:.2f}"
                if kind == "command":
                    value = f"{value}#{self.spec.get('nth', 1)}"
                what = f"{self.spec['step']}:{kind}={value}"
            self.id = f"{self.scenario}-{what}"

    @property
    def kind(self) -> str:
        if "checkpoint" in self.spec:
            return "checkpoint"
        if "random" in self.spec:
            return "random_time"
        if "records" in self.spec:
            return "records"
        if "file_writes" in self.spec:
            return "file_writes"
        return "commands"

    def param(self):
        marks = [pytest.mark.faults_fast] if self.fast else []
        return pytest.param(self, id=self.id, marks=marks)


def checkpoints(scenario, *names, fast=()):
    return [Kill(scenario, {"checkpoint": name}, fast=name in fast) for name in names]


def at(scenario, step, fast=False, **spec):
    return Kill(scenario, {"step": step, **spec}, fast=fast)


_random = random.Random(SEED)


def randoms(scenario, count, fast=0):
    """Seeded random moments: a share of the uninterrupted run's duration (printed in the test id)."""
    return [Kill(scenario, {"random": i, "fraction": _random.uniform(0.02, 0.98)}, fast=i < fast) for i in range(count)]


MIGRATION_KILLS = [
    # hash: rename title -> headline (data moves), prefix doc: -> item:, index idx -> idx_v2, float32 -> float16
    *checkpoints(
        "hash",
        "backup:start",
        "backup:1",
        "backup:3",
        "backup:6",
        "drop:start",
        "drop:0",
        "move_fields:start",
        "move_fields:3",
        "rename_keys:start",
        "rename_keys:6",
        "quantize:start",
        "quantize:2",
        "create:start",
        "create:0",
        "wait:start",
        "validate:start",
        fast=("move_fields:3",),
    ),
    at("hash", "preflight", command="FT.CREATE"),  # the throwaway create check, before it is dropped again
    at("hash", "preflight", commands=0.5),
    # Creating the backup directory: after its mkdir, before plan.yaml; after plan.yaml, before header.json.
    at("hash", "preflight", file_writes=1),
    at("hash", "preflight", file_writes=2, fast=True),
    at("json", "preflight", file_writes=1),
    at("online", "preflight", file_writes=2),
    at("hash", "backup", commands=0.4),
    at("hash", "drop", commands=0.5),
    at("hash", "drop", commands="last", fast=True),  # right after FT.DROPINDEX
    at("hash", "move_fields", commands=0.5),
    at("hash", "move_fields", records=1),
    at("hash", "move_fields", records=0.46),
    at("hash", "rename_keys", records=1),
    at("hash", "rename_keys", records=0.84),
    at("hash", "rename_keys", commands=0.9),
    at("hash", "quantize", records=1 / 6),  # the whole first block written, its ledger line not yet
    at("hash", "quantize", records=0.66, fast=True),
    at("hash", "quantize", commands=0.3),
    at("hash", "create", command="FT.CREATE"),
    at("hash", "create", command="FT.ALIASUPDATE"),
    at("hash", "wait", command="FT.INFO"),
    at("hash", "validate", commands=0.5),
    at("hash", "validate", commands="last"),
    at("hash", "release", commands=1),  # done and recorded, one of its locks given back, the other not
    *randoms("hash", 6, fast=1),
    # the same with two worker processes: the kill takes the parent and both workers
    *checkpoints("hash_workers2", "move_fields:2", "quantize:start", "quantize:3", "rename_keys:1"),
    at("hash_workers2", "move_fields", records=0.4),
    at("hash_workers2", "rename_keys", records=0.2),
    at("hash_workers2", "quantize", records=0.53, fast=True),
    at("hash_workers2", "quantize", records="last"),
    at("hash_workers2", "quantize", commands=0.5),
    *randoms("hash_workers2", 3),
    # JSON: title -> headline and vec -> embedding (both move), prefix j: -> k:, index jdx -> jdx_v2
    *checkpoints(
        "json",
        "backup:2",
        "drop:0",
        "move_fields:start",
        "move_fields:4",
        "rename_keys:3",
        "create:0",
        "wait:start",
        "validate:start",
    ),
    at("json", "preflight", command="FT.CREATE"),
    at("json", "backup", commands=0.5),
    at("json", "drop", commands="last"),
    at("json", "move_fields", records=1),
    at("json", "move_fields", records=0.58, fast=True),
    at("json", "rename_keys", records=0.3),
    at("json", "validate", commands=0.5),
    *randoms("json", 3),
    # online: the new index built beside the live one, then swapped in with one MULTI/EXEC
    *checkpoints("online", "create:start", "create:0", "wait:start", "validate:start", "swap:start", "swap:0"),
    at("online", "preflight", command="FT.CREATE"),
    at("online", "validate", commands=0.5),
    # The swap script (the second EVAL of the step; the first reads the source's fingerprint) queued in the
    # MULTI: dies before the EXEC is sent.
    at("online", "swap", command="EVAL", nth=2, fast=True),
    at("online", "swap", commands="last"),  # after the EXEC, before the phase is recorded as done
    *randoms("online", 3),
]

ROLLBACK_KILLS = [
    *checkpoints("hash", "rollback:50", "rollback:200", "rollback_index:0"),
    at("hash", "rollback_prepare", commands="last"),
    at("hash", "rollback_restore", records=1),
    at("hash", "rollback_restore", records=0.4, fast=True),
    at("hash", "rollback_restore", records="last"),  # every document restored, no index yet
    at("hash", "rollback_restore", commands=0.5),
    at("hash", "rollback_index", command="FT.DROPINDEX"),
    at("hash", "rollback_index", command="FT.CREATE"),
    at("hash", "rollback_index", command="FT.ALIASUPDATE"),
    at("hash", "rollback_wait", command="FT.INFO"),
    at("hash", "rollback_validate", commands=0.5),
    at("hash", "rollback_validate", commands="last"),
    at("hash", "release", commands=1),
    *randoms("hash", 3),
    at("hash_workers2", "rollback_restore", records=0.26),
    *checkpoints("json", "rollback:150", "rollback_index:0"),
    at("json", "rollback_restore", records=0.74),
    at("json", "rollback_validate", commands=0.5),
    *randoms("json", 2),
    at("online", "rollback_online", commands=0.25),
    at("online", "rollback_online", commands=0.5, fast=True),
    at("online", "rollback_online", commands=0.75),
    at("online", "rollback_online", commands="last"),
    *randoms("online", 2),
]


def run_killed(kill: Kill, args: dict, seconds: float):
    """Start the driver and kill it as `kill` says; return (exit code, trace, output)."""
    if "random" in kill.spec:
        args = {**args, "kill": None}
        proc = start_driver(args)
        deadline = time.monotonic() + 30
        while not read_trace(args["trace"]) and time.monotonic() < deadline:
            time.sleep(0.002)
        delay = kill.spec["fraction"] * seconds
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it had finished
        print(
            f"random kill: seed {SEED}, {delay:.3f} s after the run's first step ({kill.spec['fraction']:.3f} of "
            f"{seconds:.3f} s)"
        )
    else:
        proc = start_driver(args)
    out, err = proc.communicate(timeout=180)
    return proc.returncode, read_trace(args["trace"]), out + err


def check_killed(kill: Kill, code: int, trace: list, output: str) -> str:
    """The step it died in; a deterministic kill must have happened where it was aimed."""
    if kill.kind == "random_time":
        assert code in (-signal.SIGKILL, 0), output
        return last_step(trace) if code == -signal.SIGKILL else "completed_before_kill"
    assert code == -signal.SIGKILL, f"not killed (exit {code}): {output[-2000:]}"
    killed = [e for e in trace if e["event"] == "kill"]
    assert killed, trace
    if "step" in kill.spec:
        assert killed[0]["step"] == kill.spec["step"], killed
    return killed[0]["step"]


def same_after_online_rollback(now: dict, original: dict) -> None:
    """An online rollback rebuilds the source's definition under a new name (idx--v3) that `idx` and
    `live` lead to: the documents are the originals, and the names lead to the original definition."""
    assert now["keys"] == original["keys"]
    assert len(now["indexes"]) == 1
    ((name, info),) = now["indexes"].items()
    ((_old, before),) = original["indexes"].items()
    assert {k: v for k, v in info.items() if k != "index_name"} == {
        k: v for k, v in before.items() if k != "index_name"
    }
    assert now["aliases"] == {"live": name}


def check_rolled_back(client, scenario, calibration) -> None:
    now = without_stale_locks(capture(client))
    if scenario.mode == "online":
        same_after_online_rollback(now, calibration.original)
    else:
        assert now == calibration.original


@pytest.mark.parametrize("kill", [k.param() for k in MIGRATION_KILLS])
def test_migration_killed_anywhere_resumes_to_the_uninterrupted_result(
    kill, clean_redis, redis_url, tmp_path, calibrations, record_property
):
    scenario = SCENARIOS[kill.scenario]
    calibration = calibrations(kill.scenario)
    clean_redis.flushall()
    load(clean_redis, scenario)
    assert capture(clean_redis) == calibration.original
    backup = tmp_path / "b"
    args = driver_args(
        "migrate",
        redis_url,
        scenario,
        backup,
        tmp_path / "trace",
        calibration.plan_path,
        resolve(kill.spec, calibration.migrate_steps),
    )
    code, trace, output = run_killed(kill, args, calibration.migrate_seconds)
    died_in = check_killed(kill, code, trace, output)

    outcome = run_in_process(clean_redis, redis_url, calibration.plan, backup, scenario)  # the same call again
    if died_in in ("completed_before_kill", "release"):
        assert outcome.changed is False and outcome.report.result == "already_completed"
    else:
        assert outcome.changed and outcome.report.result == "succeeded", outcome.report
        assert outcome.report.validation["passed"] and outcome.report.conflicts == 0
    assert without_stale_locks(capture(clean_redis)) == calibration.reference
    assert read_header(choose_backup(str(backup), source_index(scenario)).directory).status == "completed"

    changed, result = roll_back(clean_redis, backup, scenario)
    assert changed and result.result == "rolled_back" and result.conflicts == 0
    check_rolled_back(clean_redis, scenario, calibration)
    record_property(
        "kill_point",
        {"scenario": kill.scenario, "kind": kill.kind, "step": died_in, "id": kill.id, "action": "migrate"},
    )


@pytest.mark.parametrize("kill", [k.param() for k in ROLLBACK_KILLS])
def test_rollback_killed_anywhere_resumes_to_every_original_byte(
    kill, clean_redis, redis_url, tmp_path, calibrations, record_property
):
    scenario = SCENARIOS[kill.scenario]
    calibration = calibrations(kill.scenario)
    clean_redis.flushall()
    load(clean_redis, scenario)
    backup = tmp_path / "b"
    run_in_process(clean_redis, redis_url, calibration.plan, backup, scenario)
    assert capture(clean_redis) == calibration.reference
    args = driver_args(
        "rollback", redis_url, scenario, backup, tmp_path / "trace", kill=resolve(kill.spec, calibration.rollback_steps)
    )
    code, trace, output = run_killed(kill, args, calibration.rollback_seconds)
    died_in = check_killed(kill, code, trace, output)

    changed, result = roll_back(clean_redis, backup, scenario)  # the same call again
    if died_in in ("completed_before_kill", "release"):
        assert not changed and result.result == "already_rolled_back"
    else:
        assert changed and result.result == "rolled_back", result
        assert result.conflicts == 0 and result.skipped_deleted == 0
    check_rolled_back(clean_redis, scenario, calibration)
    assert read_header(result.backup_path).status == "rolled_back"
    record_property(
        "kill_point",
        {"scenario": kill.scenario, "kind": kill.kind, "step": died_in, "id": kill.id, "action": "rollback"},
    )


def test_the_kill_points_cover_every_step():
    """Guards the tables: at least 50 kill points, and every step of every kind of run has some."""
    assert len(MIGRATION_KILLS) + len(ROLLBACK_KILLS) >= 50
    aimed = {k.spec.get("step") or k.spec.get("checkpoint", "").split(":")[0] for k in MIGRATION_KILLS + ROLLBACK_KILLS}
    for step in (
        "preflight",
        "backup",
        "drop",
        "move_fields",
        "rename_keys",
        "quantize",
        "create",
        "wait",
        "validate",
        "swap",
        "rollback_prepare",
        "rollback_restore",
        "rollback",
        "rollback_index",
        "rollback_wait",
        "rollback_validate",
        "rollback_online",
        "release",
    ):
        assert step in aimed, step
