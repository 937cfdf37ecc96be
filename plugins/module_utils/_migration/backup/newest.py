# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which record of a document is its newest: an online rewrite's catch-up appends blocks to data.bin (from
header.catch_up_from on) with the documents the application changed or added since the backup read them, as
they were then. A later record of a key supersedes every earlier one: each phase that works from the backup
(convert, contract, a rollback, a resume's checks) takes only the newest, and a superseded record is neither
written nor counted as a conflict.
"""

from __future__ import annotations

from typing import Dict

from .format import block_offsets, decode_records, read_block_at
from .store import DATA, BackupStore


class Newest:
    """key -> the block of its newest record, for the keys the catch-up blocks hold (few: the changed ones)."""

    def __init__(self, blocks: Dict[bytes, int]):
        self.blocks = blocks

    @classmethod
    def of(cls, store: BackupStore) -> "Newest":
        first = store.header.catch_up_from
        found: Dict[bytes, int] = {}
        if first is None or first >= store.header.data_blocks:
            return cls(found)
        with open(store.path(DATA), "rb") as stream:
            offsets = block_offsets(stream, store.header.data_bytes)
            for block_no in range(first, store.header.data_blocks):
                block = read_block_at(stream, offsets[block_no])
                for _i, record in decode_records(block.payload, block.record_count, block_no):
                    if record is not None:
                        found[record.key] = block_no
        return cls(found)

    def superseded(self, block_no: int, key: bytes) -> bool:
        """Whether the record of `key` in block `block_no` has a newer one."""
        return self.blocks.get(key, block_no) > block_no

    def __len__(self) -> int:
        return len(self.blocks)
