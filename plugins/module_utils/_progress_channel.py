# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's end of the progress channel of the collection's action plugins (plugins/plugin_utils/
_progress_action.py), for the long modules: migrate, rollback, batch.

The action plugin makes a directory on the target and names it in INDEXOPS_PROGRESS_DIR. There the module
writes `progress.json` (the running phase, documents done and expected) at most every second, and reads
`control`, which the action plugin rewrites every few seconds while its job lives: `stop <reason>` when
the job that started the run is gone (a cancelled AWX job), and left alone for STALE_SECONDS when the
action plugin itself is gone. Either way, and on SIGINT, SIGTERM or SIGHUP, the run stops at its next
safe point (core/progress.py) and releases its lock; the same task run again resumes it.

Without INDEXOPS_PROGRESS_DIR (the module run by hand, or with async) nothing of this is installed.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any, Optional

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import progress

ENV = "INDEXOPS_PROGRESS_DIR"
PROGRESS_FILE = "progress.json"
CONTROL_FILE = "control"
WRITE_SECONDS = 1.0
# The action plugin rewrites `control` every few seconds; this long without it, its job is gone.
STALE_SECONDS = 120.0
SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def documents_done(counters: dict[str, Any]) -> tuple[Optional[int], Optional[int]]:
    """(done, expected) documents of a phase from its counters: documents read or restored, a share of the
    blocks rewritten, documents indexed."""
    total = counters.get("documents_total")
    if "documents" in counters:
        return counters["documents"], total
    if counters.get("blocks") and "blocks_done" in counters and total is not None:
        return round(total * counters["blocks_done"] / counters["blocks"]), total
    if "num_docs" in counters:
        return counters["num_docs"], total
    return None, total


class Channel:
    """Listener of core/progress.py: writes the progress file and reads the control file."""

    def __init__(self, directory: str):
        self.directory = directory
        self.written = 0.0
        self.phase: Optional[tuple[str, str]] = None
        self.broken = False

    def __call__(self, index: str, phase: str, counters: dict[str, Any]) -> None:
        self.check_control()
        now = time.monotonic()
        if self.broken or (now - self.written < WRITE_SECONDS and self.phase == (index, phase)):
            return
        self.written, self.phase = now, (index, phase)
        done, total = documents_done(counters)
        record = {"index": index, "phase": phase, "done": done, "total": total, "at": time.time()}
        path = os.path.join(self.directory, PROGRESS_FILE)
        try:
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                json.dump(record, handle)
            os.replace(path + ".tmp", path)
        except OSError:
            self.broken = True  # no progress lines, the run itself goes on

    def check_control(self) -> None:
        path = os.path.join(self.directory, CONTROL_FILE)
        try:
            age = time.time() - os.stat(path).st_mtime
            with open(path, encoding="utf-8") as handle:
                order = handle.read(200)
        except OSError:
            return
        if order.startswith("stop"):
            progress.request_stop(order[4:].strip() or "its job was cancelled")
        elif age > STALE_SECONDS:
            progress.request_stop(f"the job that started it has not been heard from for {age:.0f} s (killed)")


def open_channel() -> None:
    """Called by the long modules before they run: the progress channel and the stop on signals, when the
    collection's action plugin runs the module."""
    directory = os.environ.get(ENV)
    if not directory or not os.path.isdir(directory):
        return
    progress.listen(Channel(directory))
    owner = os.getpid()

    def stop(signum, _frame) -> None:
        if os.getpid() != owner:  # a forked worker: its parent stops the run
            os._exit(128 + signum)
        progress.request_stop(f"its job was cancelled ({SIGNALS[signum]})")

    for signum in SIGNALS:
        signal.signal(signum, stop)
