# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Roll a migration back to exactly where it started, from its backup.

    choose      the backup: by plan (exact), or the newest not rolled back for the index
    verify      header checksum, record count, every record CRC and block digest, the fingerprint
                chain - refused on any problem unless a partial rollback is asked for, which then
                restores only records of intact blocks and lists the others
    restore     every location the migration touched gets its original bytes back (or is removed
                where it held nothing), and renamed keys their names - atomically per key, and only
                where the document still exists (deleted documents stay deleted, counted)
    index       the target index is dropped (only when it is the plan's target), the source index is
                created again from the plan's exact definition, its aliases re-pointed
    validate    schema and document count as before the migration, restored bytes read back equal

Works after a migration that completed, failed or was killed in any phase; running it again
changes nothing. The backup is kept, and marked rolled back, so the same plan can be applied again
(into a new attempt directory).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from . import failpoints
from .backup_format import FormatError, decode_records, iter_blocks
from .backup_store import DATA, PLAN, BackupStore, list_backups, read_header
from .deps import BaseModel, Field
from .errors import BackupInvalid, RollbackFailed, ValidationFailed
from .ftcreate import create_args
from .keyspace import key_to_text, renamed_key
from .lock import IndexLock
from .plan import MigrationPlan, read_plan
from .schema import differences
from .scripts import Scripts
from .snapshot import index_exists, snapshot_index
from .waiting import StillIndexing, wait_until_indexed

NOT_REPORTED = ("index.key_separator",)
LISTED = 100
RESTORE = {2: "restored", 0: "skipped_deleted", -1: "conflict"}


class RollbackResult(BaseModel):
    result: str  # rolled_back | already_rolled_back | would_roll_back
    backup_path: str
    source_index: str
    target_index: str
    records: int = 0
    restored: int = 0
    skipped_deleted: int = 0
    skipped_keys: List[Any] = Field(default_factory=list)
    conflicts: int = 0
    conflict_keys: List[Any] = Field(default_factory=list)
    unverified: List[Dict[str, Any]] = Field(default_factory=list)
    verification: Dict[str, Any] = Field(default_factory=dict)
    dropped_target: bool = False
    recreated_source: bool = False
    aliases: List[str] = Field(default_factory=list)
    validation: Dict[str, Any] = Field(default_factory=dict)


# -- choosing the backup ------------------------------------------------------------------------------

def choose_backup(backup_dir: str, index: Optional[str] = None, plan_checksum: Optional[str] = None) -> BackupStore:
    """The backup to roll back: this plan's newest attempt, or the index's newest not rolled back.
    A damaged backup of another index does not get in the way."""
    if plan_checksum:
        store = BackupStore.for_plan(backup_dir, plan_checksum)
        if store is None:
            raise BackupInvalid(f"no backup of plan {plan_checksum[:19]} in {backup_dir}",
                                hint="check backup_dir, or choose the backup by index")
        return store
    candidates = []
    for directory, header, error in list_backups(backup_dir):
        if header is None:
            if os.path.basename(directory).startswith(f"{index}-"):
                raise BackupInvalid(f"a backup of {index} is damaged ({error})",
                                    hint="pass plan_file to choose the backup explicitly")
            continue
        if index in (header.source_index, header.target_index):
            candidates.append((header.created_at, header.attempt, directory, header))
    if not candidates:
        raise BackupInvalid(f"no backup of index {index!r} in {backup_dir}", hint="check backup_dir and index")
    pending = [c for c in candidates if c[3].status != "rolled_back"]
    _created, _attempt, directory, header = max(pending or candidates, key=lambda c: (c[0], c[1]))
    return BackupStore(directory, header)


def backup_plan(store: BackupStore) -> MigrationPlan:
    plan = read_plan(store.path(PLAN))
    if plan.checksum != store.header.plan_checksum:
        raise BackupInvalid(f"{store.path(PLAN)} is not the plan this backup was made for",
                            hint="the backup directory was tampered with; restore it from a copy")
    return plan


# -- verification -----------------------------------------------------------------------------------------

def _usable_records(store: BackupStore, partial: bool, unverified: list):
    """Records to restore, block by block. Without `partial` the whole backup was verified first;
    with it, records of damaged blocks are appended to `unverified` instead."""
    if not store.has_data():
        return
    with open(store.path(DATA), "rb") as stream:
        try:
            for block in iter_blocks(stream, store.header.data_bytes):
                try:
                    decoded = list(decode_records(block.payload, block.record_count, block.block_no))
                except FormatError as err:  # framing broken inside this block: the block's length still holds
                    unverified.extend({"block": block.block_no, "record": i, "key": None, "reason": str(err)}
                                      for i in range(block.record_count))
                    continue
                if not block.digest_ok:
                    unverified.extend({"block": block.block_no, "record": i,
                                       "key": key_to_text(r.key) if r else None} for i, r in decoded)
                    continue
                good = []
                for i, record in decoded:
                    if record is None:
                        unverified.append({"block": block.block_no, "record": i, "key": None})
                    else:
                        good.append(record)
                yield good
        except FormatError as err:
            if not partial:
                raise BackupInvalid(f"backup data unreadable: {err}") from None
            unverified.append({"block": err.block, "record": None, "key": None, "reason": str(err)})


# -- the steps ------------------------------------------------------------------------------------------

def _script_args(record) -> List[bytes]:
    args: List[bytes] = []
    for name, value in record.entries:
        args += [name, value if value is not None else b"", b"1" if value is None else b"0"]
    return args


def _restore_documents(client, store: BackupStore, plan: MigrationPlan, partial: bool, result: RollbackResult,
                       cluster: bool) -> None:
    prefix = plan.rewrites.prefix
    scripts = Scripts(client)
    script = scripts.json_restore if plan.rewrites.storage == "json" else scripts.hash_restore
    for records in _usable_records(store, partial, result.unverified):
        if cluster and prefix:
            outcomes = [_restore_across_slots(client, script, r, prefix) for r in records]
        else:
            pipe = client.pipeline(transaction=False)
            for record in records:
                new = renamed_key(record.key, prefix.old, prefix.new) if prefix else record.key
                script(keys=[record.key, new], args=_script_args(record), client=pipe)
            outcomes = pipe.execute() if records else []
        for record, outcome in zip(records, outcomes):
            name = RESTORE.get(int(outcome), "conflict")
            setattr(result, name, getattr(result, name) + 1)
            listed = {"skipped_deleted": result.skipped_keys, "conflict": result.conflict_keys}.get(name)
            if listed is not None and len(listed) < LISTED:
                listed.append(key_to_text(record.key))
        result.records += len(records)
        failpoints.hit("rollback", result.records)


def _restore_across_slots(client, script, record, prefix) -> int:
    """Cluster: restore the fields where the document now lives, then move it back (DUMP/RESTORE)."""
    new = renamed_key(record.key, prefix.old, prefix.new)
    current = new if client.exists(new) else record.key
    outcome = int(script(keys=[current, current], args=_script_args(record), client=client))
    if outcome != 2 or current == record.key:
        return outcome
    if client.exists(record.key):
        return -1
    client.restore(record.key, max(int(client.pttl(current)), 0), client.dump(current))
    client.delete(current)
    return 2


def _index_steps(client, plan: MigrationPlan, store: BackupStore, result: RollbackResult) -> None:
    source, target = plan.source_schema(), plan.target()
    if index_exists(client, target.name):
        live = snapshot_index(client, target.name).snapshot
        ignore = NOT_REPORTED + tuple(live.unobserved)
        if not differences(target, live.index_schema, ignore):
            client.execute_command("FT.DROPINDEX", target.name)
            result.dropped_target = True
        elif target.name == source.name and not differences(source, live.index_schema, ignore):
            pass  # the source is already back under its name
        else:
            raise RollbackFailed(f"index {target.name!r} exists but is neither the plan's target nor its source",
                                 hint="someone changed it after the migration; resolve it by hand first")
    failpoints.hit("rollback_index", 0)
    if not index_exists(client, source.name):
        client.execute_command("FT.CREATE", *create_args(source))
        result.recreated_source = True
    result.aliases = list(store.header.aliases or plan.source.aliases)
    for alias in result.aliases:
        client.execute_command("FT.ALIASUPDATE", alias, source.name)


def _validate(client, plan: MigrationPlan, store: BackupStore, result: RollbackResult, docs: int) -> None:
    source = plan.source_schema()
    live = snapshot_index(client, source.name).snapshot
    found = differences(source, live.index_schema, NOT_REPORTED + tuple(live.unobserved))
    expected = int(store.phase("backup").counters.get("source_num_docs", plan.source.stats.get("num_docs", 0)))
    expected -= result.skipped_deleted
    problems = []
    if found:
        problems.append("schema differs from the source: " + "; ".join(found[:3]))
    # With a FILTER the first scan may skip documents that were indexed when written (see validate.py).
    if not result.unverified and not source.index.filter and docs != expected:
        problems.append(f"{docs} documents indexed, {expected} expected")
    # Read back the first restored documents: the bytes must be the backup's, bit for bit.
    checked = mismatched = 0
    for records in _usable_records(store, True, []):
        for record in records[:20]:
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
        break
    if mismatched:
        problems.append(f"{mismatched} of {checked} restored values differ from the backup")
    result.validation = {"schema_match": not found, "schema_differences": found, "doc_count_expected": expected,
                         "doc_count_actual": docs, "values_checked": checked, "values_mismatched": mismatched,
                         "passed": not problems}
    if problems:
        raise ValidationFailed("rollback validation failed: " + "; ".join(problems))


def _already_rolled_back(client, plan: MigrationPlan, store: BackupStore) -> bool:
    if store.header.status != "rolled_back" or not index_exists(client, plan.source.index):
        return False
    live = snapshot_index(client, plan.source.index).snapshot
    return not differences(plan.source_schema(), live.index_schema, NOT_REPORTED + tuple(live.unobserved))


def rollback(client, store: BackupStore, *, partial: bool = False, wait_timeout: float = 600.0,
             check_mode: bool = False, cluster: bool = False) -> tuple[bool, RollbackResult]:
    """Roll back the migration `store` backs up. Returns (changed, result)."""
    store.header = read_header(store.directory)
    plan = backup_plan(store)
    result = RollbackResult(result="rolled_back", backup_path=store.directory, source_index=plan.source.index,
                            target_index=plan.target_index)
    if _already_rolled_back(client, plan, store):
        result.result = "already_rolled_back"
        result.validation = store.header.rollback.get("validation", {})
        return False, result
    verification = store.verify()
    result.verification = verification.model_dump()
    if not verification.ok and not partial:
        raise BackupInvalid(f"backup {store.directory} failed verification: " + "; ".join(verification.problems),
                            hint="nothing was written; restore the backup from a copy, or set partial=true to "
                                 "restore the verified records and list the rest",
                            details={"verification": result.verification})
    result.records = verification.records
    if check_mode:
        result.result = "would_roll_back"
        if partial:
            list(_usable_records(store, True, result.unverified))
        return True, result
    result.records = 0
    lock = IndexLock(client, plan.source.index, "rollback", plan.plan_id)
    lock.acquire()
    try:
        store.header.status = "rolling_back"
        store.save()
        _restore_documents(client, store, plan, partial, result, cluster)
        _index_steps(client, plan, store, result)
        try:
            docs = wait_until_indexed(client, plan.source.index, wait_timeout).num_docs
        except StillIndexing as err:
            raise RollbackFailed(f"{plan.source.index} was still indexing after {wait_timeout:.0f} s ({err})",
                                 hint="re-run the same task to keep waiting") from None
        _validate(client, plan, store, result, docs)
        store.header.status = "rolled_back"
        store.header.rollback = result.model_dump(mode="json")
        store.save()
    finally:
        lock.release()
    return True, result
