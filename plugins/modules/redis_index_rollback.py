#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: roll a Redis search index migration back, fully and verifiably, from its backup."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_index_rollback
short_description: Roll a Redis search index migration back to exactly where it started
version_added: 0.1.0
description:
  - Finds the migration's backup in O(backup_dir) - by O(plan_file) or O(plan) exactly, or the newest one of
    O(index) not yet rolled back. Several backups of other indexes or plans may share the directory; a damaged
    backup of another index does not get in the way.
  - Verifies the backup before writing anything - the header's checksum, the record count, every record's CRC,
    every block's SHA-256 and the fingerprint over all blocks. A truncated or tampered backup is refused and nothing
    is written, unless O(partial=true), which restores the verified records and lists the others.
  - In the same pass, every record must name a key under the source index's prefixes and only locations (fields or
    JSONPaths) the plan changes. The checksums can be recomputed by anyone who can write the backup directory, so
    this is what stops a forged backup from writing outside the index - it is refused, even with O(partial=true),
    and nothing is written.
  - Restores the original bytes of every document the migration touched, bit for bit - vectors, renamed fields
    and renamed keys - atomically per key, by compare-and-set. A document is written only while it is in a state the
    migration left it in (or already in its original state); one the application changed since (or during) the
    migration is left exactly as it is, under whichever name it has, and counted in RV(conflicts). A document deleted
    after the backup was taken stays deleted (counted in RV(skipped_deleted)). A renamed hash field takes its place
    back - a small hash (listpack encoding) gets its original field order and C(DUMP) bytes, a hash table (no field
    order to keep) its contents.
  - Drops the target index (only when it is the plan's target), creates the source index again from the plan's
    exact definition (every option), re-points its aliases, waits until it has indexed everything and checks
    its schema, its document count and the restored bytes. Documents added after the migration are reported
    (C(documents_added) in RV(validation)), not refused - but those the restored index cannot index (written in the
    migrated layout, for example float16 vectors after a float32 to float16 migration) fail the validation
    (C(documents_added_not_indexed), and the indexing failures before and after). Conflicts may or may not fit the
    restored index and are discounted.
  - When that validation fails the task fails, the backup stays marked as rolling back (so C(redis_index_migrate)
    refuses to apply the plan again), and re-running changes nothing that is already restored. Fix the cause and
    re-run, or set O(accept_validation_failure=true) to finish the rollback with the problems recorded.
  - Works after a migration that completed, failed, or was killed in any phase. A second run reports
    C(changed=false). The backup is kept (marked rolled back); applying the same plan again afterwards makes a new
    backup and leaves this one intact.
extends_documentation_fragment:
  - indexops.redis_search.connection
  - indexops.redis_search.backup
  - indexops.redis_search.replication
attributes:
  check_mode:
    description: Verifies the backup and reports what would be restored; writes nothing.
  diff_mode:
    support: full
    description: The schema of the migrated index before and of the restored source index after (from the backup's
      plan), when something is (or in check mode would be) restored.
options:
  index:
    description:
      - The index whose newest migration to roll back - its name before or after the migration, or the alias the
        migration was run with (an alias the server still has is resolved, as C(redis_index_migrate) does).
    type: str
  plan_file:
    description:
      - The plan of the migration to roll back (selects its backup exactly).
    type: path
  plan:
    description:
      - The plan of the migration to roll back, as C(redis_index_plan) returned it.
    type: dict
  partial:
    description:
      - When the backup fails verification, restore the records that pass it instead of refusing, and list the
        others in RV(unverified). The document count is then not validated.
    type: bool
    default: false
  accept_validation_failure:
    description:
      - Finish a rollback whose validation fails instead of failing the task - for example when the source index
        was changed by hand in between, or documents changed by the application no longer fit it.
      - The documents are restored exactly as without this option (it never overwrites a conflict and never lifts
        the backup verification); only the outcome differs. The backup is marked rolled back with the failed
        validation recorded, RV(result) is V(rolled_back_validation_failed) and RV(problems) lists what failed, so
        the plan can be applied again or the problems fixed by hand.
    type: bool
    default: false
seealso:
  - module: indexops.redis_search.redis_index_migrate
"""

EXAMPLES = r"""
- name: Roll back the latest migration of products
  indexops.redis_search.redis_index_rollback:
    index: products
    backup_dir: /var/lib/indexops/backups
  register: undo

- name: Roll back one specific migration
  indexops.redis_search.redis_index_rollback:
    plan_file: /var/lib/indexops/products-plan.yaml
    backup_dir: /var/lib/indexops/backups

- name: See what a rollback would restore (the backup is verified, nothing is written)
  indexops.redis_search.redis_index_rollback:
    index: products
    backup_dir: /var/lib/indexops/backups
  check_mode: true
  register: preview

- name: Finish a rollback whose validation keeps failing, and keep the problems on record
  indexops.redis_search.redis_index_rollback:
    index: products
    backup_dir: /var/lib/indexops/backups
    accept_validation_failure: true
  register: finished

- name: Salvage what a damaged backup still holds
  indexops.redis_search.redis_index_rollback:
    index: products
    backup_dir: /var/lib/indexops/backups
    partial: true
  register: salvage
"""

RETURN = r"""
result:
  description:
    - V(rolled_back), V(already_rolled_back), or in check mode V(would_roll_back).
    - V(rolled_back_validation_failed) when O(accept_validation_failure=true) finished a rollback whose validation
      failed (see RV(problems)).
  returned: always
  type: str
backup_path:
  description: The backup that was used.
  returned: always
  type: str
source_index:
  description: The index as it was before the migration, now restored.
  returned: always
  type: str
target_index:
  description: The index the migration had created.
  returned: always
  type: str
records:
  description: Documents in the backup (in check mode, that would be restored).
  returned: always
  type: int
restored:
  description: Documents whose original bytes (and key name) were written back.
  returned: always
  type: int
already_restored:
  description: Documents that already held their original bytes under their original name (an earlier run restored
    them, or the migration never got to them); nothing was written to them.
  returned: always
  type: int
skipped_deleted:
  description: Documents deleted after the backup was taken; they were left deleted.
  returned: always
  type: int
skipped_keys:
  description: The first of those keys.
  returned: always
  type: list
  elements: raw
conflicts:
  description:
    - Documents left exactly as they are because they are in no state the migration left them in - the application
      changed (or deleted) a backed-up field or vector since the backup was taken - or because keys of both their
      original and their new name exist. They may not fit the restored index; validation discounts them.
  returned: always
  type: int
conflict_keys:
  description: The first 100 of those documents, by their original key name.
  returned: always
  type: list
  elements: raw
superseded:
  description: >-
    Records an online rewrite's catch-up recorded again, after the application changed their documents in the
    online window: each such document goes back to its newest record (the application's last write before the
    catch-up), not to the bytes from before the window; the older records are not restored.
  returned: always
  type: int
application_writes:
  description: >-
    Documents of an online rewrite that the application changed after their expand and no catch-up recorded (a
    write after the catch-up's last look, or a rollback before the catch-up ran): kept as the application wrote
    them, with what the migration had added beside them (a side field, a renamed field's new name) removed.
  returned: always
  type: int
application_keys:
  description: The first 100 of those documents.
  returned: always
  type: list
  elements: raw
unverified:
  description: With O(partial), records that failed verification and were not restored (block, record, key).
  returned: always
  type: list
  elements: dict
verification:
  description: What the verification found (blocks, records, problems, truncated, bad blocks and records).
  returned: always
  type: dict
dropped_target:
  description: Whether the target index was dropped.
  returned: always
  type: bool
recreated_source:
  description: Whether the source index was created again.
  returned: always
  type: bool
aliases:
  description: Aliases pointed back at the source index.
  returned: always
  type: list
  elements: str
validation:
  description:
    - Schema match and differences, document count expected (before the migration, less deleted documents) and
      found, C(documents_added) (written after the backup - indexed beyond that, or refused by the restored index),
      C(documents_added_not_indexed) (of those, refused), C(indexing_failures_before) (the source's, when planned)
      and C(indexing_failures_after) (the restored index's), C(documents_conflicting), C(documents_deleted), restored
      values read back and compared (conflicts are not read back), C(passed) and C(problems).
  returned: always
  type: dict
problems:
  description: What validation found wrong, one sentence each; empty when it passed.
  returned: always
  type: list
  elements: str
diff:
  description: The migrated index's schema before and the restored source schema after (with C(--diff)).
  returned: when diff mode is on and something is (or in check mode would be) rolled back
  type: dict
"""

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup.store import (
    PLAN,
    existing_backup_dir,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import (
    read_plan,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.capabilities import (
    detect_capabilities,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback
from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import (
    replication_argument_spec,
    replication_options,
    run_with_client,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._plan_inputs import (
    given_plan,
    migration_module,
    schema_diff,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._progress_channel import open_channel


def roll_back(module, client) -> dict:
    params = module.params
    backup_dir = existing_backup_dir(params["backup_dir"])
    plan = given_plan(params)
    store = choose_backup(backup_dir, params["index"], plan.checksum if plan else None, client=client)
    cluster = detect_capabilities(client, probe=False).cluster_enabled
    changed, result = rollback(
        client,
        store,
        partial=params["partial"],
        wait_timeout=params["wait_timeout"],
        check_mode=module.check_mode,
        cluster=cluster,
        accept_validation_failure=params["accept_validation_failure"],
        replication=replication_options(params),
    )
    answer = {"changed": changed, **result.model_dump(mode="json")}
    if module._diff and changed:  # pylint: disable=protected-access
        answer["diff"] = rollback_diff(read_plan(store.path(PLAN)))
    return answer


def rollback_diff(plan) -> dict:
    """The migration's schema diff the other way round: from what it made back to what it started from."""
    forward = schema_diff(plan)
    return {
        "before_header": f"{plan.target_index} (migrated)",
        "after_header": f"{plan.source.index} (restored)",
        "before": forward["after"],
        "after": forward["before"],
    }


def main() -> None:
    module = migration_module(
        {
            **replication_argument_spec(),
            "partial": {"type": "bool", "default": False},
            "accept_validation_failure": {"type": "bool", "default": False},
        }
    )
    open_channel()  # progress lines in the job output, and a cancelled job's run stops
    run_with_client(module, lambda client, _settings: roll_back(module, client), index=module.params["index"])


if __name__ == "__main__":
    main()
