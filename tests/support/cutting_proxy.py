"""A TCP proxy on loopback in front of a Redis server that cuts every connection at a chosen moment.

It reads the commands clients send (RESP arrays, or inline commands) and forwards them one by one, so
that a cut can fall between two commands of one pipeline. Arm it with `cut(...)`:

    command   the command name to count (None: every command), counted from the moment it is armed
    nth       the cut comes at the nth such command
    reply     False: that command is not forwarded (the server never sees it, nor anything after it);
              True: it is forwarded and runs, but its reply - and any other reply still on its way - is
              thrown away (a connection lost after the server did the work)
    outage    for that many seconds afterwards, new connections are accepted and closed at once, the way
              a server that is down (or a network that is partitioned) looks to a client

`cuts` lists the cuts made, `seen` counts every command forwarded by name. Another process (a module
run in a process of its own) arms a cut through `control_port`: one JSON line {"cut": {...}} (or {"mute": true}:
`mute_now`), answered "ok". Threads only, no dependencies; `close()` stops everything.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from typing import List, Optional, Tuple


def parse_command(buffer: bytes, start: int) -> Optional[Tuple[int, str]]:
    """(end offset, upper-case name) of the command starting at `start`, or None when incomplete."""
    if start >= len(buffer):
        return None
    if buffer[start : start + 1] != b"*":
        end = buffer.find(b"\r\n", start)
        if end < 0:
            return None
        words = buffer[start:end].split()
        return end + 2, (words[0].decode(errors="replace").upper() if words else "")
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    count = int(buffer[start + 1 : end])
    position, name = end + 2, ""
    for index in range(count):
        end = buffer.find(b"\r\n", position)
        if end < 0:
            return None
        length = int(buffer[position + 1 : end])
        data_end = end + 2 + length
        if data_end + 2 > len(buffer):
            return None
        if index == 0:
            name = buffer[end + 2 : data_end].decode(errors="replace").upper()
        position = data_end + 2
    return position, name


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket):
        self.client, self.server = client, server
        self.muted = False
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass


class CuttingProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.seen: collections.Counter = collections.Counter()
        self.cuts: List[dict] = []
        self.refused = 0
        self._pairs: List[_Pair] = []
        self._lock = threading.Lock()
        self._armed: Optional[dict] = None
        self._down_until = 0.0
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="cutting-proxy", daemon=True)
        self._thread.start()
        self.control = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.control.bind(("127.0.0.1", 0))
        self.control.listen(8)
        self.control_port = self.control.getsockname()[1]
        threading.Thread(target=self._controlled, name="cutting-proxy-control", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # -- control -------------------------------------------------------------------------------------
    def cut(self, command: Optional[str] = None, nth: int = 1, reply: bool = False, outage: float = 0.0) -> None:
        with self._lock:
            self._armed = {
                "command": command.upper() if command else None,
                "nth": nth,
                "reply": reply,
                "outage": outage,
                "count": 0,
            }

    def cut_now(self, outage: float = 0.0) -> None:
        """Cut every connection at once, wherever the clients are."""
        with self._lock:
            pairs = list(self._pairs)
            self._down_until = time.monotonic() + outage
            self.cuts.append({"command": None, "nth": None, "reply": None, "outage": outage, "at": time.time()})
        for pair in pairs:
            pair.close()

    def mute_now(self) -> None:
        """Stop passing on what the server sends on every open connection, without closing any: the clients
        (a replica following its primary through the proxy) stay connected and hear nothing more - a replica
        that lags, its link up. What the server sends meanwhile is thrown away; a muted connection is never
        unmuted (it ends when either side closes it)."""
        with self._lock:
            for pair in self._pairs:
                pair.muted = True

    @property
    def armed(self) -> bool:
        return self._armed is not None

    def wait_for_cut(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while self._armed is not None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self._armed is None

    def close(self) -> None:
        self._stopping = True
        for sock in (self.listener, self.control):
            try:
                sock.close()
            except OSError:
                pass
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()

    def _controlled(self) -> None:
        while not self._stopping:
            try:
                conn, _address = self.control.accept()
            except OSError:
                return
            with conn:
                request = json.loads(conn.makefile("rb").readline())
                if request.get("mute"):
                    self.mute_now()
                else:
                    self.cut(**request["cut"])
                conn.sendall(b"ok\n")

    # -- forwarding ------------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._upstream, args=(pair,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(pair,), daemon=True).start()

    def _decide(self, name: str) -> Optional[dict]:
        """Count `name`; the armed cut when this is its moment."""
        with self._lock:
            armed = self._armed
            if armed is None or (armed["command"] and armed["command"] != name):
                return None
            armed["count"] += 1
            if armed["count"] < armed["nth"]:
                return None
            self._armed = None
            return armed

    def _cut(self, armed: dict, name: str) -> None:
        with self._lock:
            pairs = list(self._pairs)
            self._down_until = time.monotonic() + armed["outage"]
            self.cuts.append(
                {
                    "command": name,
                    "nth": armed["nth"],
                    "reply": armed["reply"],
                    "outage": armed["outage"],
                    "at": time.time(),
                }
            )
        if armed["reply"]:
            time.sleep(0.1)  # the server runs what it received; its replies go nowhere
        for pair in pairs:
            pair.close()

    def _upstream(self, pair: _Pair) -> None:
        buffer = b""
        try:
            while not pair.closed:
                data = pair.client.recv(65536)
                if not data:
                    break
                buffer += data
                start = 0
                while True:
                    parsed = parse_command(buffer, start)
                    if parsed is None:
                        break
                    end, name = parsed
                    armed = self._decide(name)
                    if armed is not None and not armed["reply"]:
                        pair.server.sendall(buffer[:start])  # what came before it in the pipeline
                        self._cut(armed, name)
                        return
                    start = end
                    if armed is not None:
                        with self._lock:
                            for other in self._pairs:  # before it is sent: no reply may get through
                                other.muted = True
                        pair.server.sendall(buffer[:end])
                        buffer, start = buffer[end:], 0
                        self.seen[name] += 1
                        self._cut(armed, name)
                        return
                    self.seen[name] += 1
                if start:
                    pair.server.sendall(buffer[:start])
                    buffer = buffer[start:]
        except OSError:
            pass
        finally:
            pair.close()
            with self._lock:
                if pair in self._pairs:
                    self._pairs.remove(pair)

    def _downstream(self, pair: _Pair) -> None:
        try:
            while not pair.closed:
                data = pair.server.recv(65536)
                if not data:
                    break
                if not pair.muted:
                    pair.client.sendall(data)
        except OSError:
            pass
        finally:
            pair.close()


def arm_remotely(control_port: int, cut: Optional[dict], mute: bool = False) -> None:
    """Arm the proxy listening for control on `control_port` (from any process) with `cut`, or mute it now."""
    with socket.create_connection(("127.0.0.1", control_port), timeout=10) as conn:
        conn.sendall(json.dumps({"mute": True} if mute else {"cut": cut}).encode() + b"\n")
        assert conn.makefile("rb").readline() == b"ok\n"
