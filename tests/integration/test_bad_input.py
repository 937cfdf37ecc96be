"""Hostile input, module by module: each case fails with one line naming the problem and the fix,
and the server is exactly as it was (every key's bytes, the index list, each index's FT.INFO).

To add a case, append a Case to the module's table: `args` are the module's options (the
connection to the test server is added unless the case sets `connection`); `$url`, `$port`,
`$tmp`, `$http_port`, `$close_port` and `$silent_port` in any string are replaced at run time;
`expect` are substrings the msg must contain (name the problem and the fix).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
import string
import struct
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy
import pytest
from datasets import wait_for
from fake_endpoints import FakeEndpoint
from module_runner import run_module

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import SchemaInvalid
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis import create_check
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.model import parse_schema
from ansible_collections.indexops.redis_search.plugins.modules import (
    redis_index_batch,
    redis_index_info,
    redis_index_migrate,
    redis_index_plan,
    redis_index_rollback,
    redis_index_validate,
    redis_write_quiesce,
)

DIMS = 8
READER_PASSWORD = "reader-pw-7c1"  # an ACL user `reader` with this password exists during every case
# The live index every case runs against (see `products`), as a target schema.
TARGET = {
    "index": {"name": "products", "prefix": "product:", "storage_type": "hash"},
    "fields": [
        {"name": "name", "type": "text"},
        {"name": "category", "type": "tag"},
        {"name": "price", "type": "numeric"},
        {
            "name": "embedding",
            "type": "vector",
            "attrs": {"algorithm": "hnsw", "dims": DIMS, "distance_metric": "cosine", "datatype": "float32"},
        },
    ],
}
# What FT.INFO says of an index's definition and content. Not its statistics: reads move some
# (number_of_uses, cursor_stats) and the server's background GC others (memory sizes, blocks).
DEFINING_INFO = {
    "index_name",
    "index_options",
    "index_definition",
    "attributes",
    "stopwords_list",
    "num_docs",
    "max_doc_id",
    "hash_indexing_failures",
}


@dataclass
class Case:
    id: str
    args: dict
    expect: list
    connection: Optional[dict] = None
    # Connection failures must come within about connect_timeout, not after redis-py's retries.
    max_seconds: Optional[float] = None


def patch(**changes: Any) -> dict:
    return {"version": 1, "changes": changes}


def update(name: str, **attrs: Any) -> dict:
    return patch(update_fields=[{"name": name, "attrs": attrs}])


def target(edit) -> dict:
    data = copy.deepcopy(TARGET)
    edit(data)
    return data


def vector_attrs(**attrs: Any):
    return lambda data: data["fields"][3]["attrs"].update(attrs)


# --- shared cases: connection options, every module refuses them the same way ------------------------

CONNECTION_CASES = [
    Case(
        "db-option",
        {},
        ["database 1 is not supported", "database 0", "db: 0"],
        connection={"host": "127.0.0.1", "port": "$port", "db": 1},
    ),
    Case(
        "db-in-url",
        {},
        ["redis_url (or REDIS_URL) selects database 3", "/0 at the end of redis_url"],
        connection={"redis_url": "redis://127.0.0.1:$port/3"},
    ),
    Case(
        "db-in-url-query",
        {},
        ["redis_url (or REDIS_URL) selects database 2"],
        connection={"redis_url": "redis://127.0.0.1:$port/0?db=2"},
    ),
    Case(
        "port-99999",
        {},
        ["port must be 65535 or less, not 99999", "set port to 65535 or less"],
        connection={"host": "127.0.0.1", "port": 99999},
    ),
    Case("socket-timeout-0", {"socket_timeout": 0}, ["socket_timeout must be more than 0", "set socket_timeout"]),
    Case("connect-timeout-0", {"connect_timeout": 0}, ["connect_timeout must be more than 0"]),
    Case("connect-timeout-negative", {"connect_timeout": -3}, ["connect_timeout must be more than 0, not -3"]),
    Case(
        "tls-against-plain-server",
        {"connect_timeout": 2, "tls_verify": False},
        ["cannot connect to 127.0.0.1:$port/0", "TLS handshake failed", "speaks TLS"],
        connection={"redis_url": "rediss://127.0.0.1:$port/0"},
        max_seconds=8,
    ),
    Case(
        "tls-option-against-plain-server",
        {"connect_timeout": 2, "tls": True, "tls_verify": False},
        ["TLS handshake failed"],
        connection={"host": "127.0.0.1", "port": "$port"},
        max_seconds=8,
    ),
    Case(
        "http-endpoint",
        {"connect_timeout": 2},
        ["127.0.0.1:$http_port/0", "does not answer like a Redis server", "is it a Redis server"],
        connection={"host": "127.0.0.1", "port": "$http_port"},
        max_seconds=8,
    ),
    Case(
        "accept-and-close-endpoint",
        {"connect_timeout": 2},
        ["cannot connect to 127.0.0.1:$close_port/0", "is it a Redis server"],
        connection={"host": "127.0.0.1", "port": "$close_port"},
        max_seconds=8,
    ),
    Case(
        "silent-endpoint",
        {"connect_timeout": 2},
        ["cannot connect to 127.0.0.1:$silent_port/0", "connect_timeout"],
        connection={"host": "127.0.0.1", "port": "$silent_port"},
        max_seconds=8,
    ),
    # Wrong credentials for an ACL user that exists (see `places`), in the URL and as options; an unknown user.
    Case(
        "wrong-password-in-url",
        {},
        ["authentication to 127.0.0.1:$port/0 failed", "check username and password"],
        connection={"redis_url": "redis://reader:not-the-password@127.0.0.1:$port/0"},
    ),
    Case(
        "wrong-password-option",
        {},
        ["authentication to 127.0.0.1:$port/0 failed", "check username and password"],
        connection={"host": "127.0.0.1", "port": "$port", "username": "reader", "password": "not-the-password"},
    ),
    Case(
        "unknown-user",
        {},
        ["authentication to 127.0.0.1:$port/0 failed"],
        connection={"host": "127.0.0.1", "port": "$port", "username": "nobody", "password": READER_PASSWORD},
    ),
]


# --- schema values (issue 13 A), through a patch and through a target schema ------------------------

SCHEMA_CASES = [
    Case("hnsw-m-1e9", {"patch": update("embedding", m=10**9)}, ["m 1000000000", "accepted range 2..4096", "crash"]),
    Case("hnsw-m-32768", {"patch": update("embedding", m=32768)}, ["m 32768", "2..4096"]),
    Case("hnsw-m-1", {"patch": update("embedding", m=1)}, ["m 1 is outside", "2..4096"]),
    Case("ef-construction-0", {"patch": update("embedding", ef_construction=0)}, ["ef_construction 0", "1..1048576"]),
    Case(
        "ef-runtime-huge", {"patch": update("embedding", ef_runtime=2**40)}, ["ef_runtime 1099511627776", "1..1048576"]
    ),
    Case("epsilon-nan", {"patch": update("embedding", epsilon="nan")}, ["epsilon 'nan' is not a finite number"]),
    Case("epsilon-inf", {"patch": update("embedding", epsilon=float("inf"))}, ["epsilon inf is not a finite number"]),
    Case(
        "block-size-2^40",
        {"patch": update("embedding", algorithm="flat", block_size=2**40)},
        ["block_size 1099511627776", "1..1048576"],
    ),
    Case("dims-huge", {"patch": update("embedding", dims=10**6)}, ["dims 1000000", "1..32768"]),
    Case(
        "initial-cap-huge", {"patch": update("embedding", initial_cap=2**32)}, ["initial_cap 4294967296", "0..4194304"]
    ),
    Case("weight-inf", {"patch": update("name", weight=float("inf"))}, ["weight inf is not a finite number"]),
    Case("weight-nan", {"patch": update("name", weight="nan")}, ["weight 'nan' is not a finite number"]),
    Case("weight-negative", {"patch": update("name", weight=-2)}, ["weight -2", "0..1e+06"]),
    Case(
        "phonetic-unknown",
        {"patch": update("name", phonetic_matcher="dm:de")},
        ["phonetic_matcher 'dm:de'", "accepted: dm:en, dm:fr, dm:pt, dm:es"],
    ),
    Case("separator-nul", {"patch": update("category", separator="\x00")}, ["separator '\\x00'", "accepted: one of"]),
    Case("separator-newline", {"patch": update("category", separator="\n")}, ["separator '\\n'", "accepted: one of"]),
    Case(
        "language-unknown",
        {"patch": patch(index={"language": "klingon"})},
        ["language 'klingon' is not one the server knows", "accepted: arabic"],
    ),
    Case("score-nan", {"patch": patch(index={"score": "nan"})}, ["score 'nan' is not a finite number"]),
    Case("score-above-1", {"patch": patch(index={"score": 1.5})}, ["score 1.5", "0..1"]),
    Case("prefix-nul", {"patch": patch(index={"prefix": "a\x00b:"})}, ["prefix", "control character '\\x00'"]),
    Case("filter-nul", {"patch": patch(index={"filter": "@price>0\x00"})}, ["filter", "control character"]),
    Case("stopword-empty", {"patch": patch(index={"stopwords": ["the", ""]})}, ["stopword is empty"]),
    Case(
        "field-name-nul",
        {"patch": patch(add_fields=[{"name": "a\x00b", "type": "tag"}])},
        ["field name 'a\\x00b' contains the control character"],
    ),
    # Only the server can parse a FILTER: the create check asks it, before anything changes.
    Case(
        "filter-unparsable",
        {"patch": patch(index={"filter": "@price>"})},
        ["the server refuses the target definition", "Syntax error", "correct the schema"],
    ),
    Case(
        "target-hnsw-m-1e9",
        {"target_schema": target(vector_attrs(m=10**9))},
        ["target_schema: fields[3] (embedding)", "m 1000000000", "2..4096"],
    ),
    Case(
        "target-language-unknown",
        {"target_schema": target(lambda d: d["index"].update(language="klingon"))},
        ["target_schema: index", "language 'klingon'"],
    ),
    Case(
        "target-filter-unparsable",
        {"target_schema": target(lambda d: d["index"].update(filter="hasprefix("))},
        ["the server refuses the target definition", "Syntax error"],
    ),
]


# --- planning input (issue 13 C) ------------------------------------------------------------------

PLANNING_CASES = [
    Case(
        "batch-size-0",
        {"patch": update("name", weight=2), "batch_size": 0},
        ["batch_size must be 1 or more, not 0", "set batch_size to 1 or more"],
    ),
    Case(
        "audit-sample-negative",
        {"patch": update("name", weight=2), "audit_sample_size": -1},
        ["audit_sample_size must be 0 or more, not -1"],
    ),
    Case(
        "key-sample-negative",
        {"patch": update("name", weight=2), "key_sample_size": -5},
        ["key_sample_size must be 0 or more, not -5"],
    ),
    Case(
        "rename-to-empty",
        {"patch": patch(rename_fields=[{"old_name": "name", "new_name": ""}])},
        ["rename_fields[0]: new_name is empty", "give a non-empty new_name"],
    ),
    Case(
        "rename-from-empty",
        {"patch": patch(rename_fields=[{"old_name": "", "new_name": "title"}])},
        ["rename_fields[0]: old_name is empty"],
    ),
    Case(
        "remove-every-field",
        {"patch": patch(remove_fields=["name", "category", "price", "embedding"])},
        ["removes every field of products", "keep at least one field"],
    ),
]


# --- what a patch asks for (issue 8): misspelt, unknown, invalid, blocked, colliding, unsupported ---------

PATCH_CASES = [
    Case(
        "misspelt-patch-section",
        {"patch": {"version": 1, "changes": {"update_feilds": [{"name": "name"}]}}},
        ["unknown section 'update_feilds'", "did you mean 'update_fields'?"],
    ),
    Case(
        "misspelt-attribute",
        {"patch": update("embedding", datatyp="float16")},
        ["unknown vector field attribute 'datatyp'", "did you mean 'datatype'?"],
    ),
    Case(
        "unknown-field",
        {"patch": update("colour", weight=2)},
        ["the index has no field 'colour'", "fields of products: name, category, price, embedding"],
    ),
    Case(
        "attribute-of-another-type",
        {"patch": update("name", separator=";")},
        ["unknown text field attribute 'separator'", "valid text field attributes:"],
    ),
    Case(
        "datatype-invalid",
        {"patch": update("embedding", datatype="float8")},
        ["datatype must be one of float32, float64, float16, bfloat16, int8, uint8, not 'float8'"],
    ),
    Case(
        "blocked-dims",
        {"patch": update("embedding", dims=16)},
        ["dims 8 -> 16", "new dimensions need new embeddings", "re-embed"],
    ),
    Case(
        "blocked-storage-type",
        {"target_schema": target(lambda d: d["index"].update(storage_type="json"))},
        ["storage_type 'hash' -> 'json'", "export, transform and reload"],
    ),
    Case(
        "rename-onto-a-field",
        {"patch": patch(rename_fields=[{"old_name": "name", "new_name": "category"}])},
        ["cannot rename 'name' to 'category', a field of that name exists"],
    ),
    Case(
        "target-name-is-an-index",
        {"patch": patch(index={"name": "names"})},
        ["an index or alias named 'names' already exists", "choose another name"],
    ),
    Case(
        "target-name-is-an-alias",
        {"patch": patch(index={"name": "catalog"})},
        ["an index or alias named 'catalog' already exists", "choose another name"],
    ),
    Case(
        "datatype-the-server-lacks",
        {"patch": update("embedding", datatype="int8")},
        ["the server does not accept INT8 vectors", "upgrade the server first"],
    ),
]

PLAN_CASES = (
    CONNECTION_CASES
    + SCHEMA_CASES
    + PLANNING_CASES
    + PATCH_CASES
    + [
        Case(
            "plan-out-is-a-directory",
            {"patch": update("name", weight=2), "plan_out": "$tmp"},
            ["plan_out $tmp is a directory", "give the path of a file"],
        ),
        Case(
            "plan-out-in-missing-directory",
            {"patch": update("name", weight=2), "plan_out": "$tmp/no/such/plan.yaml"},
            ["the directory $tmp/no/such does not exist", "create it first"],
        ),
    ]
)

# The options of the modules that wait for replicas (doc fragment replication); the server has none, so a
# count above 0 is refused before anything changes.
REPLICATION_CASES = [
    Case("replicas-wait-count-negative", {"replicas_wait_count": -1}, ["replicas_wait_count must be 0 or more"]),
    Case(
        "replicas-wait-count-above-connected",
        {"patch": update("embedding", datatype="float16"), "replicas_wait_count": 1},
        ["replicas_wait_count is 1, but the primary has 0 connected replica(s)", "nothing was changed"],
    ),
    Case("replicas-wait-timeout-0", {"replicas_wait_timeout": 0}, ["replicas_wait_timeout must be more than 0"]),
    Case(
        "replicas-wait-timeout-above-socket-timeout",
        {"replicas_wait_timeout": 90},
        ["replicas_wait_timeout (90 s) must be less than socket_timeout (60 s)", "raise socket_timeout"],
    ),
    Case("failover-timeout-negative", {"failover_timeout": -1}, ["failover_timeout must be 0 or more, not -1"]),
]

MIGRATE_CASES = (
    CONNECTION_CASES
    + PLANNING_CASES
    + [
        Case("workers-0", {"patch": update("name", weight=2), "workers": 0}, ["workers must be 1 or more, not 0"]),
        Case(
            "workers-negative",
            {"patch": update("name", weight=2), "workers": -4},
            ["workers must be 1 or more, not -4"],
        ),
        Case(
            "wait-timeout-negative",
            {"patch": update("name", weight=2), "wait_timeout": -1},
            ["wait_timeout must be 0 or more, not -1", "set wait_timeout"],
        ),
        Case("hnsw-m-1e9", {"patch": update("embedding", m=10**9)}, ["m 1000000000", "2..4096"]),
        Case("target-hnsw-m-1e9", {"target_schema": target(vector_attrs(m=10**9))}, ["m 1000000000"]),
        # Planned on the fly: the create check blocks it before the lock, the backup or the drop.
        Case(
            "filter-unparsable",
            {"patch": patch(index={"filter": "@price>"})},
            ["the server refuses the target definition", "Syntax error"],
        ),
        Case(
            "target-filter-unparsable",
            {"target_schema": target(lambda d: d["index"].update(filter="hasprefix("))},
            ["the server refuses the target definition", "Syntax error"],
        ),
        # A report that could not be written used to turn a completed migration into a failed one.
        Case(
            "report-out-in-missing-directory",
            {"patch": update("name", weight=2), "report_out": "$tmp/no/report.yaml"},
            ["the directory of report_out $tmp/no/report.yaml does not exist", "create it, or choose another path"],
        ),
        Case(
            "report-out-is-a-directory",
            {"patch": update("name", weight=2), "report_out": "$tmp"},
            ["report_out $tmp is a directory", "give report_out a file name"],
        ),
        # Cases that need more than options (a plan file of another index, a plan from a second server, a
        # full disk in a process of its own) are in test_migrate_safety.py, with the same assertions.
    ]
    + REPLICATION_CASES
    + PATCH_CASES
    + [
        # An ACL user without a command the migration needs is refused before the drop, naming it (see `places`).
        Case(
            "acl-user-without-ft-dropindex",
            {"patch": update("embedding", datatype="float16")},
            [
                "the Redis user may not run FT.DROPINDEX, which the migration needs",
                "nothing was changed",
                "ACL SETUSER",
            ],
            connection={"redis_url": "redis://no_drop:" + READER_PASSWORD + "@127.0.0.1:$port/0"},
        ),
        Case(
            "acl-user-without-hset",
            {"patch": update("embedding", datatype="float16")},
            ["may not run HSET", "nothing was changed"],
            connection={"redis_url": "redis://no_hset:" + READER_PASSWORD + "@127.0.0.1:$port/0"},
        ),
        Case(
            "acl-user-without-ft-aliasupdate",
            {"patch": patch(index={"name": "products_v2"})},
            ["may not run FT.ALIASUPDATE", "nothing was changed"],
            connection={"redis_url": "redis://no_alias:" + READER_PASSWORD + "@127.0.0.1:$port/0"},
        ),
        Case(
            "acl-user-without-the-keys",
            {"patch": update("embedding", datatype="float16")},
            ["the Redis user may not do this: No permissions to access a key", "nothing was changed", "ACL SETUSER"],
            connection={"redis_url": "redis://other_keys:" + READER_PASSWORD + "@127.0.0.1:$port/0"},
        ),
    ]
)

ROLLBACK_CASES = (
    CONNECTION_CASES
    + [c for c in REPLICATION_CASES if "patch" not in c.args]
    + [
        Case("wait-timeout-negative", {"wait_timeout": -10}, ["wait_timeout must be 0 or more, not -10"]),
        Case("wait-timeout-inf", {"wait_timeout": float("inf")}, ["wait_timeout must be a finite number"]),
    ]
)

INFO_CASES = CONNECTION_CASES + [
    Case(
        "backup-dir-is-a-file",
        {"backup_dir": "$tmp/a-file"},
        ["backup_dir $tmp/a-file is a file, not a directory", "give the backup directory"],
    ),
]


BATCH_CASES = CONNECTION_CASES + [
    Case(
        "batch-misspelt-patch-section",
        {"patch": {"version": 1, "changes": {"update_feilds": []}}},
        ["unknown section 'update_feilds'", "did you mean 'update_fields'?"],
    ),
    Case(
        "batch-pattern-matches-nothing",
        {"pattern": "zzz*", "indexes": None},
        ["the pattern selection 'zzz*' names no index", "check the names or the pattern"],
    ),
    Case(
        "batch-failure-policy-unknown",
        {"failure_policy": "retry_forever"},
        ["failure_policy", "fail_fast, continue_on_error"],
    ),
    Case(
        "batch-plan-file-missing",
        {
            "state": "applied",
            "plan_file": "$tmp/no-such-batch.yaml",
            "backup_dir": "$tmp/b",
            "patch": None,
            "indexes": None,
        },
        ["cannot read batch plan file $tmp/no-such-batch.yaml"],
    ),
    Case("batch-plan-out-in-missing-directory", {"plan_out": "$tmp/no/such/batch.yaml"}, ["$tmp/no/such"]),
]

VALIDATE_CASES = CONNECTION_CASES + [
    Case(
        "validate-backup-dir-missing",
        {"backup_dir": "$tmp/no-such-dir"},
        ["backup_dir $tmp/no-such-dir does not exist or is not a directory", "point backup_dir at the directory"],
    ),
    Case(
        "validate-no-backup-of-the-index",
        {},
        ["no backup of index 'products' in $tmp/backups", "check backup_dir and index"],
    ),
    Case(
        "validate-plan-file-missing",
        {"plan_file": "$tmp/no-plan.yaml", "index": None},
        ["cannot read plan file $tmp/no-plan.yaml"],
    ),
]

QUIESCE_CASES = CONNECTION_CASES + [
    Case(
        "quiesce-the-connecting-user",
        {"users": ["default"]},
        ["users lists 'default', the user this task connects as", "connect as a separate migrating user"],
    ),
    Case("quiesce-unknown-user", {"users": ["nobody"]}, ["no ACL user named nobody", "ACL USERS lists the users"]),
    Case("quiesce-state-file-is-a-directory", {"users": ["reader"], "state_file": "$tmp"}, ["$tmp"]),
]


# --- the fixtures -----------------------------------------------------------------------------------


def load_products(client, count: int = 30) -> None:
    client.execute_command(
        "FT.CREATE",
        "products",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "product:",
        "SCHEMA",
        "name",
        "TEXT",
        "category",
        "TAG",
        "price",
        "NUMERIC",
        "embedding",
        "VECTOR",
        "HNSW",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        str(DIMS),
        "DISTANCE_METRIC",
        "COSINE",
    )
    client.execute_command("FT.CREATE", "names", "ON", "HASH", "PREFIX", "1", "product:", "SCHEMA", "name", "TEXT")
    vectors = numpy.random.default_rng(7).random((count, DIMS), dtype=numpy.float32)
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.hset(
            f"product:{i}",
            mapping={
                "name": f"product {i}",
                "category": "books" if i % 2 else "toys",
                "price": i,
                "embedding": vectors[i].tobytes(),
            },
        )
    pipe.execute()
    client.execute_command("FT.ALIASADD", "catalog", "names")
    wait_for(client, "products", count)
    wait_for(client, "names", count)


def server_state(client) -> dict:
    """Every key's DUMP bytes, the index list and what each index's FT.INFO says of its definition."""
    indexes = sorted(client.execute_command("FT._LIST"))
    infos = {}
    for name in indexes:
        reply = client.execute_command("FT.INFO", name)
        infos[name] = {key: value for key, value in zip(reply[::2], reply[1::2]) if key.decode() in DEFINING_INFO}
    return {"keys": {key: client.dump(key) for key in client.scan_iter(count=1000)}, "indexes": indexes, "info": infos}


@pytest.fixture
def unchanged_server(clean_redis):
    """The products data; after the test, the server must be exactly as before it."""
    load_products(clean_redis)
    before = server_state(clean_redis)
    assert before["keys"] and before["indexes"] == [b"names", b"products"]
    yield clean_redis
    assert server_state(clean_redis) == before


# ACL users the cases connect as: `reader` may do everything (its password is what the wrong-credential
# cases get wrong); the others each lack what a migration needs.
ACL_USERS = {
    "reader": ["~*", "&*", "+@all"],
    "no_drop": ["~*", "&*", "+@all", "-ft.dropindex"],
    "no_hset": ["~*", "&*", "+@all", "-hset"],
    "no_alias": ["~*", "&*", "+@all", "-ft.aliasupdate"],
    "other_keys": ["~other:*", "~indexops:lock:*", "&*", "+@all"],
}


@pytest.fixture
def places(redis_server, tmp_path):
    """What `$name` in a case stands for; the ACL users exist meanwhile."""
    import redis  # pylint: disable=import-outside-toplevel

    admin = redis.Redis.from_url(redis_server.url, protocol=2)
    for name, rules in ACL_USERS.items():
        admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{READER_PASSWORD}", *rules)
    (tmp_path / "a-file").write_text("not a directory")
    endpoints = {behaviour: FakeEndpoint(behaviour) for behaviour in ("http", "close", "silent")}
    yield {
        "url": redis_server.url,
        "port": str(redis_server.port),
        "tmp": str(tmp_path),
        **{f"{name}_port": str(endpoint.port) for name, endpoint in endpoints.items()},
    }
    for endpoint in endpoints.values():
        endpoint.close()
    for name in ACL_USERS:
        admin.execute_command("ACL", "DELUSER", name)
    admin.close()


def fill(value: Any, places: dict) -> Any:
    if isinstance(value, str):
        filled = string.Template(value).safe_substitute(places)
        return int(filled) if value.startswith("$") and value.endswith("port") else filled
    if isinstance(value, dict):
        return {key: fill(item, places) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, places) for item in value]
    return value


def refuse(module, case: Case, places: dict, capsys, extra: dict) -> dict:
    """Run the module with the case's options; assert a one-line failure with every expected part."""
    connection = fill(case.connection, places) if case.connection is not None else {"redis_url": places["url"]}
    args = {**connection, **extra, **fill(case.args, places)}
    began = time.monotonic()
    result = run_module(module, args, capsys, expect_failure=True)
    took = time.monotonic() - began
    message = result["msg"]
    assert "\n" not in message, message
    assert "unexpected" not in message and "Traceback" not in message, message
    for part in case.expect:
        assert fill(part, places) in message, f"{fill(part, places)!r} not in {message!r}"
    if case.max_seconds is not None:
        assert took < case.max_seconds, f"took {took:.1f} s"
    return result


def ids(cases: list) -> list:
    return [case.id for case in cases]


def with_change(case: Case, extra: dict) -> dict:
    """A harmless change for the cases about something else (the modules require one)."""
    if not any(key in case.args for key in ("patch", "target_schema")):
        extra["patch"] = update("name", weight=2)
    return extra


@pytest.mark.bad_input
@pytest.mark.parametrize("case", PLAN_CASES, ids=ids(PLAN_CASES))
def test_redis_index_plan_refuses(case, unchanged_server, places, capsys):
    refuse(redis_index_plan, case, places, capsys, with_change(case, {"index": "products"}))


@pytest.mark.bad_input
@pytest.mark.parametrize("case", MIGRATE_CASES, ids=ids(MIGRATE_CASES))
def test_redis_index_migrate_refuses(case, unchanged_server, places, capsys, tmp_path):
    extra = {"index": "products", "backup_dir": str(tmp_path / "backups"), "accept_data_loss": True}
    refuse(redis_index_migrate, case, places, capsys, with_change(case, extra))
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())


@pytest.mark.bad_input
@pytest.mark.parametrize("case", ROLLBACK_CASES, ids=ids(ROLLBACK_CASES))
def test_redis_index_rollback_refuses(case, unchanged_server, places, capsys, tmp_path):
    (tmp_path / "backups").mkdir()
    refuse(redis_index_rollback, case, places, capsys, {"index": "products", "backup_dir": str(tmp_path / "backups")})


@pytest.mark.bad_input
@pytest.mark.parametrize("case", INFO_CASES, ids=ids(INFO_CASES))
def test_redis_index_info_refuses(case, unchanged_server, places, capsys):
    refuse(redis_index_info, case, places, capsys, {"index": "products"})


def without_none(args: dict) -> dict:
    """A case sets an option to None to leave out one the test function gives by default."""
    return {key: value for key, value in args.items() if value is not None}


def refuse_without(module, case: Case, places: dict, capsys, extra: dict) -> dict:
    args = {**extra, **case.args}
    return refuse(
        module, Case(case.id, without_none(args), case.expect, case.connection, case.max_seconds), places, capsys, {}
    )


@pytest.mark.bad_input
@pytest.mark.parametrize("case", BATCH_CASES, ids=ids(BATCH_CASES))
def test_redis_index_batch_refuses(case, unchanged_server, places, capsys, tmp_path):
    extra = {
        "state": "planned",
        "indexes": ["products"],
        "patch": update("name", weight=2),
        "plan_out": str(tmp_path / "batch.yaml"),
    }
    refuse_without(redis_index_batch, case, places, capsys, extra)
    assert not (tmp_path / "batch.yaml").exists() and not (tmp_path / "b").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("case", VALIDATE_CASES, ids=ids(VALIDATE_CASES))
def test_redis_index_validate_refuses(case, unchanged_server, places, capsys, tmp_path):
    (tmp_path / "backups").mkdir()
    refuse_without(
        redis_index_validate, case, places, capsys, {"index": "products", "backup_dir": str(tmp_path / "backups")}
    )


@pytest.mark.bad_input
@pytest.mark.parametrize("case", QUIESCE_CASES, ids=ids(QUIESCE_CASES))
def test_redis_write_quiesce_refuses(case, unchanged_server, places, capsys, tmp_path, redis_server):
    import redis  # pylint: disable=import-outside-toplevel

    admin = redis.Redis.from_url(redis_server.url, protocol=2)
    rules = admin.execute_command("ACL", "LIST")
    refuse_without(
        redis_write_quiesce,
        case,
        places,
        capsys,
        {"state": "quiesced", "users": ["reader"], "state_file": str(tmp_path / "quiesce.json")},
    )
    assert admin.execute_command("ACL", "LIST") == rules  # no user's rules changed
    assert not (tmp_path / "quiesce.json").exists()
    admin.close()


def test_the_cases_cover_issue_13():
    """Guards the tables against losing a case when they are extended."""
    every = {case.id for cases in (PLAN_CASES, MIGRATE_CASES, ROLLBACK_CASES, INFO_CASES) for case in cases}
    for needed in (
        "hnsw-m-1e9",
        "weight-inf",
        "weight-nan",
        "block-size-2^40",
        "language-unknown",
        "filter-unparsable",
        "phonetic-unknown",
        "separator-nul",
        "db-option",
        "db-in-url",
        "batch-size-0",
        "workers-0",
        "audit-sample-negative",
        "key-sample-negative",
        "socket-timeout-0",
        "wait-timeout-negative",
        "port-99999",
        "rename-to-empty",
        "rename-from-empty",
        "remove-every-field",
        "plan-out-is-a-directory",
        "plan-out-in-missing-directory",
        "backup-dir-is-a-file",
        "tls-against-plain-server",
        "http-endpoint",
        "accept-and-close-endpoint",
    ):
        assert needed in every, needed
    assert len(every) >= 40


# --- the create check ---------------------------------------------------------------------------------


def test_create_check_accepts_and_leaves_nothing(unchanged_server):
    client = unchanged_server
    assert create_check.check_create(client, parse_schema(TARGET)) is None
    refused = parse_schema(target(lambda d: d["index"].update(filter="@price>")))
    reason = create_check.check_create(client, refused)
    assert reason.startswith("Syntax error at offset")
    assert create_check.leftover_checks(client) == []
    # (unchanged_server checks that nothing else changed either)


def test_create_check_never_sends_a_value_that_crashes_the_server(unchanged_server):
    client = unchanged_server

    def creates() -> int:
        # The server names module commands in upper case here (cmdstat_FT.CREATE).
        stats = {key.lower(): value for key, value in client.info("commandstats").items()}
        return stats["cmdstat_ft.create"]["calls"]

    before = creates()
    assert before >= 2  # the fixture's two indexes: the counter is the one FT.CREATE moves
    crashing = parse_schema(target(vector_attrs(m=32768)))  # parses: it is only refused as a target
    with pytest.raises(SchemaInvalid, match="m 32768 is outside the accepted range 2..4096"):
        create_check.check_create(client, crashing)
    assert creates() == before
    assert create_check.check_create(client, parse_schema(TARGET)) is None
    assert creates() == before + 1
    assert client.ping()


class DiesBeforeTheDrop:
    """A client whose process is killed between the throwaway FT.CREATE and its FT.DROPINDEX."""

    def __init__(self, client):
        self.client = client
        self.connection_pool = client.connection_pool  # the permission check queues on a connection of its own

    def execute_command(self, *args):
        if args[0] == "FT.DROPINDEX" and create_check.CHECK_PREFIX in str(args[1]):
            raise KeyboardInterrupt
        return self.client.execute_command(*args)


def test_an_interrupted_create_check_is_cleaned_by_the_next(clean_redis):
    load_products(clean_redis, count=5)
    with pytest.raises(KeyboardInterrupt):
        create_check.check_create(DiesBeforeTheDrop(clean_redis), parse_schema(TARGET))
    left = create_check.leftover_checks(clean_redis)
    assert len(left) == 1 and left[0].startswith("products__indexops_check_")
    # It covers no key...
    info = clean_redis.execute_command("FT.INFO", left[0])
    assert dict(zip(info[::2], info[1::2]))[b"num_docs"] == 0
    # ...and the next check (planning, or migrate's preflight) removes it.
    assert create_check.check_create(clean_redis, parse_schema(TARGET)) is None
    assert create_check.leftover_checks(clean_redis) == []
    assert sorted(clean_redis.execute_command("FT._LIST")) == [b"names", b"products"]


def test_an_interrupted_create_check_expires_by_itself(clean_redis, monkeypatch):
    monkeypatch.setattr(create_check, "CHECK_TTL_SECONDS", 1)
    with pytest.raises(KeyboardInterrupt):
        create_check.check_create(DiesBeforeTheDrop(clean_redis), parse_schema(TARGET))
    assert len(create_check.leftover_checks(clean_redis)) == 1
    deadline = time.monotonic() + 10
    while create_check.leftover_checks(clean_redis) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert create_check.leftover_checks(clean_redis) == []


def test_a_user_who_may_not_create_indexes_gets_a_warning_not_a_block(unchanged_server, redis_server):
    import redis  # pylint: disable=import-outside-toplevel

    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planning.planner import create_plan
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema.patch import parse_patch

    client = unchanged_server
    client.execute_command("ACL", "SETUSER", "planner", "on", ">pw", "~*", "&*", "+@all", "-FT.CREATE")
    try:
        limited = redis.Redis.from_url(redis_server.url, username="planner", password="pw")
        with pytest.raises(create_check.CreateCheckUnavailable, match="the user may not run FT.CREATE"):
            create_check.check_create(limited, parse_schema(TARGET))
        plan = create_plan(limited, "products", patch=parse_patch(update("name", weight=2)), audit_sample=0)
        assert plan.classification.supported
        assert any("could not be checked" in warning for warning in plan.warnings)
    finally:
        client.execute_command("ACL", "DELUSER", "planner")


# --- bad input that needs a setting: damaged backups, stale or edited plans, backup directories, the keyspace
# (issue 8). Each is refused with one line naming the problem and the fix; Redis (every key's bytes, FT.INFO)
# and the backup directory (every file's bytes, links included) are exactly as they were.


def backup_files(root) -> dict:
    """Every file under `root`: its bytes, or where it links to."""
    found = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = (
                ("link", os.readlink(path)) if os.path.islink(path) else ("file", open(path, "rb").read())
            )  # pylint: disable=consider-using-with
    return found


def expect_refusal(module, args: dict, capsys, expect: list) -> dict:
    result = run_module(module, args, capsys, expect_failure=True)
    message = result["msg"]
    assert "\n" not in message and "Traceback" not in message and "unexpected" not in message, message
    for part in expect:
        assert part in message, f"{part!r} not in {message!r}"
    return result


def migrated(client, redis_url, tmp_path, capsys, count=90) -> tuple:
    """products migrated float32 -> float16 in 3 backup blocks; (backup directory, plan file)."""
    load_products(client, count=count)
    run_module(
        redis_index_plan,
        {
            "redis_url": redis_url,
            "index": "products",
            "batch_size": 30,
            "patch": update("embedding", datatype="float16"),
            "plan_out": str(tmp_path / "plan.yaml"),
        },
        capsys,
    )
    run_module(
        redis_index_migrate,
        {
            "redis_url": redis_url,
            "plan_file": str(tmp_path / "plan.yaml"),
            "backup_dir": str(tmp_path / "backups"),
            "accept_data_loss": True,
            "batch_size": 30,
        },
        capsys,
    )
    (directory,) = [os.path.join(tmp_path / "backups", d) for d in os.listdir(tmp_path / "backups")]
    return directory, str(tmp_path / "plan.yaml")


def _blocks(data: bytes) -> tuple:
    """(file magic, [block bytes]) of a backup data file."""
    magic, blocks, position = data[:16], [], 16
    while position < len(data):
        length = struct.unpack_from("<Q", data, position + 12)[0]
        end = position + 52 + length
        blocks.append(data[position:end])
        position = end
    return magic, blocks


def _swap(data: bytes, renumber: bool) -> bytes:
    magic, blocks = _blocks(data)
    blocks[1], blocks[2] = blocks[2], blocks[1]
    if renumber:  # numbered in order again: only the header's fingerprint over the blocks can tell
        blocks = [block[:4] + struct.pack("<I", number) + block[8:] for number, block in enumerate(blocks)]
    return magic + b"".join(blocks)


def _flip(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 0x01
    return bytes(changed)


def damage(directory: str, how: str) -> None:
    data, header, plan = (os.path.join(directory, name) for name in ("data.bin", "header.json", "plan.yaml"))

    def rewrite(path, content):
        with open(path, "wb") as handle:
            handle.write(content)

    raw = open(data, "rb").read()  # pylint: disable=consider-using-with
    if how == "header-garbage":
        rewrite(header, b"{not json")
    elif how == "header-pickle":
        rewrite(header, pickle.dumps({"format": "indexops.redis_search/backup", "status": "completed"}))
    elif how == "header-edited":
        edited = json.loads(open(header, "rb").read())  # pylint: disable=consider-using-with
        edited["data_records"] += 1
        rewrite(header, json.dumps(edited).encode())
    elif how == "data-truncated":
        rewrite(data, raw[:-100])
    elif how == "data-flipped-byte":
        rewrite(data, _flip(raw, len(raw) - 200))  # inside the last block's records
    elif how == "data-flipped-block-number":
        rewrite(data, _flip(raw, 16 + 4))  # the first block's number, outside its SHA-256
    elif how == "data-swapped-blocks":
        rewrite(data, _swap(raw, renumber=False))
    elif how == "data-swapped-blocks-renumbered":
        rewrite(data, _swap(raw, renumber=True))
    elif how == "data-pickle":
        rewrite(data, pickle.dumps({"vectors": [1, 2, 3]}))
    elif how in ("data-symlinked", "header-symlinked"):
        target = data if how == "data-symlinked" else header
        copy = os.path.join(os.path.dirname(directory), os.path.basename(target) + ".elsewhere")
        shutil.copyfile(target, copy)
        os.unlink(target)
        os.symlink(copy, target)
    elif how == "plan-python-tag":
        rewrite(plan, b"!!python/object/apply:os.system ['touch " + directory.encode() + b"/pwned']\n")
    elif how == "plan-pickle":
        rewrite(plan, pickle.dumps({"format": "indexops.redis_search/plan"}))


BACKUP_DAMAGE = {
    "header-garbage": ["header.json is unreadable", "restore the directory from a copy"],
    "header-pickle": ["header.json is unreadable", "restore the directory from a copy"],
    "header-edited": ["changed outside this collection (checksum mismatch)", "restore the directory from a copy"],
    "data-truncated": ["(truncated)"],
    "data-flipped-byte": ["do not match their checksum"],
    "data-flipped-block-number": ["is numbered 1, expected 0"],
    "data-swapped-blocks": ["is numbered 2, expected 1"],
    "data-swapped-blocks-renumbered": ["blocks replaced or reordered"],
    "data-pickle": ["not an indexops backup data file (bad magic)"],
    "data-symlinked": ["holds a symbolic link", "data.bin", "restore the directory from a copy"],
    "header-symlinked": ["holds a symbolic link", "header.json", "restore the directory from a copy"],
    "plan-python-tag": ["plan.yaml is not valid YAML", "could not determine a constructor"],
    "plan-pickle": ["plan.yaml is not a text (UTF-8 YAML) file"],
}


@pytest.mark.bad_input
@pytest.mark.parametrize("module", [redis_index_rollback, redis_index_validate], ids=["rollback", "validate"])
@pytest.mark.parametrize("how", list(BACKUP_DAMAGE))
def test_a_damaged_backup_is_refused_with_redis_and_backup_unchanged(
    how, module, clean_redis, redis_url, tmp_path, capsys
):
    directory, _plan = migrated(clean_redis, redis_url, tmp_path, capsys)
    damage(directory, how)
    state, files = server_state(clean_redis), backup_files(tmp_path / "backups")
    args = {"redis_url": redis_url, "index": "products", "backup_dir": str(tmp_path / "backups")}
    expect = BACKUP_DAMAGE[how]
    if module is redis_index_validate and how.startswith("data-") and how not in ("data-symlinked", "data-pickle"):
        # The migrated index is named (an online migration: products--v3, behind the name products).
        expect = ["validation of products--v3 failed: the backup fails verification", *expect]
    expect_refusal(module, args, capsys, expect)
    assert server_state(clean_redis) == state
    assert backup_files(tmp_path / "backups") == files
    assert not os.path.exists(os.path.join(directory, "pwned"))


@pytest.mark.bad_input
@pytest.mark.parametrize("how", ["header-garbage", "header-edited", "data-symlinked", "header-symlinked"])
def test_a_damaged_backup_is_refused_by_migrate_too(how, clean_redis, redis_url, tmp_path, capsys):
    directory, plan = migrated(clean_redis, redis_url, tmp_path, capsys)
    damage(directory, how)
    state, files = server_state(clean_redis), backup_files(tmp_path / "backups")
    expect_refusal(
        redis_index_migrate,
        {"redis_url": redis_url, "plan_file": plan, "accept_data_loss": True, "backup_dir": str(tmp_path / "backups")},
        capsys,
        BACKUP_DAMAGE[how],
    )
    assert server_state(clean_redis) == state
    assert backup_files(tmp_path / "backups") == files


def _stale(client, path):
    client.execute_command("FT.ALTER", "products", "SCHEMA", "ADD", "added_later", "TEXT")
    wait_for(client, "products", 30)  # FT.ALTER scans the documents again: "unchanged" starts after it


def _edited(_client, path):
    text = open(path, encoding="utf-8").read()  # pylint: disable=consider-using-with
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.replace("datatype: float16", "datatype: bfloat16"))


def _python_tag(_client, path):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"!!python/object/apply:os.system ['touch {path}.pwned']\n")


def _pickled(_client, path):
    with open(path, "wb") as handle:
        handle.write(pickle.dumps({"format": "indexops.redis_search/plan", "checksum": "sha256:0"}))


PLAN_DAMAGE = {
    "plan-stale": (_stale, ["products changed since the plan was made", "re-run redis_index_plan"]),
    "plan-edited": (_edited, ["was changed after it was written (checksum mismatch)", "re-run redis_index_plan"]),
    "plan-file-python-tag": (_python_tag, ["is not valid YAML", "give the file redis_index_plan wrote"]),
    "plan-file-pickle": (_pickled, ["is not a text (UTF-8 YAML) file", "give the file redis_index_plan wrote"]),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("how", list(PLAN_DAMAGE))
def test_a_stale_or_edited_plan_is_refused_before_anything(how, clean_redis, redis_url, tmp_path, capsys):
    load_products(clean_redis)
    path = str(tmp_path / "plan.yaml")
    run_module(
        redis_index_plan,
        {
            "redis_url": redis_url,
            "index": "products",
            "plan_out": path,
            "patch": update("embedding", datatype="float16"),
        },
        capsys,
    )
    change, expect = PLAN_DAMAGE[how]
    change(clean_redis, path)
    state = server_state(clean_redis)
    expect_refusal(
        redis_index_migrate,
        {"redis_url": redis_url, "plan_file": path, "accept_data_loss": True, "backup_dir": str(tmp_path / "backups")},
        capsys,
        expect,
    )
    assert server_state(clean_redis) == state
    assert not (tmp_path / "backups").exists() or not os.listdir(tmp_path / "backups")
    assert not os.path.exists(path + ".pwned")


@pytest.fixture
def small_filesystem(tmp_path):
    """mount(dir, options): a tmpfs mounted there for the test (root only; skipped elsewhere)."""
    mounted = []

    def mount(directory, options):
        os.makedirs(directory, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)], capture_output=True, check=False
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(directory)
        return directory

    yield mount
    for directory in reversed(mounted):
        subprocess.run(["umount", str(directory)], check=False)


@pytest.mark.bad_input
def test_an_unwritable_backup_dir_is_refused_before_anything(
    clean_redis, redis_url, tmp_path, capsys, small_filesystem
):
    load_products(clean_redis)
    readonly = small_filesystem(tmp_path / "ro", "ro,size=1m")  # read-only even for root
    state = server_state(clean_redis)
    expect_refusal(
        redis_index_migrate,
        {
            "redis_url": redis_url,
            "index": "products",
            "accept_data_loss": True,
            "patch": update("embedding", datatype="float16"),
            "backup_dir": str(readonly / "backups"),
        },
        capsys,
        ["cannot create backup_dir", "Read-only file system"],
    )
    assert server_state(clean_redis) == state


@pytest.mark.bad_input
def test_a_full_backup_dir_is_refused_before_anything(clean_redis, redis_url, tmp_path, capsys, small_filesystem):
    load_products(clean_redis, count=200)
    full = small_filesystem(tmp_path / "full", "size=64k")
    filler = full / "filler"
    with open(filler, "wb") as handle:
        try:
            handle.write(b"\0" * (64 * 1024))
        except OSError:
            pass  # full
    state = server_state(clean_redis)
    result = expect_refusal(
        redis_index_migrate,
        {
            "redis_url": redis_url,
            "index": "products",
            "accept_data_loss": True,
            "backup_dir": str(full / "backups"),
            "patch": update("embedding", datatype="float16"),
        },
        capsys,
        ["bytes free, the backup needs about", "free space or choose another backup_dir"],
    )
    assert result["error_type"] == "preflight_failed"
    assert server_state(clean_redis) == state
    assert not os.listdir(full / "backups")


NEWLINE_NAME = {"version": 1, "changes": {"index": {"language": "german"}}}


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "module, extra",
    [
        (redis_index_info, {"index": "products\nx"}),
        (redis_index_plan, {"index": "products\nx", "patch": NEWLINE_NAME}),
        (redis_index_migrate, {"index": "products\nx", "patch": NEWLINE_NAME, "backup_dir": "{tmp}"}),
        (redis_index_rollback, {"index": "products\nx", "backup_dir": "{tmp}"}),
        (redis_index_validate, {"index": "products\nx", "backup_dir": "{tmp}"}),
        (redis_index_batch, {"indexes": ["products", "products\nx"], "patch": NEWLINE_NAME}),
        (redis_index_plan, {"index": "products", "aliases": ["live\n"], "patch": NEWLINE_NAME}),
    ],
    ids=["info", "plan", "migrate", "rollback", "validate", "batch", "alias"],
)
def test_a_name_with_a_newline_is_refused_in_one_line(clean_redis, redis_url, tmp_path, capsys, module, extra):
    """The server keeps such an index as 'products\\nx' (escaped), which no command then finds by that name."""
    load_products(clean_redis, count=10)
    clean_redis.execute_command(
        "FT.CREATE", "products\nx", "ON", "HASH", "PREFIX", "1", "product:", "SCHEMA", "name", "TEXT"
    )
    assert clean_redis.execute_command("FT._LIST").count(b"products\\nx") == 1
    before = (
        {key: clean_redis.dump(key) for key in clean_redis.scan_iter()},
        sorted(clean_redis.execute_command("FT._LIST")),
    )
    args = {"redis_url": redis_url, **{k: str(tmp_path) if v == "{tmp}" else v for k, v in extra.items()}}
    result = expect_refusal(
        module, args, capsys, ["contains the control character '\\n'; accepted: printable characters"]
    )
    assert result["error_type"] == "invalid_input"
    assert (
        {key: clean_redis.dump(key) for key in clean_redis.scan_iter()},
        sorted(clean_redis.execute_command("FT._LIST")),
    ) == before
    assert os.listdir(tmp_path) == []


@pytest.mark.bad_input
def test_malformed_vectors_in_the_keyspace_are_refused_before_the_drop(clean_redis, redis_url, tmp_path, capsys):
    load_products(clean_redis)
    args = {"redis_url": redis_url, "accept_data_loss": True, "backup_dir": str(tmp_path / "b")}
    patch = update("embedding", datatype="float16")
    run_module(
        redis_index_plan,
        {"redis_url": redis_url, "index": "products", "patch": patch, "plan_out": str(tmp_path / "plan.yaml")},
        capsys,
    )
    clean_redis.hset("product:bad", mapping={"name": "bad", "embedding": b"\x01\x02\x03"})
    clean_redis.hset("product:short", mapping={"name": "short", "embedding": b"\x00" * (DIMS * 4 - 4)})
    state = server_state(clean_redis)
    # Planned now, the audit finds them: blocked.
    blocked = expect_refusal(
        redis_index_migrate,
        {**args, "index": "products", "patch": patch},
        capsys,
        ["2 audited document(s) hold 'embedding' vectors of the wrong size", "fix or delete those documents"],
    )
    assert blocked["error_type"] == "plan_blocked"
    # Planned before they were written: the backup phase finds them.
    result = expect_refusal(
        redis_index_migrate,
        {**args, "plan_file": str(tmp_path / "plan.yaml")},
        capsys,
        ["2 document(s) hold vectors of the wrong size", "nothing was changed", "fix or delete those documents"],
    )
    assert {m["key"] for m in result["malformed"]} == {"product:bad", "product:short"}
    assert server_state(clean_redis) == state


@pytest.mark.bad_input
def test_an_acl_user_without_json_set_is_refused_before_the_drop(clean_redis, redis_url, tmp_path, capsys):
    clean_redis.execute_command(
        "FT.CREATE", "jdocs", "ON", "JSON", "PREFIX", "1", "jd:", "SCHEMA", "$.title", "AS", "title", "TEXT"
    )
    for i in range(20):
        clean_redis.execute_command("JSON.SET", f"jd:{i}", "$", json.dumps({"title": f"t {i}"}))
    clean_redis.execute_command("ACL", "SETUSER", "no_json_set", "reset", "on", ">pw", "~*", "&*", "+@all", "-json.set")
    try:
        state = server_state(clean_redis)
        expect_refusal(
            redis_index_migrate,
            {
                "redis_url": f"redis://no_json_set:pw@127.0.0.1:{redis_url.rsplit(':', 1)[1]}",
                "index": "jdocs",
                "backup_dir": str(tmp_path / "b"),
                "patch": patch(rename_fields=[{"old_name": "title", "new_name": "name"}]),
            },
            capsys,
            ["the Redis user may not run JSON.SET, which the migration needs", "nothing was changed"],
        )
        assert server_state(clean_redis) == state
    finally:
        clean_redis.execute_command("ACL", "DELUSER", "no_json_set")


@pytest.mark.bad_input
def test_an_acl_user_without_ft_dropindex_is_refused_by_the_batch_before_anything(
    clean_redis, redis_url, tmp_path, capsys
):
    load_products(clean_redis)
    plan = str(tmp_path / "batch.yaml")
    run_module(
        redis_index_batch,
        {
            "redis_url": redis_url,
            "state": "planned",
            "indexes": ["products"],
            "patch": update("embedding", datatype="float16"),
            "plan_out": plan,
        },
        capsys,
    )
    clean_redis.execute_command(
        "ACL", "SETUSER", "no_drop_batch", "reset", "on", ">pw", "~*", "&*", "+@all", "-ft.dropindex"
    )
    try:
        state = server_state(clean_redis)
        port = redis_url.rsplit(":", 1)[1]
        result = run_module(
            redis_index_batch,
            {
                "redis_url": f"redis://no_drop_batch:pw@127.0.0.1:{port}",
                "state": "applied",
                "plan_file": plan,
                "accept_data_loss": True,
                "backup_dir": str(tmp_path / "b"),
            },
            capsys,
            expect_failure=True,
        )
        assert "\n" not in result["msg"] and "unexpected" not in result["msg"]
        assert "FT.DROPINDEX" in json.dumps(result), result["msg"]
        assert server_state(clean_redis) == state
    finally:
        clean_redis.execute_command("ACL", "DELUSER", "no_drop_batch")
