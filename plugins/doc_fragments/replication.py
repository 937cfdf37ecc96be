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
      - Default (V(null)) - every replica connected to the primary when the run starts (a run continued after a
        failover counts those of the new primary). V(0) turns the waiting off. More than are connected is refused
        before anything changes.
    type: int
  replicas_wait_timeout:
    description:
      - Seconds each C(WAIT) waits for the replicas. When fewer acknowledge in time, the task fails with the figures
        before it records anything; running it again continues from what was recorded. Must be more than V(0) and
        less than O(socket_timeout).
    type: float
    default: 10
  failover_timeout:
    description:
      - With O(sentinel), when a run fails and its primary no longer answers (killed, a failover), the seconds it
        waits for the Sentinels to name a primary that answers (Sentinel's C(down-after-milliseconds) plus the
        failover itself). It then records where it stopped, releases its locks on the new primary, and fails naming
        it; running the same task again continues there. When none is named in time, the failure says so.
      - Without O(sentinel), a lost connection fails the task at once (running it again continues).
    type: float
    default: 30
"""
