# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a function to every block of a backup that a phase has not applied yet, in this process
or in several worker processes.

Each applied block is appended to the phase's ledger; blocks missing from the ledgers are applied
again on resume, which is safe because every mutation is conditional on the backup's originals
(scripts.py). Workers are forked processes with their own connection; they die with their parent
(Linux: PR_SET_PDEATHSIG; elsewhere they notice the parent has gone between blocks), so a killed
run never leaves writers behind.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from ..core import failpoints
from ..core.errors import BackupInvalid, MigrationFailed
from .format import FormatError, block_offsets, decode_records, read_block_at
from .store import DATA, BackupStore, Ledger

# (client, block number, records) -> counters to add up, or a function that returns them: then the
# block's work is on the wire, and its outcome is collected after the next block has been sent.
BlockFunction = Callable[[Any, int, list], Any]
# (client, what) -> returns once the replicas hold every write so far (redis/durability.py), or raises.
Confirm = Callable[[Any, str], None]
PROGRESS_SECONDS = 2.0
LISTED = 100  # keys listed per outcome (gone, conflict); counters count them all


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes  # pylint: disable=import-outside-toplevel

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _add(total: Dict[str, int], part: Dict[str, int]) -> None:
    for key, value in part.items():
        if isinstance(value, list):
            total.setdefault(key, [])
            total[key].extend(value[: max(0, LISTED - len(total[key]))])
        else:
            total[key] = total.get(key, 0) + value


def _apply_blocks(
    store: BackupStore,
    phase: str,
    worker: int,
    blocks: List[int],
    offsets: List[int],
    client,
    function: BlockFunction,
    tick: Optional[Callable[[int], None]] = None,
    parent: Optional[int] = None,
    confirm: Optional[Confirm] = None,
) -> Dict[str, int]:
    totals: Dict[str, int] = {}
    ledger = Ledger(store.ledger_path(phase, worker))

    def done(block_no: int, count: int, counters: Dict[str, int]) -> None:
        # Marked only once its outcome is in (a block on the wire when the process dies is redone), and the
        # replicas hold it (a block a failover loses is redone too).
        if confirm is not None:
            confirm(client, f"block {block_no} of phase {phase}")
        _add(totals, counters)
        ledger.mark(block_no, counters)
        failpoints.hit(phase, count)
        if tick:
            tick(count)

    pending = None
    try:
        with open(store.path(DATA), "rb") as stream:
            for count, block_no in enumerate(blocks, start=1):
                if parent is not None and os.getppid() != parent:
                    raise MigrationFailed("the migration process went away; worker stopped")
                block = read_block_at(stream, offsets[block_no])
                if not block.digest_ok or block.block_no != block_no:
                    raise BackupInvalid(f"block {block_no} of {store.path(DATA)} changed since it was verified")
                records = [r for _i, r in decode_records(block.payload, block.record_count, block_no, check_crc=False)]
                if any(r is None for r in records):
                    raise BackupInvalid(f"block {block_no} holds a record that fails its CRC")
                outcome = function(client, block_no, records)
                if pending is not None:
                    done(pending[0], pending[1], pending[2]())
                    pending = None
                if callable(outcome):
                    pending = (block_no, count, outcome)
                else:
                    done(block_no, count, outcome)
            if pending is not None:
                done(pending[0], pending[1], pending[2]())
    except FormatError as err:
        raise BackupInvalid(f"backup data unreadable: {err}") from None
    finally:
        ledger.close()
    return totals


def _worker_main(queue, store, phase, worker, blocks, offsets, connect, function, parent, confirm) -> None:
    _die_with_parent()
    try:
        client = connect()
        totals = _apply_blocks(store, phase, worker, blocks, offsets, client, function, parent=parent, confirm=confirm)
        queue.put((worker, "ok", totals))
    except Exception as err:  # pylint: disable=broad-exception-caught
        queue.put((worker, "error", f"{type(err).__name__}: {err}"))


def run_blocks(
    store: BackupStore,
    phase: str,
    function: BlockFunction,
    *,
    client,
    connect: Callable[[], Any],
    workers: int = 1,
    lock=None,
    on_progress: Optional[Callable[[int, int], None]] = None,
    confirm: Optional[Confirm] = None,
    first: int = 0,
) -> Dict[str, int]:
    """Apply `function` to every block from `first` on not yet in `phase`'s ledgers; return the summed counters.
    With `confirm`, each block is recorded only once it says the replicas hold the block's writes."""
    outcomes = store.block_outcomes(phase)
    # A resumed phase reports what the killed run's blocks found as well (conflicts, keys gone).
    earlier: Dict[str, int] = {}
    for block_no in sorted(outcomes):
        _add(earlier, outcomes[block_no])
    total_blocks = store.header.data_blocks
    with open(store.path(DATA), "rb") as stream:
        offsets = block_offsets(stream, store.header.data_bytes)
    pending = [b for b in range(first, total_blocks) if b not in outcomes]
    if not pending:
        return earlier
    last = [time.monotonic()]

    def tick(_count: int) -> None:
        if lock is not None:
            lock.check()
        if on_progress and time.monotonic() - last[0] >= PROGRESS_SECONDS:
            last[0] = time.monotonic()
            on_progress(len(store.done_blocks(phase)), total_blocks - first)

    if workers <= 1 or len(pending) < 2:
        _add(earlier, _apply_blocks(store, phase, 0, pending, offsets, client, function, tick, confirm=confirm))
        return earlier

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = []
    for worker in range(min(workers, len(pending))):
        share = pending[worker::workers]
        process = context.Process(
            target=_worker_main,
            name=f"{phase}-{worker}",
            daemon=True,
            args=(queue, store, phase, worker + 1, share, offsets, connect, function, os.getpid(), confirm),
        )
        process.start()
        processes.append(process)
    totals = earlier
    errors: List[str] = []
    reported = 0
    try:
        while reported < len(processes):
            try:
                _worker, status, payload = queue.get(timeout=PROGRESS_SECONDS)
            except Exception:  # pylint: disable=broad-exception-caught  # queue.Empty
                if not any(p.is_alive() for p in processes):
                    errors.append("a worker process died without reporting")
                    break
                tick(0)
                continue
            reported += 1
            if status == "ok":
                _add(totals, payload)
            else:
                errors.append(payload)
    finally:
        for process in processes:
            if process.is_alive() and errors:
                process.terminate()
            process.join(timeout=30)
    if errors:
        raise MigrationFailed(
            f"{phase}: {len(errors)} worker(s) failed: {errors[0]}",
            hint="re-run the same task to resume; applied blocks are not redone",
        )
    return totals
