# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every bound this collection puts on what a user may ask for, in one place.

Schema attributes and index options are checked against the ranges the server accepts - or,
where the server accepts a value that crashes it or exhausts its memory, against a conservative
safe bound - before any plan is made, so that a plan never holds a value the server would refuse
after the old index was dropped. The ranges were measured on throwaway servers: redis-server
8.2.3 with search 2.10.5 and JSON 2.8.3 (tools/redis_search_server.py), each value tried with
FT.CREATE, FT.INFO and a few documents; the notes below say what the server did.

The options of the operations (batch size, workers, sample sizes, timeouts) are constrained types
used by the library's option models, so that the library refuses them without Ansible and the
modules refuse them through the same models.

Checks work on plain values (a YAML patch, a model dump), so they run on raw input before a model
is built and on a whole schema alike. Each failure is one SchemaInvalid naming the attribute, the
value and the accepted range.
"""

from __future__ import annotations

import math
import re
import string
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from .deps import Field, ValidationError
from .errors import SchemaInvalid

try:
    from typing import Annotated
except ImportError:  # Python 3.8; pydantic brings typing_extensions there
    try:
        from typing_extensions import Annotated
    except ImportError:
        Annotated = None

MEASURED_ON = "redis-server 8.2.3, search 2.10.5"

# ---------------------------------------------------------------------------------------------
# Field attributes: integers. (low, high, why the bound is where it is)
# ---------------------------------------------------------------------------------------------
INT_LIMITS: Dict[str, Tuple[int, int, str]] = {
    # DIM 0 is refused. 65536 indexed a document; FLAT DIM 1048576 crashed redis-server on the first
    # document (it allocates BLOCK_SIZE vectors at once) and DIM 2^31 with INITIAL_CAP 1 crashed
    # FT.CREATE itself, while HNSW accepted DIM 2^40. No embedding model comes near 32768.
    "dims": (1, 32768, "larger vectors crashed redis-server on the first document (DIM 1048576, FLAT)"),
    # M 0 is refused; M 1 and every M from 32768 up (10^9, 2^31, 2^62) are accepted by FT.CREATE and
    # crash redis-server in the FT.INFO that follows; 32767 works. Each vector keeps 2*M links on
    # its bottom layer (8*M bytes), so 4096 is already 32 KiB of links per vector.
    "m": (
        2,
        4096,
        "M 1 and M 32768 or more crash redis-server; above 4096 the graph links alone take over 32 KiB per vector",
    ),
    # 1 .. 2^62 accepted with no crash and no extra memory (3000 documents, KNN queries), but past
    # the number of documents a larger value only makes every insert (or query) visit them all.
    "ef_construction": (1, 1_048_576, "larger values only make every insert a scan of the whole graph"),
    "ef_runtime": (1, 1_048_576, "larger values only make every query a scan of the whole graph"),
    # 0 is refused; 16777216 is refused by a memory-derived server limit; below it a FLAT block is
    # allocated whole on the first document: BLOCK_SIZE 4194304 at DIM 64 took 1.38 GB for one
    # document. See also MAX_PREALLOCATED_BYTES.
    "block_size": (1, 1_048_576, "FLAT allocates a whole block of vectors on the first document"),
    # Allocated at FT.CREATE: INITIAL_CAP 16777216 of 4-dim FLAT vectors took 169 MB at once; HNSW
    # refused it against a memory-derived limit (10776481 here), FLAT refused 2^31.
    "initial_cap": (0, 4_194_304, "the capacity is allocated when the index is created"),
}
# A FLAT block (BLOCK_SIZE vectors) and the INITIAL_CAP vectors are allocated at once; keep either
# below 1 GiB of vector data.
MAX_PREALLOCATED_BYTES = 1 << 30
# Bytes of one vector element, by datatype (schema.py re-exports it; it imports this file).
DATATYPE_WIDTH = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}

# ---------------------------------------------------------------------------------------------
# Floats: finite, and within (low, high).
# ---------------------------------------------------------------------------------------------
FLOAT_LIMITS: Dict[str, Tuple[float, float, str]] = {
    # WEIGHT: every finite double and NaN are accepted (inf is refused); a negative weight gave a
    # score of 256 to a one-word match, 1e300 overflows scores. Not a crash: a sane range.
    "weight": (0.0, 1_000_000.0, "negative weights invert scoring and huge ones overflow it"),
    # EPSILON: 0 .. 1e300 and NaN accepted, inf refused. It widens range queries relatively.
    "epsilon": (0.0, 1000.0, "a relative tolerance beyond 1000 makes every range query match everything"),
    # SCORE: the server refuses anything outside 0..1 but accepts NaN.
    "score": (0.0, 1.0, "the server accepts a default score between 0 and 1 only"),
}

# ---------------------------------------------------------------------------------------------
# Choices.
# ---------------------------------------------------------------------------------------------
# Every language FT.CREATE LANGUAGE accepted (case-insensitively); "polish", "japanese", "korean",
# "czech", "latin", ... and "" are refused with "Invalid language".
LANGUAGES = (
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "chinese",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
)
# PHONETIC: exactly these four, lower case ("DM:EN", "dm:de", "dm" are refused).
PHONETIC_MATCHERS = ("dm:en", "dm:fr", "dm:pt", "dm:es")
# SEPARATOR: the server accepts any single byte but NUL. A non-ASCII character is several bytes
# (refused), "\n" is reported back escaped by FT.INFO (so the result cannot be verified), other
# control characters and letters or digits make no sense as a separator. Space, tab and ASCII
# punctuation remain.
SEPARATORS = " \t" + string.punctuation

# ---------------------------------------------------------------------------------------------
# Strings: names, prefixes, the filter, stopwords.
# ---------------------------------------------------------------------------------------------
# The server accepts field names, prefixes and stopwords that are empty, contain NUL or are
# 100000 characters long, but NUL silently truncates them: PREFIX "a\0b:" became "a" (the index
# then covers every key starting with "a"), FILTER "@n>0\0..." became "@n>0", field "f\0g" became
# "f". Newlines are reported back escaped ("\\n"). So: no control characters anywhere, and lengths
# far beyond any real use refused.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 1024
MAX_FILTER_LENGTH = 16384


def _constrained(kind: type, **rules: Any) -> Any:
    return Annotated[kind, Field(**rules)] if Annotated is not None else kind


# ---------------------------------------------------------------------------------------------
# Options of the operations, as constrained types for the library's option models.
# ---------------------------------------------------------------------------------------------
# A batch is one pipeline (and one backup block) held in memory.
BatchSize = _constrained(int, ge=1, le=100_000)
# Each worker is a process with its own connection; Redis executes commands one at a time, so
# more than a few never helps, and thousands would exhaust the host.
Workers = _constrained(int, ge=1, le=64)
SampleSize = _constrained(int, ge=0)
WaitSeconds = _constrained(float, ge=0, allow_inf_nan=False)
TimeoutSeconds = _constrained(float, gt=0, allow_inf_nan=False)
Port = _constrained(int, ge=1, le=65535)


def _integer(value: Any) -> Optional[int]:
    """The integer a value stands for, or None when it is not one (the model reports that)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _real(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _label(where: str) -> str:
    return f"{where}: " if where else ""


def _check_int(name: str, value: Any, where: str) -> None:
    number = _integer(value)
    if number is None:
        return
    low, high, why = INT_LIMITS[name]
    if not low <= number <= high:
        raise SchemaInvalid(
            f"{_label(where)}{name} {number} is outside the accepted range {low}..{high}", hint=f"{why} ({MEASURED_ON})"
        )


def _check_float(name: str, value: Any, where: str) -> None:
    number = _real(value)
    if number is None:
        return
    low, high, why = FLOAT_LIMITS[name]
    if not math.isfinite(number):
        raise SchemaInvalid(
            f"{_label(where)}{name} {value!r} is not a finite number; accepted: {low:g}..{high:g}",
            hint="give a finite number",
        )
    if not low <= number <= high:
        raise SchemaInvalid(
            f"{_label(where)}{name} {number:g} is outside the accepted range {low:g}..{high:g}", hint=why
        )


def check_text(value: Any, what: str, where: str, empty: bool = False, length: int = MAX_NAME_LENGTH) -> None:
    """A name, prefix, path, filter or stopword: printable, bounded, and not empty unless allowed."""
    if not isinstance(value, str):
        return
    if not value and not empty:
        raise SchemaInvalid(f"{_label(where)}{what} is empty", hint=f"give a non-empty {what}")
    bad = _CONTROL.search(value)
    if bad:
        raise SchemaInvalid(
            f"{_label(where)}{what} {value[:60]!r} contains the control character "
            f"{bad.group()!r}; accepted: printable characters",
            hint="the server truncates names at NUL and reports other control characters escaped; remove it",
        )
    if len(value) > length:
        raise SchemaInvalid(
            f"{_label(where)}{what} is {len(value)} characters long; accepted: at most {length}",
            hint=f"shorten the {what}",
        )


def _check_separator(value: Any, where: str) -> None:
    if not isinstance(value, str) or value == "":  # "" is no separator (JSON tags)
        return
    if len(value) != 1 or value not in SEPARATORS:
        raise SchemaInvalid(
            f"{_label(where)}separator {value!r} is not accepted; accepted: one of space, tab or {string.punctuation}",
            hint="NUL and non-ASCII characters are refused by the server, a newline cannot be read "
            "back, letters and digits split words",
        )


def _check_choice(name: str, accepted: Sequence[str], refused: str, hint: str) -> Callable[[Any, str], None]:
    """A check that a text value is one of `accepted` (any case); `refused` says how it is not."""

    def check(value: Any, where: str) -> None:
        if isinstance(value, str) and value.lower() not in accepted:
            raise SchemaInvalid(
                f"{_label(where)}{name} {value!r} {refused}; accepted: {', '.join(accepted)}", hint=hint
            )

    return check


_check_phonetic = _check_choice(
    "phonetic_matcher", PHONETIC_MATCHERS, "is not accepted", "double metaphone (dm) in one of four languages"
)
_check_language = _check_choice(
    "language", LANGUAGES, "is not one the server knows", "choose one of the server's stemming languages"
)


_ATTR_CHECKS: Dict[str, Callable[[Any, str], None]] = {
    **{name: (lambda value, where, _n=name: _check_int(_n, value, where)) for name in INT_LIMITS},
    "weight": lambda value, where: _check_float("weight", value, where),
    "epsilon": lambda value, where: _check_float("epsilon", value, where),
    "separator": _check_separator,
    "phonetic_matcher": _check_phonetic,
}


def _preallocation(attrs: Mapping[str, Any], where: str) -> None:
    dims = _integer(attrs.get("dims"))
    width = DATATYPE_WIDTH.get(str(attrs.get("datatype") or "float32").lower())
    if not dims or not width:
        return
    candidates = [("initial_cap", attrs.get("initial_cap"))]
    if str(attrs.get("algorithm") or "").lower() == "flat":
        candidates.append(("block_size", attrs.get("block_size")))
    for name, value in candidates:
        count = _integer(value)
        if count and count * dims * width > MAX_PREALLOCATED_BYTES:
            raise SchemaInvalid(
                f"{_label(where)}{name} {count} x dims {dims} x {width} bytes is {count * dims * width} bytes of "
                f"vectors allocated at once; accepted: at most {MAX_PREALLOCATED_BYTES} (1 GiB)",
                hint=f"lower {name}: the server allocates it whole, before any document needs it",
            )


def check_attrs(attrs: Mapping[str, Any], where: str) -> None:
    """Check the field attributes given (all of a field, or only those a patch updates)."""
    if not isinstance(attrs, Mapping):
        return
    for name, value in attrs.items():
        check = _ATTR_CHECKS.get(name)
        if check is not None and value is not None:
            check(value, where)
    _preallocation(attrs, where)


def check_field(field: Mapping[str, Any], where: str) -> None:
    """A whole field definition: name, path and attributes."""
    if not isinstance(field, Mapping):
        return
    check_text(field.get("name"), "field name", where)
    if field.get("path") is not None:
        check_text(field.get("path"), "path", where)
    check_attrs(field.get("attrs") or {}, where)


_NAME_OPTIONS = ("name", "language_field", "score_field", "payload_field")


def check_index_options(options: Mapping[str, Any], where: str) -> None:
    """Check the index options given (the whole `index:` section, or a patch's `changes.index`)."""
    if not isinstance(options, Mapping):
        return
    for name in _NAME_OPTIONS:
        if options.get(name) is not None:
            check_text(options[name], name.replace("_", " ") if name != "name" else "index name", where)
    prefixes = options.get("prefix")
    for prefix in [prefixes] if isinstance(prefixes, str) else (prefixes or []):
        check_text(prefix, "prefix", where, empty=True)  # "" is every key, as the default
    if options.get("filter") is not None:
        check_text(options["filter"], "filter", where, length=MAX_FILTER_LENGTH)
    for word in options.get("stopwords") or []:
        check_text(word, "stopword", where)
    if options.get("language") is not None:
        _check_language(options["language"], where)
    if options.get("score") is not None:
        _check_float("score", options["score"], where)


def check_schema(schema: Any, where: str) -> None:
    """Check a whole schema (an IndexSchema or its dict): every index option and every field."""
    data = schema.model_dump() if hasattr(schema, "model_dump") else schema
    check_index_options(data.get("index") or {}, f"{where}: index")
    for field in data.get("fields") or []:
        check_field(field, f"{where}: field {field.get('name')!r}")


# ---------------------------------------------------------------------------------------------
# Option models' errors, as one line.
# ---------------------------------------------------------------------------------------------
_BOUND_WORDS = {
    "greater_than_equal": ("ge", "{bound} or more"),
    "greater_than": ("gt", "more than {bound}"),
    "less_than_equal": ("le", "{bound} or less"),
    "less_than": ("lt", "less than {bound}"),
}


def explain_options(err: ValidationError, names: Optional[Mapping[str, str]] = None) -> SchemaInvalid:
    """The first error of an option model as one line naming the option, the value and the fix."""
    first = err.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    option = ".".join((names or {}).get(part, part) for part in loc) or "options"
    value = first.get("input")
    kind = first.get("type", "")
    if kind in _BOUND_WORDS:
        key, words = _BOUND_WORDS[kind]
        bound = (first.get("ctx") or {}).get(key)
        bound = f"{bound:g}" if isinstance(bound, float) else bound
        return SchemaInvalid(
            f"{option} must be {words.format(bound=bound)}, not {value!r}",
            hint=f"set {option} to {words.format(bound=bound)}",
        )
    if kind == "finite_number":
        return SchemaInvalid(f"{option} must be a finite number, not {value!r}", hint=f"set {option} to a number")
    message = str(first.get("msg", "invalid value"))
    if message.startswith("Value error, "):  # our own validators' messages name the value already
        return SchemaInvalid(message[len("Value error, ") :])
    return SchemaInvalid(f"{option}: {message}" + (f" (got {value!r})" if loc and not isinstance(value, dict) else ""))
