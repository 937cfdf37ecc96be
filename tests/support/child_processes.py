"""Watching the processes a tool starts: read their banners, signal them, and check nothing outlives them.

Used by the tests of tools/redis_search_server.py and tools/redis_replica_set.py.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import time

from playbook_runner import ROOT


def gone(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie, which holds no port or memory)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(pid: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def read_line(process: subprocess.Popen, pattern: re.Pattern, seconds: float = 30.0) -> re.Match:
    """The first line of `process`'s output matching `pattern`; fails after `seconds` even if the
    process neither writes nor exits."""
    deadline = time.monotonic() + seconds
    fd = process.stdout.fileno()
    buffered = getattr(process, "buffered", b"")
    seen = []
    while True:
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            seen.append(line.decode(errors="replace"))
            match = pattern.search(seen[-1])
            if match:
                process.buffered = buffered
                return match
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffered += chunk
    raise AssertionError(f"no line matching {pattern.pattern!r} in {seen!r}")


class Leftovers:
    """Whatever a test started, killed at the end even when the code under test leaked it."""

    def __init__(self):
        self.pids: list[int] = []
        self.dirs: list[str] = []

    def cleanup(self) -> None:
        for pid in self.pids:
            if not gone(pid):
                try:
                    os.kill(pid, signal.SIGCONT)  # a SIGSTOPped server too
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for directory in self.dirs:
            shutil.rmtree(directory, ignore_errors=True)


def spawn(args: list[str], leftovers: Leftovers) -> subprocess.Popen:
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    leftovers.pids.append(process.pid)
    return process
