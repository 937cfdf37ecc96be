"""A replica set's quiesce state file and what a Sentinel user keeps - no server."""

from __future__ import annotations

import os

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce import sentinel_support, state_store
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce.set_state import SetStateFile, is_set_file
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce.state_store import StateFileInvalid


def member_state(address: str) -> dict:
    return state_store.new_state(address, "run-1", "migrator", ["json.set"])


def test_each_member_is_kept_under_its_address_and_the_file_goes_with_the_last(tmp_path):
    path = str(tmp_path / "quiesce" / "set.acl.json")
    store = SetStateFile(path, "sentinel s@h:26379")
    assert store.members() == [] and store.member("10.0.0.1:6379").load() is None
    store.member("10.0.0.1:6379").save(member_state("10.0.0.1:6379"))
    store.member("10.0.0.2:6379").save(member_state("10.0.0.2:6379"))
    assert is_set_file(path) and oct(os.stat(path).st_mode & 0o777) == "0o600"
    again = SetStateFile(path, "sentinel s@h:26379")
    assert again.members() == ["10.0.0.1:6379", "10.0.0.2:6379"]
    loaded = again.member("10.0.0.2:6379").load()
    assert loaded["endpoint"] == "10.0.0.2:6379" and loaded["denied_commands"] == ["json.set"]
    loaded["users"]["app"] = {"original": "user app on", "quiesced": None}
    assert again.member("10.0.0.2:6379").load()["users"] == {}  # a change counts once saved
    assert again.member("10.0.0.1:6379").remove() and not again.member("10.0.0.1:6379").remove()
    assert os.path.exists(path)
    assert again.member("10.0.0.2:6379").remove()
    assert not os.path.exists(path) and not is_set_file(path)


def test_a_file_of_one_kind_is_refused_with_the_options_of_the_other(tmp_path):
    single = str(tmp_path / "one.acl.json")
    state_store.save(single, member_state("10.0.0.1:6379/0"))
    with pytest.raises(
        StateFileInvalid, match=r"holds the quiesce of one server \(10.0.0.1:6379/0\), not of a replica"
    ):
        SetStateFile(single, "x")
    pair = str(tmp_path / "set.acl.json")
    SetStateFile(pair, "x").member("10.0.0.1:6379").save(member_state("10.0.0.1:6379"))
    with pytest.raises(StateFileInvalid, match=r"holds the quiesce of a replica set \(10.0.0.1:6379\), not of one"):
        state_store.load(pair, "10.0.0.1:6379/0")


def test_another_replica_sets_file_is_refused(tmp_path):
    path = str(tmp_path / "set.acl.json")
    SetStateFile(path, "sentinel a@h:26379").member("10.0.0.1:6379").save(member_state("10.0.0.1:6379"))
    SetStateFile(path, "sentinel a@h:26379").check_same_set(["10.9.9.9:6379"])  # same set, a new member
    SetStateFile(path, "sentinel b@h:26379").check_same_set(["10.0.0.1:6379"])  # a member in common
    with pytest.raises(StateFileInvalid, match="belongs to the replica set sentinel a@h:26379"):
        SetStateFile(path, "sentinel b@h:26379").check_same_set(["10.9.9.9:6379"])


def test_the_users_of_the_sentinels_keep_only_what_a_failover_needs():
    deny = ["client|kill", "config|rewrite", "config|set", "json.set", "replicaof", "script|kill", "slaveof"]
    assert sentinel_support.denied_to("app", deny, ["default"]) == deny
    assert sentinel_support.denied_to("default", deny, ["default"]) == ["config|set", "json.set"]
