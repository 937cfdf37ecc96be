"""What the molecule scenarios do to and read from their Redis server ($REDIS_URL), printed as JSON.

    python redis_fixture.py reset            empty server, only the default user
    python redis_fixture.py users            the migrating user and an application user
    python redis_fixture.py load             the products index (120 hashes, 8-d float32) and a JSON document
    python redis_fixture.py acl              every user's exact ACL LIST line
    python redis_fixture.py app              what the application user may do now (each write and read)
    python redis_fixture.py datatype         the products index's vector type
"""
from __future__ import annotations

import json
import os
import random
import struct
import sys
import time

import redis

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
MIGRATOR = ("migrator", "migrator-secret")
APP = ("app", "app-secret")
APP_RULES = ["on", ">app-secret", "~product:*", "~products", "~app:*", "%R~ro:*", "resetchannels", "&events:*", "-@all", "+@read",
             "+@write", "+@connection", "+@keyspace", "+json.set", "+json.get", "+ft.search", "-flushall",
             "(~sel:* +get +set)"]


def admin():
    """The migrating user once it exists (the default user may be quiesced), else the default user."""
    client = redis.Redis.from_url(URL, protocol=2, username=MIGRATOR[0], password=MIGRATOR[1])
    try:
        client.ping()
        return client
    except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError):
        return redis.Redis.from_url(URL, protocol=2)


def reset() -> dict:
    admin().execute_command("ACL", "SETUSER", "default", "reset", "on", "nopass", "sanitize-payload", "~*", "&*",
                            "+@all")
    client = redis.Redis.from_url(URL, protocol=2)
    for name in client.execute_command("ACL", "USERS"):
        if name != b"default":
            client.execute_command("ACL", "DELUSER", name)
    client.flushall()
    return {"reset": True}


def users() -> dict:
    client = admin()
    client.execute_command("ACL", "SETUSER", MIGRATOR[0], "reset", "on", f">{MIGRATOR[1]}", "~*", "&*", "+@all")
    client.execute_command("ACL", "SETUSER", APP[0], "reset", *APP_RULES)
    return acl()


def load() -> dict:
    client = admin()
    client.execute_command("FT.CREATE", "products", "ON", "HASH", "PREFIX", "1", "product:", "SCHEMA", "name", "TEXT",
                           "embedding", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "8", "DISTANCE_METRIC", "COSINE")
    client.execute_command("FT.CREATE", "other", "ON", "HASH", "PREFIX", "1", "other:", "SCHEMA",
                           "embedding", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "2", "DISTANCE_METRIC", "L2")
    pipe = client.pipeline(transaction=False)
    numbers = random.Random(42)
    for i in range(120):
        vector = struct.pack("<8f", *[numbers.random() for _j in range(8)])
        pipe.hset(f"product:{i}", mapping={"name": f"product {i}", "embedding": vector})
        pipe.hset(f"other:{i}", mapping={"embedding": struct.pack("<2f", i / 100, 1.0)})
    pipe.execute_command("JSON.SET", "app:doc", "$", '{"n": 1}')
    pipe.execute()
    for index in ("products", "other"):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = client.execute_command("FT.INFO", index)
            fields = dict(zip(info[::2], info[1::2]))
            if int(fields[b"num_docs"]) == 120 and int(fields[b"indexing"]) == 0:
                break
            time.sleep(0.02)
    return {"loaded": 240}


def acl() -> dict:
    lines = admin().execute_command("ACL", "LIST")
    return {line.split(b" ")[1].decode(): line.decode() for line in lines}


def app() -> dict:
    client = redis.Redis.from_url(URL, protocol=2, username=APP[0], password=APP[1])
    outcome = {}
    for name, command in [("hset", ("HSET", "product:1", "name", "changed")), ("del", ("DEL", "app:scratch")),
                          ("json.set", ("JSON.SET", "app:doc", "$.n", "2")),
                          ("hget", ("HGET", "product:1", "name")), ("json.get", ("JSON.GET", "app:doc", "$.n")),
                          ("ft.search", ("FT.SEARCH", "products", "@name:product", "LIMIT", "0", "1"))]:
        try:
            client.execute_command(*command)
            outcome[name] = "allowed"
        except redis.exceptions.NoPermissionError:
            outcome[name] = "refused"
    # Undo what an allowed write changed, so that the next check starts from the same data.
    admin().hset("product:1", "name", "product 1")
    admin().execute_command("JSON.SET", "app:doc", "$.n", "1")
    return outcome


def datatype() -> dict:
    info = admin().execute_command("FT.INFO", "products")
    fields = dict(zip(info[::2], info[1::2]))
    for attribute in fields[b"attributes"]:
        pairs = dict(zip(attribute[::2], attribute[1::2]))
        if pairs.get(b"identifier") == b"embedding":
            return {"datatype": pairs[b"data_type"].decode().lower()}
    return {"datatype": None}


if __name__ == "__main__":
    ACTIONS = {"reset": reset, "users": users, "load": load, "acl": acl, "app": app, "datatype": datatype}
    print(json.dumps(ACTIONS[sys.argv[1]]()))
