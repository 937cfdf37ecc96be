# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schema patches: the reference migrator's patch format, parsed strictly and merged exactly.

    version: 1
    changes:
      add_fields:    [ {name, type, path?, attrs?} ]
      remove_fields: [ name ]
      update_fields: [ {name, type?, path?, attrs?, options?} ]   # options is merged into attrs
      rename_fields: [ {old_name, new_name} ]
      index:         {name?, prefix?, key_separator?, storage_type?, <any index option>}

Field names in remove/update/rename refer to the live index; an update may also use a field's new
name after a rename. A rename moves the document data when the field's document location follows
its name (a hash field without `path`, or a JSON field at `$.<name>`); otherwise only the attribute
name changes. The merge does not judge whether a change is allowed - classification does.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..core import limits
from ..core.deps import BaseModel, ConfigDict, Field, ValidationError
from ..core.errors import SchemaInvalid
from .model import (
    ALGORITHM_ONLY_ATTRS,
    ATTRS_BY_TYPE,
    FIELD_TYPES,
    INDEX_KEYS,
    FieldSpec,
    IndexSchema,
    check_keys,
    explain,
    parse_field,
    parse_index_settings,
)

PATCH_SECTIONS = ("add_fields", "remove_fields", "update_fields", "rename_fields", "index")
UPDATE_KEYS = ("name", "type", "path", "attrs", "options")
RENAME_KEYS = ("old_name", "new_name")


class FieldRename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_name: str
    new_name: str
    # Filled by the merge: whether document data moves (and from/to which hash field or JSONPath).
    moves_data: bool = False
    old_location: Optional[str] = None
    new_location: Optional[str] = None


class FieldUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: Optional[str] = None
    path: Optional[str] = None
    attrs: Dict[str, Any] = Field(default_factory=dict)


class SchemaPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    add_fields: List[FieldSpec] = Field(default_factory=list)
    remove_fields: List[str] = Field(default_factory=list)
    update_fields: List[FieldUpdate] = Field(default_factory=list)
    rename_fields: List[FieldRename] = Field(default_factory=list)
    index: Dict[str, Any] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The patch in its file shape."""
        return {
            "version": self.version,
            "changes": {
                "add_fields": [f.model_dump(exclude_none=True) for f in self.add_fields],
                "remove_fields": list(self.remove_fields),
                "update_fields": [u.model_dump(exclude_none=True) for u in self.update_fields],
                "rename_fields": [{"old_name": r.old_name, "new_name": r.new_name} for r in self.rename_fields],
                "index": dict(self.index),
            },
        }

    @property
    def empty(self) -> bool:
        return not (self.add_fields or self.remove_fields or self.update_fields or self.rename_fields or self.index)


def _list(data: Any, where: str) -> list:
    if data is None:
        return []
    if not isinstance(data, list):
        raise SchemaInvalid(f"{where} must be a list, not {type(data).__name__}")
    return data


def parse_patch(data: Any, where: str = "patch") -> SchemaPatch:
    """Parse a patch strictly: unknown sections and keys are errors naming the valid choices, and
    every value it sets must be within what the server safely accepts (limits.py)."""
    check_keys(data, ("version", "changes"), where, "key")
    version = data.get("version", 1)
    if version != 1:
        raise SchemaInvalid(f"{where}: unsupported version {version!r}", hint="this collection reads patch version 1")
    changes = data.get("changes")
    if changes is None:
        raise SchemaInvalid(f"{where}: needs a 'changes' section", hint=f"sections: {', '.join(PATCH_SECTIONS)}")
    check_keys(changes, PATCH_SECTIONS, f"{where}: changes", "section")

    adds = []
    for i, item in enumerate(_list(changes.get("add_fields"), f"{where}: add_fields")):
        adds.append(parse_field(item, f"{where}: add_fields[{i}]", check_limits=True))

    removes = []
    for i, name in enumerate(_list(changes.get("remove_fields"), f"{where}: remove_fields")):
        if isinstance(name, dict) and set(name) == {"name"}:
            name = name["name"]
        if not isinstance(name, str):
            raise SchemaInvalid(f"{where}: remove_fields[{i}] must be a field name")
        limits.check_text(name, "field name", f"{where}: remove_fields[{i}]")
        removes.append(name)

    updates = []
    for i, item in enumerate(_list(changes.get("update_fields"), f"{where}: update_fields")):
        label = f"{where}: update_fields[{i}]"
        check_keys(item, UPDATE_KEYS, label)
        if not isinstance(item.get("name"), str):
            raise SchemaInvalid(f"{label}: needs the 'name' of the field to update")
        limits.check_text(item["name"], "field name", label)
        attrs = dict(item.get("attrs") or {})
        attrs.update(item.get("options") or {})
        limits.check_attrs(attrs, f"{label} ({item['name']})")
        if item.get("path") is not None:
            limits.check_text(item["path"], "path", f"{label} ({item['name']})")
        kind = item.get("type")
        if kind is not None and str(kind).lower() not in FIELD_TYPES:
            raise SchemaInvalid(
                f"{label} ({item['name']}): unknown field type {kind!r}", hint=f"valid types: {', '.join(FIELD_TYPES)}"
            )
        updates.append(
            FieldUpdate(name=item["name"], type=str(kind).lower() if kind else None, path=item.get("path"), attrs=attrs)
        )

    renames = []
    for i, item in enumerate(_list(changes.get("rename_fields"), f"{where}: rename_fields")):
        label = f"{where}: rename_fields[{i}]"
        check_keys(item, RENAME_KEYS, label)
        if not isinstance(item.get("old_name"), str) or not isinstance(item.get("new_name"), str):
            raise SchemaInvalid(f"{label}: needs 'old_name' and 'new_name'")
        limits.check_text(item["old_name"], "old_name", label)
        limits.check_text(item["new_name"], "new_name", label)
        renames.append(FieldRename(old_name=item["old_name"], new_name=item["new_name"]))

    index = changes.get("index") or {}
    check_keys(index, INDEX_KEYS, f"{where}: changes.index", "index option")
    limits.check_index_options(index, f"{where}: changes.index")
    return SchemaPatch(
        version=1,
        add_fields=adds,
        remove_fields=removes,
        update_fields=updates,
        rename_fields=renames,
        index=dict(index),
    )


def _unknown_field(name: str, schema: IndexSchema, where: str) -> SchemaInvalid:
    return SchemaInvalid(
        f"{where}: the index has no field {name!r}",
        hint=f"fields of {schema.name}: {', '.join(f.name for f in schema.fields)}",
    )


def _rename_field(schema: IndexSchema, field: FieldSpec, rename: FieldRename) -> FieldSpec:
    """The field under its new name; record whether (and where) the document data moves."""
    storage = schema.storage
    old_location = schema.identifier(field)
    data = field.model_dump()
    data["name"] = rename.new_name
    if storage == "json" and field.path in (None, f"$.{rename.old_name}"):
        data["path"] = f"$.{rename.new_name}"
    elif storage == "hash" and field.path in (None, rename.old_name):
        data["path"] = None
    renamed = FieldSpec.model_validate(data)
    new_location = schema.identifier(renamed)
    rename.moves_data = new_location != old_location
    rename.old_location, rename.new_location = old_location, new_location
    return renamed


def merge(source: IndexSchema, patch: SchemaPatch, where: str = "patch") -> tuple[IndexSchema, SchemaPatch]:
    """Apply `patch` to `source`; return the target schema and the patch with renames resolved.

    Raises SchemaInvalid for references to fields that do not exist, names that collide, attributes
    that do not belong to the field's type, and a target with a value outside the server's limits
    (including one the source already had: the migration would create it again)."""
    patch = patch.model_copy(deep=True)
    fields: dict[str, FieldSpec] = {f.name: f for f in source.fields}
    order = [f.name for f in source.fields]
    renamed_to: dict[str, str] = {}

    for name in patch.remove_fields:
        if name not in fields:
            raise _unknown_field(name, source, f"{where}: remove_fields")
        del fields[name]
        order.remove(name)
    if not order and not patch.add_fields:
        raise SchemaInvalid(
            f"{where}: remove_fields removes every field of {source.name}, and an index needs at least one",
            hint="keep at least one field (or add one), or drop the index with FT.DROPINDEX yourself",
        )

    for rename in patch.rename_fields:
        if rename.old_name not in fields:
            raise _unknown_field(rename.old_name, source, f"{where}: rename_fields")
        if rename.old_name == rename.new_name:
            raise SchemaInvalid(f"{where}: rename_fields: {rename.old_name!r} is renamed to itself")
        if rename.new_name in fields or rename.new_name in renamed_to.values():
            raise SchemaInvalid(
                f"{where}: rename_fields: cannot rename {rename.old_name!r} to {rename.new_name!r}, "
                "a field of that name exists"
            )
        field = fields.pop(rename.old_name)
        fields[rename.new_name] = _rename_field(source, field, rename)
        order[order.index(rename.old_name)] = rename.new_name
        renamed_to[rename.old_name] = rename.new_name

    for update in patch.update_fields:
        name = renamed_to.get(update.name, update.name)
        if name not in fields:
            if update.name in patch.remove_fields:
                raise SchemaInvalid(f"{where}: update_fields: {update.name!r} is also in remove_fields")
            raise _unknown_field(update.name, source, f"{where}: update_fields")
        current = fields[name]
        kind = update.type or current.type
        check_keys(
            update.attrs,
            tuple(ATTRS_BY_TYPE[kind].model_fields),
            f"{where}: update_fields ({update.name}).attrs",
            f"{kind} field attribute",
        )
        attrs = current.attrs.model_dump() if kind == current.type else {}
        if kind == "vector" and "algorithm" in update.attrs and update.attrs["algorithm"] != attrs.get("algorithm"):
            # Parameters of the old algorithm do not apply to the new one (FLAT's block_size on HNSW, ...).
            old_only = set(ALGORITHM_ONLY_ATTRS.get(str(attrs.get("algorithm")), ()))
            old_only -= set(ALGORITHM_ONLY_ATTRS.get(str(update.attrs["algorithm"]).lower(), ()))
            for attr in old_only:
                attrs.pop(attr, None)
        attrs.update(update.attrs)
        data = {
            "name": name,
            "type": kind,
            "path": update.path if update.path is not None else current.path,
            "attrs": attrs,
        }
        fields[name] = parse_field(data, f"{where}: update_fields", source.storage)  # it names the field itself

    for added in patch.add_fields:
        if added.name in fields:
            raise SchemaInvalid(
                f"{where}: add_fields: field {added.name!r} already exists",
                hint="use update_fields to change an existing field",
            )
        fields[added.name] = added
        order.append(added.name)

    index = source.index.model_dump()
    index.update(patch.index)
    settings = parse_index_settings(index, f"{where}: changes.index")
    try:
        target = IndexSchema(index=settings, fields=[fields[name] for name in order])
    except ValidationError as err:
        raise explain(err, f"{where}: the merged schema") from None
    limits.check_schema(target, f"{where}: the target schema")
    return target, patch
