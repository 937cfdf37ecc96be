# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the connected user may send a list of commands, found without running any of them (the
ACL probe; what a migration or rollback sends is listed in apply/commands.py).

Each command is queued inside MULTI with its real arguments and the transaction is then discarded:
the server checks ACL rules - the command and every key it names, and search commands treat index
names as keys - when it queues a command, so a refusal shows without anything running. Where MULTI
itself is denied, ACL DRYRUN answers the same question for a user allowed to run it; where neither
is allowed, the check refuses rather than guess.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from ..core.deps import redis_exceptions
from ..core.errors import PreflightFailed
from .wire import pooled_connection

Command = Tuple[object, ...]
_NEVER_QUEUED = ("MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "RESET", "QUIT")


def _name(command: Command) -> str:
    first = command[0]
    name = first.decode() if isinstance(first, bytes) else str(first)
    if name.upper() in ("FT.CURSOR", "SCRIPT"):
        second = command[1]
        return f"{name} {second.decode() if isinstance(second, bytes) else second}".upper()
    return name.upper()


def _refusals_by_multi(client, commands: Sequence[Command]) -> Optional[List[Tuple[str, str]]]:
    """(command, the server's reason) for each command ACL refuses, or None when MULTI is denied."""
    connection = pooled_connection(client.connection_pool)
    refused: List[Tuple[str, str]] = []
    try:
        connection.send_command("MULTI")
        try:
            connection.read_response()
        except redis_exceptions.NoPermissionError:
            return None
        for command in commands:
            if _name(command) in _NEVER_QUEUED:
                continue  # EXEC here would run everything queued so far
            connection.send_command(*command)
            try:
                connection.read_response()
            except redis_exceptions.NoPermissionError as err:
                refused.append((_name(command), str(err)))
            except redis_exceptions.ResponseError:
                pass  # a command this server lacks (or a queueing rule): not a permission problem
        connection.send_command("DISCARD")
        connection.read_response()
    finally:
        # A connection closed in MULTI drops the transaction, whatever DISCARD did.
        connection.disconnect()
        client.connection_pool.release(connection)
    return refused


def _refusals_by_dryrun(client, commands: Sequence[Command]) -> Optional[List[Tuple[str, str]]]:
    try:
        user = client.execute_command("ACL", "WHOAMI")
        refused = []
        for command in commands:
            reply = client.execute_command("ACL", "DRYRUN", user, *command)
            if reply not in (b"OK", "OK"):
                refused.append((_name(command), reply.decode() if isinstance(reply, bytes) else str(reply)))
        return refused
    except redis_exceptions.ResponseError:
        return None


def refused_commands(client, commands: Sequence[Command]) -> Optional[List[Tuple[str, str]]]:
    """(command, the server's reason) for each of `commands` ACL refuses this user - none is run - or
    None when neither MULTI nor ACL DRYRUN may be used to find out."""
    refused = _refusals_by_multi(client, commands)
    return refused if refused is not None else _refusals_by_dryrun(client, commands)


def require_permissions(client, commands: Sequence[Command], what: str) -> None:
    """Raise PreflightFailed naming every command (or key) the user may not use; nothing is run."""
    refused = refused_commands(client, commands)
    if refused is None:
        raise PreflightFailed(
            f"cannot check this user's permissions for the {what}: MULTI and ACL DRYRUN are both "
            "denied; nothing was changed",
            hint="grant the user +multi +discard (or +acl|dryrun)",
        )
    if refused:
        names = sorted({name for name, _reason in refused})
        keys = any("key" in reason.lower() for _name, reason in refused)
        raise PreflightFailed(
            f"the Redis user may not run {', '.join(names)}, which the {what} needs; nothing was changed",
            hint="grant those commands"
            + (" and access to the index names and document keys" if keys else "")
            + " to the user (ACL SETUSER), or connect as a user that has them",
            details={"refused": [{"command": name, "reason": reason} for name, reason in refused]},
        )
