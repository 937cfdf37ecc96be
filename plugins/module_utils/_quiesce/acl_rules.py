# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACL LIST lines: split them into rules, derive the quiesced rules, hide password hashes.

`ACL LIST` prints one line per user, `user <name> <rule> <rule> ...`, where a selector is one
rule written `(<rule> <rule> ...)` with spaces inside. Restoring a user means sending the same
rules again after `reset`, with every selector kept whole as one argument. Pure functions only.
"""

from __future__ import annotations

import re
from typing import List, Sequence, Tuple

from ansible_collections.indexops.redis_search.plugins.module_utils._migration.core.errors import IndexOpsError


class AclLineInvalid(IndexOpsError):
    """An ACL LIST line this module cannot take apart safely."""

    kind = "acl_unparseable"


_HASH = re.compile(r"(?<![^ (])#[0-9a-f]{64}")
DENY_CATEGORY = "-@write"


def split_line(line: str) -> Tuple[str, List[str]]:
    """`user <name> <rules...>` -> (name, rules), each selector one rule."""
    if not line.startswith("user "):
        raise AclLineInvalid(f"not an ACL LIST line: {redact(line)[:60]!r}")
    name, _sep, rest = line[len("user ") :].partition(" ")
    if not name:
        raise AclLineInvalid("ACL LIST line without a user name")
    return name, split_rules(rest)


def split_rules(text: str) -> List[str]:
    """Split rules on spaces, keeping `( ... )` selectors whole.

    Inside a selector Redis prints key patterns, then channels, then command rules, and always at
    least one command rule, so the selector ends at the first command rule (`+...`/`-...`) that
    ends with `)`; a key pattern that happens to end with `)` does not close it.
    """
    rules: List[str] = []
    selector: List[str] = []
    for token in text.split(" "):
        if token == "":
            continue
        if selector:
            selector.append(token)
            if token.endswith(")") and token[:1] in "+-":
                rules.append(" ".join(selector))
                selector = []
            continue
        if token.startswith("("):
            selector.append(token)
            if token.endswith(")") and len(token) > 1 and token[1:2] in "+-":
                rules.append(token)
                selector = []
            continue
        rules.append(token)
    if selector:
        raise AclLineInvalid("an ACL selector is not closed: " + redact(" ".join(selector))[:80])
    return rules


def is_selector(rule: str) -> bool:
    return rule.startswith("(") and rule.endswith(")")


def is_command_rule(rule: str) -> bool:
    """`+get`, `-@write`, `+config|get`: the rules a quiesce adds to. Flags, passwords (`#...`), key patterns
    (`~`, `%R~`) and channels (`&`, `resetchannels`) never start with + or -."""
    return rule[:1] in "+-" and not is_selector(rule)


def other_rules(rules: Sequence[str]) -> List[str]:
    """Everything a quiesce leaves alone: flags (on/off, nopass), passwords, key patterns, channels."""
    return [rule for rule in rules if not is_command_rule(rule) and not is_selector(rule)]


def command_part(rules: Sequence[str]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """What a quiesce changes: the root command rules and the selectors, in ACL LIST order."""
    return tuple(rule for rule in rules if is_command_rule(rule)), tuple(rule for rule in rules if is_selector(rule))


def with_commands_of(current: Sequence[str], source: Sequence[str]) -> List[str]:
    """`current`'s flags, passwords, keys and channels with `source`'s command rules and selectors: what a user
    changed meanwhile (a rotated password, a user switched off) is kept, only the commands come back.
    ACL LIST prints flags, passwords, keys and channels before the command rules, selectors last: so does this."""
    commands, selectors = command_part(source)
    return other_rules(current) + list(commands) + list(selectors)


def line_of(name: str, rules: Sequence[str]) -> str:
    """The ACL LIST line of a user with `rules`."""
    return " ".join(["user", name, *rules])


def quiesced_rules(rules: Sequence[str], deny_commands: Sequence[str]) -> List[str]:
    """The user's rules with writes denied: `-@write` and every named command, at the end of the
    root rules and inside every selector (a selector grants commands on its own)."""
    denials = [DENY_CATEGORY] + [f"-{name}" for name in deny_commands]
    root = [rule for rule in rules if not is_selector(rule)]
    selectors = [rule[:-1] + " " + " ".join(denials) + ")" for rule in rules if is_selector(rule)]
    return root + denials + selectors


def setuser_args(name: str, rules: Sequence[str]) -> List[str]:
    """Arguments of the ACL SETUSER that makes the user exactly `rules` (nothing inherited)."""
    return ["ACL", "SETUSER", name, "reset", *rules]


def redact(line: str) -> str:
    """Password hashes (`#<sha256>`) replaced, for anything shown to people or logs."""
    return _HASH.sub("#<redacted>", line)
