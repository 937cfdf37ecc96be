"""The migrations the fault suites interrupt, what each must leave, and how to read what Redis holds.

Every scenario loads the same seeded documents each time, so one plan file (made once per session)
applies to every fresh load, and the state an uninterrupted run leaves - computed independently here
and checked against a real run - is what every interrupted-then-resumed run must leave too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy
import redis
from datasets import wait_for

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import migrate
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (
    MigrateOptions,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import write_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import create_plan
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.lock import _pid_alive
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback.rollback import rollback
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import parse_patch

SUPPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
DRIVER = os.path.join(SUPPORT, "fault_driver.py")
MODULE_PROCESS = os.path.join(SUPPORT, "module_process.py")
DOCS, DIMS, BATCH = 300, 16, 50
# Seeds the random kill moments (and any other random choice of the fault suites); printed by the tally.
SEED = int(os.environ.get("INDEXOPS_FAULT_SEED", "8"))
TTL_DOC = 3  # one document carries a TTL: key renames must keep it
# What FT.INFO says of an index's definition and content (not statistics the GC moves, nor max_doc_id).
DEFINING_INFO = (
    "index_name",
    "index_options",
    "index_definition",
    "attributes",
    "stopwords_list",
    "num_docs",
    "hash_indexing_failures",
)


@dataclass
class Scenario:
    name: str
    storage: str  # hash | json
    changes: dict
    prefix: str
    new_prefix: Optional[str]
    final_index: str
    aliases: List[str] = field(default_factory=lambda: ["live"])
    workers: int = 1
    # The rewrite scenarios exercise the drop_recreate path's kill points (a rewrite plans online by default
    # since issue 20; tests/integration/test_online_rewrite.py kills the online one at every step).
    mode: str = "drop_recreate"
    moves: Dict[str, str] = field(default_factory=dict)  # field renames that move the data: old -> new
    quantize: Optional[str] = None  # hash vector field converted to float16

    def options(self) -> dict:
        return {"batch_size": BATCH, "accept_data_loss": True, "workers": self.workers}


RENAME_ALL = {"rename_fields": [{"old_name": "title", "new_name": "headline"}]}
SCENARIOS = {
    # Field rename moving data, prefix change, index rename and float32 -> float16, in one migration.
    "hash": Scenario(
        "hash",
        "hash",
        {
            **RENAME_ALL,
            "index": {"name": "idx_v2", "prefix": "item:"},
            "update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}],
        },
        "doc:",
        "item:",
        "idx_v2",
        moves={"title": "headline"},
        quantize="vec",
    ),
    "hash_workers2": Scenario(
        "hash_workers2",
        "hash",
        {
            **RENAME_ALL,
            "index": {"name": "idx_v2", "prefix": "item:"},
            "update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}],
        },
        "doc:",
        "item:",
        "idx_v2",
        workers=2,
        moves={"title": "headline"},
        quantize="vec",
    ),
    # JSON: both a text field and the vector field renamed (their values move), prefix and index renamed,
    # the vector index re-typed to float16 (JSON documents keep their numbers: re-indexed only).
    "json": Scenario(
        "json",
        "json",
        {
            "rename_fields": [
                {"old_name": "title", "new_name": "headline"},
                {"old_name": "vec", "new_name": "embedding"},
            ],
            "index": {"name": "jdx_v2", "prefix": "k:"},
            "update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}],
        },
        "j:",
        "k:",
        "jdx_v2",
        moves={"title": "headline", "vec": "embedding"},
    ),
    # Online: the documents stay; a new index is built beside the live one and swapped in.
    "online": Scenario(
        "online",
        "hash",
        {
            "add_fields": [{"name": "colour", "type": "tag"}],
            "update_fields": [
                {"name": "title", "attrs": {"weight": 2}},
                {"name": "vec", "attrs": {"algorithm": "hnsw", "m": 8}},
            ],
        },
        "doc:",
        None,
        "idx--v2",
        mode="online",
    ),
}


def source_index(scenario: Scenario) -> str:
    return "jdx" if scenario.storage == "json" else "idx"


def load(client, scenario: Scenario) -> None:
    """The scenario's source index and DOCS documents, byte for byte the same on every call."""
    rng = numpy.random.default_rng(7)
    vectors = rng.standard_normal((DOCS, DIMS)).astype(numpy.float32)
    index = source_index(scenario)
    vector = ["VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", str(DIMS), "DISTANCE_METRIC", "COSINE"]
    if scenario.storage == "hash":
        client.execute_command(
            "FT.CREATE",
            index,
            "ON",
            "HASH",
            "PREFIX",
            "1",
            scenario.prefix,
            "SCHEMA",
            "title",
            "TEXT",
            "tag",
            "TAG",
            "vec",
            *vector,
        )
    else:
        client.execute_command(
            "FT.CREATE",
            index,
            "ON",
            "JSON",
            "PREFIX",
            "1",
            scenario.prefix,
            "SCHEMA",
            "$.title",
            "AS",
            "title",
            "TEXT",
            "$.tag",
            "AS",
            "tag",
            "TAG",
            "$.vec",
            "AS",
            "vec",
            *vector,
        )
    pipe = client.pipeline(transaction=False)
    for i in range(DOCS):
        key = f"{scenario.prefix}{i}"
        if scenario.storage == "hash":
            pipe.hset(
                key,
                mapping={
                    "title": f"document {i}",
                    "tag": f"t{i % 3}",
                    "colour": "red" if i % 2 else "blue",
                    "vec": vectors[i].tobytes(),
                },
            )
        else:
            pipe.execute_command(
                "JSON.SET",
                key,
                "$",
                json.dumps({"title": f"document {i} é", "tag": f"t{i % 3}", "n": i * 0.1, "vec": vectors[i].tolist()}),
            )
    pipe.execute()
    client.pexpire(f"{scenario.prefix}{TTL_DOC}", 3_600_000)
    for alias in scenario.aliases:
        client.execute_command("FT.ALIASADD", alias, index)
    wait_for(client, index, DOCS)


# -- what Redis holds ------------------------------------------------------------------------------------


def defining_info(client, name) -> dict:
    reply = client.execute_command("FT.INFO", name)
    return {key.decode(): value for key, value in zip(reply[::2], reply[1::2]) if key.decode() in DEFINING_INFO}


def capture(client, aliases=("live",)) -> dict:
    """Every key (a hash's fields, a JSON document parsed and each top-level value's exact JSON text, any
    other key's DUMP), whether it has a TTL, every index's definition and counts, and where each alias leads."""
    keys: Dict[bytes, Any] = {}
    for key in sorted(client.scan_iter(count=1000)):
        kind = client.type(key)
        ttl = client.pttl(key) > 0
        if kind == b"hash":
            keys[key] = ("hash", client.hgetall(key), ttl)
        elif kind == b"ReJSON-RL":
            text = client.execute_command("JSON.GET", key)
            doc = json.loads(text)
            raw = {name: client.execute_command("JSON.GET", key, f"$.{name}") for name in sorted(doc)}
            keys[key] = ("json", doc, raw, ttl)
        elif kind == b"string":
            keys[key] = ("string", client.get(key), ttl)
        else:
            keys[key] = (kind, client.dump(key), ttl)
    indexes = {name: defining_info(client, name) for name in sorted(client.execute_command("FT._LIST"))}
    where = {}
    for alias in aliases:
        try:
            where[alias] = client.execute_command("FT.INFO", alias)[1]
        except redis.ResponseError:
            where[alias] = None
    return {"keys": keys, "indexes": indexes, "aliases": where}


def without_stale_locks(state: dict) -> dict:
    """The state without lock keys whose owner is a dead process: a run killed after its work was done,
    while giving its locks back, leaves them to expire (or to be taken over at once by the next run on this
    host). A lock of a live process is kept, so that a lock left behind by a finished run still shows."""
    keys = {}
    for key, entry in state["keys"].items():
        if key.startswith(b"indexops:lock:"):
            holder = json.loads(entry[1])
            if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder["pid"])):
                continue
        keys[key] = entry
    return {**state, "keys": keys}


def f16(raw: bytes) -> bytes:
    return numpy.frombuffer(raw, numpy.float32).astype(numpy.float16).tobytes()


def expected_documents(scenario: Scenario, original: dict) -> dict:
    """The documents an uninterrupted migration must leave, derived from the originals here, independently
    of the engine: keys renamed, moved values carried byte for byte, vectors converted by numpy."""
    found = {}
    for key, entry in original["keys"].items():
        new_key = key
        if scenario.new_prefix and key.startswith(scenario.prefix.encode()):
            new_key = scenario.new_prefix.encode() + key[len(scenario.prefix) :]
        if entry[0] == "hash":
            fields = dict(entry[1])
            for old, new in scenario.moves.items():
                if old.encode() in fields:
                    fields[new.encode()] = fields.pop(old.encode())
            if scenario.quantize:
                fields[scenario.quantize.encode()] = f16(fields[scenario.quantize.encode()])
            found[new_key] = ("hash", fields, entry[2])
        elif entry[0] == "json":
            doc, raw = dict(entry[1]), dict(entry[2])
            for old, new in scenario.moves.items():
                if old in doc:
                    doc[new] = doc.pop(old)
                    raw[new] = raw.pop(old)
            found[new_key] = ("json", doc, dict(sorted(raw.items())), entry[3])
        else:
            found[new_key] = entry
    return found


# -- running -----------------------------------------------------------------------------------------------


def start_driver(args: dict, failpoint: Optional[str] = None) -> subprocess.Popen:
    """The driver in a process group of its own (so that killing it takes its workers and nothing else);
    `failpoint` is INDEXOPS_FAILPOINT for it (phase:point:pause=seconds holds it there)."""
    env = {k: v for k, v in os.environ.items() if k != "INDEXOPS_FAILPOINT"}
    if failpoint:
        env["INDEXOPS_FAILPOINT"] = failpoint
    return subprocess.Popen(
        [sys.executable, DRIVER, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )


def read_trace(path) -> List[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def last_step(trace: List[dict]) -> Optional[str]:
    steps = [e["step"] for e in trace if e["event"] in ("step", "kill")]
    return steps[-1] if steps else None


def run_in_process(client, url, plan, backup_dir, scenario: Scenario):
    return migrate(
        client, lambda: redis.Redis.from_url(url), plan, str(backup_dir), MigrateOptions(**scenario.options())
    )


def roll_back(client, backup_dir, scenario: Scenario):
    return rollback(client, choose_backup(str(backup_dir), source_index(scenario)))


def make_plan(client, scenario: Scenario, path) -> Any:
    plan = create_plan(
        client,
        source_index(scenario),
        patch=parse_patch({"version": 1, "changes": scenario.changes}),
        aliases=scenario.aliases,
        mode=scenario.mode,
        batch_size=BATCH,
    )
    assert plan.classification.supported, plan.classification.blocked_reasons
    write_plan(plan, str(path))
    return plan


@dataclass
class Calibration:
    """One uninterrupted run of a scenario, through the driver: its plan, what it left, how many commands
    each step sent, and how long it took; then the same for its rollback."""

    plan: Any
    plan_path: str
    original: dict
    reference: dict
    migrate_steps: Dict[str, dict]
    migrate_seconds: float
    rollback_steps: Dict[str, dict]
    rollback_seconds: float


def run_driver(args: dict, timeout: float = 180) -> tuple:
    began = time.monotonic()
    proc = start_driver(args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err, time.monotonic() - began


def driver_args(action: str, url: str, scenario: Scenario, backup_dir, trace, plan_path=None, kill=None) -> dict:
    args = {"action": action, "url": url, "backup_dir": str(backup_dir), "trace": str(trace), "kill": kill}
    if action == "migrate":
        args.update(plan=str(plan_path), options=scenario.options())
    else:
        args.update(index=source_index(scenario))
    return args


def calibrate(client, url, scenario: Scenario, workdir) -> Calibration:
    os.makedirs(workdir, exist_ok=True)
    client.flushall()
    load(client, scenario)
    original = capture(client)
    plan_path = os.path.join(workdir, "plan.yaml")
    plan = make_plan(client, scenario, plan_path)
    trace = os.path.join(workdir, "calibrate.trace")
    code, out, err, _took = run_driver(
        driver_args("migrate", url, scenario, os.path.join(workdir, "b"), trace, plan_path)
    )
    assert code == 0, out + err
    done = json.loads(out)
    assert done["result"] == "succeeded", done
    events = read_trace(trace)
    migrate_seconds = _span(events)
    reference = capture(client)
    rb_trace = os.path.join(workdir, "calibrate-rollback.trace")
    code, out, err, _took = run_driver(driver_args("rollback", url, scenario, os.path.join(workdir, "b"), rb_trace))
    assert code == 0, out + err
    undone = json.loads(out)
    assert undone["result"] == "rolled_back", undone
    return Calibration(
        plan=plan,
        plan_path=plan_path,
        original=original,
        reference=reference,
        migrate_steps=done["steps"],
        migrate_seconds=migrate_seconds,
        rollback_steps=undone["steps"],
        rollback_seconds=_span(read_trace(rb_trace)),
    )


def _span(events: List[dict]) -> float:
    times = [e["at"] for e in events if "at" in e]
    return max(times) - min(times) if times else 0.0


def resolve(spec: dict, steps: dict) -> dict:
    """Fractions and "last" become command or record numbers of the calibrated step (a record is a
    document script call: how many a step makes depends on how the engine batches them)."""
    if "step" not in spec:
        return spec
    resolved = dict(spec)
    for kind in ("commands", "records"):
        value = spec.get(kind)
        if value is None or isinstance(value, int):
            continue
        total = steps[spec["step"]][kind]
        resolved[kind] = total if value == "last" else max(1, round(value * total))
    return resolved


def run_module_process(module: str, args: dict, arm: Optional[dict] = None, timeout: float = 300) -> dict:
    """A module's task in a process of its own (see tests/support/module_process.py): its JSON result."""
    proc = subprocess.run(
        [sys.executable, MODULE_PROCESS, json.dumps({"module": module, "args": args, "arm": arm})],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result (exit {proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-3000:]}"
    return json.loads(lines[-1])
