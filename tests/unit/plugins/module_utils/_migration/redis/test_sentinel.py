"""Sentinel settings: addresses parsed strictly, the endpoint the same whatever the primary, secrets known."""

from __future__ import annotations

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.deps import ValidationError
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import (
    ConnectionSettings,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.sentinel import (
    SentinelSettings,
    parse_address,
    show,
)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.0.0.1:26380", ("10.0.0.1", 26380)),
        ("sentinel1.internal", ("sentinel1.internal", 26379)),
        ("[::1]:5000", ("::1", 5000)),
        ("[fe80::1]", ("fe80::1", 26379)),
        (" h:1 ", ("h", 1)),
    ],
)
def test_addresses(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        (":26379", "names no host"),
        ("h:0", "1 to 65535"),
        ("h:x", "1 to 65535"),
        ("::1", "[address]:port"),
        ("[::1]x", "is not host:port"),
    ],
)
def test_bad_addresses(text, problem):
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_address(text)


def test_the_endpoint_names_the_service_and_its_sorted_sentinels_and_no_secret():
    settings = ConnectionSettings(
        sentinel={"service": "orders", "hosts": ["b:2", "a:1", "[::1]:3"], "password": "s3cret"},
        password="data-secret",
    )
    assert settings.endpoint == "sentinel orders@[::1]:3,a:1,b:2"
    assert sorted(settings.secrets()) == ["data-secret", "s3cret"]
    assert "s3cret" not in repr(settings)
    assert show(("h", 1)) == "h:1" and show(None) == "(none)"


def test_a_comma_string_of_hosts_is_a_list():
    assert SentinelSettings(service="s", hosts="a:1, b:2").addresses() == [("a", 1), ("b", 2)]


@pytest.mark.parametrize(
    "given",
    [
        {"hosts": ["a:1"]},
        {"service": "", "hosts": ["a:1"]},
        {"service": "s", "hosts": []},
        {"service": "s", "hosts": ["a:1"], "extra": 1},
    ],
)
def test_incomplete_settings_are_refused(given):
    with pytest.raises(ValidationError):
        SentinelSettings(**given)
