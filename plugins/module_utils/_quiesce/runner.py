# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quiesce, release and verify, one server at a time.

quiesce: save every listed user's ACL LIST line to the state file, then append `-@write` and the
module write commands to their rules (and to each of their selectors); the connecting user - the
one that migrates - is never touched. release: `ACL SETUSER <user> reset <saved rules>` and read
each line back, byte for byte; only then is the state file removed. verify: watch the server's
write counters for a while.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.deps import redis_exceptions
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.errors import IndexOpsError
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.resp import decode, text

from . import acl_rules, state_store
from .observe import describe, observe
from .write_commands import commands_to_deny, parse_command_info, unknown_commands, write_command_names


class QuiesceRefused(IndexOpsError):
    """The request would lock out the migration itself, or names what the server does not have."""

    kind = "quiesce_refused"


class ReleaseIncomplete(IndexOpsError):
    """A user's rules could not be restored exactly; the state file is kept for another try."""

    kind = "release_incomplete"


class WritesObserved(IndexOpsError):
    """Writes reached the server during the observation window."""

    kind = "writes_observed"


def _acl(client, *args: str) -> Any:
    try:
        return client.execute_command("ACL", *args)
    except redis_exceptions.NoPermissionError:
        raise QuiesceRefused(f"the connecting user may not run ACL {args[0]}",
                             hint="connect as the migrating user with +acl (or +@admin) permission") from None


def whoami(client) -> str:
    return str(text(_acl(client, "WHOAMI")))


def acl_lines(client) -> Dict[str, str]:
    """{user: its exact ACL LIST line}."""
    lines: Dict[str, str] = {}
    for raw in _acl(client, "LIST") or []:
        line = str(text(raw))
        name, _rules = acl_rules.split_line(line)
        lines[name] = line
    return lines


def _setuser(client, name: str, rules: Sequence[str]) -> None:
    try:
        client.execute_command(*acl_rules.setuser_args(name, rules))
    except redis_exceptions.ResponseError as err:
        raise QuiesceRefused(f"ACL SETUSER {name} was refused: {str(err).splitlines()[0]}",
                             details={"user": name}) from None


def _run_id(client) -> str:
    return str(decode(client.info("server").get("run_id", "")))


def command_table(client) -> Any:
    """Every command's COMMAND INFO entry, as the server sends it (no client-side parsing)."""
    try:
        # "COMMAND INFO" as one word: redis-py applies no reply parser to it.
        return client.execute_command("COMMAND INFO")
    except redis_exceptions.ResponseError:
        # Before Redis 7, COMMAND INFO needs names and only COMMAND lists them all; redis-py would
        # parse its reply into another shape, so it is read from a connection directly.
        pool = client.connection_pool
        try:
            connection = pool.get_connection()
        except TypeError:  # redis-py < 6 wants a command name
            connection = pool.get_connection("COMMAND")
        try:
            connection.send_command("COMMAND")
            return connection.read_response()
        finally:
            pool.release(connection)


def _commands(client):
    return parse_command_info(command_table(client))


def quiesce(client, endpoint: str, state_file: str, users: Sequence[str] = (), exclude_users: Sequence[str] = (),
            extra_commands: Sequence[str] = (), check_mode: bool = False) -> Dict[str, Any]:
    me = whoami(client)
    lines = acl_lines(client)
    state = state_store.load(state_file, endpoint)
    saved = state["users"] if state else {}
    targets = list(dict.fromkeys(users)) if users else sorted(set(lines) - {me} - set(exclude_users))
    if me in targets:
        raise QuiesceRefused(f"users lists {me!r}, the user this task connects as: the migration could not write",
                             hint="connect as a separate migrating user, or leave it out of users")
    unknown = [name for name in targets if name not in lines and name not in saved]
    if unknown:
        raise QuiesceRefused(f"no ACL user named {', '.join(unknown)}", hint="ACL USERS lists the users",
                             details={"known_users": sorted(lines)})
    commands = _commands(client)
    strange = unknown_commands(commands, extra_commands)
    if strange:
        raise QuiesceRefused(f"the server has no command {', '.join(strange)}", hint="check extra_commands")
    deny = sorted(set(commands_to_deny(commands, extra_commands)) | set(state["denied_commands"] if state else ()))
    run_id = _run_id(client)
    warnings: List[str] = []
    if state is None:
        state = state_store.new_state(endpoint, run_id, me, deny)
    elif state.get("run_id") != run_id:
        warnings.append(f"{endpoint} restarted since the quiesce began (run_id changed): ACL changes not saved "
                        "with ACL SAVE were lost and are applied again")
        state["run_id"] = run_id
    deny_changed = state["denied_commands"] != deny
    state["denied_commands"] = deny

    todo: List[str] = []
    new_users = False
    for name in targets:
        if name not in state["users"]:
            state["users"][name] = {"original": lines[name], "quiesced": None}
            new_users = True
        entry = state["users"][name]
        if deny_changed or entry["quiesced"] is None or lines.get(name) != entry["quiesced"]:
            todo.append(name)

    report = []
    if todo and not check_mode:
        if new_users or deny_changed:
            # The originals are on disk before the first ACL change: a run killed from here on can be released.
            state_store.save(state_file, state)
        for name in todo:
            _name, original_rules = acl_rules.split_line(state["users"][name]["original"])
            _setuser(client, name, acl_rules.quiesced_rules(original_rules, deny))
        after = acl_lines(client)
        for name in todo:
            state["users"][name]["quiesced"] = after.get(name)
        state_store.save(state_file, state)
    for name in targets:
        entry = state["users"][name]
        report.append({
            "name": name,
            "changed": name in todo,
            "rules_before": acl_rules.redact(entry["original"]),
            "rules_quiesced": acl_rules.redact(entry["quiesced"]) if entry["quiesced"] else None,
        })
    return {
        "changed": bool(todo),
        "migrating_user": me,
        "users": report,
        "denied_commands": deny,
        "state_file": state_file,
        "warnings": warnings,
    }


def release(client, endpoint: str, state_file: str, check_mode: bool = False) -> Dict[str, Any]:
    state = state_store.load(state_file, endpoint)
    if state is None:
        return {"changed": False, "users": [], "state_file": state_file, "state_file_removed": False, "warnings": []}
    lines = acl_lines(client)
    warnings: List[str] = []
    report = []
    mismatched = []
    restored = []
    for name, entry in sorted(state["users"].items()):
        original, current = entry["original"], lines.get(name)
        if current == original:
            report.append({"name": name, "changed": False, "identical": True, "rules": acl_rules.redact(original)})
            continue
        if current is None:
            warnings.append(f"ACL user {name!r} was deleted during the window; it is created again with its saved rules")
        elif entry.get("quiesced") and current != entry["quiesced"]:
            warnings.append(f"ACL user {name!r} was changed during the window; its saved rules are restored")
        restored.append(name)
        if not check_mode:
            _name, rules = acl_rules.split_line(original)
            _setuser(client, name, rules)
    if restored and not check_mode:
        lines = acl_lines(client)
        for name in restored:
            identical = lines.get(name) == state["users"][name]["original"]
            if not identical:
                mismatched.append(name)
            report.append({"name": name, "changed": True, "identical": identical,
                           "rules": acl_rules.redact(state["users"][name]["original"])})
    elif restored:
        report += [{"name": name, "changed": True, "identical": None,
                    "rules": acl_rules.redact(state["users"][name]["original"])} for name in restored]
    report.sort(key=lambda entry: entry["name"])
    if mismatched:
        raise ReleaseIncomplete(f"the restored rules of {', '.join(mismatched)} differ from the saved ones",
                                hint=f"the saved rules stay in {state_file}; compare with ACL LIST",
                                details={"users": report})
    # In check mode the state file would be removed too: that alone is a change.
    removed = True if check_mode else state_store.remove(state_file)
    return {"changed": bool(restored) or removed, "users": report, "state_file": state_file,
            "state_file_removed": removed, "warnings": warnings}


def verify(client, endpoint: str, seconds: float, interval: float, extra_commands: Sequence[str] = (),
           fail_on_rejected: bool = False, observer=observe) -> Dict[str, Any]:
    names = write_command_names(_commands(client), extra_commands)
    observation = observer(client, names, seconds, interval)
    warnings: List[str] = []
    if observation["writes_rejected"] and not fail_on_rejected:
        warnings.append(f"{endpoint}: {observation['writes_rejected']} write(s) were rejected during the observation: "
                        "a client still tries to write")
    if not observation["quiet"] or (fail_on_rejected and observation["writes_rejected"]):
        raise WritesObserved(
            f"writes reached the server during the {seconds:g} s observation: {observation['writes_executed']} ran, "
            f"{observation['writes_rejected']} rejected, {observation['data_changes']} data change(s) "
            f"({describe(observation)})",
            hint="stop the application's writers (or quiesce the users they log in as) before migrating",
            details={"observation": observation})
    return {"changed": False, "observation": observation, "warnings": warnings}
