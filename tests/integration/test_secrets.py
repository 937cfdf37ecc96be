"""Passwords never appear in module output or Ansible's log, even at -vvvv."""
from __future__ import annotations

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


@pytest.mark.playbook
def test_password_absent_at_vvvv():
    with RedisSearchServer(password=PASSWORD) as server:
        import redis  # pylint: disable=import-outside-toplevel
        client = redis.Redis(port=server.port, password=PASSWORD)
        client.execute_command("FT.CREATE", "demo", "SCHEMA", "t", "TEXT")
        done = run_playbook(PLAYBOOK, extra_vars={"port": server.port}, verbosity=4,
                            files={"secrets.yml": f"redis_password: {PASSWORD}\n"},
                            env={"REDIS_URL": f"redis://default:{PASSWORD}@127.0.0.1:{server.port}/0",
                                 "REDIS_PASSWORD": PASSWORD})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "ok=5" in done.stdout and "failed=0" in done.stdout and "ignored=1" in done.stdout
    assert PASSWORD not in output
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output  # the invocation was printed, masked
