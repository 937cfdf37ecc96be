"""Each job of docs/awx.md, run through ansible-runner the way AWX runs it (awx_job.py): what the job reports
(status, rc, the events per host) and what the Redis servers and the shared storage hold afterwards."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from awx_job import hosts_of, survey_answers
from fleet import documents, index_datatype
from quiesce_setup import acl_lines

pytestmark = pytest.mark.playbook

FLOAT16_PATCH = (
    "version: 1\nchanges:\n  update_fields:\n    - name: embedding\n      attrs:\n        datatype: float16\n"
)
PLAN_TASK = "Plan the change"
MIGRATE_TASK = "Migrate (re-running resumes where it stopped)"
ROLLBACK_TASK = "Roll the migration back from its backup"
RELEASE_TASK = "Give every saved user its command rules back (nothing saved, nothing to do)"
DENY_TASK = "Save the users' exact rules, then deny them every write"


def snapshot(fleet) -> dict:
    """Per host: the index's vector type, every document's bytes, every ACL LIST line byte for byte."""
    found = {}
    for host in fleet.hosts:
        client = fleet.admin(host)
        try:
            found[host] = {"datatype": index_datatype(client), "documents": documents(client), "acl": acl_lines(client)}
        finally:
            client.close()
    return found


def plan_job_vars(plan_dir: str) -> dict:
    """The plan job of docs/awx.md: the survey's first two questions, and the workflow's plan directory."""
    answers = survey_answers(indexops_index="products", indexops_patch=FLOAT16_PATCH)
    return {
        "indexops_index": answers["indexops_index"],
        "indexops_patch": answers["indexops_patch"],
        "indexops_plan_dir": plan_dir,
    }


def test_plan_job_on_first_use_writes_each_hosts_plan_in_check_mode(awx, ready, tmp_path):
    before = snapshot(ready)
    plan_dir = tmp_path / "storage" / "plans"  # does not exist yet: the first plan job creates it
    job = awx.job("plan.yml", plan_job_vars(str(plan_dir)), check=True, diff=True)

    assert (job.status, job.rc) == ("successful", 0), job.explain()
    planned = job.results(PLAN_TASK)
    assert hosts_of(planned, "runner_on_ok") == ready.hosts
    for host, found in planned.items():
        diff = found["res"]["diff"]  # "Show changes": each host's schema before and after
        assert "FLOAT32" in diff["before"].upper() and "FLOAT16" in diff["after"].upper()
        with open(plan_dir / f"{host}-products.yaml", encoding="utf-8") as handle:
            written = yaml.safe_load(handle)
        assert written["checksum"] == found["res"]["plan"]["checksum"]
    assert sorted(os.listdir(plan_dir)) == [f"{host}-products.yaml" for host in ready.hosts]
    assert snapshot(ready) == before  # a plan job changes nothing on the servers


def test_workflow_plan_then_migrate_applies_the_reviewed_plans_with_each_hosts_own_settings(awx, ready, tmp_path):
    """The workflow: plan (check) -> approval -> migrate with the same survey answers. Per-host settings of the
    inventory hold on their host: redis2 stops writes another way (strategy none) and keeps its backups
    elsewhere; the survey's answers, extra vars, would override them everywhere if it carried them."""
    awx.inventory["redis_search"]["hosts"]["redis2"].update(
        {
            "indexops_quiesce_strategy": "none",
            "indexops_backup_dir": str(tmp_path / "storage" / "redis2-backups"),
        }
    )
    before = snapshot(ready)
    plan_dir = str(tmp_path / "storage" / "plans")
    answers = survey_answers(
        indexops_index="products",
        indexops_patch=FLOAT16_PATCH,
        indexops_plan_dir=plan_dir,
        indexops_accept_data_loss="yes",
        indexops_verify_seconds=1,
        indexops_serial=2,
    )

    plan = awx.job("plan.yml", answers, check=True, diff=True)  # the workflow's survey reaches every node
    assert (plan.status, plan.rc) == ("successful", 0), plan.explain()
    reviewed = {}
    for host in ready.hosts:
        with open(os.path.join(plan_dir, f"{host}-products.yaml"), encoding="utf-8") as handle:
            reviewed[host] = yaml.safe_load(handle)["checksum"]

    migrate = awx.job("migrate.yml", answers)
    assert (migrate.status, migrate.rc) == ("successful", 0), migrate.explain()
    applied = migrate.results(MIGRATE_TASK)
    assert hosts_of(applied, "runner_on_ok") == ready.hosts
    assert {host: found["res"]["plan"]["checksum"] for host, found in applied.items()} == reviewed
    after = snapshot(ready)
    assert {host: after[host]["datatype"] for host in ready.hosts} == {"redis1": "FLOAT16", "redis2": "FLOAT16"}
    assert {host: after[host]["acl"] for host in ready.hosts} == {host: before[host]["acl"] for host in ready.hosts}

    # Each host's own settings: redis1 quiesced its ACL users, redis2 (strategy none) did not touch them.
    denied = migrate.results(DENY_TASK)
    assert hosts_of(denied, "runner_on_ok") == ["redis1"] and "redis2" not in denied
    assert os.listdir(tmp_path / "storage" / "redis2-backups" / "redis2")
    assert sorted(os.listdir(tmp_path / "storage" / "backups")) == ["redis1"]

    again = awx.job("migrate.yml", answers)
    assert (again.status, again.rc) == ("successful", 0), again.explain()
    assert again.changed_hosts() == {}  # the reviewed plans were applied: a second run changes nothing
    assert snapshot(ready) == after


def test_rollback_job_restores_every_host(awx, ready, tmp_path):
    before = snapshot(ready)
    answers = survey_answers(
        indexops_index="products",
        indexops_patch=FLOAT16_PATCH,
        indexops_accept_data_loss="yes",
        indexops_verify_seconds=1,
    )
    migrate = awx.job("migrate.yml", answers)
    assert (migrate.status, migrate.rc) == ("successful", 0), migrate.explain()
    assert {state["datatype"] for state in snapshot(ready).values()} == {"FLOAT16"}

    # The rollback job template: same survey (its index question is what it reads), a Run job with "Show changes".
    rollback = awx.job("rollback.yml", answers, diff=True)
    assert (rollback.status, rollback.rc) == ("successful", 0), rollback.explain()
    rolled = rollback.results(ROLLBACK_TASK)
    assert hosts_of(rolled, "runner_on_ok") == ready.hosts
    assert all(found["res"]["result"] == "rolled_back" and found["res"]["restored"] == 120 for found in rolled.values())
    assert all("FLOAT32" in found["res"]["diff"]["after"].upper() for found in rolled.values())
    assert snapshot(ready) == before  # every byte, and every ACL line as it was before the window


def test_release_job_gives_writes_back_after_an_interrupted_window(awx, ready, tmp_path):
    """A window whose job was killed after the quiesce: release.yml gives every user its rules back, byte for
    byte, and a second release finds nothing to do."""
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import (
        ConnectionSettings,
    )
    from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce import runner

    before = snapshot(ready)
    state_dir = tmp_path / "storage" / "quiesce"
    state_dir.mkdir(parents=True)
    for host, server in zip(ready.hosts, ready.servers):  # what the killed job's quiesce left: users denied, state
        client = ready.admin(host)
        try:
            runner.quiesce(client, ConnectionSettings(url=server.url).endpoint, str(state_dir / f"{host}.acl.json"))
        finally:
            client.close()
    assert all(snapshot(ready)[host]["acl"] != before[host]["acl"] for host in ready.hosts)

    check = awx.job("release.yml", {}, check=True, diff=True)
    assert (check.status, check.rc) == ("successful", 0), check.explain()
    assert sorted(check.changed_hosts()) == ready.hosts
    assert all(
        snapshot(ready)[host]["acl"] != before[host]["acl"] for host in ready.hosts
    )  # a Check job writes nothing

    release = awx.job("release.yml", {}, diff=True)
    assert (release.status, release.rc) == ("successful", 0), release.explain()
    released = release.results(RELEASE_TASK)
    assert hosts_of(released, "runner_on_ok") == ready.hosts
    assert all(found["res"]["changed"] and found["res"]["state_file_removed"] for found in released.values())
    assert snapshot(ready) == before
    assert os.listdir(state_dir) == []

    again = awx.job("release.yml", {})
    assert (again.status, again.rc) == ("successful", 0), again.explain()
    assert again.changed_hosts() == {}


def test_the_survey_carries_only_per_job_choices():
    """Survey answers are extra vars, which beat every inventory variable: a question for a per-host setting
    would override it on every host. None of the survey's variables is one the example inventory sets per host
    or per group."""
    with open(
        os.path.join(os.path.dirname(__file__), "..", "..", "playbooks", "awx", "migrate_survey.json"), encoding="utf-8"
    ) as handle:
        survey = {question["variable"] for question in json.load(handle)["spec"]}
    with open(
        os.path.join(os.path.dirname(__file__), "..", "..", "playbooks", "inventory", "example.yml"), encoding="utf-8"
    ) as handle:
        inventory = yaml.safe_load(handle)["redis_search"]
    per_host = set(inventory["vars"]) | {name for host in inventory["hosts"].values() for name in host}
    assert per_host >= {"indexops_quiesce_strategy", "indexops_backup_dir", "indexops_quiesce_state_dir"}
    assert survey & per_host == set()
