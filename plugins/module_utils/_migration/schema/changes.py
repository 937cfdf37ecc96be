# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What differs between a source schema and a target schema, as a list of typed changes.

Pure: no server, no judgement. Classification (classify.py) decides what is allowed; the executor
uses `rewrites_documents` to know which documents it must touch. Renames come from the patch,
because a renamed field is indistinguishable from a removed one plus an added one.
"""

from __future__ import annotations

from typing import Any, List, Optional

from ..core.deps import BaseModel
from .model import UNOBSERVABLE_ATTRS, FieldSpec, IndexSchema
from .patch import FieldRename

INDEX_RENAME = "index_rename"
PREFIX_CHANGE = "prefix_change"
STORAGE_CHANGE = "storage_type_change"
SEPARATOR_CHANGE = "key_separator_change"
INDEX_OPTION = "index_option"
FIELD_ADD = "field_add"
FIELD_REMOVE = "field_remove"
FIELD_RENAME = "field_rename"
FIELD_TYPE = "field_type_change"
FIELD_PATH = "field_path_change"
VECTOR_DIMS = "vector_dims_change"
VECTOR_DATATYPE = "vector_datatype_change"
VECTOR_ALGORITHM = "vector_algorithm_change"
FIELD_ATTRIBUTE = "field_attribute"
# Index settings that say where documents are and how their keys are made, each a change of its own.
_KEYSPACE_SETTINGS = ((PREFIX_CHANGE, "prefix"), (STORAGE_CHANGE, "storage_type"), (SEPARATOR_CHANGE, "key_separator"))


class Change(BaseModel):
    kind: str
    field: Optional[str] = None
    attribute: Optional[str] = None
    before: Any = None
    after: Any = None
    rewrites_documents: bool = False
    blocked: bool = False
    reason: Optional[str] = None

    def describe(self) -> str:
        subject = f"field {self.field!r}" if self.field else "index"
        what = self.attribute or self.kind.replace("_", " ")
        if self.kind == FIELD_ADD:
            return f"add {self.after} field {self.field!r}"
        if self.kind == FIELD_REMOVE:
            return f"remove {self.before} field {self.field!r} (document data is kept)"
        if self.kind == FIELD_RENAME:
            return f"rename field {self.before!r} to {self.after!r}"
        return f"{subject}: {what} {self.before!r} -> {self.after!r}"


def _attr_changes(name: str, before: FieldSpec, after: FieldSpec, json_storage: bool) -> List[Change]:
    found: List[Change] = []
    old = before.attrs.model_dump()
    new = after.attrs.model_dump()
    for attr in sorted(set(old) | set(new)):
        if old.get(attr) == new.get(attr) or attr in UNOBSERVABLE_ATTRS:
            # No server reports INITIAL_CAP: it cannot be compared, so it is never a change by itself
            # (a target that sets it still carries it into FT.CREATE).
            continue
        if before.type == "vector" and attr == "dims":
            found.append(Change(kind=VECTOR_DIMS, field=name, attribute=attr, before=old[attr], after=new[attr]))
        elif before.type == "vector" and attr == "datatype":
            # Hash vectors are raw bytes in the document: a new datatype means new bytes. JSON
            # vectors are number arrays that FT.CREATE re-reads in the new type.
            found.append(
                Change(
                    kind=VECTOR_DATATYPE,
                    field=name,
                    attribute=attr,
                    before=old[attr],
                    after=new[attr],
                    rewrites_documents=not json_storage,
                )
            )
        elif before.type == "vector" and attr == "algorithm":
            found.append(Change(kind=VECTOR_ALGORITHM, field=name, attribute=attr, before=old[attr], after=new[attr]))
        else:
            found.append(
                Change(kind=FIELD_ATTRIBUTE, field=name, attribute=attr, before=old.get(attr), after=new.get(attr))
            )
    return found


def diff(source: IndexSchema, target: IndexSchema, renames: List[FieldRename] = ()) -> List[Change]:
    """Every change from `source` to `target` (both compared normalized)."""
    src, dst = source.normalized(), target.normalized()
    found: List[Change] = []
    if src.index.name != dst.index.name:
        found.append(Change(kind=INDEX_RENAME, before=src.index.name, after=dst.index.name))
    for kind, attribute in _KEYSPACE_SETTINGS:
        before, after = getattr(src.index, attribute), getattr(dst.index, attribute)
        if before != after:
            # Only a new prefix moves documents (their keys are renamed); the others are refused (classify.py).
            found.append(
                Change(
                    kind=kind, attribute=attribute, before=before, after=after, rewrites_documents=kind == PREFIX_CHANGE
                )
            )
    skip = {"name", *(attribute for _kind, attribute in _KEYSPACE_SETTINGS)}
    old_index, new_index = src.index.model_dump(), dst.index.model_dump()
    for option in sorted(set(old_index) - skip):
        if old_index[option] != new_index[option]:
            found.append(Change(kind=INDEX_OPTION, attribute=option, before=old_index[option], after=new_index[option]))

    renamed = {r.new_name: r for r in renames}
    old_names = {f.name for f in src.fields}
    consumed = {r.old_name for r in renames}
    json_storage = src.index.storage_type == "json"
    for rename in renames:
        found.append(
            Change(
                kind=FIELD_RENAME,
                field=rename.new_name,
                before=rename.old_name,
                after=rename.new_name,
                rewrites_documents=rename.moves_data,
            )
        )
    for field in src.fields:
        if field.name not in consumed and dst.field(field.name) is None:
            found.append(Change(kind=FIELD_REMOVE, field=field.name, before=field.type))
    for field in dst.fields:
        origin_name = renamed[field.name].old_name if field.name in renamed else field.name
        origin = src.field(origin_name) if origin_name in old_names else None
        if origin is None:
            found.append(Change(kind=FIELD_ADD, field=field.name, after=field.type))
            continue
        if origin.type != field.type:
            found.append(
                Change(kind=FIELD_TYPE, field=field.name, attribute="type", before=origin.type, after=field.type)
            )
            continue
        # A rename that moves data changes the path on purpose; any other path change is a redefinition.
        expected_path = origin.path
        if field.name in renamed and renamed[field.name].moves_data:
            expected_path = field.path
        if expected_path != field.path:
            found.append(
                Change(kind=FIELD_PATH, field=field.name, attribute="path", before=origin.path, after=field.path)
            )
        found += _attr_changes(field.name, origin, field, json_storage)
    return found


def quantized_fields(changes: List[Change]) -> List[Change]:
    """Vector datatype changes that rewrite document bytes."""
    return [c for c in changes if c.kind == VECTOR_DATATYPE and c.rewrites_documents]
