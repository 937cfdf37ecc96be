# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Roll a migration back to exactly where it started, from its backup.

    choose      the backup: by plan (exact), or the newest not rolled back for the index
    verify      header checksum, record count, every record CRC and block digest, the fingerprint
                chain - refused on any problem unless a partial rollback is asked for, which then
                restores only records of intact blocks and lists the others. In the same pass every
                record must name a key under the plan's source prefixes and only locations the plan
                changes: the checksums are plain SHA-256, so a re-sealed forgery passes them, and this
                is what keeps it from writing outside the index (always refused, nothing written)
    restore     compare-and-set, atomically per key: a document still in a state the migration left
                it in (or already in its original state) gets its original bytes and key name back;
                one the application changed since is left as it is and counted as a conflict;
                deleted documents stay deleted (counted)
    index       the target index is dropped (only when it is the plan's target), the source index is
                created again from the plan's exact definition, its aliases re-pointed
    validate    schema as before the migration, at least as many documents as before less deletions
                and conflicts (documents added since are reported, not refused), restored bytes read
                back equal. A failed validation leaves the rollback unfinished (re-running is
                harmless) unless `accept_validation_failure` finishes it with the problems recorded

Works after a migration that completed, failed or was killed in any phase; running it again
changes nothing. The backup is kept, and marked rolled back, so the same plan can be applied again
(into a new attempt directory).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..apply.backups import backup_plan, verify_backup
from ..apply.commands import rollback_commands
from ..apply.phases.create import create_once
from ..apply.phases.drop import drop_once
from ..backup.format import FormatError, Record, decode_records, iter_blocks
from ..backup.newest import Newest
from ..backup.store import DATA, BackupStore, read_header
from ..core import failpoints, progress
from ..core.deps import BaseModel, Field, redis_exceptions
from ..core.errors import BackupInvalid, IndexOpsError, RollbackFailed, ValidationFailed
from ..core.sealed import utc_now
from ..planning.plan import MigrationPlan
from ..redis.connection import lost_connection
from ..redis.durability import Durability, ReplicationOptions
from ..redis.keyspace import key_to_text, renamed_key
from ..redis.lock import acquire_locks, release_locks
from ..redis.permissions import require_permissions
from ..redis.scripts import Scripts
from ..redis.sentinel import follow_failover
from ..redis.snapshot import holds, index_exists, live_schema, read_schema
from ..redis.stats import IndexStats
from ..redis.waiting import StillIndexing, wait_until_indexed
from ..vectors.codec import convert_batch
from ..vectors.quantization import QuantParams
from . import online as rollback_online

LISTED = 100
READ_BACK = 20  # restored documents of the first block whose bytes validation reads back
# Script outcome -> the result's counter (and the list of keys it names).
KEPT = 3  # an online rewrite's document the application changed after its expand: kept as it wrote it
RESTORE = {2: "restored", 1: "already_restored", 0: "skipped_deleted", -1: "conflicts", KEPT: "application_writes"}
LISTED_KEYS = {
    "skipped_deleted": "skipped_keys",
    "conflicts": "conflict_keys",
    "application_writes": "application_keys",
}
FINISHED_WITH_PROBLEMS = "rolled_back_validation_failed"


class RollbackResult(BaseModel):
    # rolled_back | rolled_back_validation_failed | already_rolled_back | would_roll_back
    result: str
    backup_path: str
    source_index: str
    target_index: str
    records: int = 0
    superseded: int = 0  # records an online rewrite's catch-up recorded again (their newest one is restored)
    restored: int = 0
    already_restored: int = 0
    skipped_deleted: int = 0
    skipped_keys: List[Any] = Field(default_factory=list)
    conflicts: int = 0
    conflict_keys: List[Any] = Field(default_factory=list)
    # An online rewrite's documents the application changed after their expand, not caught up: kept as it wrote
    # them, the migration's new bytes beside them removed (see _keep_application_writes).
    application_writes: int = 0
    application_keys: List[Any] = Field(default_factory=list)
    unverified: List[Dict[str, Any]] = Field(default_factory=list)
    verification: Dict[str, Any] = Field(default_factory=dict)
    dropped_target: bool = False
    recreated_source: bool = False
    aliases: List[str] = Field(default_factory=list)
    validation: Dict[str, Any] = Field(default_factory=dict)
    problems: List[str] = Field(default_factory=list)


# -- the records to restore -----------------------------------------------------------------------------------------


def _usable_records(store: BackupStore, partial: bool, unverified: list):
    """(block number, records to restore), block by block. Without `partial` the whole backup was verified
    first; with it, records of damaged blocks are appended to `unverified` instead."""
    if not store.has_data():
        return
    with open(store.path(DATA), "rb") as stream:
        try:
            for block in iter_blocks(stream, store.header.data_bytes):
                try:
                    decoded = list(decode_records(block.payload, block.record_count, block.block_no))
                except FormatError as err:  # framing broken inside this block: the block's length still holds
                    unverified.extend(
                        {"block": block.block_no, "record": i, "key": None, "reason": str(err)}
                        for i in range(block.record_count)
                    )
                    continue
                if not block.digest_ok:
                    unverified.extend(
                        {"block": block.block_no, "record": i, "key": key_to_text(r.key) if r else None}
                        for i, r in decoded
                    )
                    continue
                good = []
                for i, record in decoded:
                    if record is None:
                        unverified.append({"block": block.block_no, "record": i, "key": None})
                    else:
                        good.append(record)
                yield block.block_no, good
        except FormatError as err:
            if not partial:
                raise BackupInvalid(f"backup data unreadable: {err}") from None
            unverified.append({"block": err.block, "record": None, "key": None, "reason": str(err)})


# -- the states a document may be in ----------------------------------------------------------------------


def state_digest(values: Sequence[Optional[bytes]]) -> bytes:
    """SHA1 (hex) of a document's values at the backed-up locations, in the record's order, exactly as
    the restore scripts compute it: each "-" when absent, else "+<length>:<bytes>"."""
    return hashlib.sha1(b"".join(b"-" if v is None else b"+%d:%s" % (len(v), v) for v in values)).hexdigest().encode()


class _States:
    """The restore script's arguments per record: the original state, every state the migration's
    phases can leave a document in (move_fields, then quantize, whatever the key is called), and the
    original values to write back."""

    def __init__(self, plan: MigrationPlan, store: BackupStore):
        self.rewrites = plan.rewrites
        self.layout = plan.online_layout
        self.params = {field: QuantParams.from_dict(p) for field, p in store.header.quant_params.items()}

    def _converted(self, records: List[Record]) -> Dict[str, List[Optional[bytes]]]:
        """Per quantized field, the bytes the quantize phase writes for each record (None: none) - the
        same conversion of the same backed-up originals with the same parameters."""
        found: Dict[str, List[Optional[bytes]]] = {}
        for quant in self.rewrites.quantize:
            name = quant.source_location.encode()
            originals = [r.value(name) for r in records]
            present = [i for i, value in enumerate(originals) if value is not None]
            converted: List[Optional[bytes]] = [None] * len(records)
            params = self.params.get(quant.field)
            try:
                values = (
                    convert_batch([originals[i] for i in present], quant.source, quant.target, quant.dims, params)
                    if present
                    else []
                )
            except ValueError:
                # The migration could not convert this batch; only what converts on its own can be there.
                values = []
                for i in present:
                    try:
                        values.append(convert_batch([originals[i]], quant.source, quant.target, quant.dims, params)[0])
                    except ValueError:
                        values.append(None)
            for i, value in zip(present, values):
                converted[i] = value
            found[quant.field] = converted
        return found

    def _online_states(self, original: list, where: Dict[bytes, int], converted, n: int) -> List[list]:
        """An online migration's states (apply/phases/online_rewrite.py) besides drop_recreate's end state,
        which contract reaches: expanded (the new bytes beside the originals), converted (a datatype change in
        place: the original location holds the converted bytes too)."""
        if self.layout is None or self.layout.copy_keys:
            return []  # a prefix change online rewrites only the copies (see _uncopy)
        expanded = list(original)
        for side in self.layout.side_fields:
            at, side_at = where.get(side.location.encode()), where.get(side.side.encode())
            value = converted.get(side.field, [None] * (n + 1))[n]
            if None not in (at, side_at, value) and original[at] is not None:
                expanded[side_at] = value
        for move in self.rewrites.moves:
            old, new = where.get(move.old_location.encode()), where.get(move.new_location.encode())
            if None in (old, new) or original[old] is None:
                continue
            value = original[old]
            for quant in self.rewrites.quantize:
                if quant.source_location == move.old_location:
                    value = converted[quant.field][n]
            if value is not None:
                expanded[new] = value
        converted_state = list(expanded)
        for side in self.layout.side_fields:
            at, side_at = where.get(side.location.encode()), where.get(side.side.encode())
            if None not in (at, side_at) and expanded[side_at] is not None:
                converted_state[at] = expanded[side_at]
        return [expanded, converted_state]

    def _written(self) -> Dict[bytes, bytes]:
        """The locations an online rewrite writes beside the application's (side fields, renamed fields' new
        names), each with the old location it stands beside."""
        found = {m.new_location.encode(): m.old_location.encode() for m in self.rewrites.moves}
        return {**found, **{side.side.encode(): side.location.encode() for side in self.layout.side_fields}}

    def _expanded(self, records: List[Record]) -> List[list]:
        """Each record's document as expand leaves it (the new bytes beside the originals)."""
        converted = self._converted(records)
        found = []
        for n, record in enumerate(records):
            where = {name: i for i, (name, _value) in enumerate(record.entries)}
            found.append(self._online_states([value for _name, value in record.entries], where, converted, n)[0])
        return found

    def unexpand(self, records: List[Record], storage: bytes) -> List[List[bytes]]:
        """ONLINE_UNEXPAND's arguments per record: what the migration wrote beside the originals, to remove."""
        written = self._written()
        rows = []
        for record, expanded in zip(records, self._expanded(records)):
            args = [storage, b"0"]
            for i, (name, value) in enumerate(record.entries):
                if name in written and expanded[i] is not None:
                    args += [name, expanded[i], value if value is not None else b"", written[name]]
            rows.append(args)
        return rows

    def _caught_up(self, record: Record, earlier: List[Record]) -> List[list]:
        """A document an online rewrite's catch-up recorded again (`earlier`: its superseded records): the
        state a catch-up killed between recording it and writing it leaves - the application's last write at
        the old locations, an earlier record's expanded bytes where the migration writes."""
        if not earlier or self.layout is None or self.layout.copy_keys:
            return []
        written = self._written()
        return [
            [expanded[i] if name in written else value for i, (name, value) in enumerate(record.entries)]
            for expanded in self._expanded(earlier)
        ]

    def arguments(
        self, records: List[Record], earlier: Optional[Dict[bytes, List[Record]]] = None
    ) -> List[List[bytes]]:
        """`earlier`: the superseded records of documents a catch-up recorded again, by key."""
        earlier = earlier or {}
        converted = self._converted(records)
        # A hash field the migration renamed takes its place back (scripts.RENAME_FIELD): the original order.
        takes = (
            {}
            if self.rewrites.storage == "json"
            else {m.old_location.encode(): b"@" + m.new_location.encode() for m in self.rewrites.moves}
        )
        rows = []
        for n, record in enumerate(records):
            original = [value for _name, value in record.entries]
            where = {name: i for i, (name, _value) in enumerate(record.entries)}
            moved = list(original)
            for move in self.rewrites.moves:
                old, new = where.get(move.old_location.encode()), where.get(move.new_location.encode())
                # The move phase moves a value only onto nothing or onto the same value.
                if None not in (old, new) and original[old] is not None and original[new] in (None, original[old]):
                    moved[old], moved[new] = None, original[old]
            quantized = list(moved)
            for quant in self.rewrites.quantize:
                at, source = where.get(quant.location.encode()), where.get(quant.source_location.encode())
                # The quantize phase writes only where the original source value is (its SHA1 check).
                value = converted[quant.field][n]
                if None not in (at, source, value) and moved[at] == original[source]:
                    quantized[at] = converted[quant.field][n]
            states = [moved, quantized, *self._online_states(original, where, converted, n)]
            states += self._caught_up(record, earlier.get(record.key, []))
            others = {state_digest(state) for state in states if state != original}
            args = [state_digest(original), str(len(others)).encode(), *sorted(others)]
            for name, value in record.entries:
                args += [name, value if value is not None else b"", b"1" if value is None else takes.get(name, b"0")]
            rows.append(args)
        return rows


# -- the steps ------------------------------------------------------------------------------------------


def _restore_documents(
    client, store: BackupStore, plan: MigrationPlan, partial: bool, result: RollbackResult, cluster: bool
) -> List[Record]:
    """Restore every usable record. Returns the first block's first restored records, for the read-back."""
    prefix = plan.rewrites.prefix
    scripts = Scripts(client)
    script = scripts.json_restore if plan.rewrites.storage == "json" else scripts.hash_restore
    states = _States(plan, store)
    read_back: List[Record] = []
    first_block = True
    newest = Newest.of(store)
    earlier: Dict[bytes, List[Record]] = {}
    for block_no, found in _usable_records(store, partial, result.unverified):
        # A document a catch-up recorded again goes back to its newest record (the application's last write).
        records = []
        for record in found:
            if newest.superseded(block_no, record.key):
                earlier.setdefault(record.key, []).append(record)
            else:
                records.append(record)
        result.superseded += len(found) - len(records)
        result.records += len(found) - len(records)
        arguments = states.arguments(records, earlier)
        if cluster and prefix:
            outcomes = [_restore_across_slots(client, script, r, a, prefix) for r, a in zip(records, arguments)]
        else:
            pipe = client.pipeline(transaction=False)
            for record, args in zip(records, arguments):
                new = renamed_key(record.key, prefix.old, prefix.new) if prefix else record.key
                script(keys=[record.key, new], args=args, client=pipe)
            outcomes = pipe.execute() if records else []
        outcomes = _keep_application_writes(client, plan, states, records, outcomes)
        for record, outcome in zip(records, outcomes):
            name = RESTORE.get(int(outcome), "conflicts")
            setattr(result, name, getattr(result, name) + 1)
            listed = getattr(result, LISTED_KEYS[name]) if name in LISTED_KEYS else None
            if listed is not None and len(listed) < LISTED:
                listed.append(key_to_text(record.key))
            # Conflicts hold what the application wrote: only documents now restored are read back.
            if first_block and outcome in (1, 2) and len(read_back) < READ_BACK:
                read_back.append(record)
        first_block = first_block and not records
        result.records += len(records)
        failpoints.hit("rollback", result.records)
        progress.report(
            plan.source.index, "restore", documents=result.records, documents_total=store.header.data_records
        )
    return read_back


def _keep_application_writes(client, plan: MigrationPlan, states: _States, records: List[Record], outcomes: list):
    """An online rewrite: a document the application changed after its expand (no catch-up recorded it) is in no
    state of the migration's (-1). It keeps what the application wrote, and loses what the migration added beside
    it (scripts.ONLINE_UNEXPAND): then it is the application's last write (KEPT), not a conflict."""
    layout = plan.online_layout
    changed = [i for i, outcome in enumerate(outcomes) if int(outcome) == -1]
    if layout is None or layout.copy_keys or not changed:
        return outcomes
    storage = b"json" if plan.rewrites.storage == "json" else b"hash"
    script = Scripts(client).online_unexpand
    pipe = client.pipeline(transaction=False)
    for i, args in zip(changed, states.unexpand([records[i] for i in changed], storage)):
        script(keys=[records[i].key], args=args, client=pipe)
    found = list(outcomes)
    for i, outcome in zip(changed, pipe.execute()):
        if int(outcome) in (1, 2):
            found[i] = KEPT
    return found


def _uncopy(client, store: BackupStore, plan: MigrationPlan, partial: bool, result: RollbackResult) -> None:
    """A prefix change online, before its contract: the copies under the new prefix go where the old key is still
    as the backup holds it (then the restore finds the original there); after the contract the restore renames the
    copy back, as after drop_recreate."""
    prefix = plan.rewrites.prefix
    scripts = Scripts(client)
    storage = b"json" if plan.rewrites.storage == "json" else b"hash"
    for _block_no, records in _usable_records(store, partial, []):
        pipe = client.pipeline(transaction=False)
        for record in records:
            checks = [part for name, value in record.entries for part in (name, value if value is not None else b"")]
            scripts.online_uncopy(
                keys=[record.key, renamed_key(record.key, prefix.old, prefix.new)],
                args=[storage, b"%d" % len(record.entries), *checks],
                client=pipe,
            )
        if records:
            pipe.execute()
    failpoints.hit("rollback_uncopy", 0)


def _restore_across_slots(client, script, record: Record, args: List[bytes], prefix) -> int:
    """Cluster: restore the document where it now lives (same compare-and-set), then move it back under
    its original name (DUMP/RESTORE keeping the TTL, which fails rather than replace a key of that name)."""
    new = renamed_key(record.key, prefix.old, prefix.new)
    old_exists, new_exists = client.exists(record.key), client.exists(new)
    if old_exists and new_exists:
        return -1
    if not old_exists and not new_exists:
        return 0
    current = new if new_exists else record.key
    outcome = int(script(keys=[current, current], args=args, client=client))
    if outcome < 1 or current == record.key:
        return outcome
    payload, ttl = client.dump(current), int(client.pttl(current))
    try:
        client.restore(record.key, max(ttl, 0), payload)
    except redis_exceptions.ResponseError as err:
        if "BUSYKEY" in str(err):  # the original name was taken meanwhile: both exist, a conflict
            return -1
        raise
    client.delete(current)
    return 2


def _index_steps(client, plan: MigrationPlan, store: BackupStore, result: RollbackResult) -> None:
    source, target = plan.source_schema(), plan.target()
    live = live_schema(client, target.name)
    if live is not None:
        if live.matches(target):
            drop_once(client, target.name)
            result.dropped_target = True
        elif target.name == source.name and live.matches(source):
            pass  # the source is already back under its name
        else:
            raise RollbackFailed(
                f"index {target.name!r} exists but is neither the plan's target nor its source",
                hint="someone changed it after the migration; resolve it by hand first",
            )
    failpoints.hit("rollback_index", 0)
    if not index_exists(client, source.name):
        create_once(client, source)
        result.recreated_source = True
    result.aliases = list(store.header.aliases or plan.source.aliases)
    for alias in result.aliases:
        client.execute_command("FT.ALIASUPDATE", alias, source.name)


def _read_back(client, plan: MigrationPlan, records: List[Record]) -> tuple[int, int]:
    """(values checked, values that differ from the backup) of documents the restore just wrote."""
    checked = mismatched = 0
    for record in records:
        if not client.exists(record.key):
            continue
        for name, value in record.entries:
            if plan.rewrites.storage == "json":
                now = client.execute_command("JSON.GET", record.key, name)
                now = None if now in (None, b"[]") else now
            else:
                now = client.hget(record.key, name)
            checked += 1
            mismatched += now != value
    return checked, mismatched


def _validate(
    client, plan: MigrationPlan, store: BackupStore, result: RollbackResult, stats: IndexStats, read_back: List[Record]
) -> None:
    """Fill result.validation and result.problems."""
    source = plan.source_schema()
    found = read_schema(client, source.name).differs_from(source)
    docs = stats.num_docs
    expected = int(store.phase("backup").counters.get("source_num_docs", plan.source.stats.get("num_docs", 0)))
    expected -= result.skipped_deleted
    # Conflicts are as the application left them (perhaps under the new name, or in the new format): they
    # may or may not be indexed. Documents added after the backup are indexed on top: reported, not refused,
    # unless the restored index cannot index them (below).
    low = expected - result.conflicts
    # With a FILTER the first scan may skip documents that were indexed when written (see validate.py).
    count_checked = not result.unverified and not source.index.filter
    # Documents the restored index refused beyond the source's own failures, less those the count already
    # misses and the conflicts: documents written after the backup, in a layout the source cannot index
    # (the migrated one). At least that many; they stay as the application wrote them.
    failures_before = int(plan.source.stats.get("hash_indexing_failures", 0))
    refused = max(stats.hash_indexing_failures - failures_before, 0)
    added_refused = max(refused - result.conflicts - max(expected - docs, 0), 0)
    problems = []
    if found:
        problems.append("schema differs from the source: " + "; ".join(found[:3]))
    if count_checked and docs < low:
        wanted = f"at least {low} ({expected} less {result.conflicts} conflicts)" if result.conflicts else str(expected)
        problems.append(f"{docs} documents indexed, {wanted} expected")
    if added_refused:
        first = f" (last: {stats.last_indexing_error_key})" if stats.last_indexing_error_key else ""
        problems.append(
            f"{added_refused} document(s) written after the migration cannot be indexed by the restored "
            f"index{first}: indexing failures rose from {failures_before} to {stats.hash_indexing_failures}"
        )
    checked, mismatched = _read_back(client, plan, read_back)
    if mismatched:
        problems.append(f"{mismatched} of {checked} restored values differ from the backup")
    result.problems = problems
    result.validation = {
        "schema_match": not found,
        "schema_differences": found,
        "doc_count_checked": count_checked,
        "doc_count_expected": expected,
        "doc_count_actual": docs,
        "documents_added": max(docs - expected, 0) + added_refused,
        "documents_added_not_indexed": added_refused,
        "documents_conflicting": result.conflicts,
        "documents_deleted": result.skipped_deleted,
        "indexing_failures_before": failures_before,
        "indexing_failures_after": stats.hash_indexing_failures,
        "values_checked": checked,
        "values_mismatched": mismatched,
        "passed": not problems,
        "problems": problems,
    }


def _online_read_back(
    client, plan: MigrationPlan, result: RollbackResult, read_back: List[Record], accept: bool
) -> None:
    """The restored bytes read back equal the backup's, for an online migration that rewrote documents."""
    checked, mismatched = _read_back(client, plan, read_back)
    result.validation.update({"values_checked": checked, "values_mismatched": mismatched})
    if not mismatched:
        return
    result.problems.append(f"{mismatched} of {checked} restored values differ from the backup")
    result.validation["passed"] = False
    if not accept:
        raise ValidationFailed(
            "rollback validation failed: " + "; ".join(result.problems),
            hint="re-run the same task, or with accept_validation_failure=true to finish it with this recorded",
            details={"validation": result.validation, "problems": result.problems},
        )
    result.result = FINISHED_WITH_PROBLEMS


def _already_rolled_back(client, plan: MigrationPlan, store: BackupStore) -> bool:
    if store.header.status != "rolled_back":
        return False
    if store.header.rollback.get("result") == FINISHED_WITH_PROBLEMS:
        return True  # finished on purpose despite its validation: the source may differ, as accepted
    if plan.mode == "online":
        return rollback_online.rolled_back(client, plan)
    return holds(client, plan.source.index, plan.source_schema())


def _recorded(store: BackupStore, result: RollbackResult) -> Dict[str, Any]:
    """The result for the header, keeping what a resumed rollback needs (the online rollback's index)."""
    kept = {key: store.header.rollback[key] for key in ("online_index",) if key in store.header.rollback}
    return {**result.model_dump(mode="json"), **kept}


def _finish(store: BackupStore, result: RollbackResult) -> None:
    store.header.status, store.header.error = "rolled_back", None
    store.header.rollback = _recorded(store, result)
    store.save()


def _record_failure(store: BackupStore, result: RollbackResult, err: Exception) -> None:
    """Leave in the header why the rollback stopped (redis_index_info shows it); it stays rolling_back."""
    message = err.message if isinstance(err, IndexOpsError) else f"{type(err).__name__}: {err}"
    store.header.error = {"phase": "rollback", "message": message, "at": utc_now()}
    store.header.rollback = _recorded(store, result)
    try:
        store.save()
    except OSError:
        pass  # the header on disk still says rolling_back; the re-run works from that


def rollback(
    client,
    store: BackupStore,
    *,
    partial: bool = False,
    wait_timeout: float = 600.0,
    check_mode: bool = False,
    cluster: bool = False,
    accept_validation_failure: bool = False,
    replication: Optional[ReplicationOptions] = None,
) -> tuple[bool, RollbackResult]:
    """Roll back the migration `store` backs up. Returns (changed, result).

    On a primary with replicas, the rollback is recorded finished (and the target index dropped) only once
    the replicas hold what it restored (`replication`, redis/durability.py).

    With `accept_validation_failure` a rollback whose validation fails is finished all the same: the
    backup is marked rolled back with the failed validation recorded, and the problems are returned."""
    store.header = read_header(store.directory)
    plan = backup_plan(store)
    result = RollbackResult(
        result="rolled_back", backup_path=store.directory, source_index=plan.source.index, target_index=plan.final_index
    )
    if _already_rolled_back(client, plan, store):
        result.result = "already_rolled_back"
        result.validation = store.header.rollback.get("validation", {})
        result.problems = list(store.header.rollback.get("problems", []))
        return False, result
    _verify(store, plan, partial, result)
    require_permissions(client, rollback_commands(plan, cluster), "rollback")
    durability = Durability.for_run(client, replication or ReplicationOptions())
    if check_mode:
        result.result = "would_roll_back"
        if partial:
            list(_usable_records(store, True, result.unverified))
        return True, result
    result.records = 0
    locks = acquire_locks(client, [plan.source.index, plan.target_index, plan.final_index], "rollback", plan.plan_id)

    def confirm(what: str) -> None:
        durability.confirm(client, locks[0], what)

    try:
        store.header.status = "rolling_back"
        store.save()
        asked = _Asked(partial, cluster, wait_timeout, accept_validation_failure)
        if plan.mode == "online":
            _roll_back_online(client, store, plan, result, asked)
        else:
            _roll_back_recreating(client, store, plan, result, asked, confirm)
        confirm("the end of the rollback")
        _finish(store, result)
    except Exception as err:
        stopped = _stopped_by(client, store, result, err, replication)
        if stopped is err:
            raise
        raise stopped from None
    finally:
        release_locks(locks)
    return True, result


def _verify(store: BackupStore, plan: MigrationPlan, partial: bool, result: RollbackResult) -> None:
    """The backup verified (header, records, blocks, what they may write), refused on any problem unless a
    partial rollback is asked for."""
    verification = verify_backup(store, plan)
    result.verification = verification.model_dump()
    if not verification.ok and not partial:
        raise BackupInvalid(
            f"backup {store.directory} failed verification: " + "; ".join(verification.problems),
            hint="nothing was written; restore the backup from a copy, or set partial=true to "
            "restore the verified records and list the rest",
            details={"verification": result.verification},
        )
    result.records = verification.records


@dataclass(frozen=True)
class _Asked:
    """How the caller of rollback() asked for it, as both ways of rolling back take it."""

    partial: bool
    cluster: bool
    wait_timeout: float
    accept_validation_failure: bool


def _roll_back_online(client, store: BackupStore, plan: MigrationPlan, result: RollbackResult, asked: _Asked) -> None:
    """An online migration: the documents first (whatever index serves them meanwhile), then the index, swapped
    back (online.py); the restored bytes read back."""
    restored = None
    if plan.online_layout is not None:
        if plan.online_layout.copy_keys:
            _uncopy(client, store, plan, asked.partial, result)
        read_back = _restore_documents(client, store, plan, asked.partial, result, asked.cluster)
        restored = result.restored + result.already_restored
    rollback_online.run(client, store, plan, result, asked.wait_timeout, restored)
    if plan.online_layout is not None:
        _online_read_back(client, plan, result, read_back, asked.accept_validation_failure)


def _roll_back_recreating(
    client,
    store: BackupStore,
    plan: MigrationPlan,
    result: RollbackResult,
    asked: _Asked,
    confirm: Callable[[str], None],
) -> None:
    """A drop_recreate migration: the documents restored, then the migration's index dropped and the source's
    created again, indexed and validated."""
    read_back = _restore_documents(client, store, plan, asked.partial, result, asked.cluster)
    # The replicas hold the restored documents before the migration's index is dropped.
    confirm("the documents restored")
    _index_steps(client, plan, store, result)
    try:
        stats = wait_until_indexed(client, plan.source.index, asked.wait_timeout)
    except StillIndexing as err:
        raise RollbackFailed(
            f"{plan.source.index} was still indexing after {asked.wait_timeout:.0f} s ({err})",
            hint="re-run the same task to keep waiting",
        ) from None
    _validate(client, plan, store, result, stats, read_back)
    if result.problems and not asked.accept_validation_failure:
        raise ValidationFailed(
            "rollback validation failed: " + "; ".join(result.problems),
            hint="every document is restored or left as the application wrote it, and re-running writes "
            "nothing new; fix the cause and re-run, or re-run with accept_validation_failure=true to "
            "finish the rollback with these problems recorded",
            details={"validation": result.validation, "problems": result.problems},
        )
    if result.problems:
        result.result = FINISHED_WITH_PROBLEMS


def _stopped_by(
    client, store: BackupStore, result: RollbackResult, err: Exception, replication: Optional[ReplicationOptions]
) -> Exception:
    """What a rollback that stopped raises, recorded in the header first: the library's own error as it is, anything
    else said in one line (_stopped); both name the primary a failover brought meanwhile."""
    failover = follow_failover(client, (replication or ReplicationOptions()).failover_timeout)
    _record_failure(store, result, err)
    stopped = err if isinstance(err, IndexOpsError) else _stopped(store, result, err)
    stopped.message += failover
    return stopped


def _stopped(store: BackupStore, result: RollbackResult, err: Exception) -> RollbackFailed:
    """What went wrong outside the library's own checks (a lost connection, a server error), said in one
    line with where the rollback stopped and the way on."""
    what = lost_connection(err) or f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
    return RollbackFailed(
        f"rollback stopped after {result.records} of the backup's documents: {what}; backup {store.directory} "
        "(still marked rolling_back)",
        hint="re-run the same task: it continues, and documents already restored are not written again",
        details={"records_processed": result.records, "backup_path": store.directory},
    )
