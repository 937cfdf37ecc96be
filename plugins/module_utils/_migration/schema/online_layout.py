# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a document's new bytes live while an online migration rewrites it: expand, swap, contract.

The live index must never read bytes that change under it, so the new bytes go where it does not
look, the target is built on them while it serves, the two are swapped at once, and only then are the
old bytes removed - ending with the documents exactly as a drop and recreate leaves them:

    change                        expand (source serves)          build on        contract (after the swap)
    field rename moving data      L' := value (converted if its   L'              L removed; L' takes its place
    L -> L' (datatype or not)     datatype changes)
    datatype change in place      S := converted (a side field    S (`S AS f`),   L := converted; a second
    at L (hash)                   no document has)                the interim     index on L; swapped in; S
                                                                  index           removed
    prefix change P -> P'         K' := the whole new document    P'              K deleted
                                  (copy, moves and conversions
                                  applied), beside K

A prefix change needs no side field (no index reads P' before the swap), so it takes one build, as
does a rename; a datatype change in place takes two, because the end state reads L.
"""

from __future__ import annotations

from typing import List, Optional

from ..core.deps import BaseModel, Field
from .model import IndexSchema
from .rewrites import DocumentRewrites

# A side field is named after the field it stands in for: `indexops-next:embedding`.
SIDE_PREFIX = "indexops-next:"


class SideField(BaseModel):
    """A vector converted in place: its new bytes wait in `side` until the original location takes them."""

    field: str  # the target's field name
    location: str  # L: where the source reads the vector and where the target ends up reading it
    side: str  # S


class OnlineLayout(BaseModel):
    """How an online migration lays out the documents it rewrites."""

    copy_keys: bool = False  # prefix change: each document is written whole under its new key
    side_fields: List[SideField] = Field(default_factory=list)  # datatype changes in place (hash)

    @property
    def builds(self) -> int:
        """Index builds the migration takes: two when a vector is converted in place."""
        return 2 if self.side_fields else 1

    @property
    def side_locations(self) -> List[str]:
        return [side.side for side in self.side_fields]


def side_name(location: str) -> str:
    return SIDE_PREFIX + location


def online_layout(rewrites: DocumentRewrites) -> Optional[OnlineLayout]:
    """The layout of `rewrites` online; None when the documents stay as they are."""
    if not rewrites.any:
        return None
    if rewrites.prefix is not None:
        return OnlineLayout(copy_keys=True)
    sides = [
        SideField(field=q.field, location=q.location, side=side_name(q.location))
        for q in rewrites.quantize
        if q.location == q.source_location
    ]
    return OnlineLayout(side_fields=sides)


def interim_schema(target: IndexSchema, layout: OnlineLayout, name: str) -> IndexSchema:
    """The target read from the side fields (`S AS field`), under `name`: what serves between the two swaps
    of a datatype change in place."""
    interim = target.model_copy(deep=True)
    interim.index.name = name
    for side in layout.side_fields:
        interim.field(side.field).path = side.side
    return interim
