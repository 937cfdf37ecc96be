"""playbooks/migrate.yml on a fleet: three private Redis servers, one inventory host each.

What is checked is what the servers hold afterwards - the index's vector type, every document's
bytes, every ACL LIST line byte for byte - and what the play reported per host.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml
from fleet import Fleet, documents, failing_interpreter, index_datatype
from playbook_runner import ROOT, run_playbook
from quiesce_setup import APP, acl_lines

MIGRATE = os.path.join(ROOT, "playbooks", "migrate.yml")
PLAN = os.path.join(ROOT, "playbooks", "plan.yml")
ROLLBACK = os.path.join(ROOT, "playbooks", "rollback.yml")
FLOAT16_PATCH = {"version": 1, "changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}}

pytestmark = pytest.mark.playbook


@pytest.fixture(scope="module")
def fleet():
    servers = Fleet(3).start()
    yield servers
    servers.stop()


@pytest.fixture
def ready(fleet):
    fleet.reset()
    return fleet


def migrate_vars(tmp_path, **extra) -> dict:
    values = {
        "indexops_index": "products",
        # As an AWX survey sends it: YAML text, and yes/no strings.
        "indexops_patch": json.dumps(FLOAT16_PATCH),
        # The drop_recreate window (a rewrite plans online by default; test_online_rewrite.py covers that).
        "indexops_mode": "drop_recreate",
        "indexops_accept_data_loss": "yes",
        "indexops_backup_dir": str(tmp_path / "backups"),
        "indexops_quiesce_state_dir": str(tmp_path / "quiesce"),
        "indexops_verify_seconds": 1,
    }
    values.update(extra)
    return values


def recap(stdout: str) -> dict:
    """{host: {ok, changed, failed, rescued, ...}} from the PLAY RECAP."""
    found = {}
    for line in stdout.split("PLAY RECAP")[-1].splitlines():
        if " : " in line:
            host, counters = line.split(" : ", 1)
            found[host.strip()] = {k: int(v) for k, v in (pair.split("=") for pair in counters.split())}
    return found


def snapshot(fleet, host: str) -> dict:
    client = fleet.admin(host)
    try:
        return {"datatype": index_datatype(client), "documents": documents(client), "acl": acl_lines(client)}
    finally:
        client.close()


def test_plan_then_migrate_every_host_then_roll_every_host_back(ready, tmp_path):
    """The workflow of the AWX guide: plans written for review, applied as reviewed, then undone."""
    before = {host: snapshot(ready, host) for host in ready.hosts}
    inventory = ready.inventory(str(tmp_path / "inventory.ini"))
    variables = migrate_vars(tmp_path, indexops_serial=3, indexops_plan_dir=str(tmp_path / "plans"))

    planned = run_playbook(PLAN, variables, args=("-i", inventory))
    assert planned.returncode == 0, planned.stdout[-5000:] + planned.stderr[-2000:]
    assert planned.stdout.count("field 'embedding': datatype 'float32' -> 'float16'") == 3
    assert sorted(os.listdir(tmp_path / "plans")) == [f"{host}-products.yaml" for host in ready.hosts]
    assert {host: snapshot(ready, host) for host in ready.hosts} == before  # planning changed nothing

    done = run_playbook(MIGRATE, variables, args=("-i", inventory))

    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    counts = recap(done.stdout)
    assert sorted(counts) == ready.hosts and all(c["failed"] == 0 for c in counts.values()), counts
    for host in ready.hosts:
        after = snapshot(ready, host)
        assert after["datatype"] == "FLOAT16", host
        assert after["documents"].keys() == before[host]["documents"].keys()
        assert all(len(doc[b"embedding"]) == 16 for doc in after["documents"].values())  # 8 x float16
        assert after["acl"] == before[host]["acl"], host  # every user's rules, byte for byte
        # Each host backed up into its own directory, and the window left no state behind.
        assert len(os.listdir(tmp_path / "backups" / host)) == 1
        assert not os.path.exists(tmp_path / "quiesce" / f"{host}.acl.json")
    assert done.stdout.count("migrated: succeeded") == 3
    for host in ready.hosts:  # each host applied its own reviewed plan
        plan = yaml.safe_load((tmp_path / "plans" / f"{host}-products.yaml").read_text())
        assert plan["checksum"].split(":")[-1][:12] in os.listdir(tmp_path / "backups" / host)[0]
    again = run_playbook(MIGRATE, variables, args=("-i", inventory))
    assert again.returncode == 0 and all(c["changed"] == 0 for c in recap(again.stdout).values()), again.stdout[-3000:]
    app = ready.admin("redis1")
    app.execute_command("AUTH", *APP)
    assert app.hset("product:1", "name", "written after the window") == 0  # writes are back
    app.hset("product:1", "name", "product 1")

    undone = run_playbook(ROLLBACK, variables, args=("-i", inventory))

    assert undone.returncode == 0, undone.stdout[-5000:] + undone.stderr[-2000:]
    assert undone.stdout.count("rolled_back: 120 document(s) restored") == 3
    assert {host: snapshot(ready, host) for host in ready.hosts} == before  # every byte, every ACL line


def test_a_failure_on_one_host_is_rolled_back_released_and_stops_the_rollout(ready, tmp_path):
    before = {host: snapshot(ready, host) for host in ready.hosts}
    # redis2's modules run under an interpreter that kills the migration after its first quantized
    # block: the index is dropped and vectors are rewritten when it dies.
    python = failing_interpreter(str(tmp_path), "quantize:1")
    inventory = ready.inventory(str(tmp_path / "inventory.ini"), {"redis2": {"ansible_python_interpreter": python}})

    done = run_playbook(
        MIGRATE, migrate_vars(tmp_path, indexops_serial=1, indexops_max_fail_percentage=0), args=("-i", inventory)
    )

    assert done.returncode != 0
    counts = recap(done.stdout)
    # Windows of one host with no failure tolerated: redis1 done, redis2 failed, redis3 never started.
    assert counts["redis1"]["failed"] == 0 and counts["redis2"]["failed"] == 1 and counts["redis2"]["rescued"] == 1
    assert "redis3" not in counts, counts
    assert "rolled back from" in done.stdout and "writes restored" in done.stdout

    first = snapshot(ready, "redis1")
    assert first["datatype"] == "FLOAT16" and first["acl"] == before["redis1"]["acl"]

    failed = snapshot(ready, "redis2")
    assert failed["datatype"] == "FLOAT32"
    assert failed["documents"] == before["redis2"]["documents"]  # every byte back
    assert failed["acl"] == before["redis2"]["acl"]  # released although the migration died
    assert not os.path.exists(tmp_path / "quiesce" / "redis2.acl.json")

    untouched = snapshot(ready, "redis3")
    assert untouched == before["redis3"]
    assert not os.path.exists(tmp_path / "backups" / "redis3")


def test_the_awx_survey_asks_for_what_migrate_yml_reads():
    with open(os.path.join(ROOT, "playbooks", "awx", "migrate_survey.json"), encoding="utf-8") as handle:
        survey = json.load(handle)
    with open(MIGRATE, encoding="utf-8") as handle:
        playbook = handle.read()
    with open(os.path.join(ROOT, "playbooks", "vars", "indexops.yml"), encoding="utf-8") as handle:
        playbook += handle.read()
    names = [question["variable"] for question in survey["spec"]]
    assert len(names) == len(set(names))
    for question in survey["spec"]:
        assert question["variable"] in playbook, question["variable"]
        assert question["type"] in ("text", "textarea", "password", "integer", "float", "multiplechoice")
        if question["type"] == "multiplechoice":
            assert question["default"] in question["choices"]
    patch = next(q for q in survey["spec"] if q["variable"] == "indexops_patch")["default"]
    assert yaml.safe_load(patch) == FLOAT16_PATCH


def test_an_online_change_keeps_every_write_going(ready, tmp_path):
    """The plan says online (the documents stay as they are): the window quiesces nothing, and an
    application writing all along is never refused, while the index is swapped on every host."""
    import threading  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    inventory = ready.inventory(str(tmp_path / "inventory.ini"))
    weight = {"version": 1, "changes": {"update_fields": [{"name": "name", "attrs": {"weight": 2}}]}}
    variables = migrate_vars(tmp_path, indexops_serial=3, indexops_patch=json.dumps(weight), indexops_mode="auto")
    writers, refused, stop = [], [], threading.Event()

    def write(host):
        client = ready.admin(host)
        client.execute_command("AUTH", *APP)
        while not stop.is_set():
            try:
                client.hset("product:1", "name", "product 1")
            except Exception as err:  # pylint: disable=broad-exception-caught
                refused.append(f"{host}: {err}")
            time.sleep(0.01)

    for host in ready.hosts:
        writers.append(threading.Thread(target=write, args=(host,)))
        writers[-1].start()
    try:
        done = run_playbook(MIGRATE, variables, args=("-i", inventory))
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert refused == []
    assert not os.path.exists(tmp_path / "quiesce") or os.listdir(tmp_path / "quiesce") == []
    for host in ready.hosts:
        client = ready.admin(host)
        assert client.execute_command("FT.INFO", "products")[1] == b"products--v2", host  # swapped in
        client.close()


BATCH = os.path.join(ROOT, "playbooks", "batch.yml")


def test_batch_playbook_migrates_every_index_of_every_host_in_its_window(ready, tmp_path):
    """batch.yml: one patch over `products*` on three hosts (with a second index on each), writes stopped
    for each window and restored byte for byte, and a second run changes nothing."""
    from fleet import load_products  # pylint: disable=import-outside-toplevel

    for host in ready.hosts:
        client = ready.admin(host)
        client.execute_command(
            "FT.CREATE",
            "products_eu",
            "ON",
            "HASH",
            "PREFIX",
            "1",
            "eu:",
            "SCHEMA",
            "name",
            "TEXT",
            "embedding",
            "VECTOR",
            "FLAT",
            "6",
            "TYPE",
            "FLOAT32",
            "DIM",
            "8",
            "DISTANCE_METRIC",
            "L2",
        )
        for i in range(40):
            client.hset(f"eu:{i}", mapping={"name": f"eu {i}", "embedding": bytes(range(32))})
        client.close()
    del load_products
    before = {host: snapshot(ready, host) for host in ready.hosts}
    inventory = ready.inventory(str(tmp_path / "inventory.ini"))
    variables = migrate_vars(tmp_path, indexops_serial=3, indexops_batch_pattern="products*")
    done = run_playbook(BATCH, variables, args=("-i", inventory))
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    for host in ready.hosts:
        client = ready.admin(host)
        assert index_datatype(client) == "FLOAT16" and index_datatype(client, "products_eu") == "FLOAT16", host
        assert len(client.hget("eu:3", "embedding")) == 16
        client.close()
        assert snapshot(ready, host)["acl"] == before[host]["acl"], host
    assert done.stdout.count("2 succeeded") == 3, done.stdout[-3000:]
    again = run_playbook(BATCH, variables, args=("-i", inventory))
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(c["changed"] == 0 for c in recap(again.stdout).values()), again.stdout[-3000:]
