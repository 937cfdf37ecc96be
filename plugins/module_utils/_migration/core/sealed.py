# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that carry a SHA-256 of their own content: plans and batch plans (YAML), backup headers and
batch states (JSON), and the timestamps they record.

The checksum is over the canonical JSON of the content without the checksum itself (keys sorted, no
spaces, ASCII), so anyone can recompute it: it catches a file damaged or edited by mistake, not a
forgery. What a sealed file claims is therefore checked again where it matters (apply derives a plan
again; a batch state is held against each index's backup).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
from typing import Any, ClassVar, Dict, NamedTuple

from .deps import BaseModel, Field, ValidationError
from .errors import PlanInvalid
from .yamlio import dump_yaml

# The version of this collection, recorded in every plan it writes.
COLLECTION_VERSION = "0.1.0"


def utc_now() -> str:
    # Microseconds: two migrations of one index in the same second must still sort by age.
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


def checksum_of(data: Dict[str, Any]) -> str:
    """`sha256:<hex>` of `data` without its `checksum` key, as canonical JSON."""
    content = {key: value for key, value in data.items() if key != "checksum"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class SealedFormat(NamedTuple):
    """A sealed document a user hands back (a plan, a batch plan): its format name and version, what
    it is called in messages, and the way out of each refusal."""

    name: str
    version: int
    kind: str  # "plan", "batch plan"
    create: str  # not this format at all
    newer: str  # another format_version
    malformed: str  # not the model's shape
    edited: str  # checksum mismatch

    def load(self, data: Any, model, where: str):
        """`data` (parsed YAML) as `model`, refused unless it is this format and version, well-formed and
        unchanged since it was sealed."""
        if not isinstance(data, dict) or data.get("format") != self.name:
            raise PlanInvalid(
                f"{where} is not an indexops.redis_search {self.kind} (format: {self.name} missing)", hint=self.create
            )
        if data.get("format_version") != self.version:
            raise PlanInvalid(
                f"{where} has format_version {data.get('format_version')!r}; this collection reads {self.version}",
                hint=self.newer,
            )
        try:
            document = model.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            raise PlanInvalid(
                f"{where} is malformed at {'.'.join(str(p) for p in first['loc'])}: {first['msg']}", hint=self.malformed
            ) from None
        if document.checksum != document.content_checksum():
            raise PlanInvalid(f"{where} was changed after it was written (checksum mismatch)", hint=self.edited)
        return document


class SealedDocument(BaseModel):
    """A YAML document sealed once, when it is made (a plan, a batch plan): the fields every such file opens
    with, in this order (a model gives `format` and `format_version` its own defaults), and the comment
    `HEADER` that opens its file."""

    HEADER: ClassVar[str] = ""

    format: str = ""
    format_version: int = 0
    checksum: str = ""
    created_at: str
    collection_version: str = COLLECTION_VERSION

    def to_dict(self) -> Dict[str, Any]:
        return self.model_dump(mode="json")

    def content_checksum(self) -> str:
        return checksum_of(self.to_dict())

    def seal(self):
        self.checksum = self.content_checksum()
        return self

    @property
    def short_id(self) -> str:
        """Short stable identity of the document (backup names, batch ids)."""
        return self.checksum.split(":", 1)[-1][:12]

    def to_yaml(self) -> str:
        return self.HEADER + dump_yaml(self.to_dict())


class RecordKind(NamedTuple):
    """What a sealed record is: its format name and version, what messages call it (`noun`: "backup header";
    `label`, before its path: "backup header", "batch state file"), the error that refuses it and the way
    out of an edited one."""

    name: str
    version: int
    noun: str
    label: str
    error: type
    edited: str


class SealedRecord(BaseModel):
    """A JSON file the library rewrites whole after each change (a backup header, a batch state): the
    fields every such file opens with (a model gives `format` and `format_version` its own defaults and
    declares its `KIND`), and how it is sealed, read and verified."""

    KIND: ClassVar[RecordKind]

    format: str = ""
    format_version: int = 0
    checksum: str = ""
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)
    # The run that wrote it last (resume and lock messages name it).
    host: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)

    def content_checksum(self) -> str:
        return checksum_of(self.model_dump(mode="json"))

    def intact(self) -> bool:
        return self.checksum == self.content_checksum()

    def sealed_json(self) -> bytes:
        """Stamped (updated_at), sealed (checksum) and serialized: what the caller writes with write_atomic."""
        self.updated_at = utc_now()
        self.checksum = self.content_checksum()
        return json.dumps(self.model_dump(mode="json"), indent=1).encode("utf-8")

    def verified(self, path: str):
        """This record, read from `path`, unless it is of another format or version, or was changed outside
        this collection (checksum mismatch)."""
        kind = self.KIND
        if self.format != kind.name or self.format_version != kind.version:
            raise kind.error(f"{path} is not an indexops {kind.noun} of version {kind.version}")
        if not self.intact():
            raise kind.error(
                f"{kind.label} {path} was changed outside this collection (checksum mismatch)", hint=kind.edited
            )
        return self

    @classmethod
    def read_from(cls, path: str):
        """The record in `path`. Raises OSError (unreadable) or ValueError (not UTF-8 JSON, or not this
        model: pydantic's ValidationError is a ValueError) for the caller to name in its own terms."""
        with open(path, "rb") as handle:
            return cls.model_validate(json.loads(handle.read().decode("utf-8")))
