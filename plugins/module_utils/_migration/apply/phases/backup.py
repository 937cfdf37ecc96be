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

With workers > 1, forked processes read, check and encode the batches (process_batch, the same code
as in one process) while this one enumerates the keys and writes the blocks in enumeration order
(backup/workers.py): the files, their checksums, the quality sample and the fitted scale are those
of a single process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ...backup.format import encode_record
from ...backup.workers import OrderedPool
from ...core import failpoints
from ...core.errors import PreflightFailed
from ...planning.planner import whole_prefix
from ...redis.keyspace import iter_keys, key_to_text
from ...redis.snapshot import read_info
from ...redis.stats import stats_from_info
from ...redis.wire import Wire, read_values
from ...vectors.codec import check_overflow, convert_batch
from ...vectors.datatypes import INT_DATATYPES, expected_length
from ...vectors.fitting import RangeStats, fit_quant_params
from ...vectors.quality import quality_report
from ...vectors.quantization import QuantParams
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
    for i, value in zip(
        present,
        convert_batch([originals[i] for i in present], quant.source, quant.target, quant.dims, params)
        if present
        else [],
    ):
        converted[i] = value
    return converted


def staged_records(rewrites, records: list, params: Dict[str, QuantParams]) -> List[bytes]:
    """The staged (converted) records of backup records: what staged.bin holds beside their block."""
    names = [q.location.encode() for q in rewrites.quantize]
    columns = [
        _convert(q, [r.value(q.source_location.encode()) for r in records], params.get(q.field))
        for q in rewrites.quantize
    ]
    return [_staged_record(r.key, [column[i] for column in columns], names) for i, r in enumerate(records)]


def stage_from_backup(store, rewrites, params: Dict[str, QuantParams]) -> None:
    """Second pass (int8/uint8): convert data.bin's originals block by block into staged.bin."""
    writer = store.staged_writer()
    for _block_no, records in store.iter_blocks():
        writer.write_block(staged_records(rewrites, records, params))
    writer.close()
    record_staged(store.header, writer)


def record_data(header, writer) -> None:
    header.data_blocks, header.data_records = writer.blocks, writer.records
    header.data_bytes, header.data_chain = writer.bytes, writer.chain


def record_staged(header, writer) -> None:
    header.staged_blocks, header.staged_records = writer.blocks, writer.records
    header.staged_bytes, header.staged_chain = writer.bytes, writer.chain


@dataclass(frozen=True)
class BatchWork:
    """What every batch needs to know of the migration; built once (forked workers inherit it)."""

    locations: Tuple[str, ...]
    json_storage: bool
    quantize: tuple
    position: Dict[str, int]
    inline: bool  # float targets: converted and staged in the same pass

    @classmethod
    def of(cls, rewrites, entries=None) -> "BatchWork":
        """`entries`: the plan's backup_entries (the rewrites' and an online migration's side fields)."""
        entries = rewrites.backup_entries() if entries is None else entries
        locations = tuple(location for location, _size, _absent in entries)
        # int8/uint8 need the scale over every value first: they are staged by a second pass.
        inline = bool(rewrites.quantize) and not any(q.target in INT_DATATYPES for q in rewrites.quantize)
        return cls(
            locations,
            rewrites.storage == "json",
            tuple(rewrites.quantize),
            {location: i for i, location in enumerate(locations)},
            inline,
        )

    @property
    def names(self) -> List[bytes]:
        return [location.encode() for location in self.locations]

    @property
    def staged_names(self) -> List[bytes]:
        return [q.location.encode() for q in self.quantize]


@dataclass
class BatchResult:
    """One batch, ready to write: its backup records, its staged records (None when not staged now,
    or when the batch cannot be converted) and what the checks found in it."""

    records: List[bytes]
    staged: Optional[List[bytes]] = None
    malformed_count: int = 0
    malformed: List[dict] = field(default_factory=list)
    overflow_count: int = 0
    overflow_first: Optional[str] = None
    samples: Dict[str, List[bytes]] = field(default_factory=dict)


def process_batch(
    wire: Wire, keys: List[bytes], work: BatchWork, ranges: Dict[str, RangeStats], room: Dict[str, int]
) -> BatchResult:
    """Read one batch's values, check them and encode its records (and for float targets its staged
    records). Feeds `ranges` (int8/uint8 fields) in place; returns up to `room[field]` of the batch's
    good vectors as quality samples. The same in this process and in a worker."""
    rows = read_values(wire, keys, work.locations, work.json_storage) if work.locations else [[] for _k in keys]
    names = work.names
    result = BatchResult([encode_record(key, list(zip(names, row))) for key, row in zip(keys, rows)])
    _check_batch(keys, rows, work, ranges, room, result)
    if work.inline and not (result.malformed_count or result.overflow_count):
        columns = [_convert(q, [row[work.position[q.source_location]] for row in rows]) for q in work.quantize]
        staged_names = work.staged_names
        result.staged = [
            _staged_record(key, [column[i] for column in columns], staged_names) for i, key in enumerate(keys)
        ]
    return result


class Findings:
    """What the checks found over the whole pass, taken in batch by batch in enumeration order (so
    the quality sample and the listed keys are the same whatever the number of workers)."""

    def __init__(self, fields: List[str]):
        self.malformed_count = self.overflow_count = 0
        self.malformed: List[dict] = []
        self.overflow_first: Optional[str] = None
        self.samples: Dict[str, List[bytes]] = {name: [] for name in fields}

    @property
    def clean(self) -> bool:
        return not (self.malformed_count or self.overflow_count)

    def room(self) -> Dict[str, int]:
        """Quality samples still wanted per field: what a batch sent now need return at most."""
        return {name: QUALITY_SAMPLE - len(values) for name, values in self.samples.items()}

    def add(self, result: BatchResult) -> None:
        self.malformed_count += result.malformed_count
        self.malformed.extend(result.malformed[: max(0, MAX_LISTED - len(self.malformed))])
        self.overflow_count += result.overflow_count
        self.overflow_first = self.overflow_first or result.overflow_first
        for name, values in result.samples.items():
            self.samples[name].extend(values[: max(0, QUALITY_SAMPLE - len(self.samples[name]))])

    def raise_for(self) -> None:
        _raise_for(self.malformed_count, self.malformed, self.overflow_count, self.overflow_first)


def read_pass(
    client,
    connect: Callable[[], Any],
    batches: Iterator[List[bytes]],
    work: BatchWork,
    ranges: Dict[str, RangeStats],
    findings: Findings,
    workers: int,
    write: Callable[[BatchResult], None],
) -> None:
    """Process every batch of keys and hand each result to `write` in enumeration order, after
    `findings` has taken it in. With `workers` > 1 (and more than one batch) forked workers read,
    check and encode while this process enumerates and writes; `ranges` then gets their statistics
    merged at the end."""
    head = list(islice(batches, 2))
    batches = chain(head, batches)
    if workers <= 1 or len(head) < 2:
        with Wire(client) as wire:
            for keys in batches:
                result = process_batch(wire, keys, work, ranges, findings.room())
                findings.add(result)
                write(result)
        return

    def start():
        worker_client = connect()
        return worker_client, Wire(worker_client), {name: RangeStats() for name in ranges}

    def batch(state, task):
        keys, room = task
        return process_batch(state[1], keys, work, state[2], room)

    def finish(state):
        state[1].close()
        return state[2]

    with OrderedPool(
        workers,
        start,
        batch,
        finish,
        name="backup",
        hint="fix the cause, then re-run the same task: the backup starts again",
    ) as pool:
        # The room is read when a batch is sent: an upper bound of what is still wanted when its result
        # is taken in, which keeps only what a single process would have kept.
        for result in pool.map((keys, findings.room()) for keys in batches):
            findings.add(result)
            write(result)
        for part in pool.finish():
            for name, stats in part.items():
                ranges[name].merge(stats)


class _Output:
    """data.bin and staged.bin, written block by block in enumeration order. Opened at the first block,
    once any workers are forked (a forked process must not inherit buffered writes)."""

    def __init__(self, ctx: Context, inline: bool, findings: Findings):
        self.ctx, self.inline, self.findings = ctx, inline, findings
        self.data = self.staged = None
        self.documents = 0

    def _open(self) -> None:
        if self.data is None:
            self.data = self.ctx.store.data_writer()
            self.staged = self.ctx.store.staged_writer() if self.inline else None

    def write(self, result: BatchResult) -> None:
        self._open()
        self.data.write_block(result.records)
        if self.staged is not None and self.findings.clean:
            self.staged.write_block(result.staged)
        self.documents += len(result.records)
        self.ctx.progress("backup", documents=self.documents, blocks=self.data.blocks, bytes=self.data.bytes)
        failpoints.hit("backup", self.data.blocks)

    def close(self) -> None:
        self._open()
        self.data.close()
        if self.staged is not None:
            self.staged.close()


def source_documents(ctx: Context) -> Iterator[List[bytes]]:
    """The source's documents in batches of keys: the index's own, or every key under its prefixes when it failed
    some or has not reached them all (planner.whole_prefix)."""
    live = stats_from_info(read_info(ctx.client, ctx.source.name))
    return iter_keys(
        ctx.client,
        ctx.source.name,
        ctx.source.index.prefix,
        ctx.source.storage,
        whole_prefix(ctx.source, live),
        ctx.options.batch_size,
    )


def run(ctx: Context) -> None:
    plan, store, client = ctx.plan, ctx.store, ctx.client
    rewrites = plan.rewrites
    work = BatchWork.of(rewrites, plan.backup_entries())
    ranges: Dict[str, RangeStats] = {q.field: RangeStats() for q in rewrites.quantize if q.target in INT_DATATYPES}
    findings = Findings([q.field for q in rewrites.quantize])
    output = _Output(ctx, work.inline, findings)
    read_pass(client, ctx.connect, source_documents(ctx), work, ranges, findings, ctx.options.workers, output.write)
    output.close()
    findings.raise_for()
    writer, staged, documents = output.data, output.staged, output.documents

    header = store.header
    record_data(header, writer)
    if staged is not None:
        record_staged(header, staged)
    fitted: Dict[str, QuantParams] = {}
    for quant in rewrites.quantize:
        params = None
        if quant.field in ranges:
            try:
                params = fit_quant_params(quant.target, quant.metric, ranges[quant.field], source_datatype=quant.source)
            except ValueError as err:
                raise PreflightFailed(
                    f"cannot quantize {quant.field!r} to {quant.target}: {err}; nothing was changed"
                ) from None
            header.quant_params[quant.field] = params.to_dict()
            fitted[quant.field] = params
        if findings.samples[quant.field]:
            header.quality[quant.field] = quality_report(
                findings.samples[quant.field], quant.source, quant.target, quant.dims, quant.metric, params
            )
    if rewrites.quantize and staged is None:
        stage_from_backup(store, rewrites, fitted)
    ctx.progress("backup", force=True, documents=documents, blocks=writer.blocks, bytes=writer.bytes)


def _check_batch(keys, rows, work: BatchWork, ranges, room, result: BatchResult) -> None:
    """Counts the batch's malformed vectors and values that would overflow into `result`, with its
    quality samples; feeds the int8/uint8 ranges."""
    for quant in work.quantize:
        index = work.position[quant.source_location]
        want = expected_length(quant.source, quant.dims)
        good = []
        for key, row in zip(keys, rows):
            value = row[index]
            if value is None:
                continue
            if len(value) != want:
                result.malformed_count += 1
                if len(result.malformed) < MAX_LISTED:
                    result.malformed.append(
                        {"key": key_to_text(key), "field": quant.field, "bytes": len(value), "expected": want}
                    )
                continue
            good.append(value)
        if good and not result.malformed_count:
            # Integer targets clip to their fitted range instead (not known before the whole pass).
            found = (
                {} if quant.target in INT_DATATYPES else check_overflow(good, quant.source, quant.target, quant.dims)
            )
            if found.get("overflow"):
                result.overflow_count += found["overflow"]
                result.overflow_first = result.overflow_first or quant.field
            if quant.field in ranges:
                ranges[quant.field].update_buffers(good, quant.source, quant.dims)
            if room.get(quant.field, 0) > 0:
                result.samples[quant.field] = good[: room[quant.field]]


def _raise_for(malformed_count, malformed, overflow_count, overflow_first) -> None:
    if malformed_count:
        raise PreflightFailed(
            f"{malformed_count} document(s) hold vectors of the wrong size (first: {malformed[0]['key']} "
            f"{malformed[0]['field']}: {malformed[0]['bytes']} bytes, expected {malformed[0]['expected']}); "
            "nothing was changed",
            hint="fix or delete those documents, then re-run",
            details={"malformed": malformed},
        )
    if overflow_count:
        raise PreflightFailed(
            f"{overflow_count} value(s) of {overflow_first!r} are too large for the target datatype and would become "
            "infinite; nothing was changed",
            hint="choose a wider datatype (bfloat16 keeps float32's range)",
        )
