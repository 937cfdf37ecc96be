# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The states a backed-up document may be in when a rollback meets it - its original, and every state a
migration's phases (drop_recreate's, an online rewrite's, a catch-up's) can leave it in - as the restore
scripts' arguments: each state by its digest, so that one compare-and-set per key tells the migration's work
from the application's."""

from __future__ import annotations

import hashlib
from typing import Dict, List, Optional, Sequence

from ..backup.format import Record
from ..backup.store import BackupStore
from ..planning.plan import MigrationPlan
from ..vectors.codec import convert_batch
from ..vectors.quantization import QuantParams


def state_digest(values: Sequence[Optional[bytes]]) -> bytes:
    """SHA1 (hex) of a document's values at the backed-up locations, in the record's order, exactly as
    the restore scripts compute it: each "-" when absent, else "+<length>:<bytes>"."""
    return hashlib.sha1(b"".join(b"-" if v is None else b"+%d:%s" % (len(v), v) for v in values)).hexdigest().encode()


class DocumentStates:
    """The restore script's arguments per record: the original state, every state the migration's
    phases can leave a document in (move_fields, then quantize, whatever the key is called), and the
    original values to write back."""

    def __init__(self, plan: MigrationPlan, store: BackupStore):
        self.rewrites = plan.rewrites
        self.layout = plan.online_layout
        self.params = {field: QuantParams.from_dict(p) for field, p in store.header.quant_params.items()}

    def _converted(self, records: List[Record]) -> Dict[str, List[Optional[bytes]]]:
        """Per quantized field, the bytes the quantize phase writes for each record (None: none) - the
        same conversion of the same backed-up originals with the same parameters."""
        found: Dict[str, List[Optional[bytes]]] = {}
        for quant in self.rewrites.quantize:
            name = quant.source_location.encode()
            originals = [r.value(name) for r in records]
            present = [i for i, value in enumerate(originals) if value is not None]
            converted: List[Optional[bytes]] = [None] * len(records)
            params = self.params.get(quant.field)
            try:
                values = (
                    convert_batch([originals[i] for i in present], quant.source, quant.target, quant.dims, params)
                    if present
                    else []
                )
            except ValueError:
                # The migration could not convert this batch; only what converts on its own can be there.
                values = []
                for i in present:
                    try:
                        values.append(convert_batch([originals[i]], quant.source, quant.target, quant.dims, params)[0])
                    except ValueError:
                        values.append(None)
            for i, value in zip(present, values):
                converted[i] = value
            found[quant.field] = converted
        return found

    def _online_states(self, original: list, where: Dict[bytes, int], converted, n: int) -> List[list]:
        """An online migration's states (apply/phases/online_rewrite.py) besides drop_recreate's end state,
        which contract reaches: expanded (the new bytes beside the originals), converted (a datatype change in
        place: the original location holds the converted bytes too)."""
        if self.layout is None or self.layout.copy_keys:
            return []  # a prefix change online rewrites only the copies (see _uncopy)
        expanded = list(original)
        for side in self.layout.side_fields:
            at, side_at = where.get(side.location.encode()), where.get(side.side.encode())
            value = converted.get(side.field, [None] * (n + 1))[n]
            if None not in (at, side_at, value) and original[at] is not None:
                expanded[side_at] = value
        for move in self.rewrites.moves:
            old, new = where.get(move.old_location.encode()), where.get(move.new_location.encode())
            if None in (old, new) or original[old] is None:
                continue
            value = original[old]
            for quant in self.rewrites.quantize:
                if quant.source_location == move.old_location:
                    value = converted[quant.field][n]
            if value is not None:
                expanded[new] = value
        converted_state = list(expanded)
        for side in self.layout.side_fields:
            at, side_at = where.get(side.location.encode()), where.get(side.side.encode())
            if None not in (at, side_at) and expanded[side_at] is not None:
                converted_state[at] = expanded[side_at]
        return [expanded, converted_state]

    def _written(self) -> Dict[bytes, bytes]:
        """The locations an online rewrite writes beside the application's (side fields, renamed fields' new
        names), each with the old location it stands beside."""
        found = {m.new_location.encode(): m.old_location.encode() for m in self.rewrites.moves}
        return {**found, **{side.side.encode(): side.location.encode() for side in self.layout.side_fields}}

    def _expanded(self, records: List[Record]) -> List[list]:
        """Each record's document as expand leaves it (the new bytes beside the originals)."""
        converted = self._converted(records)
        found = []
        for n, record in enumerate(records):
            where = {name: i for i, (name, _value) in enumerate(record.entries)}
            found.append(self._online_states([value for _name, value in record.entries], where, converted, n)[0])
        return found

    def unexpand(self, records: List[Record], storage: bytes) -> List[List[bytes]]:
        """ONLINE_UNEXPAND's arguments per record: what the migration wrote beside the originals, to remove."""
        written = self._written()
        rows = []
        for record, expanded in zip(records, self._expanded(records)):
            args = [storage, b"0"]
            for i, (name, value) in enumerate(record.entries):
                if name in written and expanded[i] is not None:
                    args += [name, expanded[i], value if value is not None else b"", written[name]]
            rows.append(args)
        return rows

    def _caught_up(self, record: Record, earlier: List[Record]) -> List[list]:
        """A document an online rewrite's catch-up recorded again (`earlier`: its superseded records): the
        state a catch-up killed between recording it and writing it leaves - the application's last write at
        the old locations, an earlier record's expanded bytes where the migration writes."""
        if not earlier or self.layout is None or self.layout.copy_keys:
            return []
        written = self._written()
        return [
            [expanded[i] if name in written else value for i, (name, value) in enumerate(record.entries)]
            for expanded in self._expanded(earlier)
        ]

    def arguments(
        self, records: List[Record], earlier: Optional[Dict[bytes, List[Record]]] = None
    ) -> List[List[bytes]]:
        """`earlier`: the superseded records of documents a catch-up recorded again, by key."""
        earlier = earlier or {}
        converted = self._converted(records)
        # A hash field the migration renamed takes its place back (scripts.RENAME_FIELD): the original order.
        takes = (
            {}
            if self.rewrites.storage == "json"
            else {m.old_location.encode(): b"@" + m.new_location.encode() for m in self.rewrites.moves}
        )
        rows = []
        for n, record in enumerate(records):
            original = [value for _name, value in record.entries]
            where = {name: i for i, (name, _value) in enumerate(record.entries)}
            moved = list(original)
            for move in self.rewrites.moves:
                old, new = where.get(move.old_location.encode()), where.get(move.new_location.encode())
                # The move phase moves a value only onto nothing or onto the same value.
                if None not in (old, new) and original[old] is not None and original[new] in (None, original[old]):
                    moved[old], moved[new] = None, original[old]
            quantized = list(moved)
            for quant in self.rewrites.quantize:
                at, source = where.get(quant.location.encode()), where.get(quant.source_location.encode())
                # The quantize phase writes only where the original source value is (its SHA1 check).
                value = converted[quant.field][n]
                if None not in (at, source, value) and moved[at] == original[source]:
                    quantized[at] = converted[quant.field][n]
            states = [moved, quantized, *self._online_states(original, where, converted, n)]
            states += self._caught_up(record, earlier.get(record.key, []))
            others = {state_digest(state) for state in states if state != original}
            args = [state_digest(original), str(len(others)).encode(), *sorted(others)]
            for name, value in record.entries:
                args += [name, value if value is not None else b"", b"1" if value is None else takes.get(name, b"0")]
            rows.append(args)
        return rows
