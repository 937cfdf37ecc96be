"""redis_write_quiesce and the write_quiesce role on a real server, with an application user that
has key patterns, channels, a subcommand, a denied command and two selectors.

The application's own live connection is used throughout: ACL changes apply to it at once.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import redis
from module_runner import run_module
from playbook_process import kill_playbook, local_inventory, start_playbook
from playbook_runner import ROOT, run_playbook
from quiesce_setup import APP, MIGRATOR, acl_lines, create_users, reset_acl

from ansible_collections.indexops.redis_search.plugins.modules import redis_write_quiesce

WRITES = [
    ("HSET", "app:1", "f", "changed"),
    ("DEL", "app:1"),
    ("JSON.SET", "doc:1", "$.n", "2"),
    ("SET", "sel:1", "changed"),
    ("HSET", "sel:2", "f", "v"),
    ("FT.CREATE", "app_idx", "SCHEMA", "t", "TEXT"),
    ("EXPIRE", "app:1", "10"),
]


@pytest.fixture
def users(clean_redis):
    create_users(clean_redis)
    clean_redis.hset("app:1", "f", "original")
    clean_redis.set("sel:1", "original")
    clean_redis.execute_command("JSON.SET", "doc:1", "$", '{"n": 1}')
    yield clean_redis
    reset_acl(clean_redis)


@pytest.fixture
def app(redis_url, users):
    conn = redis.Redis.from_url(redis_url, protocol=2, username=APP[0], password=APP[1])
    conn.ping()  # connected before the quiesce: a live application connection
    yield conn
    conn.close()


def as_migrator(redis_url: str, **args) -> dict:
    return {"redis_url": redis_url, "username": MIGRATOR[0], "password": MIGRATOR[1], **args}


def warned(result: dict, text: str) -> bool:
    """Whether the module warned `text` (ansible-core 2.19 returns warnings as structured events)."""
    return text in json.dumps(result.get("warnings", []))


def assert_writes_refused_reads_work(app) -> None:
    for command in WRITES:
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)
    assert app.hget("app:1", "f") == b"original"
    assert app.get("sel:1") == b"original"
    assert app.execute_command("JSON.GET", "doc:1", "$.n") == b"[1]"


@pytest.mark.parametrize("protocol", [2, 3])
def test_quiesce_refuses_writes_and_release_restores_every_line_byte_for_byte(
    users, app, redis_url, tmp_path, capsys, protocol
):
    before = acl_lines(users)
    state = str(tmp_path / "state" / "redis1.acl.json")

    preview = run_module(
        redis_write_quiesce, as_migrator(redis_url, state_file=state, protocol=protocol), capsys, check_mode=True
    )
    assert preview["changed"] and not os.path.exists(state) and acl_lines(users) == before

    done = run_module(redis_write_quiesce, as_migrator(redis_url, state_file=state, protocol=protocol), capsys)
    assert done["changed"] and done["migrating_user"] == "migrator"
    assert sorted(u["name"] for u in done["users"]) == ["app", "default"]
    assert {"json.set", "json.del", "ft.create", "ft.dropindex", "ft.aliasupdate"} <= set(done["denied_commands"])
    assert "#<redacted>" in json.dumps(done["users"]) and "#" + "0" * 3 not in done["_raw"]
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    assert oct(os.stat(os.path.dirname(state)).st_mode & 0o777) == "0o700"
    saved = json.load(open(state, encoding="utf-8"))
    assert {name: entry["original"].encode() for name, entry in saved["users"].items()} == {
        "app": before["app"],
        "default": before["default"],
    }
    assert_writes_refused_reads_work(app)
    with pytest.raises(redis.exceptions.NoPermissionError):
        users.set("x", "1")  # the default user too
    assert acl_lines(users)["migrator"] == before["migrator"]  # the migrating user is never touched

    again = run_module(redis_write_quiesce, as_migrator(redis_url, state_file=state, protocol=protocol), capsys)
    assert not again["changed"]

    released = run_module(
        redis_write_quiesce, as_migrator(redis_url, state_file=state, state="released", protocol=protocol), capsys
    )
    assert released["changed"] and all(u["identical"] for u in released["users"])
    assert acl_lines(users) == before
    assert not os.path.exists(state)
    assert app.hset("app:1", "f", "after") == 0 and app.execute_command("JSON.SET", "doc:1", "$.n", "3") == b"OK"

    twice = run_module(redis_write_quiesce, as_migrator(redis_url, state_file=state, state="released"), capsys)
    assert not twice["changed"]


def test_quiesce_refuses_to_lock_out_the_migrating_user_and_unknown_names(users, redis_url, tmp_path, capsys):
    state = str(tmp_path / "s.json")
    refused = run_module(
        redis_write_quiesce,
        as_migrator(redis_url, state_file=state, users=["app", "migrator"]),
        capsys,
        expect_failure=True,
    )
    assert refused["error_type"] == "quiesce_refused" and "migrator" in refused["msg"]
    unknown = run_module(
        redis_write_quiesce, as_migrator(redis_url, state_file=state, users=["nobody"]), capsys, expect_failure=True
    )
    assert "nobody" in unknown["msg"] and "app" in unknown["known_users"]
    strange = run_module(
        redis_write_quiesce,
        as_migrator(redis_url, state_file=state, extra_commands=["NO.SUCH"]),
        capsys,
        expect_failure=True,
    )
    assert "no.such" in strange["msg"]
    assert not os.path.exists(state)


def test_verification_fails_on_writes_that_ran_and_reports_rejected_ones(users, app, redis_url, tmp_path, capsys):
    writer = redis.Redis.from_url(redis_url, username=MIGRATOR[0], password=MIGRATOR[1])
    stop = threading.Event()

    def keep_writing(client, command):
        while not stop.is_set():
            try:
                client.execute_command(*command)
            except redis.exceptions.NoPermissionError:
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=keep_writing, args=(writer, ("JSON.SET", "doc:2", "$", "1")))
    thread.start()
    try:
        failed = run_module(
            redis_write_quiesce,
            as_migrator(redis_url, state="verified", observe_seconds=1, observe_interval=0.2),
            capsys,
            expect_failure=True,
        )
    finally:
        stop.set()
        thread.join()
    assert failed["error_type"] == "writes_observed"
    assert failed["observation"]["writes_executed"] > 0 and failed["observation"]["commands"]["json.set"]["calls"] > 0
    assert failed["observation"]["data_changes"] > 0

    # Quiesced, the application still tries: refused writes are counted, and tolerated unless asked.
    state = str(tmp_path / "s.json")
    run_module(redis_write_quiesce, as_migrator(redis_url, state_file=state), capsys)
    stop.clear()
    thread = threading.Thread(target=keep_writing, args=(app, ("HSET", "app:1", "f", "x")))
    thread.start()
    try:
        quiet = run_module(
            redis_write_quiesce,
            as_migrator(redis_url, state="verified", observe_seconds=1, observe_interval=0.2),
            capsys,
        )
        strict = run_module(
            redis_write_quiesce,
            as_migrator(redis_url, state="verified", observe_seconds=1, fail_on_rejected=True),
            capsys,
            expect_failure=True,
        )
    finally:
        stop.set()
        thread.join()
        run_module(redis_write_quiesce, as_migrator(redis_url, state_file=state, state="released"), capsys)
    assert quiet["observation"]["quiet"] and quiet["observation"]["writes_executed"] == 0
    assert (
        quiet["observation"]["writes_rejected"] > 0 and quiet["observation"]["commands"]["hset"]["rejected_calls"] > 0
    )
    assert warned(quiet, "a client still tries to write")
    assert strict["observation"]["writes_rejected"] > 0
    assert app.hget("app:1", "f") == b"original"


ROLE_PLAY = """
- name: Quiesce, then watch for a long time (the test kills it meanwhile)
  hosts: redis_search
  gather_facts: false
  tasks:
    - name: Stop writes
      ansible.builtin.include_role:
        name: indexops.redis_search.write_quiesce
      vars:
        write_quiesce_connection: "{{ {'redis_url': redis_url} | combine(redis_connection) }}"
        write_quiesce_state_dir: "{{ state_dir }}"
        write_quiesce_verify_seconds: 120
"""


@pytest.mark.playbook
def test_release_playbook_restores_writes_after_a_killed_run(users, app, redis_url, tmp_path):
    before = acl_lines(users)
    connection = repr({"username": MIGRATOR[0], "password": MIGRATOR[1]})
    inventory = local_inventory(str(tmp_path / "inventory.ini"), "redis1", redis_url, redis_connection=connection)
    state_dir = tmp_path / "quiesce"

    run = start_playbook(ROLE_PLAY, inventory, json.dumps({"state_dir": str(state_dir)}))
    deadline = time.monotonic() + 120
    while acl_lines(users)["app"] == before["app"] or not (state_dir / "redis1.acl.json").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.stdout.read() if run.poll() is not None else ""
        time.sleep(0.1)
    time.sleep(0.5)  # into the observation window
    output = kill_playbook(run)
    assert "Prove that no write arrives during the observation window" in output

    assert_writes_refused_reads_work(app)  # the killed run left the server quiesced

    released = run_playbook(
        os.path.join(ROOT, "playbooks", "release.yml"),
        {"indexops_quiesce_state_dir": str(state_dir)},
        args=("-i", inventory),
    )
    assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-2000:]
    assert "redis1                     : ok=" in released.stdout and "changed=1" in released.stdout
    assert acl_lines(users) == before  # byte for byte
    assert app.hset("app:1", "f", "after") == 0

    again = run_playbook(
        os.path.join(ROOT, "playbooks", "release.yml"),
        {"indexops_quiesce_state_dir": str(state_dir)},
        args=("-i", inventory),
    )
    assert again.returncode == 0 and "changed=0" in again.stdout
