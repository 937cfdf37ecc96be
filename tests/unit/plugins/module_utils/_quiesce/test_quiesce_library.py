"""ACL LIST lines, write-command discovery and the observation, without a server."""

from __future__ import annotations

import json

import pytest

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.deps import redis_exceptions
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce import (
    acl_file,
    acl_rules,
    runner,
    state_store,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce.access import dryrun_args
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce.observe import (
    ObservationInvalid,
    check_window,
    observe,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce.write_commands import (
    command_stats,
    commands_to_deny,
    guarded_commands,
    parse_command_info,
    write_command_names,
)

HASH = "#" + "ab" * 32
LINE = (
    f"user app on sanitize-payload {HASH} ~app:* %R~ro:* resetchannels &events:* -@all +@read +config|get "
    "(~sel:* ~odd) resetchannels -@all +get +set) (%W~w:* resetchannels -@all +@write)"
)


def test_a_line_splits_into_rules_with_selectors_whole():
    name, rules = acl_rules.split_line(LINE)
    assert name == "app"
    assert rules[:3] == ["on", "sanitize-payload", HASH]
    # A key pattern ending with ")" does not close a selector; only a command rule does.
    assert rules[-2:] == ["(~sel:* ~odd) resetchannels -@all +get +set)", "(%W~w:* resetchannels -@all +@write)"]
    assert "user app " + " ".join(rules) == LINE


def test_quiesced_rules_deny_writes_at_the_root_and_in_every_selector():
    _name, rules = acl_rules.split_line(LINE)
    quiesced = acl_rules.quiesced_rules(rules, ["json.set", "ft.create"])
    assert quiesced[: len(rules) - 2] == rules[:-2]
    assert quiesced[len(rules) - 2 : len(rules) + 1] == ["-@write", "-json.set", "-ft.create"]
    assert quiesced[-2] == "(~sel:* ~odd) resetchannels -@all +get +set -@write -json.set -ft.create)"
    assert quiesced[-1].endswith("+@write -@write -json.set -ft.create)")
    assert acl_rules.setuser_args("app", ["on"]) == ["ACL", "SETUSER", "app", "reset", "on"]


def test_broken_lines_are_refused_and_hashes_hidden():
    with pytest.raises(acl_rules.AclLineInvalid):
        acl_rules.split_line("default on nopass")
    with pytest.raises(acl_rules.AclLineInvalid):
        acl_rules.split_rules("on (~a:* +get")
    assert acl_rules.redact(LINE).count("#<redacted>") == 1 and HASH not in acl_rules.redact(LINE)
    assert acl_rules.redact("user x on ~#" + "ab" * 32) == "user x on ~#" + "ab" * 32  # a key pattern, not a hash


REPLY = [
    [b"set", -3, [b"write", b"denyoom"], 1, 1, 1, [b"@write", b"@string", b"@slow"], [], [], []],
    [b"get", 2, [b"readonly", b"fast"], 1, 1, 1, [b"@read", b"@string", b"@fast"], [], [], []],
    [b"json.set", -1, [b"write", b"denyoom", b"module"], 1, 1, 1, [], [], [], []],
    [b"FT.ALIASUPDATE", 3, [b"readonly", b"module"], 0, 0, 0, [], [], [], []],
    [b"FT.SEARCH", -3, [b"readonly", b"module"], 0, 0, 0, [], [], [], []],
    [
        b"xgroup",
        -2,
        [],
        0,
        0,
        0,
        [b"@slow"],
        [],
        [],
        [
            [b"xgroup|destroy", 4, [b"write"], 2, 2, 1, [b"@write", b"@stream"], [], [], []],
            [b"xgroup|help", 2, [b"loading"], 0, 0, 0, [b"@stream"], [], [], []],
        ],
    ],
    [
        b"mod.sub",
        -2,
        [b"module"],
        0,
        0,
        0,
        [],
        [],
        [],
        [[b"mod.sub|put", -3, {b"write", b"module"}, 1, 1, 1, [], [], [], []]],
    ],
    None,
]


def test_write_commands_come_from_the_flags_and_module_ones_are_denied_by_name():
    commands = parse_command_info(REPLY)
    assert commands_to_deny(commands) == ["ft.aliasupdate", "json.set", "mod.sub|put"]
    assert commands_to_deny(commands, ["FT.SEARCH"]) == ["ft.aliasupdate", "ft.search", "json.set", "mod.sub|put"]
    assert write_command_names(commands) == ["ft.aliasupdate", "json.set", "mod.sub|put", "set", "xgroup|destroy"]


def test_command_stats_are_keyed_by_lowercase_name():
    stats = command_stats(
        {
            "cmdstat_FT.CREATE": {"calls": 2, "rejected_calls": 1, "failed_calls": 0, "usec": 5},
            "cmdstat_config|set": {"calls": 1},
            "other": 3,
        }
    )
    assert stats == {
        "ft.create": {"calls": 2, "rejected_calls": 1, "failed_calls": 0},
        "config|set": {"calls": 1, "rejected_calls": 0, "failed_calls": 0},
    }


class FakeServer:
    """INFO replies from a script of readings, one reading per sample."""

    def __init__(self, readings):
        self.readings = list(readings)
        self.current = None

    def info(self, section):
        if section == "persistence":
            self.current = self.readings.pop(0) if self.readings else self.current
            return {"rdb_changes_since_last_save": self.current["changes"]}
        if section == "stats":
            return {"expired_keys": self.current.get("expired", 0), "evicted_keys": 0}
        return {f"cmdstat_{name}": counters for name, counters in self.current.get("commands", {}).items()}


def run_observation(readings):
    clock = iter(float(t) for t in range(100))
    return observe(
        FakeServer(readings),
        ["hset", "json.set"],
        seconds=3,
        interval=1,
        sleep=lambda _s: None,
        clock=lambda: next(clock),
    )


def test_a_quiet_server_is_quiet_even_when_keys_expire():
    result = run_observation([{"changes": 5}, {"changes": 6, "expired": 1}, {"changes": 6, "expired": 1}])
    assert result["quiet"] and result["data_changes"] == 0 and result["expired_or_evicted"] == 1


def test_a_save_between_readings_does_not_hide_a_change():
    result = run_observation([{"changes": 5}, {"changes": 0}, {"changes": 2}])
    assert not result["quiet"] and result["data_changes"] == 2


def test_write_calls_and_rejections_are_counted_per_command():
    start = {"hset": {"calls": 10, "rejected_calls": 0, "failed_calls": 0}}
    end = {
        "hset": {"calls": 10, "rejected_calls": 4, "failed_calls": 0},
        "json.set": {"calls": 1, "rejected_calls": 0, "failed_calls": 1},
    }
    result = run_observation([{"changes": 0, "commands": start}, {"changes": 0, "commands": end}])
    assert result["writes_executed"] == 1 and result["writes_rejected"] == 4 and not result["quiet"]
    assert result["commands"] == {
        "hset": {"calls": 0, "rejected_calls": 4, "failed_calls": 0},
        "json.set": {"calls": 1, "rejected_calls": 0, "failed_calls": 1},
    }


class OldServer:
    """A server before Redis 7: COMMAND INFO without names is an error, COMMAND lists everything."""

    class Connection:
        def __init__(self):
            self.sent = []

        def send_command(self, *args):
            self.sent.append(args)

        def read_response(self):
            return [
                [b"set", -3, [b"write", b"denyoom"], 1, 1, 1, [b"@write", b"@string"]],
                [b"json.set", -1, [b"write", b"module"], 1, 1, 1, []],
            ]

    class Pool:
        def __init__(self, connection):
            self.connection = connection
            self.released = False

        def get_connection(self):
            return self.connection

        def release(self, connection):
            self.released = connection is self.connection

    def __init__(self):
        self.connection_pool = self.Pool(self.Connection())

    def execute_command(self, *args):
        raise redis_exceptions.ResponseError("ERR wrong number of arguments for 'command|info' command")


def test_servers_before_redis_7_list_their_commands_with_command():
    server = OldServer()
    commands = parse_command_info(runner.command_table(server))
    assert server.connection_pool.connection.sent == [("COMMAND",)] and server.connection_pool.released
    assert commands_to_deny(commands) == ["json.set"] and write_command_names(commands) == ["json.set", "set"]


def test_the_command_part_is_what_a_quiesce_changes_and_the_rest_stays_as_it_is_now():
    _name, before = acl_rules.split_line(LINE)
    rotated = HASH.replace("ab", "cd")
    now = [
        "off",
        "sanitize-payload",
        rotated,
        "~app:*",
        "resetchannels",
        "-@all",
        "+@read",
        "-@write",
        "-json.set",
        "(~sel:* ~odd) resetchannels -@all +get +set -@write -json.set)",
    ]
    assert acl_rules.other_rules(now) == ["off", "sanitize-payload", rotated, "~app:*", "resetchannels"]
    assert acl_rules.command_part(now) == (
        ("-@all", "+@read", "-@write", "-json.set"),
        ("(~sel:* ~odd) resetchannels -@all +get +set -@write -json.set)",),
    )
    restored = acl_rules.with_commands_of(now, before)
    # The password rotated and the user switched off meanwhile stay so; the commands and selectors come back.
    assert restored == [
        "off",
        "sanitize-payload",
        rotated,
        "~app:*",
        "resetchannels",
        "-@all",
        "+@read",
        "+config|get",
        "(~sel:* ~odd) resetchannels -@all +get +set)",
        "(%W~w:* resetchannels -@all +@write)",
    ]
    assert acl_rules.line_of("app", restored).startswith("user app off sanitize-payload #cdcd")


@pytest.mark.parametrize(
    "seconds, interval, problem",
    [
        (0, 0.5, "observe_seconds must be a finite number of seconds above 0, not 0"),
        (-1.0, 0.5, "observe_seconds must be a finite number of seconds above 0, not -1.0"),
        (float("nan"), 0.5, "observe_seconds must be a finite number of seconds above 0, not nan"),
        (float("inf"), 0.5, "observe_seconds must be a finite number of seconds above 0, not inf"),
        (5, 0, "observe_interval must be a finite number of seconds above 0, not 0"),
        (5, float("nan"), "observe_interval must be a finite number of seconds above 0, not nan"),
        (2, 2, "observe_interval (2 s) must be below observe_seconds (2 s)"),
        (2, 3, "observe_interval (3 s) must be below observe_seconds (2 s)"),
    ],
)
def test_an_observation_window_that_proves_nothing_is_refused(seconds, interval, problem):
    with pytest.raises(ObservationInvalid) as err:
        check_window(seconds, interval)
    assert err.value.message == problem and err.value.kind == "invalid_input"
    check_window(5, 0.5)
    check_window(0.2, 0.1)


WINDOW_REPLY = REPLY[:-1] + [
    [
        b"config",
        -2,
        [],
        0,
        0,
        0,
        [b"@slow"],
        [],
        [],
        [
            [b"config|set", -4, [b"admin"], 0, 0, 0, [b"@admin", b"@dangerous"], [], [], []],
            [b"config|get", -3, [b"admin"], 0, 0, 0, [b"@admin", b"@dangerous"], [], [], []],
        ],
    ],
    [b"flushall", -1, [b"write"], 0, 0, 0, [b"@write", b"@dangerous"], [], [], []],
    [b"FT.CONFIG", -1, [b"readonly", b"module"], 0, 0, 0, [], [], [], []],
]


def test_window_breaking_commands_are_denied_by_name_unless_write_covers_them():
    commands = parse_command_info(WINDOW_REPLY)
    deny = commands_to_deny(commands)
    assert "config|set" in deny and "ft.config" in deny
    assert "flushall" not in deny and "config|get" not in deny  # -@write covers flushall; reading config is fine
    assert sorted(c.name for c in guarded_commands(commands)) == [
        "config|set",
        "flushall",
        "ft.aliasupdate",
        "ft.config",
        "json.set",
        "mod.sub|put",
        "set",
        "xgroup|destroy",
    ]


def test_a_dry_run_call_has_the_arity_the_server_checks_first():
    commands = {c.name: c for c in parse_command_info(WINDOW_REPLY)}
    assert dryrun_args(commands["config|set"]) == ["config", "set", "x", "x"]
    assert dryrun_args(commands["set"]) == ["set", "x", "x"]
    assert dryrun_args(commands["FT.CONFIG".lower()]) == ["ft.config"]
    assert dryrun_args(commands["xgroup|destroy"]) == ["xgroup", "destroy", "x", "x"]


def test_an_acl_file_matches_when_it_holds_exactly_the_users():
    lines = {"app": "user app on ~a:* +@read", "default": "user default on nopass ~* &* +@all"}
    assert acl_file.matches(["user default on nopass ~* &* +@all", "user app on ~a:* +@read"], lines) is True
    assert acl_file.matches(["user app on ~a:* +@read"], lines) is False
    assert acl_file.matches(None, lines) is None


def test_a_state_file_of_version_1_is_read_with_nothing_left_alone(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {"format": state_store.FORMAT, "version": 1, "endpoint": "h:1/0", "users": {}, "denied_commands": []}
        )
    )
    state = state_store.load(str(path), "h:1/0")
    assert state["left_alone"] == [] and state["acl_file"] is None
    path.write_text(json.dumps({"format": state_store.FORMAT, "version": 3, "endpoint": "h:1/0", "users": {}}))
    with pytest.raises(state_store.StateFileInvalid):
        state_store.load(str(path), "h:1/0")
