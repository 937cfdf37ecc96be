"""playbooks/patch_wizard.yml driven through a pseudo-terminal, as a person would use it.

Each wrong answer (a datatype this server lacks, a field that does not exist, a name that is
taken, a new vector field, a menu number that is not there) must be refused at once and asked
again; the patch written and the plan shown must hold exactly the accepted answers.
"""

from __future__ import annotations

import os

import pexpect
import pytest
import redis
import yaml
from fleet import index_datatype, load_products
from playbook_runner import BIN, ROOT, collections_path

WIZARD = os.path.join(ROOT, "playbooks", "patch_wizard.yml")


def spawn(redis_url: str, tmp_path, *extra: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_USERNAME", "REDIS_PASSWORD")}
    env.update(
        {
            "REDIS_URL": redis_url,
            "ANSIBLE_COLLECTIONS_PATH": collections_path(),
            "ANSIBLE_NOCOLOR": "1",
            "PWD": str(tmp_path),  # as a shell sets it: the wizard writes relative paths there
            "ANSIBLE_HOME": str(tmp_path / "ansible"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
            "PATH": BIN + os.pathsep + env.get("PATH", ""),
        }
    )
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={BIN}/python\n")
    return pexpect.spawn(
        os.path.join(BIN, "ansible-playbook"),
        ["-i", str(inventory), WIZARD, *extra],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=90,
        dimensions=(200, 250),
    )


def answer(child: pexpect.spawn, prompt: str, reply: str) -> None:
    child.expect_exact(prompt)
    child.sendline(reply)


def choose(child: pexpect.spawn, number: str) -> None:
    answer(child, "Enter a number", number)


@pytest.mark.playbook
def test_wizard_checks_each_answer_against_the_live_index_and_plans_the_patch(clean_redis, redis_url, tmp_path):
    load_products(clean_redis)
    child = spawn(redis_url, tmp_path, "-e", "indexops_target_schema_out=target.yaml")
    transcript = []
    child.logfile_read = _Collect(transcript)

    answer(child, "Index to change", "products")
    child.expect_exact("Server: search")

    choose(child, "9")
    child.expect_exact("9 is not a choice: enter a number from 1 to 7")

    choose(child, "4")  # update the vector field
    answer(child, "Field to update", "embeddings")
    child.expect_exact("the index has no field embeddings; fields: name, category, embedding")
    answer(child, "Field to update", "embedding")
    answer(child, "Algorithm (flat, hnsw) [flat]", "")
    answer(child, "Datatype (", "int8")
    child.expect_exact(
        "int8 is not a datatype this server accepts (search 2.10.5 accepts float32, float64, float16, bfloat16)"
    )
    answer(child, "Datatype (", "float16")
    answer(child, "Distance metric (cosine, l2, ip) [cosine]", "")

    choose(child, "3")  # rename
    answer(child, "Field to rename", "name")
    answer(child, "New name for name", "category")
    child.expect_exact("the index already has a field category")
    answer(child, "New name for name", "title")

    choose(child, "1")  # add
    answer(child, "Field name", "title")
    child.expect_exact("the index already has a field title")
    answer(child, "Field name", "price")
    answer(child, "Field type", "vector")
    child.expect_exact("a new vector field cannot be added by a migration")
    answer(child, "Field type", "numeric")
    answer(child, "Sortable [y/N]", "y")

    choose(child, "2")  # remove
    answer(child, "Field to remove", "price")
    child.expect_exact("the index has no field price")  # added in this session: not a live field
    answer(child, "Field to remove", "category")

    choose(child, "6")  # preview
    child.expect_exact("datatype: float16")

    choose(child, "7")
    child.expect_exact("Supported: True")
    child.expect(pexpect.EOF)
    child.close()
    output = "".join(transcript)
    assert child.exitstatus == 0, output[-4000:]
    assert "failed=0" in output

    patch = yaml.safe_load((tmp_path / "products-patch.yaml").read_text())
    assert patch == {
        "version": 1,
        "changes": {
            "add_fields": [{"name": "price", "type": "numeric", "attrs": {"sortable": True}}],
            "remove_fields": ["category"],
            "update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}],
            "rename_fields": [{"old_name": "name", "new_name": "title"}],
            "index": {},
        },
    }
    target = yaml.safe_load((tmp_path / "target.yaml").read_text())
    fields = {field["name"]: field for field in target["fields"]}
    assert sorted(fields) == ["embedding", "price", "title"] and fields["embedding"]["attrs"]["datatype"] == "float16"
    # The plan ran in check mode: the server still has the old index.
    assert index_datatype(clean_redis) == "FLOAT32"
    assert "field 'embedding': datatype 'float32' -> 'float16'" in output


@pytest.mark.playbook
def test_wizard_refuses_a_taken_index_name_and_writes_nothing_without_changes(clean_redis, redis_url, tmp_path):
    load_products(clean_redis)
    clean_redis.execute_command("FT.CREATE", "orders", "ON", "HASH", "PREFIX", "1", "order:", "SCHEMA", "n", "TEXT")
    child = spawn(redis_url, tmp_path, "-e", "indexops_index=products")
    transcript = []
    child.logfile_read = _Collect(transcript)

    choose(child, "5")
    answer(child, "Index name [products]", "orders")
    child.expect_exact("the server already has an index orders")
    answer(child, "Index name [products]", "")
    answer(child, "Key prefix [product:]", "")
    answer(child, "Language [english]", "klingon")
    child.expect_exact("klingon is not a language the search module stems")
    answer(child, "Language [english]", "")
    choose(child, "7")
    child.expect_exact("no changes - nothing was written")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, "".join(transcript)[-3000:]
    assert not (tmp_path / "products-patch.yaml").exists()
    assert redis.Redis.from_url(redis_url).execute_command("FT._LIST")


class _Collect:
    """pexpect logfile that keeps the transcript (shown when an assertion fails)."""

    def __init__(self, sink: list):
        self.sink = sink

    def write(self, data: str) -> None:
        self.sink.append(data)

    def flush(self) -> None:
        pass
