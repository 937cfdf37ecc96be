"""The Ansible adapter: missing libraries, connection precedence, errors -> fail_json."""
from __future__ import annotations

import pytest
from module_runner import run_module

from ansible_collections.indexops.redis_search.plugins.module_utils import _module_kit
from ansible_collections.indexops.redis_search.plugins.module_utils._migration import deps
from ansible_collections.indexops.redis_search.plugins.modules import redis_index_info


def test_missing_library_is_reported_by_name(monkeypatch, capsys):
    monkeypatch.setitem(deps.MISSING, "pydantic", "Traceback: No module named 'pydantic'")
    result = run_module(redis_index_info, {}, capsys, expect_failure=True)
    assert "Failed to import the required Python library (pydantic)" in result["msg"]


@pytest.mark.parametrize("params, env, expected", [
    ({"redis_url": "redis://a:1/2"}, {"REDIS_URL": "redis://env:9/0"}, "a:1/2"),
    ({"host": "h", "port": 7}, {"REDIS_URL": "redis://env:9/0"}, "h:7/0"),
    ({}, {"REDIS_URL": "redis://env:9/3"}, "env:9/3"),
    ({}, {}, "localhost:6379/0"),
])
def test_connection_precedence(monkeypatch, params, env, expected):
    monkeypatch.delenv("REDIS_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    class Module:  # the attributes connection_settings reads
        no_log_values: set = set()
        params = {**{k: v.get("default") for k, v in _module_kit.connection_argument_spec().items()}, "host": None}

    Module.params.update(params)
    assert _module_kit.connection_settings(Module).endpoint == expected
