"""tools/redis_replica_set.py against real servers: a primary and a replica with search and JSON, Sentinel
watching them, the faults later tests inject (SIGKILL of the primary, a paused replica), and nothing left
behind - as a library, after `stop()` and a signal, and as the `run` and `serve` commands.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sys
import textwrap
import time

import pytest
import redis
from child_processes import gone, read_line, spawn, wait_gone
from playbook_runner import ROOT
from redis_replica_set import ReplicaSetError, SentinelReplicaSet
from redis_search_server import info_fields, send_command

TOOL = os.path.join(ROOT, "tools", "redis_replica_set.py")
BANNER = re.compile(r"redis_replica_set: (primary|replica|sentinel) (\w+) on (\S+) \(pid (\d+), data (\S+?)\)")


def conn(node) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=node.port, protocol=2)


def load_documents(client: redis.Redis, count: int = 50) -> None:
    """An index over hashes and one over JSON documents, then `count` documents of each."""
    client.execute_command(
        "FT.CREATE", "docs", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA", "title", "TEXT", "n", "NUMERIC"
    )
    client.execute_command(
        "FT.CREATE", "jdocs", "ON", "JSON", "PREFIX", "1", "jdoc:", "SCHEMA", "$.title", "AS", "title", "TEXT"
    )
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.hset(f"doc:{i}", mapping={"title": f"hello {i}", "n": i})
        pipe.execute_command("JSON.SET", f"jdoc:{i}", "$", f'{{"title": "hello {i}"}}')
    pipe.execute()


def indexed(client: redis.Redis, index: str, timeout: float = 20.0) -> int:
    """num_docs once the index is fully built (a replica rebuilds its indexes after a full sync)."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.execute_command("FT.INFO", index)
        fields = dict(zip(info[::2], info[1::2]))
        if int(fields[b"indexing"]) == 0 and float(fields[b"percent_indexed"]) == 1:
            return int(fields[b"num_docs"])
        assert time.monotonic() < deadline, f"{index} still indexing"
        time.sleep(0.05)


def modules(client: redis.Redis) -> set[bytes]:
    return {dict(zip(entry[::2], entry[1::2]))[b"name"] for entry in client.execute_command("MODULE", "LIST")}


# -- the set, through the fixture ------------------------------------------------------------------------


def test_both_nodes_have_search_and_json_and_the_replica_receives_indexes_and_documents(replica_set):
    primary, (replica,) = replica_set.primary(), replica_set.replicas()
    for node in (primary, replica):
        assert {b"search", b"ReJSON"} <= modules(conn(node))
    load_documents(conn(primary))
    replica_set.wait_until_replicas_synced()

    on_replica = conn(replica)
    assert sorted(on_replica.execute_command("FT._LIST")) == [b"docs", b"jdocs"]
    assert indexed(on_replica, "docs") == 50 and indexed(on_replica, "jdocs") == 50
    assert on_replica.execute_command("FT.SEARCH", "docs", "@n:[10 19]", "LIMIT", "0", "0") == [10]
    assert on_replica.execute_command("FT.SEARCH", "jdocs", "hello", "LIMIT", "0", "0") == [50]
    assert on_replica.execute_command("JSON.GET", "jdoc:7", "$.title") == b'["hello 7"]'
    with pytest.raises(redis.ReadOnlyError):  # a replica refuses writes, module commands included
        on_replica.execute_command("FT.CREATE", "other", "SCHEMA", "t", "TEXT")


def test_sentinel_reports_the_primary_and_the_replica_and_every_process_is_ours(replica_set):
    primary, replica = replica_set.primary(), replica_set.replicas()[0]
    assert {primary, replica} == set(replica_set.nodes) and primary is not replica
    (sentinel,) = replica_set.sentinels
    assert replica_set.sentinel_addresses() == [f"127.0.0.1:{sentinel.port}"]
    # What a Sentinel-aware client (redis-py's) finds through the addresses the tool gives.
    host, port = replica_set.sentinel_addresses()[0].split(":")
    found = redis.sentinel.Sentinel([(host, int(port))], protocol=2)
    assert found.discover_master(replica_set.service) == ("127.0.0.1", primary.port)
    assert found.discover_slaves(replica_set.service) == [("127.0.0.1", replica.port)]
    assert conn(replica).info("replication")["master_port"] == primary.port

    for server in (*replica_set.nodes, sentinel):
        fields = info_fields(server.port, "server")
        assert (fields["process_id"], fields["tcp_port"], fields["run_id"]) == (
            str(server.process.pid),
            str(server.port),
            server.run_id,
        )
    assert info_fields(sentinel.port, "server")["redis_mode"] == "sentinel"
    # Sentinel knows the replica by the same run_id.
    assert replica_set.replica_states()[replica]["runid"] == replica.run_id
    assert replica_set.url(primary) == f"redis://127.0.0.1:{primary.port}/0"
    # Started after the replica was in sync, the Sentinel listed it from its first INFO of the primary
    # (started before, it would have found it at its next INFO, ~10 s later).
    assert replica_set.timings["start"] < 8  # about 0.2 s here


@pytest.mark.timing
def test_sigkill_of_the_primary_promotes_the_replica_which_has_the_data_and_the_old_one_comes_back_as_replica(
    replica_set,
):
    old, replica = replica_set.primary(), replica_set.replicas()[0]
    load_documents(conn(old))
    assert conn(old).execute_command("WAIT", "1", "5000") == 1  # acknowledged by the replica before the kill
    old_dir = old.data_dir

    assert replica_set.kill_primary() is old
    assert gone(old.process.pid)
    new = replica_set.wait_for_failover(timeout=20)
    assert new is replica
    assert replica_set.timings["failover"] < 10  # about 2-3 s here (down-after-milliseconds 1000)
    on_new = conn(new)
    assert on_new.info("replication")["role"] == "master"
    assert indexed(on_new, "docs") == 50 and indexed(on_new, "jdocs") == 50
    assert on_new.hgetall("doc:3") == {b"title": b"hello 3", b"n": b"3"}
    on_new.hset("doc:after", mapping={"title": "written after the failover", "n": 99})

    assert replica_set.restart(old) is old
    # A replica from its first moment (a primary until Sentinel noticed would take writes meanwhile).
    assert info_fields(old.port, "replication")["role"] == "slave"
    assert old.data_dir == old_dir and os.path.isdir(os.path.join(old_dir, "appendonlydir"))
    replica_set.wait_until_replicas_synced()
    replica_set.wait_until_sentinels_know_replicas(timeout=30)
    assert replica_set.primary() is new and replica_set.replicas() == [old]
    on_old = conn(old)
    assert on_old.info("replication")["role"] == "slave" and on_old.info("replication")["master_port"] == new.port
    assert indexed(on_old, "docs") == 51 and on_old.hget("doc:after", "title") == b"written after the failover"


def test_wait_times_out_while_a_replica_is_paused_and_succeeds_once_it_resumes(replica_set):
    replica = replica_set.replicas()[0]
    primary = conn(replica_set.primary())
    replica_set.pause_replica(replica)
    assert replica.paused and not gone(replica.process.pid)
    primary.set("key", "value")
    began = time.monotonic()
    assert primary.execute_command("WAIT", "1", "300") == 0
    assert time.monotonic() - began >= 0.29
    with pytest.raises(ReplicaSetError, match="is the primary"):
        replica_set.pause_replica(replica_set.primary())

    replica_set.resume_replica(replica)
    assert primary.execute_command("WAIT", "1", "5000") == 1
    assert conn(replica).get("key") == b"value"


def test_acl_setuser_on_the_primary_is_not_replicated(replica_set):
    primary, replica = replica_set.primary(), replica_set.replicas()[0]
    before = conn(replica).execute_command("ACL", "LIST")
    conn(primary).execute_command("ACL", "SETUSER", "app", "on", ">app-secret", "~app:*", "+@read", "-@write")
    conn(primary).set("app:after-acl", "1")
    replica_set.wait_until_replicas_synced()

    assert conn(replica).get("app:after-acl") == b"1"  # replication ran past the ACL change...
    assert conn(replica).execute_command("ACL", "LIST") == before  # ...which stayed on the primary only
    on_primary = conn(primary).execute_command("ACL", "LIST")
    (app,) = [line for line in on_primary if line.startswith(b"user app ")]
    assert [line for line in on_primary if line != app] == before
    assert hashlib.sha256(b"app-secret").hexdigest().encode() in app and b"~app:*" in app
    send_command(primary.port, "AUTH", "app", "app-secret")
    with pytest.raises(OSError, match="WRONGPASS"):  # (redis-py retries a failed AUTH for seconds)
        send_command(replica.port, "AUTH", "app", "app-secret")


# -- a set of its own: three Sentinels, two replicas, nothing left behind --------------------------------------


def test_three_sentinels_fail_over_by_quorum_and_stop_leaves_no_process_or_directory():
    replica_set = SentinelReplicaSet(replicas=2, sentinels=3)
    try:
        replica_set.start()
        pids = [server.process.pid for server in (*replica_set.nodes, *replica_set.sentinels)]
        dirs = [server.data_dir for server in (*replica_set.nodes, *replica_set.sentinels)]
        for sentinel in replica_set.sentinels:
            reply = [item.decode() for item in sentinel.ask("MASTER", replica_set.service)]
            master = dict(zip(reply[::2], reply[1::2]))
            assert (master["quorum"], master["num-other-sentinels"], master["num-slaves"]) == ("2", "2", "2")
            assert master["down-after-milliseconds"] == "1000"
        conn(replica_set.primary()).set("k", "v")
        replica_set.wait_until_replicas_synced()

        old = replica_set.kill_primary()
        new = replica_set.wait_for_failover(timeout=30)
        assert new is not old and conn(new).get("k") == b"v"
        replica_set.wait_until_replicas_synced()  # the other replica follows the new primary
        (other,) = [node for node in replica_set.nodes if node not in (old, new)]
        assert conn(other).info("replication")["master_port"] == new.port
        replica_set.pause_replica(other)  # a paused server must not hold up the stop,
        conn(new).execute_command("ACL", "SETUSER", "default", "-shutdown")  # nor one that refuses SHUTDOWN
    finally:
        began = time.monotonic()
        replica_set.stop()
    assert time.monotonic() - began < 5
    assert all(wait_gone(pid) for pid in pids), "a server outlived stop()"
    assert not [d for d in dirs if os.path.exists(d)], "stop() left a directory"


LIBRARY = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tools!r})
    from redis_replica_set import SentinelReplicaSet
    replica_set = SentinelReplicaSet().start()
    for line in replica_set.describe():
        print("redis_replica_set:", line, flush=True)
    replica_set.kill_primary()
    replica_set.wait_for_failover()
    print("failed over", flush=True)
    time.sleep(120)
""")


def test_a_process_using_the_set_leaves_nothing_when_terminated_even_after_a_failover(leftovers):
    user = spawn([sys.executable, "-c", LIBRARY.format(tools=os.path.dirname(TOOL))], leftovers)
    servers = [read_line(user, BANNER) for _server in range(3)]
    for banner in servers:
        leftovers.pids.append(int(banner.group(4)))
        leftovers.dirs.append(banner.group(5))
    read_line(user, re.compile("failed over"))
    assert os.path.isdir(servers[0].group(5))  # the killed primary's directory is kept until the end

    user.send_signal(signal.SIGTERM)
    assert user.wait(timeout=60) == -signal.SIGTERM, user.stderr.read()
    assert all(wait_gone(pid) for pid in leftovers.pids[1:]), "a server outlived the process that started it"
    assert not [d for d in leftovers.dirs if os.path.exists(d)], "a directory outlived the process"


# -- the commands ------------------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, time, redis.sentinel
    host, port = os.environ["REDIS_SENTINELS"].split(",")[0].split(":")
    found = redis.sentinel.Sentinel([(host, int(port))]).discover_master(os.environ["REDIS_SENTINEL_SERVICE"])
    print("child", os.getpid(), os.environ["REDIS_URL"], os.environ["REDIS_REPLICA_URLS"], os.environ["REDIS_SENTINELS"],
          "redis://%s:%d/0" % found, flush=True)
    time.sleep(120)
""")


def test_run_sets_the_variables_and_sigterm_leaves_no_server_command_or_directory(leftovers):
    run = spawn([sys.executable, TOOL, "run", "--", sys.executable, "-c", CHILD], leftovers)
    banners = [read_line(run, BANNER) for _server in range(3)]
    by_role = {banner.group(1): banner for banner in banners}
    for banner in banners:
        leftovers.pids.append(int(banner.group(4)))
        leftovers.dirs.append(banner.group(5))
    child = read_line(run, re.compile(r"^child (\d+) (\S+) (\S+) (\S+) (\S+)$"))
    leftovers.pids.append(int(child.group(1)))
    assert child.group(2) == child.group(5) == by_role["primary"].group(3)  # REDIS_URL is Sentinel's primary
    assert child.group(3) == by_role["replica"].group(3)
    assert child.group(4) == by_role["sentinel"].group(3)

    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 128 + signal.SIGTERM
    assert all(wait_gone(pid) for pid in leftovers.pids[1:]), "a server or the command outlived run"
    assert not [d for d in leftovers.dirs if os.path.exists(d)], "run left a directory"


def test_run_returns_the_commands_exit_code_and_serve_prints_the_exports(leftovers):
    run = spawn(
        [sys.executable, TOOL, "run", "--replicas", "2", "--", sys.executable, "-c", "raise SystemExit(3)"], leftovers
    )
    banners = [read_line(run, BANNER) for _server in range(4)]
    assert run.wait(timeout=60) == 3
    assert [banner.group(1) for banner in banners] == ["primary", "replica", "replica", "sentinel"]
    assert all(wait_gone(int(banner.group(4))) and not os.path.exists(banner.group(5)) for banner in banners)

    serve = spawn([sys.executable, TOOL, "serve", "--service", "shop"], leftovers)
    banners = [read_line(serve, BANNER) for _server in range(3)]
    exports = dict(read_line(serve, re.compile(r"^export (\w+)=(\S+)$")).groups() for _line in range(4))
    assert exports == {
        "REDIS_URL": banners[0].group(3),
        "REDIS_REPLICA_URLS": banners[1].group(3),
        "REDIS_SENTINELS": banners[2].group(3),
        "REDIS_SENTINEL_SERVICE": "shop",
    }
    serve.send_signal(signal.SIGINT)
    assert serve.wait(timeout=60) == 0, serve.stderr.read()
    assert all(wait_gone(int(banner.group(4))) and not os.path.exists(banner.group(5)) for banner in banners)
