"""Shared pytest set-up: import path for the collection, a real Redis with search, module runner.

Tests that talk to Redis only ever talk to the private server started here (see
tools/redis_search_server.py); each test starts from an empty database.
"""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "indexops", "redis_search")


def _collection_on_path() -> None:
    """Make `ansible_collections.indexops.redis_search` importable from this checkout."""
    parts = ROOT.split(os.sep)
    if len(parts) >= 3 and parts[-3] == "ansible_collections":
        sys.path.insert(0, os.sep.join(parts[:-3]))
        return
    if not os.path.islink(LINK):
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        os.symlink(ROOT, LINK)
    sys.path.insert(0, COLLECTIONS)


_collection_on_path()
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from redis_search_server import RedisSearchServer  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def redis_server():
    """One private server per test session (per xdist worker)."""
    server = RedisSearchServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def clean_redis(redis_server):
    """An empty database (FLUSHALL also drops every search index)."""
    import redis  # pylint: disable=import-outside-toplevel
    client = redis.Redis.from_url(redis_server.url, protocol=2)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def client(request, clean_redis, redis_server):
    """A client of the test server speaking RESP2 or RESP3 (tests using it run under both)."""
    import redis  # pylint: disable=import-outside-toplevel
    conn = redis.Redis.from_url(redis_server.url, protocol=request.param)
    yield conn
    conn.close()
