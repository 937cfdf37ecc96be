# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A pool of forked worker processes whose results come back in the order their tasks went out.

The backup pass keeps enumerating keys and writing blocks in this process, in enumeration order, so
that its files and their checksums are the same whatever the number of workers; the workers do what
costs the client most - reading the values, checking and encoding them. Tasks go round-robin (task i
to worker i mod n) and each worker answers its tasks in turn, so the results are read back in
submission order without sorting. At most `depth` tasks per worker are out at a time: memory stays
flat whatever the number of documents.

Workers have their own connection, die with their parent (Linux: PR_SET_PDEATHSIG; elsewhere they
notice it has gone while they wait for a task), and report an error as a message rather than a
traceback, which becomes an exception of this process naming the worker and the cause.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import pickle
import queue as queue_module
from collections import deque
from typing import Any, Callable, Deque, Iterable, Iterator, List, Optional

from ..core.errors import IndexOpsError, MigrationFailed
from ..redis.connection import lost_connection
from .blocks import _die_with_parent

WAIT_SECONDS = 2.0
DEPTH = 2  # tasks out per worker: one being done, one waiting, so that a worker never idles
PIPE_BYTES = 1 << 20
_STOP = None


def describe(err: BaseException) -> str:
    """One line naming the cause (connection errors name host:port at most, never a secret)."""
    return lost_connection(err) or f"{type(err).__name__}: {err}"


def _next_task(tasks, parent: int) -> Any:
    while True:
        try:
            return tasks.get(timeout=WAIT_SECONDS)
        except queue_module.Empty:
            if os.getppid() != parent:
                raise MigrationFailed("the migration process went away; worker stopped") from None


def _serve(
    tasks, results, start: Callable[[], Any], work: Callable[[Any, Any], Any], finish: Callable[[Any], Any], parent: int
) -> None:
    _die_with_parent()
    try:
        if os.getppid() != parent:
            return  # the parent died before PR_SET_PDEATHSIG was set
        state = start()
        while True:
            task = _next_task(tasks, parent)
            if task is _STOP:
                results.send(("done", finish(state)))
                return
            results.send(("ok", work(state, task)))
    except Exception as err:  # pylint: disable=broad-exception-caught
        # A library error travels whole (its class, message and hint); anything else as a line.
        try:
            results.send(("error", err if isinstance(err, IndexOpsError) else describe(err)))
        except (
            pickle.PicklingError,
            TypeError,
            AttributeError,
            ValueError,
        ):  # details that do not pickle (nothing was sent)
            results.send(("error", describe(err)))


def _widen(connection) -> None:
    """Let a pipe hold a whole result (Linux): a result of a few hundred KiB then crosses in a few
    reads instead of one per 64 KiB, each waiting for the writer to refill."""
    try:
        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError):
        pass  # not Linux, or above the system's limit: the default size works, a little slower


class _Worker:
    def __init__(self, context, number: int, name: str, target_args: tuple):
        self.number = number
        self.tasks = context.Queue()
        # Tasks go through a queue's feeder thread, so that putting one never blocks this process
        # while the worker is itself blocked sending a large result.
        self.tasks.cancel_join_thread()
        self.results, sending = context.Pipe(duplex=False)
        _widen(sending)
        self.process = context.Process(
            target=_serve, name=f"{name}-{number}", daemon=True, args=(self.tasks, sending) + target_args
        )
        self.process.start()
        sending.close()  # only the worker holds it now: its death is an end of file here


class OrderedPool:
    """`workers` forked processes, each running `start()` once, then `work(state, task)` per task and
    `finish(state)` at the end. Use as a context manager: leaving it stops every worker."""

    def __init__(
        self,
        workers: int,
        start: Callable[[], Any],
        work: Callable[[Any, Any], Any],
        finish: Callable[[Any], Any],
        *,
        name: str = "worker",
        depth: int = DEPTH,
        hint: Optional[str] = None,
    ):
        self.name = name
        self.hint = hint
        self.limit = max(1, workers) * max(1, depth)
        context = multiprocessing.get_context("fork")
        parent = os.getpid()
        self._finished = False
        self._workers: List[_Worker] = []
        try:
            for number in range(1, max(1, workers) + 1):
                self._workers.append(_Worker(context, number, name, (start, work, finish, parent)))
        except BaseException:
            self.close()
            raise

    def map(self, tasks: Iterable[Any]) -> Iterator[Any]:
        """Each task's result, in the order of `tasks`; a task is taken from `tasks` only when fewer
        than the limit are out, so a lazy iterable is read as the work goes."""
        out: Deque[_Worker] = deque()
        for number, task in enumerate(tasks):
            if len(out) >= self.limit:
                yield self._receive(out.popleft(), "ok")
            worker = self._workers[number % len(self._workers)]
            worker.tasks.put(task)
            out.append(worker)
        while out:
            yield self._receive(out.popleft(), "ok")

    def finish(self) -> List[Any]:
        """Every worker's `finish(state)`, in worker order, once `map` is through."""
        for worker in self._workers:
            worker.tasks.put(_STOP)
        found = [self._receive(worker, "done") for worker in self._workers]
        self._finished = True
        return found

    def _receive(self, worker: _Worker, expected: str) -> Any:
        try:
            while not worker.results.poll(WAIT_SECONDS):
                if not worker.process.is_alive() and not worker.results.poll(0):
                    raise EOFError
            status, payload = worker.results.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=1)
            raise MigrationFailed(
                f"{self.name} worker {worker.number} died without reporting (exit code {worker.process.exitcode})",
                hint=self.hint,
            ) from None
        if status == "error":
            if isinstance(payload, IndexOpsError):
                payload.message = f"{self.name} worker {worker.number}: {payload.message}"
                raise payload
            raise MigrationFailed(f"{self.name} worker {worker.number} failed: {payload}", hint=self.hint)
        if status != expected:
            raise MigrationFailed(f"{self.name} worker {worker.number} answered {status!r} out of turn", hint=self.hint)
        return payload

    def close(self) -> None:
        for worker in self._workers:
            if worker.process.is_alive() and not self._finished:
                worker.process.terminate()
        for worker in self._workers:
            worker.process.join(timeout=30)
            worker.tasks.close()
            worker.results.close()

    def __enter__(self) -> "OrderedPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
