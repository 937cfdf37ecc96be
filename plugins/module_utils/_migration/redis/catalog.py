# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server's indexes and their aliases.

Before search 8.10 (FT.ALIASLIST) no command lists an index's aliases, yet FT.DROPINDEX drops them
with the index. So aliases come from FT.ALIASLIST where the server has it, and otherwise from the
names the operator declares, each checked with FT.INFO (which resolves an alias to its index).
`aliases_complete` says which of the two it was.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from ..core.deps import BaseModel, Field
from ..core.errors import IndexNotFound
from .capabilities import ServerCapabilities
from .resp import decode
from .snapshot import list_indexes, read_info
from .stats import stats_from_info


class OtherIndex(BaseModel):
    """Another live index, as far as shared keys are concerned."""

    name: str
    storage: str
    prefixes: List[str]
    locations: Dict[str, str] = Field(default_factory=dict)  # document location -> "vector:<datatype>" or field type


class VectorSummary(BaseModel):
    name: str
    algorithm: str
    datatype: str
    dims: int
    distance_metric: str


class IndexSummary(BaseModel):
    name: str
    aliases: List[str] = Field(default_factory=list)
    aliases_complete: bool = False
    storage_type: str
    prefixes: List[str]
    num_docs: int
    hash_indexing_failures: int
    indexing: bool
    percent_indexed: float
    field_count: int
    vector_fields: List[VectorSummary] = Field(default_factory=list)


def alias_targets(client, aliases: List[str]) -> Dict[str, Optional[str]]:
    """{alias: index it points at, or None when no such alias exists}."""
    found: Dict[str, Optional[str]] = {}
    for alias in aliases:
        try:
            info = read_info(client, alias)
        except IndexNotFound:
            found[alias] = None
            continue
        # FT.INFO of a real index name returns that same name: it is not an alias.
        found[alias] = info.name if info.name != alias else None
    return found


def aliases_of(
    client, index: str, caps: ServerCapabilities, declared: Dict[str, Optional[str]]
) -> tuple[List[str], bool]:
    """(aliases of `index`, whether the list is known to be complete)."""
    if caps.alias_listing:
        return sorted(str(a) for a in decode(client.execute_command("FT.ALIASLIST", index))), True
    return sorted(alias for alias, target in declared.items() if target == index), False


def summarize(client, name: str, caps: ServerCapabilities, declared: Dict[str, Optional[str]]) -> IndexSummary:
    info = read_info(client, name)
    stats = stats_from_info(info)
    aliases, complete = aliases_of(client, info.name, caps, declared)
    vectors = [
        VectorSummary(
            name=a.attribute,
            algorithm=str(a.params.get("algorithm", "")).lower(),
            datatype=str(a.params.get("data_type", "")).lower(),
            dims=int(a.params.get("dim", 0)),
            distance_metric=str(a.params.get("distance_metric", "")).lower(),
        )
        for a in info.attributes
        if a.type == "VECTOR"
    ]
    return IndexSummary(
        name=info.name,
        aliases=aliases,
        aliases_complete=complete,
        storage_type=str(info.definition.get("key_type", "HASH")).lower(),
        prefixes=[str(p) for p in info.definition.get("prefixes") or [""]],
        num_docs=stats.num_docs,
        hash_indexing_failures=stats.hash_indexing_failures,
        indexing=stats.indexing,
        percent_indexed=stats.percent_indexed,
        field_count=len(info.attributes),
        vector_fields=vectors,
    )


def catalog(client, caps: ServerCapabilities, declared: Dict[str, Optional[str]]) -> List[IndexSummary]:
    summaries = []
    for name in list_indexes(client):
        try:
            summaries.append(summarize(client, name, caps, declared))
        except IndexNotFound:
            continue  # dropped between FT._LIST and FT.INFO
    return summaries


def other_indexes(client, exclude: Iterable[str]) -> List[OtherIndex]:
    """Every live index but `exclude`, as far as shared keys are concerned: its key type, prefixes and
    what it reads from each document location."""
    skip = set(exclude)
    found = []
    for name in list_indexes(client):
        if name in skip:
            continue
        try:
            info = read_info(client, name)
        except IndexNotFound:
            continue  # dropped between FT._LIST and FT.INFO
        locations = {}
        for attr in info.attributes:
            kind = attr.type.lower()
            locations[attr.identifier] = (
                f"vector:{str(attr.params.get('data_type', '')).lower()}" if kind == "vector" else kind
            )
        found.append(
            OtherIndex(
                name=info.name,
                storage=str(info.definition.get("key_type", "HASH")).lower(),
                prefixes=[str(p) for p in info.definition.get("prefixes") or [""]],
                locations=locations,
            )
        )
    return found
