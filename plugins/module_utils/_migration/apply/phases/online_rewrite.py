# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The phases of an online migration that rewrites documents (schema/online_layout.py): expand, the
build and swap of online.py, then contract - without a read gap.

    backup      every byte that changes, and the converted vectors staged (phases/backup.py)
    expand      the new bytes beside the old: a renamed field's new name, or a side field, := its value
                (converted where the datatype changes), where the old location still holds the backup's
                original; the source never reads them
    create, wait, validate
                the first index is built on them beside the source and validated (online.py)
    catch_up    documents the application changed or added since the backup read them: recorded in the
                backup again as they are now, and expanded again from those bytes (catch_up.py)
    swap        the first index swapped in (online.py)
    convert     (a datatype change in place) the original location := the converted bytes: nothing reads
                it now, the interim index serves from the side field
    rebuild     (the same) the target on the original locations, built beside the interim index and
                validated against it (create, wait, validate in one phase: each step is idempotent)
    swap_final  (the same) the target swapped in for the interim index, the same guarded way
    contract    the old bytes removed: a renamed field's old name (its new name takes its place in the
                hash, as drop_recreate leaves it), a side field

Each block phase works from the backup's records through scripts.ONLINE_STEP (compare-and-set against the
backup's originals and what the migration wrote), one ledger per phase, so a SIGKILL anywhere converges on
re-run: a block applied twice changes nothing the second time. A document the application changed before the
swap is caught up; one it changed after the catch-up's last round is a conflict, left as it wrote it and listed.
"""

from __future__ import annotations

from ...backup.newest import Newest
from ...core.errors import MigrationFailed
from . import backup, catch_up
from .context import Context
from .online import create_built, final_build, side_by_side_names, swap_built, validate_built, wait_built
from .online_steps import CONTRACT, CONVERT, EXPAND, OnlineSteps
from .rewrite import run_block_phase


def _step(phase: str):
    def run(ctx: Context) -> None:
        if ctx.plan.rewrites.prefix is not None and ctx.plan.server.cluster_enabled:
            raise MigrationFailed(
                f"a prefix change online copies each document beside its old key, which on a cluster lives in another "
                f"slot ({phase}); nothing was changed in this phase",
                hint="plan again with mode drop_recreate",
            )
        steps = OnlineSteps(ctx, phase, Newest.of(ctx.store))
        try:
            ctx.store.phase(phase).counters.update(run_block_phase(ctx, phase, steps))
        finally:
            steps.close()

    return run


run_expand = _step(EXPAND)
run_convert = _step(CONVERT)
run_contract = _step(CONTRACT)


def run_rebuild(ctx: Context) -> None:
    """The target on the converted original locations, beside the interim index: create, wait, validate."""
    build = final_build(ctx)
    create_built(ctx, build)
    wait_built(ctx, build)
    validate_built(ctx, build)


def run_swap_final(ctx: Context) -> None:
    swap_built(ctx, final_build(ctx), "swap_final", side_by_side_names(ctx))


def phases(layout, build_and_swap: list) -> list:
    """The phases in order, around online.py's (create, wait, validate, swap)."""
    found = [("backup", backup.run), ("expand", run_expand), *catch_up.before_swap(layout, build_and_swap)]
    if layout.side_fields:
        found += [("convert", run_convert), ("rebuild", run_rebuild), ("swap_final", run_swap_final)]
    return found + [("contract", run_contract)]
