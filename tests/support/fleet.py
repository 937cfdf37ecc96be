"""Several private Redis servers as an inventory: one host per server, connection local.

Each server gets the products index of the demo (hash documents, 8-d float32 vectors), a migrating
ACL user and an application user, so that the playbooks run the way they run on a fleet.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Dict, List

import numpy
import redis
from quiesce_setup import MIGRATOR, create_users
from redis_search_server import RedisSearchServer

INDEX = "products"
DIMS = 8


def load_products(client, docs: int = 120, seed: int = 7) -> None:
    """`products`: hashes product:<i> with name, category and an 8-d float32 embedding (FLAT, cosine)."""
    client.execute_command(
        "FT.CREATE",
        INDEX,
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "product:",
        "SCHEMA",
        "name",
        "TEXT",
        "category",
        "TAG",
        "embedding",
        "VECTOR",
        "FLAT",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        str(DIMS),
        "DISTANCE_METRIC",
        "COSINE",
    )
    vectors = numpy.random.default_rng(seed).random((docs, DIMS), dtype=numpy.float32)
    pipe = client.pipeline(transaction=False)
    for i in range(docs):
        pipe.hset(
            f"product:{i}",
            mapping={
                "name": f"product {i}",
                "category": "books" if i % 2 else "games",
                "embedding": vectors[i].tobytes(),
            },
        )
    pipe.execute()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = client.execute_command("FT.INFO", INDEX)
        fields = dict(zip(info[::2], info[1::2]))
        if int(fields[b"num_docs"]) == docs and int(fields[b"indexing"]) == 0:
            return
        time.sleep(0.02)
    raise AssertionError("products was not indexed in time")


def index_datatype(client, index: str = INDEX) -> str:
    """The embedding field's vector type, as FT.INFO reports it (e.g. FLOAT32)."""
    info = client.execute_command("FT.INFO", index)
    fields = dict(zip(info[::2], info[1::2]))
    for attribute in fields[b"attributes"]:
        pairs = dict(zip(attribute[::2], attribute[1::2]))
        if pairs.get(b"identifier") == b"embedding":
            return pairs[b"data_type"].decode()
    raise AssertionError("no embedding field")


def documents(client) -> Dict[bytes, Dict[bytes, bytes]]:
    return {key: client.hgetall(key) for key in sorted(client.scan_iter(match="product:*", count=1000))}


class Fleet:
    """`count` servers with data and users; `inventory()` writes them as Ansible hosts."""

    def __init__(self, count: int):
        self.servers: List[RedisSearchServer] = [RedisSearchServer() for _number in range(count)]

    def start(self) -> "Fleet":
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    @property
    def hosts(self) -> List[str]:
        return [f"redis{i + 1}" for i in range(len(self.servers))]

    def admin(self, host: str):
        """A client as the migrating user (the default user may be quiesced)."""
        server = self.servers[self.hosts.index(host)]
        return redis.Redis.from_url(server.url, protocol=2, username=MIGRATOR[0], password=MIGRATOR[1])

    def reset(self) -> None:
        """Every server: empty, the demo index loaded, the users created."""
        for server in self.servers:
            client = redis.Redis.from_url(server.url, protocol=2)
            client.flushall()
            for name in client.execute_command("ACL", "USERS"):
                if name != b"default":
                    client.execute_command("ACL", "DELUSER", name)
            load_products(client)
            create_users(client)
            client.close()

    def inventory(self, path: str, host_vars: Dict[str, Dict[str, str]] | None = None) -> str:
        lines = ["[redis_search]"]
        for host, server in zip(self.hosts, self.servers):
            extra = " ".join(f"{k}={v}" for k, v in (host_vars or {}).get(host, {}).items())
            lines.append(f"{host} redis_url={server.url} {extra}".rstrip())
        lines += [
            "",
            "[redis_search:vars]",
            "ansible_connection=local",
            f"ansible_python_interpreter={sys.executable}",
            f"redis_connection={{'username': '{MIGRATOR[0]}', 'password': '{MIGRATOR[1]}'}}",
        ]
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        return path


def failing_interpreter(directory: str, failpoint: str) -> str:
    """A Python interpreter for one host that kills the migration at `failpoint` (INDEXOPS_FAILPOINT)."""
    path = os.path.join(directory, "python-with-failpoint")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"#!/bin/sh\nINDEXOPS_FAILPOINT='{failpoint}' exec '{sys.executable}' \"$@\"\n")
    os.chmod(path, 0o755)
    return path
