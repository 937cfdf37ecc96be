# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning options (doc fragment indexops.redis_search.planning) -> a migration plan; the options that name a
migration already made (its index, plan file or plan) -> its plan, and the module of rollback and validate."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
    MigrateOptions,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.yamlio import dump_yaml, read_yaml
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import (
    MigrationPlan,
    plan_from_dict,
    read_plan,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import (
    create_plan,
    requested_changes,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import (
    IndexSchema,
    parse_target_schema,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import (
    SchemaPatch,
    parse_patch,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import (
    backup_argument_spec,
    build_module,
    replication_options,
)

CHANGE_OPTIONS = ["patch", "patch_file", "target_schema", "target_schema_file"]


# A migration is named by its index (the newest backup of it), its plan file or its plan: rollback and validate.
PLAN_SOURCE = ["index", "plan_file", "plan"]


def migration_module(own_options: dict[str, Any]):
    """The module of rollback or validate: the backup options, the migration named by exactly one of PLAN_SOURCE
    (found in O(backup_dir) by given_plan and the library), and the module's `own_options`."""
    plan_source = {"index": {"type": "str"}, "plan_file": {"type": "path"}, "plan": {"type": "dict"}}
    return build_module({**backup_argument_spec(), **plan_source, **own_options}, exactly_one_of=PLAN_SOURCE)


def given_plan(params: dict[str, Any]) -> Optional[MigrationPlan]:
    """The plan a task gives by O(plan_file) or O(plan), checksum verified; None when it gives neither."""
    if params.get("plan_file"):
        return read_plan(params["plan_file"])
    if params.get("plan") is not None:
        return plan_from_dict(params["plan"], "plan")
    return None


def migrate_options(params: dict[str, Any]) -> MigrateOptions:
    """How the executor runs, from the options redis_index_migrate and redis_index_batch share."""
    return MigrateOptions(
        batch_size=params["batch_size"],
        workers=params["workers"],
        wait_timeout=params["wait_timeout"],
        accept_data_loss=params["accept_data_loss"],
        replication=replication_options(params),
        finish=params.get("finish") or False,
    )


def planning_argument_spec() -> dict[str, Any]:
    """Planning options; their bounds are planner.PlanningOptions', checked by _module_kit.check_options."""
    return {
        "index": {"type": "str"},
        "patch": {"type": "dict"},
        "patch_file": {"type": "path"},
        "target_schema": {"type": "dict"},
        "target_schema_file": {"type": "path"},
        "aliases": {"type": "list", "elements": "str", "default": []},
        "audit_sample_size": {"type": "int", "default": 1000},
        "audit_all": {"type": "bool", "default": False},
        "key_sample_size": {"type": "int", "default": 20, "no_log": False},
        "batch_size": {"type": "int", "default": 500},
        "mode": {"type": "str", "default": "auto", "choices": ["auto", "online", "drop_recreate"]},
        "cutover": {"type": "str", "default": "swap", "choices": ["swap", "side_by_side"]},
        "side_by_side_alias": {"type": "str"},
    }


def change_from_params(params: dict[str, Any]) -> Tuple[Optional[SchemaPatch], Optional[IndexSchema]]:
    """The patch or the target schema the options name (one of the two is None)."""
    patch = target = None
    if params.get("patch") is not None:
        patch = parse_patch(params["patch"], "patch")
    elif params.get("patch_file"):
        patch = parse_patch(read_yaml(params["patch_file"], "patch"), f"patch file {params['patch_file']}")
    elif params.get("target_schema") is not None:
        target = parse_target_schema(params["target_schema"], "target_schema")
    else:
        path = params["target_schema_file"]
        target = parse_target_schema(read_yaml(path, "target schema"), f"target schema file {path}")
    return patch, target


def requested_from_params(params: dict[str, Any]) -> dict[str, Any]:
    """What a plan of these options records as asked for (to find an unfinished one of the same request)."""
    return requested_changes(*change_from_params(params))


def plan_from_params(client, params: dict[str, Any], endpoint: str, backup_dir: Optional[str] = None) -> MigrationPlan:
    """Read the patch or target schema the options name and plan it."""
    patch, target = change_from_params(params)
    return create_plan(
        client,
        params["index"],
        patch=patch,
        target_schema=target,
        aliases=params["aliases"],
        audit_sample=params["audit_sample_size"],
        audit_all=params["audit_all"],
        key_sample=params["key_sample_size"],
        backup_dir=backup_dir,
        batch_size=params["batch_size"],
        endpoint=endpoint,
        mode=params["mode"],
        cutover=params.get("cutover") or "swap",
        side_by_side_alias=params.get("side_by_side_alias"),
    )


def schema_diff(plan: MigrationPlan) -> dict[str, str]:
    """Ansible's --diff payload: the schema before and after, as YAML."""
    return {
        "before_header": f"{plan.source.index} (live)",
        "after_header": f"{plan.target_index} (planned)",
        "before": dump_yaml(plan.source.index_schema),
        "after": dump_yaml(plan.target_schema),
    }
