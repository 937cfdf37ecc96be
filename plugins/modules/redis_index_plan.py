#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: plan a schema change of a Redis search index (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_index_plan
short_description: Plan a schema change of a Redis search index, with its cost and risks
version_added: 0.1.0
description:
  - Snapshots the live index losslessly, applies a schema patch (or compares with a full target schema), and
    classifies every change as supported or blocked, with the reason and the way out.
  - Blocks, among others, vector dimension changes, storage type and key separator changes, field type or path
    changes, adding a vector field, prefix changes of multi-prefix indexes, a target name that is taken, a vector
    datatype or algorithm the server does not accept (probed), and quantizing vectors another live index reads.
  - Audits a bounded sample of documents (all of them with O(audit_all=true)) for vectors of the wrong size and, in a
    field the migration converts, for values the new datatype cannot hold. What it finds in a field the migration
    converts blocks the plan (C(redis_index_migrate) would refuse it); a sampled audit says in a warning what it did
    not check. It also estimates the exact backup size, memory before and after, AOF growth and whether the backup
    directory has room, and lists every warning.
  - Writes the plan as YAML (O(plan_out)) sealed by a checksum; C(redis_index_migrate) refuses an edited plan.
  - Every value of the patch or target schema must be within what the server safely accepts (for example HNSW
    C(m) 2 to 4096, a C(language) the server knows, a finite C(weight)); a value outside is an error naming the
    attribute, the value and the accepted range.
  - Proves that the server accepts the target definition by creating it exactly, under a throwaway name
    (C(<index>__indexops_check_<random>)) on a prefix no key has, and dropping it at once; a definition the server refuses
    (for example a C(filter) it cannot parse) is blocked with the server's message. That empty index is the only
    thing written to Redis, and it is created C(TEMPORARY), so even an interrupted run leaves nothing behind.
    Reads are bounded, so planning takes the same time on an index of any size (unless O(audit_all=true)).
extends_documentation_fragment:
  - indexops.redis_search.connection
  - indexops.redis_search.planning
  - indexops.redis_search.planning.sampling
attributes:
  check_mode:
    description:
      - Plans the same way and writes nothing, not even O(plan_out) (the create check's throwaway index is created and
        dropped as in a normal run).
      - RV(changed) is V(true) when O(plan_out) would be written or the planned (supported) migration would change
        the index, so that C(--check --diff) shows the schema diff (Ansible shows the diff of changed tasks only).
  diff_mode:
    support: full
    description: Shows the index schema before and after the change, as YAML.
options:
  index:
    required: true
  plan_out:
    description:
      - Where to write the plan (YAML). Written atomically, and only when its content changed, so a second
        identical run reports RV(changed=false).
      - Must be a file path in an existing, writable directory; checked before anything else.
    type: path
  backup_dir:
    description:
      - The directory the migration will back up to. When given, the estimate says whether it has room.
    type: path
  fail_on_blocked:
    description:
      - Fail the task when a change is blocked (the plan and the reasons are still returned, O(plan_out) is not
        written). With V(false) the task succeeds and RV(supported=false) says so.
    type: bool
    default: true
seealso:
  - module: indexops.redis_search.redis_index_info
"""

EXAMPLES = r"""
- name: Plan quantizing the embeddings to float16 (a dry run changes nothing anywhere)
  indexops.redis_search.redis_index_plan:
    index: products
    patch:
      version: 1
      changes:
        update_fields:
          - name: embedding
            attrs:
              datatype: float16
    plan_out: /var/lib/indexops/products-plan.yaml
    backup_dir: /var/lib/indexops/backups
  check_mode: true
  diff: true
  register: plan

- name: Show what will happen
  ansible.builtin.debug:
    var: plan.summary

- name: Plan from a patch file, renaming a field and the index
  indexops.redis_search.redis_index_plan:
    index: products
    patch_file: files/products-v2.yaml
    aliases: [products_live]
    plan_out: plans/products-v2.yaml

- name: Plan towards a full target schema, reporting blocked changes without failing
  indexops.redis_search.redis_index_plan:
    index: products
    target_schema_file: schemas/products.yaml
    fail_on_blocked: false
  register: candidate

- name: Stop the play when the plan needs more disk than the backup directory has
  ansible.builtin.assert:
    that: candidate.plan.estimate.backup_fits is not false
"""

RETURN = r"""
changed:
  description:
    - Whether O(plan_out) was written. Planning itself changes nothing.
    - In check mode, whether O(plan_out) would be written or the planned migration would change the index.
  returned: always
  type: bool
supported:
  description: Whether every change can be applied.
  returned: always
  type: bool
nothing_to_do:
  description: The live index already has the requested schema.
  returned: always
  type: bool
blocked_reasons:
  description: Why changes are refused, one sentence each with the way out.
  returned: always
  type: list
  elements: str
plan_warnings:
  description:
    - What the operator must know (downtime, lossy quantization and its precision, aliases, failures, ...).
    - Each is also shown as an Ansible warning.
  returned: always
  type: list
  elements: str
summary:
  description: A short human-readable account of the plan, one line per item.
  returned: always
  type: list
  elements: str
  sample:
    - "products: 1 change(s), supported, mode drop_recreate, 600 documents"
    - "  - field 'embedding': datatype 'float32' -> 'float16'"
    - "  backup: 41438 bytes (exact) for 600 rewritten documents"
plan_path:
  description: The path of the plan file, when O(plan_out) is given.
  returned: when O(plan_out) is given
  type: str
plan:
  description:
    - The plan (what O(plan_out) holds). Keys - C(format), C(format_version), C(checksum), C(created_at), C(mode),
      C(source) (index, schema, unobserved, unrecognized, stats, key_sample, aliases), C(requested_changes),
      C(target_schema), C(changes), C(renames), C(rewrites), C(classification), C(warnings), C(audit),
      C(estimate), C(server), C(mode_reason), C(online) and C(durations).
  returned: always
  type: dict
  contains:
    checksum:
      description: SHA-256 over the plan's content; an edited plan is refused.
      type: str
    changes:
      description: Every change with its kind, field, before and after values, whether it rewrites documents,
        and whether it is blocked and why.
      type: list
      elements: dict
    estimate:
      description: backup_bytes (and whether exact), backup_breakdown, documents_rewritten, vector_fields,
        memory_before_bytes, memory_after_bytes, memory_delta_bytes, rdb_delta_bytes, aof_enabled,
        aof_growth_bytes, backup_dir_free_bytes, backup_dir_required_bytes and backup_fits.
      type: dict
    audit:
      description: Documents audited, in which mode (sample or all), and the vectors of the wrong size found.
      type: dict
    online:
      description:
        - For an online migration (else null) - C(index) (the new index's own name), C(names) (the names that lead to
          it after the swap), C(cutover), C(side_by_side_alias), C(layout) (where the new bytes of rewritten documents
          live meanwhile - C(copy_keys) for a prefix change, C(side_fields) for a datatype change in place - or null when
          the documents stay as they are), C(interim_index) (the index that serves between the two swaps of a
          datatype change in place), C(memory_needed_bytes) (the window's peak), C(memory_breakdown),
          C(memory_used_bytes) and C(memory_limit_bytes).
      type: dict
    durations:
      description:
        - Estimated seconds of each path, so that the mode can be chosen - C(online_seconds) (with C(online_builds)),
          C(drop_recreate_seconds) and C(drop_recreate_read_gap_seconds), and their C(basis). Rough - rates of a
          2-core machine, and every write of a hash re-indexes it in each index covering it.
      type: dict
diff:
  description: The schema before and after (with C(--diff)).
  returned: when diff mode is on
  type: dict
"""

import os

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    PlanBlocked,
    PlanInvalid,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import (
    read_plan,
    write_plan,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import summarize
from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import build_module, run_with_client
from ansible_collections.indexops.redis_search.plugins.module_utils._plan_inputs import (
    CHANGE_OPTIONS,
    plan_from_params,
    planning_argument_spec,
    schema_diff,
)


def plan_index(module, client, settings) -> dict:
    params = module.params
    plan = plan_from_params(client, params, settings.endpoint, params["backup_dir"])
    result = {
        "changed": False,
        "supported": plan.classification.supported,
        "nothing_to_do": plan.classification.nothing_to_do,
        "blocked_reasons": plan.classification.blocked_reasons,
        "plan_warnings": plan.warnings,
        "summary": summarize(plan),
        "plan": plan.to_dict(),
    }
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = schema_diff(plan)
    if not plan.classification.supported and params["fail_on_blocked"]:
        raise PlanBlocked(
            f"{len(plan.classification.blocked_reasons)} change(s) blocked: "
            + "; ".join(plan.classification.blocked_reasons),
            hint="see blocked_reasons; set fail_on_blocked=false to keep the plan anyway",
            details={k: v for k, v in result.items() if k not in ("changed", "plan")},
        )
    for warning in plan.warnings:
        module.warn(warning)
    path = params["plan_out"]
    if path:
        result["plan_path"] = path
        try:
            unchanged = os.path.exists(path) and read_plan(path).same_content(plan)
        except PlanInvalid:
            unchanged = False  # an unreadable or edited file is replaced
        result["changed"] = not unchanged
        if not unchanged and not module.check_mode:
            write_plan(plan, path)
    if module.check_mode and plan.classification.supported and not plan.classification.nothing_to_do:
        # A dry run reports what applying would do; Ansible only shows the diff of a changed task.
        result["changed"] = True
    return result


def plan_out_problem(path: str | None) -> str | None:
    """Why `path` cannot receive the plan (one line with the fix), or None."""
    if not path:
        return None
    if os.path.isdir(path):
        return f"plan_out {path} is a directory; give the path of a file in it, for example {os.path.join(path, 'plan.yaml')}"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"plan_out {path}: the directory {directory} does not exist; create it first or choose another path"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"plan_out {path}: the directory {directory} is not writable; choose a writable directory"
    if os.path.exists(path) and not os.path.isfile(path):
        return f"plan_out {path} is not a regular file; choose a file path"
    return None


def main() -> None:
    spec = planning_argument_spec()
    spec["index"]["required"] = True
    spec.update(
        {
            "plan_out": {"type": "path"},
            "backup_dir": {"type": "path"},
            "fail_on_blocked": {"type": "bool", "default": True},
        }
    )
    module = build_module(spec, exactly_one_of=CHANGE_OPTIONS)
    problem = plan_out_problem(module.params["plan_out"])
    if problem:
        module.fail_json(msg=problem, error_type="invalid_input")
    run_with_client(module, lambda client, settings: plan_index(module, client, settings), index=module.params["index"])


if __name__ == "__main__":
    main()
