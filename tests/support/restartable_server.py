"""A private Redis with search and JSON and persistence on (AOF, fsync on every write), which a test can
crash (SIGKILL: no shutdown, no save) and start again on the same port and data directory.

The server comes back with what the append-only file holds - every write it acknowledged, since each
was fsynced before the reply - and rebuilds its search indexes from it, as a production server does
after a crash. Built on tools/redis_search_server.py (free port, own directory, the process checked,
and a start that waits while the server loads its AOF).
"""

from __future__ import annotations

from redis_search_server import RedisSearchServer

PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")


class RestartableServer(RedisSearchServer):
    def __init__(self):
        super().__init__(extra_args=PERSISTENT)
        self.restarts = 0

    def crash(self) -> None:
        """SIGKILL the server: whatever it had not written to its AOF is lost, like a power cut."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, timeout: float = 30.0) -> "RestartableServer":
        """Crash it (if running) and start it again on the same port, from the same directory."""
        port = self.port
        self.crash()
        self.start(timeout=timeout, port=port)
        self.restarts += 1
        return self
