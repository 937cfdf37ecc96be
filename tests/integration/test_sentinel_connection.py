"""The `sentinel` connection option on a real primary, replica and Sentinel (tools/redis_replica_set.py): every
module finds the primary through Sentinel, redis_index_info reports the role, the replicas and their lag and what
the Sentinels see, a client pinned to a primary refuses to drift to another after a failover, the options and
the environment variables are checked before connecting, secrets stay secret, and Redis Cluster is refused."""

from __future__ import annotations

import pytest
import redis
from module_runner import run_module
from redis_search_server import RedisSearchServer

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    ConnectionFailed,
    ServerUnsupported,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import (
    ConnectionSettings,
    connect,
    lost_connection,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.sentinel import (
    PrimaryChanged,
    pinned_primary,
    repin,
    wait_for_primary,
)
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_info

ENV = ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_SERVICE", "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_USERNAME")


def sentinel_option(replica_set, **extra) -> dict:
    return {"service": replica_set.service, "hosts": replica_set.sentinel_addresses(), **extra}


def info(replica_set, capsys, expect_failure=False, **args) -> dict:
    options = {"sentinel": sentinel_option(replica_set), "probe_capabilities": False, **args}
    return run_module(redis_index_info, options, capsys, expect_failure=expect_failure)


def address(node) -> str:
    return f"127.0.0.1:{node.port}"


def test_info_through_sentinel_reports_the_primary_its_replica_and_lag_and_what_sentinel_sees(replica_set, capsys):
    primary, (replica,) = replica_set.primary(), replica_set.replicas()
    replica_set.client().set("k", "v")
    replica_set.wait_until_replicas_synced()

    result = info(replica_set, capsys)
    replication = result["replication"]
    assert replication["role"] == "primary"
    assert replication["connected_replicas"] == 1
    (entry,) = replication["replicas"]
    assert entry["address"] == address(replica) and entry["state"] == "online"
    assert entry["behind_bytes"] >= 0 and entry["lag_seconds"] is not None
    view = result["sentinel"]
    assert view["service"] == replica_set.service
    assert view["primary"] == view["pinned_primary"] == address(primary)
    assert view["sentinels_known"] == 1 and view["sentinels_answering"] == replica_set.sentinel_addresses()
    assert [r["address"] for r in view["replicas"]] == [address(replica)]

    # The replica itself, connected to directly, says it follows the primary.
    direct = run_module(redis_index_info, {"redis_url": replica.url, "probe_capabilities": False}, capsys)
    assert direct["replication"]["role"] == "replica"
    assert direct["replication"]["primary"] == address(primary) and direct["replication"]["link"] == "up"
    assert "sentinel" not in direct


def test_after_a_failover_a_new_connection_finds_the_new_primary_and_a_pinned_client_refuses_to_drift(replica_set):
    settings = ConnectionSettings(sentinel=sentinel_option(replica_set))
    client = connect(settings)
    old = replica_set.primary()
    assert pinned_primary(client) == ("127.0.0.1", old.port)
    client.set("before", "1")
    assert client.execute_command("WAIT", 1, 5000) == 1

    replica_set.kill_primary()
    new = replica_set.wait_for_failover(timeout=30)

    # The client that worked with the old primary does not follow Sentinel to the new one on its own.
    with pytest.raises(redis.ConnectionError) as caught:
        client.get("before")
    err = caught.value
    assert isinstance(err, PrimaryChanged), err
    assert str(err) == f"the primary of {replica_set.service} moved from {address(old)} to {address(new)} (a failover)"
    assert lost_connection(err) == f"lost the connection to Redis ({err})"
    # The run decides: it may wait for the new primary and re-pin the same client to it.
    assert wait_for_primary(client, timeout=10) == ("127.0.0.1", new.port)
    repin(client, ("127.0.0.1", new.port))
    assert client.get("before") == b"1"
    # A new connection goes to the new primary at once.
    fresh = connect(settings)
    assert pinned_primary(fresh) == ("127.0.0.1", new.port) and fresh.get("before") == b"1"
    for each in (client, fresh):
        each.close()


def test_a_task_started_during_a_failover_waits_for_the_new_primary_within_connect_timeout(replica_set, capsys):
    replica_set.client().set("before", "1")
    replica_set.wait_until_replicas_synced()
    old = replica_set.kill_primary()
    # Started at once: the Sentinels still name the dead primary, then none that is up, then the replica.
    result = info(replica_set, capsys, connect_timeout=15)
    new = replica_set.wait_for_failover(timeout=30)
    assert new is not old
    assert result["replication"]["role"] == "primary" and result["sentinel"]["pinned_primary"] == address(new)
    # With too short a connect_timeout, the task fails in one line naming the service instead of waiting on.
    replica_set.heal()
    replica_set.wait_until_sentinels_know_replicas(timeout=30)
    replica_set.kill_primary()
    short = info(replica_set, capsys, expect_failure=True, connect_timeout=0.3)
    assert short["error_type"] == "connection_failed" and "\n" not in short["msg"]
    # It names the Sentinels' service and what to check there, not the options of one server.
    assert short["msg"].startswith(f"sentinel {replica_set.service}@") and "redis_url" not in short["msg"]
    replica_set.wait_for_failover(timeout=30)


def test_the_sentinel_environment_variables_connect_when_no_option_is_given_and_win_over_redis_url(
    replica_set, capsys, monkeypatch
):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_SENTINELS", ",".join(replica_set.sentinel_addresses()))
    monkeypatch.setenv("REDIS_SENTINEL_SERVICE", replica_set.service)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    result = run_module(redis_index_info, {"probe_capabilities": False}, capsys)
    assert result["sentinel"]["pinned_primary"] == address(replica_set.primary())
    # Inside the option, hosts and service come from the same variables.
    result = run_module(redis_index_info, {"probe_capabilities": False, "sentinel": {}}, capsys)
    assert result["sentinel"]["service"] == replica_set.service


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"hosts": ["127.0.0.1:26379"]}, "sentinel.service is required"),
        ({"service": "s"}, "sentinel.hosts lists no Sentinel; give at least one host:port"),
        ({"service": "s", "hosts": ["127.0.0.1:99999"]}, "the port of Sentinel address '127.0.0.1:99999' must be"),
        ({"service": "s", "hosts": ["::1:26379"]}, "write an IPv6 address as [address]:port"),
        ({"service": "two words", "hosts": ["h:1"]}, "sentinel.service must name the monitored primary"),
    ],
)
def test_bad_sentinel_options_are_refused_in_one_line_before_connecting(capsys, monkeypatch, option, message):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    result = run_module(redis_index_info, {"sentinel": option}, capsys, expect_failure=True)
    assert message in result["msg"] and "\n" not in result["msg"]
    assert result["error_type"] == "invalid_input"


def test_sentinel_is_mutually_exclusive_with_redis_url_and_host(capsys):
    for other in ({"redis_url": "redis://127.0.0.1:1/0"}, {"host": "127.0.0.1"}):
        result = run_module(
            redis_index_info, {"sentinel": {"service": "s", "hosts": ["h:1"]}, **other}, capsys, expect_failure=True
        )
        assert "mutually exclusive" in result["msg"]


def test_an_unknown_service_or_no_sentinel_fails_in_one_line_naming_the_service(replica_set, capsys):
    result = info(replica_set, capsys, expect_failure=True, sentinel=sentinel_option(replica_set, service="nosuch"))
    assert result["error_type"] == "connection_failed"
    assert "names a primary for service 'nosuch'" in result["msg"] and "\n" not in result["msg"]
    result = info(
        replica_set, capsys, expect_failure=True, sentinel={"service": replica_set.service, "hosts": ["127.0.0.1:1"]}
    )
    assert "no Sentinel of sentinel indexops@127.0.0.1:1 names a primary" in result["msg"]
    assert "Connection refused" in result["msg"]


def test_a_sentinel_password_connects_and_stays_secret(replica_set, capsys, monkeypatch):
    sentinel = redis.Redis(host="127.0.0.1", port=replica_set.sentinels[0].port, protocol=2)
    password = "Sentinel-pw-7f3a1c"
    sentinel.execute_command("ACL", "SETUSER", "watcher", "on", f">{password}", "+@all")
    sentinel.execute_command("ACL", "SETUSER", "default", "off")
    try:
        with_user = sentinel_option(replica_set, username="watcher", password=password)
        result = info(replica_set, capsys, sentinel=with_user)
        assert result["sentinel"]["sentinels_answering"] == replica_set.sentinel_addresses()
        assert password not in result["_raw"]
        # From the environment, into the option.
        monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", password)
        result = info(replica_set, capsys, sentinel=sentinel_option(replica_set, username="watcher"))
        assert result["replication"]["role"] == "primary" and password not in result["_raw"]
        monkeypatch.delenv("REDIS_SENTINEL_PASSWORD")

        wrong = info(
            replica_set, capsys, expect_failure=True, sentinel=sentinel_option(replica_set, username="watcher")
        )
        assert wrong["error_type"] == "connection_failed" and password not in wrong["_raw"]
    finally:
        sentinel.execute_command("ACL", "SETUSER", "default", "on")
        sentinel.execute_command("ACL", "DELUSER", "watcher")
        sentinel.close()


def test_redis_cluster_is_refused_with_the_reason(capsys):
    server = RedisSearchServer(extra_args=("--cluster-enabled", "yes")).start()
    try:
        with pytest.raises(ServerUnsupported) as caught:
            connect(ConnectionSettings(url=server.url))
        assert "is a Redis Cluster node: Redis Cluster is not supported" in str(caught.value)
        assert "no coordinator" in str(caught.value)
        result = run_module(redis_index_info, {"redis_url": server.url}, capsys, expect_failure=True)
        assert result["error_type"] == "server_unsupported" and "\n" not in result["msg"]
    finally:
        server.stop()


def test_a_url_and_the_sentinel_settings_together_are_refused_by_the_library():
    with pytest.raises(ValueError, match="redis_url and sentinel are mutually exclusive"):
        ConnectionSettings(url="redis://127.0.0.1:1/0", sentinel={"service": "s", "hosts": ["h:1"]})
    with pytest.raises(ConnectionFailed):
        connect(ConnectionSettings(sentinel={"service": "s", "hosts": ["127.0.0.1:1"]}, connect_timeout=1))
