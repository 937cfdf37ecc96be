"""Online document rewrites (expand, build, swap, contract): quantization in place, a field rename (with or
without a datatype change), run online by default, ending byte for byte where drop_recreate ends, queried
all along by a reader, killed at every step and resumed, and rolled back to every original byte.
"""

from __future__ import annotations

import signal

import pytest
from test_online_migration import definition, names, read_during
from test_redis_index_migrate import QUANT16, load, make_plan, run, run_killed

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import BackupStore
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import index_exists
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback

RENAME = {"rename_fields": [{"old_name": "vec", "new_name": "embedding"}]}
RENAME16 = {
    "rename_fields": [{"old_name": "vec", "new_name": "embedding"}],
    "update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}],
}
RENAME_TEXT = {"rename_fields": [{"old_name": "title", "new_name": "headline"}]}
CHANGES = {"quantize": QUANT16, "rename": RENAME, "rename+quantize": RENAME16, "rename-text": RENAME_TEXT}


def dumps(client, prefix: str) -> dict:
    """DUMP of every key under `prefix` (its encoding, field order and bytes), by the key without the prefix,
    with its TTL."""
    found = {}
    for key in sorted(client.scan_iter(match=prefix + "*")):
        found[key[len(prefix) :]] = (client.dump(key), client.pttl(key) > 0)
    return found


def twins(client, docs=300):
    """The same documents twice: index a on a:, index b on b:."""
    load(client, index="a", prefix="a:", docs=docs)
    load(client, index="b", prefix="b:", docs=docs)
    client.expire(b"a:3", 3600)
    client.expire(b"b:3", 3600)


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_rewrite_runs_online_by_default_and_ends_as_drop_recreate(clean_redis, redis_url, tmp_path, change):
    twins(clean_redis)
    originals = dumps(clean_redis, "a:")
    source = definition(clean_redis, "a")
    online = make_plan(clean_redis, CHANGES[change], index="a")
    assert online.mode == "online", online.mode_reason
    assert online.durations.online_seconds > 0 and online.durations.drop_recreate_seconds > 0
    in_place = change == "quantize"
    assert bool(online.online.interim_index) == in_place and online.online.layout.builds == (2 if in_place else 1)
    offline = make_plan(clean_redis, CHANGES[change], index="b", mode="drop_recreate")
    assert offline.mode == "drop_recreate"

    report = run(clean_redis, redis_url, online, tmp_path / "a").report
    run(clean_redis, redis_url, offline, tmp_path / "b")
    assert report.result == "succeeded" and report.downtime_seconds == 0.0
    done = [p for p, state in report.phases.items() if state["done"]]
    expected = ["backup", "expand", "create", "wait", "validate", "swap"]
    expected += ["convert", "rebuild", "swap_final"] if in_place else []
    assert sorted(done) == sorted(expected + ["contract"])
    # Every document exactly as drop_recreate left its twin (DUMP: encoding, order, bytes; TTL kept).
    assert dumps(clean_redis, "a:") == dumps(clean_redis, "b:")
    assert definition(clean_redis, "a")["fields"] == definition(clean_redis, "b")["fields"]
    final = "a--v3" if in_place else "a--v2"
    assert names(clean_redis, "a") == {"a": final}
    assert not index_exists(clean_redis, "a--v2") or not in_place
    assert run(clean_redis, redis_url, online, tmp_path / "a").changed is False

    changed, result = rollback(clean_redis, choose_backup(str(tmp_path / "a"), "a"))
    assert changed and result.result == "rolled_back", result
    assert dumps(clean_redis, "a:") == originals  # every original byte back
    assert definition(clean_redis, "a") == source
    assert not index_exists(clean_redis, final) and not index_exists(clean_redis, "a--v2")
