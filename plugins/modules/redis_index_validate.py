#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: validate a completed migration against its plan and backup, changing nothing."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_index_validate
short_description: Check a completed Redis search index migration against its plan and backup, read-only
version_added: 0.1.0
description:
  - Finds the migration's backup in O(backup_dir) - by O(plan_file) or O(plan) exactly, or the newest one of O(index)
    not rolled back - and checks the migrated index as the migration's own last phase does, without applying,
    locking or writing anything.
  - "Checks: the live schema equals the plan's target; the document count equals the source's when the migration
    started (less documents deleted meanwhile; documents someone else changed meanwhile are discounted; documents
    deleted after the migration's own validation are counted in C(documents_deleted_since_migration), not
    discounted, so the count fails); the plan's
    sampled keys exist; the sampled vectors equal the conversion of their backed-up originals; a KNN query with each
    sampled document's own vector finds it, or only documents at least as near by their own stored vectors (under
    IP a longer vector may outrank it); indexing failures did not rise above the source's; and the backup itself
    verifies completely (what a rollback would need)."
  - An approximate source (HNSW) may have counted fewer documents than it had keys - those it failed to index count as
    indexing failures - and a FLAT target may index them. So up to the source's indexing failures more documents
    are accepted, and reported in C(documents_beyond_source) of RV(validation).
  - Validate before the application writes again, or expect the document count to differ by what it wrote.
  - "An online migration (the plan's C(mode) V(online)) is checked once swapped in: the new index has the target's
    definition, every name the swap moved (the source's name and aliases) leads to it, the sampled documents are in
    it, and it failed to index no more documents than the source had. Its document count was compared with the
    live source's before the swap; the application writes on after it, so it is reported, not compared."
extends_documentation_fragment:
  - indexops.redis_search.connection
  - indexops.redis_search.backup
attributes:
  check_mode:
    description: The module only reads; check mode does the same.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
options:
  index:
    description:
      - The index whose newest migration to validate - its name before or after the migration, or the alias the
        migration was run with (an alias the server still has is resolved, as C(redis_index_migrate) does).
    type: str
  plan_file:
    description:
      - The plan of the migration to validate (selects its backup exactly).
    type: path
  plan:
    description:
      - The plan of the migration to validate, as C(redis_index_plan) returned it.
    type: dict
  backup_dir:
    description:
      - The directory the migration backed up to. It is only read.
  wait_timeout:
    description:
      - Seconds to wait for the migrated index to finish indexing before checking it (V(0) - check it as it is).
  fail_on_problems:
    description:
      - Fail the task when validation finds a problem (the findings are returned either way). With V(false) the task
        succeeds and RV(passed=false) says so.
    type: bool
    default: true
notes:
  - Why a module and not an option of C(redis_index_migrate) - validating never applies anything, needs only read
    rights and no C(accept_data_loss), and works on a migration whose plan was applied elsewhere (by a batch, say);
    a separate module keeps C(redis_index_migrate)'s contract (it changes the index) and lets a job template be
    allowed to validate without being allowed to migrate.
seealso:
  - module: indexops.redis_search.redis_index_migrate
  - module: indexops.redis_search.redis_index_batch
  - module: indexops.redis_search.redis_index_rollback
"""

EXAMPLES = r"""
- name: Validate the products migration against its reviewed plan and backup
  indexops.redis_search.redis_index_validate:
    plan_file: /var/lib/indexops/products-plan.yaml
    backup_dir: /var/lib/indexops/backups
  register: check

- name: Validate every index a batch migrated, reporting rather than failing
  indexops.redis_search.redis_index_validate:
    index: "{{ item.name }}"
    backup_dir: /var/lib/indexops/backups
    fail_on_problems: false
  loop: "{{ batch_run.indexes | selectattr('status', 'equalto', 'succeeded') | list }}"
  loop_control:
    label: "{{ item.name }}"
  register: checks
"""

RETURN = r"""
changed:
  description: Always V(false) - nothing is written.
  returned: always
  type: bool
passed:
  description: Whether every check passed.
  returned: always
  type: bool
problems:
  description: What is wrong, one sentence each; empty when it passed.
  returned: always
  type: list
  elements: str
validation:
  description:
    - The checks in detail - schema_match and schema_differences, doc_count_expected, doc_count_actual,
      documents_beyond_source (accepted from an approximate source), indexing_failures_before and
      indexing_failures_after, keys_checked and keys_missing, vectors_compared and vectors_differing, knn_checked,
      knn_missed, knn_outranked (queries whose document others rightly outrank) and knn_unjudged (queries whose
      results could not be read back, not a failure), documents_gone, documents_deleted_since_migration and
      documents_conflicting.
  returned: always
  type: dict
backup_path:
  description: The migration's backup directory.
  returned: always
  type: str
backup_verified:
  description:
    - Whether the backup verified as C(redis_index_rollback) verifies it - the header, the plan copy, every block
      and record, and every record within the plan's key prefixes and locations (a re-sealed forgery has every
      checksum right, and a rollback refuses it).
  returned: always
  type: bool
backup_problems:
  description: What the backup verification found.
  returned: always
  type: list
  elements: str
migration_status:
  description: The migration's status in its backup header (V(completed), or V(failed) when it stopped in validation).
  returned: always
  type: str
migration_phase:
  description: The phase the migration's header records.
  returned: always
  type: str
source_index:
  description: The index before the migration.
  returned: always
  type: str
target_index:
  description: The index after the migration (the one checked).
  returned: always
  type: str
plan_checksum:
  description: The checksum of the migration's plan.
  returned: always
  type: str
"""

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.standalone_validate import (
    find_migration,
    validate_migration,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import ValidationFailed
from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import run_with_client
from ansible_collections.indexops.redis_search.plugins.module_utils._plan_inputs import given_plan, migration_module


def check(module, client) -> dict:
    params = module.params
    plan, store = find_migration(params["backup_dir"], given_plan(params), params["index"], client=client)
    found = validate_migration(client, plan, store, wait_timeout=params["wait_timeout"])
    result = {"changed": False, **found.model_dump(mode="json")}
    if not found.passed and params["fail_on_problems"]:
        raise ValidationFailed(
            f"validation of {found.target_index} failed: " + "; ".join(found.problems),
            hint="nothing was changed; see problems and validation (fail_on_problems=false reports without failing)",
            details=result,
        )
    return result


def main() -> None:
    module = migration_module({"fail_on_problems": {"type": "bool", "default": True}})
    run_with_client(module, lambda client, _settings: check(module, client), index=module.params["index"])


if __name__ == "__main__":
    main()
