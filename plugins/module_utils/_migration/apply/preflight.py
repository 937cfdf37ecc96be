# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a plan must still be, and what the server must still allow, when the plan is applied: the checks
before the first write (`preflight`), before a stopped migration continues (`resume_checks`), and the
ones phase drop repeats at the last moment.

A plan is sealed with a SHA-256 that anyone can recompute, so nothing it says about itself is
trusted at apply time: its target, changes and document rewrites are derived again from the source
schema and the request it records (planning/derive.py), and classified again against the live
server - capabilities, the other indexes and what they read, the target name. A plan whose
derivation differs, or that was made against another server, is refused before anything changes.
"""

from __future__ import annotations

import os
import shutil
from typing import Dict, List, Optional, Tuple

from ..backup.store import BackupStore, check_backup_dir
from ..core.errors import PlanBlocked, PlanInvalid, PreflightFailed
from ..planning.classify import Classification, LiveContext, classify
from ..planning.derive import derive_plan, verify_derivation
from ..planning.estimate import FREE_SPACE_MARGIN
from ..planning.modes import ONLINE, memory_now_fits
from ..planning.plan import MigrationPlan
from ..redis.capabilities import ServerCapabilities, detect_capabilities, require_search_results
from ..redis.catalog import other_indexes
from ..redis.create_check import CreateCheckUnavailable, check_create
from ..redis.permissions import require_permissions
from ..redis.snapshot import SchemaSnapshot, holds, index_exists, live_schema, read_schema, real_name
from ..redis.waiting import StillIndexing, wait_until_indexed
from ..schema.changes import INDEX_RENAME, VECTOR_DATATYPE
from ..vectors.codec import describe_conversion
from .commands import migration_commands
from .phases.context import MigrateOptions


def classify_live(
    client,
    plan: MigrationPlan,
    caps: ServerCapabilities,
    unrecognized: List[str],
    exclude: Tuple[str, ...] = (),
    target_free: bool = False,
) -> Classification:
    """Classify the plan's changes again against the server as it is now (never the stored verdict).
    `target_free`: the caller has just read that no index holds the target's name."""
    source = plan.source_schema()
    target, changes, rewrites, _renames = derive_plan(plan)
    renamed = any(c.kind == INDEX_RENAME for c in changes)
    live = LiveContext(
        capabilities=caps,
        others=other_indexes(client, {source.name, target.name, *exclude}),
        target_name_taken=renamed and not target_free and index_exists(client, target.name),
    )
    return classify(source, target, changes, rewrites, live, unrecognized)


def require_supported_live(
    client, plan: MigrationPlan, caps: ServerCapabilities, unrecognized: List[str], target_free: bool = False
) -> None:
    verdict = classify_live(client, plan, caps, unrecognized, target_free=target_free)
    if not verdict.supported:
        raise PlanBlocked(
            "the plan is blocked on the server as it is now: "
            + "; ".join(verdict.blocked_reasons)
            + "; nothing was changed",
            hint="resolve the reason, then plan again",
            details={"blocked_reasons": verdict.blocked_reasons},
        )


def require_same_server(plan: MigrationPlan, endpoint: Optional[str]) -> None:
    if endpoint and plan.source.endpoint and plan.source.endpoint != endpoint:
        raise PlanInvalid(
            f"the plan was made against {plan.source.endpoint}, this connection is {endpoint}; nothing was changed",
            hint="plan against the server you apply to (its documents, estimate and sampled keys are that server's)",
        )


def require_requested_index(plan: MigrationPlan, index: Optional[str]) -> None:
    """`index` given next to a plan must name the plan's index (before or after), or the alias it was planned by."""
    if index and index not in (plan.source.index, plan.source.requested_as, plan.target_index):
        raise PlanInvalid(
            f"the plan is for index {plan.source.index!r}, not {index!r}; nothing was changed",
            hint="pass the plan of this index, or leave index out",
        )


def require_writable_file(path: Optional[str], what: str) -> None:
    """An output file's directory must exist and be writable, and the path must not be a directory."""
    if not path:
        return
    path = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise PreflightFailed(f"{what} {path} is a directory; nothing was changed", hint=f"give {what} a file name")
    if not os.path.isdir(directory):
        raise PreflightFailed(
            f"the directory of {what} {path} does not exist; nothing was changed",
            hint="create it, or choose another path",
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PreflightFailed(
            f"{what} {path} cannot be written by this user; nothing was changed",
            hint="fix the directory's permissions or choose another path",
        )


def require_create_accepted(client, plan: MigrationPlan) -> None:
    """The server accepts the exact target definition (created under a throwaway name and dropped):
    a refusal found after the drop would leave no index at all."""
    try:
        refusal = check_create(client, plan.target())
    except CreateCheckUnavailable as err:
        raise PreflightFailed(f"{err.message}; nothing was changed", hint=err.hint) from None
    if refusal:
        raise PreflightFailed(
            f"the server refuses the target definition: {refusal}; nothing was changed",
            hint="correct the patch or target schema and plan again",
        )


def require_applicable(
    plan: MigrationPlan, options: MigrateOptions, endpoint: Optional[str], outputs: Dict[str, Optional[str]]
) -> None:
    """What the plan itself must be before anything is read from the server: not blocked (an edited plan
    that says so would be refused too), made against this server, derived from its own source and request,
    its lossy conversions accepted, and every output file (`outputs`: option name -> path) writable."""
    if not plan.classification.supported:
        raise PlanBlocked("the plan has blocked changes: " + "; ".join(plan.classification.blocked_reasons))
    require_same_server(plan, endpoint)
    verify_derivation(plan)
    lossy = lossy_changes(plan)
    if lossy and not options.accept_data_loss:
        raise PreflightFailed(
            "lossy conversion(s) "
            + ", ".join(f"{c.field} {c.before}->{c.after}" for c in lossy)
            + " need accept_data_loss=true",
            hint="read the plan's warnings; the originals are kept in the backup",
        )
    for what, path in outputs.items():
        require_writable_file(path, what)


def lossy_changes(plan: MigrationPlan) -> list:
    return [
        c
        for c in plan.changes
        if c.kind == VECTOR_DATATYPE and c.rewrites_documents and describe_conversion(c.before, c.after)["lossy"]
    ]


def _source_unchanged(client, plan: MigrationPlan, live: Optional[SchemaSnapshot] = None) -> SchemaSnapshot:
    """The live source index's snapshot (read now, or `live` when read already), which must equal the plan's."""
    live = live or read_schema(client, plan.source.index)
    found = live.differs_from(plan.source_schema())
    if found:
        raise PreflightFailed(
            f"{plan.source.index} changed since the plan was made: {'; '.join(found[:3])}",
            hint="re-run redis_index_plan and review the new plan",
        )
    return live


def _wait_source_indexed(client, plan: MigrationPlan, timeout: float) -> int:
    try:
        return wait_until_indexed(client, plan.source.index, timeout, steady=False).num_docs
    except StillIndexing as err:
        raise PreflightFailed(
            f"{plan.source.index} is still indexing after {timeout:.0f} s ({err}); nothing was changed",
            hint="wait for it, or raise wait_timeout",
        ) from None


def preflight(client, plan: MigrationPlan, options: MigrateOptions, backup_root: str, check_mode: bool = False) -> int:
    """Checks before the first write. Returns the source's document count. Read-only but for the create
    check's throwaway index, which check mode leaves to redis_index_plan."""
    # First: without the rights to read the index, nothing below could even look.
    require_permissions(client, migration_commands(plan, plan.server.cluster_enabled), "migration")
    # One read of the source answers whether it exists and whether it is still as planned.
    live = live_schema(client, plan.source.index)
    if live is None:
        raise PreflightFailed(f"index {plan.source.index} does not exist", hint="check the plan's index")
    live = _source_unchanged(client, plan, live)
    interim = [plan.online.interim_index] if plan.mode == ONLINE and plan.online and plan.online.interim_index else []
    for name in dict.fromkeys([plan.target_index, plan.final_index, *interim]):
        if name != plan.source.index and index_exists(client, name):
            raise PreflightFailed(f"an index or alias named {name!r} exists", hint="choose another name")
    caps = detect_capabilities(client)
    # Validation reads the new index back through FT.SEARCH: a server that returns no rows cannot judge it.
    require_search_results(client, f"cannot migrate {plan.source.index}")
    if plan.mode == ONLINE:
        fits, why = memory_now_fits(plan.online, caps)
        if not fits:
            raise PreflightFailed(
                f"the online build no longer fits: {why}; nothing was changed",
                hint="free memory or raise maxmemory, or plan again with mode drop_recreate",
            )
    for field in plan.target().vector_fields():
        if not caps.accepts_datatype(field.attrs.datatype) or not caps.accepts_algorithm(field.attrs.algorithm):
            raise PreflightFailed(
                f"the server does not accept {field.attrs.algorithm.upper()} "
                f"{field.attrs.datatype.upper()} vectors for {field.name!r}"
            )
    # The plan's own verdict is never trusted: its changes are classified again against the server as it is
    # (the target's name was read free above).
    require_supported_live(client, plan, caps, live.unrecognized, target_free=True)
    if not check_mode:
        require_create_accepted(client, plan)
    need = int((plan.estimate.backup_bytes + plan.estimate.staged_bytes) * FREE_SPACE_MARGIN)
    existing = backup_root
    while not os.path.isdir(existing):  # check mode: the directory is not created
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if need > free:
        raise PreflightFailed(
            f"backup_dir {backup_root} has {free} bytes free, the backup needs about {need}",
            hint="free space or choose another backup_dir",
        )
    return _wait_source_indexed(client, plan, options.wait_timeout)


def check_dir_readonly(path: Optional[str]) -> str:
    """Check mode: the same verdict as check_backup_dir, without creating anything."""
    if not path:
        return check_backup_dir(path)
    path = os.path.abspath(os.path.expanduser(path))
    probe = path if os.path.exists(path) else os.path.dirname(path)
    if os.path.exists(path) and not os.path.isdir(path):
        return check_backup_dir(path)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise PreflightFailed(f"backup_dir {path} cannot be created or written", hint="choose a writable directory")
    return path


def target_matches(client, plan: MigrationPlan) -> bool:
    """Whether the server holds the plan's new index, with the plan's target definition."""
    return holds(client, plan.final_index, plan.final_schema())


def resume_checks(client, plan: MigrationPlan, store: BackupStore) -> None:
    """Before continuing a migration that stopped: the source, where nothing was changed yet, must be as
    planned, and allowed; what was changed is checked against the server by resume_check."""
    if store.phase("backup").done:
        store.require_intact()
    if plan.mode == ONLINE:
        started = store.phase("create").started_at
        if store.phase("swap").done or real_name(client, plan.source.index) != plan.source.index:
            return  # swapped (or the source is gone: the swap phase tells which)
        live = _source_unchanged(client, plan)
        if not started:
            caps = detect_capabilities(client)
            require_supported_live(client, plan, caps, live.unrecognized)
        return
    live = live_schema(client, plan.source.index) if not store.phase("drop").done else None
    if live is not None:
        _source_unchanged(client, plan, live)
        caps = detect_capabilities(client)
        require_supported_live(client, plan, caps, live.unrecognized)
        require_permissions(client, migration_commands(plan, caps.cluster_enabled), "migration")
