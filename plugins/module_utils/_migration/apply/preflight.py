# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a plan must still be, and what the server must still allow, when the plan is applied.

A plan is sealed with a SHA-256 that anyone can recompute, so nothing it says about itself is
trusted at apply time: its target, changes and document rewrites are derived again from the source
schema and the request it records, and classified again against the live server - capabilities,
the other indexes and what they read, the target name. A plan whose derivation differs, or that
was made against another server, is refused before anything changes.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

from ..redis.capabilities import ServerCapabilities
from ..redis.catalog import other_indexes
from ..schema.changes import INDEX_RENAME, Change, diff
from ..planning.classify import Classification, LiveContext, classify
from ..redis.create_check import CreateCheckUnavailable, check_create
from ..core.errors import PlanBlocked, PlanInvalid, PreflightFailed
from ..schema.patch import FieldRename, merge, parse_patch
from ..planning.plan import MigrationPlan
from ..schema.rewrites import DocumentRewrites, document_rewrites
from ..schema.model import IndexSchema, parse_schema
from ..redis.snapshot import index_exists


def derive(plan: MigrationPlan) -> Tuple[IndexSchema, List[Change], DocumentRewrites, List[FieldRename]]:
    """Target, changes, rewrites and renames as planning derives them from the plan's own source and request."""
    source = plan.source_schema()
    requested = plan.requested_changes
    if "patch" in requested:
        target, patch = merge(source, parse_patch(requested["patch"], "the plan's patch"), "the plan's patch")
        renames = patch.rename_fields
    elif "target_schema" in requested:
        target, renames = parse_schema(requested["target_schema"], "the plan's target schema"), []
    else:
        raise PlanInvalid("the plan records neither a patch nor a target schema", hint="re-create it with redis_index_plan")
    changes = diff(source, target, renames)
    return target, changes, document_rewrites(source, target, changes, renames), renames


def _dumped(items: List[Any], exclude: Tuple[str, ...] = ()) -> List[Any]:
    return [item.model_dump(mode="json", exclude=set(exclude)) for item in items]


def verify_derivation(plan: MigrationPlan) -> None:
    """Refuse a plan whose target, changes or rewrites do not follow from its source and request."""
    target, changes, rewrites, renames = derive(plan)
    differing = []
    if target.to_dict() != plan.target().to_dict():
        differing.append("target schema")
    if _dumped(changes, ("blocked", "reason")) != _dumped(plan.changes, ("blocked", "reason")):
        differing.append("changes")
    if rewrites.model_dump(mode="json") != plan.rewrites.model_dump(mode="json"):
        differing.append("document rewrites")
    if _dumped(renames) != _dumped(plan.renames.fields):
        differing.append("field renames")
    if plan.mode not in ("online", "drop_recreate") or (plan.mode == "online" and (rewrites.any or not plan.online)):
        differing.append("mode")
    if differing:
        raise PlanInvalid(f"the plan's {', '.join(differing)} do not follow from its source schema and requested "
                          "changes (edited and sealed again?); nothing was changed",
                          hint="re-create the plan with redis_index_plan and review it")


def classify_live(client, plan: MigrationPlan, caps: ServerCapabilities, unrecognized: List[str],
                  exclude: Tuple[str, ...] = (), target_free: bool = False) -> Classification:
    """Classify the plan's changes again against the server as it is now (never the stored verdict).
    `target_free`: the caller has just read that no index holds the target's name."""
    source = plan.source_schema()
    target, changes, rewrites, _renames = derive(plan)
    renamed = any(c.kind == INDEX_RENAME for c in changes)
    live = LiveContext(capabilities=caps, others=other_indexes(client, {source.name, target.name, *exclude}),
                       target_name_taken=renamed and not target_free and index_exists(client, target.name))
    return classify(source, target, changes, rewrites, live, unrecognized)


def require_supported_live(client, plan: MigrationPlan, caps: ServerCapabilities, unrecognized: List[str],
                           target_free: bool = False) -> None:
    verdict = classify_live(client, plan, caps, unrecognized, target_free=target_free)
    if not verdict.supported:
        raise PlanBlocked("the plan is blocked on the server as it is now: " + "; ".join(verdict.blocked_reasons)
                          + "; nothing was changed", hint="resolve the reason, then plan again",
                          details={"blocked_reasons": verdict.blocked_reasons})


def require_same_server(plan: MigrationPlan, endpoint: Optional[str]) -> None:
    if endpoint and plan.source.endpoint and plan.source.endpoint != endpoint:
        raise PlanInvalid(f"the plan was made against {plan.source.endpoint}, this connection is {endpoint}; "
                          "nothing was changed", hint="plan against the server you apply to (its documents, "
                                                      "estimate and sampled keys are that server's)")


def require_requested_index(plan: MigrationPlan, index: Optional[str]) -> None:
    """`index` given next to a plan must name the plan's index (before or after), or the alias it was planned by."""
    if index and index not in (plan.source.index, plan.source.requested_as, plan.target_index):
        raise PlanInvalid(f"the plan is for index {plan.source.index!r}, not {index!r}; nothing was changed",
                          hint="pass the plan of this index, or leave index out")


def require_writable_file(path: Optional[str], what: str) -> None:
    """An output file's directory must exist and be writable, and the path must not be a directory."""
    if not path:
        return
    path = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise PreflightFailed(f"{what} {path} is a directory; nothing was changed", hint=f"give {what} a file name")
    if not os.path.isdir(directory):
        raise PreflightFailed(f"the directory of {what} {path} does not exist; nothing was changed",
                              hint="create it, or choose another path")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PreflightFailed(f"{what} {path} cannot be written by this user; nothing was changed",
                              hint="fix the directory's permissions or choose another path")


def require_create_accepted(client, plan: MigrationPlan) -> None:
    """The server accepts the exact target definition (created under a throwaway name and dropped):
    a refusal found after the drop would leave no index at all."""
    try:
        refusal = check_create(client, plan.target())
    except CreateCheckUnavailable as err:
        raise PreflightFailed(f"{err.message}; nothing was changed", hint=err.hint) from None
    if refusal:
        raise PreflightFailed(f"the server refuses the target definition: {refusal}; nothing was changed",
                              hint="correct the patch or target schema and plan again")
