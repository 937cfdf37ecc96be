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

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

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
from . import online as rollback_online
from .states import DocumentStates

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


# -- the steps ------------------------------------------------------------------------------------------


def _restore_documents(
    client, store: BackupStore, plan: MigrationPlan, partial: bool, result: RollbackResult, cluster: bool
) -> List[Record]:
    """Restore every usable record. Returns the first block's first restored records, for the read-back."""
    prefix = plan.rewrites.prefix
    scripts = Scripts(client)
    script = scripts.json_restore if plan.rewrites.storage == "json" else scripts.hash_restore
    states = DocumentStates(plan, store)
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
        outcomes = _keep_application_writes(client, plan, states, records, outcomes, _before_contract(store))
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


def _keep_application_writes(
    client, plan: MigrationPlan, states: DocumentStates, records: List[Record], outcomes: list, uncontracted: bool
):
    """An online rewrite: a document the application changed after its expand (no catch-up recorded it) is in no
    state of the migration's (-1). It keeps what the application wrote, and loses what the migration added beside
    it (scripts.ONLINE_UNEXPAND; a prefix change before its contract: the copy, ONLINE_DROP_COPY): then it is the
    application's last write (KEPT), not a conflict."""
    layout = plan.online_layout
    changed = [i for i, outcome in enumerate(outcomes) if int(outcome) == -1]
    if layout is None or not changed or (layout.copy_keys and not uncontracted):
        return outcomes
    if layout.copy_keys:
        prefix, script = plan.rewrites.prefix, Scripts(client).online_drop_copy
        pipe = client.pipeline(transaction=False)
        for i in changed:
            script(keys=[records[i].key, renamed_key(records[i].key, prefix.old, prefix.new)], args=[b"1"], client=pipe)
        found = list(outcomes)
        for i, outcome in zip(changed, pipe.execute()):
            if int(outcome) in (1, 2):
                found[i] = KEPT
        return found
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


def _before_contract(store: BackupStore) -> bool:
    """Whether the migration's contract never started: every old key gone is one the application deleted."""
    contract = store.header.phases.get("contract")
    return contract is None or not contract.started_at


def _uncopy(client, store: BackupStore, plan: MigrationPlan, partial: bool, result: RollbackResult) -> None:
    """A prefix change online, before its contract: the copies under the new prefix go where the old key is still
    as the backup holds it (then the restore finds the original there), or gone (the application deleted the
    document, which stays deleted, as in place); after the contract the restore renames the copy back, as after
    drop_recreate."""
    prefix = plan.rewrites.prefix
    scripts = Scripts(client)
    storage = b"json" if plan.rewrites.storage == "json" else b"hash"
    uncontracted = _before_contract(store)
    for _block_no, records in _usable_records(store, partial, []):
        pipe = client.pipeline(transaction=False)
        for record in records:
            checks = [part for name, value in record.entries for part in (name, value if value is not None else b"")]
            keys = [record.key, renamed_key(record.key, prefix.old, prefix.new)]
            scripts.online_uncopy(keys=keys, args=[storage, b"%d" % len(record.entries), *checks], client=pipe)
            if uncontracted:
                scripts.online_drop_copy(keys=keys, args=[b"0"], client=pipe)
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
    not_restored = result.conflicts + len(result.unverified)
    rollback_online.run(client, store, plan, result, asked.wait_timeout, restored, not_restored)
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
