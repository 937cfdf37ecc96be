"""A write quiesce across a replica set (issue 21), on a real primary, replica and Sentinel
(tools/redis_replica_set.py): ACL rules are per server, so the quiesce applies to every member and
survives a failover - the application cannot write on the promoted replica - while Sentinel, which
connects as the `default` user here, can still fail over; the release restores every server byte for
byte, keeps a member that is down recorded, and refuses while a migration holds its lock; a replica that
does not answer fails the quiesce before any server changes.

Each test asserts ACL LIST on every node, byte for byte, and what the application can write."""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import pytest
import redis
from fleet import index_datatype, load_products
from module_runner import run_module
from playbook_runner import ROOT, run_playbook
from quiesce_setup import APP, MIGRATOR, acl_lines, can_write, create_users
from redis_search_server import RedisSearchServer

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.lock import IndexLock
from ansible_collections.indexops.redis_search.plugins.modules import redis_write_quiesce

pytestmark = pytest.mark.replica_set(replicas=1, sentinels=1)

DEFAULT_USER = b"user default on nopass sanitize-payload ~* &* +@all"
MIGRATE = os.path.join(ROOT, "playbooks", "migrate.yml")
FLOAT16_PATCH = {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}}


def free_port() -> int:
    """A port nothing listens on (bound and closed at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_client(node, user=MIGRATOR):
    return redis.Redis(host="127.0.0.1", port=node.port, protocol=2, username=user[0], password=user[1])


def lines_of(node) -> dict:
    conn = node_client(node)
    try:
        return acl_lines(conn)
    finally:
        conn.close()


def every_node(replica_set) -> dict:
    """{node name: {user: ACL LIST line}} of every running node."""
    return {node.name: lines_of(node) for node in replica_set.nodes if node.running and not node.paused}


@pytest.fixture
def users(replica_set):
    """The migrating and the application user on every node (ACL rules are not replicated), and keys."""
    for node in replica_set.nodes:
        conn = redis.Redis(host="127.0.0.1", port=node.port, protocol=2)
        create_users(conn)
        conn.close()
    primary = replica_set.client(protocol=2)
    primary.hset("app:1", "f", "original")
    primary.close()
    replica_set.wait_until_replicas_synced()
    yield replica_set
    # A quiesced default user may not run ACL SETUSER: every node is reset as the migrating user, where it is.
    for node in replica_set.nodes:
        if node.running and not node.paused:
            for user in (MIGRATOR, (None, None)):
                conn = node_client(node, user)
                try:
                    conn.execute_command("ACL", "SETUSER", "default", "reset", *DEFAULT_USER.decode().split()[2:])
                    break
                except redis.exceptions.RedisError:
                    continue
                finally:
                    conn.close()


def sentinel_option(replica_set) -> dict:
    return {"service": replica_set.service, "hosts": replica_set.sentinel_addresses()}


def through_sentinel(replica_set, **args) -> dict:
    return {"sentinel": sentinel_option(replica_set), "username": MIGRATOR[0], "password": MIGRATOR[1], **args}


def with_members(replica_set, primary, **args) -> dict:
    """As an inventory gives it: the primary's URL and every member of the set."""
    return {
        "redis_url": primary.url,
        "members": [node.address for node in replica_set.nodes],
        "username": MIGRATOR[0],
        "password": MIGRATOR[1],
        **args,
    }


def app_can_write(node) -> bool:
    return can_write(f"redis://127.0.0.1:{node.port}/0", *APP, key="app:1")


def denied_by_acl(node, user: str, *command: str) -> bool:
    """ACL DRYRUN: whether `user` is refused `command` on `node` (asked on a replica too, where a real write
    would be refused as READONLY anyway)."""
    conn = node_client(node)
    try:
        reply = conn.execute_command("ACL", "DRYRUN", user, *command)
    finally:
        conn.close()
    return b"no permissions" in reply


def failover_finished(replica_set, timeout: float = 30.0) -> None:
    """Until every Sentinel's record of the service is a primary that is up: Sentinel names the promoted replica
    at once, but reports the service's primary as down until it has reconfigured the other members, and a client
    going through Sentinel (redis-py) refuses a primary flagged down."""
    deadline = time.monotonic() + timeout
    while True:
        flags = [dict(zip(*[iter(s.ask("MASTER", replica_set.service))] * 2))[b"flags"] for s in replica_set.sentinels]
        if all(b"down" not in flag and b"failover" not in flag for flag in flags):
            return
        assert time.monotonic() < deadline, flags
        time.sleep(0.1)


def warned(result: dict, text: str) -> bool:
    return text in json.dumps(result.get("warnings", []))


def test_a_quiesce_through_sentinel_covers_every_server_and_survives_a_failover(users, tmp_path, capsys):
    replica_set = users
    before = every_node(replica_set)
    old = replica_set.primary()
    state = str(tmp_path / "set.acl.json")

    done = run_module(redis_write_quiesce, through_sentinel(replica_set, state_file=state), capsys)
    assert done["changed"]
    assert sorted((m["address"], m["role"]) for m in done["members"]) == sorted(
        (node.address, "primary" if node is old else "replica") for node in replica_set.nodes
    )
    assert sorted((u["member"], u["name"]) for u in done["users"]) == sorted(
        (node.address, name) for node in replica_set.nodes for name in ("app", "default")
    )
    # The Sentinel connects as `default`: quiesced, but it keeps what a failover needs.
    assert done["sentinel_users"] == ["default"]
    assert warned(done, "the Sentinels connect as ACL user(s) default")
    quiesced = every_node(replica_set)
    for node in replica_set.nodes:
        assert quiesced[node.name]["migrator"] == before[node.name]["migrator"]
        assert quiesced[node.name]["app"] != before[node.name]["app"]
        assert denied_by_acl(node, "app", "HSET", "app:1", "f", "v")
        assert denied_by_acl(node, "app", "JSON.SET", "app:1", "$", "1")
        assert denied_by_acl(node, "default", "HSET", "app:1", "f", "v")
        assert denied_by_acl(node, "app", "REPLICAOF", "NO", "ONE")
        assert not denied_by_acl(node, "default", "REPLICAOF", "NO", "ONE")
        assert not denied_by_acl(node, "default", "CONFIG", "REWRITE")
    saved = json.load(open(state, encoding="utf-8"))
    assert sorted(saved["members"]) == sorted(node.address for node in replica_set.nodes)
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    assert not app_can_write(old)

    # A second run changes nothing.
    assert not run_module(redis_write_quiesce, through_sentinel(replica_set, state_file=state), capsys)["changed"]

    replica_set.kill_primary()
    new = replica_set.wait_for_failover(timeout=30)  # Sentinel, as `default`, still promotes the replica
    failover_finished(replica_set)
    assert new is not old
    # The application cannot write on the new primary; its rules there are the quiesced ones, byte for byte.
    assert not app_can_write(new)
    with pytest.raises(redis.exceptions.NoPermissionError):
        redis.Redis(host="127.0.0.1", port=new.port, protocol=2).hset("app:1", "f", "default-wrote")
    assert lines_of(new) == quiesced[new.name]
    reader = node_client(new, APP)
    assert reader.hget("app:1", "f") == b"original"  # reads go on
    reader.close()

    verified = run_module(
        redis_write_quiesce,
        through_sentinel(replica_set, state_file=state, state="verified", observe_seconds=1.0, observe_interval=0.25),
        capsys,
    )
    assert verified["primary"] == new.address and verified["observation"]["quiet"]
    assert warned(verified, f"replica set member {old.address}")  # down: reported

    # The old primary is down: the new one is released, the old one stays recorded and the task says so.
    partial = run_module(
        redis_write_quiesce,
        through_sentinel(replica_set, state_file=state, state="released"),
        capsys,
        expect_failure=True,
    )
    assert partial["error_type"] == "release_incomplete"
    assert f"{old.address} (" in partial["msg"] and "does not answer" in partial["msg"]
    assert every_node(replica_set)[new.name] == before[new.name]
    assert app_can_write(new)
    assert sorted(json.load(open(state, encoding="utf-8"))["members"]) == [old.address]

    # It comes back (without an ACL file its users come from its configuration: here, made again by hand).
    replica_set.restart(old)
    conn = redis.Redis(host="127.0.0.1", port=old.port, protocol=2)
    create_users(conn)
    conn.close()
    finished = run_module(
        redis_write_quiesce, through_sentinel(replica_set, state_file=state, state="released"), capsys
    )
    assert [u["outcome"] for u in finished["users"]] == ["restored_already", "restored_already"]
    assert not os.path.exists(state) and finished["state_file_removed"]
    assert every_node(replica_set) == before


def test_release_restores_every_server_byte_for_byte_and_keeps_what_other_admins_changed(users, tmp_path, capsys):
    replica_set = users
    primary, (replica,) = replica_set.primary(), replica_set.replicas()
    before = every_node(replica_set)
    state = str(tmp_path / "set.acl.json")

    preview = run_module(
        redis_write_quiesce, with_members(replica_set, primary, state_file=state), capsys, check_mode=True
    )
    assert preview["changed"] and not os.path.exists(state) and every_node(replica_set) == before

    done = run_module(redis_write_quiesce, with_members(replica_set, primary, state_file=state), capsys, diff=True)
    # --diff: one per server, its lines before and after, no password hash.
    assert sorted(d["before_header"] for d in done["diff"]) == sorted(
        f"{node.address} ACL users" for node in replica_set.nodes
    )
    assert all(
        "user app on sanitize-payload #<redacted>" in d["before"] and "-@write" in d["after"] for d in done["diff"]
    )
    assert "#" + before[primary.name]["app"].split(b"#")[1][:64].decode() not in done["_raw"]
    assert not app_can_write(primary)
    assert denied_by_acl(replica, "app", "HSET", "app:1", "f", "v")
    # Without Sentinel, the primary watched is the one member whose ROLE says so (here the URL names the replica).
    verified = run_module(
        redis_write_quiesce,
        with_members(
            replica_set, replica, state_file=state, state="verified", observe_seconds=1.0, observe_interval=0.25
        ),
        capsys,
    )
    assert verified["primary"] == primary.address and verified["observation"]["quiet"]
    assert verified["unquiesced_users"] == []
    # Someone rotates the application's password on the replica during the window.
    admin = node_client(replica)
    admin.execute_command("ACL", "SETUSER", APP[0], ">rotated")
    admin.close()

    # A release needs no members: the state file names them.
    released = run_module(
        redis_write_quiesce,
        {
            "redis_url": primary.url,
            "username": MIGRATOR[0],
            "password": MIGRATOR[1],
            "state_file": state,
            "state": "released",
        },
        capsys,
    )
    assert released["changed"] and released["state_file_removed"] and not os.path.exists(state)
    outcomes = {(u["member"], u["name"]): u["outcome"] for u in released["users"]}
    assert outcomes == {
        (primary.address, "app"): "restored",
        (primary.address, "default"): "restored",
        (replica.address, "app"): "restored_keeping_changes",
        (replica.address, "default"): "restored",
    }
    after = every_node(replica_set)
    assert after[primary.name] == before[primary.name]
    assert {k: v for k, v in after[replica.name].items() if k != "app"} == {
        k: v for k, v in before[replica.name].items() if k != "app"
    }
    # The replica's app line: the rotated password added, every rule else as before.
    assert after[replica.name]["app"].split(b" ")[:3] == before[replica.name]["app"].split(b" ")[:3]
    assert after[replica.name]["app"].count(b"#") == 2
    assert app_can_write(primary)
    again = run_module(
        redis_write_quiesce, with_members(replica_set, primary, state_file=state, state="released"), capsys
    )
    assert not again["changed"]


def test_a_replica_that_does_not_answer_fails_the_quiesce_before_any_server_changes(users, tmp_path, capsys):
    replica_set = users
    (replica,) = replica_set.replicas()
    before = every_node(replica_set)
    state = str(tmp_path / "set.acl.json")
    replica_set.pause_replica(replica)  # holds its connections, answers nothing
    try:
        failed = run_module(
            redis_write_quiesce,
            through_sentinel(replica_set, state_file=state, connect_timeout=1.0),
            capsys,
            expect_failure=True,
        )
    finally:
        replica_set.resume_replica(replica)
    assert failed["error_type"] == "member_unreachable"
    assert f"replica set member(s) {replica.address} (" in failed["msg"]
    assert "nothing was quiesced on any server" in failed["msg"] and "\n" not in failed["msg"]
    assert not os.path.exists(state)
    assert every_node(replica_set) == before
    assert app_can_write(replica_set.primary())


def test_release_of_a_replica_set_refuses_while_a_migration_holds_its_lock(users, tmp_path, capsys):
    replica_set = users
    primary = replica_set.primary()
    before = every_node(replica_set)
    state = str(tmp_path / "set.acl.json")
    run_module(redis_write_quiesce, through_sentinel(replica_set, state_file=state), capsys)
    quiesced = every_node(replica_set)
    lock = IndexLock(node_client(primary), "products", "migration", plan_id="0b9a7a041e09")
    lock.acquire()
    try:
        refused = run_module(
            redis_write_quiesce,
            through_sentinel(replica_set, state_file=state, state="released"),
            capsys,
            expect_failure=True,
        )
        assert (
            refused["error_type"] == "release_refused" and "index products is locked by a migration" in refused["msg"]
        )
        assert every_node(replica_set) == quiesced  # no server released
        forced = run_module(
            redis_write_quiesce, through_sentinel(replica_set, state_file=state, state="released", force=True), capsys
        )
        assert forced["changed"] and warned(forced, "released with force while a migration runs")
        assert every_node(replica_set) == before
    finally:
        lock.release()


def test_a_quiesce_of_the_primary_alone_warns_that_a_failover_would_end_the_window(users, tmp_path, capsys):
    replica_set = users
    primary, (replica,) = replica_set.primary(), replica_set.replicas()
    state = str(tmp_path / "primary.acl.json")
    args = {"redis_url": primary.url, "username": MIGRATOR[0], "password": MIGRATOR[1], "state_file": state}
    done = run_module(redis_write_quiesce, args, capsys)
    assert warned(done, f"has replicas ({replica.address}) that keep their own ACL rules")
    assert lines_of(replica)["app"] == every_node(replica_set)[replica.name]["app"]
    assert not denied_by_acl(replica, "app", "HSET", "app:1", "f", "v")  # what the warning is about
    run_module(redis_write_quiesce, {**args, "state": "released"}, capsys)


SENTINEL_USER = ("sentinel-user", "sentinel-secret")
# What Sentinel needs on the servers it watches (Redis's Sentinel documentation).
SENTINEL_RULES = (
    "on allchannels +multi +exec +ping +info +role +publish +subscribe +client|setname +client|kill +script|kill "
    "+slaveof +replicaof +config|rewrite"
).split()


def sentinels_connect_as(replica_set, user: str, timeout: float = 15.0) -> None:
    """Until every running node sees the Sentinels' connections logged in as `user`."""
    deadline = time.monotonic() + timeout
    while True:
        seen = set()
        for node in replica_set.nodes:
            if node.running:
                conn = node_client(node)
                seen |= {c["user"] for c in conn.client_list() if c.get("name", "").startswith("sentinel-")}
                conn.close()
        if seen == {user}:
            return
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)


def set_sentinel_user(replica_set, user: str, password: str) -> None:
    for sentinel in replica_set.sentinels:
        sentinel.ask("SET", replica_set.service, "auth-user", user, "auth-pass", password)
    sentinels_connect_as(replica_set, user or "default")


def test_with_a_user_of_their_own_the_sentinels_keep_failing_over_and_default_loses_everything(users, tmp_path, capsys):
    replica_set = users
    for node in replica_set.nodes:
        conn = node_client(node)
        conn.execute_command("ACL", "SETUSER", SENTINEL_USER[0], "reset", f">{SENTINEL_USER[1]}", *SENTINEL_RULES)
        conn.close()
    set_sentinel_user(replica_set, *SENTINEL_USER)
    try:
        old = replica_set.primary()
        state = str(tmp_path / "set.acl.json")
        done = run_module(redis_write_quiesce, through_sentinel(replica_set, state_file=state), capsys)
        assert done["sentinel_users"] == [SENTINEL_USER[0]]
        for node in replica_set.nodes:
            # `default` is an application user like any other now: denied what could break the window too.
            assert denied_by_acl(node, "default", "REPLICAOF", "NO", "ONE")
            assert denied_by_acl(node, "default", "HSET", "app:1", "f", "v")
            assert denied_by_acl(node, SENTINEL_USER[0], "HSET", "app:1", "f", "v")
            assert not denied_by_acl(node, SENTINEL_USER[0], "SLAVEOF", "NO", "ONE")
        replica_set.kill_primary()
        new = replica_set.wait_for_failover(timeout=30)
        assert new is not old and not app_can_write(new)
        failover_finished(replica_set)
    finally:
        set_sentinel_user(replica_set, "", "")


# --- the roles: the replica set from the inventory, or from Sentinel --------------------------------------


def inventory_file(path, host_vars: dict) -> str:
    """One inventory host standing for the replica set (connection local), YAML."""
    import yaml  # pylint: disable=import-outside-toplevel

    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **host_vars}
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"redis_search": {"hosts": {"catalog": host}}}, handle)
    return str(path)


def migrate_vars(tmp_path) -> dict:
    return {
        "indexops_index": "products",
        "indexops_patch": json.dumps(FLOAT16_PATCH),
        "indexops_accept_data_loss": "yes",
        "indexops_backup_dir": str(tmp_path / "backups"),
        "indexops_quiesce_state_dir": str(tmp_path / "quiesce"),
        "indexops_verify_seconds": 1,
    }


@pytest.mark.playbook
def test_the_migration_window_quiesces_every_member_the_inventory_lists_and_restores_each(users, tmp_path):
    replica_set = users
    primary = replica_set.primary()
    conn = node_client(primary)
    load_products(conn)
    conn.close()
    replica_set.wait_until_replicas_synced()
    before = every_node(replica_set)
    members = [node.address for node in replica_set.nodes]
    inventory = inventory_file(
        tmp_path / "inventory.yml",
        {
            "redis_url": primary.url,
            "redis_connection": {"username": MIGRATOR[0], "password": MIGRATOR[1]},
            "redis_replica_set": members,
        },
    )
    run = run_playbook(MIGRATE, migrate_vars(tmp_path), args=("-i", inventory), verbosity=1)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    # The quiesce task's result: every member quiesced, the primary first.
    quiesced = run.stdout.split("Save the users' exact rules, then deny them every write")[1].split("TASK [")[0]
    for node in replica_set.nodes:
        assert f'"address": "{node.address}"' in quiesced
    assert quiesced.count('"changed": true') >= 4  # app and default on each member
    assert every_node(replica_set) == before  # restored on every server, byte for byte
    assert not os.listdir(tmp_path / "quiesce")
    conn = node_client(replica_set.primary())
    assert index_datatype(conn) == "FLOAT16"
    conn.execute_command("FT.DROPINDEX", "products")
    conn.close()


@pytest.mark.playbook
def test_a_member_the_inventory_lists_that_does_not_answer_fails_the_window_before_anything_changes(users, tmp_path):
    replica_set = users
    primary = replica_set.primary()
    conn = node_client(primary)
    load_products(conn)
    conn.close()
    replica_set.wait_until_replicas_synced()
    before = every_node(replica_set)
    gone = f"127.0.0.1:{free_port()}"
    inventory = inventory_file(
        tmp_path / "inventory.yml",
        {
            "redis_url": primary.url,
            "redis_connection": {"username": MIGRATOR[0], "password": MIGRATOR[1], "connect_timeout": 2},
            "redis_replica_set": [node.address for node in replica_set.nodes] + [gone],
        },
    )
    run = run_playbook(MIGRATE, migrate_vars(tmp_path), args=("-i", inventory))
    assert run.returncode != 0
    assert f"replica set member(s) {gone} (" in run.stdout and "nothing was quiesced on any server" in run.stdout
    assert "nothing was migrated; writes restored" in run.stdout
    assert every_node(replica_set) == before
    conn = node_client(primary)
    assert index_datatype(conn) == "FLOAT32"
    conn.execute_command("FT.DROPINDEX", "products")
    conn.close()


ROLE_QUIESCE = """
- name: Quiesce the replica set of each host
  hosts: redis_search
  gather_facts: false
  tasks:
    - name: Stop writes
      ansible.builtin.include_role:
        name: indexops.redis_search.write_quiesce
      vars:
        write_quiesce_connection: "{{ redis_connection }}"
        write_quiesce_state_dir: "{{ state_dir }}"
        write_quiesce_verify_seconds: 1
"""


@pytest.mark.playbook
def test_the_roles_take_the_replica_set_from_sentinel_and_release_yml_restores_every_server(users, tmp_path):
    replica_set = users
    before = every_node(replica_set)
    state_dir = tmp_path / "quiesce"
    inventory = inventory_file(
        tmp_path / "inventory.yml",
        {
            "redis_connection": {
                "username": MIGRATOR[0],
                "password": MIGRATOR[1],
                "sentinel": sentinel_option(replica_set),
            }
        },
    )
    run = run_playbook(ROLE_QUIESCE, {"state_dir": str(state_dir)}, args=("-i", inventory))
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    for node in replica_set.nodes:
        assert denied_by_acl(node, "app", "HSET", "app:1", "f", "v")
    assert sorted(json.load(open(state_dir / "catalog.acl.json", encoding="utf-8"))["members"]) == sorted(
        node.address for node in replica_set.nodes
    )
    released = run_playbook(
        os.path.join(ROOT, "playbooks", "release.yml"),
        {"indexops_quiesce_state_dir": str(state_dir)},
        args=("-i", inventory),
    )
    assert released.returncode == 0, released.stdout[-5000:] + released.stderr[-2000:]
    assert "changed=1" in released.stdout
    assert every_node(replica_set) == before
    assert not (state_dir / "catalog.acl.json").exists()


# --- the ACL file, server by server ------------------------------------------------------------------------


@pytest.fixture
def aclfile_pair(tmp_path):
    """A primary and its replica, each keeping its users in an ACL file of its own, the test's users saved in it."""
    servers, paths = [], []
    try:
        for name in ("primary", "replica"):
            path = tmp_path / f"{name}.acl"
            path.write_text("user default on nopass ~* &* +@all\n")
            extra = ("--aclfile", str(path))
            if servers:
                extra += ("--replicaof", "127.0.0.1", str(servers[0].port))
            servers.append(RedisSearchServer(extra_args=extra).start())
            paths.append(path)
            conn = redis.Redis.from_url(servers[-1].url, protocol=2)
            create_users(conn)
            conn.execute_command("ACL", "SAVE")
            conn.close()
        yield servers, paths
    finally:
        for server in servers:
            server.stop()


def test_the_acl_file_of_each_server_is_handled_on_its_own(aclfile_pair, tmp_path, capsys):
    (primary, replica), (primary_file, replica_file) = aclfile_pair
    admins = [
        redis.Redis.from_url(s.url, protocol=2, username=MIGRATOR[0], password=MIGRATOR[1]) for s in aclfile_pair[0]
    ]
    # On the primary, someone's change that was never saved: its file differs from its users.
    admins[0].execute_command("ACL", "SETUSER", "unsaved", "on", ">x", "~tmp:*", "+get")
    before = [acl_lines(conn) for conn in admins]
    files_before = [primary_file.read_bytes(), replica_file.read_bytes()]
    state = str(tmp_path / "state" / "set.acl.json")
    address = {s: f"127.0.0.1:{s.port}" for s in (primary, replica)}
    args = {
        "redis_url": primary.url,
        "members": list(address.values()),
        "username": MIGRATOR[0],
        "password": MIGRATOR[1],
        "state_file": state,
        "users": ["app", "default"],
    }
    run_module(redis_write_quiesce, args, capsys)
    admins[1].execute_command("ACL", "SAVE")  # anyone's ACL SAVE on the replica: its file holds the quiesced rules
    assert b"-@write" in replica_file.read_bytes() and b"-@write" not in primary_file.read_bytes()

    released = run_module(redis_write_quiesce, {**args, "state": "released", "users": []}, capsys)
    files = {m["address"]: m["acl_file"] for m in released["members"]}
    assert files[address[replica]] == {
        "path": str(replica_file),
        "matched_before": True,
        "matches_now": True,
        "saves_during_window": 1,
        "saved": True,
    }
    assert files[address[primary]] == {
        "path": str(primary_file),
        "matched_before": False,
        "matches_now": False,
        "saves_during_window": 0,
        "saved": False,
    }
    assert warned(released, f"{address[primary]}: the ACL file {primary_file} differs from the server's users")
    assert [primary_file.read_bytes(), replica_file.read_bytes()] == files_before
    for conn, lines in zip(admins, before):
        assert acl_lines(conn) == lines
    admins[1].execute_command("ACL", "LOAD")  # what a restart of the replica does
    assert acl_lines(admins[1]) == before[1]
    for conn in admins:
        conn.close()


def test_another_replica_sets_state_file_is_refused_before_any_server_is_touched(aclfile_pair, tmp_path, capsys):
    (primary, replica), _files = aclfile_pair
    state = tmp_path / "set.acl.json"
    other = {
        "format": "indexops.redis_search/write-quiesce-set",
        "version": 1,
        "endpoint": "10.9.9.9:6379/0",
        "members": {"10.9.9.9:6379": {}},
    }
    state.write_text(json.dumps(other))
    args = {
        "redis_url": primary.url,
        "members": [f"127.0.0.1:{replica.port}"],
        "username": MIGRATOR[0],
        "password": MIGRATOR[1],
        "state_file": str(state),
    }
    admin = redis.Redis.from_url(primary.url, protocol=2, username=MIGRATOR[0], password=MIGRATOR[1])
    before = acl_lines(admin)
    refused = run_module(redis_write_quiesce, args, capsys, expect_failure=True)
    assert refused["error_type"] == "state_file_invalid"
    assert "belongs to the replica set 10.9.9.9:6379/0 (10.9.9.9:6379)" in refused["msg"]
    assert acl_lines(admin) == before and json.loads(state.read_text()) == other
    admin.close()
