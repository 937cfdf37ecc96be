"""What the benchmarks share: the index they build, reading it, and describing the machine."""

from __future__ import annotations

import argparse
import os
import platform
import time
from importlib import metadata

import numpy

INDEX = "bench_docs"


class BenchError(RuntimeError):
    """The benchmark cannot run (exit status 2), as opposed to a target being missed."""


def ft_info(client) -> dict:
    reply = client.execute_command("FT.INFO", INDEX)
    return {str(k, "utf-8") if isinstance(k, bytes) else str(k): v for k, v in zip(reply[::2], reply[1::2])}


def wait_indexed(client, expected: int, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = ft_info(client)
        if int(info["num_docs"]) == expected and int(info["indexing"]) == 0 and float(info["percent_indexed"]) >= 1.0:
            return
        if time.monotonic() > deadline:
            raise BenchError(
                f"index not fully indexed after {timeout:.0f}s: num_docs={info['num_docs']}, "
                f"indexing={info['indexing']}, percent_indexed={info['percent_indexed']}"
            )
        time.sleep(0.05)


def environment(client, peer_version) -> str:
    """Versions and machine, for the first line of a benchmark's output (client: RESP2)."""
    server = client.info("server")
    search = 0
    for module in client.execute_command("MODULE", "LIST"):
        fields = dict(zip(module[::2], module[1::2]))
        if fields.get(b"name") == b"search":
            search = int(fields[b"ver"])
    return (
        f"Python {platform.python_version()}, redis-py {metadata.version('redis')}, numpy {numpy.__version__}, "
        f"redisvl {peer_version or 'unavailable'}; Redis {server['redis_version']} with search "
        f"{search // 10000}.{search // 100 % 100}.{search % 100}; {os.cpu_count()} CPUs ({platform.machine()})"
    )


def int_list(text: str) -> list:
    """argparse type: a comma-separated list of positive integers (underscores allowed)."""
    try:
        values = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants comma-separated integers, not {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("wants positive integers")
    return values
