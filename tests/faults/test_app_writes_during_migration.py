"""An application keeps writing while a migration runs - updating vectors and titles, deleting documents,
adding new ones - on hash and JSON indexes, through a migration that renames a field (its data moves),
changes the prefix, renames the index and (hash) converts the vectors.

Afterwards: nothing the application wrote after the backup is overwritten with old data, nothing is
converted twice, deleted documents stay deleted (after the rollback too), and the reports list every
conflict - the migration's each document whose vector the application changed before the migration
reached it, the rollback's each document the application changed at all.
"""

from __future__ import annotations

import json
import signal
import time

import numpy
import pytest
import redis
from app_writes import AppWriter
from fault_scenarios import (
    DIMS,
    DOCS,
    SCENARIOS,
    SEED,
    capture,
    driver_args,
    f16,
    load,
    make_plan,
    read_trace,
    resolve,
    roll_back,
    run_in_process,
    start_driver,
)

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import BackupStore
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import failpoints

pytestmark = pytest.mark.fault


class Application:
    """What the application does to one scenario's documents, and what Redis must hold because of it."""

    def __init__(self, client, url, scenario, plan, seed):
        self.client, self.scenario, self.plan = client, scenario, plan
        self.json = scenario.storage == "json"
        self.rng = numpy.random.default_rng(seed)
        self.writer = AppWriter(redis.Redis.from_url(url, protocol=2), json_storage=self.json)
        self.vec_after = "embedding" if self.json else "vec"
        self.after_added = {}

    def names(self, i):
        return f"{self.scenario.prefix}{i}", f"{self.scenario.new_prefix}{i}"

    def vector_update(self, i):
        old, new = self.names(i)
        values = self.rng.standard_normal(DIMS)
        if self.json:
            return (str(i), "vec", old, new, "$.vec", "$.embedding", [json.dumps(values.tolist()).encode()])
        # As long as what is stored: float32 before the conversion, float16 after it.
        return (
            str(i),
            "vec",
            old,
            new,
            "vec",
            "vec",
            [values.astype(numpy.float32).tobytes(), values.astype(numpy.float16).tobytes()],
        )

    def title_update(self, i):
        old, new = self.names(i)
        title = f"written by the application {self.rng.integers(1 << 30)}"
        if self.json:
            return (str(i), "title", old, new, "$.title", "$.headline", [json.dumps(title).encode()])
        return (str(i), "title", old, new, "title", "headline", [title.encode()])

    def new_document(self, n):
        """A document the application adds during the window, as it always did (old prefix and layout)."""
        key = f"{self.scenario.prefix}new-{n}"
        vector = self.rng.standard_normal(DIMS)
        if self.json:
            value = {"title": f"added {n}", "tag": "t9", "n": n, "vec": vector.astype(numpy.float32).tolist()}
        else:
            value = {"title": f"added {n}", "tag": "t9", "vec": vector.astype(numpy.float32).tobytes()}
        return lambda: self.writer.add(key, value)

    def plan_writes(self, store: BackupStore) -> list:
        """The documents the migration's own validation samples (the first backup block, the plan's sampled
        keys) are left alone: their checks compare them with their originals."""
        _block, first = next(store.iter_blocks())
        spared = {r.key.decode() for r in first} | {str(k) for k in self.plan.source.key_sample}
        candidates = [i for i in range(DOCS) if f"{self.scenario.prefix}{i}" not in spared]
        chosen = [int(i) for i in self.rng.permutation(candidates)]
        self.vec_docs, self.title_docs = chosen[:18], chosen[12:26]  # some get both
        self.deleted_docs = chosen[26:34] + chosen[:2]  # two of them after an update
        ops = (
            [self.vector_update(i) for i in self.vec_docs]
            + [self.title_update(i) for i in self.title_docs]
            + [lambda i=i: self.writer.delete(str(i), *self.names(i)) for i in chosen[26:34]]
            + [self.new_document(n) for n in range(6)]
        )
        order = self.rng.permutation(len(ops))
        late = [lambda i=i: self.writer.delete(str(i), *self.names(i)) for i in chosen[:2]]
        return [ops[j] for j in order] + late

    def after_migration(self):
        """Once the migration is done, the application writes in the new layout: new documents under the
        new prefix - they belong to no backup, and a rollback must leave them alone."""
        for n in range(3):
            key = f"{self.scenario.new_prefix}later-{n}"
            if self.json:
                value = {"headline": f"later {n}", "tag": "t8", "n": n, "embedding": [0.5] * DIMS}
                self.client.execute_command("JSON.SET", key, "$", json.dumps(value))
            else:
                value = {"headline": f"later {n}", "tag": "t8", "vec": numpy.full(DIMS, 0.5, numpy.float16).tobytes()}
                self.client.hset(key, mapping=value)
            self.after_added[key.encode()] = value

    # -- what Redis must hold ------------------------------------------------------------------------------
    def as_stored(self, value):
        """A document as the application gave it, as Redis returns it (hash fields as bytes)."""
        if self.json:
            return value
        return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in value.items()}

    def read(self, key):
        if self.json:
            text = self.client.execute_command("JSON.GET", key)
            return None if text is None else json.loads(text)
        found = self.client.hgetall(key)
        return found or None

    def raw(self, key, location):
        if self.json:
            return self.client.execute_command("JSON.GET", key, f"$.{location}")
        return self.client.hget(key, location)

    def expected_conflicts(self) -> tuple:
        """The migration keeps a vector the application wrote before the conversion reached the document,
        and reports it: those are the documents whose first vector write was float32 (hash) - the writer
        writes a value as long as the one stored. JSON vectors are moved, not converted: no conflict.
        (Documents the application deleted afterwards may or may not have been reached first.)"""
        if self.json:
            return set(), set()
        early = {
            doc for (doc, kind), values in self.writer.history.items() if kind == "vec" and len(values[0]) == DIMS * 4
        }
        return early - set(self.writer.deleted), early

    def check_migrated(self, original: dict, report) -> None:
        written, deleted = self.writer.history, self.writer.deleted
        for i in range(DOCS):
            old, new = (k.encode() for k in self.names(i))
            doc = str(i)
            if doc in deleted:
                assert not self.client.exists(old) and not self.client.exists(new), f"{doc} was deleted"
                continue
            assert not self.client.exists(old) and self.client.exists(new), doc
            entry = original["keys"][old]
            if self.json:
                now = self.read(new)
                expected = dict(entry[1])
                expected["headline"] = expected.pop("title")
                expected["embedding"] = expected.pop("vec")
                if (doc, "title") in written:
                    expected["headline"] = json.loads(self.writer.last[(doc, "title")][2])[0]
                if (doc, "vec") in written:
                    assert self.raw(new, "embedding") == self.writer.last[(doc, "vec")][2], doc
                    expected["embedding"] = now["embedding"]
                else:
                    assert self.raw(new, "embedding") == entry[2]["vec"], doc  # moved byte for byte
                assert now == expected, doc
            else:
                now = self.read(new)
                fields = dict(entry[1])
                fields[b"headline"] = fields.pop(b"title")
                fields[b"vec"] = f16(fields[b"vec"])  # converted once
                if (doc, "title") in written:
                    fields[b"headline"] = self.writer.last[(doc, "title")][2]
                if (doc, "vec") in written:
                    fields[b"vec"] = self.writer.last[(doc, "vec")][2]  # the application's bytes, as written
                assert now == fields, doc
        for key, value in self.writer.added.items():  # not the migration's: left exactly as written
            assert self.read(key) == self.as_stored(value)
        must, may = self.expected_conflicts()
        listed = {
            k.split(":", 1)[1]
            for phase in ("move_fields", "rename_keys", "quantize")
            for k in report.phases.get(phase, {}).get("counters", {}).get("conflict_keys", [])
        }
        assert must <= listed <= may, (sorted(listed), sorted(must), sorted(may))
        assert report.conflicts == len(listed)
        gone = {
            k
            for phase in ("move_fields", "rename_keys", "quantize")
            for k in report.phases.get(phase, {}).get("counters", {}).get("gone_keys", [])
        }
        assert {k.split(":", 1)[1] for k in gone} <= set(deleted), gone

    def check_rolled_back(self, original: dict, result) -> None:
        written, deleted = self.writer.history, self.writer.deleted
        changed = {doc for doc, _kind in written} - set(deleted)
        for i in range(DOCS):
            old, new = (k.encode() for k in self.names(i))
            doc = str(i)
            if doc in deleted:
                assert not self.client.exists(old) and not self.client.exists(new), f"{doc} came back"
                continue
            if doc in changed:
                # The application changed what the migration had moved: kept as it left it, where it was.
                assert self.client.exists(new) and not self.client.exists(old), doc
                if (doc, "vec") in written:
                    assert self.raw(new, self.vec_after) == self.writer.last[(doc, "vec")][2], doc
                if (doc, "title") in written:
                    assert self.raw(new, "headline") == self.writer.last[(doc, "title")][2], doc
                continue
            assert not self.client.exists(new), doc
            entry = original["keys"][old]
            if self.json:
                assert self.read(old) == entry[1], doc
                assert {name: self.raw(old, name) for name in entry[2]} == entry[2], doc
            else:
                assert self.read(old) == entry[1], doc
        for key, value in {**self.writer.added, **self.after_added}.items():
            assert self.read(key) == self.as_stored(value), key
        assert result.skipped_deleted == len(deleted)
        assert sorted(k.split(":", 1)[1] for k in result.conflict_keys) == sorted(changed)
        assert result.conflicts == len(changed)
        assert result.restored == DOCS - len(deleted) - len(changed)
        assert result.validation["passed"], result.validation


def hold_at_checkpoints(monkeypatch, app, store_of, tmp_path):
    """The application starts once the backup is complete (drop:start), and the migration waits for a few
    of its writes at each later checkpoint, so that they land in every phase."""
    original = failpoints.hit
    state = {"started": False, "expected": 0}

    def hit(phase, point):
        if (phase, str(point)) == ("drop", "start") and not state["started"]:
            app.writer.start(app.plan_writes(store_of()))
            state["started"] = True
        elif state["started"] and (str(point) in ("start", "2") or (phase, str(point)) == ("drop", "0")):
            state["expected"] += 3
            app.writer.wait_for(state["expected"])
        original(phase, point)

    monkeypatch.setattr(failpoints, "hit", hit)
    return state


@pytest.mark.parametrize("scenario_name", [pytest.param("hash", marks=pytest.mark.faults_fast), "json"])
def test_application_writes_during_a_migration_and_its_rollback(
    scenario_name, clean_redis, redis_url, tmp_path, monkeypatch, record_property
):
    scenario = SCENARIOS[scenario_name]
    load(clean_redis, scenario)
    original = capture(clean_redis)
    plan = make_plan(clean_redis, scenario, tmp_path / "plan.yaml")
    app = Application(clean_redis, redis_url, scenario, plan, SEED)
    backup = tmp_path / "b"
    hold_at_checkpoints(monkeypatch, app, lambda: BackupStore.for_plan(str(backup), plan.checksum), tmp_path)
    outcome = run_in_process(clean_redis, redis_url, plan, backup, scenario)
    app.writer.wait_for(10**6, timeout=30)  # every planned write made
    app.writer.stop()
    assert outcome.report.result == "succeeded", outcome.report.validation
    assert app.writer.deleted and app.writer.added and app.writer.history
    app.check_migrated(original, outcome.report)
    monkeypatch.undo()
    app.after_migration()
    changed, result = roll_back(clean_redis, backup, scenario)
    assert changed and result.result == "rolled_back"
    app.check_rolled_back(original, result)
    # Run again, the rollback writes nothing: deleted documents stay deleted, the application's stay its own.
    before = capture(clean_redis)
    again_changed, again = roll_back(clean_redis, backup, scenario)
    assert not again_changed and again.result == "already_rolled_back"
    assert capture(clean_redis) == before
    record_property(
        "fault",
        {
            "kind": "application_writes",
            "case": scenario_name,
            "writes": app.writer.count,
            "conflicts": result.conflicts,
        },
    )


@pytest.mark.parametrize("scenario_name", ["hash", "json"])
def test_application_writes_while_a_migration_is_killed_and_resumed(
    scenario_name, clean_redis, redis_url, tmp_path, calibrations, record_property
):
    """The migration is SIGKILLed in its last rewrite phase, after its last block was sent (all but that block
    recorded as done), while the application writes; the resumed run must still convert nothing twice, keep
    every write, and report every conflict - also those the killed run found."""
    scenario = SCENARIOS[scenario_name]
    calibration = calibrations(scenario_name)
    clean_redis.flushall()
    load(clean_redis, scenario)
    original = capture(clean_redis)
    app = Application(clean_redis, redis_url, scenario, calibration.plan, SEED + 1)
    backup, trace = tmp_path / "b", tmp_path / "trace"
    last = "quantize" if scenario.quantize else "rename_keys"
    kill = resolve({"step": last, "records": "last"}, calibration.migrate_steps)
    proc = start_driver(
        driver_args("migrate", redis_url, scenario, backup, trace, calibration.plan_path, kill=kill),
        failpoint="drop:start:pause=1",
    )
    deadline = time.monotonic() + 60
    while not any(e.get("step") == "drop" for e in read_trace(trace)) and time.monotonic() < deadline:
        time.sleep(0.005)
    app.writer.start(app.plan_writes(BackupStore.for_plan(str(backup), calibration.plan.checksum)))
    proc.communicate(timeout=180)
    assert proc.returncode == -signal.SIGKILL
    outcome = run_in_process(clean_redis, redis_url, calibration.plan, backup, scenario)
    app.writer.wait_for(10**6, timeout=30)
    app.writer.stop()
    assert outcome.report.result == "succeeded", outcome.report.validation
    app.check_migrated(original, outcome.report)
    changed, result = roll_back(clean_redis, backup, scenario)
    assert changed
    app.check_rolled_back(original, result)
    record_property(
        "fault",
        {
            "kind": "application_writes",
            "case": f"{scenario_name}-killed-and-resumed",
            "writes": app.writer.count,
            "count": 2,
        },
    )  # the writes, and the kill
