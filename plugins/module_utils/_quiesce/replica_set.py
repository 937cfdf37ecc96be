# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quiesce, release and verify a whole replica set: ACL rules are per server and not replicated.

A quiesce of the primary alone ends at a failover: the promoted replica has the application's rules
from before the window. So the quiesce applies to every member - the primary and each replica - and a
promoted replica already denies writes. The members are those recorded in the set's state file, those
given (an inventory), the server the connection names, and the Sentinels' primary and replicas of the
service.

- quiesce: every member must answer before anything changes; a member that does not, and was never
  quiesced, fails the task naming it (nothing changed anywhere). Each member is checked as if in check
  mode first (users, commands, rules changed by someone else), so a refusal on one leaves all as they
  were. A member recorded by an earlier run that does not answer now is reported, and stays recorded.
- release: refused, before any change, while a live migration lock shows on any member (unless
  forced). Each member that answers is released as one server is (runner.release: other admins'
  changes kept, read back byte for byte, the ACL file per server); one that does not answer, or whose
  release is incomplete, stays in the state file and the task fails naming it after the others are
  released - writes come back where they can.
- verify: the current primary (Sentinel's, or the one member whose ROLE is master) is observed and its
  users checked; members whose quiesce is gone (a restart) are reported.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.deps import redis_exceptions
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import (
    ConnectionFailed,
    IndexOpsError,
)
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.connection import connect
from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.members import (
    addresses,
    connect_member,
    own_address,
    role,
    run_id,
    sentinel_members,
)

from . import runner, sentinel_support
from .set_state import SetStateFile

_UNREACHABLE = (ConnectionFailed, redis_exceptions.RedisError, OSError) if redis_exceptions else (ConnectionFailed,)


class MemberUnreachable(IndexOpsError):
    """A server of the replica set does not answer: quiescing the others would leave it writable after a failover."""

    kind = "member_unreachable"


class NoSinglePrimary(IndexOpsError):
    """No member, or more than one, says it is the primary."""

    kind = "no_single_primary"


class Member:
    """One server of the set: its address and client, or why it could not be reached."""

    def __init__(self, address: str, client: Any = None, problem: Optional[str] = None, flags: Optional[str] = None):
        self.address, self.client, self.problem, self.flags = address, client, problem, flags
        self.role: Optional[str] = None
        self.run_id: Optional[str] = None

    def describe(self) -> str:
        seen = f"; Sentinel flags it {self.flags}" if self.flags and self.flags not in ("slave", "master") else ""
        return f"{self.address} ({self.problem}{seen})"


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _connect_all(settings, wanted: Sequence[str], flags: Dict[str, Optional[str]]) -> List[Member]:
    """A Member per address; two addresses of one server (the same run_id) count once, the first kept."""
    members: List[Member] = []
    seen: Dict[str, str] = {}
    for address in wanted:
        try:
            client = connect_member(settings, address)
            found_run_id, found_role = run_id(client), role(client)
        except _UNREACHABLE as err:
            members.append(Member(address, problem=_first_line(err), flags=flags.get(address)))
            continue
        if found_run_id in seen:
            client.close()
            continue
        seen[found_run_id] = address
        member = Member(address, client, flags=flags.get(address))
        member.role, member.run_id = found_role, found_run_id
        members.append(member)
    return members


def _close(members: Sequence[Member]) -> None:
    for member in members:
        if member.client is not None:
            member.client.close()


def _wanted(settings, store: SetStateFile, given: Sequence[str]) -> tuple:
    """(addresses, Sentinel's flags per address, the client of Sentinel's primary or None): the recorded members
    first, then the given ones, the connection's own server and the Sentinels' view."""
    flags: Dict[str, Optional[str]] = {}
    primary_client = None
    if settings.sentinel is not None:
        primary_client = connect(settings)
        flags = sentinel_members(primary_client)
    own = own_address(settings)
    named = addresses(list(given) + ([own] if own else []) + list(flags))
    store.check_same_set(named)
    return addresses(store.members() + named), flags, primary_client


def _prefixed(address: str, warnings: Sequence[str]) -> List[str]:
    return [warning if address in warning else f"{address}: {warning}" for warning in warnings]


def _order(members: List[Member]) -> List[Member]:
    """The primary first: its writes stop soonest."""
    return sorted(members, key=lambda member: member.role != "primary")


def quiesce(
    settings,
    state_file: str,
    given: Sequence[str] = (),
    users: Sequence[str] = (),
    exclude_users: Sequence[str] = (),
    extra_commands: Sequence[str] = (),
    check_mode: bool = False,
    with_lines: bool = False,
) -> Dict[str, Any]:
    """`with_lines`: each member's entry also holds `lines_before`, its ACL LIST lines before (for a diff)."""
    store = SetStateFile(state_file, settings.endpoint)
    wanted, flags, primary_client = _wanted(settings, store, given)
    members = _connect_all(settings, wanted, flags)
    try:
        recorded = set(store.members())
        missing = [member for member in members if member.problem and member.address not in recorded]
        if missing:
            raise MemberUnreachable(
                f"replica set member(s) {', '.join(member.describe() for member in missing)} do not answer: nothing "
                "was quiesced on any server (ACL rules are per server: a member left writable takes writes after a "
                "failover)",
                hint="bring it back, or leave it out of the members (with Sentinel: SENTINEL RESET <service> makes "
                "the Sentinels forget a replica that is gone), then run the quiesce again",
                details={"members": [{"address": m.address, "problem": m.problem, "flags": m.flags} for m in missing]},
            )
        reachable = _order([member for member in members if member.client is not None])
        warnings: List[str] = []
        sentinel_users: set = set()
        for member in reachable:
            sentinel_users |= set(sentinel_support.users_of_sentinels(member.client, member.address, warnings))

        def run(member: Member, dry: bool) -> Dict[str, Any]:
            return runner.quiesce(
                member.client,
                member.address,
                store.member(member.address),
                users,
                exclude_users,
                extra_commands,
                check_mode=dry,
                sentinel_users=sorted(sentinel_users),
            )

        before = {member.address: runner.acl_lines(member.client) for member in reachable} if with_lines else {}
        # Every member's refusals before the first change anywhere.
        results = {member.address: run(member, True) for member in reachable}
        if not check_mode:
            results = {member.address: run(member, False) for member in reachable}
        for member in members:
            if member.problem:
                warnings.append(
                    f"replica set member {member.describe()} does not answer: it was quiesced by an earlier run and "
                    "stays recorded - run the quiesce again when it is back (a restart without an ACL file undoes "
                    "its quiesce)"
                )
        return _summary(members, results, warnings, store.path, quiesced=True, before=before)
    finally:
        _close(members)
        if primary_client is not None:
            primary_client.close()


def _summary(
    members: List[Member],
    results: Dict[str, Dict[str, Any]],
    warnings: List[str],
    path: str,
    quiesced: bool,
    before: Optional[Dict[str, Dict[str, str]]] = None,
) -> Dict[str, Any]:
    entries, flat_users, left_alone = [], [], []
    for member in members:
        result = results.get(member.address)
        if result is None:
            entries.append({"address": member.address, "role": None, "reachable": member.client is not None})
            continue
        warnings.extend(_prefixed(member.address, result.pop("warnings")))
        entry = {"address": member.address, "role": member.role, "reachable": True, **result}
        if before and member.address in before:
            entry["lines_before"] = before[member.address]
        entries.append(entry)
        flat_users += [{"member": member.address, **user} for user in result["users"]]
        left_alone += [{"member": member.address, **user} for user in result.get("users_left_alone", [])]
    summary: Dict[str, Any] = {
        "changed": any(result["changed"] for result in results.values()),
        "members": entries,
        "users": flat_users,
        "state_file": path,
        "warnings": list(dict.fromkeys(warnings)),
    }
    if quiesced:
        first = next(iter(results.values()), {})
        summary.update(
            migrating_user=first.get("migrating_user"),
            denied_commands=sorted({name for result in results.values() for name in result["denied_commands"]}),
            users_left_alone=left_alone,
            sentinel_users=first.get("sentinel_users", []),
        )
    return summary


def release(
    settings, state_file: str, check_mode: bool = False, force: bool = False, with_lines: bool = False
) -> Dict[str, Any]:
    store = SetStateFile(state_file, settings.endpoint)
    if not store.members():
        return {
            "changed": False,
            "members": [],
            "users": [],
            "state_file": state_file,
            "state_file_removed": False,
            "acl_file": None,
            "warnings": [],
        }
    members = _connect_all(settings, store.members(), {})
    try:
        reachable = _order([member for member in members if member.client is not None])
        warnings: List[str] = []
        # A migration's lock lives on the primary and replicates: looked for on every member that answers,
        # before any is released.
        for member in reachable:
            runner.check_locks(member.client, force, warnings)
        before = {member.address: runner.acl_lines(member.client) for member in reachable} if with_lines else {}
        results: Dict[str, Dict[str, Any]] = {}
        incomplete: Dict[str, runner.ReleaseIncomplete] = {}
        for member in reachable:
            try:
                results[member.address] = runner.release(
                    member.client,
                    member.address,
                    store.member(member.address),
                    check_mode=check_mode,
                    force=force,
                    locks_checked=True,
                )
            except runner.ReleaseIncomplete as err:
                incomplete[member.address] = err
        summary = _summary(members, results, warnings, store.path, quiesced=False, before=before)
        summary["state_file_removed"] = not check_mode and not store.members()
        summary["acl_file"] = None  # per member: members[].acl_file
        unreachable = [member for member in members if member.problem]
        if incomplete or unreachable:
            problems = [f"{address}: {err}" for address, err in incomplete.items()]
            problems += [
                f"{member.describe()} does not answer: its users stay quiesced and recorded" for member in unreachable
            ]
            raise runner.ReleaseIncomplete(
                "; ".join(problems)
                + (f"; the other member(s) were released ({', '.join(results)})" if results else ""),
                hint=f"the state of what is left is kept in {store.path}: fix it (or bring the member back), then "
                "release again",
                details={
                    "members": summary["members"]
                    + [{"address": a, "users": err.details.get("users", [])} for a, err in incomplete.items()],
                    "warnings_seen": summary["warnings"],
                },
            )
        return summary
    finally:
        _close(members)


def verify(
    settings,
    state_file: Optional[str],
    given: Sequence[str],
    seconds: float,
    interval: float,
    extra_commands: Sequence[str] = (),
    fail_on_rejected: bool = False,
) -> Dict[str, Any]:
    store = SetStateFile(state_file, settings.endpoint) if state_file else SetStateFile.empty(settings.endpoint)
    wanted, flags, primary_client = _wanted(settings, store, given)
    members = _connect_all(settings, wanted, flags)
    try:
        primary = _current_primary(members, primary_client)
        result = runner.verify(
            primary.client,
            primary.address,
            seconds,
            interval,
            extra_commands,
            fail_on_rejected=fail_on_rejected,
            state_file=store.member(primary.address) if state_file else None,
        )
        result["primary"] = primary.address
        result["warnings"] += _quiesce_lost(members, primary, store) if state_file else []
        return result
    finally:
        _close(members)
        if primary_client is not None:
            primary_client.close()


def _current_primary(members: List[Member], primary_client) -> Member:
    """Sentinel's primary when the connection goes through Sentinel, else the one member whose ROLE is master."""
    if primary_client is not None:
        found = run_id(primary_client)
        for member in members:
            if member.run_id == found:
                return member
        raise NoSinglePrimary(
            "the primary the Sentinels name is none of the replica set's members as recorded or given",
            hint="check the members and the Sentinels' view (redis_index_info reports it)",
        )
    primaries = [member for member in members if member.role == "primary"]
    if len(primaries) != 1:
        raise NoSinglePrimary(
            f"{len(primaries)} of the members ({', '.join(m.address for m in members)}) say they are a primary: "
            "which one takes the application's writes is unclear",
            hint="finish the failover (or fix the replication), then verify again",
            details={"primaries": [member.address for member in primaries]},
        )
    return primaries[0]


def _quiesce_lost(members: List[Member], primary: Member, store: SetStateFile) -> List[str]:
    """Warnings for the other members whose users no longer carry the quiesce (a restart, an ACL LOAD)."""
    warnings = []
    for member in members:
        if member is primary or member.client is None:
            continue
        state = store.member(member.address).load()
        if not state:
            if member.address not in store.members():
                warnings.append(
                    f"replica set member {member.address} was not quiesced: a failover to it would end the window - "
                    "run the quiesce again"
                )
            continue
        lines = runner.acl_lines(member.client)
        lost = sorted(
            name
            for name, entry in state["users"].items()
            if entry.get("quiesced")
            and name in lines
            and runner.commands_of(lines[name]) != runner.commands_of(entry["quiesced"])
        )
        if lost:
            warnings.append(
                f"replica set member {member.address}: the quiesce of {', '.join(lost)} is gone (a restart?): a "
                "failover to it would let them write - run the quiesce again"
            )
    for member in members:
        if member.problem:
            warnings.append(f"replica set member {member.describe()} does not answer")
    return warnings
