"""ACL users for the write-quiesce tests: a migrating user, an application user with selectors and
key patterns, and the default user, on a private server started by tools/redis_search_server.py."""

from __future__ import annotations

from typing import Dict

import redis

MIGRATOR = ("migrator", "migrator-secret")
APP = ("app", "app-secret")

# An application user whose rules exercise what a restore must keep: key patterns with read/write
# restrictions, channels, a subcommand, a denied command and two selectors.
APP_RULES = [
    "on",
    ">app-secret",
    "~app:*",
    "~product:*",
    "~doc:*",
    "%R~ro:*",
    "resetchannels",
    "&events:*",
    "-@all",
    "+@read",
    "+@write",
    "+@connection",
    "+@keyspace",
    "+@transaction",
    "+@scripting",
    "+json.set",
    "+json.get",
    "+json.del",
    "+ft.search",
    "+ft.info",
    "+ft.create",
    "+config|get",
    "-flushall",
    "(~sel:* +get +set +hset)",
    "(%W~wonly:* resetchannels +@write)",
]


def create_users(client) -> None:
    """The migrator may do everything; `app` and `default` are what the application uses."""
    client.execute_command("ACL", "SETUSER", MIGRATOR[0], "reset", "on", f">{MIGRATOR[1]}", "~*", "&*", "+@all")
    client.execute_command("ACL", "SETUSER", APP[0], "reset", *APP_RULES)


def acl_lines(client) -> Dict[str, bytes]:
    """{user: exact ACL LIST line, as bytes}."""
    return {line.split(b" ")[1].decode(): line for line in client.execute_command("ACL", "LIST")}


def reset_acl(client) -> None:
    """Back to a server's initial users: only `default`, allowed everything. A quiesced `default` may not
    run ACL commands, so it is reset as the migrating user first (when that user is still there)."""
    import redis  # pylint: disable=import-outside-toplevel

    kwargs = client.connection_pool.connection_kwargs
    admin = redis.Redis(host=kwargs["host"], port=kwargs["port"], username=MIGRATOR[0], password=MIGRATOR[1])
    try:
        admin.execute_command(
            "ACL", "SETUSER", "default", "reset", "on", "nopass", "sanitize-payload", "~*", "&*", "+@all"
        )
    except redis.exceptions.RedisError:
        pass  # no migrating user: `default` still has its rights
    finally:
        admin.close()
    for name in client.execute_command("ACL", "USERS"):
        if name != b"default":
            client.execute_command("ACL", "DELUSER", name)
    client.execute_command(
        "ACL", "SETUSER", "default", "reset", "on", "nopass", "sanitize-payload", "~*", "&*", "+@all"
    )


def can_write(url: str, user: str, password: str, key: str = "app:probe") -> bool:
    """Whether `user` can write `key`, one of the application's keys (the write is undone by the test's admin)."""
    conn = redis.Redis.from_url(url, protocol=2, username=user, password=password)
    try:
        conn.hset(key, "f", "app-wrote")
        return True
    except redis.exceptions.NoPermissionError:
        return False
    finally:
        conn.close()
