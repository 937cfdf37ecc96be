# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An online rewrite's writes per block of the backup (online_rewrite.py's expand, convert and contract, and
the catch-up's re-expansion, catch_up.py): each document's scripts.ONLINE_STEP items from its backup record and
its staged conversions, compare-and-set against the record's originals, sent paced (paced.py). A record that a
catch-up block supersedes (backup/newest.py) is skipped: the newest record of a document is the one written.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from ...backup.format import block_offsets
from ...backup.newest import Newest
from ...backup.store import STAGED
from ...redis.keyspace import renamed_key
from ...redis.scripts import Scripts
from .context import Context
from .paced import ROUND_SECONDS, Pacer, run_paced
from .rewrite import read_staged, tally

EXPAND, CONVERT, CONTRACT = "expand", "convert", "contract"


class OnlineSteps:
    """Per block: each document's ONLINE_STEP items for one phase, from its backup record and its staged
    conversions. Per process: its own handle on staged.bin."""

    def __init__(self, ctx: Context, phase: str, newest: Optional[Newest] = None, again: bool = False):
        # again: the catch-up's expand, whose copies (a prefix change) replace the stale ones (ONLINE_RECOPY)
        self.ctx, self.phase, self.again = ctx, phase, again
        self.newest = newest if newest is not None else Newest({})
        self.rewrites = ctx.plan.rewrites
        self.layout = ctx.plan.online_layout
        self._stream: Optional[tuple] = None
        # The documents' writes re-index them while readers query: rounds short enough to answer them between.
        # Workers' rounds interleave, so each gets its share of the round's time.
        self.pacer = Pacer(ROUND_SECONDS / max(ctx.options.workers, 1))

    def _staged(self, block_no: int, records: list) -> list:
        if not self.rewrites.quantize:
            return [None] * len(records)
        if self._stream is None or self._stream[0] != os.getpid():
            store = self.ctx.store
            stream = open(store.path(STAGED), "rb")  # pylint: disable=consider-using-with  # kept for the phase
            self._stream = (os.getpid(), stream, block_offsets(stream, store.header.staged_bytes))
        return read_staged(self.ctx.store, self._stream[1], self._stream[2], block_no, records)

    def close(self) -> None:
        if self._stream is not None and self._stream[0] == os.getpid():
            self._stream[1].close()
            self._stream = None

    def items(self, record, staged) -> List[bytes]:
        """The document's items (see scripts.ONLINE_STEP); none where it held nothing to rewrite."""
        found: List[bytes] = []
        for side in self.layout.side_fields:
            location, name = side.location.encode(), side.side.encode()
            original = record.value(location)
            converted = staged.value(location) if staged is not None else None
            if original is None or converted is None:
                continue
            if self.phase == EXPAND:
                found += [b"W", location, original, name, converted]
            elif self.phase == CONVERT:
                found += [b"W", location, original, location, converted]
            else:
                found += [b"D", name, converted, location, converted]
        for move in self.rewrites.moves:
            old, new = move.old_location.encode(), move.new_location.encode()
            original = record.value(old)
            if original is None:
                continue
            value = original
            for quant in self.rewrites.quantize:
                if quant.source_location == move.old_location and staged is not None:
                    value = staged.value(quant.location.encode())
            if value is None:
                continue
            if self.phase == EXPAND:
                found += [b"W", old, original, new, value]
            elif self.phase == CONTRACT:
                found += [b"M", old, original, new, value]
        return found

    def copy_args(self, record, staged) -> List[bytes]:
        """A prefix change: the old key's backed-up values (its CAS), then what the copy gets (ONLINE_COPY)."""
        storage = b"json" if self.rewrites.storage == "json" else b"hash"
        checks = [part for name, value in record.entries for part in (name, value if value is not None else b"")]
        found = [storage, b"%d" % len(record.entries), *checks]
        if self.phase != EXPAND:
            return found
        moved = set()
        for move in self.rewrites.moves:
            old, new = move.old_location.encode(), move.new_location.encode()
            value = record.value(old)
            for quant in self.rewrites.quantize:
                if quant.source_location == move.old_location and staged is not None:
                    value = staged.value(quant.location.encode())
            if value is not None:
                found += [b"M", old, new, value]
                moved.add(move.new_location)
        for quant in self.rewrites.quantize:
            value = staged.value(quant.location.encode()) if staged is not None else None
            if quant.location not in moved and value is not None:
                found += [b"W", quant.location.encode(), value, b""]
        return found

    def _copies(self, client, records: list, staged: list) -> Dict[str, object]:
        scripts = Scripts(client)
        if self.phase != EXPAND:
            script = scripts.online_drop_old
        else:
            script = scripts.online_recopy if self.again else scripts.online_copy
        prefix = self.rewrites.prefix
        keys = [record.key for record in records]
        calls = [
            (script, [record.key, renamed_key(record.key, prefix.old, prefix.new)], self.copy_args(record, conversion))
            for record, conversion in zip(records, staged)
        ]
        return tally(run_paced(client, calls, self.pacer), keys)

    def __call__(self, client, block_no: int, records: list) -> Dict[str, object]:
        staged = self._staged(block_no, records)
        kept = [i for i, record in enumerate(records) if not self.newest.superseded(block_no, record.key)]
        counts = self._write(client, [records[i] for i in kept], [staged[i] for i in kept])
        if len(kept) < len(records):
            counts["superseded"] = len(records) - len(kept)
        return counts

    def _write(self, client, records: list, staged: list) -> Dict[str, object]:
        if self.layout.copy_keys:
            return self._copies(client, records, staged)
        scripts = Scripts(client)
        script = scripts.online_json_step if self.rewrites.storage == "json" else scripts.online_step
        calls = []
        for record, conversion in zip(records, staged):
            args = self.items(record, conversion)
            if args:
                calls.append((script, [record.key], args))
        return tally(run_paced(client, calls, self.pacer), [keys[0] for _script, keys, _args in calls])
