"""The catch-up of an online rewrite (apply/phases/catch_up.py): documents the application changes in the old
layout, or adds, between their expand and the swap are recorded in the backup again and expanded again from
their current bytes, so that the migration ends where drop_recreate ends from the application's last write,
its new index finds them, and a rollback returns the application's last bytes - also when killed inside the
catch-up and run again.

Each test runs twice over the same documents: index a online (killed after its expand, the application's writes,
then resumed), index b with drop_recreate after the same writes - the expected end state, byte for byte. A prefix
change (PREFIX_CASES) moves a: to na: and b: to nb:, so that the copies compare with drop_recreate's renamed keys.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import numpy
import pytest
from matrices import representative
from module_runner import run_module
from test_online_migration import definition
from test_online_rewrite import QUANT16, RENAME, RENAME16, dumps, json_documents, twins
from test_redis_index_migrate import DIMS, load, make_plan, run, run_killed

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import BackupStore
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.vectors.codec import convert_batch
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_info

CHANGED, ADDED, DELETED = (5, 6, 7), (300, 301), 9
# change -> (patch, storage, the new index's vector field, its datatype)
CASES = {
    "hash-quantize": (QUANT16, "hash", "vec", "float16"),
    "hash-rename": (RENAME, "hash", "embedding", "float32"),
    "hash-rename+quantize": (RENAME16, "hash", "embedding", "float16"),
    "json-rename+quantize": (RENAME16, "json", "embedding", "float16"),
    "json-quantize": (QUANT16, "json", "vec", "float16"),
}
# A prefix change (copies under the new prefix, each twin its own: a: -> na:, b: -> nb:), the same way.
PREFIX_CASES = {
    "hash-prefix": ({}, "hash", "vec", "float32"),
    "hash-prefix+quantize": (QUANT16, "hash", "vec", "float16"),
    "hash-prefix+rename+quantize": (RENAME16, "hash", "embedding", "float16"),
    "json-prefix": ({}, "json", "vec", "float32"),
}
ALL_CASES = {**CASES, **PREFIX_CASES}


def patch_for(change: str, index: str) -> dict:
    patch = ALL_CASES[change][0]
    return {"index": {"prefix": f"n{index}:"}, **patch} if change in PREFIX_CASES else patch


def where(change: str, index: str) -> str:
    """The prefix the index's documents end under."""
    return f"n{index}:" if change in PREFIX_CASES else f"{index}:"


def vector(seed: int) -> numpy.ndarray:
    return numpy.random.default_rng(1000 + seed).standard_normal(DIMS).astype(numpy.float32)


def app_writes(client, storage: str, prefix: str) -> None:
    """What the application writes in the old layout: new vectors for CHANGED, new documents ADDED; and it deletes
    DELETED."""
    client.delete(f"{prefix}{DELETED}")
    for i in (*CHANGED, *ADDED):
        key, values = f"{prefix}{i}", vector(i)
        if storage == "hash":
            if i in ADDED:
                client.hset(key, mapping={"title": f"document {i}", "tag": "t0"})
            client.hset(key, "vec", values.tobytes())
        elif i in ADDED:
            document = {"title": f"document {i}", "tag": "t0", "vec": values.astype(float).tolist()}
            client.execute_command("JSON.SET", key, "$", json.dumps(document))
        else:
            client.execute_command("JSON.SET", key, "$.vec", json.dumps(values.astype(float).tolist()))


def documents(client, storage: str, prefix: str) -> dict:
    return dumps(client, prefix) if storage == "hash" else json_documents(client, prefix)


def comparable(client, storage: str, prefix: str) -> dict:
    """The documents under `prefix` as a rollback is compared: a JSON path moved back comes at the end of the
    object, as drop_recreate's rollback leaves it, so JSON documents are compared parsed."""
    found = documents(client, storage, prefix)
    return {key: json.loads(value) for key, value in found.items()} if storage == "json" else found


def nearest(client, index: str, field: str, query: bytes) -> bytes:
    reply = client.execute_command(
        "FT.SEARCH", index, f"*=>[KNN 1 @{field} $v]", "PARAMS", "2", "v", query, "NOCONTENT", "DIALECT", "2"
    )
    return reply[1]


def retitle(client, storage: str, key: str) -> None:
    """A write outside every location the migration rewrites (only a prefix change's copy holds it)."""
    if storage == "hash":
        client.hset(key, "title", "retitled")
    else:
        client.execute_command("JSON.SET", key, "$.title", json.dumps("retitled"))


def prepare(client, url, tmp_path, change: str, stop_at: str = "create:0"):
    """Both twins loaded; a killed after its expand (its plan in tmp_path/plan.yaml), the application's writes done
    to both. Returns (plan of a, the patch b takes, storage, a's definition)."""
    _patch, storage, _field, _datatype = ALL_CASES[change]
    if storage == "hash":
        twins(client)
    else:
        load(client, storage="json", index="a", prefix="a:")
        load(client, storage="json", index="b", prefix="b:")
    source = definition(client, "a")
    plan = make_plan(client, patch_for(change, "a"), index="a")
    assert plan.mode == "online", plan.mode_reason
    write_plan(plan, str(tmp_path / "plan.yaml"))
    killed = run_killed(url, tmp_path / "plan.yaml", tmp_path / "a", stop_at)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    for prefix in ("a:", "b:"):
        app_writes(client, storage, prefix)
        if change in PREFIX_CASES:
            retitle(client, storage, f"{prefix}{CHANGED[0]}")
    return plan, patch_for(change, "b"), storage, source


def expected_end(client, url, tmp_path, patch, storage: str, prefix: str = "b:") -> dict:
    """b through drop_recreate from the application's last write: what a must hold."""
    run(client, url, make_plan(client, patch, index="b", mode="drop_recreate"), tmp_path / "b")
    return documents(client, storage, prefix)


def check_new_index_finds_them(client, change: str) -> None:
    _patch, _storage, field, datatype = ALL_CASES[change]
    for i in (*CHANGED, *ADDED):
        query = convert_batch([vector(i).tobytes()], "float32", datatype, DIMS)[0]
        assert nearest(client, "a", field, query) == f"{where(change, 'a')}{i}".encode(), (change, i)


@pytest.mark.parametrize("change", sorted(CASES))
def test_documents_written_between_expand_and_swap_are_caught_up(clean_redis, redis_url, tmp_path, capsys, change):
    plan, patch, storage, source = prepare(clean_redis, redis_url, tmp_path, change)
    last_write = comparable(clean_redis, storage, "b:")  # the application's last write, nothing migrated
    outcome = run(clean_redis, redis_url, plan, tmp_path / "a")
    report = outcome.report
    assert report.result == "succeeded" and report.conflicts == 0, report
    rewrites = change != "json-quantize"  # a JSON datatype change rewrites no document: nothing to catch up
    assert report.caught_up == (len(CHANGED) + len(ADDED) if rewrites else 0)
    assert ("catch_up" in report.phases) == rewrites
    if rewrites:
        counters = report.phases["catch_up"]["counters"]
        assert counters["changed"] == len(CHANGED) and counters["added"] == len(ADDED), counters
        assert counters["rounds"] == 1 and counters["still_changed"] == 0 and counters["written"] == 5, counters
        assert report.documents == 302  # each document once, its newest record
        # contract (and convert) write each caught-up document from its newest record only.
        assert report.phases["contract"]["counters"]["superseded"] == len(CHANGED)
        info = run_module(redis_index_info, {"redis_url": redis_url, "backup_dir": str(tmp_path / "a")}, capsys)
        assert info["migrations"][-1]["documents"] == 302
        assert info["migrations"][-1]["progress"]["catch_up"]["caught_up"] == 5
        assert any("caught up" in warning for warning in report.warnings), report.warnings
    check_new_index_finds_them(clean_redis, change)
    if storage == "hash":
        location = "vec" if change == "hash-quantize" else "embedding"
        datatype = CASES[change][3]
        for i in (*CHANGED, *ADDED):  # the codec's conversion of what the application wrote
            want = convert_batch([vector(i).tobytes()], "float32", datatype, DIMS)[0]
            assert clean_redis.hget(f"a:{i}", location) == want
    assert documents(clean_redis, storage, "a:") == expected_end(clean_redis, redis_url, tmp_path, patch, storage)

    changed, result = rollback(clean_redis, choose_backup(str(tmp_path / "a"), "a"))
    assert changed and result.result == "rolled_back", result
    assert result.conflicts == 0 and result.superseded == (len(CHANGED) if rewrites else 0), result
    # The application's last bytes, not the pre-window originals.
    assert comparable(clean_redis, storage, "a:") == last_write
    assert definition(clean_redis, "a") == source


def found_by_title(client, index: str, word: str) -> list:
    return client.execute_command("FT.SEARCH", index, f"@title:{word}", "NOCONTENT")[1:]


@pytest.mark.parametrize("change", sorted(PREFIX_CASES))
def test_a_prefix_change_catches_up_its_copies(clean_redis, redis_url, tmp_path, change):
    """A prefix change copies each document under its new key in expand: the application's writes to the old keys
    before the swap are copied again, a document added under the old prefix gets its copy, and a deleted one loses
    its copy - ending where drop_recreate ends from the same writes, with no key left under the old prefix."""
    plan, patch, storage, source = prepare(clean_redis, redis_url, tmp_path, change)
    assert plan.online.layout.copy_keys
    last_write = comparable(clean_redis, storage, "b:")  # the application's last write, nothing migrated
    report = run(clean_redis, redis_url, plan, tmp_path / "a").report
    assert report.result == "succeeded" and report.conflicts == 0, report
    counters = report.phases["catch_up"]["counters"]
    assert counters["changed"] == len(CHANGED) and counters["added"] == len(ADDED), counters
    assert counters["deleted"] == 1 and counters["written"] == len(CHANGED) + len(ADDED), counters
    assert counters["rounds"] == 1 and counters["still_changed"] == 0 and report.caught_up == 5, counters
    assert report.phases["contract"]["counters"]["superseded"] == len(CHANGED)
    assert documents(clean_redis, storage, "a:") == {}  # every old key deleted by the contract, none a conflict
    assert not clean_redis.exists(f"na:{DELETED}")  # no phantom in the new index
    check_new_index_finds_them(clean_redis, change)
    assert found_by_title(clean_redis, "a", "retitled") == [f"na:{CHANGED[0]}".encode()]
    # The copies byte for byte as drop_recreate's renamed keys from the same writes: DUMP and TTL (a JSON
    # document's DUMP too), and JSON.GET.
    online_end = documents(clean_redis, storage, "na:")
    assert online_end == expected_end(clean_redis, redis_url, tmp_path, patch, storage, "nb:")
    assert dumps(clean_redis, "na:") == dumps(clean_redis, "nb:")

    changed, result = rollback(clean_redis, choose_backup(str(tmp_path / "a"), "a"))
    assert changed and result.result == "rolled_back" and result.conflicts == 0, result
    assert result.superseded == len(CHANGED) and result.skipped_deleted == 1, result
    assert comparable(clean_redis, storage, "a:") == last_write and documents(clean_redis, storage, "na:") == {}
    assert definition(clean_redis, "a") == source


@pytest.mark.parametrize("change", ["hash-prefix+quantize", "json-prefix"])
@pytest.mark.parametrize("stop", representative(["contract:start", "contract:3"], kept=["contract:start"]))
def test_a_caught_up_prefix_change_rolled_back_after_its_swap(clean_redis, redis_url, tmp_path, change, stop):
    """Caught up, swapped, killed before or inside its contract: the rollback returns every old key to the
    application's last write (the caught-up copies renamed back or deleted beside it), the deleted document
    stays deleted, and no copy is left."""
    plan, _patch, storage, source = prepare(clean_redis, redis_url, tmp_path, change)
    last_write = comparable(clean_redis, storage, "b:")
    killed = run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "a", stop, batch_size=3)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    store = BackupStore.for_plan(str(tmp_path / "a"), plan.checksum)
    assert store.phase("swap").done and store.phase("catch_up").counters["deleted"] == 1
    changed, result = rollback(clean_redis, choose_backup(str(tmp_path / "a"), "a"))
    assert changed and result.result == "rolled_back" and result.conflicts == 0, result
    assert result.superseded == len(CHANGED) and result.skipped_deleted == 1 and result.application_writes == 0
    assert comparable(clean_redis, storage, "a:") == last_write and documents(clean_redis, storage, "na:") == {}
    assert definition(clean_redis, "a") == source


@pytest.mark.parametrize(
    "change", ["hash-quantize", "hash-rename+quantize", "json-rename+quantize", "hash-prefix", "hash-prefix+quantize"]
)
@pytest.mark.parametrize(
    "failpoint", representative(["catch_up:start", "catch_up:0", "catch_up:1"], kept=["catch_up:0"])
)
@pytest.mark.parametrize("then", ["resume", "rollback"])
def test_killed_inside_the_catch_up_converges(clean_redis, redis_url, tmp_path, change, failpoint, then):
    plan, patch, storage, source = prepare(clean_redis, redis_url, tmp_path, change)
    last_write = comparable(clean_redis, storage, "b:")
    killed = run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "a", failpoint, batch_size=3)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    store = BackupStore.for_plan(str(tmp_path / "a"), plan.checksum)
    if failpoint != "catch_up:start":  # recorded in the backup before anything was written
        assert store.header.catch_up_from is not None and store.header.data_records == 300 + 5
    if then == "resume":
        outcome = run(clean_redis, redis_url, plan, tmp_path / "a")
        assert outcome.report.result == "succeeded" and outcome.report.conflicts == 0, outcome.report
        assert outcome.report.caught_up == 5 and outcome.report.documents == 302
        check_new_index_finds_them(clean_redis, change)
        end = expected_end(clean_redis, redis_url, tmp_path, patch, storage, where(change, "b"))
        assert documents(clean_redis, storage, where(change, "a")) == end
        if change in PREFIX_CASES:
            assert documents(clean_redis, storage, "a:") == {}
        return
    changed, result = rollback(clean_redis, choose_backup(str(tmp_path / "a"), "a"))
    assert changed and result.result == "rolled_back" and result.conflicts == 0, result
    # Not recorded by the catch-up yet: kept as the application wrote them, the migration's new bytes (a prefix
    # change: the copies) removed. A prefix change alone backs up no location: any old key is "as backed up" and
    # its copy simply goes (already restored, not counted as the application's).
    kept = len(CHANGED) if failpoint == "catch_up:start" and change != "hash-prefix" else 0
    assert result.application_writes == kept, result
    assert comparable(clean_redis, storage, "a:") == last_write  # the deleted document stays deleted
    assert documents(clean_redis, storage, "na:") == {}
    assert definition(clean_redis, "a") == source


def test_a_document_changed_again_after_its_catch_up_is_caught_up_again(clean_redis, redis_url, tmp_path):
    """Two catch-up runs (the first killed after its writes): the second finds the document changed since its
    catch-up record and records it once more; the newest record wins everywhere, and it counts once."""
    plan, patch, storage, _source = prepare(clean_redis, redis_url, tmp_path, "hash-quantize")
    # Failed at the swap (not killed): the index built beside the source is dropped, and the re-run builds it
    # again and catches up again before its swap.
    failed = run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "a", "swap:0:raise")
    assert failed.returncode not in (0, -signal.SIGKILL) and "injected" in failed.stdout + failed.stderr
    again = numpy.full(DIMS, 0.5, dtype=numpy.float32).tobytes()
    for prefix in ("a:", "b:"):
        clean_redis.hset(f"{prefix}5", "vec", again)
    last_write = comparable(clean_redis, storage, "b:")
    outcome = run(clean_redis, redis_url, plan, tmp_path / "a")
    counters = outcome.report.phases["catch_up"]["counters"]
    assert outcome.report.conflicts == 0 and outcome.report.caught_up == 5, counters
    assert counters["changed"] == len(CHANGED) + 1 and counters["rounds"] == 2, counters
    assert outcome.report.documents == 302
    assert clean_redis.hget("a:5", "vec") == convert_batch([again], "float32", "float16", DIMS)[0]
    assert documents(clean_redis, storage, "a:") == expected_end(clean_redis, redis_url, tmp_path, patch, storage)
    _changed, result = rollback(clean_redis, choose_backup(str(tmp_path / "a"), "a"))
    assert result.conflicts == 0 and result.superseded == len(CHANGED) + 1, result
    assert comparable(clean_redis, storage, "a:") == last_write


@pytest.mark.parametrize("change", ["hash-quantize", "hash-prefix+quantize"])
def test_side_by_side_catches_up_before_its_finish_swaps(clean_redis, redis_url, tmp_path, change):
    """The side-by-side stop serves both indexes for as long as the operator likes; the application's writes in
    the old layout meanwhile are caught up by the run with finish, before its swap (a prefix change too: after
    its validation, which the first run did)."""
    twins(clean_redis)
    plan = make_plan(clean_redis, patch_for(change, "a"), index="a", cutover="side_by_side")
    assert run(clean_redis, redis_url, plan, tmp_path / "a").report.result == "side_by_side"
    for prefix in ("a:", "b:"):
        app_writes(clean_redis, "hash", prefix)
    outcome = run(clean_redis, redis_url, plan, tmp_path / "a", finish=True)
    assert outcome.report.result == "succeeded" and outcome.report.conflicts == 0
    assert outcome.report.caught_up == len(CHANGED) + len(ADDED)
    check_new_index_finds_them(clean_redis, change)
    end = expected_end(clean_redis, redis_url, tmp_path, patch_for(change, "b"), "hash", where(change, "b"))
    assert dumps(clean_redis, where(change, "a")) == end
    if change in PREFIX_CASES:
        assert dumps(clean_redis, "a:") == {} and outcome.report.phases["catch_up"]["counters"]["deleted"] == 1


def test_a_document_the_application_keeps_changing_is_reported_after_the_last_round(
    clean_redis, redis_url, tmp_path, monkeypatch
):
    """The rounds are bounded: an application that changes a document again after each round's look (here while
    each round pauses between its record and its writes) outlasts them; the document is named in a warning, left
    as the application wrote it and counted as a conflict by each phase after the swap that would write it."""
    twins(clean_redis)
    plan = make_plan(clean_redis, QUANT16, index="a")
    write_plan(plan, str(tmp_path / "plan.yaml"))
    assert run_killed(redis_url, tmp_path / "plan.yaml", tmp_path / "a", "create:0").returncode == -signal.SIGKILL
    stop, writes = threading.Event(), [0]

    def written(count: int) -> bytes:
        # Always one direction (cosine), far from the sampled queries' answers: validation stays deterministic.
        return numpy.full(DIMS, 1.0 + count, dtype=numpy.float32).tobytes()

    def application() -> None:
        while not stop.wait(0.05):
            writes[0] += 1
            clean_redis.hset("a:5", "vec", written(writes[0]))

    monkeypatch.setenv("INDEXOPS_FAILPOINT", "catch_up:0:pause=0.3")
    writer = threading.Thread(target=application, daemon=True)
    writer.start()
    try:
        outcome = run(clean_redis, redis_url, plan, tmp_path / "a")
    finally:
        stop.set()
        writer.join(timeout=10)
    report = outcome.report
    counters = report.phases["catch_up"]["counters"]
    assert counters["rounds"] == 3 and counters["still_changed"] == 1 and counters["still_changed_keys"] == ["a:5"]
    assert counters["rewritten_meanwhile"] >= 1 and report.caught_up == 1, counters
    assert any("still being changed" in warning and "a:5" in warning for warning in report.warnings)
    # Each phase after the swap that would write it finds it changed: convert, then contract.
    assert report.conflicts == 2
    assert all(report.phases[phase]["counters"]["conflict_keys"] == ["a:5"] for phase in ("convert", "contract"))
    assert clean_redis.hget("a:5", "vec") == written(writes[0])  # the application's last write


@pytest.mark.parametrize("change", ["hash-quantize", "hash-rename", "hash-prefix+quantize"])
def test_a_document_changed_before_its_expand_is_caught_up_and_no_conflict(clean_redis, redis_url, tmp_path, change):
    """Changed before its expand: expand's compare-and-set leaves it (a conflict there), the catch-up records and
    expands it, and the report counts no conflict."""
    plan, patch, storage, _source = prepare(clean_redis, redis_url, tmp_path, change, stop_at="expand:start")
    outcome = run(clean_redis, redis_url, plan, tmp_path / "a")
    report = outcome.report
    assert report.phases["expand"]["counters"]["conflict"] == len(CHANGED)
    assert report.conflicts == 0 and report.caught_up == len(CHANGED) + len(ADDED), report.phases["catch_up"]
    check_new_index_finds_them(clean_redis, change)
    end = expected_end(clean_redis, redis_url, tmp_path, patch, storage, where(change, "b"))
    assert documents(clean_redis, storage, where(change, "a")) == end


def test_an_application_writing_while_the_migration_runs_is_caught_up(clean_redis, redis_url, tmp_path, monkeypatch):
    """Not killed: the application writes from another connection while the migration runs, once every document
    is expanded and while the new index is built (the migration holds a second at validate)."""
    twins(clean_redis)
    plan = make_plan(clean_redis, QUANT16, index="a")
    expanded = threading.Event()

    def application() -> None:
        deadline = time.monotonic() + 60
        while not clean_redis.hexists("a:299", "indexops-next:vec") and time.monotonic() < deadline:
            time.sleep(0.01)
        for prefix in ("a:", "b:"):
            app_writes(clean_redis, "hash", prefix)
        expanded.set()

    monkeypatch.setenv("INDEXOPS_FAILPOINT", "validate:start:pause=1")
    writer = threading.Thread(target=application, daemon=True)
    writer.start()
    outcome = run(clean_redis, redis_url, plan, tmp_path / "a")
    writer.join(timeout=30)
    assert expanded.is_set()
    assert outcome.report.result == "succeeded" and outcome.report.conflicts == 0
    assert outcome.report.caught_up == len(CHANGED) + len(ADDED), outcome.report.phases["catch_up"]
    check_new_index_finds_them(clean_redis, "hash-quantize")
    monkeypatch.delenv("INDEXOPS_FAILPOINT")
    assert dumps(clean_redis, "a:") == expected_end(clean_redis, redis_url, tmp_path, QUANT16, "hash")
