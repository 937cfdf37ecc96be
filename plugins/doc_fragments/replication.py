# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the modules that change data, for a primary with replicas (argspec: module_utils/_module_kit.py)."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  replicas_wait_count:
    description:
      - When the primary has replicas, every record of progress - each block of documents in a phase's ledger, each
        phase marked done (before the drop, after the create, at the swap), a rollback finished - waits until this
        many replicas hold every write made so far (C(WAIT)), so that a replica promoted by a failover lacks nothing
        the run recorded as done.
      - Default (V(null)) - every replica connected to the primary when the run starts (after a failover, to the
        new primary). V(0) turns the waiting off. More than are connected is refused before anything changes.
    type: int
  replicas_wait_timeout:
    description:
      - Seconds each C(WAIT) waits for the replicas. When fewer acknowledge in time, the task fails with the figures
        before it records anything; running it again continues from what was recorded. Must be more than V(0) and
        less than O(socket_timeout).
    type: float
    default: 10
  on_failover:
    description:
      - What a run connected with O(sentinel) does when its primary is lost and the Sentinels name another one (a
        failover). V(continue) - reconnect to the new primary, check that it holds what the run recorded (the
        locks, the dropped and created indexes, a sample of the documents each rewrite recorded), and go on there.
        V(stop) - fail with one line naming the new primary; running the same task again continues there.
      - Without O(sentinel), a lost connection fails the task (running it again continues).
    type: str
    choices: [continue, stop]
    default: continue
  failover_timeout:
    description:
      - Seconds to wait, after the connection to the primary was lost, for the Sentinels to name a primary that
        answers (Sentinel's C(down-after-milliseconds) plus the failover itself). When none does in time, the task
        fails; running it again continues on whichever primary the Sentinels name then.
    type: float
    default: 60
"""
