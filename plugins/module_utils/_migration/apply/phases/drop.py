# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phase `drop`: last checks, then FT.DROPINDEX (the documents stay).

Before the drop: every key a prefix change will create must be free, a new index name must still
be free, the server must still accept the target definition (create_check.py), and no other index
may have started to read the keys or fields this migration changes (one created while the backup
ran, say) - found now, they cost nothing; found after the drop, they would stop the migration with
the index gone, or break the other index.
"""

from __future__ import annotations

from ...core import failpoints
from ...core.deps import redis_exceptions
from ...core.errors import PreflightFailed
from ...planning.classify import shared_key_conflicts
from ...redis.catalog import other_indexes
from ...redis.keyspace import key_to_text, renamed_key
from ...redis.snapshot import index_exists
from ..preflight import require_create_accepted
from .context import Context

MAX_LISTED = 10


def _collisions(ctx: Context) -> list:
    prefix = ctx.plan.rewrites.prefix
    found = []
    for _block_no, records in ctx.store.iter_blocks():
        pipe = ctx.client.pipeline(transaction=False)
        pairs = [(r.key, renamed_key(r.key, prefix.old, prefix.new)) for r in records if r is not None]
        for old, new in pairs:
            pipe.exists(old)
            pipe.exists(new)
        replies = pipe.execute()
        for (_old, new), old_exists, new_exists in zip(pairs, replies[::2], replies[1::2]):
            if old_exists and new_exists:
                found.append(key_to_text(new))
    return found


def run(ctx: Context) -> None:
    plan = ctx.plan
    if plan.rewrites.prefix:
        taken = _collisions(ctx)
        if taken:
            raise PreflightFailed(
                f"{len(taken)} key(s) the prefix change would create already exist (first: {taken[0]}); "
                "nothing was changed",
                hint="delete or move them, or choose another prefix",
                details={"colliding_keys": taken[:MAX_LISTED]},
            )
    if ctx.target.name != ctx.source.name and index_exists(ctx.client, ctx.target.name):
        raise PreflightFailed(
            f"an index or alias named {ctx.target.name!r} now exists; nothing was changed",
            hint="choose another name or drop it first",
        )
    others = other_indexes(ctx.client, {ctx.source.name, ctx.target.name})
    conflicts = shared_key_conflicts(ctx.source, plan.rewrites, others)
    if conflicts:
        raise PreflightFailed(
            "another index now shares the keys this migration changes: "
            + "; ".join(conflicts.values())
            + "; nothing was changed",
            hint="resolve it, then re-run the same task",
            details={"shared_key_indexes": sorted(conflicts)},
        )
    require_create_accepted(ctx.client, plan)
    ctx.store.header.aliases = list(plan.source.aliases)
    ctx.store.save()
    failpoints.hit("drop", 0)
    if index_exists(ctx.client, ctx.source.name):
        drop_once(ctx.client, ctx.source.name)


def drop_once(client, name: str) -> None:
    """FT.DROPINDEX of `name`, also when the client retried it after a lost reply: the retry's "Unknown
    index name" is fine when the index is gone (the first attempt dropped it)."""
    try:
        client.execute_command("FT.DROPINDEX", name)
    except redis_exceptions.ResponseError:
        if index_exists(client, name):
            raise
