# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phases `move_fields`, `rename_keys` and `quantize`: rewrite documents, one backup block at a time.

Each works from the backup's records (never from a list of keys in memory), through the scripts of
scripts.py, so a block applied twice changes nothing the second time. Counters: written, already
(done by an earlier run), gone (key deleted meanwhile: left deleted), conflict (changed by someone
else meanwhile: left as they made it).
"""
from __future__ import annotations

import hashlib
from typing import Dict, List

from ..block_runner import run_blocks
from ..codec import QuantParams, convert_batch
from ..keyspace import key_to_text, renamed_key
from ..scripts import Scripts
from .context import Context

OUTCOME = {2: "written", 1: "already", 0: "gone", -1: "conflict"}


def _tally(results: List[int], keys: List[bytes]) -> Dict[str, object]:
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
        return _tally(pipe.execute(), keys)

    return _run(ctx, "move_fields", apply)


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
        return _tally(results, keys)

    return _run(ctx, "rename_keys", apply)


def quantize(ctx: Context) -> Dict[str, object]:
    rewrites = ctx.plan.rewrites
    params = {field: QuantParams.from_dict(p) for field, p in ctx.store.header.quant_params.items()}

    def apply(client, _block_no, records):
        per_key: List[List[bytes]] = [[] for _r in records]
        for quant in rewrites.quantize:
            name = quant.source_location.encode()
            originals = [r.value(name) for r in records]
            present = [i for i, value in enumerate(originals) if value is not None]
            converted = convert_batch([originals[i] for i in present], quant.source, quant.target, quant.dims,
                                      params.get(quant.field))
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
        return _tally(pipe.execute() if keys else [], keys)

    return _run(ctx, "quantize", apply)


def _run(ctx: Context, phase: str, apply) -> Dict[str, object]:
    def progress(done: int, total: int) -> None:
        ctx.progress(phase, blocks_done=done, blocks=total)

    totals = run_blocks(ctx.store, phase, apply, client=ctx.client, connect=ctx.connect, workers=ctx.options.workers,
                        lock=ctx.lock, on_progress=progress)
    ctx.progress(phase, force=True, blocks_done=ctx.store.header.data_blocks, blocks=ctx.store.header.data_blocks)
    return totals
