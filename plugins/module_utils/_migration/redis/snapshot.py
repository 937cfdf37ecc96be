# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capture a live index as a schema model, losslessly, with read-only commands only.

FT.INFO does not show everything FT.CREATE accepted, so two more read-only sources fill the gaps:
- `FT.DEBUG VECSIM_INFO` gives BLOCK_SIZE, EF_RUNTIME and EPSILON of vector fields;
- a query with `{$phonetic: true}` on a text field fails exactly when the field has no PHONETIC.
What still cannot be seen (INITIAL_CAP always; VECSIM parameters where FT.DEBUG is not allowed)
is listed in `unobserved`, and settings FT.INFO reports that this version does not understand are
listed in `unrecognized`, so callers can refuse to drop them silently.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional

from ..core.deps import BaseModel, Field, redis_exceptions
from ..core.errors import IndexNotFound
from ..schema.model import FieldSpec, IndexSchema, IndexSettings, differences
from .ftinfo import Attribute, FtInfo, parse_ft_info
from .resp import as_float, as_int, as_map, decode, text
from .stats import IndexStats, stats_from_info

_TYPES = {"TEXT": "text", "TAG": "tag", "NUMERIC": "numeric", "GEO": "geo", "GEOSHAPE": "geoshape", "VECTOR": "vector"}
_NOT_FOUND = ("unknown index name", "no such index", "index not found", "not found")
# Settings no server reports (the key separator is how applications build keys): a live index is
# compared with a schema without them, and without what this server did not show (`unobserved`).
NOT_REPORTED = ("index.key_separator",)


class SchemaSnapshot(BaseModel):
    """A live index's schema plus what could not be observed or understood."""

    index_schema: IndexSchema
    unobserved: List[str] = Field(default_factory=list)
    unrecognized: List[str] = Field(default_factory=list)

    def differs_from(self, expected: IndexSchema) -> List[str]:
        """What differs between `expected` and this live schema, as far as the server shows it."""
        return differences(expected, self.index_schema, NOT_REPORTED + tuple(self.unobserved))

    def matches(self, expected: IndexSchema) -> bool:
        """Whether this live index is `expected` (as far as the server shows it)."""
        return not self.differs_from(expected)


def list_indexes(client) -> list[str]:
    return sorted(str(n) for n in decode(client.execute_command("FT._LIST")))


def read_info(client, name: str) -> FtInfo:
    """FT.INFO of an index or alias; IndexNotFound when neither exists."""
    try:
        reply = client.execute_command("FT.INFO", name)
    except redis_exceptions.ResponseError as err:
        if any(marker in str(err).lower() for marker in _NOT_FOUND):
            raise IndexNotFound(
                f"no index or alias named {name!r}", hint="list the server's indexes with redis_index_info and no index"
            ) from None
        raise
    return parse_ft_info(reply)


def real_name(client, name: str) -> Optional[str]:
    """The index a name leads to: itself, or the index an alias points at; None when it leads nowhere."""
    try:
        return read_info(client, name).name
    except IndexNotFound:
        return None


def index_exists(client, name: str) -> bool:
    try:
        read_info(client, name)
    except IndexNotFound:
        return False
    return True


# Integer vector parameters as FT.INFO names them; each is the schema attribute of that name in lower case.
_INFO_INTEGERS = (
    "M ef_construction ef_runtime graph_max_degree search_window_size construction_window_size reduce "
    "training_threshold block_size"
).split()


def _flags_attrs(attr: Attribute, names: dict[str, str]) -> dict[str, bool]:
    return {key: flag in attr.flags for flag, key in names.items()}


_COMMON_FLAGS = {"SORTABLE": "sortable", "NOINDEX": "no_index", "INDEXMISSING": "index_missing"}


# FT.INFO escapes the two separators a RESP simple string cannot hold (search 2.10.5).
_ESCAPED_SEPARATORS = {"\\n": "\n", "\\r": "\r"}


def _separator(reported: str) -> str:
    return _ESCAPED_SEPARATORS.get(reported, reported)


def _field_from_attribute(attr: Attribute, storage: str) -> FieldSpec:
    kind = _TYPES[attr.type]
    params = attr.params
    attrs: dict[str, Any] = _flags_attrs(attr, _COMMON_FLAGS) if kind != "vector" else {}
    if kind in ("text", "tag", "numeric", "geo", "geoshape"):
        attrs["unf"] = "UNF" in attr.flags
    if kind == "text":
        attrs.update(
            _flags_attrs(attr, {"NOSTEM": "no_stem", "WITHSUFFIXTRIE": "withsuffixtrie", "INDEXEMPTY": "index_empty"})
        )
        attrs["weight"] = as_float(params.get("WEIGHT"), 1.0)
    elif kind == "tag":
        attrs.update(
            _flags_attrs(
                attr,
                {"CASESENSITIVE": "case_sensitive", "WITHSUFFIXTRIE": "withsuffixtrie", "INDEXEMPTY": "index_empty"},
            )
        )
        attrs["separator"] = _separator(str(text(params.get("SEPARATOR", ""))))
    elif kind == "geoshape":
        attrs["coord_system"] = str(params.get("coord_system", "SPHERICAL")).lower()
    elif kind == "vector":
        attrs = {
            "algorithm": str(params.get("algorithm", "")).lower(),
            "datatype": str(params.get("data_type", "")).lower(),
            "dims": as_int(params.get("dim")),
            "distance_metric": str(params.get("distance_metric", "")).lower(),
            "index_missing": "INDEXMISSING" in attr.flags,
        }
        for name in _INFO_INTEGERS:
            if name in params:
                attrs[name.lower()] = as_int(params[name])
        if "epsilon" in params:
            attrs["epsilon"] = as_float(params["epsilon"])
        if "compression" in params:
            attrs["compression"] = str(params["compression"])
    path = attr.identifier if storage == "json" or attr.identifier != attr.attribute else None
    return FieldSpec.model_validate({"name": attr.attribute, "type": kind, "path": path, "attrs": attrs})


def _vecsim_params(client, index: str, field: str) -> Optional[dict[str, Any]]:
    """BLOCK_SIZE / EF_RUNTIME / EPSILON (and M, EF_CONSTRUCTION) from FT.DEBUG VECSIM_INFO."""
    try:
        info = as_map(client.execute_command("FT.DEBUG", "VECSIM_INFO", index, field))
    except redis_exceptions.ResponseError:
        return None
    if "BACKEND_INDEX" in info:  # tiered HNSW: the graph's parameters are on the backend index
        info = as_map(info["BACKEND_INDEX"])
    found: dict[str, Any] = {}
    for name in ("BLOCK_SIZE", "M", "EF_CONSTRUCTION", "EF_RUNTIME"):
        if name in info:
            found[name.lower()] = as_int(info[name])
    if "EPSILON" in info:
        found["epsilon"] = as_float(info["EPSILON"])
    return found


def query_escape(name: str) -> str:
    """Escape an attribute name for use after @ in a query."""
    return re.sub(r"([^A-Za-z0-9_])", r"\\\1", name)


def _has_phonetic(client, index: str, field: str) -> Optional[bool]:
    query = f"@{query_escape(field)}:(indexopsphoneticprobe)=>{{$phonetic:true}}"
    try:
        client.execute_command("FT.SEARCH", index, query, "LIMIT", "0", "0")
    except redis_exceptions.ResponseError as err:
        if "does not support phonetics" in str(err):
            return False
        return None
    return True


def _index_settings(info: FtInfo) -> IndexSettings:
    definition = info.definition
    options = set(info.options)
    # FT.INFO leaves default_score out exactly when it is 0 (`if (rule->score_default)`).
    score = as_float(definition.get("default_score"), 0.0)
    return IndexSettings(
        name=info.name,
        prefix=[str(p) for p in definition.get("prefixes") or [""]],
        storage_type=str(definition.get("key_type", "HASH")).lower(),
        filter=definition.get("filter"),
        language=definition.get("default_language"),
        language_field=definition.get("language_field"),
        score=score,
        score_field=definition.get("score_field"),
        payload_field=definition.get("payload_field"),
        max_text_fields="MAXTEXTFIELDS" in options,
        no_offsets="NOOFFSETS" in options,
        no_highlight="NOHL" in options,
        no_fields="NOFIELDS" in options,
        no_freqs="NOFREQS" in options,
        stopwords=[str(w) for w in info.stopwords] if info.stopwords is not None else None,
    )


def schema_from_info(client, info: FtInfo, key_separator: str = ":") -> SchemaSnapshot:
    """Build the schema from FT.INFO, completed by the VECSIM_INFO and phonetic probes."""
    settings = _index_settings(info)
    settings.key_separator = key_separator
    unobserved: list[str] = []
    unrecognized = list(info.unrecognized)
    fields = []
    for attr in info.attributes:
        if attr.type not in _TYPES:
            unrecognized.append(f"field {attr.attribute}: type {attr.type}")
            continue
        unrecognized += [f"field {attr.attribute}: {token}" for token in attr.unrecognized]
        field = _field_from_attribute(attr, settings.storage_type)
        if field.type == "vector":
            extra = _vecsim_params(client, info.name, field.name)
            tunables = {"flat": ("block_size",), "hnsw": ("ef_runtime", "epsilon")}.get(field.attrs.algorithm, ())
            if extra is None:
                unobserved += [f"fields.{field.name}.{name}" for name in tunables]
            else:
                for key in tunables:
                    if key in extra:
                        setattr(field.attrs, key, extra[key])
            unobserved.append(f"fields.{field.name}.initial_cap")
        elif field.type == "text" and not field.attrs.no_index:
            phonetic = _has_phonetic(client, info.name, field.name)
            if phonetic is None:
                unobserved.append(f"fields.{field.name}.phonetic_matcher")
            elif phonetic:
                field.attrs.phonetic_matcher = "dm:en"
        fields.append(field)
    schema = IndexSchema(index=settings, fields=fields)
    # The key separator is an application convention, not server state.
    unobserved.append("index.key_separator")
    return SchemaSnapshot(index_schema=schema, unobserved=unobserved, unrecognized=unrecognized)


class IndexSnapshot(BaseModel):
    """Everything read about one index at one moment."""

    name: str
    requested_as: str
    snapshot: SchemaSnapshot
    stats: IndexStats


def snapshot_index(client, name: str, key_separator: str = ":") -> IndexSnapshot:
    """Read an index (by name or alias): schema, what is unobservable, and stats."""
    info = read_info(client, name)
    return IndexSnapshot(
        name=info.name,
        requested_as=name,
        snapshot=schema_from_info(client, info, key_separator),
        stats=stats_from_info(info),
    )


def read_schema(client, name: str) -> SchemaSnapshot:
    """The schema of the index `name` leads to (itself, or an alias's index); IndexNotFound when none."""
    return snapshot_index(client, name).snapshot


def live_schema(client, name: str) -> Optional[SchemaSnapshot]:
    """The schema of the index `name` leads to, or None when there is none: one read answers both."""
    try:
        return read_schema(client, name)
    except IndexNotFound:
        return None


def holds(client, name: str, expected: IndexSchema) -> bool:
    """Whether the index `name` leads to exists and is `expected` (as far as the server shows it)."""
    live = live_schema(client, name)
    return live is not None and live.matches(expected)
