# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting for an index to finish indexing."""

from __future__ import annotations

import time
from typing import Callable, Optional

from .snapshot import read_info
from .stats import IndexStats, stats_from_info

POLL_SECONDS = 0.1


class StillIndexing(Exception):
    """The index had not finished when the time ran out; `stats` is the last reading."""

    def __init__(self, stats: IndexStats):
        super().__init__(f"{stats.percent_indexed:.0%} indexed, {stats.num_docs} documents")
        self.stats = stats


def wait_until_indexed(
    client, index: str, timeout: float, steady: bool = True, on_poll: Optional[Callable[[IndexStats], None]] = None
) -> IndexStats:
    """Poll FT.INFO until the index is not indexing and 100% scanned (and, with `steady`, its
    document count is the same on two readings in a row). Raises StillIndexing at `timeout`."""
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        stats = stats_from_info(read_info(client, index))
        if on_poll:
            on_poll(stats)
        if stats.fully_indexed and (not steady or stats.num_docs == previous):
            return stats
        previous = stats.num_docs if stats.fully_indexed else None
        if time.monotonic() > deadline:
            raise StillIndexing(stats)
        time.sleep(POLL_SECONDS)
