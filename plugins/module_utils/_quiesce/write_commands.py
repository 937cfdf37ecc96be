# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which commands write, as the server itself describes them (COMMAND INFO).

ACL `-@write` covers every command in the `write` category, but module commands (JSON.SET,
FT.CREATE, ...) carry no ACL category at all on many servers, so they are denied by name: every
command or subcommand whose flags say `write` and whose categories lack `@write`. Some search
commands change server state while flagged `readonly` (aliases, dictionaries); they are listed
here by name and denied when the server has them. So are the commands that write no data but can
break a window (WINDOW_BREAKING).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, NamedTuple, Sequence

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.resp import decode

# Flagged readonly by RediSearch 2.x, yet they change what queries see.
STATE_CHANGING_READONLY = (
    "ft.aliasadd",
    "ft.aliasupdate",
    "ft.aliasdel",
    "ft._aliasaddifnx",
    "ft._aliasdelifx",
    "ft.dictadd",
    "ft.dictdel",
)

# Commands that write no data, yet let a user undo or break a window: give itself writes back (ACL
# SETUSER), change the server under the migration (CONFIG SET, REPLICAOF, FAILOVER, MODULE, DEBUG,
# FT.CONFIG), stop it (SHUTDOWN, CLIENT KILL of the migrating connection, CLIENT PAUSE), reset the
# counters the verification reads (CONFIG RESETSTAT), drop or kill the migration's scripts (SCRIPT
# FLUSH/KILL), or change indexes (FT.ALTER, FT.DROPINDEX, FT.ALIAS*). Those in @write are denied by
# -@write already; the others by name, where the server has them. FT.CONFIG has no subcommands ACL
# could tell apart, so all of it is denied (FT.CONFIG GET too).
WINDOW_BREAKING = (
    "acl|setuser",
    "acl|deluser",
    "acl|load",
    "acl|save",
    "config|set",
    "config|resetstat",
    "config|rewrite",
    "client|kill",
    "client|pause",
    "client|unpause",
    "script|flush",
    "script|kill",
    "function|flush",
    "function|kill",
    "function|delete",
    "function|restore",
    "ft.config",
    "ft.alter",
    "ft.dropindex",
    "ft.aliasadd",
    "ft.aliasupdate",
    "ft.aliasdel",
    "replicaof",
    "slaveof",
    "failover",
    "shutdown",
    "module|load",
    "module|loadex",
    "module|unload",
    "debug",
    "flushall",
    "flushdb",
    "swapdb",
)


class CommandInfo(NamedTuple):
    name: str
    flags: frozenset
    categories: frozenset
    arity: int = 0


def parse_command_info(reply: Any) -> List[CommandInfo]:
    """Commands and subcommands from a raw COMMAND INFO reply (RESP2 or RESP3)."""
    found: List[CommandInfo] = []

    def visit(entries: Iterable[Any]) -> None:
        for entry in entries or ():
            if not entry:
                continue
            entry = decode(entry)
            name = str(entry[0]).lower()
            flags = frozenset(str(flag).lower() for flag in (entry[2] or ()))
            categories = frozenset(str(cat).lower() for cat in (entry[6] if len(entry) > 6 else ()) or ())
            arity = entry[1] if len(entry) > 1 and isinstance(entry[1], int) else 0
            found.append(CommandInfo(name, flags, categories, arity))
            if len(entry) > 9:
                visit(entry[9])

    visit(reply)
    return found


def commands_to_deny(commands: Sequence[CommandInfo], extra: Sequence[str] = ()) -> List[str]:
    """Names `-@write` does not cover but that write or break a window: sorted, each once."""
    known = {command.name for command in commands}
    in_write = {command.name for command in commands if "@write" in command.categories}
    names = {command.name for command in commands if "write" in command.flags and "@write" not in command.categories}
    names |= {name for name in STATE_CHANGING_READONLY if name in known}
    names |= {name for name in WINDOW_BREAKING if name in known and name not in in_write}
    names |= {name.lower() for name in extra}
    return sorted(names)


def guarded_commands(commands: Sequence[CommandInfo], extra: Sequence[str] = ()) -> List[CommandInfo]:
    """Every command a quiesced user must not run: those that write and those that break a window."""
    names = set(write_command_names(commands, extra)) | set(WINDOW_BREAKING)
    return [command for command in commands if command.name in names]


def write_command_names(commands: Sequence[CommandInfo], extra: Sequence[str] = ()) -> List[str]:
    """Every command that can change data or search state: what the observation counts."""
    known = {command.name for command in commands}
    names = {command.name for command in commands if "write" in command.flags}
    names |= {name for name in STATE_CHANGING_READONLY if name in known}
    names |= {name.lower() for name in extra}
    return sorted(names)


def unknown_commands(commands: Sequence[CommandInfo], extra: Sequence[str]) -> List[str]:
    known = {command.name for command in commands}
    return sorted({name.lower() for name in extra} - known)


def command_stats(info: Dict[str, Any]) -> Dict[str, Dict[str, int]]:
    """INFO commandstats as {command: {calls, rejected_calls, failed_calls}}, names lowercased."""
    stats: Dict[str, Dict[str, int]] = {}
    for key, value in (info or {}).items():
        key = str(decode(key))
        if not key.startswith("cmdstat_") or not isinstance(value, dict):
            continue
        value = decode(value)
        stats[key[len("cmdstat_") :].lower()] = {
            counter: int(value.get(counter, 0) or 0) for counter in ("calls", "rejected_calls", "failed_calls")
        }
    return stats
