"""A private Redis with search and JSON and persistence on (AOF, fsync on every write), which a test can
crash (SIGKILL: no shutdown, no save) and start again on the same port and data directory.

The server comes back with what the append-only file holds - every write it acknowledged, since each
was fsynced before the reply - and rebuilds its search indexes from it, as a production server does
after a crash. Built on tools/redis_search_server.py (free port, own directory, the process checked).
"""
from __future__ import annotations

import time

import redis_search_server
from redis_search_server import RedisSearchServer

PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")


class RestartableServer(RedisSearchServer):
    def __init__(self):
        super().__init__(extra_args=PERSISTENT)
        self.restarts = 0

    def _wait_until_ours(self, timeout: float) -> None:
        # While it loads its AOF the server answers INFO but refuses other commands with LOADING.
        deadline = time.monotonic() + timeout
        while True:
            try:
                return super()._wait_until_ours(max(0.5, deadline - time.monotonic()))
            except OSError as err:
                if "LOADING" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def crash(self) -> None:
        """SIGKILL the server: whatever it had not written to its AOF is lost, like a power cut."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, timeout: float = 30.0) -> "RestartableServer":
        """Crash it (if running) and start it again on the same port, from the same directory."""
        port = self.port
        self.crash()
        chosen = redis_search_server.free_port
        redis_search_server.free_port = lambda: port  # start() takes its port from here
        try:
            self.start(timeout=timeout, attempts=1)
        finally:
            redis_search_server.free_port = chosen
        assert self.port == port
        self.restarts += 1
        return self
