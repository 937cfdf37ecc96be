# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A migration's backup directory: header (state machine), plan copy, data file, progress ledgers.

    <backup_dir>/<index>-<plan id>[-<attempt>]/     mode 0700
        header.json     phase states and counters, identity hashes of the plan; replaced atomically
                        (temporary file, fsync, rename, fsync of the directory) and self-checksummed
        plan.yaml       the plan this backup belongs to (rollback recreates the source from it)
        data.bin        every byte the migration mutates, before it does (format.py)
        ledger-<phase>-<worker>.log
                        numbers of the data blocks a mutation phase has applied
    every file mode 0600

A backup directory belongs to exactly one plan: another plan gets another directory, and a backup
is never deleted or overwritten by this collection. Re-applying a plan after it was rolled back
starts a new attempt directory, so the first backup stays intact.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import re
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Optional, Tuple

from ..core.deps import BaseModel, Field
from ..core.errors import BackupInvalid, PlanInvalid, PreflightFailed
from ..core.files import DIR_MODE, FILE_MODE, fsync_dir, write_atomic
from ..core.sealed import RecordKind, SealedRecord
from ..core.yamlio import read_written_yaml
from .format import (
    BLOCK_HEADER_SIZE,
    EMPTY_CHAIN,
    FormatError,
    Record,
    block_digest,
    chain,
    decode_records,
    encode_block,
    iter_blocks,
    write_file_magic,
)

HEADER_FORMAT = "indexops.redis_search/backup"
HEADER_VERSION = 1
HEADER = "header.json"
PLAN = "plan.yaml"
DATA = "data.bin"
# The converted vectors, made while the source index still serves, block for block beside data.bin,
# so that after the drop the quantize phase only writes.
STAGED = "staged.bin"
# Every phase either mode can run (an online migration: create, wait, validate, swap; one that rewrites
# documents also expand, catch_up, convert, rebuild, swap_final and contract).
PHASES = (
    "backup",
    "drop",
    "move_fields",
    "rename_keys",
    "quantize",
    "expand",
    "create",
    "wait",
    "validate",
    "side_by_side",
    "catch_up",
    "swap",
    "convert",
    "rebuild",
    "swap_final",
    "contract",
)


# The step of an online migration each phase belongs to, as redis_index_info shows it (expand, build, swap,
# contract). A drop_recreate migration (its drop started) and the backup are shown by phase.
STEPS = {
    "expand": "expand",
    "create": "build",
    "wait": "build",
    "validate": "build",
    "side_by_side": "side_by_side",
    "catch_up": "catch_up",
    "swap": "swap",
    "convert": "contract",
    "rebuild": "build",
    "swap_final": "swap",
    "contract": "contract",
}


def documents_of(header: "BackupHeader") -> int:
    """The documents the backup holds, each once: a catch-up's newer record of a key supersedes the earlier."""
    catch_up = header.phases.get("catch_up")
    return header.data_records - int(catch_up.counters.get("superseded", 0) if catch_up is not None else 0)


def step_of(header: "BackupHeader") -> str:
    """The step a migration is in (or stopped in), or its status once it is over."""
    if header.status in ("completed", "rolled_back", "rolling_back", "side_by_side"):
        return header.status
    drop = header.phases.get("drop")
    if drop is not None and drop.started_at:
        return header.phase
    return STEPS.get(header.phase, header.phase)


class PhaseState(BaseModel):
    done: bool = False
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    seconds: float = 0.0
    counters: Dict[str, Any] = Field(default_factory=dict)


class BackupHeader(SealedRecord):
    KIND: ClassVar[RecordKind] = RecordKind(
        HEADER_FORMAT,
        HEADER_VERSION,
        "backup header",
        "backup header",
        BackupInvalid,
        "the backup cannot be trusted; restore the directory from a copy",
    )

    format: str = HEADER_FORMAT
    format_version: int = HEADER_VERSION
    plan_checksum: str
    plan_id: str
    attempt: int = 1
    source_index: str
    target_index: str
    storage: str
    batch_size: int
    status: str = "running"  # running | failed | side_by_side | completed | rolling_back | rolled_back
    phase: str = "preflight"
    phases: Dict[str, PhaseState] = Field(default_factory=lambda: {p: PhaseState() for p in PHASES})
    # data.bin once the backup phase finished: the numbers it is verified against before any use.
    data_blocks: int = 0
    data_records: int = 0
    data_bytes: int = 0
    data_chain: str = EMPTY_CHAIN
    # staged.bin, the same way (0 blocks: nothing staged - a backup made before staging existed).
    staged_blocks: int = 0
    staged_records: int = 0
    staged_bytes: int = 0
    staged_chain: str = EMPTY_CHAIN
    # An online rewrite's catch-up (apply/phases/catch_up.py) appends blocks to both files: the first of them
    # (None: none appended). Their records supersede the earlier records of the same keys (backup/newest.py).
    catch_up_from: Optional[int] = None
    aliases: List[str] = Field(default_factory=list)
    quant_params: Dict[str, Any] = Field(default_factory=dict)
    quality: Dict[str, Any] = Field(default_factory=dict)
    error: Optional[Dict[str, Any]] = None
    rollback: Dict[str, Any] = Field(default_factory=dict)


def safe_name(index: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", index)[:80] or "index"


def check_backup_dir(path: Optional[str]) -> str:
    """The backup directory must exist (or be creatable), be a directory and be writable."""
    if not path:
        raise PreflightFailed("a backup directory is required", hint="set backup_dir to a writable directory")
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise PreflightFailed(
            f"backup_dir {path} exists and is not a directory", hint="point backup_dir at a directory"
        )
    try:
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    except OSError as err:
        raise PreflightFailed(
            f"cannot create backup_dir {path}: {err.strerror}",
            hint="create it, or choose a directory the module's user can write",
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PreflightFailed(
            f"backup_dir {path} is not writable by this user", hint="fix its permissions or choose another directory"
        )
    return path


def existing_backup_dir(path: str) -> str:
    """A backup directory that must already exist (rollback reads it; it never creates one)."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise BackupInvalid(
            f"backup_dir {path} does not exist or is not a directory",
            hint="point backup_dir at the directory the migration used",
        )
    return path


def read_header(directory: str) -> BackupHeader:
    path = os.path.join(directory, HEADER)
    try:
        header = BackupHeader.read_from(path)
    except (OSError, ValueError) as err:
        raise BackupInvalid(
            f"backup header {path} is unreadable: {err}",
            hint="the backup is damaged; restore the directory from a copy",
        ) from None
    return header.verified(path)


def list_backups(backup_dir: str) -> List[Tuple[str, Optional[BackupHeader], Optional[str]]]:
    """(directory, header or None, error or None) for every backup in `backup_dir`, oldest first (by
    creation time, then attempt - never by name: a plan id says nothing about age); a damaged backup
    is listed with its error instead of stopping the listing."""

    def age(entry: Tuple[str, Optional[BackupHeader], Optional[str]]) -> Tuple[datetime.datetime, int, str]:
        # A backup whose header cannot be read sorts by its directory's last change (each header save
        # of a running migration renames a file into it), so a damaged running one still sorts last.
        directory, header, _error = entry
        when = None
        if header is not None:
            try:
                when = datetime.datetime.fromisoformat(header.created_at)
            except ValueError:
                pass
        if when is None:
            try:
                when = datetime.datetime.fromtimestamp(os.stat(directory).st_mtime, datetime.timezone.utc)
            except OSError:
                when = datetime.datetime.min
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return when, header.attempt if header is not None else 0, os.path.basename(directory)

    found = []
    if not os.path.isdir(backup_dir):
        return found
    for name in os.listdir(backup_dir):
        directory = os.path.join(backup_dir, name)
        if not os.path.isfile(os.path.join(directory, HEADER)):
            continue
        try:
            found.append((directory, read_header(directory), None))
        except BackupInvalid as err:
            found.append((directory, None, str(err)))
    found.sort(key=age)
    return found


def requested_as(directory: str) -> Optional[str]:
    """The name the migration's task gave (an index or its alias), from the plan kept beside the backup. An
    online migration swaps in a new index under the name clients use (products -> products--v3, then --v5),
    so this, not source_index, is what its migrations of one index share. None when the plan is unreadable."""
    try:
        plan = read_written_yaml(os.path.join(directory, PLAN), "plan file", "")
    except PlanInvalid:
        return None
    source = plan.get("source") if isinstance(plan, dict) else None
    name = source.get("requested_as") if isinstance(source, dict) else None
    return name if isinstance(name, str) else None


def describe_backups(backup_dir: str, index: Optional[str] = None) -> List[Dict[str, Any]]:
    """Each backup's identity, status, phase and progress (for redis_index_info), oldest first by
    creation time, so `last` is the newest migration."""
    found = []
    for directory, header, error in list_backups(backup_dir):
        if header is None:
            found.append({"path": directory, "status": "unreadable", "error": error})
            continue
        named = requested_as(directory) or header.source_index
        if index and index not in (header.source_index, header.target_index, named):
            continue
        done = [name for name in PHASES if name in header.phases and header.phases[name].done]
        found.append(
            {
                "path": directory,
                "source_index": header.source_index,
                "target_index": header.target_index,
                "requested_as": named,
                "plan_id": header.plan_id,
                "attempt": header.attempt,
                "status": header.status,
                "phase": header.phase,
                "step": step_of(header),
                "phases_done": done,
                "progress": {
                    name: header.phases[name].counters
                    for name in PHASES
                    if name in header.phases and header.phases[name].counters
                },
                "documents": documents_of(header),
                "backup_bytes": header.data_bytes,
                "created_at": header.created_at,
                "updated_at": header.updated_at,
                "error": header.error,
            }
        )
    return found


class VerifyResult(BaseModel):
    ok: bool
    blocks: int = 0
    records: int = 0
    bytes: int = 0
    truncated: bool = False
    problems: List[str] = Field(default_factory=list)
    bad_blocks: List[int] = Field(default_factory=list)
    bad_records: List[List[int]] = Field(default_factory=list)  # [block, record index]


class BackupStore:
    """One migration's backup directory."""

    def __init__(self, directory: str, header: BackupHeader):
        self.directory = directory
        self.header = header

    # -- creation and lookup ----------------------------------------------------------------------
    @classmethod
    def create(cls, backup_dir: str, header: BackupHeader, plan_yaml: str) -> "BackupStore":
        name = f"{safe_name(header.source_index)}-{header.plan_id}"
        if header.attempt > 1:
            name += f"-{header.attempt}"
        directory = os.path.join(backup_dir, name)
        try:
            os.mkdir(directory, DIR_MODE)
        except OSError as err:
            if err.errno == errno.EEXIST:
                raise PreflightFailed(
                    f"backup directory {directory} already exists and is not this plan's",
                    hint="it is never overwritten; choose another backup_dir",
                ) from None
            raise
        os.chmod(directory, DIR_MODE)
        fsync_dir(backup_dir)
        store = cls(directory, header)
        write_atomic(os.path.join(directory, PLAN), plan_yaml.encode("utf-8"))
        store.save()
        return store

    @classmethod
    def for_plan(cls, backup_dir: str, plan_checksum: str) -> Optional["BackupStore"]:
        """The newest attempt's backup of this plan, if any. A damaged backup whose directory carries
        this plan's id is refused (BackupInvalid): resuming or restarting over it could lose data."""
        plan_id = plan_checksum.split(":", 1)[-1][:12]
        entries = list_backups(backup_dir)
        for directory, header, error in entries:
            if header is None and plan_id in os.path.basename(directory):
                raise BackupInvalid(error, hint="nothing was written; restore the backup directory from a copy")
        mine = [(h.attempt, d, h) for d, h, _err in entries if h and h.plan_checksum == plan_checksum]
        if not mine:
            return None
        _attempt, directory, header = max(mine, key=lambda item: item[0])
        return cls(directory, header)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    # -- header ------------------------------------------------------------------------------------
    def save(self) -> None:
        write_atomic(self.path(HEADER), self.header.sealed_json())

    def phase(self, name: str) -> PhaseState:
        # A header written before a phase existed (swap) has no state for it yet.
        return self.header.phases.setdefault(name, PhaseState())

    # -- data file ---------------------------------------------------------------------------------
    def data_writer(self) -> "DataWriter":
        return DataWriter(self.path(DATA))

    def has_data(self) -> bool:
        return self.header.data_blocks > 0

    def iter_blocks(self) -> Iterator[Tuple[int, List[Optional[Record]]]]:
        """(block number, records) of data.bin up to the length the header recorded."""
        with open(self.path(DATA), "rb") as stream:
            for block in iter_blocks(stream, self.header.data_bytes):
                records = [r for _i, r in decode_records(block.payload, block.record_count, block.block_no)]
                yield block.block_no, records

    def staged_writer(self) -> "DataWriter":
        return DataWriter(self.path(STAGED))

    def data_appender(self) -> "DataWriter":
        """data.bin continued after the blocks the header records (bytes past them, a killed append, dropped)."""
        header = self.header
        return DataWriter.continuing(
            self.path(DATA), header.data_blocks, header.data_records, header.data_bytes, header.data_chain
        )

    def staged_appender(self) -> "DataWriter":
        header = self.header
        return DataWriter.continuing(
            self.path(STAGED), header.staged_blocks, header.staged_records, header.staged_bytes, header.staged_chain
        )

    def has_staged(self) -> bool:
        return self.header.staged_blocks > 0

    def verify(self, check_record: Optional[Callable[[Record], None]] = None) -> VerifyResult:
        """Check data.bin against the header: size, block count, every block digest and record CRC.
        `check_record` sees every intact record in the same pass (it raises to refuse the backup)."""
        header = self.header
        return _verify_file(
            self.path(DATA), header.data_blocks, header.data_records, header.data_bytes, header.data_chain, check_record
        )

    def verify_staged(self) -> VerifyResult:
        """staged.bin against the header, the same way as data.bin."""
        header = self.header
        return _verify_file(
            self.path(STAGED), header.staged_blocks, header.staged_records, header.staged_bytes, header.staged_chain
        )

    def require_intact(self) -> None:
        result = self.verify()
        if result.ok and self.has_staged():
            staged = self.verify_staged()
            result.problems += [f"staged conversions: {problem}" for problem in staged.problems]
            result.ok = staged.ok
        if not result.ok:
            raise BackupInvalid(
                f"backup {self.directory} failed verification: " + "; ".join(result.problems),
                hint="nothing was written; restore the backup directory from a copy",
                details={"verification": result.model_dump()},
            )

    # -- ledgers: which blocks a mutation phase has applied ----------------------------------------
    def ledger_path(self, phase: str, worker: int) -> str:
        return self.path(f"ledger-{phase}-{worker}.log")

    def done_blocks(self, phase: str) -> set:
        return set(self.block_outcomes(phase))

    def block_outcomes(self, phase: str) -> Dict[int, Dict[str, Any]]:
        """Each block a phase applied -> the counters its ledger line recorded (what it wrote, found gone
        or in conflict), so that a resumed phase reports the blocks the killed run applied too."""
        return {block_no: outcome for _ledger, block_no, outcome in self._ledger_lines(phase)}

    def latest_blocks(self, phase: str) -> List[int]:
        """The block each ledger of a phase (one per worker) recorded last: the most recent writes, the
        first that a server restored from an older snapshot has lost."""
        last: Dict[str, int] = {}
        for ledger, block_no, _outcome in self._ledger_lines(phase):
            last[ledger] = block_no
        return sorted(set(last.values()))

    def _ledger_lines(self, phase: str) -> Iterator[Tuple[str, int, Dict[str, Any]]]:
        """(ledger file, block number, outcome) of every whole line of a phase's ledgers, in file order."""
        prefix = f"ledger-{phase}-"
        for name in sorted(os.listdir(self.directory)):
            if name.startswith(prefix) and name.endswith(".log"):
                with open(self.path(name), "rb") as handle:
                    lines = handle.read().split(b"\n")[:-1]  # after the last newline: a torn line, that block is redone
                for line in lines:
                    number, _space, counters = line.partition(b" ")
                    if not number.isdigit():
                        continue
                    try:
                        outcome = json.loads(counters) if counters else {}
                    except ValueError:
                        continue
                    yield name, int(number), outcome if isinstance(outcome, dict) else {}


def _verify_file(
    path: str,
    blocks: int,
    records: int,
    nbytes: int,
    fingerprint: str,
    check_record: Optional[Callable[[Record], None]] = None,
) -> VerifyResult:
    """A blocks file against the numbers its header recorded: size, block count, every block digest
    and record CRC, the fingerprint chain over all blocks."""
    result = VerifyResult(ok=True)
    if blocks == 0:
        return result
    try:
        size = os.path.getsize(path)
    except OSError:
        return VerifyResult(ok=False, truncated=True, problems=[f"{path} is missing"])
    if size < nbytes:
        result.truncated = True
        result.problems.append(f"{path} has {size} bytes, the header recorded {nbytes} (truncated)")
    running = EMPTY_CHAIN
    try:
        with open(path, "rb") as stream:
            for block in iter_blocks(stream, nbytes):
                result.blocks += 1
                result.bytes = block.offset + len(block.payload) + BLOCK_HEADER_SIZE
                running = chain(running, hashlib.sha256(block.payload).digest())
                if not block.digest_ok:
                    result.bad_blocks.append(block.block_no)
                if block.block_no != result.blocks - 1:
                    # The number is outside the SHA-256: a changed one is caught here.
                    result.problems.append(
                        f"the block at byte {block.offset} is numbered {block.block_no}, "
                        f"expected {result.blocks - 1} (edited or damaged)"
                    )
                try:
                    for index, record in decode_records(block.payload, block.record_count, block.block_no):
                        result.records += 1
                        if record is None:
                            result.bad_records.append([block.block_no, index])
                        elif check_record is not None:
                            check_record(record)
                except FormatError as err:
                    result.problems.append(str(err))
    except FormatError as err:
        result.truncated = result.truncated or "cut short" in str(err)
        result.problems.append(str(err))
    if result.blocks != blocks:
        result.problems.append(f"{result.blocks} blocks readable, the header recorded {blocks}")
    if result.records != records:
        result.problems.append(f"{result.records} records readable, the header recorded {records}")
    if result.bad_blocks:
        result.problems.append(f"blocks {result.bad_blocks[:10]} do not match their checksum (edited or damaged)")
    if result.bad_records:
        result.problems.append(f"{len(result.bad_records)} records fail their CRC")
    if not result.problems and running != fingerprint:
        result.problems.append("the blocks do not match the header's fingerprint (blocks replaced or reordered)")
    result.ok = not result.problems
    return result


class DataWriter:
    """Appends blocks to data.bin, keeping the running fingerprint."""

    def __init__(self, path: str):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        self.stream = os.fdopen(fd, "wb")
        write_file_magic(self.stream)
        self.bytes = self.stream.tell()
        self.blocks = 0
        self.records = 0
        self.chain = EMPTY_CHAIN

    @classmethod
    def continuing(cls, path: str, blocks: int, records: int, nbytes: int, fingerprint: str) -> "DataWriter":
        """A writer that appends to `path` after its first `nbytes` (what a header recorded): whatever
        follows them - blocks a killed run appended but never recorded - is cut off first."""
        writer = cls.__new__(cls)
        fd = os.open(path, os.O_WRONLY, FILE_MODE)
        os.ftruncate(fd, nbytes)
        writer.stream = os.fdopen(fd, "wb")
        writer.stream.seek(nbytes)
        writer.bytes, writer.blocks, writer.records, writer.chain = nbytes, blocks, records, fingerprint
        return writer

    def write_block(self, records: List[bytes]) -> None:
        block = encode_block(self.blocks, records)
        self.stream.write(block)
        self.chain = chain(self.chain, block_digest(block))
        self.bytes += len(block)
        self.blocks += 1
        self.records += len(records)

    def close(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()


class Ledger:
    """Append-only list of applied block numbers for one phase and worker, each with its outcome."""

    def __init__(self, path: str):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        self.stream = os.fdopen(fd, "ab", buffering=0)

    def mark(self, block_no: int, counters: Optional[Dict[str, Any]] = None) -> None:
        kept = {name: value for name, value in (counters or {}).items() if value}
        line = b"%d" % block_no
        if kept:
            line += b" " + json.dumps(kept, separators=(",", ":"), default=str).encode()
        self.stream.write(line + b"\n")  # one write: the line is whole or, after a crash, absent or torn

    def close(self) -> None:
        os.fsync(self.stream.fileno())
        self.stream.close()
