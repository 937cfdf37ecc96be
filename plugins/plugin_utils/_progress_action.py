# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin of the long modules (migrate, rollback, batch): runs the module as Ansible always does
and, while it runs, prints its progress in the job output and notices when the job is gone.

Ansible prints nothing of a task until it ends, and AWX shows a job's output as Ansible prints it. So the
module writes its phase and documents done to a file in the task's temporary directory on the target
(plugins/module_utils/_progress_channel.py), and this plugin, which waits for the module on the
controller, reads that file every 5 seconds (POLL_SECONDS) and prints a line at default verbosity:

    redis1 products: quantize 40000/100000 documents (40%), 52 s elapsed, about 1 min 18 s left

Each look also rewrites the channel's `control` file, which tells the module the job still lives. When
the job's ansible-playbook is gone (AWX cancels a job by killing its process group; this plugin runs in
a worker process of its own session, which outlives it), the plugin writes `stop` there and waits for
the module to stop at its next safe point, releasing its lock. A task with `async` runs the module the
usual way, without progress lines.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from typing import Any, Dict, Optional, Tuple

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

display = Display()

ENV = "INDEXOPS_PROGRESS_DIR"  # the module's end: _progress_channel.ENV
PROGRESS_FILE = "progress.json"
CONTROL_FILE = "control"
# How often the plugin looks (and prints a line): every 5 s, or INDEXOPS_PROGRESS_SECONDS on the controller
# (0.5 to 10: the job output shows a line at least every 10 s).
POLL_ENV = "INDEXOPS_PROGRESS_SECONDS"
POLL_SECONDS = 5.0


def poll_seconds() -> float:
    try:
        seconds = float(os.environ.get(POLL_ENV) or POLL_SECONDS)
    except ValueError:
        seconds = POLL_SECONDS
    return POLL_SECONDS if math.isnan(seconds) else min(max(seconds, 0.5), 10.0)


def duration(seconds: float) -> str:
    """12 s, 3 min 4 s, 2 h 5 min."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Rate:
    """Documents per second of the running phase, measured since this plugin first saw the phase."""

    def __init__(self) -> None:
        self.first: Dict[Tuple[str, str], Tuple[float, int]] = {}

    def remaining(self, key: Tuple[str, str], now: float, done: int, total: int) -> Optional[float]:
        began, at_start = self.first.setdefault(key, (now, done))
        if done <= at_start or now <= began:
            return None
        return (total - done) / ((done - at_start) / (now - began))


def progress_line(host: str, record: Dict[str, Any], elapsed: float, left: Optional[float]) -> str:
    """One line of the job output for the module's latest progress record."""
    line = f"{host} {record.get('index')}: {record.get('phase')}"
    done, total = record.get("done"), record.get("total")
    if done is not None and total:
        line += f" {done}/{total} documents ({min(100, int(100 * done / total))}%)"
    elif done is not None:
        line += f" {done} documents"
    line += f", {duration(elapsed)} elapsed"
    if left is not None:
        line += f", about {duration(max(left, 0))} left"
    return line


class ProgressActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        if self._task.async_val and not self._connection.has_native_async:
            return merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=True))
        directory = self._connection._shell.tmpdir or self._make_tmp_path()  # pylint: disable=protected-access
        try:
            return merge_hash(result, self._run_reporting(directory, task_vars))
        finally:
            self._remove_tmp_path(directory)

    def _run_reporting(self, directory: str, task_vars) -> Dict[str, Any]:
        join = self._connection._shell.join_path  # pylint: disable=protected-access
        control, progress = join(directory, CONTROL_FILE), join(directory, PROGRESS_FILE)
        self._send(control, "run")
        environment = self._task.environment
        environment = list(environment) if isinstance(environment, list) else [environment] if environment else []
        self._task.environment = environment + [{ENV: directory}]

        outcome: Dict[str, Any] = {}

        def execute() -> None:
            try:
                outcome["result"] = self._execute_module(task_vars=task_vars)
            except BaseException as err:  # pylint: disable=broad-exception-caught
                outcome["error"] = err

        worker = threading.Thread(target=execute, name="module", daemon=True)
        controller, began, rate, stopping = os.getppid(), time.monotonic(), Rate(), False
        host = (task_vars or {}).get("inventory_hostname", "")
        interval = poll_seconds()
        worker.start()
        while True:
            worker.join(interval)
            if not worker.is_alive():
                break
            if os.getppid() != controller and not stopping:
                # ansible-playbook is gone (the job was cancelled or killed): the module stops at its next safe
                # point and releases its lock, instead of running on without a job.
                stopping = True
                self._send(control, "stop its job was cancelled (the ansible-playbook that ran it is gone)")
                continue
            if not stopping:
                self._send(control, "run")
                self._show(progress, host, began, rate)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def _send(self, path: str, order: str) -> None:
        """Rewrite the channel's control file on the target (its age says the job lives)."""
        descriptor, local = tempfile.mkstemp(suffix=".control")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(order)
            self._connection.put_file(local, path)
        except Exception:  # pylint: disable=broad-exception-caught
            pass  # the next look tries again; a module left alone this long stops by itself
        finally:
            os.unlink(local)

    def _read(self, path: str) -> Optional[Dict[str, Any]]:
        descriptor, local = tempfile.mkstemp(suffix=".progress")
        os.close(descriptor)
        try:
            self._connection.fetch_file(path, local)
            with open(local, encoding="utf-8") as handle:
                return json.load(handle)
        except Exception:  # pylint: disable=broad-exception-caught
            return None  # nothing written yet (preflight), or a look between two writes
        finally:
            os.unlink(local)

    def _show(self, path: str, host: str, began: float, rate: Rate) -> None:
        if self._task.no_log:
            return
        record = self._read(path)
        if not record:
            return
        now = time.monotonic()
        done, total = record.get("done"), record.get("total")
        left = None
        if isinstance(done, int) and isinstance(total, int) and total:
            left = rate.remaining((str(record.get("index")), str(record.get("phase"))), now, done, total)
        display.display(progress_line(host, record, now - began, left))
