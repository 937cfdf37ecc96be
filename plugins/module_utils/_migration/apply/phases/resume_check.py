# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Before a migration continues after its drop: the server must still hold what the backup says.

A server restored from an older snapshot (or an index recreated by hand) looks to the ledgers like
a half-done migration, and continuing would skip documents that hold their original bytes again
and create the new index over them. So, before resuming: the dropped source index must not be back,
a created target must still be there, and a sample of the blocks each rewrite phase recorded is
read back - a document found exactly as the backup has it, or as it was between two phases, where
the ledgers say it was changed further, means the keyspace went back in time. The blocks read are
spread over the run and include the block each ledger recorded last (the most recent writes, the
first an older snapshot loses), each read at its first, last and some records between. Documents
changed by someone else (in no state this migration makes) are not evidence either way and are
skipped.

An online rewrite of hashes is checked the same way against its own phases (expand, convert, contract):
a failover run without WAIT (replicas_wait_count 0) lands on a replica that lacks blocks the ledgers
recorded, and skipping them would leave side fields behind, or an interim index without those documents.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set

from ...backup.format import block_offsets, decode_records, read_block_at
from ...backup.newest import Newest
from ...backup.store import DATA
from ...core.errors import PreflightFailed
from ...planning.modes import ONLINE
from ...redis.keyspace import key_to_text, renamed_key
from ...redis.snapshot import index_exists, live_schema
from ...vectors.codec import convert_batch
from ...vectors.quantization import QuantParams
from .context import Context

REWRITE_PHASES = ("move_fields", "rename_keys", "quantize")
# An online rewrite's block phases (online_rewrite.py), checked the same way where their states are per field
# of one hash (a side field, a renamed field); a prefix change online copies whole keys, JSON is not read here.
ONLINE_PHASES = ("expand", "convert", "contract")
SAMPLE_BLOCKS = 4
SAMPLE_RECORDS = 8
_WAY_OUT = (
    "roll it back with redis_index_rollback (it restores the originals where they are not already back and "
    "recreates the source index), then apply the plan again"
)


def _refuse(ctx: Context, what: str) -> None:
    raise PreflightFailed(
        f"cannot resume: {what} - was the server restored from an older snapshot? Nothing was "
        f"written; backup {ctx.store.directory}",
        hint=_WAY_OUT,
    )


def _check_indexes(ctx: Context) -> None:
    store, client, source, target = ctx.store, ctx.client, ctx.source, ctx.target
    if store.phase("create").done:
        if not index_exists(client, target.name):
            _refuse(ctx, f"the new index {target.name!r} was created, and it is gone")
        return
    live = live_schema(client, source.name) if store.phase("drop").done else None
    # Killed right after FT.CREATE of a target of the same name: that index is ours, not the source.
    if live is not None and live.matches(source) and not live.matches(target):
        _refuse(ctx, f"index {source.name!r} was dropped by this migration, and it is back")


def _online(ctx: Context) -> bool:
    return ctx.plan.mode == ONLINE


def _applied(ctx: Context) -> Dict[str, Optional[Set[int]]]:
    """Per rewrite phase this plan needs: None when done for every block, else the ledgered blocks."""
    rewrites = ctx.plan.rewrites
    if _online(ctx):
        sides = bool(ctx.plan.online_layout.side_fields)
        needed = {"expand": True, "convert": sides, "contract": True}
    else:
        needed = {
            "move_fields": bool(rewrites.moves),
            "rename_keys": rewrites.prefix is not None,
            "quantize": bool(rewrites.quantize),
        }
    found: Dict[str, Optional[Set[int]]] = {}
    for phase in ONLINE_PHASES if _online(ctx) else REWRITE_PHASES:
        if needed[phase] and ctx.store.phase(phase).started_at:
            found[phase] = None if ctx.store.phase(phase).done else ctx.store.done_blocks(phase)
    first = ctx.store.header.catch_up_from
    if found.get("expand", set()) is None and first is not None:
        # The catch-up's blocks came after expand, and are expanded once its own ledger holds them.
        found["expand"] = set(range(first)) | ctx.store.done_blocks("catch_up")
    return found


def _expected(ctx: Context, record, phases: List[str], params: Dict[str, QuantParams]):
    """(key, {location: value}) the record's document holds after `phases`, by this migration alone."""
    rewrites = ctx.plan.rewrites
    state = {name.decode(): value for name, value in record.entries}
    if _online(ctx):
        return record.key, _online_state(ctx, record, state, phases, params)
    if "move_fields" in phases:
        for move in rewrites.moves:
            if state.get(move.old_location) is not None:
                state[move.new_location], state[move.old_location] = state[move.old_location], None
    if "quantize" in phases:
        for quant in rewrites.quantize:
            original = record.value(quant.source_location.encode())
            if original is not None:
                state[quant.location] = convert_batch(
                    [original], quant.source, quant.target, quant.dims, params.get(quant.field)
                )[0]
    key = record.key
    if "rename_keys" in phases and rewrites.prefix:
        key = renamed_key(key, rewrites.prefix.old, rewrites.prefix.new)
    return key, state


def _online_state(ctx: Context, record, state: dict, phases: List[str], params: Dict[str, QuantParams]) -> dict:
    """What online_rewrite.py's steps leave: expand writes each side field (the converted vector) and each
    renamed field's new name beside the old, convert puts the converted vector in the original location,
    contract removes the side fields and the old names."""
    converted = {}
    for quant in ctx.plan.rewrites.quantize:
        original = record.value(quant.source_location.encode())
        if original is not None:
            converted[quant.location] = convert_batch(
                [original], quant.source, quant.target, quant.dims, params.get(quant.field)
            )[0]
    renamed = [
        (m.old_location, m.new_location) for m in ctx.plan.rewrites.moves if state.get(m.old_location) is not None
    ]
    for side in ctx.plan.online_layout.side_fields:
        state.setdefault(side.side, None)
        value = converted.get(side.location) if state.get(side.location) is not None else None
        if value is None:
            continue
        if "expand" in phases:
            state[side.side] = value
        if "convert" in phases:
            state[side.location] = value
        if "contract" in phases:
            state[side.side] = None
    for old, new in renamed:
        if "expand" in phases:
            state[new] = converted.get(new, state[old])
        if "contract" in phases:
            state[old] = None
    return state


def _current(ctx: Context, key: bytes, locations: List[str]) -> Dict[str, Optional[bytes]]:
    client = ctx.client
    if ctx.plan.rewrites.storage == "json":
        values = [client.execute_command("JSON.GET", key, location) for location in locations]
        return {loc: None if v in (None, b"[]") else v for loc, v in zip(locations, values)}
    return dict(zip(locations, client.hmget(key, locations)))


def _spread(items: list, count: int) -> list:
    """`count` of `items`: the first, the last and evenly between."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1)
    return [items[i] for i in sorted({round(i * step) for i in range(count)})]


def _blocks_to_check(ctx: Context, applied: Dict[str, Optional[Set[int]]]) -> List[int]:
    """Blocks spread over the whole run, and the block each ledger recorded last: a snapshot older than
    the run loses the most recent writes first."""
    ledgered = set()
    for blocks in applied.values():
        ledgered |= set(range(ctx.store.header.data_blocks)) if blocks is None else blocks
    chosen = set(_spread(sorted(ledgered), SAMPLE_BLOCKS))
    for phase in applied:
        chosen |= set(ctx.store.latest_blocks(phase))
    return sorted(chosen & ledgered)


def _conflicts(ctx: Context, phases: List[str], block_no: int) -> Set[str]:
    """Keys the block's rewrites left to what someone else wrote: their state is not this migration's."""
    found: Set[str] = set()
    for phase in phases:
        found |= {str(k) for k in ctx.store.block_outcomes(phase).get(block_no, {}).get("conflict_keys", [])}
    return found


def _went_back(ctx: Context, record, phases: List[str], params: Dict[str, QuantParams]) -> Optional[str]:
    """The phases whose effect on this document is gone (it holds what it held before them), or None when
    it holds what the ledgers say, or what no state of this migration explains (someone else's write)."""
    states = [_expected(ctx, record, phases[:count], params) for count in range(len(phases) + 1)]
    final_key, final_state = states[-1]
    locations = sorted({location for _key, state in states for location in state})
    seen: Dict[bytes, Optional[Dict[str, Optional[bytes]]]] = {}

    def now(key: bytes) -> Optional[Dict[str, Optional[bytes]]]:
        if key not in seen:
            seen[key] = _current(ctx, key, locations) if ctx.client.exists(key) else None
        return seen[key]

    def same(key: bytes, state: Dict[str, Optional[bytes]]) -> bool:
        return now(key) == {location: state.get(location) for location in locations}

    if same(final_key, final_state):
        return None
    for count, (key, state) in enumerate(states[:-1]):
        if (key, state) != (final_key, final_state) and same(key, state):
            return "its original bytes" if count == 0 else f"its bytes from before phase(s) {', '.join(phases[count:])}"
    return None


def _check_documents(ctx: Context) -> None:
    applied = _applied(ctx)
    if not applied or not ctx.store.has_data():
        return
    params = {f: QuantParams.from_dict(p) for f, p in ctx.store.header.quant_params.items()}
    newest = Newest.of(ctx.store)
    with open(ctx.store.path(DATA), "rb") as stream:
        offsets = block_offsets(stream, ctx.store.header.data_bytes)
        for block_no in _blocks_to_check(ctx, applied):
            block = read_block_at(stream, offsets[block_no])
            phases = [p for p, blocks in applied.items() if blocks is None or block_no in blocks]
            conflicts = _conflicts(ctx, phases, block_no)
            records = [
                r
                for _i, r in decode_records(block.payload, block.record_count, block_no)
                if r is not None and not newest.superseded(block_no, r.key)
            ]
            # The last record too: a snapshot taken while a block was written holds its first part only.
            for record in _spread(records, SAMPLE_RECORDS):
                if str(key_to_text(record.key)) in conflicts:
                    continue
                held = _went_back(ctx, record, phases, params)
                if held:
                    _refuse(
                        ctx,
                        f"{key_to_text(record.key)!r} holds {held} although the ledgers record "
                        f"phase(s) {', '.join(phases)} as applied to it",
                    )


def check(ctx: Context) -> None:
    """Refuse to resume when the server does not hold what this migration's backup says it did."""
    if _online(ctx):
        layout = ctx.plan.online_layout
        if layout is not None and not layout.copy_keys and ctx.plan.rewrites.storage != "json":
            _check_documents(ctx)
        return
    if not ctx.store.phase("drop").done:
        return  # nothing was changed yet: the preflight checks of a fresh start apply
    _check_indexes(ctx)
    _check_documents(ctx)
