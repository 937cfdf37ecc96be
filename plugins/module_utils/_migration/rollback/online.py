# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling back an online migration, online: the index goes back (and, when the migration rewrote
documents, rollback.py has restored them from the backup first).

Before its swap, the migration's new index is simply dropped (the source served all along). After
it, the source's exact definition is built again beside the migration's index, under a name of its
own (the next `--vN`), validated against it, and swapped in the same way: one MULTI/EXEC drops the
migration's index and points the source's name and aliases at the rebuilt one. Queries by those
names are answered throughout. The name chosen is recorded in the backup's header first, so a
rollback that stops is resumed on the same index.

The rebuilt index must index every document the source did: more indexing failures than the source had when
the migration was planned (documents written meanwhile in the migrated layout, which the source's definition
cannot read) stop the rollback before its swap, naming the index and the count; the rebuilt index is dropped
then (its failure counter never goes down), so that the same task run again, once those documents are fixed or
deleted, builds it afresh.
"""

from __future__ import annotations

from typing import Optional

from ..backup.store import BackupStore
from ..core import failpoints
from ..core.errors import RollbackFailed
from ..planning.modes import next_generation
from ..planning.plan import MigrationPlan
from ..redis.connection import execute_once
from ..redis.ftcreate import create_args
from ..redis.snapshot import index_exists, live_schema, read_info, real_name
from ..redis.stats import stats_from_info
from ..redis.waiting import StillIndexing, wait_until_indexed
from ..schema.model import IndexSchema
from ..schema.online_layout import interim_schema


def named(schema: IndexSchema, name: str) -> IndexSchema:
    copy = schema.model_copy(deep=True)
    copy.index.name = name
    return copy


def same_definition(client, expected: IndexSchema, name: str) -> bool:
    """Whether the index `name` leads to exists with `expected`'s definition (whatever its own name)."""
    live = live_schema(client, name)
    return live is not None and live.matches(named(expected, live.index_schema.name))


def _built(plan: MigrationPlan) -> list:
    """(name, definition) of every index the migration builds: the interim one of a datatype change in
    place, and the final one."""
    found = []
    if plan.online is not None and plan.online.interim_index and plan.online.layout is not None:
        name = plan.online.interim_index
        found.append((name, interim_schema(plan.final_schema(), plan.online.layout, name)))
    return found + [(plan.final_index, plan.final_schema())]


def rolled_back(client, plan: MigrationPlan) -> bool:
    """The source's name leads to the source's definition and the migration's indexes are gone."""
    if not same_definition(client, plan.source_schema(), plan.source.index):
        return False
    return all(real_name(client, name) != name or name == plan.source.index for name, _schema in _built(plan))


def _ours_live(client, plan: MigrationPlan) -> list:
    """The migration's indexes that exist under their own names (refused: one of those names taken by another)."""
    found = []
    for name, schema in _built(plan):
        if real_name(client, name) != name:
            continue
        if not same_definition(client, schema, name):
            raise RollbackFailed(
                f"index {name!r} exists but is not the one this migration built",
                hint="someone changed it after the migration; resolve it by hand first",
            )
        found.append(name)
    return found


def _drop_ours(client, plan: MigrationPlan) -> bool:
    found = _ours_live(client, plan)
    for name in found:
        client.execute_command("FT.DROPINDEX", name)
    return bool(found)


def run(
    client,
    store: BackupStore,
    plan: MigrationPlan,
    result,
    wait_timeout: float,
    restored: Optional[int] = None,
    not_restored: int = 0,
) -> None:
    """Roll the online migration back; fills `result` (dropped_target, recreated_source, aliases, validation).
    `restored`: the documents rollback.py restored (a migration that rewrote them), which the rebuilt source
    must index; `not_restored`: those it left as they are (conflicts, a partial rollback's unverified records),
    which may stay in the migrated layout and so may fail to index, as drop_recreate's rollback allows too."""
    source = plan.source_schema()
    final = plan.final_index
    names = list(plan.online.names) if plan.online else list(plan.source.aliases)
    result.aliases = names
    if real_name(client, source.name) == source.name:
        # Never swapped: the source is live and as it was; the index built beside it goes.
        if not same_definition(client, source, source.name):
            raise RollbackFailed(
                f"{source.name} exists but differs from the plan's source",
                hint="someone changed it after the migration; resolve it by hand first",
            )
        result.dropped_target = _drop_ours(client, plan)
        result.validation = {"passed": True, "swapped": False}
        return
    # The source's own name is gone after the swap when it was a generation (`idx--v2`); its names stay.
    serving = real_name(client, names[0] if names else source.name)
    if serving is None and not store.header.rollback.get("online_index"):
        raise RollbackFailed(
            f"neither {source.name} nor the migration's index {final} exists",
            hint="recreate the index by hand from the backup's plan.yaml",
        )
    rebuilt = store.header.rollback.get("online_index") or next_generation(
        final, lambda name: index_exists(client, name)
    )
    store.header.rollback["online_index"] = rebuilt
    store.save()
    if real_name(client, rebuilt) != rebuilt:
        client.execute_command("FT.CREATE", *create_args(named(source, rebuilt)))
        result.recreated_source = True
    try:
        stats = wait_until_indexed(client, rebuilt, wait_timeout)
    except StillIndexing as err:
        raise RollbackFailed(
            f"{rebuilt} was still indexing after {wait_timeout:.0f} s ({err}); {final} kept serving",
            hint="re-run the same task to keep waiting",
        ) from None
    problems = []
    if not same_definition(client, source, rebuilt):
        problems.append(f"{rebuilt} does not have the source's definition")
    failures_before = int(plan.source.stats.get("hash_indexing_failures", 0))
    refused = stats.hash_indexing_failures - failures_before - not_restored
    if refused > 0:
        last = f" (last: {stats.last_indexing_error_key})" if stats.last_indexing_error_key else ""
        problems.append(
            f"{rebuilt} failed to index {refused} document(s){last}: indexing failures {stats.hash_indexing_failures}, "
            f"the source had {failures_before}"
            + (f", {not_restored} left unrestored" if not_restored else "")
            + " - documents the source's definition cannot index (written in the "
            f"migrated layout?); {rebuilt} was dropped, fix or delete them and re-run"
        )
    if restored is not None:
        current = restored
    else:
        current = stats_from_info(read_info(client, final)).num_docs if real_name(client, final) == final else None
    if current is not None and stats.num_docs < current and not source.index.filter:
        problems.append(f"{rebuilt} indexed {stats.num_docs} documents, {final} holds {current}")
    result.validation = {
        "passed": not problems,
        "swapped": True,
        "rebuilt_index": rebuilt,
        "doc_count_actual": stats.num_docs,
        "doc_count_expected": current,
        "indexing_failures_before": failures_before,
        "indexing_failures_after": stats.hash_indexing_failures,
        "documents_not_restored": not_restored,
        "problems": problems,
    }
    if refused > 0:
        client.execute_command("FT.DROPINDEX", rebuilt)
        result.recreated_source = False
    if problems:
        raise RollbackFailed(
            "rollback validation failed: " + "; ".join(problems) + f"; {final} kept serving",
            hint="inspect, then re-run the same task",
        )
    live = _ours_live(client, plan)
    failpoints.hit("rollback_swap", 0)
    if live:
        pipe = client.pipeline(transaction=True)
        for name in live:
            pipe.execute_command("FT.DROPINDEX", name)
        for name in names:
            pipe.execute_command("FT.ALIASUPDATE", name, rebuilt)
        execute_once(client, pipe, raise_on_error=False)
        result.dropped_target = True
    else:  # the migration's indexes are gone already (an earlier run swapped back): just the names
        for name in names:
            client.execute_command("FT.ALIASUPDATE", name, rebuilt)
    wrong = [name for name in names if real_name(client, name) != rebuilt]
    if wrong:
        raise RollbackFailed(
            f"{', '.join(wrong)} do not lead to {rebuilt} after the swap back", hint="re-run the same task"
        )
