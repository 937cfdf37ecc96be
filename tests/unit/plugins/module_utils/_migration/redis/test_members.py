"""The servers of a replica set: one spelling per address, each reached with the connection's credentials."""

from __future__ import annotations

import json

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import (
    ConnectionSettings,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.members import (
    address_of,
    member_settings,
    own_address,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("10.0.0.1:6380", "10.0.0.1:6380"), ("redis1", "redis1:6379"), ("[::1]:7000", "[::1]:7000")],
)
def test_a_member_is_named_one_way(given, expected):
    assert address_of(given) == expected


def test_a_bad_member_says_what_is_wrong():
    with pytest.raises(ValueError, match="the port of replica set member 'h:0' must be a number from 1 to 65535"):
        address_of("h:0")


def test_a_member_is_reached_with_the_connections_user_password_and_tls():
    settings = ConnectionSettings(url="rediss://migrator:s%40cret@primary:6380/0", tls_ca_cert="/ca.pem")
    member = member_settings(settings, "replica:6381")
    assert (member.url, member.host, member.port) == (None, "replica", 6381)
    assert (member.username, member.password, member.tls, member.tls_ca_cert) == ("migrator", "s@cret", True, "/ca.pem")
    assert own_address(settings) == "primary:6380"
    assert own_address(ConnectionSettings(host="h", port=7000)) == "h:7000"
    assert own_address(ConnectionSettings(sentinel={"service": "s", "hosts": ["h:26379"]})) is None
    explicit = member_settings(ConnectionSettings(url="redis://u:p@h:1/0", username="other", password="q"), "m:2")
    assert (explicit.username, explicit.password) == ("other", "q")
    assert json.dumps(member.model_dump(exclude={"password"}))  # nothing unserialisable left from the URL
