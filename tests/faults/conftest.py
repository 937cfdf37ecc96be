"""The fault suites: kill anywhere, Redis faults, concurrent application writes.

They use tests/conftest.py's private server (`redis_server`, `redis_url`, `clean_redis`). This file adds
the calibration cache and the tally of what was injected: each test records what it did with
`record_property` (kill_point, fault, bad_input) and the tally, printed at the end of the session and
written to .build/faults/counts.json, counts the ones that passed. Bad-input tests elsewhere
(tests/integration/test_bad_input.py, and the refusals of test_migrate_safety.py and
test_rollback_safety.py that assert the same) are counted by marker or by name when they run in the
same session (`make test-faults`).
"""

from __future__ import annotations

import collections
import datetime
import json
import os

import pytest
from fault_scenarios import SEED

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COUNTS = os.path.join(ROOT, ".build", "faults", "counts.json")
# Refusals of bad input asserted elsewhere the same way (one-line error, Redis and backup unchanged).
BAD_INPUT_ELSEWHERE = (
    "test_migrate_safety.py::test_missing_permissions_are_refused_before_anything",
    "test_migrate_safety.py::test_sibling_index_created_after_planning_is_refused_before_anything",
    "test_migrate_safety.py::test_resealed_plan_with_a_blocked_change_is_refused",
    "test_migrate_safety.py::test_resealed_plan_with_edited_rewrites_is_refused",
    "test_migrate_safety.py::test_report_out_in_a_missing_directory_is_refused_first",
    "test_migrate_safety.py::test_index_next_to_a_plan_of_another_index_is_refused",
    "test_migrate_safety.py::test_plan_from_another_server_is_refused",
    "test_migrate_safety.py::test_rollback_without_the_permissions_it_needs_is_refused_before_anything",
    "test_migrate_safety.py::test_a_target_the_server_refuses_is_refused_before_anything",
    "test_migrate_safety.py::test_on_the_fly_task_with_other_changes_waits_for_the_unfinished_one",
    "test_rollback_safety.py::test_forged_backup_is_refused_with_nothing_written",
    "test_redis_index_migrate.py::test_tampered_backup_is_refused_before_any_write",
    "test_redis_index_migrate.py::test_malformed_vector_stops_before_the_drop",
    "test_redis_index_migrate.py::test_unusable_backup_dir_fails_before_anything",
    "test_redis_index_migrate.py::test_prefix_collision_is_refused_before_the_drop",
)


class Tally:
    """What the passed tests injected."""

    def __init__(self):
        self.kills = []
        self.faults = []
        self.bad_inputs = []
        self.failed = 0

    def pytest_runtest_logreport(self, report):
        if report.when != "call":
            if report.failed:
                self.failed += 1
            return
        if not report.passed:
            self.failed += report.failed
            return
        recorded = False
        for name, value in report.user_properties:
            if name == "kill_point":
                self.kills.append(value)
                recorded = True
            elif name == "fault":
                self.faults.append(value)
                recorded = True
            elif name == "bad_input":
                self.bad_inputs.append(value)
                recorded = True
        if not recorded and (
            "bad_input" in report.keywords or any(pattern in report.nodeid for pattern in BAD_INPUT_ELSEWHERE)
        ):
            self.bad_inputs.append({"test": report.nodeid.split("::", 1)[-1]})

    def summary(self) -> dict:
        # A random moment that came after the run had finished killed nothing: listed, not counted.
        late = [k for k in self.kills if k["step"] == "completed_before_kill"]
        kills = [k for k in self.kills if k["step"] != "completed_before_kill"]
        by_step = collections.Counter(k["step"] for k in kills)
        by_kind = collections.Counter(k["kind"] for k in kills)
        by_scenario = collections.Counter(f"{k['scenario']} {k.get('action', 'migrate')}" for k in kills)
        faults = collections.Counter(f["kind"] for f in self.faults)
        writes = sum(f.get("writes", 0) for f in self.faults)
        return {
            "date": datetime.date.today().isoformat(),
            "seed": SEED,
            "kill_points_survived": len(kills),
            "random_kills_after_the_end": len(late),
            "kill_points_by_step": dict(sorted(by_step.items())),
            "kill_points_by_kind": dict(sorted(by_kind.items())),
            "kill_points_by_scenario": dict(sorted(by_scenario.items())),
            "faults_injected": sum(f.get("count", 1) for f in self.faults),
            "fault_cases": len(self.faults),
            "faults_by_kind": dict(sorted(faults.items())),
            "application_writes": writes,
            "bad_inputs_tried": len(self.bad_inputs),
            "tests_failed": self.failed,
        }

    def pytest_terminal_summary(self, terminalreporter):
        if not (self.kills or self.faults or self.bad_inputs):
            return
        data = self.summary()
        os.makedirs(os.path.dirname(COUNTS), exist_ok=True)
        with open(COUNTS, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        write = terminalreporter.write_line
        terminalreporter.section("fault injection counts")
        write(f"seed {data['seed']} (INDEXOPS_FAULT_SEED), {data['date']}")
        write(
            f"kill points survived: {data['kill_points_survived']} (random moments after the run's end, not "
            f"counted: {data['random_kills_after_the_end']})"
        )
        write(f"  by step: {data['kill_points_by_step']}")
        write(f"  by kind: {data['kill_points_by_kind']}")
        write(f"  by scenario: {data['kill_points_by_scenario']}")
        write(
            f"faults injected: {data['faults_injected']} in {data['fault_cases']} cases {data['faults_by_kind']}, "
            f"with {data['application_writes']} concurrent application writes"
        )
        write(f"bad inputs tried: {data['bad_inputs_tried']}")
        write(f"written to {os.path.relpath(COUNTS, ROOT)}")


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("indexops_fault_tally"):
        config.pluginmanager.register(Tally(), "indexops_fault_tally")


@pytest.fixture(scope="session")
def calibrations(redis_server, tmp_path_factory):
    """calibrated(name): the scenario run once without faults, cached for the session."""
    import redis  # pylint: disable=import-outside-toplevel
    from fault_scenarios import SCENARIOS, calibrate  # pylint: disable=import-outside-toplevel

    cache = {}

    def calibrated(name):
        if name not in cache:
            client = redis.Redis.from_url(redis_server.url, protocol=2)
            try:
                cache[name] = calibrate(
                    client, redis_server.url, SCENARIOS[name], str(tmp_path_factory.mktemp(f"calibrate-{name}"))
                )
            finally:
                client.close()
        return cache[name]

    return calibrated
