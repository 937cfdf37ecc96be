"""Helpers the integration tests share for setting up data."""

from __future__ import annotations

import time

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.snapshot import read_info
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.stats import stats_from_info


def wait_for(client, index: str, docs: int, timeout: float = 10.0) -> None:
    """Until `index` holds `docs` documents and is done indexing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = stats_from_info(read_info(client, index))
        if stats.num_docs == docs and stats.fully_indexed:
            return
        time.sleep(0.01)
    raise AssertionError(f"{index} did not index {docs} documents within {timeout} s")


def is_hash(client, key) -> bool:
    # TYPE by name: pycodestyle before 2.11 (ansible-core 2.16's pep8 test) reads `.type(k) ==` as E721.
    return client.execute_command("TYPE", key) == b"hash"


def dump_hashes(client, pattern=b"*") -> dict:
    """Every hash field of every key: the state a migration must leave exactly right."""
    return {k: client.hgetall(k) for k in sorted(client.scan_iter(match=pattern)) if is_hash(client, k)}
