# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse an FT.INFO reply, RESP2 or RESP3, into one plain structure.

RESP2 sends each attribute as a flat token list in which flags are bare tokens
(`... WEIGHT 2 SORTABLE NOSTEM`), so it cannot be read as key/value pairs; RESP3 sends a map
with a `flags` list. Tokens this version does not know are kept in `unrecognized` so that the
snapshot can refuse to silently drop a setting it does not understand.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from .resp import as_map, decode, text

# Attribute keys that are followed by a value (as the server spells them).
VALUED_KEYS = {
    "identifier",
    "attribute",
    "type",
    "WEIGHT",
    "SEPARATOR",
    "algorithm",
    "data_type",
    "dim",
    "distance_metric",
    "M",
    "ef_construction",
    "ef_runtime",
    "epsilon",
    "coord_system",
    "block_size",
    "initial_cap",
    "graph_max_degree",
    "construction_window_size",
    "search_window_size",
    "compression",
    "reduce",
    "training_threshold",
}
FLAGS = {
    "SORTABLE",
    "UNF",
    "NOSTEM",
    "NOINDEX",
    "CASESENSITIVE",
    "WITHSUFFIXTRIE",
    "INDEXEMPTY",
    "INDEXMISSING",
    "PHONETIC",
}
INDEX_OPTIONS = {"NOOFFSETS", "NOFREQS", "NOHL", "NOFIELDS", "MAXTEXTFIELDS"}
DEFINITION_KEYS = {
    "key_type",
    "prefixes",
    "filter",
    "default_language",
    "language_field",
    "default_score",
    "score_field",
    "payload_field",
    "indexes_all",
}


@dataclass
class Attribute:
    identifier: str
    attribute: str
    type: str
    flags: set = dc_field(default_factory=set)
    params: dict = dc_field(default_factory=dict)
    unrecognized: list = dc_field(default_factory=list)


@dataclass
class FtInfo:
    name: str
    options: list
    definition: dict
    attributes: list
    stopwords: Any  # list of str, or None when the index uses the server's default list
    stats: dict
    unrecognized: list = dc_field(default_factory=list)


def _attribute_from_tokens(tokens: list) -> Attribute:
    tokens = [text(t) for t in tokens]
    values: dict[str, Any] = {}
    flags: set[str] = set()
    unknown: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in VALUED_KEYS and i + 1 < len(tokens):
            values[token] = tokens[i + 1]
            i += 2
        elif token in FLAGS:
            flags.add(token)
            i += 1
        else:
            unknown.append(str(token))
            i += 1
    return _attribute(values, flags, unknown)


def _attribute_from_map(raw: dict) -> Attribute:
    values = {text(k): decode(v) for k, v in raw.items()}
    flags = {text(f) for f in values.pop("flags", [])}
    unknown = sorted(str(f) for f in flags - FLAGS)
    unknown += sorted(k for k in values if k not in VALUED_KEYS)
    return _attribute(values, flags & FLAGS, unknown)


def _attribute(values: dict, flags: set, unknown: list) -> Attribute:
    identifier = str(values.pop("identifier", ""))
    return Attribute(
        identifier=identifier,
        attribute=str(values.pop("attribute", identifier)),
        type=str(values.pop("type", "")).upper(),
        flags=flags,
        params={k: v for k, v in values.items() if k in VALUED_KEYS},
        unrecognized=unknown,
    )


def parse_ft_info(reply: Any) -> FtInfo:
    """Parse FT.INFO from either protocol. Values are str/int/float; never bytes."""
    top = as_map(reply)
    definition = {k: decode(v) for k, v in as_map(top.get("index_definition", [])).items()}
    raw_attrs = top.get("attributes") or []
    attributes = [_attribute_from_map(a) if isinstance(a, dict) else _attribute_from_tokens(a) for a in raw_attrs]
    options = [str(o) for o in decode(top.get("index_options") or [])]
    stopwords = decode(top["stopwords_list"]) if "stopwords_list" in top else None
    stats = {}
    for key, value in top.items():
        if key in ("index_definition", "attributes", "index_options", "stopwords_list", "field statistics"):
            continue
        stats[key] = decode(as_map(value) if isinstance(value, (list, dict)) and key in _MAP_STATS else value)
    unrecognized = [f"index option {o}" for o in options if o not in INDEX_OPTIONS]
    unrecognized += [f"index definition {k}" for k in definition if k not in DEFINITION_KEYS]
    return FtInfo(
        name=str(text(top.get("index_name", ""))),
        options=options,
        definition=definition,
        attributes=attributes,
        stopwords=stopwords,
        stats=stats,
        unrecognized=unrecognized,
    )


# Nested stats that are maps (flat lists in RESP2).
_MAP_STATS = {"gc_stats", "cursor_stats", "dialect_stats", "Index Errors"}
