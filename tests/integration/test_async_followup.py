"""Following a migration started with `async`: docs/operations.md's tasks, run as written.

The follow-up reads `migrations | last`, so `migrations` must be oldest first by creation time. A
backup directory is named `<index>-<plan id>` and plan ids are hashes: sorted by name, an earlier
migration can come last, and the follow-up then waits for a migration that ended long ago.
"""

from __future__ import annotations

import datetime
import json
import os
import re

import pytest
import yaml
from playbook_runner import ROOT, run_playbook
from test_redis_index_migrate import DIMS, QUANT16, load, make_plan, run

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import (
    BackupHeader,
    BackupStore,
    describe_backups,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback

DOCS = os.path.join(ROOT, "docs", "operations.md")


def docs_tasks() -> list:
    """The YAML block of the "AWX / Tower and long migrations" section."""
    with open(DOCS, encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("## AWX / Tower and long migrations", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section should hold exactly one playbook snippet"
    return yaml.safe_load(blocks[0])


def plan_with_id(client, changes, wanted) -> object:
    """A plan of `changes` whose id satisfies `wanted`: ids hash the content, which includes the
    plan's creation time (to the second), so each attempt is dated a second earlier."""
    now = datetime.datetime.now(datetime.timezone.utc)
    for attempt in range(64):
        created_at = (now - datetime.timedelta(seconds=attempt)).isoformat(timespec="seconds")
        plan = make_plan(client, changes, index="products", created_at=created_at, mode="drop_recreate")
        if wanted(plan.plan_id):
            return plan
    raise AssertionError("no plan id satisfied the condition in 64 attempts")


def test_docs_snippet_is_the_async_pattern():
    tasks = docs_tasks()
    start, follow = tasks[0], tasks[1]
    assert start["poll"] == 0 and start["async"] > 0 and "indexops.redis_search.redis_index_migrate" in start
    assert "indexops.redis_search.redis_index_info" in follow
    assert "progress.migrations | default([]) | last" in follow["vars"]["newest"]
    assert (
        follow["register"] == "progress"
        and "newest.status in ['completed', 'failed', 'interrupted']" in follow["until"]
    )


@pytest.mark.playbook
def test_docs_followup_ends_with_the_new_migration_completed(clean_redis, redis_url, tmp_path):
    load(clean_redis, index="products", prefix="product:")
    backup_dir = tmp_path / "backups"
    # An earlier migration of the same index, rolled back: its directory name sorts high.
    earlier = plan_with_id(clean_redis, QUANT16, lambda plan_id: plan_id >= "8")
    assert run(clean_redis, redis_url, earlier, backup_dir).report.result == "succeeded"
    rollback(clean_redis, choose_backup(str(backup_dir), "products"))
    # The new one sorts before it by name, after it by time.
    new = plan_with_id(clean_redis, QUANT16, lambda plan_id: plan_id < "8")
    write_plan(new, str(tmp_path / "plan.yaml"))
    assert f"products-{new.plan_id}" < os.listdir(backup_dir)[0] == f"products-{earlier.plan_id}"

    tasks = docs_tasks()
    follow = next(task for task in tasks if "until" in task)
    follow.update(retries=40, delay=1)  # the docs wait up to 2 hours; a failure here should not
    tasks.append(
        {
            "name": "Keep what the follow-up saw",
            "ansible.builtin.copy": {
                "content": "{{ progress | to_json }}",
                "dest": str(tmp_path / "progress.json"),
                "mode": "0600",
            },
        }
    )
    play = [
        {
            "name": "Async migration, followed as docs/operations.md shows",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": tasks,
            "vars": {"plan_file": str(tmp_path / "plan.yaml"), "backup_dir": str(backup_dir), "plan_id": new.plan_id},
        }
    ]
    done = run_playbook(
        yaml.safe_dump(play, sort_keys=False),
        timeout=240,
        env={
            "REDIS_URL": redis_url,
            "ANSIBLE_ASYNC_DIR": str(tmp_path / "async"),
            # Hold the quantize phase so that the follow-up sees the migration running.
            "INDEXOPS_FAILPOINT": "quantize:1:pause=3",
        },
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]

    with open(tmp_path / "progress.json", encoding="utf-8") as handle:
        progress = json.load(handle)
    assert progress["attempts"] >= 2, "the follow-up never saw the migration running"
    migrations = progress["migrations"]
    assert [m["plan_id"] for m in migrations] == [earlier.plan_id, new.plan_id]
    assert [m["status"] for m in migrations] == ["rolled_back", "completed"]
    assert migrations[-1]["phases_done"][-1] == "validate"
    assert len(clean_redis.hget("product:0", "vec")) == DIMS * 2  # float16 now


def _backup(root, index, plan_id, created_at, attempt=1):
    header = BackupHeader(
        plan_checksum="sha256:" + plan_id * 5,
        plan_id=plan_id,
        attempt=attempt,
        source_index=index,
        target_index=index,
        storage="hash",
        batch_size=10,
        created_at=created_at.isoformat(timespec="microseconds"),
    )
    return BackupStore.create(str(root), header, "plan: {}\n").directory


def test_migrations_are_oldest_first_by_creation_time_then_attempt(tmp_path):
    base = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    second = datetime.timedelta(seconds=1)
    paths = [
        _backup(tmp_path, "products", "ffffffffffff", base),
        _backup(tmp_path, "products", "aaaaaaaaaaaa", base + second),
        _backup(tmp_path, "products", "aaaaaaaaaaaa", base + second, attempt=2),  # same instant: by attempt
        _backup(tmp_path, "products", "000000000000", base + 2 * second),
        _backup(tmp_path, "other", "111111111111", base + 3 * second),
    ]
    described = describe_backups(str(tmp_path), "products")
    assert [m["path"] for m in described] == paths[:4]
    assert sorted(paths[:4]) != paths[:4]  # the order is not the names' order
    # A header that cannot be read sorts by its directory's last change: a fresh one comes last.
    with open(os.path.join(paths[0], "header.json"), "w", encoding="utf-8") as handle:
        handle.write('{"format": ')
    described = describe_backups(str(tmp_path), "products")
    assert described[-1]["path"] == paths[0] and described[-1]["status"] == "unreadable"
