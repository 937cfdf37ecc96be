# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phases `create` (FT.CREATE of the exact target schema, aliases re-pointed) and `wait`."""

from __future__ import annotations

from ...core import failpoints
from ...core.deps import redis_exceptions
from ...core.errors import MigrationFailed
from ...redis.ftcreate import create_args
from ...redis.snapshot import holds, live_schema
from ...redis.waiting import StillIndexing, wait_until_indexed
from .context import Context


def run_create(ctx: Context) -> None:
    target = ctx.target
    live = live_schema(ctx.client, target.name)
    # An earlier run may have created it: then it must be exactly ours.
    found = live.differs_from(target) if live is not None else []
    if found:
        raise MigrationFailed(
            f"an index named {target.name!r} exists with another schema: {'; '.join(found[:3])}",
            hint="drop it (or rename the target) and re-run",
        )
    if live is None:
        create_once(ctx.client, target)
    failpoints.hit("create", 0)
    for alias in ctx.store.header.aliases:
        ctx.client.execute_command("FT.ALIASUPDATE", alias, target.name)


def create_once(client, schema) -> None:
    """FT.CREATE of `schema`, also when the client retried it after a lost reply: the retry's "Index already
    exists" is fine when the index there is exactly this one (the first attempt made it)."""
    try:
        client.execute_command("FT.CREATE", *create_args(schema))
    except redis_exceptions.ResponseError:
        if not holds(client, schema.name, schema):
            raise


def run_wait(ctx: Context) -> None:
    """Until the target has indexed everything: not indexing, 100% scanned, the count steady."""

    def report(stats) -> None:
        ctx.progress("wait", num_docs=stats.num_docs, percent_indexed=stats.percent_indexed)

    try:
        wait_until_indexed(ctx.client, ctx.target.name, ctx.options.wait_timeout, on_poll=report)
    except StillIndexing as err:
        raise MigrationFailed(
            f"{ctx.target.name} was still indexing after {ctx.options.wait_timeout:.0f} s ({err})",
            hint="re-run the same task to keep waiting, or raise wait_timeout",
        ) from None
