# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration plan: what was seen, what was asked, what will happen, sealed by a checksum.

A plan file is YAML with a format name and version and a SHA-256 over its canonical content; a
plan edited after it was written is refused. Everything a migration needs is in it, so applying
a reviewed plan does exactly what was reviewed.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from ..core.deps import BaseModel, ConfigDict, Field
from ..core.errors import PlanInvalid
from ..core.files import write_atomic
from ..core.sealed import SealedDocument, SealedFormat
from ..core.yamlio import read_written_yaml
from ..redis.capabilities import ServerCapabilities
from ..schema.changes import Change
from ..schema.model import IndexSchema, parse_schema
from ..schema.patch import FieldRename
from ..schema.rewrites import DocumentRewrites
from ..vectors.audit import AuditResult
from .classify import Classification
from .estimate import Estimate
from .modes import OnlineSwap
from .online_cost import Durations

PLAN_FORMAT = "indexops.redis_search/plan"
PLAN_FORMAT_VERSION = 1
PLAN_FILE = SealedFormat(
    PLAN_FORMAT,
    PLAN_FORMAT_VERSION,
    "plan",
    create="create one with redis_index_plan",
    newer="re-create the plan with this collection's redis_index_plan",
    malformed="re-create the plan with redis_index_plan",
    edited="plans cannot be edited; re-run redis_index_plan to make a new one",
)
# Parts of a plan that move without anything the plan is about changing (GC, memory, disk).
VOLATILE = (
    ("created_at",),
    ("checksum",),
    ("server", "used_memory_bytes"),
    ("source", "stats", "memory_mb"),
    ("source", "stats", "vector_index_bytes"),
    ("source", "stats", "index_bytes"),
    ("source", "stats", "total_indexing_time_ms"),
    ("estimate", "memory_before_bytes"),
    ("estimate", "memory_after_bytes"),
    ("estimate", "memory_delta_bytes"),
    ("estimate", "backup_dir_free_bytes"),
    ("estimate", "backup_fits"),
    ("online", "memory_used_bytes"),
    ("online", "memory_needed_bytes"),
    ("online", "memory_breakdown"),
    ("durations",),
)


class SourceState(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    index: str
    requested_as: str
    endpoint: str
    index_schema: Dict[str, Any] = Field(alias="schema")
    unobserved: List[str] = Field(default_factory=list)
    unrecognized: List[str] = Field(default_factory=list)
    stats: Dict[str, Any] = Field(default_factory=dict)
    key_sample: List[Any] = Field(default_factory=list)
    aliases: List[str] = Field(default_factory=list)
    aliases_complete: bool = False


class Renames(BaseModel):
    index: Optional[Dict[str, str]] = None
    prefix: Optional[Dict[str, str]] = None
    fields: List[FieldRename] = Field(default_factory=list)


class MigrationPlan(SealedDocument):
    model_config = ConfigDict(populate_by_name=True)
    HEADER: ClassVar[str] = (
        "# indexops.redis_search migration plan. Review it, then apply it with redis_index_migrate.\n"
        "# Do not edit: the checksum covers the whole content and an edited plan is refused.\n"
    )

    format: str = PLAN_FORMAT
    format_version: int = PLAN_FORMAT_VERSION
    mode: str = "drop_recreate"  # or online (modes.py)
    requested_mode: str = "auto"
    mode_reason: str = ""
    online: Optional[OnlineSwap] = None
    # How long each path takes, estimated (online_cost.py), so that the user can choose.
    durations: Optional[Durations] = None
    source: SourceState
    requested_changes: Dict[str, Any]
    target_schema: Dict[str, Any]
    changes: List[Change] = Field(default_factory=list)
    renames: Renames = Field(default_factory=Renames)
    rewrites: DocumentRewrites = Field(default_factory=DocumentRewrites)
    classification: Classification
    warnings: List[str] = Field(default_factory=list)
    audit: AuditResult = Field(default_factory=AuditResult)
    estimate: Estimate
    server: ServerCapabilities
    # A batch's per-index plan: the checksum of the batch plan's own fields (batch_plan.BatchPlan.fields_checksum),
    # so that editing them means re-sealing every plan of the batch, not only the batch's checksum.
    batch_fields: Optional[str] = None

    # -- content ------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        data = self.model_dump(by_alias=True, mode="json")
        if data.get("batch_fields") is None:
            data.pop("batch_fields", None)  # a plan of its own: the format it always had
        return data

    @property
    def plan_id(self) -> str:
        """Short stable identity of this plan (for backup names)."""
        return self.short_id

    def source_schema(self) -> IndexSchema:
        return parse_schema(self.source.index_schema, "plan source schema")

    def target(self) -> IndexSchema:
        return parse_schema(self.target_schema, "plan target schema")

    @property
    def target_index(self) -> str:
        return self.target_schema["index"]["name"]

    @property
    def final_index(self) -> str:
        """The new index's own name: the target's, or for an online migration the one it is built under."""
        return self.online.index if self.mode == "online" and self.online else self.target_index

    @property
    def online_layout(self):
        """How an online migration lays out the documents it rewrites (schema/online_layout.py); None when it
        rewrites none, or is not online."""
        return self.online.layout if self.mode == "online" and self.online else None

    def backup_entries(self) -> List[Tuple[str, Optional[int], bool]]:
        """(location, size, stored-as-absent) per backup record entry (rewrites.backup_entries), with an online
        migration's side fields as absent markers: the rollback's state of a document covers them, and a
        side field left behind is removed."""
        entries = self.rewrites.backup_entries()
        layout = self.online_layout
        return entries + [(side, None, True) for side in layout.side_locations] if layout else entries

    def final_schema(self) -> IndexSchema:
        """The target schema under the name the new index really has."""
        schema = self.target()
        schema.index.name = self.final_index
        return schema

    def same_content(self, other: "MigrationPlan") -> bool:
        """Equal but for volatile figures (memory, disk free, timestamps): nothing to rewrite."""
        return _stable(self.to_dict()) == _stable(other.to_dict())


def _stable(data: Dict[str, Any]) -> Dict[str, Any]:
    data = json.loads(json.dumps(data))
    for path in VOLATILE:
        node = data
        for part in path[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return data


def plan_from_dict(data: Any, where: str = "plan") -> MigrationPlan:
    """Load and verify a plan given as a dict (parsed YAML)."""
    return PLAN_FILE.load(data, MigrationPlan, where)


def read_plan(path: str) -> MigrationPlan:
    data = read_written_yaml(path, "plan file", hint="give the file redis_index_plan wrote (plan_out)")
    return plan_from_dict(data, f"plan file {path}")


def write_plan(plan: MigrationPlan, path: str) -> None:
    """Write atomically: a reader never sees half a plan."""

    def refused(err: OSError) -> PlanInvalid:
        return PlanInvalid(
            f"cannot write plan file {path}: {err.strerror}", hint="plan_out must be in an existing, writable directory"
        )

    write_atomic(os.path.abspath(path), plan.to_yaml().encode("utf-8"), prefix=".plan-", refused=refused)
