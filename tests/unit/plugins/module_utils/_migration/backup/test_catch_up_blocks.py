"""Catch-up blocks: appended after the blocks a header records (what a killed append left past them is cut off),
verified like the rest, and the newest record of a key found."""

from __future__ import annotations

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.backup import record_data
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.format import encode_record
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.newest import Newest
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import (
    DATA,
    BackupHeader,
    BackupStore,
)

IDENTITY = {"plan_checksum": "sha256:" + "0" * 64, "plan_id": "0" * 12, "source_index": "idx"}


def _store(tmp_path) -> BackupStore:
    header = BackupHeader(**IDENTITY, target_index="idx", storage="hash", batch_size=2)
    store = BackupStore.create(str(tmp_path), header, "plan: {}\n")
    writer = store.data_writer()
    writer.write_block([encode_record(b"doc:1", [(b"vec", b"a")]), encode_record(b"doc:2", [(b"vec", b"b")])])
    writer.write_block([encode_record(b"doc:3", [(b"vec", b"c")])])
    writer.close()
    record_data(header, writer)
    return store


def _append(store: BackupStore, records: list) -> None:
    writer = store.data_appender()
    writer.write_block([encode_record(key, [(b"vec", value)]) for key, value in records])
    writer.close()
    header = store.header
    header.catch_up_from = header.data_blocks if header.catch_up_from is None else header.catch_up_from
    record_data(header, writer)


def test_an_append_continues_the_file_and_its_fingerprint(tmp_path):
    store = _store(tmp_path)
    assert Newest.of(store).blocks == {}
    _append(store, [(b"doc:2", b"B"), (b"doc:9", b"new")])
    _append(store, [(b"doc:2", b"BB")])
    assert store.verify().ok, store.verify().problems
    assert [block for block, _records in store.iter_blocks()] == [0, 1, 2, 3]
    newest = Newest.of(store)
    assert newest.blocks == {b"doc:2": 3, b"doc:9": 2}
    assert newest.superseded(0, b"doc:2") and newest.superseded(2, b"doc:2") and not newest.superseded(3, b"doc:2")
    assert not newest.superseded(0, b"doc:1") and not newest.superseded(2, b"doc:9")


def test_what_a_killed_append_left_past_the_header_is_cut_off(tmp_path):
    store = _store(tmp_path)
    recorded = store.header.data_bytes
    with open(store.path(DATA), "ab") as stream:
        stream.write(b"BLK1 half a block a killed run wrote and never recorded")
    assert store.verify().ok  # the header's figures bound what is read
    _append(store, [(b"doc:1", b"A")])
    assert store.verify().ok, store.verify().problems
    assert store.header.data_bytes > recorded and store.header.data_blocks == 3
    assert [r.key for _b, records in store.iter_blocks() for r in records] == [b"doc:1", b"doc:2", b"doc:3", b"doc:1"]
