# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phase `backup`: enumerate the documents, write every byte the migration will change, and stage
the converted vectors.

Runs while the source index is still live and before any mutation, so a crash here only means
starting the phase again. The same pass finds what would stop the migration half-way - vectors of
the wrong size, float values a narrower type cannot hold - fits the int8/uint8 scale over all
values, and measures the conversion's quality on a sample, so all of it is known before the drop.

It also converts every vector and stages the result in staged.bin, block for block beside data.bin
(same keys, same order, its own checksums), so that after the drop the quantize phase only writes:
the reading, checking and converting all happen while the index still serves. Float targets are
converted in the same pass; int8/uint8 ones in a second pass over data.bin, once their scale,
which needs every value, is known.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from .. import failpoints
from ..backup_format import encode_record
from ..codec import INT_DATATYPES, QuantParams, RangeStats, check_overflow, convert_batch, expected_length, fit_quant_params
from ..errors import PreflightFailed
from ..keyspace import iter_keys, key_to_text
from ..planner import whole_prefix
from ..quality import quality_report
from ..snapshot import read_info
from ..stats import stats_from_info
from ..wire import Wire, read_values
from .context import Context

QUALITY_SAMPLE = 1000
MAX_LISTED = 10


def _staged_record(key: bytes, converted: List[Optional[bytes]], names: List[bytes]) -> bytes:
    return encode_record(key, list(zip(names, converted)))


def _convert(quant, originals: List[Optional[bytes]], params=None) -> List[Optional[bytes]]:
    """Each original's conversion (None where the document holds no vector of the right size)."""
    want = expected_length(quant.source, quant.dims)
    present = [i for i, value in enumerate(originals) if value is not None and len(value) == want]
    converted: List[Optional[bytes]] = [None] * len(originals)
    for i, value in zip(present, convert_batch([originals[i] for i in present], quant.source, quant.target,
                                               quant.dims, params) if present else []):
        converted[i] = value
    return converted


def stage_from_backup(store, rewrites, params: Dict[str, QuantParams]) -> None:
    """Second pass (int8/uint8): convert data.bin's originals block by block into staged.bin."""
    names = [q.location.encode() for q in rewrites.quantize]
    writer = store.staged_writer()
    for _block_no, records in store.iter_blocks():
        columns = [_convert(q, [r.value(q.source_location.encode()) for r in records], params.get(q.field))
                   for q in rewrites.quantize]
        writer.write_block([_staged_record(r.key, [column[i] for column in columns], names)
                            for i, r in enumerate(records)])
    writer.close()
    _record_staged(store.header, writer)


def _record_staged(header, writer) -> None:
    header.staged_blocks, header.staged_records = writer.blocks, writer.records
    header.staged_bytes, header.staged_chain = writer.bytes, writer.chain


def run(ctx: Context) -> None:
    plan, store, client = ctx.plan, ctx.store, ctx.client
    rewrites = plan.rewrites
    entries = rewrites.backup_entries()
    locations = [location for location, _size, _absent in entries]
    json_storage = rewrites.storage == "json"
    position = {location: i for i, location in enumerate(locations)}
    ranges: Dict[str, RangeStats] = {q.field: RangeStats() for q in rewrites.quantize if q.target in ("int8", "uint8")}
    samples: Dict[str, List[bytes]] = {q.field: [] for q in rewrites.quantize}
    malformed: List[dict] = []
    malformed_count = overflow_count = 0
    overflow_first = None
    live = stats_from_info(read_info(client, ctx.source.name))
    scan = whole_prefix(ctx.source, live)

    writer = store.data_writer()
    # Float targets convert now; int8/uint8 need the scale over every value first (a second pass).
    inline = bool(rewrites.quantize) and not ranges
    staged = store.staged_writer() if inline else None
    staged_names = [q.location.encode() for q in rewrites.quantize]
    documents = 0
    wire = Wire(client)
    try:
        for keys in iter_keys(client, ctx.source.name, ctx.source.index.prefix, ctx.source.storage, scan,
                              ctx.options.batch_size):
            rows = read_values(wire, keys, locations, json_storage) if locations else [[] for _k in keys]
            found = _check_batch(keys, rows, rewrites, position, ranges, samples, malformed)
            malformed_count += found[0]
            if found[1]:
                overflow_count += found[1]
                overflow_first = overflow_first or found[2]
            writer.write_block([encode_record(key, [(loc.encode(), value) for loc, value in zip(locations, row)])
                                for key, row in zip(keys, rows)])
            if staged is not None and not (malformed_count or overflow_count):
                columns = [_convert(q, [row[position[q.source_location]] for row in rows]) for q in rewrites.quantize]
                staged.write_block([_staged_record(key, [column[i] for column in columns], staged_names)
                                    for i, key in enumerate(keys)])
            documents += len(keys)
            ctx.progress("backup", documents=documents, blocks=writer.blocks, bytes=writer.bytes)
            failpoints.hit("backup", writer.blocks)
    finally:
        wire.close()
    writer.close()
    if staged is not None:
        staged.close()
    _raise_for(malformed_count, malformed, overflow_count, overflow_first)

    header = store.header
    header.data_blocks, header.data_records = writer.blocks, writer.records
    header.data_bytes, header.data_chain = writer.bytes, writer.chain
    if staged is not None:
        _record_staged(header, staged)
    fitted: Dict[str, QuantParams] = {}
    for quant in rewrites.quantize:
        params = None
        if quant.field in ranges:
            try:
                params = fit_quant_params(quant.target, quant.metric, ranges[quant.field], source_datatype=quant.source)
            except ValueError as err:
                raise PreflightFailed(f"cannot quantize {quant.field!r} to {quant.target}: {err}; nothing was changed")
            header.quant_params[quant.field] = params.to_dict()
            fitted[quant.field] = params
        if samples[quant.field]:
            header.quality[quant.field] = quality_report(samples[quant.field], quant.source, quant.target, quant.dims,
                                                         quant.metric, params)
    if rewrites.quantize and staged is None:
        stage_from_backup(store, rewrites, fitted)
    ctx.progress("backup", force=True, documents=documents, blocks=writer.blocks, bytes=writer.bytes)


def _check_batch(keys, rows, rewrites, position, ranges, samples, malformed) -> tuple:
    """(malformed vectors, values that would overflow, the first field that would) of one batch; feeds
    the int8/uint8 ranges and the quality samples."""
    malformed_count = overflow_count = 0
    overflow_first = None
    for quant in rewrites.quantize:
        index = position[quant.source_location]
        want = expected_length(quant.source, quant.dims)
        good = []
        for key, row in zip(keys, rows):
            value = row[index]
            if value is None:
                continue
            if len(value) != want:
                malformed_count += 1
                if len(malformed) < MAX_LISTED:
                    malformed.append({"key": key_to_text(key), "field": quant.field, "bytes": len(value),
                                      "expected": want})
                continue
            good.append(value)
        if good and not malformed_count:
            # Integer targets clip to their fitted range instead (not known before the whole pass).
            found = {} if quant.target in INT_DATATYPES else check_overflow(good, quant.source, quant.target, quant.dims)
            if found.get("overflow"):
                overflow_count += found["overflow"]
                overflow_first = overflow_first or quant.field
            if quant.field in ranges:
                ranges[quant.field].update_buffers(good, quant.source, quant.dims)
            room = QUALITY_SAMPLE - len(samples[quant.field])
            samples[quant.field].extend(good[:max(room, 0)])
    return malformed_count, overflow_count, overflow_first


def _raise_for(malformed_count, malformed, overflow_count, overflow_first) -> None:
    if malformed_count:
        raise PreflightFailed(
            f"{malformed_count} document(s) hold vectors of the wrong size (first: {malformed[0]['key']} "
            f"{malformed[0]['field']}: {malformed[0]['bytes']} bytes, expected {malformed[0]['expected']}); "
            "nothing was changed",
            hint="fix or delete those documents, then re-run", details={"malformed": malformed})
    if overflow_count:
        raise PreflightFailed(
            f"{overflow_count} value(s) of {overflow_first!r} are too large for the target datatype and would become "
            "infinite; nothing was changed", hint="choose a wider datatype (bfloat16 keeps float32's range)")
