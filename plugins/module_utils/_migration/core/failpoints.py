# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault injection for the crash tests: stop this process at a chosen point of a chosen phase.

INDEXOPS_FAILPOINT=<phase>:<n> sends SIGKILL to the process when `phase` reaches point `n`: `start`
(before the phase does anything), a number of blocks done, or `0` for a phase's own critical point
(drop: after its checks, before FT.DROPINDEX; create: after FT.CREATE, before the aliases), or a
name (batch:<index>: a batch before it starts that index).
<phase>:<n>:pause=<seconds> sleeps there instead (to hold the lock while a test starts another
run); <phase>:<n>:raise raises InjectedFailure there, once (the variable is then removed from this
process, so that a retry or the next index of a batch runs through). Unset in normal use, where
`hit` costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "INDEXOPS_FAILPOINT"


class InjectedFailure(RuntimeError):
    """An ordinary error at a chosen point, for tests of what happens after a failure (not a crash)."""


def hit(phase: str, point) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _sep, rest = spec.partition(":")
    at, _sep, action = rest.partition(":")
    if name != phase or str(point) != (at or "0"):
        return
    if action.startswith("pause="):
        time.sleep(float(action.split("=", 1)[1]))
        return
    if action == "raise":
        del os.environ[ENV]
        raise InjectedFailure(f"failure injected at {phase}:{point}")
    os.kill(os.getpid(), signal.SIGKILL)
