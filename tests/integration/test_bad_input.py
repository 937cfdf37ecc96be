"""Hostile input, module by module: each case fails with one line naming the problem and the fix,
and the server is exactly as it was (every key's bytes, the index list, each index's FT.INFO).

To add a case, append a Case to the module's table: `args` are the module's options (the
connection to the test server is added unless the case sets `connection`); `$url`, `$port`,
`$tmp`, `$http_port`, `$close_port` and `$silent_port` in any string are replaced at run time;
`expect` are substrings the msg must contain (name the problem and the fix).
"""
from __future__ import annotations

import copy
import string
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy
import pytest
from datasets import wait_for
from fake_endpoints import FakeEndpoint
from module_runner import run_module

from ansible_collections.indexops.redis_search.plugins.module_utils._migration import create_check
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.errors import SchemaInvalid
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.schema import parse_schema
from ansible_collections.indexops.redis_search.plugins.modules import (
    redis_index_info,
    redis_index_migrate,
    redis_index_plan,
    redis_index_rollback,
)

DIMS = 8
# The live index every case runs against (see `products`), as a target schema.
TARGET = {
    "index": {"name": "products", "prefix": "product:", "storage_type": "hash"},
    "fields": [
        {"name": "name", "type": "text"},
        {"name": "category", "type": "tag"},
        {"name": "price", "type": "numeric"},
        {"name": "embedding", "type": "vector",
         "attrs": {"algorithm": "hnsw", "dims": DIMS, "distance_metric": "cosine", "datatype": "float32"}},
    ],
}
# What FT.INFO says of an index's definition and content. Not its statistics: reads move some
# (number_of_uses, cursor_stats) and the server's background GC others (memory sizes, blocks).
DEFINING_INFO = {"index_name", "index_options", "index_definition", "attributes", "stopwords_list", "num_docs",
                 "max_doc_id", "hash_indexing_failures"}


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
    Case("db-option", {}, ["database 1 is not supported", "database 0", "db: 0"],
         connection={"host": "127.0.0.1", "port": "$port", "db": 1}),
    Case("db-in-url", {}, ["redis_url (or REDIS_URL) selects database 3", "/0 at the end of redis_url"],
         connection={"redis_url": "redis://127.0.0.1:$port/3"}),
    Case("db-in-url-query", {}, ["redis_url (or REDIS_URL) selects database 2"],
         connection={"redis_url": "redis://127.0.0.1:$port/0?db=2"}),
    Case("port-99999", {}, ["port must be 65535 or less, not 99999", "set port to 65535 or less"],
         connection={"host": "127.0.0.1", "port": 99999}),
    Case("socket-timeout-0", {"socket_timeout": 0}, ["socket_timeout must be more than 0", "set socket_timeout"]),
    Case("connect-timeout-0", {"connect_timeout": 0}, ["connect_timeout must be more than 0"]),
    Case("connect-timeout-negative", {"connect_timeout": -3}, ["connect_timeout must be more than 0, not -3"]),
    Case("tls-against-plain-server", {"connect_timeout": 2, "tls_verify": False},
         ["cannot connect to 127.0.0.1:$port/0", "TLS handshake failed", "speaks TLS"],
         connection={"redis_url": "rediss://127.0.0.1:$port/0"}, max_seconds=8),
    Case("tls-option-against-plain-server", {"connect_timeout": 2, "tls": True, "tls_verify": False},
         ["TLS handshake failed"], connection={"host": "127.0.0.1", "port": "$port"}, max_seconds=8),
    Case("http-endpoint", {"connect_timeout": 2}, ["127.0.0.1:$http_port/0", "does not answer like a Redis server",
                                                   "is it a Redis server"],
         connection={"host": "127.0.0.1", "port": "$http_port"}, max_seconds=8),
    Case("accept-and-close-endpoint", {"connect_timeout": 2}, ["cannot connect to 127.0.0.1:$close_port/0",
                                                               "is it a Redis server"],
         connection={"host": "127.0.0.1", "port": "$close_port"}, max_seconds=8),
    Case("silent-endpoint", {"connect_timeout": 2}, ["cannot connect to 127.0.0.1:$silent_port/0", "connect_timeout"],
         connection={"host": "127.0.0.1", "port": "$silent_port"}, max_seconds=8),
]

# --- schema values (issue 13 A), through a patch and through a target schema ------------------------

SCHEMA_CASES = [
    Case("hnsw-m-1e9", {"patch": update("embedding", m=10**9)}, ["m 1000000000", "accepted range 2..4096", "crash"]),
    Case("hnsw-m-32768", {"patch": update("embedding", m=32768)}, ["m 32768", "2..4096"]),
    Case("hnsw-m-1", {"patch": update("embedding", m=1)}, ["m 1 is outside", "2..4096"]),
    Case("ef-construction-0", {"patch": update("embedding", ef_construction=0)}, ["ef_construction 0", "1..1048576"]),
    Case("ef-runtime-huge", {"patch": update("embedding", ef_runtime=2**40)}, ["ef_runtime 1099511627776", "1..1048576"]),
    Case("epsilon-nan", {"patch": update("embedding", epsilon="nan")}, ["epsilon 'nan' is not a finite number"]),
    Case("epsilon-inf", {"patch": update("embedding", epsilon=float("inf"))}, ["epsilon inf is not a finite number"]),
    Case("block-size-2^40", {"patch": update("embedding", algorithm="flat", block_size=2**40)},
         ["block_size 1099511627776", "1..1048576"]),
    Case("dims-huge", {"patch": update("embedding", dims=10**6)}, ["dims 1000000", "1..32768"]),
    Case("initial-cap-huge", {"patch": update("embedding", initial_cap=2**32)}, ["initial_cap 4294967296", "0..4194304"]),
    Case("weight-inf", {"patch": update("name", weight=float("inf"))}, ["weight inf is not a finite number"]),
    Case("weight-nan", {"patch": update("name", weight="nan")}, ["weight 'nan' is not a finite number"]),
    Case("weight-negative", {"patch": update("name", weight=-2)}, ["weight -2", "0..1e+06"]),
    Case("phonetic-unknown", {"patch": update("name", phonetic_matcher="dm:de")},
         ["phonetic_matcher 'dm:de'", "accepted: dm:en, dm:fr, dm:pt, dm:es"]),
    Case("separator-nul", {"patch": update("category", separator="\x00")}, ["separator '\\x00'", "accepted: one of"]),
    Case("separator-newline", {"patch": update("category", separator="\n")}, ["separator '\\n'", "accepted: one of"]),
    Case("language-unknown", {"patch": patch(index={"language": "klingon"})},
         ["language 'klingon' is not one the server knows", "accepted: arabic"]),
    Case("score-nan", {"patch": patch(index={"score": "nan"})}, ["score 'nan' is not a finite number"]),
    Case("score-above-1", {"patch": patch(index={"score": 1.5})}, ["score 1.5", "0..1"]),
    Case("prefix-nul", {"patch": patch(index={"prefix": "a\x00b:"})}, ["prefix", "control character '\\x00'"]),
    Case("filter-nul", {"patch": patch(index={"filter": "@price>0\x00"})}, ["filter", "control character"]),
    Case("stopword-empty", {"patch": patch(index={"stopwords": ["the", ""]})}, ["stopword is empty"]),
    Case("field-name-nul", {"patch": patch(add_fields=[{"name": "a\x00b", "type": "tag"}])},
         ["field name 'a\\x00b' contains the control character"]),
    # Only the server can parse a FILTER: the create check asks it, before anything changes.
    Case("filter-unparsable", {"patch": patch(index={"filter": "@price>"})},
         ["the server refuses the target definition", "Syntax error", "correct the schema"]),
    Case("target-hnsw-m-1e9", {"target_schema": target(vector_attrs(m=10**9))},
         ["target_schema: fields[3] (embedding)", "m 1000000000", "2..4096"]),
    Case("target-language-unknown", {"target_schema": target(lambda d: d["index"].update(language="klingon"))},
         ["target_schema: index", "language 'klingon'"]),
    Case("target-filter-unparsable", {"target_schema": target(lambda d: d["index"].update(filter="hasprefix("))},
         ["the server refuses the target definition", "Syntax error"]),
]

# --- planning input (issue 13 C) ------------------------------------------------------------------

PLANNING_CASES = [
    Case("batch-size-0", {"patch": update("name", weight=2), "batch_size": 0},
         ["batch_size must be 1 or more, not 0", "set batch_size to 1 or more"]),
    Case("audit-sample-negative", {"patch": update("name", weight=2), "audit_sample_size": -1},
         ["audit_sample_size must be 0 or more, not -1"]),
    Case("key-sample-negative", {"patch": update("name", weight=2), "key_sample_size": -5},
         ["key_sample_size must be 0 or more, not -5"]),
    Case("rename-to-empty", {"patch": patch(rename_fields=[{"old_name": "name", "new_name": ""}])},
         ["rename_fields[0]: new_name is empty", "give a non-empty new_name"]),
    Case("rename-from-empty", {"patch": patch(rename_fields=[{"old_name": "", "new_name": "title"}])},
         ["rename_fields[0]: old_name is empty"]),
    Case("remove-every-field", {"patch": patch(remove_fields=["name", "category", "price", "embedding"])},
         ["removes every field of products", "keep at least one field"]),
]

PLAN_CASES = CONNECTION_CASES + SCHEMA_CASES + PLANNING_CASES + [
    Case("plan-out-is-a-directory", {"patch": update("name", weight=2), "plan_out": "$tmp"},
         ["plan_out $tmp is a directory", "give the path of a file"]),
    Case("plan-out-in-missing-directory", {"patch": update("name", weight=2), "plan_out": "$tmp/no/such/plan.yaml"},
         ["the directory $tmp/no/such does not exist", "create it first"]),
]

MIGRATE_CASES = CONNECTION_CASES + PLANNING_CASES + [
    Case("workers-0", {"patch": update("name", weight=2), "workers": 0}, ["workers must be 1 or more, not 0"]),
    Case("workers-negative", {"patch": update("name", weight=2), "workers": -4}, ["workers must be 1 or more, not -4"]),
    Case("wait-timeout-negative", {"patch": update("name", weight=2), "wait_timeout": -1},
         ["wait_timeout must be 0 or more, not -1", "set wait_timeout"]),
    Case("hnsw-m-1e9", {"patch": update("embedding", m=10**9)}, ["m 1000000000", "2..4096"]),
    Case("target-hnsw-m-1e9", {"target_schema": target(vector_attrs(m=10**9))}, ["m 1000000000"]),
    # Planned on the fly: the create check blocks it before the lock, the backup or the drop.
    Case("filter-unparsable", {"patch": patch(index={"filter": "@price>"})},
         ["the server refuses the target definition", "Syntax error"]),
    Case("target-filter-unparsable", {"target_schema": target(lambda d: d["index"].update(filter="hasprefix("))},
         ["the server refuses the target definition", "Syntax error"]),
    # A report that could not be written used to turn a completed migration into a failed one.
    Case("report-out-in-missing-directory", {"patch": update("name", weight=2), "report_out": "$tmp/no/report.yaml"},
         ["the directory of report_out $tmp/no/report.yaml does not exist", "create it, or choose another path"]),
    Case("report-out-is-a-directory", {"patch": update("name", weight=2), "report_out": "$tmp"},
         ["report_out $tmp is a directory", "give report_out a file name"]),
    # Cases that need more than options (a plan file of another index, a plan from a second server, a
    # full disk in a process of its own) are in test_migrate_safety.py, with the same assertions.
]

ROLLBACK_CASES = CONNECTION_CASES + [
    Case("wait-timeout-negative", {"wait_timeout": -10}, ["wait_timeout must be 0 or more, not -10"]),
    Case("wait-timeout-inf", {"wait_timeout": float("inf")}, ["wait_timeout must be a finite number"]),
]

INFO_CASES = CONNECTION_CASES + [
    Case("backup-dir-is-a-file", {"backup_dir": "$tmp/a-file"}, ["backup_dir $tmp/a-file is a file, not a directory",
                                                                 "give the backup directory"]),
]


# --- the fixtures -----------------------------------------------------------------------------------

def load_products(client, count: int = 30) -> None:
    client.execute_command("FT.CREATE", "products", "ON", "HASH", "PREFIX", "1", "product:", "SCHEMA",
                           "name", "TEXT", "category", "TAG", "price", "NUMERIC", "embedding", "VECTOR", "HNSW", "6",
                           "TYPE", "FLOAT32", "DIM", str(DIMS), "DISTANCE_METRIC", "COSINE")
    client.execute_command("FT.CREATE", "names", "ON", "HASH", "PREFIX", "1", "product:", "SCHEMA", "name", "TEXT")
    vectors = numpy.random.default_rng(7).random((count, DIMS), dtype=numpy.float32)
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.hset(f"product:{i}", mapping={"name": f"product {i}", "category": "books" if i % 2 else "toys",
                                           "price": i, "embedding": vectors[i].tobytes()})
    pipe.execute()
    wait_for(client, "products", count)
    wait_for(client, "names", count)


def server_state(client) -> dict:
    """Every key's DUMP bytes, the index list and what each index's FT.INFO says of its definition."""
    indexes = sorted(client.execute_command("FT._LIST"))
    infos = {}
    for name in indexes:
        reply = client.execute_command("FT.INFO", name)
        infos[name] = {key: value for key, value in zip(reply[::2], reply[1::2])
                       if key.decode() in DEFINING_INFO}
    return {"keys": {key: client.dump(key) for key in client.scan_iter(count=1000)}, "indexes": indexes,
            "info": infos}


@pytest.fixture
def unchanged_server(clean_redis):
    """The products data; after the test, the server must be exactly as before it."""
    load_products(clean_redis)
    before = server_state(clean_redis)
    assert before["keys"] and before["indexes"] == [b"names", b"products"]
    yield clean_redis
    assert server_state(clean_redis) == before


@pytest.fixture
def places(redis_server, tmp_path):
    """What `$name` in a case stands for."""
    (tmp_path / "a-file").write_text("not a directory")
    endpoints = {behaviour: FakeEndpoint(behaviour) for behaviour in ("http", "close", "silent")}
    yield {"url": redis_server.url, "port": str(redis_server.port), "tmp": str(tmp_path),
           **{f"{name}_port": str(endpoint.port) for name, endpoint in endpoints.items()}}
    for endpoint in endpoints.values():
        endpoint.close()


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


@pytest.mark.parametrize("case", PLAN_CASES, ids=ids(PLAN_CASES))
def test_redis_index_plan_refuses(case, unchanged_server, places, capsys):
    refuse(redis_index_plan, case, places, capsys, with_change(case, {"index": "products"}))


@pytest.mark.parametrize("case", MIGRATE_CASES, ids=ids(MIGRATE_CASES))
def test_redis_index_migrate_refuses(case, unchanged_server, places, capsys, tmp_path):
    extra = {"index": "products", "backup_dir": str(tmp_path / "backups"), "accept_data_loss": True}
    refuse(redis_index_migrate, case, places, capsys, with_change(case, extra))
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())


@pytest.mark.parametrize("case", ROLLBACK_CASES, ids=ids(ROLLBACK_CASES))
def test_redis_index_rollback_refuses(case, unchanged_server, places, capsys, tmp_path):
    (tmp_path / "backups").mkdir()
    refuse(redis_index_rollback, case, places, capsys, {"index": "products", "backup_dir": str(tmp_path / "backups")})


@pytest.mark.parametrize("case", INFO_CASES, ids=ids(INFO_CASES))
def test_redis_index_info_refuses(case, unchanged_server, places, capsys):
    refuse(redis_index_info, case, places, capsys, {"index": "products"})


def test_the_cases_cover_issue_13():
    """Guards the tables against losing a case when they are extended."""
    every = {case.id for cases in (PLAN_CASES, MIGRATE_CASES, ROLLBACK_CASES, INFO_CASES) for case in cases}
    for needed in ("hnsw-m-1e9", "weight-inf", "weight-nan", "block-size-2^40", "language-unknown",
                   "filter-unparsable", "phonetic-unknown", "separator-nul", "db-option", "db-in-url", "batch-size-0",
                   "workers-0", "audit-sample-negative", "key-sample-negative", "socket-timeout-0",
                   "wait-timeout-negative", "port-99999", "rename-to-empty", "rename-from-empty", "remove-every-field",
                   "plan-out-is-a-directory", "plan-out-in-missing-directory", "backup-dir-is-a-file",
                   "tls-against-plain-server", "http-endpoint", "accept-and-close-endpoint"):
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
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.patch import parse_patch
    from ansible_collections.indexops.redis_search.plugins.module_utils._migration.planner import create_plan
    client = unchanged_server
    client.execute_command("ACL", "SETUSER", "planner", "on", ">pw", "~*", "&*", "+@all", "-FT.CREATE")
    try:
        limited = redis.Redis.from_url(redis_server.url, username="planner", password="pw")
        with pytest.raises(create_check.CreateCheckUnavailable, match="NOPERM|no permissions"):
            create_check.check_create(limited, parse_schema(TARGET))
        plan = create_plan(limited, "products", patch=parse_patch(update("name", weight=2)), audit_sample=0)
        assert plan.classification.supported
        assert any("could not be checked" in warning for warning in plan.warnings)
    finally:
        client.execute_command("ACL", "DELUSER", "planner")
