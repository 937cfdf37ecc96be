# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of a set of commands an ACL user may still run, as the server itself decides (ACL DRYRUN).

DRYRUN checks the user's root rules and every selector, and says "no permissions to run the '<cmd>'
command" only when none of them allows the command; a refusal for a key or a channel means some rule
allows the command on other keys, so the user can still run it. Whether the user is on or off does
not matter: switching a user off (or changing its password) leaves its open connections working.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.redis.resp import text

from .write_commands import CommandInfo

_DENIED = "no permissions to run the"


def dryrun_args(command: CommandInfo) -> List[str]:
    """A call of `command` (a subcommand as two words) with as many placeholder arguments as its arity
    asks for: DRYRUN refuses a call of the wrong length before it checks anything."""
    words = command.name.split("|")
    needed = abs(command.arity) if command.arity else len(words)
    return words + ["x"] * max(needed - len(words), 0)


def allowed(client, user: str, commands: Sequence[CommandInfo]) -> Optional[List[str]]:
    """The names in `commands` that `user` may run (on some key), sorted; None when the server cannot
    dry-run (ACL DRYRUN came with Redis 7). One pipelined round trip."""
    if not commands:
        return []
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command("ACL", "DRYRUN", user, *dryrun_args(command))
    replies = pipe.execute(raise_on_error=False)
    if all(isinstance(reply, Exception) for reply in replies) and "subcommand" in str(replies[0]).lower():
        return None
    found = []
    for command, reply in zip(commands, replies):
        # An error reply (a server that cannot dry-run this command) counts as allowed: not proven denied.
        if isinstance(reply, Exception) or _DENIED not in str(text(reply)):
            found.append(command.name)
    return sorted(found)
