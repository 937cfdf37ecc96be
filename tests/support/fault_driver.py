"""Run one migration or rollback in a process of its own and SIGKILL it - with every worker it forked -
at a chosen point, or run it to the end and say how many Redis commands each step sent.

argv[1] is a JSON object:
    action      "migrate" or "rollback"
    url         the server (the library's own connection code builds the clients: its retry policy applies)
    plan        (migrate) path of the plan file; backup_dir; options (MigrateOptions)
    index       (rollback) the index whose backup to roll back; backup_dir
    trace       path of a file this process appends JSON lines to: each step it enters, and the kill
    kill        null (run to the end), or one of
                  {"checkpoint": "phase:point"}           where the engine calls failpoints.hit(phase, point)
                  {"step": s, "commands": k}              after the k-th Redis command sent in step s
                  {"step": s, "records": k}               after the k-th document script (EVALSHA) in step s
                  {"step": s, "command": NAME, "nth": k}  after the k-th NAME command in step s
                  {"step": s, "file_writes": k}           before the k-th file the step writes atomically
                                                          (the backup's plan.yaml and header.json)

A step is a migration phase (`preflight` until the first one starts) or a step of a rollback
(`rollback_prepare`, `rollback_restore`, `rollback_index`, `rollback_wait`, `rollback_validate`,
`rollback_online`), and `release` for both: giving the locks back, the last thing they do.

Commands are counted where every client sends them, redis-py's connection (single commands,
pipelines, transactions, payloads packed by hand), one by one: a kill that falls inside a pipelined
payload sends the commands up to and including the chosen one, waits until the server has run them
(it closes its sending side and reads the connection to its end), and dies - the rest of the batch
never reaches the server. Inside MULTI/EXEC that means the transaction is discarded, unless the kill
is at the EXEC. A record is one document script call (EVALSHA); where the engine writes a whole
block in one script call, that call is the record. Workers (forked) count in the same shared counters.

Prints {"changed", "result", "steps": {step: {"commands", "records"}}} when it ran to the end,
{"failed": message} with exit code 1 on a library error; killed, it has no exit code but -9.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sys
import time
from typing import List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), ".build", "collections"))

from cutting_proxy import parse_command  # noqa: E402  pylint: disable=wrong-import-position
from redis.connection import AbstractConnection  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply import migrate as migrate_module
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.backups import choose_backup
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.migrate import (  # noqa: E402
    migrate,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.apply.phases.context import (  # noqa: E402
    MigrateOptions,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.backup import store as backup_store
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import failpoints
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (  # noqa: E402
    IndexOpsError,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.plan import (  # noqa: E402
    read_plan,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import (
    ConnectionSettings,
    connect,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback import (
    online as rollback_online,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.rollback import (
    rollback as rollback_module,
)

STEPS = (
    "preflight",
    "backup",
    "drop",
    "move_fields",
    "rename_keys",
    "quantize",
    "create",
    "wait",
    "validate",
    "swap",
    "rollback_prepare",
    "rollback_restore",
    "rollback_index",
    "rollback_wait",
    "rollback_validate",
    "rollback_online",
    "release",
)

_ctx = multiprocessing.get_context("fork")
# Shared with forked workers: [step index, commands in step, records in step, matches in step, total commands],
# then per step: commands, records.
_shared = _ctx.RawArray("q", 5 + 2 * len(STEPS))
_guard = _ctx.Lock()
_kill: dict = {}
_trace_path = ""


def _trace(event: dict) -> None:
    with open(_trace_path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({**event, "at": time.time()}) + "\n")


def _step() -> str:
    return STEPS[_shared[0]]


def enter(step: str) -> None:
    """The run enters `step`: the step's counters start at zero."""
    with _guard:
        _shared[0] = STEPS.index(step)
        _shared[1] = _shared[2] = _shared[3] = 0
    _trace({"event": "step", "step": step, "total": _shared[4]})


def die(why: dict) -> None:
    """SIGKILL this process group: the run and every worker, at once."""
    _trace(
        {
            "event": "kill",
            "step": _step(),
            "commands_in_step": _shared[1],
            "records_in_step": _shared[2],
            "total": _shared[4],
            **why,
        }
    )
    os.killpg(os.getpgid(0), signal.SIGKILL)
    time.sleep(60)  # never reached


def _name(args) -> str:
    name = args[0]
    return (name.decode() if isinstance(name, bytes) else str(name)).upper()


def _allowed(names) -> int:
    """How many of the commands `names` (about to be sent) may go before the kill; -1 for all of them.
    Counts them as sent."""
    with _guard:
        limit = -1
        armed = _kill.get("step") == _step()
        for position, name in enumerate(names):
            _shared[1] += 1
            _shared[4] += 1
            index = 5 + 2 * _shared[0]
            _shared[index] += 1
            if name == "EVALSHA":
                _shared[2] += 1
                _shared[index + 1] += 1
            if not armed:
                continue
            if "commands" in _kill and _shared[1] == _kill["commands"]:
                limit = position + 1
            elif "records" in _kill and name == "EVALSHA" and _shared[2] == _kill["records"]:
                limit = position + 1
            elif "command" in _kill and name == _kill["command"].upper():
                _shared[3] += 1
                if _shared[3] == _kill.get("nth", 1):
                    limit = position + 1
            if limit >= 0:
                return limit
        return limit


_original_send = AbstractConnection.send_packed_command


def _commands(payload: bytes) -> List[Tuple[int, str]]:
    """(end offset, name) of every command in a packed payload."""
    found, start = [], 0
    while True:
        parsed = parse_command(payload, start)
        if parsed is None:
            return found
        found.append(parsed)
        start = parsed[0]


def _send_packed(self, command, check_health=True):
    """Every command any client of this process sends passes here - single commands, pipelines,
    transactions and payloads packed by hand - so that is where they are counted and cut."""
    if isinstance(command, str):
        payload = command.encode()
    elif isinstance(command, (bytes, bytearray, memoryview)):
        payload = bytes(command)
    else:
        payload = b"".join(bytes(part) for part in command)
    found = _commands(payload)
    limit = _allowed([name for _end, name in found])
    if limit < 0:
        return _original_send(self, [payload], check_health)
    _original_send(self, [payload[: found[limit - 1][0]]], check_health)
    # The server must have run what was sent: no more input on this connection, and its end of the
    # connection read to the close (Redis runs the commands it read before it sees the end).
    sock = self._sock
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    die({"sent": limit, "of": len(found), "command": found[limit - 1][1]})
    return None


def _file_writes(original):
    """backup_store.write_atomic, counted per step: a kill before the k-th file of the step is written."""
    written = {}

    def write_atomic(path, data):
        step = _step()
        written[step] = written.get(step, 0) + 1
        if _kill.get("step") == step and _kill.get("file_writes") == written[step]:
            die({"before_writing": os.path.basename(path)})
        return original(path, data)

    return write_atomic


def _on_checkpoint(original):
    def hit(phase, point) -> None:
        if point == "start" and phase in STEPS:
            enter(phase)
        if _kill.get("checkpoint") == f"{phase}:{point}":
            die({"checkpoint": f"{phase}:{point}"})
        original(phase, point)

    return hit


def _marks(step: str, function):
    def marked(*args, **kwargs):
        enter(step)
        return function(*args, **kwargs)

    return marked


def install(kill: dict, trace: str) -> None:
    global _trace_path  # pylint: disable=global-statement
    _trace_path = trace
    _kill.clear()
    _kill.update(kill or {})
    AbstractConnection.send_packed_command = _send_packed
    backup_store.write_atomic = _file_writes(backup_store.write_atomic)
    failpoints.hit = _on_checkpoint(failpoints.hit)
    rollback_module._restore_documents = _marks("rollback_restore", rollback_module._restore_documents)
    rollback_module._index_steps = _marks("rollback_index", rollback_module._index_steps)
    rollback_module.wait_until_indexed = _marks("rollback_wait", rollback_module.wait_until_indexed)
    rollback_module._validate = _marks("rollback_validate", rollback_module._validate)
    rollback_online.run = _marks("rollback_online", rollback_online.run)
    # Giving the locks back is the last thing either does (also after a failure).
    migrate_module.release_locks = _marks("release", migrate_module.release_locks)
    rollback_module.release_locks = _marks("release", rollback_module.release_locks)


def counts() -> dict:
    return {
        step: {"commands": _shared[5 + 2 * i], "records": _shared[6 + 2 * i]}
        for i, step in enumerate(STEPS)
        if _shared[5 + 2 * i]
    }


def main() -> int:
    args = json.loads(sys.argv[1])
    if os.getpgid(0) != os.getpid():
        os.setpgid(0, 0)  # a group of its own: the kill takes the workers, and nothing else
    install(args.get("kill"), args["trace"])
    first = "preflight" if args["action"] == "migrate" else "rollback_prepare"
    enter(first)

    def client():
        return connect(ConnectionSettings(url=args["url"]))

    try:
        if args["action"] == "migrate":
            outcome = migrate(
                client(), client, read_plan(args["plan"]), args["backup_dir"], MigrateOptions(**args.get("options", {}))
            )
            result = {
                "changed": outcome.changed,
                "result": outcome.report.result,
                "conflicts": outcome.report.conflicts,
            }
        else:
            store = choose_backup(args["backup_dir"], args["index"])
            changed, outcome = rollback_module.rollback(client(), store, **args.get("options", {}))
            result = {"changed": changed, "result": outcome.result}
    except IndexOpsError as err:
        _trace({"event": "failed", "step": _step(), "message": str(err)})
        print(json.dumps({"failed": str(err), "details": err.details, "steps": counts()}, default=str))
        return 1
    _trace({"event": "done", "steps": counts()})
    print(json.dumps({**result, "steps": counts()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
