#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: stop application writes to one Redis for a migration window, and restore them."""

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_write_quiesce
short_description: Deny application writes to a Redis server by ACL for a migration window, and restore them exactly
version_added: 0.1.0
description:
  - With O(state=quiesced), saves every listed ACL user's exact rules (its C(ACL LIST) line) to O(state_file), then
    denies that user every write - C(-@write), plus by name every module command that writes (C(JSON.SET),
    C(FT.CREATE), C(FT.DROPINDEX), C(FT.ALIASUPDATE), ...), because module commands carry no ACL category - and
    every command that writes no data but can break the window - C(ACL SETUSER/DELUSER/LOAD/SAVE), C(CONFIG
    SET/RESETSTAT/REWRITE), C(CLIENT KILL/PAUSE/UNPAUSE), C(SCRIPT FLUSH/KILL), C(FUNCTION FLUSH/KILL),
    C(FT.CONFIG), C(REPLICAOF), C(SLAVEOF), C(FAILOVER), C(SHUTDOWN), C(MODULE LOAD/LOADEX/UNLOAD),
    C(DEBUG) (where the server has them). The denials are added to the user's own rules and inside each of its
    selectors. Reads keep working; live connections are refused at once.
  - The user this module connects as - the one that migrates - is never changed, and may not be listed. Users
    left alone (O(exclude_users), or not in O(users)) that may still write or run one of those commands are named
    in a warning (checked with C(ACL DRYRUN)).
  - With O(state=released), refuses while a migration or rollback holds a lock on the server (C(indexops:lock:*),
    its owner alive), naming the holder, unless O(force=true). Then gives each saved user its command rules from
    before the window back and keeps everything else as it is now - C(ACL SETUSER <user> reset <rules now, with
    the saved command rules and selectors>) - and reads each line back byte for byte. A password rotated, keys
    changed or a user switched off during the window stay so; a user deleted during the window stays deleted; a
    user whose command rules someone else changed during the window is not touched and fails the task (it stays
    in O(state_file)). The state file is removed when no user is left in it. This also releases a quiesce whose
    run was killed, from the state file alone.
  - After the release, a server with an ACL file (C(aclfile)) gets C(ACL SAVE) when the file held exactly the
    server's users before the window (read where this module runs, so on the Redis host) or when anyone ran
    C(ACL SAVE) during the window (C(INFO commandstats)); otherwise a difference is reported, not saved.
  - With O(state=verified), changes nothing - watches the server for O(observe_seconds) and fails when a write ran
    (the change counter C(rdb_changes_since_last_save) moved, less expired and evicted keys, or any write command's
    call counter in C(INFO commandstats) did). Rejected write attempts are reported, and fail the task with
    O(fail_on_rejected=true). With O(state_file), it also fails naming every ACL user that may write or break the
    window and is not quiesced - created during the window, or changed since its quiesce (C(ACL DRYRUN)).
  - A second run with the same state changes nothing.
author:
  - indexops maintainers (@indexops)
extends_documentation_fragment:
  - indexops.redis_search.connection
attributes:
  check_mode:
    support: full
    description: Reports which users would be quiesced or restored; writes nothing to Redis or disk. O(state=verified)
      observes the server as usual.
  diff_mode:
    support: full
    description:
      - With O(state=quiesced) and O(state=released), the C(ACL LIST) line before and after of every user whose rules
        change, one line per user; in check mode, after is the rules the quiesce would send (the server prints
        them in its own, sometimes shorter, form). Password hashes are shown as C(#<redacted>) and
        clear-text passwords (C(>...), C(<...)) as C(><redacted>), as in RV(users).
options:
  state:
    description:
      - V(quiesced) denies writes, V(released) restores the saved rules, V(verified) proves the server is write-quiet.
    type: str
    choices: [quiesced, released, verified]
    default: quiesced
  state_file:
    description:
      - Where the users' rules before the window are kept (JSON, mode 0600 in a directory of mode 0700; it holds
        password hashes). One file per Redis server. Keep it on a disk that outlives the run - the Redis host's, or
        the controller's - so that a killed run can be released later.
      - Required with O(state=quiesced) and O(state=released). With O(state=verified), the users it records are
        checked.
    type: path
  users:
    description:
      - ACL users to quiesce. Empty means every user except the connecting one and O(exclude_users) (the
        C(default) user included).
    type: list
    elements: str
    default: []
  exclude_users:
    description:
      - Users left alone when O(users) is empty (for example a replication or monitoring user).
    type: list
    elements: str
    default: []
  extra_commands:
    description:
      - More commands to deny by name and to count as writes (for example a module's command that writes but is
        not flagged so). Each must exist on the server.
    type: list
    elements: str
    default: []
  observe_seconds:
    description:
      - With O(state=verified), how long to watch, in seconds; finite and above 0.
    type: float
    default: 5.0
  observe_interval:
    description:
      - With O(state=verified), seconds between two readings of the counters (a save resets the change counter
        between readings without hiding a change); finite, above 0 and below O(observe_seconds).
    type: float
    default: 0.5
  force:
    description:
      - With O(state=released), release even while a migration holds a lock on the server. The application can
        then write into an index being rebuilt - documents written during a drop/recreate can fail to index or be
        overwritten by the migration. A warning says what ran.
    type: bool
    default: false
  fail_on_rejected:
    description:
      - With O(state=verified), also fail when write attempts were rejected (someone still tries to write).
    type: bool
    default: false
notes:
  - The quiesce never runs C(ACL SAVE); a server restart during the window undoes it, and running O(state=quiesced)
    again applies it again.
  - The user checks need C(ACL DRYRUN) (Redis 7 and later); on older servers they are skipped with a warning.
  - Verification counts every client's writes; run nothing else that writes to this server meanwhile.
seealso:
  - module: indexops.redis_search.redis_index_migrate
"""

EXAMPLES = r"""
- name: Deny writes to every application user (the migrating user keeps working)
  indexops.redis_search.redis_write_quiesce:
    redis_url: redis://redis1.internal:6379/0
    username: migrator
    state: quiesced
    state_file: /var/lib/indexops/quiesce/redis1.json

- name: Prove that nothing writes for five seconds
  indexops.redis_search.redis_write_quiesce:
    redis_url: redis://redis1.internal:6379/0
    username: migrator
    state: verified
    observe_seconds: 5

- name: Prove nothing writes, and that no user created meanwhile could
  indexops.redis_search.redis_write_quiesce:
    redis_url: redis://redis1.internal:6379/0
    username: migrator
    state: verified
    state_file: /var/lib/indexops/quiesce/redis1.json

- name: Give the users their command rules back (also after a killed run); refused while a migration runs
  indexops.redis_search.redis_write_quiesce:
    redis_url: redis://redis1.internal:6379/0
    username: migrator
    state: released
    state_file: /var/lib/indexops/quiesce/redis1.json
"""

RETURN = r"""
changed:
  description: Whether any user's rules were (or in check mode would be) changed, or the state file removed.
  returned: always
  type: bool
migrating_user:
  description: The user this module connected as; never quiesced.
  returned: when O(state=quiesced)
  type: str
users:
  description: The users quiesced or released. Password hashes in the rules are shown as C(#<redacted>).
  returned: when O(state=quiesced) or O(state=released)
  type: list
  elements: dict
  contains:
    name:
      description: ACL user name.
      type: str
    changed:
      description: Whether this user's rules were changed by this run.
      type: bool
    rules_before:
      description: The user's ACL LIST line before the window (O(state=quiesced)).
      type: str
    rules_quiesced:
      description: The user's ACL LIST line while quiesced (O(state=quiesced); V(null) in check mode).
      type: str
    rules:
      description: The user's line as restored, or as found (O(state=released)).
      type: str
    outcome:
      description:
        - O(state=released) - V(restored) (the line before the window, byte for byte), V(restored_keeping_changes)
          (its command rules from before the window, with what changed meanwhile kept), V(restored_already) (nothing
          of the quiesce was left), V(deleted) (deleted during the window, left deleted), V(refused) (its command
          rules were changed by someone else during the window; left as it is) or V(set_by_hand) (refused by an
          earlier release, its command rules set since; left as it is).
      type: str
    identical:
      description: Whether the line reads back byte-identical to what the release set (O(state=released)).
      type: bool
  sample:
    - name: app
      changed: true
      rules_before: "user app on #<redacted> ~app:* resetchannels -@all +@read +@write +@search"
      rules_quiesced: "user app on #<redacted> ~app:* resetchannels -@all +@read +@write +@search -@write -json.set ..."
denied_commands:
  description: Commands denied by name in addition to C(-@write).
  returned: when O(state=quiesced)
  type: list
  elements: str
users_left_alone:
  description: Users not quiesced (excluded, or not listed) that may still write or run a window-breaking command.
  returned: when O(state=quiesced)
  type: list
  elements: dict
  contains:
    name:
      description: ACL user name.
      type: str
    write_commands:
      description: How many write commands it may run.
      type: int
    window_breaking:
      description: The window-breaking commands (not writes) it may run, such as C(client|kill).
      type: list
      elements: str
unquiesced_users:
  description:
    - O(state=verified) with O(state_file) - users that may write or break the window and are not quiesced (also in
      the failure), each with RV(users_left_alone)'s keys and C(reason).
  returned: when O(state=verified)
  type: list
  elements: dict
acl_file:
  description: The server's ACL file after O(state=released); V(null) when it has none.
  returned: when O(state=released)
  type: dict
  contains:
    path:
      description: The C(aclfile) (V(null) when it could not be read with C(CONFIG GET)).
      type: str
    matched_before:
      description: Whether the file held exactly the server's users before the window (V(null) when it could not be
        read from here).
      type: bool
    matches_now:
      description: Whether it does after the release (and the save).
      type: bool
    saves_during_window:
      description: How many C(ACL SAVE)s ran during the window (V(null) when the server restarted meanwhile).
      type: int
    saved:
      description: Whether the release ran C(ACL SAVE) (in check mode, would).
      type: bool
state_file:
  description: The state file used.
  returned: when O(state=quiesced) or O(state=released)
  type: str
state_file_removed:
  description: Whether O(state=released) removed the state file (every user restored).
  returned: when O(state=released)
  type: bool
observation:
  description: What the observation saw (also returned in the failure).
  returned: when O(state=verified)
  type: dict
  contains:
    seconds:
      description: How long it watched.
      type: float
    quiet:
      description: No write ran and no data changed.
      type: bool
    writes_executed:
      description: Write commands that ran.
      type: int
    writes_rejected:
      description: Write commands that were refused (ACL, OOM, ...).
      type: int
    data_changes:
      description: Changes the server counted (rdb_changes_since_last_save), less expired and evicted keys.
      type: int
    expired_or_evicted:
      description: Keys that expired or were evicted meanwhile (not counted as writes).
      type: int
    commands:
      description: For each write command whose counters moved, the change of C(calls), C(rejected_calls) and
        C(failed_calls).
      type: dict
  sample:
    seconds: 5.01
    quiet: true
    writes_executed: 0
    writes_rejected: 3
    data_changes: 0
    expired_or_evicted: 0
    commands: {hset: {calls: 0, rejected_calls: 3, failed_calls: 0}}
diff:
  description: The ACL LIST lines of the users whose rules change, before and after (with C(--diff)); no secret.
  returned: when diff mode is on and O(state=quiesced) or O(state=released) changes (or would change) a user
  type: dict
"""

import re

from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import build_module, run_with_client
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce import acl_rules, runner
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce.observe import (
    ObservationInvalid,
    check_window,
)

# A clear-text password rule (`>secret` adds one, `<secret` removes one) at the start of a rule or selector.
_CLEAR_PASSWORD = re.compile(r"(?<![^ (])([<>])[^ )]+")


def shown(line: str) -> str:
    """An ACL LIST line fit for a diff: no password hash, no clear-text password."""
    return _CLEAR_PASSWORD.sub(r"\1<redacted>", acl_rules.redact(line))


def acl_diff(module, endpoint: str, before: dict, result: dict) -> dict:
    """--diff: each changed user's line before and after. After comes from the result (read back from the server,
    or in check mode the line the run would set)."""
    users = [user for user in result["users"] if user["changed"]]
    state = module.params["state"]
    after = {}
    for user in users:
        if state == "released":
            after[user["name"]] = user["rules"]
        elif user["rules_quiesced"] is not None:
            after[user["name"]] = user["rules_quiesced"]
        else:  # check mode: the rules the quiesce would set
            _name, now = acl_rules.split_line(before[user["name"]])
            _name, saved = acl_rules.split_line(user["rules_before"])
            after[user["name"]] = acl_rules.line_of(
                user["name"],
                acl_rules.quiesced_rules(acl_rules.with_commands_of(now, saved), result["denied_commands"]),
            )
    return {
        "before_header": f"{endpoint} ACL users",
        "after_header": f"{endpoint} ACL users ({state})",
        "before": "".join(shown(before[user["name"]]) + "\n" for user in users if user["name"] in before),
        "after": "".join(shown(after[user["name"]]) + "\n" for user in users if after.get(user["name"])),
    }


def act(module, client, settings) -> dict:
    params = module.params
    diff = module._diff and params["state"] != "verified"  # pylint: disable=protected-access
    before = runner.acl_lines(client) if diff else {}
    if params["state"] == "quiesced":
        result = runner.quiesce(
            client,
            settings.endpoint,
            params["state_file"],
            params["users"],
            params["exclude_users"],
            params["extra_commands"],
            check_mode=module.check_mode,
        )
    elif params["state"] == "released":
        result = runner.release(
            client, settings.endpoint, params["state_file"], check_mode=module.check_mode, force=params["force"]
        )
    else:
        result = runner.verify(
            client,
            settings.endpoint,
            params["observe_seconds"],
            params["observe_interval"],
            params["extra_commands"],
            fail_on_rejected=params["fail_on_rejected"],
            state_file=params["state_file"],
        )
    for warning in result.pop("warnings"):
        module.warn(warning)
    if diff and result["changed"] and any(user["changed"] for user in result["users"]):
        result["diff"] = acl_diff(module, settings.endpoint, before, result)
    return result


def main() -> None:
    module = build_module(
        {
            "state": {"type": "str", "default": "quiesced", "choices": ["quiesced", "released", "verified"]},
            "state_file": {"type": "path"},
            "users": {"type": "list", "elements": "str", "default": []},
            "exclude_users": {"type": "list", "elements": "str", "default": []},
            "extra_commands": {"type": "list", "elements": "str", "default": []},
            "observe_seconds": {"type": "float", "default": 5.0},
            "observe_interval": {"type": "float", "default": 0.5},
            "fail_on_rejected": {"type": "bool", "default": False},
            "force": {"type": "bool", "default": False},
        },
        libraries=("redis", "pydantic"),
        required_if=[("state", "quiesced", ["state_file"]), ("state", "released", ["state_file"])],
    )
    if module.params["state"] == "verified":
        try:
            check_window(module.params["observe_seconds"], module.params["observe_interval"])
        except ObservationInvalid as err:
            module.fail_json(msg=str(err), error_type=err.kind, hint=err.hint)
    run_with_client(module, lambda client, settings: act(module, client, settings))


if __name__ == "__main__":
    main()
