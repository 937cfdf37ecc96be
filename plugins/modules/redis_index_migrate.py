#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: apply a schema migration of a Redis search index, crash-safe, with a backup."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_index_migrate
short_description: Apply a schema change to a Redis search index with a backup, resume and validation
version_added: 0.1.0
description:
  - Applies a plan made by C(redis_index_plan) (O(plan_file) or O(plan)), or plans O(index) with a patch or
    target schema on the fly and applies that.
  - "Before the first write: the live index must equal the plan's snapshot and be fully indexed, the target name
    must be free, the server must accept the target's vectors, O(backup_dir) must be writable with room for the
    backup, and the index's lock is taken (a second concurrent migration or rollback of the same index is refused)."
  - "Then, each phase resumable: C(backup) (enumerate the documents and write every byte that will change, while
    the index still serves; vectors of the wrong size or values the target type cannot hold stop it here),
    C(drop), C(move_fields), C(rename_keys), C(quantize) (vectors re-encoded from the backup's originals),
    C(create) (the exact target schema, aliases re-pointed), C(wait) and C(validate) (schema, document count,
    sampled keys, KNN self-queries)."
  - Every document write is conditional and atomic per key, so a key deleted during the migration stays deleted and
    a value changed by someone else is kept (and reported) rather than overwritten.
  - Re-running the same task after a crash or failure continues where it stopped. After success it reports
    RV(changed=false).
extends_documentation_fragment:
  - indexops.redis_search.connection
  - indexops.redis_search.planning
  - indexops.redis_search.planning.sampling
  - indexops.redis_search.backup
  - indexops.redis_search.replication
  - indexops.redis_search.benchmark
attributes:
  check_mode:
    description: Plans (when needed), estimates and runs the read-only preflight checks; writes nothing to Redis or disk.
  diff_mode:
    support: full
    description: Shows the index schema before and after, as YAML.
options:
  plan_file:
    description:
      - A plan file written by C(redis_index_plan). An edited plan is refused.
      - Mutually exclusive with O(plan) and with planning on the fly (O(patch), O(patch_file), O(target_schema),
        O(target_schema_file)).
    type: path
  plan:
    description:
      - A plan as returned by C(redis_index_plan) (its RV(indexops.redis_search.redis_index_plan#module:plan)).
    type: dict
  workers:
    description:
      - Processes that back up and rewrite documents in parallel, each with its own connection. V(1) works in-process.
    type: int
    default: 1
  accept_data_loss:
    description:
      - Required when the migration converts vectors to a type that cannot hold every value exactly (for example
        float32 to float16). The original bytes stay in the backup either way.
    type: bool
    default: false
  report_out:
    description:
      - Also write the migration report (YAML) here. It is always written into the backup as well.
    type: path
  finish:
    description:
      - Finish an online migration planned with O(cutover=side_by_side) that stopped with its new index serving beside
        the source (RV(result) V(side_by_side)) - the swap of the names to the new index, then the contract step that
        removes the old bytes. Without it, such a migration stops again (or stays) side by side and reports
        C(changed=false).
      - Has no effect on other migrations.
    type: bool
    default: false
notes:
  - "The index is unavailable from the drop until the new index has indexed every document: stop the
    application's reads and writes for that window (the C(indexops.redis_search.write_quiesce) role, or your own
    switch)."
  - Run long migrations with C(async) and follow them with C(redis_index_info) and O(backup_dir).
seealso:
  - module: indexops.redis_search.redis_index_plan
  - module: indexops.redis_search.redis_index_info
"""

EXAMPLES = r"""
- name: Apply a reviewed plan
  indexops.redis_search.redis_index_migrate:
    plan_file: /var/lib/indexops/products-plan.yaml
    backup_dir: /var/lib/indexops/backups
    accept_data_loss: true  # float32 -> float16
    report_out: /var/lib/indexops/products-report.yaml
    benchmark_out: /var/lib/indexops/products-benchmark.yaml
  register: migration

- name: Plan and apply in one task (re-running it resumes after a crash; after success it changes nothing)
  indexops.redis_search.redis_index_migrate:
    index: products
    patch:
      version: 1
      changes:
        update_fields:
          - name: embedding
            attrs: {datatype: float16}
    backup_dir: /var/lib/indexops/backups
    accept_data_loss: true
    workers: 4

- name: A long migration in the background, followed from another task
  indexops.redis_search.redis_index_migrate:
    plan_file: plans/catalog.yaml
    backup_dir: /var/lib/indexops/backups
    wait_timeout: 3600
  async: 7200
  poll: 0
  register: job
"""

RETURN = r"""
changed:
  description: Whether anything was (or in check mode would be) changed.
  returned: always
  type: bool
result:
  description:
    - V(succeeded), V(already_completed) (an earlier run of this plan - or, planning on the fly, of the same
      request - finished and the live index matches),
      V(nothing_to_do) (the index already has the requested schema), or in check mode V(would_migrate) or
      V(would_resume).
  returned: always
  type: str
backup_path:
  description: This migration's backup directory (inside O(backup_dir)).
  returned: when a backup exists
  type: str
report:
  description:
    - The migration report - phases with their durations and counters (documents written, already done, gone,
      conflicts), downtime_seconds, quant_params (for int8/uint8, how applications must encode queries), quality
      (recall@10 and errors on a sample, for lossy conversions), validation and warnings.
    - C(conflicts) counts the documents left as the application wrote them. C(caught_up) counts the documents an
      online rewrite's catch-up (phase C(catch_up), right before the swap) found changed or added by the
      application since the backup and expanded again from their current bytes, each once; the phase's counters
      add C(changed), C(added), C(rounds), C(still_changed) and C(not_rewritable), and a warning says what a
      write after the catch-up's last look is left as. C(documents) counts each document once.
  returned: always
  type: dict
plan:
  description: The plan that was applied (made on the fly, or read from O(plan_file)).
  returned: always
  type: dict
summary:
  description: The plan's summary, one line per item.
  returned: always
  type: list
  elements: str
phase:
  description: On failure, the phase it stopped in.
  returned: failure
  type: str
source_index_exists:
  description: On failure, whether the source index still exists (V(false) once it was dropped).
  returned: failure
  type: bool
report_path:
  description: On failure, where the report of the failed run was written.
  returned: failure
  type: str
diff:
  description: The schema before and after (with C(--diff)).
  returned: when diff mode is on and something changes
  type: dict
"""

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import migrate
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.preflight import (
    require_requested_index,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.resume_lookup import (
    completed_plan,
    unfinished_plan,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import summarize
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import connect
from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import (
    backup_argument_spec,
    benchmark_argument_spec,
    build_module,
    replication_argument_spec,
    run_with_client,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._plan_inputs import (
    CHANGE_OPTIONS,
    given_plan,
    migrate_options,
    plan_from_params,
    planning_argument_spec,
    requested_from_params,
    schema_diff,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._progress_channel import open_channel


def apply(module, client, settings) -> dict:
    params = module.params
    plan = given_plan(params)
    if plan is None:
        # Re-running the same task after its migration changed Redis continues that migration, or after
        # it completed reports it done (the request may not fit the migrated index: a renamed field).
        requested = requested_from_params(params)
        plan = (
            unfinished_plan(params["backup_dir"], params["index"], requested)
            or completed_plan(client, params["backup_dir"], params["index"], requested)
            or plan_from_params(client, params, settings.endpoint, params["backup_dir"])
        )
    require_requested_index(plan, params["index"])
    options = migrate_options(params)
    outcome = migrate(
        client,
        lambda: connect(settings),
        plan,
        params["backup_dir"],
        options,
        check_mode=module.check_mode,
        report_out=params["report_out"],
        endpoint=settings.endpoint,
        benchmark_out=params["benchmark_out"],
    )
    report = outcome.report
    result = {
        "changed": outcome.changed,
        "result": report.result,
        "report": report.model_dump(mode="json"),
        "plan": plan.to_dict(),
        "summary": summarize(plan),
    }
    if report.backup_path:
        result["backup_path"] = report.backup_path
    if module._diff and outcome.changed:  # pylint: disable=protected-access
        result["diff"] = schema_diff(plan)
    for warning in report.warnings if outcome.changed else ():
        module.warn(warning)
    return result


def main() -> None:
    spec = planning_argument_spec()
    spec.update(backup_argument_spec())
    spec.update(benchmark_argument_spec())
    spec.update(replication_argument_spec())
    spec.update(
        {
            "plan_file": {"type": "path"},
            "plan": {"type": "dict"},
            "workers": {"type": "int", "default": 1},
            "accept_data_loss": {"type": "bool", "default": False},
            "report_out": {"type": "path"},
            "finish": {"type": "bool", "default": False},
        }
    )
    sources = ["plan_file", "plan"] + CHANGE_OPTIONS
    module = build_module(
        spec,
        libraries=("redis", "pydantic", "PyYAML", "numpy"),
        exactly_one_of=sources,
        required_by={option: "index" for option in CHANGE_OPTIONS},
    )
    open_channel()  # progress lines in the job output, and a cancelled job's run stops
    run_with_client(module, lambda client, settings: apply(module, client, settings), index=module.params["index"])


if __name__ == "__main__":
    main()
