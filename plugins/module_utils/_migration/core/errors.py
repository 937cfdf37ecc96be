# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The library's exceptions.

Each carries a one-line message that names the problem, a `hint` that names the fix, and
structured `details` for callers that report more. Messages never contain secrets: connection
errors name host:port only. The Ansible adapter turns these into `fail_json` in one place.
"""

from __future__ import annotations

from typing import Any


class IndexOpsError(Exception):
    """Base class of every error the library raises on purpose."""

    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = dict(details or {})

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class DependencyMissing(IndexOpsError):
    """A required Python library is not installed."""

    kind = "dependency_missing"


class ConnectionFailed(IndexOpsError):
    """The server could not be reached, or refused our credentials."""

    kind = "connection_failed"


class ServerUnsupported(IndexOpsError):
    """The server lacks something we need (the search module, a datatype, a command)."""

    kind = "server_unsupported"


class IndexNotFound(IndexOpsError):
    """No index or alias of that name exists."""

    kind = "index_not_found"


class SchemaInvalid(IndexOpsError):
    """A schema, patch or target schema given by the user is invalid (before anything runs)."""

    kind = "invalid_input"


class PlanInvalid(IndexOpsError):
    """A plan file is unreadable, edited after it was written, or no longer matches the server."""

    kind = "invalid_plan"


class PlanBlocked(IndexOpsError):
    """The plan holds changes this collection refuses to apply."""

    kind = "plan_blocked"


class PreflightFailed(IndexOpsError):
    """A check before the first mutation failed; nothing was changed."""

    kind = "preflight_failed"


class LockHeld(PreflightFailed):
    """Another migration of the same index holds the lock."""

    kind = "lock_held"


class BackupInvalid(IndexOpsError):
    """A backup is missing, truncated, tampered with or belongs to something else."""

    kind = "backup_invalid"


class MigrationFailed(IndexOpsError):
    """A migration stopped after it began mutating; details say the phase and what exists."""

    kind = "migration_failed"


class StopRequested(MigrationFailed):
    """The run was asked to stop (its job was cancelled or its controller is gone) and stopped at a point the
    same call resumes from."""

    kind = "stopped"


class ValidationFailed(IndexOpsError):
    """The result of a migration or rollback is not what the plan promised."""

    kind = "validation_failed"


class RollbackFailed(IndexOpsError):
    """A rollback could not complete."""

    kind = "rollback_failed"
