# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a running migration, rollback or batch, as it happens, for whoever runs it - and the one
way to ask a run to stop.

The engine calls `report()` between batches of documents: the points where stopping leaves a run that
the same call resumes (the header and ledgers are written, the lock is held, no batch is half sent).
A listener (the module's progress channel) sees each report; `request_stop()` (a signal handler, or the
channel when the job that started the run is gone) makes the next `report()` raise `StopRequested`, so
the run stops there, records where, and releases its lock. Without a listener and a request, a report
costs one function call.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .errors import StopRequested

Listener = Callable[[str, str, dict], None]

_listener: Optional[Listener] = None
_stop_reason: Optional[str] = None


def listen(listener: Optional[Listener]) -> None:
    """Send every report to `listener(index, phase, counters)` (None: to nobody)."""
    global _listener  # pylint: disable=global-statement
    _listener = listener


def request_stop(reason: str) -> None:
    """Ask the running operation to stop at its next report."""
    global _stop_reason  # pylint: disable=global-statement
    _stop_reason = _stop_reason or reason


def stop_reason() -> Optional[str]:
    return _stop_reason


def report(index: str, phase: str, /, **counters: Any) -> None:
    """A point where the run may stop: tell the listener how far `phase` of `index` is, then stop if asked."""
    if _listener is not None:
        _listener(index, phase, counters)
    if _stop_reason is not None:
        raise StopRequested(
            f"it was asked to stop: {_stop_reason}",
            hint="it stopped between two batches: run the same task again to resume it",
            details={"stopped_because": _stop_reason},
        )
