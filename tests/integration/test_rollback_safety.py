"""redis_index_rollback must never undo what the application wrote, must always have a way out, and
must never write outside the index, whatever the backup says (issue 13)."""

from __future__ import annotations

import json
import re

import numpy
import pytest
import redis
from app_writes import AppWriter, dump_everything, write_counters
from datasets import is_hash
from module_runner import run_module
from test_redis_index_migrate import DIMS, DOCS, QUANT16, load, make_plan, run

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import (
    _in_scope,
    choose_backup,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.format import (
    Entry,
    Record,
    encode_record,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import read_header
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import failpoints
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    BackupInvalid,
    PreflightFailed,
    ValidationFailed,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import snapshot_index
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.states import (
    DocumentStates,
    state_digest,
)
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_rollback

RENAME_VEC = {"rename_fields": [{"old_name": "vec", "new_name": "embedding"}]}
EMBEDDING16 = {"name": "embedding", "attrs": {"datatype": "float16"}}
RENAME_TITLE = {"rename_fields": [{"old_name": "title", "new_name": "headline"}]}
SCENARIOS = {
    # name: (storage, changes, new prefix, vector field after the migration, cluster path)
    "hash_quantize": ("hash", QUANT16, None, "vec", False),
    "hash_move_quantize": ("hash", {**RENAME_VEC, "update_fields": [EMBEDDING16]}, None, "embedding", False),
    "hash_prefix_quantize": ("hash", {"index": {"prefix": "item:"}, **QUANT16}, "item:", "vec", False),
    "hash_prefix_quantize_cluster_path": ("hash", {"index": {"prefix": "item:"}, **QUANT16}, "item:", "vec", True),
    "json_move": ("json", RENAME_VEC, None, "embedding", False),
}


def _names(i: int, prefix: str, new_prefix) -> tuple:
    return f"{prefix}{i}", f"{new_prefix or prefix}{i}"


class Scenario:
    """One migration with an application writing to it, during and after, as the issue describes."""

    def __init__(self, client, url, tmp_path, monkeypatch, storage, changes, new_prefix, vec_after):
        self.client, self.url, self.tmp_path = client, url, tmp_path
        self.storage, self.new_prefix, self.vec_after = storage, new_prefix, vec_after
        self.json = storage == "json"
        self.prefix = "j:" if self.json else "doc:"
        load(client, storage=storage, prefix=self.prefix)
        self.before = self.read_all()
        self.vec_text = {k: client.execute_command("JSON.GET", k, "$.vec") for k in self.before} if self.json else {}
        self.schema = snapshot_index(client, "idx").snapshot.index_schema.to_dict()
        # The drop_recreate path (an online rewrite with an application writing: test_online_rewrite.py).
        self.plan = make_plan(client, changes, mode="drop_recreate")
        self.rng = numpy.random.default_rng(13)
        self.app = AppWriter(redis.Redis.from_url(url, protocol=2), json_storage=self.json)
        self.writes_expected = 0
        self.during_started = False
        original_hit = failpoints.hit

        def hit(phase, point):
            self.on_point(phase, str(point))
            original_hit(phase, point)

        monkeypatch.setattr(failpoints, "hit", hit)

    # -- the application's updates ------------------------------------------------------------------
    def vector_update(self, i: int) -> tuple:
        old_key, new_key = _names(i, self.prefix, self.new_prefix)
        values = self.rng.standard_normal(DIMS)
        if self.json:
            return (
                str(i),
                "vec",
                old_key,
                new_key,
                "$.vec",
                f"$.{self.vec_after}",
                [json.dumps(values.tolist()).encode()],
            )
        # As long as what is stored: float32 before the rewrite, float16 after it.
        return (
            str(i),
            "vec",
            old_key,
            new_key,
            "vec",
            self.vec_after,
            [values.astype(numpy.float32).tobytes(), values.astype(numpy.float16).tobytes()],
        )

    def title_update(self, i: int) -> tuple:
        old_key, new_key = _names(i, self.prefix, self.new_prefix)
        title = f"changed by the application {self.rng.integers(1 << 30)}"
        if self.json:
            return (str(i), "title", old_key, new_key, "$.title", "$.title", [json.dumps(title).encode()])
        return (str(i), "title", old_key, new_key, "title", "title", [title.encode()])

    def on_point(self, phase: str, point: str) -> None:
        if (phase, point) == ("drop", "start"):  # the backup is complete: the application writes from now on
            store = choose_backup(str(self.tmp_path), "idx")
            _block, first = next(store.iter_blocks())
            # The migration's own validation compares the first block's vectors and the plan's sampled keys
            # with their originals; the application leaves those documents alone.
            spared = {r.key.decode() for r in first} | {str(k) for k in self.plan.source.key_sample}
            candidates = [i for i in range(DOCS) if f"{self.prefix}{i}" not in spared]
            chosen = [int(i) for i in self.rng.permutation(candidates)]
            self.during_vec, self.during_title = chosen[:14], chosen[10:20]  # some documents get both
            self.after_vec, self.after_title = chosen[20:26] + chosen[:3], chosen[26:30]
            updates = (
                [self.vector_update(i) for i in self.during_vec]
                + [self.title_update(i) for i in self.during_title]
                + [self.vector_update(i) for i in chosen[:4]]
            )
            order = self.rng.permutation(len(updates))
            self.app.start([updates[j] for j in order])
            self.during_started = True
        elif self.during_started and (
            (phase, point) == ("drop", "0") or point == "2" or point == "start" and phase in ("create", "wait")
        ):
            # Hold the migration until the application made a few more writes: they land in every phase.
            self.writes_expected += 3
            self.app.wait_for(self.writes_expected)

    def migrate(self) -> None:
        outcome = run(self.client, self.url, self.plan, self.tmp_path)
        self.app.stop()
        assert outcome.report.result == "succeeded", outcome.report.validation
        assert self.app.count >= 12  # written while the migration ran
        if self.plan.rewrites.quantize:  # some before their document was rewritten: the migration kept them too
            assert outcome.report.conflicts >= 1
        self.migration_conflicts = outcome.report.conflicts
        for i in self.after_vec:  # and after it completed
            self.app.write(*self.vector_update(i))
        for i in self.after_title:
            self.app.write(*self.title_update(i))

    # -- what the database holds ------------------------------------------------------------------------
    def read_all(self) -> dict:
        found = {}
        for key in sorted(self.client.scan_iter(count=1000)):
            if self.json:
                found[key] = self.client.execute_command("JSON.GET", key)
            elif is_hash(self.client, key):
                found[key] = self.client.hgetall(key)
        return found

    def check_after_rollback(self, result) -> None:
        vec_docs = self.app.documents.get("vec", set())
        title_docs = self.app.documents.get("title", set())
        assert vec_docs and title_docs - vec_docs  # both kinds of update happened
        now = self.read_all()
        for i in range(DOCS):
            old_key, new_key = (k.encode() for k in _names(i, self.prefix, self.new_prefix))
            original = self.before[old_key]
            if self.json:
                expected = json.loads(original)
                if str(i) in title_docs:
                    expected["title"] = json.loads(self.app.last[(str(i), "title")][2])[0]
            else:
                expected = dict(original)
                if str(i) in title_docs:
                    expected[b"title"] = self.app.last[(str(i), "title")][2]
            if str(i) not in vec_docs:
                # Not a conflict: the original bytes are back under the original name, with the application's title.
                assert new_key == old_key or new_key not in now, new_key
                if self.json:
                    assert json.loads(now[old_key]) == expected, old_key
                    assert self.client.execute_command("JSON.GET", old_key, "$.vec") == self.vec_text[old_key]
                else:
                    assert now[old_key] == expected, old_key
                continue
            # A conflict: the document is as the application left it, byte for byte, where it was.
            present = [k for k in (old_key, new_key) if k in now]
            assert len(set(present)) == 1, present
            doc = now[present[0]]
            written = self.app.last[(str(i), "vec")][2]
            if self.json:
                doc = json.loads(doc)
                locations = {name for name in ("vec", self.vec_after) if name in doc}
                assert len(locations) == 1
                location = locations.pop()
                raw = self.client.execute_command("JSON.GET", present[0], f"$.{location}")
                assert raw == written
                doc.pop(location)
                expected.pop("vec")
            else:
                vectors = {name: doc.pop(name) for name in (b"vec", self.vec_after.encode()) if name in doc}
                assert list(vectors.values()) == [written], vectors
                expected.pop(b"vec")
            assert doc == expected, present
        assert result.conflicts == len(vec_docs)
        assert sorted(result.conflict_keys) == sorted(f"{self.prefix}{i}" for i in vec_docs)
        assert result.restored + result.already_restored + result.skipped_deleted + result.conflicts == DOCS
        assert result.restored == DOCS - len(vec_docs)
        assert result.validation["passed"], result.validation
        assert result.validation["documents_conflicting"] == len(vec_docs)
        assert snapshot_index(self.client, "idx").snapshot.index_schema.to_dict() == self.schema


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_rollback_keeps_every_application_write(clean_redis, redis_url, tmp_path, monkeypatch, name):
    storage, changes, new_prefix, vec_after, cluster = SCENARIOS[name]
    scenario = Scenario(clean_redis, redis_url, tmp_path, monkeypatch, storage, changes, new_prefix, vec_after)
    scenario.migrate()
    resp3 = redis.Redis.from_url(redis_url, protocol=3)  # the other tests roll back over RESP2
    changed, result = rollback(resp3, choose_backup(str(tmp_path), "idx"), cluster=cluster)
    assert changed and result.result == "rolled_back"
    scenario.check_after_rollback(result)
    assert read_header(result.backup_path).status == "rolled_back"
    again_changed, again = rollback(resp3, choose_backup(str(tmp_path), "idx"), cluster=cluster)
    assert not again_changed and again.result == "already_rolled_back"
    resp3.close()


def test_prefix_change_alone_renames_updated_documents_back_with_their_updates(clean_redis, redis_url, tmp_path):
    """Nothing but the key name was backed up, so an updated document is still in a state the migration
    left it in: it gets its name back, and keeps every byte the application wrote."""
    load(clean_redis)
    before = {k: clean_redis.hgetall(k) for k in clean_redis.scan_iter(match="doc:*")}
    run(clean_redis, redis_url, make_plan(clean_redis, {"index": {"prefix": "item:"}}), tmp_path)
    clean_redis.hset("item:8", mapping={"vec": b"\x01" * DIMS * 4, "title": "updated"})
    changed, result = rollback(clean_redis, choose_backup(str(tmp_path), "idx"))
    assert changed and result.restored == DOCS and result.conflicts == 0
    assert {k: clean_redis.hgetall(k) for k in clean_redis.scan_iter(match="doc:*")} == {
        **before,
        b"doc:8": {**before[b"doc:8"], b"vec": b"\x01" * DIMS * 4, b"title": b"updated"},
    }
    assert list(clean_redis.scan_iter(match="item:*")) == []


def test_application_deleting_a_moved_field_is_not_undone(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    before = {k: clean_redis.hgetall(k) for k in clean_redis.scan_iter(match="doc:*")}
    plan = make_plan(
        clean_redis, {**RENAME_VEC, "update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
    )
    run(clean_redis, redis_url, plan, tmp_path)
    clean_redis.hdel("doc:40", "embedding")  # the application removed the vector
    clean_redis.hset("doc:41", "title", "still mine")  # not a location the migration changed
    changed, result = rollback(clean_redis, choose_backup(str(tmp_path), "idx"))
    assert changed and result.conflicts == 1 and result.conflict_keys == ["doc:40"]
    assert clean_redis.hgetall("doc:40") == {k: v for k, v in before[b"doc:40"].items() if k != b"vec"}
    assert clean_redis.hgetall("doc:41") == {**before[b"doc:41"], b"title": b"still mine"}
    assert result.validation["passed"] and result.validation["doc_count_actual"] == DOCS


@pytest.mark.parametrize("cluster", [False, True], ids=["script", "cluster_path"])
def test_a_collision_of_both_names_is_a_conflict(clean_redis, redis_url, tmp_path, cluster):
    load(clean_redis)
    plan = make_plan(clean_redis, {"index": {"prefix": "item:"}}, mode="drop_recreate")
    run(clean_redis, redis_url, plan, tmp_path)
    clean_redis.hset("doc:5", "title", "a new document under the old name")
    migrated = clean_redis.hgetall("item:5")
    changed, result = rollback(clean_redis, choose_backup(str(tmp_path), "idx"), cluster=cluster)
    assert changed and result.conflicts == 1 and result.conflict_keys == ["doc:5"]
    assert clean_redis.hgetall("doc:5") == {b"title": b"a new document under the old name"}
    assert clean_redis.hgetall("item:5") == migrated
    assert list(clean_redis.scan_iter(match="item:*")) == [b"item:5"]


# --- documents added after the migration ------------------------------------------------------------


def test_documents_added_after_the_migration_do_not_block_rollback(clean_redis, redis_url, tmp_path, capsys):
    load(clean_redis)
    plan = make_plan(clean_redis, RENAME_TITLE, mode="drop_recreate")
    run(clean_redis, redis_url, plan, tmp_path)
    rng = numpy.random.default_rng(5)
    for i in range(DOCS, DOCS + 5):  # the application writes new documents in the new layout
        clean_redis.hset(
            f"doc:{i}",
            mapping={
                "headline": f"new {i}",
                "tag": "t9",
                "vec": rng.standard_normal(DIMS).astype(numpy.float32).tobytes(),
            },
        )
    added = {f"doc:{i}".encode(): clean_redis.hgetall(f"doc:{i}") for i in range(DOCS, DOCS + 5)}
    args = {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path)}
    done = run_module(redis_index_rollback, args, capsys)
    assert done["changed"] and done["result"] == "rolled_back"
    assert done["restored"] == DOCS and done["conflicts"] == 0
    validation = done["validation"]
    assert validation["passed"] and validation["doc_count_actual"] == DOCS + 5
    assert validation["doc_count_expected"] == DOCS and validation["documents_added"] == 5
    assert {k: clean_redis.hgetall(k) for k in added} == added  # left exactly as the application wrote them
    assert read_header(done["backup_path"]).status == "rolled_back"
    again = run_module(redis_index_rollback, args, capsys)
    assert again["changed"] is False and again["result"] == "already_rolled_back"
    outcome = run(clean_redis, redis_url, plan, tmp_path)  # the same plan applies again
    assert outcome.report.result == "succeeded" and outcome.report.attempt == 2
    assert snapshot_index(clean_redis, "idx").stats.num_docs == DOCS + 5


def test_documents_added_that_the_restored_index_cannot_index_fail_the_rollback(
    clean_redis, redis_url, tmp_path, capsys
):
    load(clean_redis)
    originals = dump_everything(clean_redis)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16, mode="drop_recreate"), tmp_path)
    rng = numpy.random.default_rng(6)
    for i in range(DOCS, DOCS + 50):  # written in the migrated layout: float16, half the bytes float32 needs
        clean_redis.hset(
            f"doc:{i}",
            mapping={
                "title": f"new {i}",
                "tag": "t1",
                "vec": rng.standard_normal(DIMS).astype(numpy.float16).tobytes(),
            },
        )
    added = {f"doc:{i}".encode(): clean_redis.hgetall(f"doc:{i}") for i in range(DOCS, DOCS + 50)}
    args = {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path)}
    failed = run_module(redis_index_rollback, args, capsys, expect_failure=True)
    assert failed["error_type"] == "validation_failed" and "\n" not in failed["msg"]
    assert "50 document(s) written after the migration cannot be indexed by the restored index" in failed["msg"]
    validation = failed["validation"]
    assert (validation["doc_count_expected"], validation["doc_count_actual"]) == (DOCS, DOCS)
    assert validation["documents_added"] == validation["documents_added_not_indexed"] == 50
    assert (validation["indexing_failures_before"], validation["indexing_failures_after"]) == (0, 50)
    everything = dump_everything(clean_redis)
    assert {k: v for k, v in everything.items() if k in originals} == originals  # every document restored
    assert {k: clean_redis.hgetall(k) for k in added} == added  # the new ones as the application wrote them
    forced = run_module(redis_index_rollback, {**args, "accept_validation_failure": True}, capsys)
    assert forced["result"] == "rolled_back_validation_failed" and forced["validation"]["documents_added"] == 50
    assert dump_everything(clean_redis) == everything


# --- a rollback whose validation fails ------------------------------------------------------------------


def _numeric_index(client, docs: int = 100) -> None:
    rng = numpy.random.default_rng(1)
    client.execute_command(
        "FT.CREATE",
        "idx",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "doc:",
        "SCHEMA",
        "title",
        "TEXT",
        "n",
        "NUMERIC",
        "vec",
        "VECTOR",
        "FLAT",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        str(DIMS),
        "DISTANCE_METRIC",
        "L2",
    )
    for i in range(docs):
        client.hset(
            f"doc:{i}",
            mapping={"title": f"d {i}", "n": str(i), "vec": rng.standard_normal(DIMS).astype(numpy.float32).tobytes()},
        )
    from datasets import wait_for  # pylint: disable=import-outside-toplevel

    wait_for(client, "idx", docs)


def test_failed_validation_has_a_way_out(clean_redis, redis_url, tmp_path, capsys):
    _numeric_index(clean_redis)
    plan = make_plan(clean_redis, QUANT16, mode="drop_recreate")
    run(clean_redis, redis_url, plan, tmp_path)
    clean_redis.hset("doc:7", "n", "not a number")  # the restored index cannot index doc:7 any more
    args = {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path)}

    failed = run_module(redis_index_rollback, args, capsys, expect_failure=True)
    assert failed["error_type"] == "validation_failed" and "\n" not in failed["msg"]
    assert "99 documents indexed, 100 expected" in failed["msg"] and "accept_validation_failure" in failed["msg"]
    store = choose_backup(str(tmp_path), "idx")
    assert store.header.status == "rolling_back" and store.header.error["phase"] == "rollback"
    with pytest.raises(PreflightFailed, match="did not finish"):
        run(clean_redis, redis_url, plan, tmp_path)  # migrate refuses while the rollback is unfinished
    restored = dump_everything(clean_redis)
    retry = run_module(redis_index_rollback, args, capsys, expect_failure=True)
    assert retry["msg"] == failed["msg"]
    assert dump_everything(clean_redis) == restored  # the second run rewrote nothing

    forced = run_module(redis_index_rollback, {**args, "accept_validation_failure": True}, capsys)
    assert forced["changed"] and forced["result"] == "rolled_back_validation_failed"
    assert forced["problems"] == ["99 documents indexed, 100 expected"]
    assert forced["validation"]["passed"] is False and forced["already_restored"] == 100
    header = read_header(forced["backup_path"])
    assert header.status == "rolled_back" and header.rollback["validation"]["passed"] is False
    assert header.rollback["problems"] == forced["problems"] and header.error is None
    assert dump_everything(clean_redis) == restored
    again = run_module(redis_index_rollback, args, capsys)
    assert again["changed"] is False and again["result"] == "already_rolled_back"

    outcome = run(clean_redis, redis_url, plan, tmp_path)  # the operator can apply the plan again
    assert outcome.report.result == "succeeded" and outcome.report.attempt == 2


def test_altered_source_definition_fails_then_is_accepted(clean_redis, redis_url, tmp_path):
    load(clean_redis)
    plan = make_plan(clean_redis, {"index": {"name": "idx_v2"}, **QUANT16}, mode="drop_recreate")
    run(clean_redis, redis_url, plan, tmp_path)
    # Someone created an index of the old name by hand, not quite like the original.
    clean_redis.execute_command("FT.CREATE", "idx", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA", "title", "TEXT")
    with pytest.raises(ValidationFailed, match="schema differs from the source") as first:
        rollback(clean_redis, choose_backup(str(tmp_path), "idx"))
    assert "accept_validation_failure" in str(first.value)
    with pytest.raises(ValidationFailed) as second:
        rollback(clean_redis, choose_backup(str(tmp_path), "idx"))
    assert str(second.value) == str(first.value)
    changed, result = rollback(clean_redis, choose_backup(str(tmp_path), "idx"), accept_validation_failure=True)
    assert changed and result.result == "rolled_back_validation_failed"
    assert result.problems and result.problems[0].startswith("schema differs from the source")
    changed, again = rollback(clean_redis, choose_backup(str(tmp_path), "idx"))
    assert not changed and again.result == "already_rolled_back"


# --- forged backups ---------------------------------------------------------------------------------------


def _forge(store, extra: bytes) -> None:
    """Re-seal the backup with one more record, the way anyone can: valid CRC, digests, chain, header."""
    blocks = []
    for _block_no, records in store.iter_blocks():
        blocks.append([encode_record(r.key, list(r.entries)) for r in records])
    blocks[-1].append(extra)
    writer = store.data_writer()
    for block in blocks:
        writer.write_block(block)
    writer.close()
    header = store.header
    header.data_blocks, header.data_records = writer.blocks, writer.records
    header.data_bytes, header.data_chain = writer.bytes, writer.chain
    store.save()


@pytest.mark.parametrize(
    "key, entries, named",
    [
        (b"other:1", [(b"vec", b"\x00" * DIMS * 4)], "other:1"),
        (b"doc:3", [(b"vec", b"\x00" * DIMS * 4), (b"title", b"rewritten")], "title"),
        (b"\xffdoc", [(b"vec", None)], "base64"),
    ],
)
@pytest.mark.parametrize("partial", [False, True])
def test_forged_backup_is_refused_with_nothing_written(
    clean_redis, redis_url, tmp_path, capsys, key, entries, named, partial
):
    load(clean_redis)
    run(clean_redis, redis_url, make_plan(clean_redis, QUANT16), tmp_path)
    clean_redis.hset("other:1", mapping={"vec": b"keep me", "note": "not the index's"})
    clean_redis.set(b"\xffdoc", b"neither")
    store = choose_backup(str(tmp_path), "idx")
    _forge(store, encode_record(key, entries))
    assert choose_backup(str(tmp_path), "idx").verify().ok  # the forgery passes every checksum
    everything, counters = dump_everything(clean_redis), write_counters(clean_redis)

    failed = run_module(
        redis_index_rollback,
        {"redis_url": redis_url, "index": "idx", "backup_dir": str(tmp_path), "partial": partial},
        capsys,
        expect_failure=True,
    )
    assert failed["error_type"] == "backup_invalid" and "\n" not in failed["msg"]
    assert named in failed["msg"] and "nothing was written" in failed["msg"]
    assert dump_everything(clean_redis) == everything
    assert write_counters(clean_redis) == counters
    assert read_header(store.directory).status == "completed"
    with pytest.raises(BackupInvalid):  # check mode refuses it as well
        rollback(clean_redis, choose_backup(str(tmp_path), "idx"), check_mode=True)
    assert dump_everything(clean_redis) == everything


# --- the pieces, one by one ------------------------------------------------------------------------------


def test_the_server_computes_the_same_state_digest(clean_redis):
    """The restore scripts and rollback/states.state_digest must agree on every kind of value."""
    values = [b"plain", None, b"", b"\x00\xff-+:", b"-", b"+1:x" * 1000]
    fields = {f"f{i}": v for i, v in enumerate(values) if v is not None}
    clean_redis.hset("probe", mapping=fields)
    script = """
local state = {}
for i = 1, #ARGV do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value then state[#state + 1] = '+' .. #value .. ':' .. value else state[#state + 1] = '-' end
end
return redis.sha1hex(table.concat(state))
"""
    names = [f"f{i}" for i in range(len(values))]
    assert clean_redis.eval(script, 1, "probe", *names) == state_digest(values)
    assert state_digest([None, b""]) != state_digest([b"", None]) != state_digest([b"-"])


def test_states_cover_move_then_quantize_and_nothing_else(clean_redis, redis_url, tmp_path):
    load(clean_redis, docs=20)
    plan = make_plan(
        clean_redis,
        {**RENAME_VEC, "update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]},
        mode="drop_recreate",
    )
    run(clean_redis, redis_url, plan, tmp_path)
    store = choose_backup(str(tmp_path), "idx")
    _block, records = next(store.iter_blocks())
    vec = records[0].value(b"vec")
    taken = Record(b"doc:0", (Entry(b"vec", vec), Entry(b"embedding", b"someone else's")))
    rows = DocumentStates(plan, store).arguments([records[0], taken])
    half = numpy.frombuffer(vec, numpy.float32).astype(numpy.float16).tobytes()
    assert rows[0][:2] == [state_digest([vec, None]), b"2"]
    assert sorted(rows[0][2:4]) == sorted([state_digest([None, vec]), state_digest([None, half])])
    assert rows[0][4:] == [b"vec", vec, b"@embedding", b"embedding", b"", b"1"]  # vec takes embedding's place back
    # Onto a destination that held something else the move never happens, so neither state is acceptable.
    assert rows[1][1] == b"0"


def test_scope_check(clean_redis):
    load(clean_redis, docs=5)
    plan = make_plan(clean_redis, {"index": {"prefix": "item:"}, **QUANT16})
    check = _in_scope(plan)
    check(Record(b"doc:1", (Entry(b"vec", b"x"),)))
    for record, named in [
        (Record(b"item:1", (Entry(b"vec", b"x"),)), "item:1"),
        (Record(b"doc:1", (Entry(b"vec", b"x"), Entry(b"vec", None))), "twice"),
        (Record(b"doc:1", (Entry(b"$.vec", b"x"),)), "$.vec"),
    ]:
        with pytest.raises(BackupInvalid, match=re.escape(named)):
            check(record)
