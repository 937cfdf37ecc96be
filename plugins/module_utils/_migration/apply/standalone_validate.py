# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate a migration after the fact, against its plan and its backup, changing nothing.

The same checks as the migration's own validate phase (phases/validate.py: schema, document count,
sampled keys, every sampled vector equal to the conversion of its backed-up original, KNN
self-queries), in standalone mode (indexing failures must not have risen), plus a full
verification of the backup, which a rollback would rely on. Reads only: no lock, no header update.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..backup.format import FormatError
from ..backup.links import refuse_links
from ..backup.store import BackupStore, VerifyResult, existing_backup_dir
from ..core.deps import BaseModel, Field
from ..core.errors import BackupInvalid, PreflightFailed
from ..planning.modes import ONLINE
from ..planning.plan import MigrationPlan
from ..redis.capabilities import require_search_results
from ..redis.keyspace import indexed_keys, key_from_text, key_to_text, renamed_key
from ..redis.snapshot import index_exists, real_name, snapshot_index
from ..redis.waiting import StillIndexing, wait_until_indexed
from .backups import backup_plan, choose_backup, verify_backup
from .phases import validate
from .phases.context import Context, MigrateOptions

# Phases after which the new index exists and has been waited for (online: and swapped in).
NEEDED = ("create", "wait")
ONLINE_NEEDED = ("create", "wait", "validate", "swap")


class StandaloneValidation(BaseModel):
    passed: bool
    source_index: str
    target_index: str
    plan_checksum: str
    backup_path: str
    migration_status: str
    migration_phase: str
    backup_verified: bool
    backup_problems: list = Field(default_factory=list)
    validation: Dict[str, Any] = Field(default_factory=dict)
    problems: list = Field(default_factory=list)


def find_migration(
    backup_dir: str, plan: Optional[MigrationPlan] = None, index: Optional[str] = None, client=None
) -> tuple[MigrationPlan, BackupStore]:
    """The migration to validate: the plan's backup, or the index's newest one not rolled back (found as
    rollback finds it: by the index's name before or after, or an alias)."""
    root = existing_backup_dir(backup_dir)
    if plan is not None:
        store = BackupStore.for_plan(root, plan.checksum)
        if store is None:
            raise BackupInvalid(
                f"no backup of plan {plan.plan_id} ({plan.source.index}) in {root}: that plan was never applied there",
                hint="check backup_dir, or apply the plan first",
            )
        refuse_links(store.directory)
        return plan, store
    store = choose_backup(root, index, client=client)
    return backup_plan(store), store


def _online(client, plan: MigrationPlan, store: BackupStore) -> Dict[str, Any]:
    """An online migration, after its swap: the new index has the target's definition, every name leads
    to it, the sampled documents are in it, and it failed no more documents than the source did. (Its
    count against the source was checked before the swap; writes go on after it, so not again here.)"""
    final = plan.final_index
    live = snapshot_index(client, final)
    found = live.snapshot.differs_from(plan.final_schema())
    names = {name: real_name(client, name) for name in plan.online.names}
    keys = [key_from_text(k) for k in plan.source.key_sample]
    prefix = plan.rewrites.prefix
    if prefix is not None:  # an online prefix change: the documents live under their new keys
        keys = [renamed_key(k, prefix.old, prefix.new) for k in keys]
    alive = [k for k in keys if client.exists(k)]
    indexed = indexed_keys(client, final, alive, require_search_results(client, f"cannot validate {final}"))
    missing = [key_to_text(k) for k in alive if k not in indexed]
    failures_before = int(plan.source.stats.get("hash_indexing_failures", 0))
    failures = live.stats.hash_indexing_failures
    problems = []
    if found:
        problems.append("schema differs from the target: " + "; ".join(found[:5]))
    wrong = sorted(name for name, index in names.items() if index != final)
    if wrong:
        problems.append(f"{', '.join(wrong)} do not lead to {final}")
    if missing:
        problems.append(f"{len(missing)} sampled document(s) missing from {final} (first: {missing[0]})")
    if failures > failures_before:
        problems.append(f"{final} failed to index {failures} documents, the source {failures_before}")
    return {
        "passed": not problems,
        "schema_match": not found,
        "schema_differences": found,
        "names": names,
        "doc_count_actual": live.stats.num_docs,
        "keys_checked": len(alive),
        "keys_missing": missing,
        "indexing_failures": failures,
        "indexing_failures_before": failures_before,
        "problems": problems,
    }


def _verified(store: BackupStore, plan: MigrationPlan) -> VerifyResult:
    """The backup verified as a rollback verifies it (rollback.verify_backup): what rollback refuses
    outright - a plan copy that is not the header's, a record outside the plan's scope, which a re-sealed
    forgery has with every checksum right - fails it too."""
    try:
        return verify_backup(store, plan)
    except BackupInvalid as err:
        return VerifyResult(ok=False, problems=[f"{err.message} (a rollback refuses this backup)"])


def _backup_problems(verification: VerifyResult) -> list:
    if verification.ok:
        return []
    return [
        "the backup fails verification (a rollback would refuse it, or not restore it all): "
        + "; ".join(verification.problems)
    ]


def validate_migration(
    client, plan: MigrationPlan, store: BackupStore, wait_timeout: float = 0.0
) -> StandaloneValidation:
    header = store.header
    if header.status in ("rolling_back", "rolled_back"):
        raise PreflightFailed(
            f"the migration of {plan.source.index} in {store.directory} was rolled back "
            f"({header.status}); there is no migration to validate",
            hint="validate the rollback's own result (redis_index_rollback), or apply the plan again",
        )
    needed = ONLINE_NEEDED if plan.mode == ONLINE else NEEDED
    if plan.online_layout is not None:
        needed += ("contract",)  # an online rewrite is over once the old bytes are gone
    if not all(store.phase(name).done for name in needed):
        raise PreflightFailed(
            f"the migration of {plan.source.index} stopped in phase {header.phase} ({header.status}) "
            "before its new index was built; nothing to validate yet",
            hint="resume it with redis_index_migrate (the same plan and backup_dir), then validate",
        )
    if not index_exists(client, plan.final_index):
        raise PreflightFailed(
            f"the migrated index {plan.final_index!r} does not exist (dropped since?)",
            hint="nothing to validate; roll back with redis_index_rollback to restore the source",
        )
    try:
        wait_until_indexed(client, plan.final_index, wait_timeout, steady=False)
    except StillIndexing as err:
        raise PreflightFailed(
            f"{plan.final_index} is still indexing after {wait_timeout:.0f} s ({err}); its count would be wrong",
            hint="wait for it, or raise wait_timeout",
        ) from None
    verification = _verified(store, plan)
    if plan.mode == ONLINE:
        checked = _online(client, plan, store)
        return _outcome(
            plan, store, verification, plan.final_index, checked, checked["problems"] + _backup_problems(verification)
        )
    ctx = Context(
        client=client,
        connect=lambda: client,
        plan=plan,
        source=plan.source_schema(),
        target=plan.target(),
        store=store,
        options=MigrateOptions(batch_size=header.batch_size),
    )
    try:
        result = validate.run(ctx, standalone=True)
    except FormatError as err:  # the sampled originals it compares with come from the backup's data
        raise BackupInvalid(
            f"the backup in {store.directory} cannot be read ({err}); the migrated index was not "
            "validated: " + "; ".join(verification.problems),
            hint="restore the backup directory from a copy; without it there is no way back",
        ) from None
    problems = list(result.problems) + _backup_problems(verification)
    return _outcome(plan, store, verification, plan.target_index, result.model_dump(mode="json"), problems)


def _outcome(
    plan: MigrationPlan,
    store: BackupStore,
    verification: VerifyResult,
    target_index: str,
    validation: Dict[str, Any],
    problems: List[str],
) -> StandaloneValidation:
    """The verdict: passed when nothing is wrong with the new index or the backup."""
    header = store.header
    return StandaloneValidation(
        passed=not problems,
        source_index=plan.source.index,
        target_index=target_index,
        plan_checksum=plan.checksum,
        backup_path=store.directory,
        migration_status=header.status,
        migration_phase=header.phase,
        backup_verified=verification.ok,
        backup_problems=verification.problems,
        validation=validation,
        problems=problems,
    )
