"""The jobs of docs/awx.md around a long migration: its progress in the job output, the follow-up job launched
together with it, and a cancelled job - its migration stops at a safe point (lock released, resumable), the
follow-up job says so, and the migrate job run again completes."""

from __future__ import annotations

import re
import time

import pytest
import redis
from awx_job import hosts_of, survey_answers
from fleet import failing_interpreter, index_datatype, load_products
from quiesce_setup import acl_lines

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.lock import lock_key

pytestmark = pytest.mark.playbook

DOCS = 120_000
FLOAT16_PATCH = (
    "version: 1\nchanges:\n  update_fields:\n    - name: embedding\n      attrs:\n        datatype: float16\n"
)
MIGRATE_TASK = "Migrate (re-running resumes where it stopped)"
# A progress line, as the job output shows it at default verbosity.
PROGRESS = re.compile(
    r"^redis1 products: (?P<phase>\w+)(?: (?P<done>\d+)/(?P<total>\d+) documents \((?P<percent>\d+)%\))?,"
    r" (?P<elapsed>[\dhmins ]+) elapsed(?:, about (?P<left>[\dhmins ]+) left)?$"
)
FOLLOW_VARS = {"indexops_index": "products", "indexops_follow_delay": 1, "indexops_follow_start_timeout": 120}


def migrate_answers() -> dict:
    return survey_answers(
        indexops_index="products",
        indexops_patch=FLOAT16_PATCH,
        indexops_accept_data_loss="yes",
        indexops_verify_seconds=1,
    )


def admin(fleet, host: str = "redis1"):
    return redis.Redis.from_url(fleet.servers[fleet.hosts.index(host)].url, protocol=2)


def reload(fleet, docs: int = DOCS) -> None:
    """redis1's products index with `docs` documents (8-d vectors: a long migration that loads in seconds)."""
    client = admin(fleet)
    try:
        client.execute_command("FT.DROPINDEX", "products", "DD")
        load_products(client, docs=docs)
    finally:
        client.close()


def count(client) -> int:
    return sum(1 for _key in client.scan_iter(match="product:*", count=10_000))


def progress_lines(job) -> list:
    """(event time, match) of every progress line of the job's output."""
    found = []
    for event in job.events:
        for line in (event.get("stdout") or "").splitlines():
            match = PROGRESS.match(line.strip())
            if match:
                found.append((event["created"], match))
    return found


@pytest.fixture
def progress_every_second(monkeypatch):
    """Lines every second instead of every 5 (the jobs inherit the environment): more lines from a short run."""
    monkeypatch.setenv("INDEXOPS_PROGRESS_SECONDS", "1")


def test_a_long_migration_shows_its_progress_and_the_follow_up_job_follows_it(awx, ready, progress_every_second):
    reload(ready)
    # The follow-up job launched together with the migration: nothing to follow at first.
    follow_thread, follow_runner, follow_dir = awx.start("follow.yml", FOLLOW_VARS, limit="redis1", timeout=600)
    job = awx.job("migrate.yml", migrate_answers(), limit="redis1", timeout=600)
    follow_thread.join(timeout=600)
    follow = awx.result(follow_runner, follow_dir)

    assert (job.status, job.rc) == ("successful", 0), job.explain()
    assert job.results(MIGRATE_TASK)["redis1"]["event"] == "runner_on_ok"
    lines = progress_lines(job)
    counted = [match for _at, match in lines if match["done"]]
    assert len(counted) >= 3, job.explain()
    assert all(int(match["total"]) == DOCS and 0 <= int(match["percent"]) <= 100 for match in counted)
    assert any(match["left"] for match in counted)  # an estimate once a phase has a rate
    assert {match["phase"] for _at, match in lines} & {"backup", "expand"}  # online, the default
    stamps = [time.mktime(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) for at, _match in lines]
    assert max(later - earlier for earlier, later in zip(stamps, stamps[1:])) <= 10

    assert (follow.status, follow.rc) == ("successful", 0), follow.explain()
    ended = follow.results("Know how it ended")["redis1"]["res"]["ansible_facts"]["indexops_follow_result"]
    assert ended["status"] == "completed" and ended["documents"] == DOCS
    client = admin(ready)
    try:
        assert index_datatype(client) == "FLOAT16"
    finally:
        client.close()

    rollback = awx.job("rollback.yml", migrate_answers(), limit="redis1", timeout=600)
    assert (rollback.status, rollback.rc) == ("successful", 0), rollback.explain()
    restored = [match for _at, match in progress_lines(rollback) if match["phase"] == "restore"]
    assert restored and all(int(match["total"]) == DOCS for match in restored), rollback.explain()


def test_a_cancelled_migrate_job_stops_its_migration_and_the_job_run_again_completes(
    awx, ready, tmp_path, progress_every_second
):
    """The migration pauses 20 s before its wait phase (a long phase, whatever the machine's speed); the job is
    cancelled once its first progress line is out. Without the stop, the migration would go on and complete."""
    client = admin(ready)
    before = {"acl": acl_lines(client), "count": count(client)}
    redis1 = awx.inventory["redis_search"]["hosts"]["redis1"]
    redis1["ansible_python_interpreter"] = failing_interpreter(str(tmp_path), "wait:start:pause=20")
    migrating: list = []

    def on_event(event) -> bool:
        if any(PROGRESS.match(line.strip()) for line in (event.get("stdout") or "").splitlines()):
            migrating.append(time.monotonic())
        return True

    follow_thread, follow_runner, follow_dir = awx.start("follow.yml", FOLLOW_VARS, limit="redis1", timeout=600)
    # AWX's cancel: ansible-runner SIGKILLs ansible-playbook's process group once the cancel callback says so.
    job = awx.job(
        "migrate.yml",
        migrate_answers(),
        limit="redis1",
        timeout=600,
        event_handler=on_event,
        cancel_callback=lambda: bool(migrating),
    )
    assert job.status == "canceled", job.explain()
    del redis1["ansible_python_interpreter"]
    follow_thread.join(timeout=600)
    follow = awx.result(follow_runner, follow_dir)

    # The migration noticed within seconds, stopped at a safe point and released its lock.
    deadline = time.monotonic() + 60
    while client.exists(lock_key("products")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not client.exists(lock_key("products"))
    assert (follow.status, follow.rc) == ("failed", 2), follow.explain()
    ended = follow.results("Know how it ended")["redis1"]["res"]["ansible_facts"]["indexops_follow_result"]
    assert ended["status"] == "failed" and "cancelled" in ended["error"]["message"], ended
    assert ended["phase"] == "wait"  # the first safe point after the cancel

    again = awx.job("migrate.yml", migrate_answers(), limit="redis1", timeout=600)
    assert (again.status, again.rc) == ("successful", 0), again.explain()
    assert hosts_of(again.results(MIGRATE_TASK), "runner_on_ok") == ["redis1"]
    assert again.results(MIGRATE_TASK)["redis1"]["res"]["report"]["backup_path"] == ended["path"]  # resumed
    assert index_datatype(client) == "FLOAT16" and count(client) == before["count"] == 120
    assert acl_lines(client) == before["acl"]  # the re-run's window gave the writes back
    client.close()


def test_the_follow_up_job_after_a_killed_migration_says_interrupted_and_the_migrate_job_resumes_it(
    awx, ready, tmp_path
):
    """A migration killed outright (SIGKILL: no safe point) leaves its header saying `running` for good and its lock
    to a dead process: the follow-up job launched afterwards ends at once on `interrupted` with the way out, instead
    of polling for hours; the migrate job launched again resumes it."""
    answers = survey_answers(
        indexops_index="products",
        indexops_patch=FLOAT16_PATCH,
        indexops_accept_data_loss="yes",
        indexops_verify_seconds=1,
        indexops_rollback_on_failure="no",
    )
    redis1 = awx.inventory["redis_search"]["hosts"]["redis1"]
    redis1["ansible_python_interpreter"] = failing_interpreter(str(tmp_path), "expand:start")  # online, the default
    killed = awx.job("migrate.yml", answers, limit="redis1")
    assert killed.results(MIGRATE_TASK)["redis1"]["event"] == "runner_on_failed", killed.explain()
    del redis1["ansible_python_interpreter"]

    follow = awx.job("follow.yml", {**FOLLOW_VARS, "indexops_follow_start_grace": 2}, limit="redis1", timeout=120)
    assert (follow.status, follow.rc) == ("failed", 2), follow.explain()
    ended = follow.results("Know how it ended")["redis1"]["res"]["ansible_facts"]["indexops_follow_result"]
    assert (ended["status"], ended["recorded_status"], ended["phase"]) == ("interrupted", "running", "expand")
    assert ended["lock"]["owner_gone"] is True
    failed = follow.results("Fail when it did not complete")["redis1"]["res"]["msg"]
    assert "interrupted in phase expand" in failed and "redis_index_migrate task again" in failed, failed

    again = awx.job("migrate.yml", answers, limit="redis1")
    assert (again.status, again.rc) == ("successful", 0), again.explain()
    assert again.results(MIGRATE_TASK)["redis1"]["res"]["report"]["backup_path"] == ended["path"]  # resumed
    client = admin(ready)
    try:
        assert index_datatype(client) == "FLOAT16" and count(client) == 120
    finally:
        client.close()
