# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phases `move_fields`, `rename_keys` and `quantize`: rewrite documents, one backup block at a time.

Each works from the backup's records (never from a list of keys in memory), through the scripts of
scripts.py, so a block applied twice changes nothing the second time. Counters: written, already
(done by an earlier run), gone (key deleted meanwhile: left deleted), conflict (changed by someone
else meanwhile: left as they made it).
"""

from __future__ import annotations

import hashlib
import os
from typing import Dict, List, Optional

from ...backup.blocks import run_blocks
from ...backup.format import block_offsets, decode_records, read_block_at
from ...backup.store import STAGED
from ...core.errors import BackupInvalid
from ...redis.keyspace import key_to_text, renamed_key
from ...redis.scripts import BATCH_OUTCOME, QUANTIZE_BATCH, Scripts, flushed
from ...redis.wire import Wire, pack
from ...vectors.codec import convert_batch
from ...vectors.quantization import QuantParams
from .context import Context

OUTCOME = {2: "written", 1: "already", 0: "gone", -1: "conflict"}


def tally(results: List[int], keys: List[bytes]) -> Dict[str, object]:
    counts: Dict[str, object] = {name: 0 for name in OUTCOME.values()}
    listed: Dict[str, List] = {"conflict": [], "gone": []}
    for key, result in zip(keys, results):
        name = OUTCOME.get(int(result), "conflict")
        counts[name] += 1
        if name in listed:
            listed[name].append(key_to_text(key))
    counts["conflict_keys"], counts["gone_keys"] = listed["conflict"], listed["gone"]
    return counts


def _final_key(ctx: Context, key: bytes) -> bytes:
    prefix = ctx.plan.rewrites.prefix
    return renamed_key(key, prefix.old, prefix.new) if prefix else key


def move_fields(ctx: Context) -> Dict[str, object]:
    moves = ctx.plan.rewrites.moves
    json_storage = ctx.plan.rewrites.storage == "json"
    args = [part for move in moves for part in (move.old_location, move.new_location)]

    def apply(client, _block_no, records):
        scripts = Scripts(client)
        script = scripts.json_move if json_storage else scripts.hash_move
        pipe = client.pipeline(transaction=False)
        keys = [r.key for r in records]
        for key in keys:
            script(keys=[key], args=args, client=pipe)
        return tally(pipe.execute(), keys)

    return run_block_phase(ctx, "move_fields", apply)


def _dump_restore(client, old: bytes, new: bytes) -> int:
    """Rename across hash slots (Redis Cluster): DUMP, RESTORE with the same TTL, DEL."""
    pipe = client.pipeline(transaction=False)
    pipe.exists(old)
    pipe.exists(new)
    pipe.dump(old)
    pipe.pttl(old)
    old_exists, new_exists, payload, ttl = pipe.execute()
    if not old_exists:
        return 1 if new_exists else 0
    if new_exists and client.dump(new) != payload:
        return -1
    if not new_exists:
        client.restore(new, max(int(ttl), 0), payload)
    client.delete(old)
    return 2


def rename_keys(ctx: Context) -> Dict[str, object]:
    prefix = ctx.plan.rewrites.prefix
    method = ctx.options.key_rename_method
    if method == "auto":
        method = "dump_restore" if ctx.plan.server.cluster_enabled else "rename"

    def apply(client, _block_no, records):
        keys = [r.key for r in records]
        if method == "dump_restore":
            results = [_dump_restore(client, key, renamed_key(key, prefix.old, prefix.new)) for key in keys]
        else:
            scripts = Scripts(client)
            pipe = client.pipeline(transaction=False)
            for key in keys:
                scripts.key_rename(keys=[key, renamed_key(key, prefix.old, prefix.new)], client=pipe)
            results = pipe.execute()
        return tally(results, keys)

    return run_block_phase(ctx, "rename_keys", apply)


def read_staged(store, stream, offsets, block_no: int, records: list) -> list:
    """The staged (converted) records of data block `block_no`, checked to match its `records` key by key."""
    block = read_block_at(stream, offsets[block_no])
    staged = [r for _i, r in decode_records(block.payload, block.record_count, block_no, check_crc=False)]
    if (
        not block.digest_ok
        or block.block_no != block_no
        or len(staged) != len(records)
        or any(s is None or s.key != r.key for s, r in zip(staged, records))
    ):
        raise BackupInvalid(
            f"block {block_no} of {store.path(STAGED)} does not match the backup's block",
            hint="the staged conversions were changed or damaged; restore the backup directory from a copy, or roll "
            "back",
        )
    return staged


class _StagedQuantize:
    """The quantize phase's work per block: the converted vectors staged before the drop, written in one
    script call per block (QUANTIZE_BATCH: compare-and-set per document, against the backup's
    original), with the next block sent before this one's outcome is read. Per process (workers fork):
    its own connection and its own handle on staged.bin."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.rewrites = ctx.plan.rewrites
        self.cluster = ctx.plan.server.cluster_enabled
        self.originals = [q.source_location.encode() for q in self.rewrites.quantize]
        self.converted = [q.location.encode() for q in self.rewrites.quantize]
        self.head = [b"%d" % len(self.converted), *self.converted]
        self._process: Optional[tuple] = None

    def _open(self, client):
        """(wire, script sha, staged.bin stream, block offsets) of this process, made on first use."""
        if self._process is None or self._process[0] != os.getpid():
            store = self.ctx.store
            stream = open(store.path(STAGED), "rb")  # pylint: disable=consider-using-with  # kept for the phase
            offsets = block_offsets(stream, store.header.staged_bytes)
            sha = client.script_load(QUANTIZE_BATCH)
            self._process = (os.getpid(), Wire(client), sha.encode() if isinstance(sha, str) else sha, stream, offsets)
        return self._process[1:]

    def close(self) -> None:
        if self._process is not None and self._process[0] == os.getpid():
            self._process[1].close()
            self._process[3].close()
            self._process = None

    def _staged(self, stream, offsets, block_no: int, records: list) -> list:
        return read_staged(self.ctx.store, stream, offsets, block_no, records)

    def _again(self, client, keys: list, argv: list):
        """A call the server refused because its script cache was emptied meanwhile (SCRIPT FLUSH): sent
        again on another connection of the pool, which loads the script (the wire's replies stay in step)."""
        return client.register_script(QUANTIZE_BATCH)(
            keys=keys, args=[*self.head, *(a for pairs in argv for a in pairs)], client=client
        )

    def __call__(self, client, block_no: int, records: list):
        wire, sha, stream, offsets = self._open(client)
        staged = self._staged(stream, offsets, block_no, records)
        keys, argv = [], []
        for record, conversion in zip(records, staged):
            pairs = []
            for original, converted in zip(self.originals, self.converted):
                new = conversion.value(converted)
                pairs += [record.value(original) or b"", new] if new is not None else [b"", b""]
            keys.append(_final_key(self.ctx, record.key))
            argv.append(pairs)
        if self.cluster:  # a script's keys must share a slot: one call per document
            wire.send(
                b"".join(pack(b"EVALSHA", sha, b"1", key, *self.head, *pairs) for key, pairs in zip(keys, argv)),
                len(keys),
            )

            def outcome_per_key():
                replies = wire.read(len(keys))
                replies = [
                    self._again(client, [key], [pairs]) if flushed(reply) else reply
                    for key, pairs, reply in zip(keys, argv, replies)
                ]
                return tally([_batch_code(reply) for reply in replies], keys)

            return outcome_per_key
        wire.send(pack(b"EVALSHA", sha, b"%d" % len(keys), *keys, *self.head, *(a for pairs in argv for a in pairs)))

        def outcome():
            reply = wire.read()[0]
            if flushed(reply):
                reply = self._again(client, keys, argv)
            if isinstance(reply, Exception):
                raise reply
            return tally([BATCH_OUTCOME.get(code, -1) for code in reply], keys)

        return outcome


def _batch_code(reply) -> int:
    if isinstance(reply, Exception):
        raise reply
    return BATCH_OUTCOME.get(reply[0], -1) if reply else -1


def quantize(ctx: Context) -> Dict[str, object]:
    if ctx.store.has_staged():
        apply = _StagedQuantize(ctx)
        try:
            return run_block_phase(ctx, "quantize", apply)
        finally:
            apply.close()
    return run_block_phase(ctx, "quantize", _convert_and_quantize(ctx))


def _convert_and_quantize(ctx: Context):
    """A backup made before staging existed: convert each block after the drop, as it was done then."""
    rewrites = ctx.plan.rewrites
    params = {field: QuantParams.from_dict(p) for field, p in ctx.store.header.quant_params.items()}

    def apply(client, _block_no, records):
        per_key: List[List[bytes]] = [[] for _r in records]
        for quant in rewrites.quantize:
            name = quant.source_location.encode()
            originals = [r.value(name) for r in records]
            present = [i for i, value in enumerate(originals) if value is not None]
            converted = convert_batch(
                [originals[i] for i in present], quant.source, quant.target, quant.dims, params.get(quant.field)
            )
            for i, new in zip(present, converted):
                per_key[i] += [quant.location.encode(), hashlib.sha1(originals[i]).hexdigest().encode(), new]
        scripts = Scripts(client)
        pipe = client.pipeline(transaction=False)
        keys = []
        for record, args in zip(records, per_key):
            if args:
                key = _final_key(ctx, record.key)
                keys.append(key)
                scripts.quantize(keys=[key], args=args, client=pipe)
        return tally(pipe.execute() if keys else [], keys)

    return apply


def run_block_phase(ctx: Context, phase: str, apply, first: int = 0) -> Dict[str, object]:
    """`apply` to every block from `first` on that the phase's ledgers do not hold yet."""

    def progress(done: int, total: int) -> None:
        ctx.progress(phase, blocks_done=done, blocks=total)

    totals = run_blocks(
        ctx.store,
        phase,
        apply,
        client=ctx.client,
        connect=ctx.connect,
        workers=ctx.options.workers,
        lock=ctx.lock,
        on_progress=progress,
        confirm=ctx.durability.confirmer(ctx.lock) if ctx.durability else None,
        first=first,
    )
    blocks = ctx.store.header.data_blocks - first
    ctx.progress(phase, force=True, blocks_done=blocks, blocks=blocks)
    return totals
