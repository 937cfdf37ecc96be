#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: one schema patch across many Redis search indexes, planned once, applied to the end."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_index_batch
short_description: Apply one schema change to many Redis search indexes, reviewed once, resumable to the end
version_added: 0.1.0
description:
  - "O(state=planned): plans the shared patch on every selected index (a list, a glob pattern or a file of names),
    each with the same sealed plan C(redis_index_plan) makes. An index the patch does not fit (for example it names a
    field the index lacks), an index with nothing to do and an index whose change is blocked are skipped, each with
    its reason. The batch is refused when two applicable indexes of one key type have overlapping prefixes (before or
    after their prefix changes), or when any other index reads the vectors or fields a plan would rewrite.
    O(plan_out) receives the batch plan: every per-index plan, the selection, the patch and O(failure_policy), sealed
    by one checksum (and the batch's own fields also sealed into every per-index plan, so that editing one is
    refused)."
  - "O(state=applied): runs the reviewed batch plan, index by index in order, each through the engine of
    C(redis_index_migrate) (preflight, lock, backup, phases, validation) into the same O(backup_dir). Every lossy
    conversion of the run must be accepted (O(accept_data_loss)) before the first index starts. An index that
    changed since planning fails with that reason and nothing of it is changed. After every index a state file is
    replaced atomically; at the end a batch report is written. Re-running the same task continues where it stopped;
    after success it reports RV(changed=false)."
  - "O(state=resumed): continues a started batch from its state file (the batch plan and O(backup_dir) it was started
    with; another one is refused). O(retry_failed=true) also retries the failed indexes - one that failed after its
    index was dropped continues from its own plan and backup, in the phase it stopped in."
  - "O(state=status): reads the state file (never Redis) and says, readably, how many indexes succeeded, failed,
    are pending or skipped, why each failed and what a resume would do."
extends_documentation_fragment:
  - indexops.redis_search.connection
  - indexops.redis_search.planning.sampling
  - indexops.redis_search.backup
  - indexops.redis_search.replication
  - indexops.redis_search.benchmark
attributes:
  check_mode:
    description:
      - O(state=planned) plans the same way and writes no file; O(state=applied) and O(state=resumed) run each
        pending index's read-only preflight (as C(redis_index_migrate) does in check mode) and write nothing.
  diff_mode:
    support: full
    description:
      - One diff per index - its schema before and after, from its plan in the batch plan - for every applicable
        index with O(state=planned), and with O(state=applied) or O(state=resumed) for every index this run
        migrated (in check mode, would migrate).
options:
  state:
    description:
      - What to do. V(planned) plans (read-only but for each index's throwaway create check), V(applied) runs a
        batch plan, V(resumed) continues a started one, V(status) reports on one.
    type: str
    choices: [planned, applied, resumed, status]
    default: planned
  indexes:
    description:
      - The indexes (or aliases) of the batch, in the order they are migrated.
      - One of O(indexes), O(pattern) and O(indexes_file) is required with O(state=planned).
    type: list
    elements: str
  pattern:
    description:
      - A glob pattern (V(*), V(?), V([...])) over the server's index names, for example V(products_*). The matches are
        migrated in name order.
    type: str
  indexes_file:
    description:
      - A file with one index name a line (blank lines and lines starting with V(#) are ignored), in migration order.
    type: path
  patch:
    description:
      - The change, as a schema patch - the same strict format as O(indexops.redis_search.redis_index_plan#module:patch)
        (V(version=1), C(changes) with C(add_fields), C(remove_fields), C(update_fields), C(rename_fields), C(index)).
        It is applied to every selected index.
      - One of O(patch) and O(patch_file) is required with O(state=planned).
    type: dict
  patch_file:
    description:
      - Path of a YAML schema patch (same format as O(patch)).
    type: path
  aliases:
    description:
      - Aliases per index, as a mapping of index name to a list of aliases (see
        O(indexops.redis_search.redis_index_plan#module:aliases)) - servers before search 8.10 cannot list them, and
        C(FT.DROPINDEX) drops them.
    type: dict
    default: {}
  mode:
    description:
      - How each index's migration reaches its target, as in C(redis_index_plan) - V(auto) (online where the window
        fits in memory, including changes that rewrite documents), V(online) or V(drop_recreate) (forces the drop and
        recreate path for every index).
    type: str
    choices: [auto, online, drop_recreate]
    default: auto
  failure_policy:
    description:
      - What O(state=applied) does when an index fails, recorded in the batch plan. V(fail_fast) stops (the rest stay
        pending), V(continue_on_error) goes on with the next index. Either way the task fails when an index failed.
    type: str
    choices: [fail_fast, continue_on_error]
    default: fail_fast
  plan_out:
    description:
      - Where O(state=planned) writes the batch plan (YAML), atomically and only when its content changed.
      - Not written when the batch is refused.
    type: path
  plan_file:
    description:
      - The batch plan to apply, resume or report on (written by O(state=planned)). An edited plan is refused.
      - Required with O(state=applied). With O(state=resumed) and O(state=status), O(plan_file) or O(state_file).
    type: path
  state_file:
    description:
      - The batch state file (JSON). Defaults to the batch plan's path with C(.state.json) for its extension, and the
        batch report goes beside it (C(.report.yaml)).
      - It records the batch plan's checksum and the backup directory; a run with another plan or another
        O(backup_dir) is refused, and so is a state that an index's backup header or the server contradicts (an
        index it calls succeeded whose migration did not complete).
    type: path
  backup_dir:
    description:
      - Directory that holds the backups, on the host running the module. Each index's migration gets its own
        subdirectory C(<index>-<plan id>) (mode 0700, files 0600), exactly as with C(redis_index_migrate); backups
        are never deleted or overwritten by this collection. Created when missing.
      - Required with O(state=applied). With O(state=resumed) the state file's is used when omitted, and another one
        is refused. With O(state=planned), the estimates say whether it has room.
    required: false
  accept_data_loss:
    description:
      - Required when any index of the run converts vectors to a type that cannot hold every value exactly (for
        example float32 to float16). Checked for every index before the first one starts.
    type: bool
    default: false
  retry_failed:
    description:
      - With O(state=applied) or O(state=resumed), also run the indexes that failed before, each continuing from its
        own backup (or from the start when nothing of it was changed).
    type: bool
    default: false
  workers:
    description:
      - Processes that back up and rewrite documents in parallel within each index's migration.
    type: int
    default: 1
  report_out:
    description:
      - Also write the batch report (YAML) here.
    type: path
notes:
  - Each index is unavailable from its drop until its new index has indexed every document; stop the application's
    reads and writes of the batch's indexes for the run.
  - Roll back any index of the batch afterwards with C(redis_index_rollback) (its name and the same O(backup_dir)).
  - See the collection's C(docs/batch.md) for the files and a worked example.
seealso:
  - module: indexops.redis_search.redis_index_plan
  - module: indexops.redis_search.redis_index_migrate
  - module: indexops.redis_search.redis_index_rollback
  - module: indexops.redis_search.redis_index_validate
"""

EXAMPLES = r"""
- name: Plan float32 -> float16 on every products_* index (review the plan file, then apply it)
  indexops.redis_search.redis_index_batch:
    state: planned
    pattern: "products_*"
    patch:
      version: 1
      changes:
        update_fields:
          - name: embedding
            attrs: {datatype: float16}
    failure_policy: fail_fast
    plan_out: /var/lib/indexops/quantize-batch.yaml
    backup_dir: /var/lib/indexops/backups
  register: batch_plan

- name: Show what the batch will do
  ansible.builtin.debug:
    var: batch_plan.summary

- name: Apply the reviewed batch plan (re-running this task continues where it stopped)
  indexops.redis_search.redis_index_batch:
    state: applied
    plan_file: /var/lib/indexops/quantize-batch.yaml
    backup_dir: /var/lib/indexops/backups
    accept_data_loss: true
  register: batch_run

- name: Where does the batch stand? (readable in the AWX job output)
  indexops.redis_search.redis_index_batch:
    state: status
    plan_file: /var/lib/indexops/quantize-batch.yaml
  register: batch_status

- name: Print it
  ansible.builtin.debug:
    var: batch_status.summary

- name: Finish the batch, retrying the indexes that failed (each from its own backup)
  indexops.redis_search.redis_index_batch:
    state: resumed
    plan_file: /var/lib/indexops/quantize-batch.yaml
    retry_failed: true
    accept_data_loss: true

- name: Indexes listed in a file, continue past failures
  indexops.redis_search.redis_index_batch:
    state: planned
    indexes_file: files/tenant-indexes.txt
    patch_file: files/add-sortable-created.yaml
    failure_policy: continue_on_error
    plan_out: plans/tenants.yaml
"""

RETURN = r"""
changed:
  description:
    - O(state=planned) - whether O(plan_out) was (or in check mode would be) written; in check mode also when an index
      would be migrated.
    - O(state=applied) and O(state=resumed) - whether any index was changed (or in check mode would be).
  returned: always
  type: bool
result:
  description:
    - The batch's status - V(not_started), V(running) (interrupted, resume it), V(completed) (every applicable index
      succeeded), V(partial_failure) (every index ran, some failed), V(failed) (O(failure_policy=fail_fast) stopped
      with indexes still pending); in check mode V(would_apply); V(planned) for O(state=planned).
  returned: always
  type: str
  sample: completed
batch_id:
  description: The batch plan's id - the 12 characters after C(sha256:) in its checksum.
  returned: always
  type: str
summary:
  description: A readable account, one line per item - the counts, one line per index, what a resume would do.
  returned: always
  type: list
  elements: str
  sample:
    - "batch 6c1e0f3a9b27 (fail_fast, 4 indexes): failed - 1 succeeded, 1 failed, 1 pending, 1 skipped"
    - "  succeeded idx_b: succeeded, 300 documents in 1.4 s (backup /var/lib/indexops/backups/idx_b-41d9c2e07a10)"
    - "  FAILED    idx_c: migration stopped in phase quantize: ...; the index was dropped; backup ..."
    - "  pending   idx_d"
    - "  skipped   idx_a: the patch does not fit this index: update_fields: unknown field 'embedding' ..."
    - "next: resume migrates idx_d"
indexes:
  description:
    - One entry per selected index, in batch order. For O(state=planned) - name, applicable, skip_reason, source and
      target index, storage, prefixes, target_prefixes, documents, rewrites_documents, lossy, backup_bytes,
      plan_checksum.
    - Otherwise - name, status (V(pending), V(running), V(succeeded), V(failed), V(skipped)), result (the migration's),
      changed, attempts, started_at, finished_at, duration_seconds, documents, backup_path, report_path,
      validation_passed, skip_reason and error (message, kind, hint, phase, index_dropped).
  returned: always
  type: list
  elements: dict
counts:
  description: How many indexes are succeeded, failed, running, pending and skipped.
  returned: unless O(state=planned)
  type: dict
failures:
  description:
    - The failed indexes - name, error, kind, hint, phase (where its migration stopped), index_dropped (whether its
      index was dropped before it stopped) and backup_path.
  returned: unless O(state=planned)
  type: list
  elements: dict
next:
  description: What O(state=resumed) would do, index by index, and what O(retry_failed) would add.
  returned: unless O(state=planned)
  type: list
  elements: str
ran:
  description: The indexes this run migrated (or tried to), in order.
  returned: when O(state=applied) or O(state=resumed)
  type: list
  elements: str
would:
  description: In check mode, each index's dry-run result (V(would_migrate), V(would_resume), V(would_fail) with the error).
  returned: in check mode, when O(state=applied) or O(state=resumed)
  type: list
  elements: dict
state_file:
  description: The batch state file.
  returned: unless O(state=planned)
  type: str
report_file:
  description: The batch report (YAML) - the counts, total duration and each index's result.
  returned: unless O(state=planned)
  type: str
applicable:
  description: The names of the indexes the batch plan migrates.
  returned: when O(state=planned)
  type: list
  elements: str
skipped_indexes:
  description:
    - The indexes the batch plan skips, each with its reason.
    - Not C(skipped), which Ansible reserves for a skipped task (a list there made the task show as skipped, and
      ansible-core 2.21 turns it into a boolean).
  returned: when O(state=planned)
  type: list
  elements: dict
conflicts:
  description:
    - When the batch is refused, the pairs of indexes that share keys - indexes, kind (V(overlapping_prefixes) or
      V(shared_keys)) and reason.
  returned: when O(state=planned) refuses the batch
  type: list
  elements: dict
batch_plan:
  description: The batch plan (what O(plan_out) holds), including every per-index plan.
  returned: when O(state=planned)
  type: dict
plan_path:
  description: The path of the batch plan file.
  returned: when O(plan_out) is given
  type: str
diff:
  description: Each index's schema before and after, one diff per index (with C(--diff)).
  returned: when diff mode is on and an index is (or would be) planned or migrated
  type: list
  elements: dict
"""

import os

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.batch.apply import (
    apply_batch,
    open_batch,
    outcome_result,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.batch.plan import (
    create_batch_plan,
    entry_summaries,
    read_batch_plan,
    resolve_selection,
    summarize_batch,
    write_batch_plan,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.batch.status import current_status
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import PlanInvalid
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.yamlio import read_yaml
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import connect
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import parse_patch
from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import (
    backup_argument_spec,
    benchmark_argument_spec,
    build_module,
    connection_settings,
    fail_from_exception,
    replication_argument_spec,
    run_with_client,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._plan_inputs import (
    migrate_options,
    planning_argument_spec,
    schema_diff,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._progress_channel import open_channel

SELECTIONS = {"indexes": "list", "pattern": "pattern", "indexes_file": "file"}
SHARED_PLANNING_OPTIONS = (
    "patch",
    "patch_file",
    "audit_sample_size",
    "audit_all",
    "key_sample_size",
    "batch_size",
    "mode",
)


def plan_batch(module, client, settings) -> dict:
    params = module.params
    option = next(name for name in SELECTIONS if params[name] is not None)
    selection = resolve_selection(client, SELECTIONS[option], params[option])
    if params["patch"] is not None:
        patch = parse_patch(params["patch"], "patch")
    else:
        patch = parse_patch(read_yaml(params["patch_file"], "patch"), f"patch file {params['patch_file']}")
    batch = create_batch_plan(
        client,
        selection,
        patch,
        failure_policy=params["failure_policy"],
        aliases=params["aliases"],
        audit_sample=params["audit_sample_size"],
        audit_all=params["audit_all"],
        key_sample=params["key_sample_size"],
        backup_dir=params["backup_dir"],
        batch_size=params["batch_size"],
        endpoint=settings.endpoint,
        mode=params["mode"],
    )
    changed = False
    path = params["plan_out"]
    if path:
        try:
            existing = read_batch_plan(path) if os.path.exists(path) else None
        except PlanInvalid:
            existing = None  # an unreadable or edited file is replaced
        if existing is not None and existing.same_content(batch):
            batch = existing  # the file on disk is what will be applied: report its id
        else:
            changed = True
            if not module.check_mode:
                write_batch_plan(batch, path)
    if module.check_mode and batch.applicable():
        changed = True  # a dry run reports what applying would do
    for entry in batch.indexes:
        if not entry.applicable:
            module.warn(f"{entry.name} is skipped: {entry.skip_reason}")
    result = {
        "changed": changed,
        "result": "planned",
        "batch_id": batch.batch_id,
        "applicable": [e.name for e in batch.applicable()],
        "skipped_indexes": [{"name": e.name, "reason": e.skip_reason} for e in batch.indexes if not e.applicable],
        "indexes": entry_summaries(batch),
        "summary": summarize_batch(batch),
        "batch_plan": batch.to_dict(),
    }
    if path:
        result["plan_path"] = path
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = index_diffs(batch, [entry.name for entry in batch.applicable()])
    return result


# What a migration check (check mode) reports for an index it would change.
WOULD_CHANGE = ("would_migrate", "would_resume")


def index_diffs(batch, names) -> list:
    """--diff: each named index's schema before and after, from its sealed plan in the batch plan."""
    return [schema_diff(entry.migration_plan()) for entry in batch.indexes if entry.applicable and entry.name in names]


def run_batch(module, client, settings) -> dict:
    params = module.params
    batch, plan_file = open_batch(params["plan_file"], params["state_file"])
    options = migrate_options(params)
    outcome = apply_batch(
        client,
        lambda: connect(settings),
        batch,
        plan_file,
        params["backup_dir"],
        options,
        retry_failed=params["retry_failed"],
        resume=params["state"] == "resumed",
        state_file=params["state_file"],
        endpoint=settings.endpoint,
        check_mode=module.check_mode,
        report_out=params["report_out"],
        benchmark_out=params["benchmark_out"],
    )
    result = outcome_result(outcome)
    if module._diff and outcome.changed:  # pylint: disable=protected-access
        # A run that fails raises before this: every index it ran succeeded.
        changed = (
            [w["name"] for w in outcome.would if w["result"] in WOULD_CHANGE] if module.check_mode else outcome.ran
        )
        result["diff"] = index_diffs(batch, changed)
    return result


def report_status(module) -> None:
    """Files only: the status answers while Redis is down."""
    params = module.params
    endpoint = connection_settings(module).endpoint
    try:
        status = current_status(params["plan_file"], params["state_file"], params["backup_dir"])
    except Exception as err:  # pylint: disable=broad-exception-caught
        fail_from_exception(module, err, endpoint)
        return
    module.exit_json(changed=False, **status)


def main() -> None:
    # The planning options a batch shares with redis_index_plan (by name: the others are per index).
    spec = {k: v for k, v in planning_argument_spec().items() if k in SHARED_PLANNING_OPTIONS}
    spec.update(backup_argument_spec())
    spec["backup_dir"] = dict(spec["backup_dir"], required=False)
    spec.update(benchmark_argument_spec())
    spec.update(replication_argument_spec())
    spec.update(
        {
            "state": {"type": "str", "default": "planned", "choices": ["planned", "applied", "resumed", "status"]},
            "indexes": {"type": "list", "elements": "str"},
            "pattern": {"type": "str"},
            "indexes_file": {"type": "path"},
            "aliases": {"type": "dict", "default": {}},
            "failure_policy": {"type": "str", "default": "fail_fast", "choices": ["fail_fast", "continue_on_error"]},
            "plan_out": {"type": "path"},
            "plan_file": {"type": "path"},
            "state_file": {"type": "path"},
            "accept_data_loss": {"type": "bool", "default": False},
            "retry_failed": {"type": "bool", "default": False},
            "workers": {"type": "int", "default": 1},
            "report_out": {"type": "path"},
        }
    )
    module = build_module(
        spec,
        libraries=("redis", "pydantic", "PyYAML", "numpy"),
        mutually_exclusive=[list(SELECTIONS), ["patch", "patch_file"]],
        required_if=[
            ("state", "planned", list(SELECTIONS), True),
            ("state", "planned", ["patch", "patch_file"], True),
            ("state", "applied", ["plan_file", "backup_dir"]),
            ("state", "resumed", ["plan_file", "state_file"], True),
            ("state", "status", ["plan_file", "state_file"], True),
        ],
    )
    state = module.params["state"]
    if state == "status":
        report_status(module)
        return
    action = plan_batch if state == "planned" else run_batch
    open_channel()  # progress lines in the job output, and a cancelled job's run stops
    run_with_client(module, lambda client, settings: action(module, client, settings))


if __name__ == "__main__":
    main()
