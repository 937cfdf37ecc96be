"""Local TCP endpoints that are not Redis, for connection tests: silent, closing at once, or HTTP."""

from __future__ import annotations

import socket
import threading

BEHAVIOURS = ("silent", "close", "http")


class FakeEndpoint:
    """Listens on a free loopback port and treats every connection one way:
    `silent` accepts and never answers, `close` accepts and closes, `http` answers like a web server."""

    def __init__(self, behaviour: str):
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS}")
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._held: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.behaviour == "close":
                conn.close()
            elif self.behaviour == "http":
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass
                conn.close()
            else:
                self._held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()

    def __enter__(self) -> "FakeEndpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
