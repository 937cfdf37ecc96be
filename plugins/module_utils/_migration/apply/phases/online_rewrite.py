# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The phases of an online migration that rewrites documents (schema/online_layout.py): expand, the
build and swap of online.py, then contract - without a read gap.

    backup      every byte that changes, and the converted vectors staged (phases/backup.py)
    expand      the new bytes beside the old: a renamed field's new name, or a side field, := its value
                (converted where the datatype changes), where the old location still holds the backup's
                original; the source never reads them
    create, wait, validate, swap
                the first index is built on them beside the source, validated, swapped in (online.py)
    convert     (a datatype change in place) the original location := the converted bytes: nothing reads
                it now, the interim index serves from the side field
    rebuild     (the same) the target on the original locations, built beside the interim index and
                validated against it (create, wait, validate in one phase: each step is idempotent)
    swap_final  (the same) the target swapped in for the interim index, the same guarded way
    contract    the old bytes removed: a renamed field's old name (its new name takes its place in the
                hash, as drop_recreate leaves it), a side field

Each block phase works from the backup's records through scripts.ONLINE_STEP (compare-and-set against the
backup's originals and what the migration wrote), one ledger per phase, so a SIGKILL anywhere converges on
re-run: a block applied twice changes nothing the second time. A document the application changed meanwhile
is a conflict, left as it wrote it and listed.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from ...backup.format import block_offsets
from ...backup.store import STAGED
from ...core.errors import MigrationFailed
from ...redis.keyspace import renamed_key
from ...redis.scripts import Scripts
from . import backup
from .context import Context
from .online import create_built, final_build, side_by_side_names, swap_built, validate_built, wait_built
from .paced import ROUND_SECONDS, Pacer, run_paced
from .rewrite import read_staged, run_block_phase, tally

EXPAND, CONVERT, CONTRACT = "expand", "convert", "contract"


class _Steps:
    """Per block: each document's ONLINE_STEP items for one phase, from its backup record and its staged
    conversions. Per process: its own handle on staged.bin."""

    def __init__(self, ctx: Context, phase: str):
        self.ctx, self.phase = ctx, phase
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
        script = scripts.online_copy if self.phase == EXPAND else scripts.online_drop_old
        prefix = self.rewrites.prefix
        keys = [record.key for record in records]
        calls = [
            (script, [record.key, renamed_key(record.key, prefix.old, prefix.new)], self.copy_args(record, conversion))
            for record, conversion in zip(records, staged)
        ]
        return tally(run_paced(client, calls, self.pacer), keys)

    def __call__(self, client, block_no: int, records: list) -> Dict[str, object]:
        staged = self._staged(block_no, records)
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


def _step(phase: str):
    def run(ctx: Context) -> None:
        if ctx.plan.rewrites.prefix is not None and ctx.plan.server.cluster_enabled:
            raise MigrationFailed(
                f"a prefix change online copies each document beside its old key, which on a cluster lives in another "
                f"slot ({phase}); nothing was changed in this phase",
                hint="plan again with mode drop_recreate",
            )
        steps = _Steps(ctx, phase)
        try:
            ctx.store.phase(phase).counters.update(run_block_phase(ctx, phase, steps))
        finally:
            steps.close()

    return run


run_expand = _step(EXPAND)
run_convert = _step(CONVERT)
run_contract = _step(CONTRACT)


def run_rebuild(ctx: Context) -> None:
    """The target on the converted original locations, beside the interim index: create, wait, validate."""
    build = final_build(ctx)
    create_built(ctx, build)
    wait_built(ctx, build)
    validate_built(ctx, build)


def run_swap_final(ctx: Context) -> None:
    swap_built(ctx, final_build(ctx), "swap_final", side_by_side_names(ctx))


def phases(layout, build_and_swap: list) -> list:
    """The phases in order, around online.py's (create, wait, validate, swap)."""
    found = [("backup", backup.run), ("expand", run_expand), *build_and_swap]
    if layout.side_fields:
        found += [("convert", run_convert), ("rebuild", run_rebuild), ("swap_final", run_swap_final)]
    return found + [("contract", run_contract)]
