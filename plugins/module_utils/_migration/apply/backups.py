# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A migration's backup, found and trusted: by its plan or by the index, and verified against the plan
it carries before a rollback restores from it or a validation relies on it.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from ..backup.format import Record
from ..backup.links import refuse_links
from ..backup.store import PLAN, BackupStore, VerifyResult, list_backups
from ..core.errors import BackupInvalid, PlanInvalid
from ..planning.plan import MigrationPlan, read_plan
from ..redis.keyspace import covered_by, key_to_text
from ..redis.snapshot import real_name

# -- choosing the backup ------------------------------------------------------------------------------


def choose_backup(
    backup_dir: str, index: Optional[str] = None, plan_checksum: Optional[str] = None, client=None
) -> BackupStore:
    """The backup to roll back: this plan's newest attempt, or the index's newest not rolled back - the index
    named by its name before or after the migration, or by the alias the migration was planned through (with
    `client`, an alias is also resolved on the server, as migrate does). When every migration of the index is
    rolled back, the one rolled back last: it reports that nothing is left to roll back. A damaged backup of
    another index does not get in the way."""
    if plan_checksum:
        store = BackupStore.for_plan(backup_dir, plan_checksum)
        if store is None:
            raise BackupInvalid(
                f"no backup of plan {plan_checksum[:19]} in {backup_dir}",
                hint="check backup_dir, or choose the backup by index",
            )
        refuse_links(store.directory)
        return store
    names = {index}
    resolved = real_name(client, index) if client is not None and index else None
    if resolved:
        names.add(resolved)
    candidates = []
    for directory, header, error in list_backups(backup_dir):
        if header is None:
            if os.path.basename(directory).startswith(f"{index}-"):
                raise BackupInvalid(
                    f"a backup of {index} is damaged ({error})", hint="pass plan_file to choose the backup explicitly"
                )
            continue
        if names & {header.source_index, header.target_index} or _planned_as(directory, names):
            candidates.append((header.created_at, header.attempt, directory, header))
    if not candidates:
        raise BackupInvalid(f"no backup of index {index!r} in {backup_dir}", hint="check backup_dir and index")
    pending = [c for c in candidates if c[3].status != "rolled_back"]
    if pending:
        _created, _attempt, directory, header = max(pending, key=lambda c: (c[0], c[1]))
    else:  # a rolled-back header is written last by its rollback
        _created, _attempt, directory, header = max(candidates, key=lambda c: c[3].updated_at)
    refuse_links(directory)
    return BackupStore(directory, header)


def _planned_as(directory: str, names: set) -> bool:
    """Whether the backup's plan was made through one of `names` (an alias), or built the index of that name
    (an online migration's `<index>--v2`)."""
    try:
        plan = read_plan(os.path.join(directory, PLAN))
    except PlanInvalid:
        return False
    return bool(names & {plan.source.requested_as, plan.final_index})


def backup_plan(store: BackupStore) -> MigrationPlan:
    plan = read_plan(store.path(PLAN))
    if plan.checksum != store.header.plan_checksum:
        raise BackupInvalid(
            f"{store.path(PLAN)} is not the plan this backup was made for",
            hint="the backup directory was tampered with; restore it from a copy",
        )
    return plan


# -- what a record may touch ----------------------------------------------------------------------------


def _in_scope(plan: MigrationPlan) -> Callable[[Record], None]:
    """A check of one record against the plan: its key under the source prefixes (a key the migration
    renamed is recorded under its original name), its entries only the locations the plan changes.
    Raises BackupInvalid on the first record that is not, so nothing gets written."""
    prefixes = list(plan.source_schema().index.prefix)
    everything = not prefixes or "" in prefixes
    allowed = {location.encode() for location, _size, _absent in plan.backup_entries()}
    hint = "the backup was altered after it was made (its checksums can be recomputed); restore it from a copy"

    def check(record: Record) -> None:
        if not everything and not covered_by(record.key, prefixes):
            raise BackupInvalid(
                f"backup record {key_to_text(record.key)!r} is outside the index's key prefixes "
                f"({', '.join(repr(p) for p in prefixes)}): refused, nothing was written",
                hint=hint,
            )
        seen = set()
        for name, _value in record.entries:
            if name not in allowed or name in seen:
                what = "twice" if name in seen else "which the plan never changes"
                raise BackupInvalid(
                    f"backup record {key_to_text(record.key)!r} names location "
                    f"{key_to_text(name)!r} {what}: refused, nothing was written",
                    hint=hint,
                )
            seen.add(name)

    return check


def verify_backup(store: BackupStore, plan: MigrationPlan) -> VerifyResult:
    """Everything rollback verifies before it writes: the plan copy is the one the header names, every
    checksum, and every record within the plan's scope. Raises BackupInvalid for a plan copy that is not
    the header's or a record outside the scope (a rollback refuses the backup outright); the checksums'
    findings are in the result."""
    backup_plan(store)
    return store.verify(_in_scope(plan))
