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

from child_processes import Leftovers  # noqa: E402  pylint: disable=wrong-import-position
from redis_replica_set import SentinelReplicaSet  # noqa: E402  pylint: disable=wrong-import-position
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


@pytest.fixture
def leftovers():
    """Processes and directories a test saw a tool start: killed and removed at the end whatever happened."""
    found = Leftovers()
    yield found
    found.cleanup()


# The default user as a fresh server has it (ACL LIST).
DEFAULT_USER = b"user default on nopass sanitize-payload ~* &* +@all"


@pytest.fixture(scope="module")
def replica_set_of_module(request):
    """A primary, replicas and Sentinels (tools/redis_replica_set.py) for the tests of one module, started
    only when a test asks for `replica_set`. Sized by a module mark, e.g.
    `pytestmark = pytest.mark.replica_set(replicas=2, sentinels=3)` (default: 1 and 1)."""
    mark = request.node.get_closest_marker("replica_set")
    replica_set = SentinelReplicaSet(**(mark.kwargs if mark else {})).start()
    yield replica_set
    replica_set.stop()


@pytest.fixture
def replica_set(replica_set_of_module):
    """The module's replica set, healthy and empty: every node running (one killed by an earlier test is
    back as a replica; the primary may then be another node), in sync, known to every Sentinel, no keys
    and only the default user on each node (ACLs are not replicated: each node is reset on its own)."""
    replica_set = replica_set_of_module
    for node in replica_set.nodes:
        if node.paused:
            replica_set.resume_replica(node)
    import redis  # pylint: disable=import-outside-toplevel

    for node in replica_set.nodes:
        if not node.running:
            continue
        client = redis.Redis(host="127.0.0.1", port=node.port, protocol=2)
        for name in client.execute_command("ACL", "USERS"):
            if name != b"default":
                client.execute_command("ACL", "DELUSER", name)
        if client.execute_command("ACL", "LIST") != [DEFAULT_USER]:
            client.execute_command("ACL", "SETUSER", "default", "reset", *DEFAULT_USER.decode().split()[2:])
        client.close()
    replica_set.heal()
    primary = replica_set.client(protocol=2)
    primary.flushall()
    primary.close()
    replica_set.wait_until_replicas_synced()
    return replica_set
