# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The index schema: every index option and field attribute FT.CREATE accepts.

The dict/YAML shape is the reference migrator's (`index:` and `fields:` with per-field `attrs:`),
with the index options it lacks added to `index:`, so existing schema files load unchanged.
Input is strict: an unknown key or value is an error naming the valid choices.

`normalized()` resolves every default and every implication the server applies (NUMERIC SORTABLE
is always UNF, NOOFFSETS implies NOHL, ...), so that two schemas compare equal exactly when the
server would hold the same index.
"""

from __future__ import annotations

import difflib
from typing import Any, List, Optional, Union

from ..core import limits
from ..core.deps import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ..core.errors import SchemaInvalid

STORAGE_TYPES = ("hash", "json")
FIELD_TYPES = ("text", "tag", "numeric", "geo", "geoshape", "vector")
VECTOR_DATATYPES = ("float32", "float64", "float16", "bfloat16", "int8", "uint8")
DATATYPE_WIDTH = limits.DATATYPE_WIDTH
VECTOR_ALGORITHMS = ("flat", "hnsw", "svs-vamana")
DISTANCE_METRICS = ("cosine", "l2", "ip")
COORD_SYSTEMS = ("spherical", "flat")
DEFAULT_LANGUAGE = "english"
DEFAULT_SCORE = 1.0
FLAT_DEFAULTS = {"block_size": 1024}
HNSW_DEFAULTS = {"m": 16, "ef_construction": 200, "ef_runtime": 10, "epsilon": 0.01}
# Attributes no server command reports: carried when the user sets them, never compared.
UNOBSERVABLE_ATTRS = ("initial_cap",)
ALGORITHM_ONLY_ATTRS = {
    "flat": ("block_size",),
    "hnsw": ("m", "ef_construction", "ef_runtime", "epsilon"),
    "svs-vamana": (
        "graph_max_degree",
        "construction_window_size",
        "search_window_size",
        "epsilon",
        "compression",
        "reduce",
        "training_threshold",
    ),
}


def _choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    normal = str(value).strip().lower() if value is not None else ""
    if normal not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return normal


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _CommonAttrs(_Strict):
    index_missing: bool = False
    sortable: bool = False
    no_index: bool = False

    @model_validator(mode="after")
    def _missing_or_noindex(self):
        if self.index_missing and self.no_index:
            raise ValueError("index_missing and no_index cannot both be true (the server refuses it)")
        return self


class TextAttrs(_CommonAttrs):
    weight: float = 1.0
    no_stem: bool = False
    phonetic_matcher: Optional[str] = None
    withsuffixtrie: bool = False
    index_empty: bool = False
    unf: bool = False

    @field_validator("phonetic_matcher", mode="before")
    @classmethod
    def _matcher_lower(cls, value):
        # The server accepts only lower case ("dm:en"); "DM:EN" means the same to a reader.
        return value.lower() if isinstance(value, str) else value


class TagAttrs(_CommonAttrs):
    separator: Optional[str] = None
    case_sensitive: bool = False
    withsuffixtrie: bool = False
    index_empty: bool = False
    unf: bool = False

    @field_validator("separator")
    @classmethod
    def _one_char(cls, value):
        if value is not None and len(value) > 1:
            raise ValueError(f"separator must be a single character, not {value!r}")
        return value


class NumericAttrs(_CommonAttrs):
    unf: bool = False


class GeoAttrs(_CommonAttrs):
    unf: bool = False


class GeoShapeAttrs(_CommonAttrs):
    coord_system: str = "spherical"
    unf: bool = False  # accepted with SORTABLE and reported by FT.INFO like on GEO

    @field_validator("coord_system", mode="before")
    @classmethod
    def _coord(cls, value):
        return _choice(value, COORD_SYSTEMS, "coord_system")


class VectorAttrs(_Strict):
    dims: int = Field(gt=0)
    algorithm: str
    datatype: str = "float32"
    distance_metric: str = "cosine"
    initial_cap: Optional[int] = Field(default=None, ge=0)
    index_missing: bool = False
    block_size: Optional[int] = Field(default=None, gt=0)
    m: Optional[int] = Field(default=None, gt=0)
    ef_construction: Optional[int] = Field(default=None, gt=0)
    ef_runtime: Optional[int] = Field(default=None, gt=0)
    epsilon: Optional[float] = Field(default=None, ge=0)  # the server accepts 0 (limits.py)
    graph_max_degree: Optional[int] = None
    construction_window_size: Optional[int] = None
    search_window_size: Optional[int] = None
    compression: Optional[str] = None
    reduce: Optional[int] = None
    training_threshold: Optional[int] = None

    @field_validator("algorithm", mode="before")
    @classmethod
    def _algorithm(cls, value):
        return _choice(value, VECTOR_ALGORITHMS, "algorithm")

    @field_validator("datatype", mode="before")
    @classmethod
    def _datatype(cls, value):
        return _choice(value, VECTOR_DATATYPES, "datatype")

    @field_validator("distance_metric", mode="before")
    @classmethod
    def _metric(cls, value):
        return _choice(value, DISTANCE_METRICS, "distance_metric")

    @model_validator(mode="after")
    def _algorithm_params(self):
        for algorithm, names in ALGORITHM_ONLY_ATTRS.items():
            if algorithm == self.algorithm:
                continue
            for name in names:
                if name in ALGORITHM_ONLY_ATTRS[self.algorithm]:
                    continue
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to the {algorithm} algorithm only, not {self.algorithm}")
        return self


ATTRS_BY_TYPE = {
    "text": TextAttrs,
    "tag": TagAttrs,
    "numeric": NumericAttrs,
    "geo": GeoAttrs,
    "geoshape": GeoShapeAttrs,
    "vector": VectorAttrs,
}
AnyAttrs = Union[TextAttrs, TagAttrs, NumericAttrs, GeoAttrs, GeoShapeAttrs, VectorAttrs]


class FieldSpec(_Strict):
    """One schema field. `name` is what queries use (the attribute); `path` is where the value
    lives in the document (a hash field name, or a JSONPath) when it differs from `name`."""

    name: str = Field(min_length=1)
    type: str
    path: Optional[str] = None
    attrs: AnyAttrs

    @model_validator(mode="before")
    @classmethod
    def _typed_attrs(cls, data):
        if isinstance(data, dict):
            data = dict(data)
            kind = _choice(data.get("type"), FIELD_TYPES, "type")
            data["type"] = kind
            attrs = data.get("attrs")
            if attrs is None and kind == "vector":
                raise ValueError("a vector field needs attrs with at least dims and algorithm")
            if not isinstance(attrs, BaseModel):
                data["attrs"] = ATTRS_BY_TYPE[kind].model_validate(attrs or {})
        return data

    @model_validator(mode="after")
    def _attrs_match_type(self):
        if not isinstance(self.attrs, ATTRS_BY_TYPE[self.type]):
            raise ValueError(f"attrs of a {self.type} field must be {ATTRS_BY_TYPE[self.type].__name__}")
        return self

    @property
    def vector(self) -> Optional[VectorAttrs]:
        return self.attrs if self.type == "vector" else None


class IndexSettings(_Strict):
    """The `index:` section: identity, key space and every index-level option of FT.CREATE."""

    name: str = Field(min_length=1)
    prefix: List[str] = Field(default_factory=lambda: [""])
    key_separator: str = ":"
    storage_type: str = "hash"
    filter: Optional[str] = None
    language: Optional[str] = None
    language_field: Optional[str] = None
    score: Optional[float] = Field(default=None, ge=0, le=1)
    score_field: Optional[str] = None
    payload_field: Optional[str] = None
    max_text_fields: bool = False
    no_offsets: bool = False
    no_highlight: bool = False
    no_fields: bool = False
    no_freqs: bool = False
    stopwords: Optional[List[str]] = None

    @field_validator("prefix", mode="before")
    @classmethod
    def _prefix_list(cls, value):
        if value is None:
            return [""]
        if isinstance(value, str):
            return [value]
        return list(value) or [""]

    @field_validator("storage_type", mode="before")
    @classmethod
    def _storage(cls, value):
        return _choice(value, STORAGE_TYPES, "storage_type")


class IndexSchema(_Strict):
    index: IndexSettings
    fields: List[FieldSpec]

    @model_validator(mode="after")
    def _unique_names(self):
        seen: set[str] = set()
        for field in self.fields:
            if field.name in seen:
                raise ValueError(f"field {field.name!r} is defined twice")
            seen.add(field.name)
        if not self.fields:
            raise ValueError("an index needs at least one field")
        return self

    @property
    def name(self) -> str:
        return self.index.name

    @property
    def storage(self) -> str:
        return self.index.storage_type

    def field(self, name: str) -> Optional[FieldSpec]:
        return next((f for f in self.fields if f.name == name), None)

    def vector_fields(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.type == "vector"]

    def identifier(self, field: FieldSpec) -> str:
        """Where the field's value lives in a document: hash field name or JSONPath."""
        if field.path:
            return field.path
        return f"$.{field.name}" if self.storage == "json" else field.name

    def normalized(self) -> "IndexSchema":
        """The same index with every default and server-side implication made explicit."""
        data = self.model_dump()
        index = data["index"]
        index["language"] = (index["language"] or DEFAULT_LANGUAGE).lower()
        index["score"] = DEFAULT_SCORE if index["score"] is None else float(index["score"])
        if index["no_offsets"]:
            index["no_highlight"] = True
        if index["stopwords"] is not None:
            # The server stores stopwords lower-cased and once each.
            index["stopwords"] = sorted({word.lower() for word in index["stopwords"]})
        json_storage = index["storage_type"] == "json"
        for field in data["fields"]:
            _normalize_field(field, json_storage)
        return IndexSchema.model_validate(data)

    def to_dict(self) -> dict[str, Any]:
        """Reference-shaped plain dict (a single prefix as a string), without unset values."""
        data = self.model_dump(exclude_none=True)
        prefixes = data["index"]["prefix"]
        data["index"]["prefix"] = prefixes[0] if len(prefixes) == 1 else prefixes
        return data

    def comparable(self, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
        """Normalized dict without what no server reports, for equality checks.

        `ignore` holds extra dotted paths (`fields.<name>.<attr>` or `index.<option>`) that the
        server did not expose when one side was captured."""
        data = self.normalized().model_dump()
        for field in data["fields"]:
            for attr in UNOBSERVABLE_ATTRS:
                field["attrs"].pop(attr, None)
            if field["attrs"].get("phonetic_matcher"):
                # The server keeps only "phonetic on"; the matcher's language is not stored.
                field["attrs"]["phonetic_matcher"] = "dm"
            for path in ignore:
                parts = path.split(".")
                if parts[0] == "fields" and len(parts) == 3 and parts[1] == field["name"]:
                    field["attrs"].pop(parts[2], None)
        for path in ignore:
            parts = path.split(".")
            if parts[0] == "index" and len(parts) == 2:
                data["index"].pop(parts[1], None)
        data["fields"] = {f.pop("name"): f for f in data["fields"]}
        return data


def _normalize_field(field: dict[str, Any], json_storage: bool) -> None:
    attrs = field["attrs"]
    kind = field["type"]
    if json_storage:
        field["path"] = field["path"] or f"$.{field['name']}"
    elif field["path"] == field["name"]:
        field["path"] = None
    if kind == "text":
        attrs["weight"] = float(attrs["weight"])
        if attrs["phonetic_matcher"]:
            # The server checks the matcher (dm:en, dm:fr, dm:pt, dm:es) but keeps only "phonetic on".
            attrs["phonetic_matcher"] = "dm:en"
        if attrs["no_index"]:
            # Nothing is indexed, so PHONETIC has no effect, and no query can tell whether it is set.
            attrs["phonetic_matcher"] = None
    if kind == "tag" and attrs["separator"] is None:
        attrs["separator"] = "" if json_storage else ","
    if "unf" in attrs:
        # The server never normalizes these sort values: SORTABLE reports UNF even when not given.
        if attrs["sortable"] and (json_storage or kind == "numeric" or (kind == "tag" and attrs["case_sensitive"])):
            attrs["unf"] = True
        if not attrs["sortable"]:
            attrs["unf"] = False
    if kind == "vector":
        defaults = (
            FLAT_DEFAULTS if attrs["algorithm"] == "flat" else HNSW_DEFAULTS if attrs["algorithm"] == "hnsw" else {}
        )
        for name, value in defaults.items():
            if attrs.get(name) is None:
                attrs[name] = value


def differences(expected: IndexSchema, actual: IndexSchema, ignore: tuple[str, ...] = ()) -> list[str]:
    """Human-readable list of what differs between two schemas (empty when equal)."""
    left, right = expected.comparable(ignore), actual.comparable(ignore)
    found = []
    for key in sorted(set(left["index"]) | set(right["index"])):
        if left["index"].get(key) != right["index"].get(key):
            found.append(f"index.{key}: expected {left['index'].get(key)!r}, found {right['index'].get(key)!r}")
    for name in left["fields"]:
        if name not in right["fields"]:
            found.append(f"field {name!r}: missing")
    for name in right["fields"]:
        if name not in left["fields"]:
            found.append(f"field {name!r}: not expected")
    for name in left["fields"]:
        if name not in right["fields"]:
            continue
        want, have = left["fields"][name], right["fields"][name]
        for key in ("type", "path"):
            if want[key] != have[key]:
                found.append(f"field {name!r} {key}: expected {want[key]!r}, found {have[key]!r}")
        if want["type"] == have["type"]:
            for attr in sorted(set(want["attrs"]) | set(have["attrs"])):
                if want["attrs"].get(attr) != have["attrs"].get(attr):
                    found.append(
                        f"field {name!r} {attr}: expected {want['attrs'].get(attr)!r}, "
                        f"found {have['attrs'].get(attr)!r}"
                    )
    return found


# ---------------------------------------------------------------------------------------------
# Strict parsing of user input, with messages that name the key and the valid choices.
# ---------------------------------------------------------------------------------------------


def check_keys(data: Any, allowed: tuple[str, ...] | list[str], where: str, what: str = "key") -> dict:
    """Raise SchemaInvalid for a non-mapping or for any key not in `allowed` (with a suggestion)."""
    if not isinstance(data, dict):
        raise SchemaInvalid(f"{where} must be a mapping, not {type(data).__name__}")
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SchemaInvalid(
                f"{where}: unknown {what} {key!r}",
                hint=f"{hint}valid {what}s: {', '.join(sorted(allowed))}",
            )
    return data


def explain(err: ValidationError, where: str) -> SchemaInvalid:
    """Turn a pydantic error into one readable SchemaInvalid."""
    first = err.errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()) if part not in ("function-after", "function-before"))
    message = str(first.get("msg", "invalid value")).replace("Value error, ", "")
    at = f"{where}.{loc}" if loc else where
    return SchemaInvalid(f"{at}: {message}", details={"errors": [e.get("msg") for e in err.errors()]})


INDEX_KEYS = tuple(IndexSettings.model_fields) if hasattr(IndexSettings, "model_fields") else ()
FIELD_KEYS = ("name", "type", "path", "attrs")


def parse_field(data: Any, where: str, storage: str | None = None, check_limits: bool = False) -> FieldSpec:
    """Parse one field definition strictly (reference shape: name, type, path, attrs).

    With `check_limits`, every value must also be within what the server safely accepts (limits.py):
    for user input. A schema read back from a server or a plan is parsed without it."""
    check_keys(data, FIELD_KEYS, where)
    if "name" not in data or "type" not in data:
        raise SchemaInvalid(f"{where}: a field needs 'name' and 'type'")
    name = str(data["name"])
    label = f"{where} ({name if name.isprintable() else repr(name)})"
    if check_limits:
        limits.check_field(data, label)
    kind = str(data["type"]).strip().lower()
    if kind not in FIELD_TYPES:
        raise SchemaInvalid(
            f"{label}: unknown field type {data['type']!r}", hint=f"valid types: {', '.join(FIELD_TYPES)}"
        )
    attrs = data.get("attrs") or {}
    check_keys(attrs, tuple(ATTRS_BY_TYPE[kind].model_fields), f"{label}.attrs", f"{kind} field attribute")
    path = data.get("path")
    if storage == "hash" and isinstance(path, str) and path.startswith("$."):
        raise SchemaInvalid(f"{label}: path {data['path']!r} is a JSONPath but the index stores hashes")
    try:
        return FieldSpec.model_validate({**data, "type": kind, "attrs": attrs})
    except ValidationError as err:
        raise explain(err, label) from None


def parse_index_settings(data: Any, where: str, check_limits: bool = False) -> IndexSettings:
    check_keys(data, INDEX_KEYS, where, "index option")
    if check_limits:
        limits.check_index_options(data, where)
    try:
        return IndexSettings.model_validate(data)
    except ValidationError as err:
        raise explain(err, where) from None


def parse_schema(data: Any, where: str = "schema", check_limits: bool = False) -> IndexSchema:
    """Parse a full schema in the reference shape ({index: ..., fields: [...]}) strictly.

    `check_limits` for a schema a user wrote (a target schema): see parse_field."""
    check_keys(data, ("version", "index", "fields"), where, "section")
    if "index" not in data or "fields" not in data:
        raise SchemaInvalid(f"{where}: needs both an 'index' and a 'fields' section")
    index = parse_index_settings(data["index"], f"{where}: index", check_limits)
    if not isinstance(data["fields"], list):
        raise SchemaInvalid(f"{where}: fields must be a list")
    fields = [
        parse_field(f, f"{where}: fields[{i}]", index.storage_type, check_limits) for i, f in enumerate(data["fields"])
    ]
    try:
        schema = IndexSchema(index=index, fields=fields)
    except ValidationError as err:
        raise explain(err, where) from None
    if check_limits:
        # The same again on the parsed values (e.g. dims x block_size once defaults are in).
        limits.check_schema(schema, where)
    return schema


def parse_target_schema(data: Any, where: str = "target schema") -> IndexSchema:
    """A target schema a user wrote: parsed strictly and checked against the server's limits."""
    return parse_schema(data, where, check_limits=True)
