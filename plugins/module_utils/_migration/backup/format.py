# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The binary format of backup data: plain length-prefixed bytes, never anything executable.

A data file is a file magic followed by blocks; a block holds the records of one batch:

    file   := FILE_MAGIC block*
    block  := BLOCK_MAGIC u32 block_no  u32 record_count  u64 payload_length  sha256(payload)  payload
    record := u32 key_length  key  u16 entry_count  entry*  u32 crc32(everything before it in the record)
    entry  := u16 name_length  name  u32 value_length  value      (value_length 0xFFFFFFFF = absent)

All integers are little-endian. An entry names where a value lived in the document (a hash field or
a JSONPath) and holds its bytes before the migration touched it; "absent" records that nothing was
there. The CRC pins down which record is damaged (so a partial rollback can restore the rest); the
block's SHA-256 catches any edit, even one that keeps CRCs valid; a truncated block is detected by
its length. Sizes are exact functions of the data, so the planner can predict the file's size.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import BinaryIO, Iterator, List, NamedTuple, Optional, Sequence, Tuple

FILE_MAGIC = b"IXOPS-BACKUP-1\n\x00"
BLOCK_MAGIC = b"BLK1"
_BLOCK_HEAD = struct.Struct("<4sIIQ32s")
BLOCK_HEADER_SIZE = _BLOCK_HEAD.size
ABSENT = 0xFFFFFFFF
_KEY = struct.Struct("<I")
_COUNT = struct.Struct("<H")
_NAME = struct.Struct("<H")
_VALUE = struct.Struct("<I")
_CRC = struct.Struct("<I")
RECORD_OVERHEAD = _KEY.size + _COUNT.size + _CRC.size
ENTRY_OVERHEAD = _NAME.size + _VALUE.size


class Entry(NamedTuple):
    name: bytes
    value: Optional[bytes]


class Record(NamedTuple):
    key: bytes
    entries: Tuple[Entry, ...]

    def value(self, name: bytes) -> Optional[bytes]:
        for entry in self.entries:
            if entry.name == name:
                return entry.value
        return None


class FormatError(ValueError):
    """The bytes are not a valid backup; `position` says where (block number, record index)."""

    def __init__(self, message: str, block: Optional[int] = None, record: Optional[int] = None):
        super().__init__(message)
        self.block = block
        self.record = record


def encode_record(key: bytes, entries: Sequence[Tuple[bytes, Optional[bytes]]]) -> bytes:
    parts = [_KEY.pack(len(key)), key, _COUNT.pack(len(entries))]
    for name, value in entries:
        parts.append(_NAME.pack(len(name)))
        parts.append(name)
        if value is None:
            parts.append(_VALUE.pack(ABSENT))
        else:
            parts.append(_VALUE.pack(len(value)))
            parts.append(value)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def record_size(key_length: int, entries: Sequence[Tuple[int, Optional[int]]]) -> int:
    """Exact encoded size of a record: `entries` holds (name length, value length or None)."""
    return RECORD_OVERHEAD + key_length + sum(ENTRY_OVERHEAD + name + (value or 0) for name, value in entries)


def encode_block(block_no: int, records: Sequence[bytes]) -> bytes:
    payload = b"".join(records)
    return (
        _BLOCK_HEAD.pack(BLOCK_MAGIC, block_no, len(records), len(payload), hashlib.sha256(payload).digest()) + payload
    )


def decode_records(
    payload: bytes, count: int, block_no: int = 0, check_crc: bool = True
) -> Iterator[Tuple[int, Optional[Record]]]:
    """Yield (index, record) for `count` records; a record whose CRC fails is yielded as None.
    `check_crc=False` skips the CRCs where the block's SHA-256 was just verified (it covers them).

    Raises FormatError when the framing itself is broken (the rest cannot be located)."""
    # The hot loop of every phase that reads a backup: bytes slices and tuple.__new__ rather than
    # memoryview copies and NamedTuple constructors (about 3x faster).
    unpack_u32, unpack_u16 = _KEY.unpack_from, _COUNT.unpack_from
    new, crc32 = tuple.__new__, zlib.crc32
    size = len(payload)
    pos = 0
    for index in range(count):
        start = pos
        try:
            (key_length,) = unpack_u32(payload, pos)
            key_end = pos + 4 + key_length
            key = payload[pos + 4 : key_end]
            (entry_count,) = unpack_u16(payload, key_end)
            pos = key_end + 2
            entries = []
            for _entry in range(entry_count):
                (name_length,) = unpack_u16(payload, pos)
                pos += 2
                name = payload[pos : pos + name_length]
                pos += name_length
                (value_length,) = unpack_u32(payload, pos)
                pos += 4
                value = None
                if value_length != ABSENT:
                    value = payload[pos : pos + value_length]
                    pos += value_length
                entries.append(new(Entry, (name, value)))
            (crc,) = unpack_u32(payload, pos)
        except struct.error:
            raise FormatError(f"record {index} of block {block_no} is cut short", block_no, index) from None
        if pos > size:
            raise FormatError(f"record {index} of block {block_no} is cut short", block_no, index)
        intact = not check_crc or crc32(payload[start:pos]) == crc
        pos += _CRC.size
        yield index, new(Record, (key, tuple(entries))) if intact else None
    if pos != size:
        raise FormatError(f"block {block_no} has {size - pos} bytes after its last record", block_no)


class Block(NamedTuple):
    block_no: int
    offset: int
    record_count: int
    payload: bytes
    digest_ok: bool


def write_file_magic(stream: BinaryIO) -> None:
    stream.write(FILE_MAGIC)


def _read_block(stream: BinaryIO, offset: int) -> Optional[Block]:
    """The block at `offset` (the stream is positioned there), or None at the end of the file."""
    head = stream.read(BLOCK_HEADER_SIZE)
    if not head:
        return None
    if len(head) < BLOCK_HEADER_SIZE:
        raise FormatError(f"block header at byte {offset} is cut short (truncated file)")
    magic, block_no, count, length, digest = _BLOCK_HEAD.unpack(head)
    if magic != BLOCK_MAGIC:
        raise FormatError(f"no block at byte {offset} (damaged file)")
    payload = stream.read(length)
    if len(payload) < length:
        raise FormatError(f"block {block_no} is cut short: {len(payload)} of {length} bytes (truncated file)", block_no)
    return Block(block_no, offset, count, payload, hashlib.sha256(payload).digest() == digest)


def iter_blocks(stream: BinaryIO, limit_bytes: Optional[int] = None) -> Iterator[Block]:
    """Read blocks from a data file (after checking its magic). Stops at `limit_bytes` when given.

    Raises FormatError for a wrong magic or a block cut short (a truncated file)."""
    magic = stream.read(len(FILE_MAGIC))
    if magic != FILE_MAGIC:
        raise FormatError("not an indexops backup data file (bad magic)")
    offset = len(FILE_MAGIC)
    while limit_bytes is None or offset < limit_bytes:
        block = _read_block(stream, offset)
        if block is None:
            return
        yield block
        offset += BLOCK_HEADER_SIZE + len(block.payload)


def read_block_at(stream: BinaryIO, offset: int) -> Block:
    """The block starting at `offset` (as recorded by block_offsets)."""
    stream.seek(offset)
    block = _read_block(stream, offset)
    if block is None:
        raise FormatError(f"no block at byte {offset} (truncated file)")
    return block


def block_offsets(stream: BinaryIO, limit_bytes: int) -> List[int]:
    """Offsets of every block up to `limit_bytes`, reading only the block headers."""
    offsets = []
    offset = len(FILE_MAGIC)
    while offset < limit_bytes:
        stream.seek(offset)
        head = stream.read(BLOCK_HEADER_SIZE)
        if len(head) < BLOCK_HEADER_SIZE:
            raise FormatError(f"block header at byte {offset} is cut short (truncated file)")
        length = _BLOCK_HEAD.unpack(head)[3]
        offsets.append(offset)
        offset += BLOCK_HEADER_SIZE + length
    return offsets


def block_digest(block_bytes: bytes) -> bytes:
    """The SHA-256 a block header carries (bytes 20..52 of the encoded block)."""
    return block_bytes[BLOCK_HEADER_SIZE - 32 : BLOCK_HEADER_SIZE]


def chain(previous: str, digest: bytes) -> str:
    """Running digest over block digests in order: the header's fingerprint of the whole file."""
    return hashlib.sha256(bytes.fromhex(previous) + digest).hexdigest()


EMPTY_CHAIN = hashlib.sha256(b"").hexdigest()


def records_of(blocks: List[Block]) -> Iterator[Record]:
    for block in blocks:
        for _index, record in decode_records(block.payload, block.record_count, block.block_no):
            if record is not None:
                yield record
