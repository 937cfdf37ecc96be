# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phase `catch_up` of an online rewrite, right before the swap that moves readers off the source: the
documents the application wrote since the backup read them, expanded again from what they hold now.

    find      the documents whose old locations (the vector converted in place, a renamed field's old name)
              no longer hold what their newest backup record holds: scripts.CHANGED_SINCE compares the SHA1
              of each value on the server (nothing is read out), in calls paced like the other online writes
              (paced.py); and the documents the source index holds that the backup does not (added since)
    record    those documents as they are now, appended to the backup as catch-up blocks (data.bin, and
              their conversions to staged.bin), the header saved - before anything is written: a record
              supersedes the earlier one of its key (backup/newest.py), so convert, contract, a rollback
              and a resume all work from the application's last write
    write     the catch-up blocks expanded as expand does (online_steps.py: compare-and-set against the new
              record), one ledger for the phase, so a run killed anywhere writes them on re-run

and again while it finds some, at most ROUNDS times. What the application writes after the last round's
look (or to the documents the rounds ran out on, listed in a warning) is not caught up: the convert and
contract phases find such a document changed and leave it as the application wrote it (a conflict). The
write_quiesce role stays the strict answer.

A prefix change (copy_keys: each document copied whole under its new key, nothing of the old key written) runs
it before the validation that precedes the swap, since the new index holds only the copies. Find compares every
backed-up location, and the old key with its copy outside them (scripts.COPIES_CHANGED: any field the
application wrote, or no copy); write copies the recorded documents again (scripts.ONLINE_RECOPY, COPY ...
REPLACE with the copy's moves and conversions); and each look deletes the copy of a document the application
deleted under its old key (ONLINE_DROP_COPY, only where the old key is gone), which needs no record: the
rollback finds both keys gone and leaves the document deleted.
"""

from __future__ import annotations

import hashlib
from typing import Dict, List, Optional, Tuple

from ...backup.format import Entry, Record, decode_records, encode_record
from ...backup.newest import Newest
from ...backup.store import documents_of
from ...core import failpoints
from ...redis.keyspace import key_to_text, renamed_key
from ...redis.scripts import Scripts
from ...redis.wire import Wire, read_values
from ...vectors.quantization import QuantParams
from .backup import record_data, record_staged, source_documents, staged_records
from .context import Context
from .online_steps import EXPAND, OnlineSteps
from .paced import ROUND_SECONDS, Pacer, run_paced
from .rewrite import run_block_phase

CATCH_UP = "catch_up"
ROUNDS = 3  # rounds that write; one more look counts what is still changed after them
DETECT_DOCUMENTS = 64  # documents per CHANGED_SINCE call (one on a cluster: a script's keys share a slot)
LISTED = 100


def before_swap(layout, build_and_swap: list) -> list:
    """online.py's phases with the catch-up right before the swap (after a side_by_side stop: its finish; a prefix
    change: before the validation right before the swap)."""
    names = [name for name, _run in build_and_swap]
    at = names.index("swap")
    if layout.copy_keys and names[at - 1] == "validate":
        # The new index holds only the copies: its counts and KNN agree with the source's once they are caught up.
        at -= 1
    return [*build_and_swap[:at], (CATCH_UP, run), *build_and_swap[at:]]


class _Locations:
    """The backup entries of a record: which the application writes (compared), which the migration writes."""

    def __init__(self, ctx: Context):
        layout, rewrites = ctx.plan.online_layout, ctx.plan.rewrites
        self.entries = [location for location, _size, _absent in ctx.plan.backup_entries()]
        # A prefix change writes only the copies: every location of the old key is the application's.
        written = set() if layout.copy_keys else {move.new_location for move in rewrites.moves}
        written |= set(layout.side_locations)
        self.compared = [location for location in self.entries if location not in written]
        self.written = written


def _detect_calls(ctx: Context, places: _Locations, records: List[Record], per_call: int) -> list:
    storage = b"json" if ctx.plan.rewrites.storage == "json" else b"hash"
    head = [storage, b"%d" % len(places.compared), *(location.encode() for location in places.compared)]
    copies = ctx.plan.online_layout.copy_keys
    scripts = Scripts(ctx.client)
    script = scripts.copies_changed if copies else scripts.changed_since
    calls = []
    for at in range(0, len(records), per_call):
        part = records[at : at + per_call]
        keys = [key for record in part for key in ([record.key, _copy_of(ctx, record.key)] if copies else [record.key])]
        digests = [
            hashlib.sha1(value).hexdigest().encode() if value is not None else b""
            for record in part
            for value in (record.value(location.encode()) for location in places.compared)
        ]
        calls.append((script, keys, [*head, *digests]))
    return calls


def _copy_of(ctx: Context, key: bytes) -> bytes:
    prefix = ctx.plan.rewrites.prefix
    return renamed_key(key, prefix.old, prefix.new)


class _Found:
    """One look: the documents changed since their newest record (-> that record), those added since the backup,
    and those the application deleted (a prefix change: their copies go too)."""

    def __init__(self):
        self.changed: Dict[bytes, Record] = {}
        self.added: List[bytes] = []
        self.gone: List[bytes] = []


def _find(ctx: Context, places: _Locations, newest: Newest) -> _Found:
    store, client = ctx.store, ctx.client
    per_call = 1 if ctx.plan.server.cluster_enabled else DETECT_DOCUMENTS
    pacer = Pacer(ROUND_SECONDS)
    found = _Found()
    known = set()
    for block_no, records in store.iter_blocks():
        known.update(record.key for record in records)
        current = [record for record in records if not newest.superseded(block_no, record.key)]
        replies = run_paced(client, _detect_calls(ctx, places, current, per_call), pacer)
        flags = b"".join(reply if isinstance(reply, bytes) else str(reply).encode() for reply in replies)
        found.changed.update((record.key, record) for record, flag in zip(current, flags) if flag == ord("1"))
        found.gone += [record.key for record, flag in zip(current, flags) if flag == ord("g")]
        # A safe point to stop too: nothing of the look is written.
        ctx.progress(CATCH_UP, looked=len(known), documents=documents_of(store.header))
    found.added = [key for keys in source_documents(ctx) for key in keys if key not in known]
    return found


def _drop_copies(ctx: Context, gone: List[bytes]) -> int:
    """A prefix change: the copies of the documents the application deleted under their old keys (ONLINE_DROP_COPY,
    which keeps a copy whose old key exists again). Returns how many it deleted; run again, none."""
    if not ctx.plan.online_layout.copy_keys or not gone:
        return 0
    script = Scripts(ctx.client).online_drop_copy
    calls = [(script, [key, _copy_of(ctx, key)], [b"0"]) for key in gone]
    return sum(int(reply) == 2 for reply in run_paced(ctx.client, calls, Pacer(ROUND_SECONDS)))


def _existing(client, keys: List[bytes]) -> List[bool]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return [bool(found) for found in pipe.execute()]


def _record(
    ctx: Context, places: _Locations, changed: Dict[bytes, Record], added: List[bytes]
) -> Tuple[List[bytes], List[bytes]]:
    """The documents as they are now, appended to the backup (the header saved). Returns the keys left out: (those
    the migration cannot rewrite - a changed document whose vector or field is gone, a vector of the wrong size -,
    the added documents with nothing to rewrite, which need none)."""
    store, rewrites = ctx.store, ctx.plan.rewrites
    copies = ctx.plan.online_layout.copy_keys
    params = {field: QuantParams.from_dict(p) for field, p in store.header.quant_params.items()}
    steps = OnlineSteps(ctx, EXPAND)
    keys = [*changed, *added]
    batch = max(ctx.options.batch_size, 1)
    data = store.data_appender()
    staged = store.staged_appender() if store.has_staged() else None
    first, left_out, nothing, superseding = store.header.data_blocks, [], [], 0
    with Wire(ctx.client) as wire:
        for at in range(0, len(keys), batch):
            part = keys[at : at + batch]
            rows = read_values(wire, part, places.entries, rewrites.storage == "json")
            records = [_now(places, key, row, changed.get(key)) for key, row in zip(part, rows)]
            conversions = staged_records(rewrites, records, params) if staged is not None else [None] * len(records)
            kept = []
            for record, conversion, there in zip(records, conversions, _existing(ctx.client, part)):
                converted = next(decode_records(conversion, 1))[1] if conversion is not None else None
                # A prefix change copies the whole document: each one still there is kept.
                rewritable = there if copies else steps.items(record, converted)
                if rewritable:
                    kept.append((record, conversion))
                elif not copies and (
                    any(record.value(name.encode()) for name in places.compared) or (record.key in changed and there)
                ):
                    left_out.append(record.key)
                else:
                    nothing.append(record.key)  # deleted, or added with nothing to rewrite: as drop_recreate leaves it
            superseding += sum(record.key in changed for record, _c in kept)
            if kept:
                data.write_block([encode_record(record.key, record.entries) for record, _c in kept])
                if staged is not None:
                    staged.write_block([conversion for _r, conversion in kept])
    data.close()
    if staged is not None:
        staged.close()
    if data.blocks > first:
        header = store.header
        # Saved with the blocks: each document is counted once (report.py).
        counters = store.phase(CATCH_UP).counters
        counters["superseded"] = int(counters.get("superseded", 0)) + superseding
        record_data(header, data)
        if staged is not None:
            record_staged(header, staged)
        header.catch_up_from = first if header.catch_up_from is None else header.catch_up_from
        store.save()
    return left_out, nothing


def _now(places: _Locations, key: bytes, row: list, earlier: Optional[Record]) -> Record:
    """A document's record as it is now. Where the migration writes (a side field, a renamed field's new name),
    what is there now is the migration's own: the earlier record's value stays the one to restore."""
    entries = []
    for location, value in zip(places.entries, row):
        name = location.encode()
        ours = earlier is not None and location in places.written
        entries.append(Entry(name, earlier.value(name) if ours else value))
    return Record(key, tuple(entries))


def _write(ctx: Context) -> Dict[str, object]:
    """Every catch-up block the phase's ledger does not hold yet, expanded from its records."""
    store = ctx.store
    if store.header.catch_up_from is None:
        return {}
    steps = OnlineSteps(ctx, EXPAND, Newest.of(store), again=True)
    try:
        return run_block_phase(ctx, CATCH_UP, steps, first=store.header.catch_up_from)
    finally:
        steps.close()


def run(ctx: Context) -> None:
    counters = ctx.store.phase(CATCH_UP).counters
    places = _Locations(ctx)
    totals = _write(ctx)  # blocks a killed run recorded and did not write
    left_out: List = list(counters.get("not_rewritable_keys", []))
    passed_over: set = set()  # this run's documents the migration cannot rewrite: not looked for again
    remaining: List[bytes] = []
    for look in range(ROUNDS + 1):
        found = _find(ctx, places, Newest.of(ctx.store))
        deleted = _drop_copies(ctx, found.gone)
        if deleted:
            counters["deleted"] = int(counters.get("deleted", 0)) + deleted
            ctx.store.save()  # counted once: run again, the script finds no copy
        changed, added = found.changed, found.added
        changed = {key: record for key, record in changed.items() if key not in passed_over}
        added = [key for key in added if key not in passed_over]
        if not changed and not added:
            break
        if look == ROUNDS:
            remaining = [*changed, *added]
            break
        counters.update(
            rounds=int(counters.get("rounds", 0)) + 1,
            changed=int(counters.get("changed", 0)) + len(changed),
            added=int(counters.get("added", 0)) + len(added),
        )
        ctx.progress(CATCH_UP, force=True)
        skipped, nothing = _record(ctx, places, changed, added)
        passed_over.update(skipped + nothing)
        left_out += [key_to_text(key) for key in skipped if key_to_text(key) not in left_out]
        failpoints.hit(CATCH_UP, 0)  # recorded in the backup, nothing written yet
        totals = _write(ctx)
    counters.update(
        caught_up=len(Newest.of(ctx.store)),
        written=int(totals.get("written", 0)),
        rewritten_meanwhile=int(totals.get("conflict", 0)),
        still_changed=len(remaining),
        still_changed_keys=[key_to_text(key) for key in remaining[:LISTED]],
        not_rewritable=len(left_out),
        not_rewritable_keys=left_out[:LISTED],
    )
    ctx.progress(CATCH_UP, force=True)
