"""Connection settings: no secrets in messages, database 0 only, bounded connects."""

from __future__ import annotations

import time

import pytest
from fake_endpoints import FakeEndpoint

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.deps import ValidationError
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import ConnectionFailed
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.limits import explain_options
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import (
    ConnectionSettings,
    connect,
)


def test_endpoint_has_no_credentials():
    settings = ConnectionSettings(url="redis://app:s3cr%40t@cache.internal:6380/0", password="other")
    assert settings.endpoint == "cache.internal:6380/0"
    assert "s3cr" not in repr(settings) and "other" not in repr(settings)
    assert {"other", "s3cr%40t", "s3cr@t", "redis://app:s3cr%40t@cache.internal:6380/0"} <= set(settings.secrets())


def test_host_settings_and_tls_kwargs():
    settings = ConnectionSettings(host="h", port=7000, tls=True, tls_verify=False, tls_ca_cert="/ca.pem", protocol=3)
    assert settings.endpoint == "h:7000/0" and settings.uses_tls
    kwargs = settings.client_kwargs()
    assert kwargs["ssl"] is True and kwargs["ssl_cert_reqs"] == "none" and kwargs["ssl_ca_certs"] == "/ca.pem"
    assert kwargs["protocol"] == 3 and kwargs["decode_responses"] is False
    assert settings.secrets() == []


def refusal(**kwargs) -> str:
    with pytest.raises(ValidationError) as err:
        ConnectionSettings(**kwargs)
    return str(explain_options(err.value, {"url": "redis_url"}))


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"db": 3}, "database 3 is not supported"),
        ({"url": "redis://h:6379/2"}, "redis_url (or REDIS_URL) selects database 2"),
        ({"url": "redis://h:6379?db=5"}, "redis_url (or REDIS_URL) selects database 5"),
        ({"url": "rediss://u:pw@h:6379/1"}, "redis_url (or REDIS_URL) selects database 1"),
    ],
)
def test_only_database_zero(kwargs, expected):
    message = refusal(**kwargs)
    assert expected in message and "database 0" in message and "db: 0" in message and "/0" in message
    assert "pw" not in message


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"port": 99999}, "port must be 65535 or less, not 99999"),
        ({"port": 0}, "port must be 1 or more, not 0"),
        ({"url": "redis://h:99999/0"}, "port in redis_url"),
        ({"socket_timeout": 0}, "socket_timeout must be more than 0, not 0"),
        ({"connect_timeout": -1}, "connect_timeout must be more than 0, not -1"),
        ({"connect_timeout": float("inf")}, "connect_timeout must be a finite number"),
        ({"protocol": 4}, "protocol must be 2 or 3"),
        ({"url": "http://h:80/0"}, "URL scheme 'http' is not supported"),
        ({"url": "redis:///0"}, "names no host"),
    ],
)
def test_bad_settings_are_one_line(kwargs, expected):
    message = refusal(**kwargs)
    assert expected in message and "\n" not in message


def test_validation_errors_never_print_the_url():
    with pytest.raises(ValidationError) as err:
        ConnectionSettings(url="redis://app:hunter2@h:6379/9")
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    "behaviour, tls",
    [("silent", False), ("silent", True), ("close", False), ("close", True), ("http", False), ("http", True)],
)
def test_a_non_redis_endpoint_fails_within_the_connect_timeout(behaviour, tls):
    endpoint = FakeEndpoint(behaviour)
    settings = ConnectionSettings(
        host="127.0.0.1", port=endpoint.port, tls=tls, tls_verify=False, connect_timeout=1.0, socket_timeout=60.0
    )
    began = time.monotonic()
    try:
        with pytest.raises(ConnectionFailed) as err:
            connect(settings)
    finally:
        endpoint.close()
    took = time.monotonic() - began
    # One attempt, each step bounded by connect_timeout (redis-py alone: ten retries of socket_timeout).
    assert took < 5, took
    # The client's one attempt, plus at most one bare PING that words the error when the client's own error
    # does not (a broken pipe while it wrote its handshake: which one it gets depends on timing).
    most = 1 if tls or behaviour == "silent" else 2
    assert 1 <= endpoint.accepted <= most
    message = str(err.value)
    if not tls:
        expected = {
            "silent": "connect_timeout",
            "close": "closed the connection without a reply",
            "http": "does not answer like a Redis server",
        }[behaviour]
        assert expected in message, message
    assert "\n" not in message and f"127.0.0.1:{endpoint.port}/0" in message
