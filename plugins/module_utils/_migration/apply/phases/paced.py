# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-document script calls that leave the server free to answer readers: sent in rounds, each sized so
that the server spends about ROUND_SECONDS on it.

The server runs the commands it has read from one connection before it turns to another client, and a
write of a document re-indexes it in every index covering it: in an HNSW index that is 0.3 to 0.6 ms a
document (20k x 128, M 16, EF_CONSTRUCTION 200, on 2 cores). A block of 500 such writes sent in one pipeline
kept the server in passes of 60 to 180 ms, and a reader's query waited behind each. Sent in rounds of
ROUND_SECONDS' worth, a query waits for one round at most.

What a call costs is measured, not assumed: each round's time, on the client (the server's work, the round
trip and the client's own packing and parsing: an upper bound), sets the size of the next. The costliest
recent call counts (a slower stretch shrinks the rounds at once, the estimate fades as cheaper rounds come
in), and a round grows at most twofold on the one before. A block is still recorded in its ledger only once
all of its rounds are answered: the backup's blocks and their resumption do not change.
"""

from __future__ import annotations

import time
from typing import Any, List, Optional, Sequence, Tuple

# The server time one round may take. A reader's query waits behind one round at most, and the online steps'
# goal is 50 ms between two answers to a reader that polls; a round costs one round trip more than no round.
ROUND_SECONDS = 0.010
FIRST_ROUND = 16  # calls, before anything is measured: 5 to 10 ms of HNSW writes
FADE = 0.75  # the cost estimate falls by at most this factor a round

Call = Tuple[Any, List[bytes], List[bytes]]  # (a registered script, its keys, its arguments)


class Pacer:
    """The size of the next round, from the cost of the rounds before it (one per phase and process)."""

    def __init__(self, budget: float = ROUND_SECONDS, first: int = FIRST_ROUND):
        self.budget = budget
        self.size = max(first, 1)
        self.per_call: Optional[float] = None

    def take(self, remaining: int) -> int:
        return max(1, min(self.size, remaining))

    def record(self, calls: int, seconds: float) -> None:
        if calls <= 0:
            return
        measured = seconds / calls
        self.per_call = measured if self.per_call is None else max(measured, self.per_call * FADE)
        fits = int(self.budget / self.per_call + 1e-6) if self.per_call > 0 else 2 * self.size
        self.size = max(1, min(fits, 2 * self.size))


def run_paced(client, calls: Sequence[Call], pacer: Pacer) -> List[Any]:
    """Each call's reply, in order; the calls sent in rounds of the pacer's size, one pipeline each."""
    replies: List[Any] = []
    at = 0
    while at < len(calls):
        size = pacer.take(len(calls) - at)
        pipe = client.pipeline(transaction=False)
        for script, keys, args in calls[at : at + size]:
            script(keys=keys, args=args, client=pipe)
        began = time.perf_counter()
        replies += pipe.execute()
        pacer.record(size, time.perf_counter() - began)
        at += size
    return replies
