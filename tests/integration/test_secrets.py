"""Passwords never appear in module output, in Ansible's log (even at -vvvv) or in any file a module writes."""

from __future__ import annotations

import os
import tempfile

import pytest
from playbook_runner import run_playbook
from redis_search_server import RedisSearchServer

PASSWORD = "Pw-9c1e7f0d-never-show"
PLAYBOOK = """
- name: Secrets stay secret
  hosts: localhost
  gather_facts: false
  vars_files:
    - secrets.yml  # as a Vault-encrypted file or an AWX credential would supply it
  tasks:
    - name: Password given as a module option from a variable
      indexops.redis_search.redis_index_info:
        host: 127.0.0.1
        port: "{{ port }}"
        password: "{{ redis_password }}"
        index: demo
      register: by_option

    # REDIS_URL and REDIS_PASSWORD are in the environment of ansible-playbook itself, the way an
    # AWX/Tower credential injects them (not the task `environment:` keyword, which -vvvv prints).
    - name: Password inside REDIS_URL from the environment
      indexops.redis_search.redis_index_info:
        index: demo
      register: by_url

    - name: Password from REDIS_PASSWORD
      indexops.redis_search.redis_index_info:
        host: 127.0.0.1
        port: "{{ port }}"

    - name: Wrong password fails without echoing either password
      indexops.redis_search.redis_index_info:
        redis_url: "redis://default:{{ redis_password }}-wrong@127.0.0.1:{{ port }}/0"
      ignore_errors: true
      register: wrong

    - name: The failure is an authentication failure
      ansible.builtin.assert:
        that:
          - wrong is failed
          - wrong.error_type == 'connection_failed'
          - by_option.exists and by_url.exists
"""


def assert_invocation_masked(output: str) -> None:
    """Where ansible-core prints each task's invocation at -vvvv (2.16 to 2.19 do), the password options in it are
    masked; 2.21 no longer returns the invocation, and the password must then be nowhere else either."""
    import ansible  # pylint: disable=import-outside-toplevel

    if tuple(int(part) for part in ansible.__version__.split(".")[:2]) < (2, 21):
        assert '"invocation"' in output and "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output


@pytest.mark.playbook
def test_password_absent_at_vvvv():
    with RedisSearchServer(password=PASSWORD) as server:
        import redis  # pylint: disable=import-outside-toplevel

        client = redis.Redis(port=server.port, password=PASSWORD)
        client.execute_command("FT.CREATE", "demo", "SCHEMA", "t", "TEXT")
        done = run_playbook(
            PLAYBOOK,
            extra_vars={"port": server.port},
            verbosity=4,
            files={"secrets.yml": f"redis_password: {PASSWORD}\n"},
            env={"REDIS_URL": f"redis://default:{PASSWORD}@127.0.0.1:{server.port}/0", "REDIS_PASSWORD": PASSWORD},
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "ok=5" in done.stdout and "failed=0" in done.stdout and "ignored=1" in done.stdout
    assert PASSWORD not in output
    assert_invocation_masked(output)


# --- every module, every file it writes (issue 8) -----------------------------------------------------------

MIGRATOR_PASSWORD = "Mg-5b3e91d2-never-in-a-file"
EVERY_MODULE = """
- name: Every module with a password, at -vvvv
  hosts: localhost
  gather_facts: false
  vars_files:
    - secrets.yml
  module_defaults:
    group/indexops.redis_search.redis_search: "{{ connection }}"
  tasks:
    - name: Info
      indexops.redis_search.redis_index_info:
        index: docs
        backup_dir: "{{ out }}/backups"

    - name: Plan, written to a file
      indexops.redis_search.redis_index_plan:
        index: docs
        batch_size: 20
        patch: {version: 1, changes: {update_fields: [{name: vec, attrs: {datatype: float16}}]}}
        plan_out: "{{ out }}/plan.yaml"

    - name: Migrate, with a report
      indexops.redis_search.redis_index_migrate:
        plan_file: "{{ out }}/plan.yaml"
        backup_dir: "{{ out }}/backups"
        report_out: "{{ out }}/report.yaml"
        accept_data_loss: true

    - name: Validate
      indexops.redis_search.redis_index_validate:
        plan_file: "{{ out }}/plan.yaml"
        backup_dir: "{{ out }}/backups"

    - name: A failing task (a patch that does not fit) fails without the password
      indexops.redis_search.redis_index_migrate:
        index: docs
        patch: {version: 1, changes: {update_fields: [{name: nosuch, attrs: {weight: 2}}]}}
        backup_dir: "{{ out }}/backups"
      register: refused
      ignore_errors: true

    - name: Roll back
      indexops.redis_search.redis_index_rollback:
        plan_file: "{{ out }}/plan.yaml"
        backup_dir: "{{ out }}/backups"

    - name: Batch plan, written to a file
      indexops.redis_search.redis_index_batch:
        state: planned
        indexes: [docs]
        patch: {version: 1, changes: {update_fields: [{name: vec, attrs: {datatype: float16}}]}}
        plan_out: "{{ out }}/batch.yaml"

    - name: Batch apply, with its state file and report
      indexops.redis_search.redis_index_batch:
        state: applied
        plan_file: "{{ out }}/batch.yaml"
        state_file: "{{ out }}/batch.state.json"
        report_out: "{{ out }}/batch.report.yaml"
        backup_dir: "{{ out }}/batch-backups"
        accept_data_loss: true

    - name: Batch status
      indexops.redis_search.redis_index_batch:
        state: status
        plan_file: "{{ out }}/batch.yaml"
        state_file: "{{ out }}/batch.state.json"

    - name: Quiesce the application's writes, with a state file
      indexops.redis_search.redis_write_quiesce:
        state: quiesced
        users: [app_secrets]
        state_file: "{{ out }}/quiesce/state.json"

    - name: Copy the quiesce state file before its release removes it
      ansible.builtin.copy:
        src: "{{ out }}/quiesce/state.json"
        dest: "{{ out }}/quiesce-state-kept.json"
        mode: "0600"

    - name: Release them
      indexops.redis_search.redis_write_quiesce:
        state: released
        state_file: "{{ out }}/quiesce/state.json"

    - name: The runs did what they should
      ansible.builtin.assert:
        that:
          - refused is failed
"""


def files_holding(root, secret: str, skip=()) -> list:
    """Every file under `root` whose bytes hold `secret` (as is, or URL-encoded)."""
    import urllib.parse  # pylint: disable=import-outside-toplevel

    needles = {secret.encode(), urllib.parse.quote(secret, safe="").encode()}
    found = []
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if name in skip or os.path.islink(path):
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            if any(needle in data for needle in needles):
                found.append(path)
    return found


@pytest.mark.playbook
@pytest.mark.parametrize("given", ["in_redis_url", "as_password_option"])
def test_every_module_keeps_the_password_out_of_output_and_files(
    given, clean_redis, redis_server, tmp_path, monkeypatch
):
    import numpy  # pylint: disable=import-outside-toplevel
    from datasets import wait_for  # pylint: disable=import-outside-toplevel

    clean_redis.execute_command(
        "ACL", "SETUSER", "migrator_secrets", "reset", "on", f">{MIGRATOR_PASSWORD}", "~*", "&*", "+@all"
    )
    clean_redis.execute_command("ACL", "SETUSER", "app_secrets", "reset", "on", ">app-pw-1", "~*", "+@all")
    try:
        clean_redis.execute_command(
            "FT.CREATE",
            "docs",
            "ON",
            "HASH",
            "PREFIX",
            "1",
            "d:",
            "SCHEMA",
            "t",
            "TEXT",
            "vec",
            "VECTOR",
            "FLAT",
            "6",
            "TYPE",
            "FLOAT32",
            "DIM",
            "4",
            "DISTANCE_METRIC",
            "L2",
        )
        vectors = numpy.random.default_rng(3).random((60, 4), dtype=numpy.float32)
        for i in range(60):
            clean_redis.hset(f"d:{i}", mapping={"t": f"doc {i}", "vec": vectors[i].tobytes()})
        wait_for(clean_redis, "docs", 60)
        port = redis_server.port
        if given == "in_redis_url":
            connection = {"redis_url": f"redis://migrator_secrets:{{{{ redis_password }}}}@127.0.0.1:{port}/0"}
        else:
            connection = {
                "host": "127.0.0.1",
                "port": port,
                "username": "migrator_secrets",
                "password": "{{ redis_password }}",
            }
        out = tmp_path / "out"
        out.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the playbook's own directory is under tmp_path
        done = run_playbook(
            EVERY_MODULE,
            extra_vars={"out": str(out), "connection": connection},
            verbosity=4,
            files={"secrets.yml": f"redis_password: {MIGRATOR_PASSWORD}\n"},
        )
    finally:
        clean_redis.execute_command("ACL", "DELUSER", "migrator_secrets", "app_secrets")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "failed=0" in done.stdout and "ignored=1" in done.stdout, done.stdout[-2000:]
    assert MIGRATOR_PASSWORD not in output
    assert_invocation_masked(output)
    # Every file the modules wrote: plans, batch plan and state, backups, reports, the quiesce state.
    written = {os.path.relpath(os.path.join(d, n), out) for d, _s, names in os.walk(out) for n in names}
    for expected in (
        "plan.yaml",
        "report.yaml",
        "batch.yaml",
        "batch.state.json",
        "batch.report.yaml",
        "quiesce-state-kept.json",
    ):
        assert expected in written, sorted(written)
    assert any(name.startswith("backups/docs-") and name.endswith("data.bin") for name in written)
    assert any(name.startswith("batch-backups/") and name.endswith("header.json") for name in written)
    assert files_holding(out, MIGRATOR_PASSWORD) == []
    # Nor anything else under the run's directories (Ansible's temporary files), but the vars file it was given.
    assert files_holding(tmp_path, MIGRATOR_PASSWORD, skip=("secrets.yml",)) == []
