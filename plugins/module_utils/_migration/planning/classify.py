# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which changes this collection applies and which it refuses, with the reason and the way out.

Pure: the live state it needs (server capabilities, the other indexes, whether the target name is
taken) is read beforehand by the planner into a LiveContext.
"""

from __future__ import annotations

from typing import Dict, List

from ..core.deps import BaseModel, Field
from ..redis.capabilities import ServerCapabilities
from ..redis.catalog import OtherIndex
from ..redis.keyspace import prefixes_overlap
from ..schema.changes import (
    FIELD_ADD,
    FIELD_PATH,
    FIELD_TYPE,
    INDEX_RENAME,
    PREFIX_CHANGE,
    SEPARATOR_CHANGE,
    STORAGE_CHANGE,
    VECTOR_ALGORITHM,
    VECTOR_DATATYPE,
    VECTOR_DIMS,
    Change,
)
from ..schema.model import IndexSchema
from ..schema.rewrites import DocumentRewrites
from ..vectors.codec import describe_conversion


class LiveContext(BaseModel):
    capabilities: ServerCapabilities
    others: List[OtherIndex] = Field(default_factory=list)
    target_name_taken: bool = False


class Classification(BaseModel):
    supported: bool
    nothing_to_do: bool
    mode: str = "drop_recreate"
    rewrites_documents: bool = False
    blocked_reasons: List[str] = Field(default_factory=list)
    shared_key_indexes: List[str] = Field(default_factory=list)


def _block(change: Change, reason: str) -> None:
    change.blocked = True
    change.reason = reason


# Changes refused on any server: why, and the way out.
_NEVER = {
    STORAGE_CHANGE: "changing the storage type (hash <-> json) changes every document's format; export, transform "
    "and reload the data into a new index instead",
    SEPARATOR_CHANGE: "the key separator is how applications build keys; changing it needs the application to "
    "rewrite its keys, which a schema migration cannot do",
    VECTOR_DIMS: "new dimensions need new embeddings; re-embed with the new model into a new field or index",
    FIELD_TYPE: "the documents' values cannot follow a type change; remove the field and add a new one under "
    "another name",
    FIELD_PATH: "changing where a field is read from means moving document data; use rename_fields to move a field",
}


def _rule(change: Change, source: IndexSchema, live: LiveContext) -> None:
    caps = live.capabilities
    if change.kind in _NEVER:
        _block(change, _NEVER[change.kind])
    elif change.kind == FIELD_ADD and change.after == "vector":
        _block(change, "the documents hold no vectors for it; write the vectors first, then add the field")
    elif change.kind == PREFIX_CHANGE:
        if len(change.before) != 1 or len(change.after) != 1:
            _block(
                change,
                "changing the prefix of an index with several prefixes (or to several prefixes) is "
                "ambiguous: which keys move where cannot be derived",
            )
        elif "" in (change.before[0], change.after[0]):
            _block(change, "an empty prefix covers every key of the database; renaming keys to or from it is refused")
    elif change.kind == INDEX_RENAME and live.target_name_taken:
        _block(change, f"an index or alias named {change.after!r} already exists; choose another name or drop it first")
    elif change.kind == VECTOR_DATATYPE:
        conversion = describe_conversion(change.before, change.after)
        if not caps.accepts_datatype(change.after):
            _block(
                change,
                f"the server does not accept {change.after.upper()} vectors (search {caps.search_version} "
                f"accepts {', '.join(caps.vector_datatypes)}); upgrade the server first",
            )
        elif not conversion.get("supported", True):
            _block(
                change, f"{change.before} -> {change.after} is not a supported conversion: {conversion['precision']}"
            )
        elif source.storage == "json" and change.after in ("int8", "uint8"):
            _block(
                change,
                "JSON documents store vectors as arrays of floats; INT8/UINT8 need integer arrays, "
                "which this collection does not rewrite",
            )
    elif change.kind == VECTOR_ALGORITHM and not caps.accepts_algorithm(change.after):
        _block(
            change,
            f"the server does not accept the {change.after.upper()} algorithm "
            f"(it accepts {', '.join(caps.vector_algorithms)})",
        )


def _shares_keys(prefixes: List[str], other: OtherIndex) -> bool:
    return any(prefixes_overlap(mine, theirs) for mine in prefixes for theirs in other.prefixes)


def shared_key_conflicts(source: IndexSchema, rewrites: DocumentRewrites, others: List[OtherIndex]) -> Dict[str, str]:
    """{other index: why} for indexes whose documents this migration would change under them: keys
    renamed away from (or into) their prefixes, fields moved, vector bytes rewritten in the same keys."""
    found = {}
    rewritten = {q.source_location for q in rewrites.quantize}
    moved = {m.old_location for m in rewrites.moves} | {m.new_location for m in rewrites.moves}
    for other in others:
        if other.storage != source.storage:
            continue  # a hash index never reads JSON keys, and the other way round
        where = f"index {other.name!r} (prefixes {other.prefixes})"
        if rewrites.prefix and _shares_keys(source.index.prefix, other):
            found[other.name] = (
                f"{where} also covers keys under {rewrites.prefix.old!r}; renaming them to "
                f"{rewrites.prefix.new!r} would take its documents away. Give it prefixes of its "
                "own first, or change both indexes by hand"
            )
        elif rewrites.prefix and _shares_keys([rewrites.prefix.new], other):
            found[other.name] = (
                f"{where} covers the new prefix {rewrites.prefix.new!r}; the renamed documents "
                "would be indexed by it too. Choose a prefix no other index covers"
            )
        elif _shares_keys(source.index.prefix, other):
            hit = sorted(loc for loc in rewritten if other.locations.get(loc, "").startswith("vector"))
            shifted = sorted(loc for loc in moved if loc in other.locations)
            if hit:
                found[other.name] = (
                    f"{where} also indexes {', '.join(hit)} of the same keys; rewriting those vector "
                    "bytes would break it. Move the shared documents to keys of their own, or change "
                    "both indexes' datatype together by hand"
                )
            elif shifted:
                found[other.name] = (
                    f"{where} also reads {', '.join(shifted)} of the same keys; moving that field "
                    "would change what it indexes. Rename the field in both indexes together, or "
                    "rename only the attribute (keep the document field with `path`)"
                )
    return found


def classify(
    source: IndexSchema,
    target: IndexSchema,
    changes: List[Change],
    rewrites: DocumentRewrites,
    live: LiveContext,
    unrecognized: List[str] = (),
) -> Classification:
    for change in changes:
        _rule(change, source, live)
    reasons = [f"{c.describe()}: {c.reason}" for c in changes if c.blocked]
    for vector in target.vector_fields():
        unchanged = all(c.field != vector.name or c.kind not in (VECTOR_DATATYPE, VECTOR_ALGORITHM) for c in changes)
        if unchanged and not live.capabilities.accepts_datatype(vector.attrs.datatype):
            reasons.append(f"field {vector.name!r}: the server does not accept {vector.attrs.datatype.upper()} vectors")
    crashing = ("max_text_fields", "no_fields")  # together they crashed search 2.10.5 when indexing
    if all(getattr(target.index, o) for o in crashing) and not all(getattr(source.index, o) for o in crashing):
        reasons.append(
            "MAXTEXTFIELDS together with NOFIELDS crashed redis-server (search 2.10.5) on the first "
            "document indexed in our tests; keep one of them"
        )
    if unrecognized:
        reasons.append(
            "the server reports settings this collection does not understand ("
            + "; ".join(unrecognized)
            + "); recreating the index would drop them"
        )
    conflicts = shared_key_conflicts(source, rewrites, live.others)
    reasons += list(conflicts.values())
    return Classification(
        supported=not reasons,
        nothing_to_do=not changes,
        rewrites_documents=rewrites.any,
        blocked_reasons=reasons,
        shared_key_indexes=sorted(conflicts),
    )
