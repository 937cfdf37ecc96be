# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prove that no write reaches the server for a while.

Two independent witnesses, sampled every `interval` seconds: the server's change counter
(`INFO persistence` rdb_changes_since_last_save, less keys that expired or were evicted meanwhile,
which are not application writes) and the call counters of every write command in
`INFO commandstats` - executed calls, and calls ACL or the server rejected, which show that
someone still tries to write.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Sequence

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import IndexOpsError

from .write_commands import command_stats


class ObservationInvalid(IndexOpsError):
    """An observation window that could not prove anything (zero, negative, not a number, no second reading)."""

    kind = "invalid_input"


def check_window(seconds: float, interval: float) -> None:
    """Refuse a window that proves nothing, before anything runs: both finite and above 0, and at least
    two readings (the interval below the window)."""
    for name, value in (("observe_seconds", seconds), ("observe_interval", interval)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ObservationInvalid(
                f"{name} must be a finite number of seconds above 0, not {value!r}",
                hint=f"give {name} as a positive number, e.g. 5 (seconds) or 0.5 (interval)",
            )
    if interval >= seconds:
        raise ObservationInvalid(
            f"observe_interval ({interval:g} s) must be below observe_seconds ({seconds:g} s)",
            hint="the counters are read at the start and every interval: give an interval shorter than the window",
        )


def _int(section: Dict[str, Any], key: str) -> int:
    try:
        return int(section.get(key, 0) or 0)
    except (TypeError, ValueError):
        return 0


class Sample:
    """One reading of the counters."""

    def __init__(self, client, names: Sequence[str]):
        persistence = client.info("persistence")
        stats = client.info("stats")
        commands = command_stats(client.info("commandstats"))
        self.rdb_changes = _int(persistence, "rdb_changes_since_last_save")
        self.expired = _int(stats, "expired_keys")
        self.evicted = _int(stats, "evicted_keys")
        self.commands = {
            name: commands.get(name, {"calls": 0, "rejected_calls": 0, "failed_calls": 0}) for name in names
        }


def observe(
    client,
    names: Sequence[str],
    seconds: float,
    interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Dict[str, Any]:
    """Watch for `seconds`; return what arrived. `quiet` is True when no write ran."""
    check_window(seconds, interval)
    first = previous = Sample(client, names)
    changes = 0
    start = clock()
    deadline = start + seconds
    while True:
        now = clock()
        if now >= deadline:
            break
        sleep(min(interval, deadline - now))
        current = Sample(client, names)
        # A save resets the counter: what it shows afterwards is new.
        step = current.rdb_changes - previous.rdb_changes
        changes += step if step >= 0 else current.rdb_changes
        previous = current
    last = previous
    background = (last.expired - first.expired) + (last.evicted - first.evicted)
    per_command: Dict[str, Dict[str, int]] = {}
    executed = rejected = 0
    for name in names:
        delta = {
            counter: last.commands[name][counter] - first.commands[name][counter]
            for counter in ("calls", "rejected_calls", "failed_calls")
        }
        if any(delta.values()):
            per_command[name] = delta
        executed += delta["calls"]
        rejected += delta["rejected_calls"]
    data_changes = max(changes - background, 0)
    return {
        "seconds": round(clock() - start, 3),
        "quiet": executed == 0 and data_changes == 0,
        "writes_executed": executed,
        "writes_rejected": rejected,
        "data_changes": data_changes,
        "expired_or_evicted": background,
        "commands": per_command,
    }


def describe(observation: Dict[str, Any]) -> str:
    parts: List[str] = []
    for name, delta in sorted(observation["commands"].items()):
        parts.append(f"{name} {delta['calls']} ran/{delta['rejected_calls']} rejected")
    return ", ".join(parts) or "no write command ran"
