# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a migration does to each document, derived once from the changes.

The estimate sizes the backup from this and the executor performs it, so the two cannot disagree.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from ..core.deps import BaseModel, Field
from .changes import PREFIX_CHANGE, VECTOR_DATATYPE, Change
from .model import DATATYPE_WIDTH, IndexSchema
from .patch import FieldRename


class Quantize(BaseModel):
    field: str
    location: str  # hash field holding the bytes (after any rename)
    source_location: str  # where the bytes are before renames
    dims: int
    source: str
    target: str
    metric: str


class Move(BaseModel):
    field: str
    old_location: str
    new_location: str


class PrefixRename(BaseModel):
    old: str
    new: str


class DocumentRewrites(BaseModel):
    storage: str = "hash"
    quantize: List[Quantize] = Field(default_factory=list)
    moves: List[Move] = Field(default_factory=list)
    prefix: Optional[PrefixRename] = None

    @property
    def any(self) -> bool:
        return bool(self.quantize or self.moves or self.prefix)

    def backup_entries(self) -> List[Tuple[str, Optional[int], bool]]:
        """(location, exact value size or None when it varies, stored-as-absent) per record entry.

        The backup keeps, before any change: each quantized vector's bytes, each moved field's
        value, and a marker of whatever is (normally nothing) at each move's destination."""
        entries: List[Tuple[str, Optional[int], bool]] = []
        moved_from = {m.old_location for m in self.moves}
        for move in self.moves:
            size = None
            for quant in self.quantize:
                if quant.source_location == move.old_location:
                    size = quant.dims * DATATYPE_WIDTH[quant.source]
            entries.append((move.old_location, size, False))
            entries.append((move.new_location, None, True))
        for quant in self.quantize:
            if quant.source_location not in moved_from:
                entries.append((quant.source_location, quant.dims * DATATYPE_WIDTH[quant.source], False))
        return entries


def document_rewrites(
    source: IndexSchema, target: IndexSchema, changes: List[Change], renames: List[FieldRename]
) -> DocumentRewrites:
    rewrites = DocumentRewrites(storage=source.storage)
    renamed_from = {r.new_name: r for r in renames}
    for rename in renames:
        if rename.moves_data:
            rewrites.moves.append(
                Move(field=rename.new_name, old_location=rename.old_location, new_location=rename.new_location)
            )
    for change in changes:
        if change.kind == VECTOR_DATATYPE and change.rewrites_documents:
            field = target.field(change.field)
            origin_name = renamed_from[change.field].old_name if change.field in renamed_from else change.field
            origin = source.field(origin_name)
            rewrites.quantize.append(
                Quantize(
                    field=change.field,
                    location=target.identifier(field),
                    source_location=source.identifier(origin),
                    dims=field.attrs.dims,
                    source=change.before,
                    target=change.after,
                    metric=field.attrs.distance_metric,
                )
            )
        elif change.kind == PREFIX_CHANGE and len(change.before) == 1 and len(change.after) == 1:
            rewrites.prefix = PrefixRename(old=change.before[0], new=change.after[0])
    return rewrites
