"""The backup data format: records and blocks round-trip, damage is found where it is."""

from __future__ import annotations

import io

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.format import (
    BLOCK_HEADER_SIZE,
    EMPTY_CHAIN,
    FILE_MAGIC,
    FormatError,
    block_digest,
    block_offsets,
    chain,
    decode_records,
    encode_block,
    encode_record,
    iter_blocks,
    read_block_at,
    record_size,
    records_of,
)

RECORDS = [
    (b"doc:1", [(b"vec", b"\x00\x01\x02\x03"), (b"moved", None)]),
    (b"doc:\xff2", [(b"vec", b""), (b"moved", b"x" * 300)]),
    (b"", []),
]


def data_file(blocks):
    return FILE_MAGIC + b"".join(
        encode_block(n, [encode_record(k, e) for k, e in records]) for n, records in enumerate(blocks)
    )


def test_records_come_back_as_written_with_absent_values_apart_from_empty_ones():
    stream = io.BytesIO(data_file([RECORDS[:2], RECORDS[2:]]))
    blocks = list(iter_blocks(stream))
    assert [(b.block_no, b.record_count, b.digest_ok) for b in blocks] == [(0, 2, True), (1, 1, True)]
    got = [(r.key, [(e.name, e.value) for e in r.entries]) for r in records_of(blocks)]
    assert got == [(k, list(e)) for k, e in RECORDS]
    assert list(records_of(blocks))[0].value(b"moved") is None
    assert list(records_of(blocks))[1].value(b"vec") == b""


@pytest.mark.parametrize("key, entries", RECORDS)
def test_record_size_is_the_encoded_length(key, entries):
    sizes = [(len(name), None if value is None else len(value)) for name, value in entries]
    assert record_size(len(key), sizes) == len(encode_record(key, entries))


def test_a_changed_byte_fails_its_record_crc_and_its_block_digest():
    raw = bytearray(data_file([RECORDS[:2]]))
    raw[len(FILE_MAGIC) + BLOCK_HEADER_SIZE + 21] ^= 0xFF  # in the first record's vector bytes
    block = next(iter_blocks(io.BytesIO(bytes(raw))))
    assert not block.digest_ok
    decoded = list(decode_records(block.payload, block.record_count))
    assert decoded[0][1] is None and decoded[1][1].key == b"doc:\xff2"


def test_a_truncated_file_is_refused_with_the_block_it_cut():
    raw = data_file([RECORDS[:2]])
    with pytest.raises(FormatError, match="block 0 is cut short"):
        list(iter_blocks(io.BytesIO(raw[:-5])))
    with pytest.raises(FormatError, match="bad magic"):
        list(iter_blocks(io.BytesIO(b"PK\x03\x04" + raw[4:])))


def test_block_offsets_lead_to_each_block_and_the_chain_covers_them_in_order():
    blocks = [RECORDS[:1], RECORDS[1:2], RECORDS[2:]]
    raw = data_file(blocks)
    stream = io.BytesIO(raw)
    offsets = block_offsets(stream, len(raw))
    assert [read_block_at(stream, o).block_no for o in offsets] == [0, 1, 2]
    encoded = [encode_block(n, [encode_record(k, e) for k, e in records]) for n, records in enumerate(blocks)]
    running = EMPTY_CHAIN
    for block in encoded:
        running = chain(running, block_digest(block))
    swapped = chain(
        chain(chain(EMPTY_CHAIN, block_digest(encoded[1])), block_digest(encoded[0])), block_digest(encoded[2])
    )
    assert running != swapped


def test_bytes_after_the_last_record_are_refused():
    payload = encode_record(b"k", [(b"f", b"v")]) + b"junk"
    with pytest.raises(FormatError, match="4 bytes after its last record"):
        list(decode_records(payload, 1, block_no=7))
