# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every phase of a migration works with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ...backup.store import BackupStore
from ...core import progress
from ...core.deps import BaseModel, Field
from ...core.limits import BatchSize, WaitSeconds, Workers
from ...planning.plan import MigrationPlan
from ...redis.durability import Durability, ReplicationOptions
from ...redis.lock import IndexLock
from ...redis.scripts import Scripts
from ...schema.model import IndexSchema

PROGRESS_SECONDS = 2.0


class MigrateOptions(BaseModel):
    """How to run a migration. The bounds (limits.py) are checked when the options are built, by the
    library and, through this model, by the modules before they connect."""

    batch_size: BatchSize = 500
    workers: Workers = 1
    wait_timeout: WaitSeconds = 600.0
    accept_data_loss: bool = False
    # "auto" uses RENAME on a standalone server and DUMP/RESTORE/DEL on a cluster (keys of other slots).
    key_rename_method: str = "auto"
    replication: ReplicationOptions = Field(default_factory=ReplicationOptions)
    # An online migration planned with cutover side_by_side stops once its new index serves beside the source;
    # a run with finish goes on to the swap (and contract).
    finish: bool = False


@dataclass
class Context:
    client: Any
    connect: Callable[[], Any]
    plan: MigrationPlan
    source: IndexSchema
    target: IndexSchema
    store: BackupStore
    options: MigrateOptions
    lock: Optional[IndexLock] = None
    scripts: Optional[Scripts] = None
    durability: Optional[Durability] = None
    _saved_at: float = field(default=0.0)

    def confirm_replicated(self, what: str) -> None:
        """Before progress is recorded: the replicas hold every write so far (redis/durability.py)."""
        if self.durability is not None:
            self.durability.confirm(self.client, self.lock, what)

    def progress(self, phase: str, force: bool = False, **counters: Any) -> None:
        """Record counters of a running phase; the header is rewritten at most every 2 s, so that
        redis_index_info can follow a migration without slowing it down."""
        self.store.phase(phase).counters.update(counters)
        if force or time.monotonic() - self._saved_at >= PROGRESS_SECONDS:
            self._saved_at = time.monotonic()
            self.store.save()
        if self.lock is not None:
            self.lock.check()
        # For whoever runs it (the job output), and the point where a cancelled job's run stops.
        total = self.store.phase("backup").counters.get("source_num_docs")
        progress.report(self.plan.source.index, phase, documents_total=total, **self.store.phase(phase).counters)
