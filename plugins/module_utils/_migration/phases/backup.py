# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Phase `backup`: enumerate the documents and write every byte the migration will change.

Runs while the source index is still live and before any mutation, so a crash here only means
starting the phase again. The same pass finds what would stop the migration half-way - vectors of
the wrong size, float values a narrower type cannot hold - fits the int8/uint8 scale over all
values, and measures the conversion's quality on a sample, so all of it is known before the drop.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from .. import failpoints
from ..backup_format import encode_record
from ..codec import RangeStats, check_overflow, expected_length, fit_quant_params
from ..errors import PreflightFailed
from ..keyspace import iter_keys, key_to_text
from ..planner import whole_prefix
from ..quality import quality_report
from ..snapshot import read_info
from ..stats import stats_from_info
from .context import Context

QUALITY_SAMPLE = 1000
MAX_LISTED = 10


def _read(client, keys: List[bytes], locations: List[str], json_storage: bool) -> List[List[Optional[bytes]]]:
    """Values at `locations` for each key, one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    single = len(locations) == 1
    for key in keys:
        if json_storage:
            for location in locations:
                pipe.execute_command("JSON.GET", key, location)
        elif single:
            pipe.hget(key, locations[0])  # a bulk reply parses faster than a one-element array
        else:
            pipe.hmget(key, locations)
    replies = pipe.execute()
    if not json_storage:
        return [[row] for row in replies] if single else [list(row) for row in replies]
    step = len(locations)
    rows = []
    for i in range(len(keys)):
        row = replies[i * step:(i + 1) * step]
        rows.append([None if v in (None, b"[]") else (v if isinstance(v, bytes) else str(v).encode()) for v in row])
    return rows


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
    documents = 0
    for keys in iter_keys(client, ctx.source.name, ctx.source.index.prefix, ctx.source.storage, scan,
                          ctx.options.batch_size):
        rows = _read(client, keys, locations, json_storage) if locations else [[] for _k in keys]
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
                found = check_overflow(good, quant.source, quant.target, quant.dims)
                if found.get("overflow"):
                    overflow_count += found["overflow"]
                    overflow_first = overflow_first or quant.field
                if quant.field in ranges:
                    ranges[quant.field].update_buffers(good, quant.source, quant.dims)
                room = QUALITY_SAMPLE - len(samples[quant.field])
                samples[quant.field].extend(good[:max(room, 0)])
        writer.write_block([encode_record(key, [(loc.encode(), value) for loc, value in zip(locations, row)])
                            for key, row in zip(keys, rows)])
        documents += len(keys)
        ctx.progress("backup", documents=documents, blocks=writer.blocks, bytes=writer.bytes)
        failpoints.hit("backup", writer.blocks)
    writer.close()

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

    header = store.header
    header.data_blocks, header.data_records = writer.blocks, writer.records
    header.data_bytes, header.data_chain = writer.bytes, writer.chain
    for quant in rewrites.quantize:
        params = None
        if quant.field in ranges:
            try:
                params = fit_quant_params(quant.target, quant.metric, ranges[quant.field], source_datatype=quant.source)
            except ValueError as err:
                raise PreflightFailed(f"cannot quantize {quant.field!r} to {quant.target}: {err}; nothing was changed")
            header.quant_params[quant.field] = params.to_dict()
        if samples[quant.field]:
            header.quality[quant.field] = quality_report(samples[quant.field], quant.source, quant.target, quant.dims,
                                                         quant.metric, params)
    ctx.progress("backup", force=True, documents=documents, blocks=writer.blocks, bytes=writer.bytes)
