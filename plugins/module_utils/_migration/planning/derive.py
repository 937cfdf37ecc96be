# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a request turns a source schema into: the target, the typed changes, what each document goes
through and the field renames - derived the same way when a plan is made and when it is applied.

A plan is sealed with a SHA-256 that anyone can recompute, so nothing it says about itself is
trusted at apply time: its target, changes and rewrites are derived again from the source schema
and the request it records (`verify_derivation`), and a plan whose derivation differs is refused
before anything changes.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Tuple

from ..core.errors import PlanInvalid
from ..schema.changes import Change, diff
from ..schema.model import IndexSchema, parse_schema
from ..schema.online_layout import online_layout
from ..schema.patch import FieldRename, SchemaPatch, merge, parse_patch
from ..schema.rewrites import DocumentRewrites, document_rewrites
from .plan import MigrationPlan


class Derivation(NamedTuple):
    target: IndexSchema
    changes: List[Change]
    rewrites: DocumentRewrites
    renames: List[FieldRename]


def derive(
    source: IndexSchema,
    patch: Optional[SchemaPatch] = None,
    target_schema: Optional[IndexSchema] = None,
    where: str = "patch",
) -> Derivation:
    """The derivation of `patch` merged into `source` (`where` names the patch in errors), or of a full
    `target_schema`."""
    if patch is not None:
        target, patch = merge(source, patch, where)
        renames = patch.rename_fields
    else:
        target, renames = target_schema, []
    changes = diff(source, target, renames)
    return Derivation(target, changes, document_rewrites(source, target, changes, renames), renames)


def derive_plan(plan: MigrationPlan) -> Derivation:
    """The derivation from the plan's own source and recorded request."""
    source = plan.source_schema()
    requested = plan.requested_changes
    if "patch" in requested:
        return derive(source, patch=parse_patch(requested["patch"], "the plan's patch"), where="the plan's patch")
    if "target_schema" in requested:
        return derive(source, target_schema=parse_schema(requested["target_schema"], "the plan's target schema"))
    raise PlanInvalid("the plan records neither a patch nor a target schema", hint="re-create it with redis_index_plan")


def _dumped(items: List[Any], exclude: Tuple[str, ...] = ()) -> List[Any]:
    return [item.model_dump(mode="json", exclude=set(exclude)) for item in items]


def verify_derivation(plan: MigrationPlan) -> None:
    """Refuse a plan whose target, changes or rewrites do not follow from its source and request."""
    target, changes, rewrites, renames = derive_plan(plan)
    differing = []
    if target.to_dict() != plan.target().to_dict():
        differing.append("target schema")
    if _dumped(changes, ("blocked", "reason")) != _dumped(plan.changes, ("blocked", "reason")):
        differing.append("changes")
    if rewrites.model_dump(mode="json") != plan.rewrites.model_dump(mode="json"):
        differing.append("document rewrites")
    if _dumped(renames) != _dumped(plan.renames.fields):
        differing.append("field renames")
    if plan.mode not in ("online", "drop_recreate") or (plan.mode == "online" and not _online_follows(plan, rewrites)):
        differing.append("mode")
    if differing:
        raise PlanInvalid(
            f"the plan's {', '.join(differing)} do not follow from its source schema and requested "
            "changes (edited and sealed again?); nothing was changed",
            hint="re-create the plan with redis_index_plan and review it",
        )


def _online_follows(plan: MigrationPlan, rewrites) -> bool:
    """An online plan's layout of the documents is the one its rewrites give (an interim index exactly when a
    vector is converted in place)."""
    online = plan.online
    if online is None:
        return False
    layout = online_layout(rewrites)
    recorded = online.layout.model_dump(mode="json") if online.layout else None
    if recorded != (layout.model_dump(mode="json") if layout else None):
        return False
    return bool(online.interim_index) == bool(layout and layout.side_fields)
