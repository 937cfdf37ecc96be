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
  - B(A replica set.) ACL rules are per server and not replicated, so a quiesce of the primary alone ends at a
    failover. With O(members), or when connected through O(sentinel), every server of the replica set is quiesced,
    released or checked - the members given, the server of O(redis_url)/O(host), and the Sentinels' primary and
    every replica they know of the service (also those they flag down) - so that a promoted replica already denies
    writes. O(state_file) then holds each member's state under its address; a release needs no O(members) - the file
    names them. Each member is reached with the connection's user, password and TLS settings.
  - Quiesce of a replica set - every member must answer before any is changed; one that does not (and was not
    quiesced by an earlier run) fails the task naming it, and no server is changed. Each member is checked (users,
    commands, rules changed by someone else) before the first change on any. A member an earlier run quiesced that
    does not answer now is reported and stays recorded.
  - Release of a replica set - refused before any change while a live migration lock shows on any member (unless
    O(force=true)); then each member that answers is released as one server is (the same guarantees, and its own
    ACL file); a member that does not answer, or whose release is incomplete, stays in O(state_file) and the task
    fails naming it after the others were released.
  - Verification of a replica set - the current primary is observed (through O(sentinel), the one the Sentinels
    name; otherwise the one member whose C(ROLE) is master) and its users checked; other members whose quiesce is
    gone (a restart without an ACL file) or that do not answer are named in a warning.
  - The users the Sentinels connect as (seen on each server's connections, C(CLIENT LIST)) are quiesced without
    denying C(SLAVEOF), C(REPLICAOF), C(CONFIG REWRITE), C(CLIENT KILL) and C(SCRIPT KILL) - Sentinel needs them to
    fail over, and a quiesced C(default) user - which Sentinel uses unless given C(sentinel auth-user) - would
    otherwise stop every failover during the window. They still lose every write; a warning names them.
  - On one server (no O(members), no O(sentinel)) that has replicas, or is one, the quiesce warns that a failover
    would end the window.
  - A second run with the same state changes nothing.
extends_documentation_fragment:
  - indexops.redis_search.connection
attributes:
  check_mode:
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
  members:
    description:
      - Every server of the replica set (primary and replicas) as C(host:port), for example from an inventory host
        variable. Each is reached with the connection's user, password and TLS settings; the server of O(redis_url)
        or O(host) counts as a member too, and with O(sentinel) the Sentinels' view of the service is added.
      - Empty, without O(sentinel) and without a replica set's O(state_file), only the connected server is handled.
    type: list
    elements: str
    default: []
  fail_on_rejected:
    description:
      - With O(state=verified), also fail when write attempts were rejected (someone still tries to write).
    type: bool
    default: false
notes:
  - A replica set's O(state_file) is a different format from one server's; a file of one kind is refused with the
    other's options, naming what to give.
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

- name: Deny writes on every server of a replica set, found through its Sentinels
  indexops.redis_search.redis_write_quiesce:
    sentinel:
      service: catalog
      hosts: [sentinel-1.internal:26379, sentinel-2.internal:26379, sentinel-3.internal:26379]
    username: migrator
    state: quiesced
    state_file: /var/lib/indexops/quiesce/catalog.acl.json

- name: Deny writes on every server of a replica set listed in the inventory
  indexops.redis_search.redis_write_quiesce:
    redis_url: redis://redis1.internal:6379/0
    members: [redis1.internal:6379, redis2.internal:6379, redis3.internal:6379]
    username: migrator
    state: quiesced
    state_file: /var/lib/indexops/quiesce/catalog.acl.json

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
    member:
      description: For a replica set, the address of the server (C(host:port)) the user is on.
      type: str
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
members:
  description:
    - For a replica set - each server, its address, C(role) (V(primary) or V(replica)), C(reachable), and what
      O(state=quiesced) or O(state=released) returns for one server (C(changed), C(users), C(acl_file), ...).
  returned: when O(state=quiesced) or O(state=released) on a replica set
  type: list
  elements: dict
sentinel_users:
  description: The users the Sentinels connect as, quiesced but left what a failover needs.
  returned: when O(state=quiesced)
  type: list
  elements: str
primary:
  description: For a replica set, the address of the primary that was observed.
  returned: when O(state=verified) on a replica set
  type: str
unquiesced_users:
  description:
    - O(state=verified) with O(state_file) - users that may write or break the window and are not quiesced (also in
      the failure), each with RV(users_left_alone)'s keys and C(reason).
  returned: when O(state=verified)
  type: list
  elements: dict
acl_file:
  description: The server's ACL file after O(state=released); V(null) when it has none, and for a replica set
    (each member's is in RV(members)).
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
  description: The ACL LIST lines of the users whose rules change, before and after (with C(--diff)); no secret. For
    a replica set, a list of them, one per server whose users change.
  returned: when diff mode is on and O(state=quiesced) or O(state=released) changes (or would change) a user
  type: dict
"""

import re

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.members import address_of
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.topology import replication_info
from ansible_collections.indexops.redis_search.plugins.module_utils._module_kit import (
    build_module,
    connection_settings,
    fail_from_exception,
    run_with_client,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce import (
    acl_rules,
    replica_set,
    runner,
    sentinel_support,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce.observe import (
    ObservationInvalid,
    check_window,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._quiesce.set_state import is_set_file

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
    deny = result.get("denied_commands", [])
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
                acl_rules.quiesced_rules(
                    acl_rules.with_commands_of(now, saved),
                    sentinel_support.denied_to(user["name"], deny, result.get("sentinel_users", [])),
                ),
            )
    return {
        "before_header": f"{endpoint} ACL users",
        "after_header": f"{endpoint} ACL users ({state})",
        "before": "".join(shown(before[user["name"]]) + "\n" for user in users if user["name"] in before),
        "after": "".join(shown(after[user["name"]]) + "\n" for user in users if after.get(user["name"])),
    }


def act_on_set(module, settings) -> dict:
    """Every server of the replica set (members, the Sentinels' view, or a state file of a set)."""
    params = module.params
    given = params["members"]
    diff = module._diff and params["state"] != "verified"  # pylint: disable=protected-access
    if params["state"] == "quiesced":
        result = replica_set.quiesce(
            settings,
            params["state_file"],
            given,
            params["users"],
            params["exclude_users"],
            params["extra_commands"],
            check_mode=module.check_mode,
            with_lines=diff,
        )
    elif params["state"] == "released":
        result = replica_set.release(
            settings, params["state_file"], check_mode=module.check_mode, force=params["force"], with_lines=diff
        )
    else:
        result = replica_set.verify(
            settings,
            params["state_file"],
            given,
            params["observe_seconds"],
            params["observe_interval"],
            params["extra_commands"],
            fail_on_rejected=params["fail_on_rejected"],
        )
    for warning in result.pop("warnings"):
        module.warn(warning)
    # One diff per member whose users change (Ansible shows a list of diffs one after the other).
    diffs = [
        acl_diff(module, member["address"], member.pop("lines_before"), member)
        for member in result.get("members", [])
        if "lines_before" in member and any(user["changed"] for user in member["users"])
    ]
    for member in result.get("members", []):
        member.pop("lines_before", None)
    if diffs:
        result["diff"] = diffs
    return result


def replication_warning(client, endpoint: str) -> list:
    """A quiesce of one server that has replicas, or is one, ends at a failover: ACL rules are not replicated."""
    try:
        found = replication_info(client)
    except Exception:  # pylint: disable=broad-exception-caught  # INFO denied: nothing to say
        return []
    if found["role"] == "replica":
        return [
            f"{endpoint} is a replica of {found['primary']}: its ACL rules are its own - quiesce the replica set "
            "(members, or sentinel) so that every server denies writes"
        ]
    if found.get("replicas"):
        return [
            f"{endpoint} has replicas ({', '.join(r['address'] for r in found['replicas'])}) that keep their own ACL "
            "rules: after a failover the application writes to the promoted one - give every server in members (or "
            "connect through sentinel) so that the quiesce covers the replica set"
        ]
    return []


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
        result["warnings"] += replication_warning(client, settings.endpoint)
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
            "members": {"type": "list", "elements": "str", "default": []},
        },
        libraries=("redis", "pydantic"),
        required_if=[("state", "quiesced", ["state_file"]), ("state", "released", ["state_file"])],
    )
    if module.params["state"] == "verified":
        try:
            check_window(module.params["observe_seconds"], module.params["observe_interval"])
        except ObservationInvalid as err:
            module.fail_json(msg=str(err), error_type=err.kind, hint=err.hint)
    try:
        module.params["members"] = [address_of(member) for member in module.params["members"]]
    except ValueError as err:
        module.fail_json(
            msg=f"members: {err}", error_type="invalid_input", hint="list every server of the replica set as host:port"
        )
    settings = connection_settings(module)
    if module.params["members"] or settings.sentinel is not None or is_set_file(module.params["state_file"]):
        # Each member is connected to on its own: a release still reaches the others when one is down.
        try:
            result = act_on_set(module, settings)
        except Exception as err:  # pylint: disable=broad-exception-caught
            fail_from_exception(module, err, settings.endpoint)
            return
        module.exit_json(**result)
    run_with_client(module, lambda client, settings: act(module, client, settings))


if __name__ == "__main__":
    main()
