"""The Ansible adapter: missing libraries, connection precedence, errors -> fail_json."""

from __future__ import annotations

import pytest
from module_runner import run_module

from ansible_collections.indexops.redis_search.plugins.module_utils import _module_kit
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core import deps
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_info


def test_missing_library_is_reported_by_name(monkeypatch, capsys):
    monkeypatch.setitem(deps.MISSING, "pydantic", "Traceback: No module named 'pydantic'")
    result = run_module(redis_index_info, {}, capsys, expect_failure=True)
    assert "Failed to import the required Python library (pydantic)" in result["msg"]


@pytest.mark.parametrize(
    "params, env, expected",
    [
        ({"redis_url": "redis://a:1/0"}, {"REDIS_URL": "redis://env:9/0"}, "a:1/0"),
        ({"host": "h", "port": 7}, {"REDIS_URL": "redis://env:9"}, "h:7/0"),
        ({}, {"REDIS_URL": "redis://env:9"}, "env:9/0"),
        ({}, {}, "localhost:6379/0"),
    ],
)
def test_connection_precedence(monkeypatch, params, env, expected):
    monkeypatch.delenv("REDIS_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    class Module:  # the attributes connection_settings reads
        no_log_values: set = set()
        params = {**{k: v.get("default") for k, v in _module_kit.connection_argument_spec().items()}, "host": None}

    Module.params.update(params)
    assert _module_kit.connection_settings(Module).endpoint == expected


# Every module validates its options through the library's models before it connects: a port of
# 1 on localhost is never tried, so a failure naming the option proves nothing ran first.
@pytest.mark.parametrize(
    "args, expected",
    [
        ({"port": 99999}, "port must be 65535 or less, not 99999"),
        ({"db": 2}, "database 2 is not supported"),
        ({"redis_url": "redis://localhost:1/4"}, "redis_url (or REDIS_URL) selects database 4"),
        ({"socket_timeout": 0}, "socket_timeout must be more than 0, not 0.0"),
        ({"connect_timeout": -5}, "connect_timeout must be more than 0, not -5.0"),
    ],
)
def test_connection_options_are_refused_before_connecting(monkeypatch, capsys, args, expected):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr(_module_kit, "connect", lambda settings: pytest.fail("connected"))
    args = {"port": 1, **args} if "redis_url" not in args else args
    result = run_module(redis_index_info, args, capsys, expect_failure=True)
    assert expected in result["msg"] and "\n" not in result["msg"]
    assert result["error_type"] == "invalid_input"


def test_backup_dir_that_is_a_file_is_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(_module_kit, "connect", lambda settings: pytest.fail("connected"))
    path = tmp_path / "backups"
    path.write_text("not a directory")
    result = run_module(redis_index_info, {"port": 1, "backup_dir": str(path)}, capsys, expect_failure=True)
    assert f"backup_dir {path} is a file, not a directory" in result["msg"]


def test_a_database_in_the_environment_url_is_refused_too(monkeypatch, capsys):
    """An AWX credential that injects REDIS_URL with /1 is refused like redis_url."""
    monkeypatch.setenv("REDIS_URL", "redis://localhost:1/1")
    monkeypatch.setattr(_module_kit, "connect", lambda settings: pytest.fail("connected"))
    result = run_module(redis_index_info, {}, capsys, expect_failure=True)
    assert "redis_url (or REDIS_URL) selects database 1" in result["msg"]
