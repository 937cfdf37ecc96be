# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phases `create` (FT.CREATE of the exact target schema, aliases re-pointed) and `wait`."""
from __future__ import annotations

import time

from .. import failpoints
from ..errors import MigrationFailed
from ..ftcreate import create_args
from ..schema import differences
from ..snapshot import index_exists, read_info, snapshot_index
from ..stats import stats_from_info
from .context import Context

POLL_SECONDS = 0.1
# Settings no server reports; the comparison of a live index with a schema must skip them.
NOT_REPORTED = ("index.key_separator",)


def run_create(ctx: Context) -> None:
    target = ctx.target
    if index_exists(ctx.client, target.name):
        # An earlier run created it: it must be exactly ours.
        live = snapshot_index(ctx.client, target.name).snapshot
        found = differences(target, live.index_schema, NOT_REPORTED + tuple(live.unobserved))
        if found:
            raise MigrationFailed(f"an index named {target.name!r} exists with another schema: {'; '.join(found[:3])}",
                                  hint="drop it (or rename the target) and re-run")
    else:
        ctx.client.execute_command("FT.CREATE", *create_args(target))
    failpoints.hit("create", 0)
    for alias in ctx.store.header.aliases:
        ctx.client.execute_command("FT.ALIASUPDATE", alias, target.name)


def run_wait(ctx: Context) -> None:
    """Until the target has indexed everything: not indexing, 100% scanned, the count steady."""
    deadline = time.monotonic() + ctx.options.wait_timeout
    previous = None
    while True:
        stats = stats_from_info(read_info(ctx.client, ctx.target.name))
        ctx.progress("wait", num_docs=stats.num_docs, percent_indexed=stats.percent_indexed)
        if stats.fully_indexed and stats.num_docs == previous:
            return
        previous = stats.num_docs if stats.fully_indexed else None
        if time.monotonic() > deadline:
            raise MigrationFailed(
                f"{ctx.target.name} was still indexing after {ctx.options.wait_timeout:.0f} s "
                f"({stats.percent_indexed:.0%}, {stats.num_docs} documents)",
                hint="re-run the same task to keep waiting, or raise wait_timeout")
        time.sleep(POLL_SECONDS)
