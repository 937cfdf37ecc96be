# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quiesce, release and verify, one server at a time.

quiesce: save every listed user's ACL LIST line to the state file, then deny the user every write and
every command that can break the window (write_commands.py), appended to its command rules and inside
each of its selectors; the connecting user - the one that migrates - is never touched. Users left
alone that could still write or break the window are warned about.

release: refused while a migration or rollback holds a lock on the server (unless forced). Each user
gets its command rules from before the window back and keeps everything else as it is now - a password
rotated, keys changed, a user switched off during the window stay so; a user deleted stays deleted; a
user whose command rules someone else changed during the window is refused and kept in the state file,
never overwritten. Each line is read back byte for byte; the state file goes when no user is left in
it. Then the server's ACL file is made to match again (acl_file.py).

verify: watch the server's write counters for a while, and look for users that could write unseen
(created or changed during the window).
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.deps import redis_exceptions
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import IndexOpsError
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.lock import held_locks
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.resp import decode, text

from . import access, acl_file, acl_rules, sentinel_support, state_store
from .observe import check_window, describe, observe
from .write_commands import (
    WINDOW_BREAKING,
    commands_to_deny,
    guarded_commands,
    parse_command_info,
    unknown_commands,
    write_command_names,
)


class QuiesceRefused(IndexOpsError):
    """The request would lock out the migration itself, or names what the server does not have."""

    kind = "quiesce_refused"


class ReleaseIncomplete(IndexOpsError):
    """A user's rules could not be restored exactly; the state file is kept for another try."""

    kind = "release_incomplete"


class ReleaseRefused(IndexOpsError):
    """A migration still runs on the server: releasing would let the application write into it."""

    kind = "release_refused"


class WritesObserved(IndexOpsError):
    """Writes reached the server during the observation window."""

    kind = "writes_observed"


class WritersNotQuiesced(IndexOpsError):
    """Users that can write (or break the window) are not quiesced: created or changed during the window."""

    kind = "writers_not_quiesced"


def _acl(client, *args: str) -> Any:
    try:
        return client.execute_command("ACL", *args)
    except redis_exceptions.NoPermissionError:
        raise QuiesceRefused(
            f"the connecting user may not run ACL {args[0]}",
            hint="connect as the migrating user with +acl (or +@admin) permission",
        ) from None


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
        raise QuiesceRefused(
            f"ACL SETUSER {name} was refused: {str(err).splitlines()[0]}", details={"user": name}
        ) from None


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


def commands_of(line: str):
    """The part of an ACL LIST line a quiesce changes: root command rules and selectors."""
    return acl_rules.command_part(acl_rules.split_line(line)[1])


def _exposed(client, names: Sequence[str], guarded, write_names: Sequence[str]) -> Optional[List[Dict[str, Any]]]:
    """Of `names`, those that may still run a write or window-breaking command, with what they may run;
    None when the server cannot tell (no ACL DRYRUN before Redis 7)."""
    writes = set(write_names)
    found = []
    for name in names:
        may = access.allowed(client, name, guarded)
        if may is None:
            return None
        if may:
            found.append(
                {
                    "name": name,
                    "write_commands": len([c for c in may if c in writes]),
                    "window_breaking": [c for c in may if c not in writes and c in WINDOW_BREAKING],
                }
            )
    return found


def _describe_exposed(entry: Dict[str, Any]) -> str:
    rights = [f"{entry['write_commands']} write command(s)"] if entry["write_commands"] else []
    return f"{entry['name']} ({', '.join(rights + entry['window_breaking'])})"


def quiesce(
    client,
    endpoint: str,
    state_file: Any,
    users: Sequence[str] = (),
    exclude_users: Sequence[str] = (),
    extra_commands: Sequence[str] = (),
    check_mode: bool = False,
    sentinel_users: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """`state_file`: a path, or a store (state_store.StateFile, set_state.MemberState). `sentinel_users`: the
    users the Sentinels connect as (None: found on this server's connections)."""
    store = state_store.at(state_file, endpoint)
    me = whoami(client)
    lines = acl_lines(client)
    state = store.load()
    targets = _targets(lines, state["users"] if state else {}, me, users, exclude_users)
    commands = _commands(client)
    strange = unknown_commands(commands, extra_commands)
    if strange:
        raise QuiesceRefused(f"the server has no command {', '.join(strange)}", hint="check extra_commands")
    deny = sorted(set(commands_to_deny(commands, extra_commands)) | set(state["denied_commands"] if state else ()))
    warnings: List[str] = []
    if sentinel_users is None:
        sentinel_users = sentinel_support.users_of_sentinels(client, endpoint, warnings)
    kept_for_sentinel = sorted(set(sentinel_users) & set(targets))
    left_alone = sorted(set(lines) - set(targets) - {me})
    new_window = state is None
    state, deny_changed = _window_state(
        client, endpoint, state, me, deny, left_alone, kept_for_sentinel, lines, warnings
    )
    todo = _users_to_quiesce(state, targets, lines, deny_changed, warnings)
    if not check_mode and (todo or new_window):
        # The originals are on disk before the first ACL change: a run killed from here on can be released.
        store.save(state)
    if todo and not check_mode:
        _deny(client, state, todo, lines, deny, kept_for_sentinel)
        store.save(state)
    exposed = _left_alone_exposed(client, endpoint, left_alone, commands, extra_commands, warnings)
    if kept_for_sentinel:
        warnings.append(sentinel_support.kept_warning(endpoint, kept_for_sentinel))
    if exposed:
        warnings.append(
            f"ACL user(s) left alone for the window can still write or break it: "
            f"{'; '.join(_describe_exposed(entry) for entry in exposed)} - quiesce them unless they must "
            "keep these rights"
        )
    return {
        "changed": bool(todo),
        "migrating_user": me,
        "users": _quiesce_report(state, targets, todo),
        "denied_commands": deny,
        "users_left_alone": exposed,
        "sentinel_users": kept_for_sentinel,
        "state_file": store.path,
        "warnings": warnings,
    }


def _targets(
    lines: Dict[str, str], saved: Dict[str, Any], me: str, users: Sequence[str], exclude_users: Sequence[str]
) -> List[str]:
    """The users the window quiesces: those listed, or every user but the connecting one and the excluded."""
    targets = list(dict.fromkeys(users)) if users else sorted(set(lines) - {me} - set(exclude_users))
    if me in targets:
        raise QuiesceRefused(
            f"users lists {me!r}, the user this task connects as: the migration could not write",
            hint="connect as a separate migrating user, or leave it out of users",
        )
    unknown = [name for name in targets if name not in lines and name not in saved]
    if unknown:
        raise QuiesceRefused(
            f"no ACL user named {', '.join(unknown)}",
            hint="ACL USERS lists the users",
            details={"known_users": sorted(lines)},
        )
    return targets


def _window_state(
    client,
    endpoint: str,
    state: Optional[Dict[str, Any]],
    me: str,
    deny: List[str],
    left_alone: List[str],
    kept_for_sentinel: List[str],
    lines: Dict[str, str],
    warnings: List[str],
) -> tuple:
    """(the window's state: new, or the saved one brought up to date, whether its denials changed)."""
    run_id = _run_id(client)
    if state is None:
        state = state_store.new_state(
            endpoint, run_id, me, deny, left_alone=left_alone, acl_file=acl_file.before_window(client, lines, run_id)
        )
    elif state.get("run_id") != run_id:
        warnings.append(
            f"{endpoint} restarted since the quiesce began (run_id changed): ACL changes not saved "
            "with ACL SAVE were lost and are applied again"
        )
        state["run_id"] = run_id
    deny_changed = state["denied_commands"] != deny or state.get("sentinel_users", []) != kept_for_sentinel
    state["denied_commands"] = deny
    state["sentinel_users"] = kept_for_sentinel
    return state, deny_changed


def _users_to_quiesce(
    state: Dict[str, Any], targets: Sequence[str], lines: Dict[str, str], deny_changed: bool, warnings: List[str]
) -> List[str]:
    """The targets whose denials must be set now (new ones, those whose denials were lost, all of them when the
    denied commands changed); refused when someone else changed a target's command rules during the window."""
    todo: List[str] = []
    tampered: List[str] = []
    for name in targets:
        current = lines.get(name)
        if current is None:
            warnings.append(f"ACL user {name!r} was deleted during the window; it stays deleted")
            continue
        entry = state["users"].setdefault(name, {"original": current, "quiesced": None})
        now = commands_of(current)
        if entry["quiesced"] is not None and now == commands_of(entry["quiesced"]):
            if deny_changed:
                todo.append(name)
        elif entry["quiesced"] is None or now == commands_of(entry["original"]):
            todo.append(name)  # new, or its denials were lost (a restart, ACL LOAD): quiesced again
        else:
            tampered.append(name)
    if tampered:
        raise QuiesceRefused(
            f"the command rules of ACL user(s) {', '.join(tampered)} were changed during the window by someone else "
            "(neither their rules before the window nor the quiesced ones): not quiesced over that",
            hint="release the window (it reports these users and leaves them as they are), check their rules, then "
            "start the window again",
            details={"users": [{"name": name, "rules_now": acl_rules.redact(lines[name])} for name in tampered]},
        )
    return todo


def _deny(
    client,
    state: Dict[str, Any],
    todo: Sequence[str],
    lines: Dict[str, str],
    deny: Sequence[str],
    kept_for_sentinel: Sequence[str],
) -> None:
    """Each user of `todo` gets the window's denials on its command rules from before the window; the lines read
    back go to the state."""
    for name in todo:
        _name, current_rules = acl_rules.split_line(lines[name])
        _name, original_rules = acl_rules.split_line(state["users"][name]["original"])
        # Only the command rules come from the saved line: a password rotated meanwhile is kept.
        _setuser(
            client,
            name,
            acl_rules.quiesced_rules(
                acl_rules.with_commands_of(current_rules, original_rules),
                sentinel_support.denied_to(name, deny, kept_for_sentinel),
            ),
        )
    after = acl_lines(client)
    for name in todo:
        state["users"][name]["quiesced"] = after.get(name)


def _left_alone_exposed(
    client, endpoint: str, left_alone: List[str], commands, extra_commands: Sequence[str], warnings: List[str]
) -> List[Dict[str, Any]]:
    """The users the window leaves alone that can still write or break it (ACL DRYRUN)."""
    exposed = _exposed(
        client, left_alone, guarded_commands(commands, extra_commands), write_command_names(commands, extra_commands)
    )
    if exposed is None:
        warnings.append(
            f"{endpoint} cannot dry-run ACL rules (ACL DRYRUN, Redis 7+): whether the users left alone "
            f"({', '.join(left_alone)}) can write or break the window was not checked"
        )
        return []
    return exposed


def _quiesce_report(state: Dict[str, Any], targets: Sequence[str], todo: Sequence[str]) -> List[Dict[str, Any]]:
    return [
        {
            "name": name,
            "changed": name in todo,
            "rules_before": acl_rules.redact(entry["original"]),
            "rules_quiesced": acl_rules.redact(entry["quiesced"]) if entry["quiesced"] else None,
        }
        for name, entry in ((name, state["users"].get(name)) for name in targets)
        if entry is not None
    ]


def _since_seconds(since: Any) -> Optional[int]:
    try:
        started = datetime.datetime.strptime(str(since), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return max(int((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()), 0)


def _describe_lock(lock: Dict[str, Any]) -> str:
    holder = lock["holder"]
    running = _since_seconds(holder.get("since"))
    return (
        f"index {lock['index']} is locked by a {holder.get('purpose') or 'migration'} "
        f"(host {holder.get('host')}, pid {holder.get('pid')}, plan {holder.get('plan') or '-'}, "
        f"since {holder.get('since')}"
        + (f", {running} s ago" if running is not None else "")
        + f"; the lock expires {max(int(lock['ttl_ms']), 0) / 1000:.0f} s after its owner stops renewing it)"
    )


def check_locks(client, force: bool, warnings: List[str]) -> None:
    """Refuse (or with force, warn) while a live owner holds a migration lock on the server."""
    locks = held_locks(client)
    for lock in locks:
        if lock["stale"]:
            holder = lock["holder"]
            warnings.append(
                f"index {lock['index']}: the lock of a {holder.get('purpose') or 'migration'} whose "
                f"process is gone (host {holder.get('host')}, pid {holder.get('pid')}) is still there: "
                "it stopped part-way - resume it or roll it back"
            )
    live = [lock for lock in locks if not lock["stale"]]
    if not live:
        return
    described = "; ".join(_describe_lock(lock) for lock in live)
    if not force:
        raise ReleaseRefused(
            f"a migration still runs on this server: {described}; releasing now would let the application write "
            "into an index being rebuilt",
            hint="wait until it has finished (its lock goes with it) and release again; force: true releases anyway, "
            "at the risk of documents written meanwhile failing to index or being overwritten",
            details={"locks": live},
        )
    warnings.append(
        f"released with force while a migration runs: {described}; application writes now reach an "
        "index being rebuilt - documents written meanwhile can fail to index or be overwritten"
    )


def release(
    client, endpoint: str, state_file: Any, check_mode: bool = False, force: bool = False, locks_checked: bool = False
) -> Dict[str, Any]:
    """`state_file`: a path or a store, as for quiesce. `locks_checked`: the caller refused (or forced) live
    migration locks already - for a replica set, on every member before any is released."""
    store = state_store.at(state_file, endpoint)
    state_file = store.path
    state = store.load()
    if state is None:
        return {
            "changed": False,
            "users": [],
            "state_file": state_file,
            "state_file_removed": False,
            "acl_file": None,
            "warnings": [],
        }
    warnings: List[str] = []
    if state["users"] and not locks_checked:
        check_locks(client, force, warnings)
    lines = acl_lines(client)
    report, expected, settled, refused = _release_outcomes(state, lines, warnings)
    lines, mismatched = _restore(client, state, expected, lines, check_mode, report, settled, warnings)
    report.sort(key=lambda entry: entry["name"])
    quiesced_lines = {name: entry["quiesced"] for name, entry in state["users"].items() if entry.get("quiesced")}
    if refused or mismatched:
        if not check_mode:
            for name in settled:
                del state["users"][name]
            store.save(state)
        raise _release_incomplete(refused, mismatched, state_file, report)
    removed = True if check_mode else store.remove()
    final_lines = {**lines, **expected} if check_mode else lines
    file_outcome = acl_file.after_release(
        client, state.get("acl_file"), final_lines, quiesced_lines, _run_id(client), check_mode=check_mode
    )
    warnings += file_outcome["warnings"]
    changed = bool(expected) or removed or bool(file_outcome["report"] and file_outcome["report"]["saved"])
    return {
        "changed": changed,
        "users": report,
        "state_file": state_file,
        "state_file_removed": removed,
        "acl_file": file_outcome["report"],
        "warnings": warnings,
    }


def _release_outcomes(state: Dict[str, Any], lines: Dict[str, str], warnings: List[str]) -> tuple:
    """What release does with each user of the state: (the report's entries so far, the lines to set - the command
    rules from before the window on what the user is now -, the users settled already, those refused)."""
    report: List[Dict[str, Any]] = []
    expected: Dict[str, str] = {}
    settled: List[str] = []  # nothing of the quiesce is left on them: out of the state file
    refused: List[str] = []
    for name, entry in sorted(state["users"].items()):
        original, quiesced, current = entry["original"], entry.get("quiesced"), lines.get(name)
        if current is None:
            warnings.append(f"ACL user {name!r} was deleted during the window; it stays deleted")
            report.append({"name": name, "changed": False, "outcome": "deleted", "identical": None, "rules": None})
            settled.append(name)
            continue
        now = commands_of(current)
        if now == commands_of(original):
            # A restart, an ACL LOAD or an administrator gave its commands back already: kept as it is now.
            report.append(
                {
                    "name": name,
                    "changed": False,
                    "outcome": "restored_already",
                    "identical": current == original,
                    "rules": acl_rules.redact(current),
                }
            )
            settled.append(name)
            continue
        if quiesced is not None and now != commands_of(quiesced):
            if entry.get("refused") and now != commands_of(entry["refused"]):
                # Refused before, and its rules were set since: whoever did it decided. Kept as it is.
                report.append(
                    {
                        "name": name,
                        "changed": False,
                        "outcome": "set_by_hand",
                        "identical": None,
                        "rules": acl_rules.redact(current),
                    }
                )
                settled.append(name)
                continue
            refused.append(name)
            entry["refused"] = current
            report.append(
                {
                    "name": name,
                    "changed": False,
                    "outcome": "refused",
                    "identical": False,
                    "rules": acl_rules.redact(current),
                    "rules_quiesced": acl_rules.redact(quiesced),
                    "rules_before": acl_rules.redact(original),
                }
            )
            continue
        _name, current_rules = acl_rules.split_line(current)
        _name, original_rules = acl_rules.split_line(original)
        expected[name] = acl_rules.line_of(name, acl_rules.with_commands_of(current_rules, original_rules))
    return report, expected, settled, refused


def _restore(
    client,
    state: Dict[str, Any],
    expected: Dict[str, str],
    lines: Dict[str, str],
    check_mode: bool,
    report: List[Dict[str, Any]],
    settled: List[str],
    warnings: List[str],
) -> tuple:
    """Sets the lines of `expected` and reads each back: (the ACL lines now, the users whose line reads back
    otherwise). Each restored user gets its report entry; those read back as set are settled."""
    if expected and not check_mode:
        for name, line in expected.items():
            _setuser(client, name, acl_rules.split_line(line)[1])
        lines = acl_lines(client)
    mismatched: List[str] = []
    for name, line in expected.items():
        identical = None if check_mode else lines.get(name) == line
        kept = line != state["users"][name]["original"]
        if kept:
            warnings.append(
                f"ACL user {name!r} was changed during the window (password, keys, channels or on/off): "
                "those changes are kept, only its command rules from before the window are restored"
            )
        if identical is False:
            mismatched.append(name)
        else:
            settled.append(name)
        report.append(
            {
                "name": name,
                "changed": True,
                "outcome": "restored_keeping_changes" if kept else "restored",
                "identical": identical,
                "rules": acl_rules.redact(line),
            }
        )
    return lines, mismatched


def _release_incomplete(
    refused: List[str], mismatched: List[str], state_file: str, report: List[Dict[str, Any]]
) -> ReleaseIncomplete:
    problems = []
    if refused:
        problems.append(
            f"the command rules of {', '.join(refused)} were changed during the window by someone "
            "else: left as they are (still carrying the quiesce's denials)"
        )
    if mismatched:
        problems.append(f"the restored rules of {', '.join(mismatched)} read back differently")
    return ReleaseIncomplete(
        "; ".join(problems),
        hint=f"set their rules by hand (ACL SETUSER; their rules before the window are in {state_file}), then "
        "release again: a user whose command rules changed since this refusal is taken off the state file "
        "as it is",
        details={"users": report},
    )


def writers_not_quiesced(
    client, endpoint: str, state_file: Any, commands, extra_commands: Sequence[str], warnings: List[str]
) -> List[Dict[str, Any]]:
    """Users that could write or break the window unseen: neither quiesced, nor the migrating user, nor
    left alone on purpose when the window began - created, or changed, during the window."""
    store = state_store.at(state_file, endpoint)
    state = store.load()
    if state is None:
        warnings.append(
            f"no quiesce is recorded in {store.path} for {endpoint} (nothing was quiesced, or in check mode): the ACL "
            "users were not checked"
        )
        return []
    me = whoami(client)
    lines = acl_lines(client)
    suspects: Dict[str, str] = {}
    for name, line in sorted(lines.items()):
        if name in (me, state.get("migrating_user")) or name in state["left_alone"]:
            continue
        entry = state["users"].get(name)
        if entry is None:
            suspects[name] = "created during the window"
        elif not entry.get("quiesced"):
            suspects[name] = "not quiesced"
        elif commands_of(line) != commands_of(entry["quiesced"]):
            suspects[name] = "its rules were changed during the window"
    if not suspects:
        return []
    found = _exposed(
        client,
        list(suspects),
        guarded_commands(commands, extra_commands),
        write_command_names(commands, extra_commands),
    )
    if found is None:
        warnings.append(
            f"{endpoint} cannot dry-run ACL rules (ACL DRYRUN, Redis 7+): users created or changed "
            f"during the window ({', '.join(suspects)}) were not checked"
        )
        return []
    for entry in found:
        entry["reason"] = suspects[entry["name"]]
    return found


def verify(
    client,
    endpoint: str,
    seconds: float,
    interval: float,
    extra_commands: Sequence[str] = (),
    fail_on_rejected: bool = False,
    state_file: Any = None,
    observer=observe,
) -> Dict[str, Any]:
    check_window(seconds, interval)
    commands = _commands(client)
    names = write_command_names(commands, extra_commands)
    observation = observer(client, names, seconds, interval)
    warnings: List[str] = []
    # After the observation: a user created while it ran is found too.
    unquiesced = (
        writers_not_quiesced(client, endpoint, state_file, commands, extra_commands, warnings) if state_file else []
    )
    if observation["writes_rejected"] and not fail_on_rejected:
        warnings.append(
            f"{endpoint}: {observation['writes_rejected']} write(s) were rejected during the observation: "
            "a client still tries to write"
        )
    if not observation["quiet"] or (fail_on_rejected and observation["writes_rejected"]):
        raise WritesObserved(
            f"writes reached the server during the {seconds:g} s observation: {observation['writes_executed']} ran, "
            f"{observation['writes_rejected']} rejected, {observation['data_changes']} data change(s) "
            f"({describe(observation)})",
            hint="stop the application's writers (or quiesce the users they log in as) before migrating",
            details={"observation": observation, "unquiesced_users": unquiesced},
        )
    if unquiesced:
        raise WritersNotQuiesced(
            f"ACL user(s) not quiesced can write or break the window: "
            f"{'; '.join(_describe_exposed(entry) + ' - ' + entry['reason'] for entry in unquiesced)}",
            hint="quiesce again (with every user it takes in the ones created since) or remove their rights, then "
            "verify again; nothing proves their connections stay quiet",
            details={"observation": observation, "unquiesced_users": unquiesced},
        )
    return {"changed": False, "observation": observation, "unquiesced_users": unquiesced, "warnings": warnings}
