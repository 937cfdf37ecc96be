# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault injection for the crash tests: kill this process at a chosen point of a chosen phase.

INDEXOPS_FAILPOINT=<phase>:<n> sends SIGKILL to the process when `phase` has completed `n` units
(blocks, or 0 for its very start). Unset in normal use, where `hit` costs one dict lookup.
"""
from __future__ import annotations

import os
import signal

ENV = "INDEXOPS_FAILPOINT"


def hit(phase: str, count: int) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _sep, at = spec.partition(":")
    if name == phase and str(count) == (at or "0"):
        os.kill(os.getpid(), signal.SIGKILL)
