# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durability before progress: nothing is recorded as done until the replicas hold it.

Replication is asynchronous: a primary acknowledges a write before its replicas have it, and a replica
promoted after the primary dies lacks whatever had not reached it. A ledger that recorded such a block
as applied would make a resumed run skip documents that hold their original bytes on the new primary.
So every record of progress - a block in a ledger, a phase marked done, a rollback finished - first
asks `WAIT n timeout` that n replicas hold every write made so far, and a WAIT that comes back short
stops the run before it records anything.

WAIT covers the writes of the connection it runs on, and a run writes on several (pipelines, the
staged quantize's own connection, worker processes). So it runs in one pipeline after a write of its
own that replicates: the refresh of the run's lock (its TTL set again, only while the key still holds
the run's token). That write's replication offset is past every write any connection made before
it, so its acknowledgement covers them all - and a refresh that finds the lock gone stops the run too.
"""

from __future__ import annotations

from typing import Callable, Optional

from ..core.deps import BaseModel, Field
from ..core.errors import IndexOpsError, MigrationFailed, PreflightFailed
from ..core.limits import TimeoutSeconds, WaitSeconds
from .lock import IndexLock
from .permissions import require_permissions
from .topology import connected_replicas


class ReplicationOptions(BaseModel):
    """How a run on a primary with replicas makes its progress durable, and what it does on a failover."""

    # None: every replica connected when the run starts (after a failover, to the new primary).
    replicas_wait_count: Optional[int] = Field(default=None, ge=0, le=1000)
    replicas_wait_timeout: TimeoutSeconds = 10.0
    # How long a run that lost its primary waits for the Sentinels to name one that answers (to name it in
    # the failure and release its locks there).
    failover_timeout: WaitSeconds = 30.0


class ReplicasBehind(IndexOpsError):
    """WAIT came back with fewer replicas than asked for: the writes are not known to be on them."""

    kind = "replication_timeout"


class Durability:
    """The WAIT a run sends before each record of progress: `replicas` replicas within `timeout` seconds."""

    def __init__(self, replicas: int, timeout: float):
        self.replicas = replicas
        self.timeout = timeout

    @classmethod
    def for_run(cls, client, options: ReplicationOptions) -> "Durability":
        """The replicas to wait for on this primary: the count asked for, which must be connected now, or
        every connected one."""
        connected = connected_replicas(client)
        wanted = options.replicas_wait_count
        if connected:
            require_permissions(client, [("WAIT", "0", "0")], "replication check")
        if wanted is None:
            return cls(connected, options.replicas_wait_timeout)
        if wanted > connected:
            raise PreflightFailed(
                f"replicas_wait_count is {wanted}, but the primary has {connected} connected replica(s): no "
                "progress could be confirmed; nothing was changed",
                hint="start or reconnect the replicas (INFO replication lists them), or lower replicas_wait_count",
                details={"replicas_wait_count": wanted, "connected_replicas": connected},
            )
        return cls(wanted, options.replicas_wait_timeout)

    def confirm(self, client, lock: Optional[IndexLock], what: str) -> None:
        """Return once `self.replicas` replicas hold every write made so far, or raise ReplicasBehind (or
        MigrationFailed when the lock is no longer the run's). Without replicas, nothing to wait for."""
        if not self.replicas or lock is None:
            return
        pipe = client.pipeline(transaction=False)
        lock.refresh_in(pipe)
        pipe.execute_command("WAIT", self.replicas, int(self.timeout * 1000))
        held, acknowledged = pipe.execute()
        if not held:
            raise MigrationFailed(
                f"the lock on {lock.index} is no longer this run's (it expired and another process took it); "
                f"{what} was not recorded",
                hint="re-run when the other process has finished",
            )
        if int(acknowledged) < self.replicas:
            raise ReplicasBehind(
                f"only {acknowledged} of {self.replicas} replica(s) acknowledged the writes up to {what} within "
                f"{self.timeout:g} s (WAIT {self.replicas} {int(self.timeout * 1000)}): it was not recorded",
                hint="check the replicas (INFO replication: link, lag), then re-run the same task - it continues from "
                "what was recorded; or raise replicas_wait_timeout, or lower replicas_wait_count",
                details={
                    "replicas_asked": self.replicas,
                    "replicas_acknowledged": int(acknowledged),
                    "replicas_wait_timeout": self.timeout,
                },
            )

    def confirmer(self, lock: Optional[IndexLock]) -> Optional[Callable[[object, str], None]]:
        """`confirm` bound to the run's lock, for the block runner (its workers call it with their own client);
        None when there is nothing to wait for."""
        if not self.replicas or lock is None:
            return None
        return lambda client, what: self.confirm(client, lock, what)
