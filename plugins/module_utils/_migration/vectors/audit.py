# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only audit of stored vectors: find the ones whose size does not match the schema, and the
values a quantization's target type cannot hold.

A hash vector must be exactly dims x width(datatype) bytes; a JSON vector an array of `dims`
numbers. The migration's backup phase checks every document it rewrites before its first mutation
and refuses to start on either; the planner audits a sample (or everything), and what it finds in a
field the migration rewrites blocks the plan (`backup_refusals`): the migration would refuse it.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..core.deps import BaseModel, Field
from ..redis.keyspace import key_to_text
from ..schema.model import DATATYPE_WIDTH, IndexSchema
from ..schema.rewrites import Quantize
from .codec import check_overflow
from .datatypes import INT_DATATYPES

MAX_LISTED = 20


class MalformedVector(BaseModel):
    key: Any
    field: str
    found: Optional[int]  # bytes (hash) or elements (JSON); None when the value is not a vector
    expected: int
    unit: str


class AuditResult(BaseModel):
    mode: str = "sample"  # "sample" | "all" | "skipped"
    documents: int = 0
    missing_keys: int = 0
    malformed_count: int = 0
    malformed: List[MalformedVector] = Field(default_factory=list)
    key_bytes: int = 0  # sum of the audited keys' lengths (the estimate extrapolates from it)
    # location -> [total bytes, documents that have it] for values the backup will store whole
    value_bytes: Dict[str, List[int]] = Field(default_factory=dict)
    # Per vector field: vectors present with the wrong size, and values a float quantization target cannot hold.
    # What the planner blocks on; not part of the plan file (its blocked reasons say it).
    wrong_size: Dict[str, int] = Field(default_factory=dict, exclude=True)
    overflow: Dict[str, int] = Field(default_factory=dict, exclude=True)

    def add(self, other: "AuditResult") -> None:
        self.documents += other.documents
        self.missing_keys += other.missing_keys
        self.malformed_count += other.malformed_count
        self.key_bytes += other.key_bytes
        for mine, theirs in ((self.wrong_size, other.wrong_size), (self.overflow, other.overflow)):
            for name, count in theirs.items():
                mine[name] = mine.get(name, 0) + count
        for location, (total, count) in other.value_bytes.items():
            mine = self.value_bytes.setdefault(location, [0, 0])
            mine[0] += total
            mine[1] += count
        room = MAX_LISTED - len(self.malformed)
        self.malformed.extend(other.malformed[: max(room, 0)])


def _json_length(raw: Any) -> Optional[int]:
    """Elements of the first match of a JSONPath reply (JSON.GET returns a JSON array of matches)."""
    if raw is None:
        return None
    try:
        matches = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not matches or not isinstance(matches[0], list):
        return None
    value = matches[0]
    return len(value) if all(isinstance(v, (int, float)) for v in value) else None


def _stored_size(raw: Any, json_storage: bool) -> Optional[int]:
    """Bytes the backup stores for a value: HSTRLEN for a hash field (0 = absent), or the length of
    the JSON.GET reply for a JSONPath (absent when it matches nothing)."""
    if isinstance(raw, Exception) or raw is None:
        return None
    if json_storage:
        return None if raw in (b"[]", "[]") else len(raw)
    return int(raw) or None


def audit_keys(
    client, schema: IndexSchema, keys: Iterable[bytes], measure: Sequence[str] = (), quantize: Sequence[Quantize] = ()
) -> AuditResult:
    """Check every vector field of `schema` on `keys` (pipelined, one round trip), and sum the
    stored sizes of the values at `measure` (hash fields or JSONPaths). Vectors of the right size that
    `quantize` converts to a float type are checked for values that type cannot hold."""
    keys = list(keys)
    vectors = schema.vector_fields()
    # Integer targets clip to a range fitted over every value instead (the backup phase fits it).
    converted = {q.source_location: q for q in quantize if q.target not in INT_DATATYPES}
    good: Dict[str, List[bytes]] = {}
    result = AuditResult(documents=len(keys), key_bytes=sum(len(k) for k in keys))
    result.value_bytes = {location: [0, 0] for location in measure}
    if not keys or not (vectors or measure):
        return result
    pipe = client.pipeline(transaction=False)
    json_storage = schema.storage == "json"
    for key in keys:
        pipe.exists(key)
        for field in vectors:
            if json_storage:
                pipe.execute_command("JSON.GET", key, schema.identifier(field))
            else:
                pipe.hget(key, schema.identifier(field))
        for location in measure:
            if json_storage:
                pipe.execute_command("JSON.GET", key, location)
            else:
                pipe.hstrlen(key, location)
    replies = pipe.execute(raise_on_error=False)
    step = 1 + len(vectors) + len(measure)
    for i, key in enumerate(keys):
        row = replies[i * step : (i + 1) * step]
        if not row[0]:
            result.missing_keys += 1
            continue
        for location, raw in zip(measure, row[1 + len(vectors) :]):
            size = _stored_size(raw, json_storage)
            if size is not None:
                result.value_bytes[location][0] += size
                result.value_bytes[location][1] += 1
        for field, raw in zip(vectors, row[1 : 1 + len(vectors)]):
            attrs = field.attrs
            if isinstance(raw, Exception):
                raw = None
            if json_storage:
                found, expected, unit = _json_length(raw), attrs.dims, "elements"
            else:
                found, expected, unit = (
                    (None if raw is None else len(raw)),
                    attrs.dims * DATATYPE_WIDTH[attrs.datatype],
                    "bytes",
                )
            if raw is None and attrs.index_missing:
                continue  # INDEXMISSING: documents may lack the field
            if found != expected:
                result.malformed_count += 1
                if raw is not None:  # a document without the vector is indexed without it; no refusal
                    result.wrong_size[field.name] = result.wrong_size.get(field.name, 0) + 1
                if len(result.malformed) < MAX_LISTED:
                    result.malformed.append(
                        MalformedVector(
                            key=key_to_text(key), field=field.name, found=found, expected=expected, unit=unit
                        )
                    )
            elif not json_storage and schema.identifier(field) in converted:
                good.setdefault(field.name, []).append(raw)
    for field in vectors:
        quant = converted.get(schema.identifier(field))
        if quant is not None and good.get(field.name):
            lost = check_overflow(good[field.name], quant.source, quant.target, quant.dims)["overflow"]
            if lost:
                result.overflow[field.name] = lost
    return result


def backup_refusals(audit: AuditResult, schema: IndexSchema, quantize: Sequence[Quantize]) -> List[str]:
    """What the migration's backup phase would refuse, as blocked reasons: vectors of the wrong size and
    values the target cannot hold, in the fields it rewrites. Certain whatever the audit covered: the
    documents found are there."""
    reasons = []
    for quant in quantize:
        field = next((f for f in schema.vector_fields() if schema.identifier(f) == quant.source_location), None)
        if field is None:
            continue
        wrong = audit.wrong_size.get(field.name, 0)
        if wrong:
            first = next((m for m in audit.malformed if m.field == field.name and m.found is not None), None)
            shown = f" (first: {first.key}: {first.found} {first.unit}, expected {first.expected})" if first else ""
            reasons.append(
                f"{wrong} audited document(s) hold {field.name!r} vectors of the wrong size{shown}; "
                f"the migration refuses to convert them to {quant.target}: fix or delete those documents, "
                "then plan again"
            )
        if audit.overflow.get(field.name):
            reasons.append(
                f"{audit.overflow[field.name]} value(s) of {field.name!r} in the audited documents are too "
                f"large for {quant.target} and would become infinite; the migration refuses them: choose a "
                "wider datatype (bfloat16 keeps float32's range)"
            )
    return reasons
