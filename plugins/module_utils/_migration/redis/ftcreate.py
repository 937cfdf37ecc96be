# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schema model -> FT.CREATE arguments, in the order the server's parser requires.

The field parser stops at the first token it does not expect, so order matters: type options,
then INDEXEMPTY, INDEXMISSING, SORTABLE [UNF], NOINDEX. Index options that only matter at creation
time (SKIPINITIALSCAN, TEMPORARY) are never emitted: a migrated index must index every document
and must not expire.
"""

from __future__ import annotations

from ..schema.model import FieldSpec, IndexSchema


def _number(value: float) -> str:
    """Shortest text that parses back to the same double."""
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


# Index flags, in the order FT.CREATE takes them.
_INDEX_FLAGS = (
    ("max_text_fields", "MAXTEXTFIELDS"),
    ("no_offsets", "NOOFFSETS"),
    ("no_highlight", "NOHL"),
    ("no_fields", "NOFIELDS"),
    ("no_freqs", "NOFREQS"),
)


# The optional vector parameters, in FT.CREATE's order; each is the schema attribute of that name in lower case.
_VECTOR_OPTIONS = (
    "INITIAL_CAP BLOCK_SIZE M EF_CONSTRUCTION EF_RUNTIME EPSILON GRAPH_MAX_DEGREE CONSTRUCTION_WINDOW_SIZE "
    "SEARCH_WINDOW_SIZE COMPRESSION REDUCE TRAINING_THRESHOLD"
).split()


def index_option_args(schema: IndexSchema) -> list[str]:
    index = schema.index
    args = ["ON", index.storage_type.upper(), "PREFIX", str(len(index.prefix)), *index.prefix]
    if index.filter:
        args += ["FILTER", index.filter]
    if index.language:
        args += ["LANGUAGE", index.language]
    if index.language_field:
        args += ["LANGUAGE_FIELD", index.language_field]
    if index.score is not None:
        args += ["SCORE", _number(index.score)]
    if index.score_field:
        args += ["SCORE_FIELD", index.score_field]
    if index.payload_field:
        args += ["PAYLOAD_FIELD", index.payload_field]
    args += [flag for attr, flag in _INDEX_FLAGS if getattr(index, attr)]
    if index.stopwords is not None:
        args += ["STOPWORDS", str(len(index.stopwords)), *index.stopwords]
    return args


def _vector_args(field: FieldSpec) -> list[str]:
    attrs = field.attrs
    params = [
        ("TYPE", attrs.datatype.upper()),
        ("DIM", str(attrs.dims)),
        ("DISTANCE_METRIC", attrs.distance_metric.upper()),
    ]
    optional = [(name, getattr(attrs, name.lower())) for name in _VECTOR_OPTIONS]
    params += [
        (name, _number(value) if isinstance(value, float) else str(value))
        for name, value in optional
        if value is not None
    ]
    flat = [token for pair in params for token in pair]
    return [attrs.algorithm.upper(), str(len(flat)), *flat]


def _type_args(field: FieldSpec) -> list[str]:
    attrs = field.attrs
    args = [field.type.upper()]
    if field.type == "text":
        if attrs.no_stem:
            args.append("NOSTEM")
        if attrs.weight != 1.0:
            args += ["WEIGHT", _number(attrs.weight)]
        if attrs.phonetic_matcher:
            args += ["PHONETIC", attrs.phonetic_matcher]
        if attrs.withsuffixtrie:
            args.append("WITHSUFFIXTRIE")
    elif field.type == "tag":
        if attrs.separator:
            args += ["SEPARATOR", attrs.separator]
        if attrs.case_sensitive:
            args.append("CASESENSITIVE")
        if attrs.withsuffixtrie:
            args.append("WITHSUFFIXTRIE")
    elif field.type == "geoshape":
        args.append(attrs.coord_system.upper())
    elif field.type == "vector":
        args = ["VECTOR", *_vector_args(field)]
    return args


def field_args(schema: IndexSchema, field: FieldSpec) -> list[str]:
    attrs = field.attrs
    identifier = schema.identifier(field)
    args = [identifier] if identifier == field.name else [identifier, "AS", field.name]
    args += _type_args(field)
    if getattr(attrs, "index_empty", False):
        args.append("INDEXEMPTY")
    if attrs.index_missing:
        args.append("INDEXMISSING")
    if getattr(attrs, "sortable", False):
        args.append("SORTABLE")
        if getattr(attrs, "unf", False):
            args.append("UNF")
    if getattr(attrs, "no_index", False):
        args.append("NOINDEX")
    return args


def create_args(schema: IndexSchema, name: str | None = None) -> list[str]:
    """Arguments after FT.CREATE (index name first) that recreate `schema` exactly."""
    args = [name or schema.name, *index_option_args(schema), "SCHEMA"]
    for field in schema.fields:
        args += field_args(schema, field)
    return args


def create_command(schema: IndexSchema, name: str | None = None) -> str:
    """The FT.CREATE command as one line, quoted where needed, for reports and `--diff`."""

    def quote(token: str) -> str:
        if token == "" or any(ch in token for ch in " \"'\\|,;{}()@$*"):
            return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return token

    return "FT.CREATE " + " ".join(quote(t) for t in create_args(schema, name))
