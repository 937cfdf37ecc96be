# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a migration reaches its target: online, beside the live index, or by dropping and recreating it.

online          the target is built under another name on the same prefixes while the source keeps
                serving, validated against it, and put in its place in one MULTI/EXEC: the source is
                dropped and its name and aliases point at the new index from the same instant. No
                read gap. It needs the documents to stay as they are (no vector bytes rewritten, no
                field moved, no key renamed: a second index reads the same documents) and room in
                memory for the second index while it builds.
drop_recreate   the source is dropped, documents are rewritten, the target is created: queries fail
                from the drop until the new index has indexed everything.

There is no way to rename an index, and an alias cannot take the name of a live index, so after an
online migration the new index has a name of its own and the old name is an alias of it: `products`
keeps answering every query, and the index behind it is `products--v2` (then `--v3`, ...). A rename
(`index.name` in the patch) builds the new index under the new name, and the old name becomes an
alias of it, so clients move over at their own pace.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional, Tuple

from ..core.deps import BaseModel, Field
from ..redis.capabilities import ServerCapabilities
from ..schema.model import IndexSchema
from ..schema.rewrites import DocumentRewrites
from .estimate import Estimate

AUTO, ONLINE, DROP_RECREATE = "auto", "online", "drop_recreate"
MODES = (AUTO, ONLINE, DROP_RECREATE)
# How far an online build may take used memory, as a share of maxmemory: past it, eviction (or OOM
# errors on writes) would hit the application while two indexes coexist.
MEMORY_CEILING = 0.9
_GENERATION = re.compile(r"^(?P<stem>.+)--v(?P<number>[0-9]+)$")


class OnlineSwap(BaseModel):
    """What an online migration builds and what it costs."""

    index: str  # the new index's own name
    names: List[str] = Field(default_factory=list)  # names that point at it after the swap (aliases)
    memory_needed_bytes: int = 0  # the second index, while both exist
    memory_used_bytes: int = 0
    memory_limit_bytes: int = 0  # maxmemory; 0 = none


class ModeDecision(BaseModel):
    mode: str
    reason: str
    online: Optional[OnlineSwap] = None
    blocked: Optional[str] = None  # why the requested mode cannot be had
    warning: Optional[str] = None


def stem(name: str) -> str:
    """The name an index goes by across online migrations: `products` for `products--v3`."""
    found = _GENERATION.match(name)
    return found.group("stem") if found else name


def next_generation(name: str, taken: Callable[[str], bool]) -> str:
    """`<stem>--v<n>` for the first n above the current generation whose name is free."""
    found = _GENERATION.match(name)
    number = int(found.group("number")) + 1 if found else 2
    while taken(f"{stem(name)}--v{number}"):
        number += 1
    return f"{stem(name)}--v{number}"


def online_names(source: IndexSchema, aliases: List[str]) -> List[str]:
    """The names that must lead to the new index once it is in place: the source's aliases, and the
    source's own name - unless that is a generation name whose stem is already one of the aliases."""
    names = list(aliases)
    own = source.name
    if own not in names and not (stem(own) != own and stem(own) in names):
        names.append(own)
    return sorted(set(names))


def _memory_needed(estimate: Estimate) -> int:
    after = estimate.memory_after_bytes
    return int(after.get("vector_index", 0) + after.get("other_index", 0))


def _fits(needed: int, caps: ServerCapabilities) -> bool:
    return not caps.maxmemory_bytes or caps.used_memory_bytes + needed <= MEMORY_CEILING * caps.maxmemory_bytes


def _rewrite_reason(rewrites: DocumentRewrites) -> str:
    what = []
    if rewrites.quantize:
        what.append("rewrites the vector bytes of " + ", ".join(q.field for q in rewrites.quantize))
    if rewrites.moves:
        what.append("moves " + ", ".join(m.field for m in rewrites.moves) + " within the documents")
    if rewrites.prefix:
        what.append(f"renames the keys from {rewrites.prefix.old!r} to {rewrites.prefix.new!r}")
    return "the change " + " and ".join(what)


def choose_mode(
    requested: str,
    source: IndexSchema,
    target: IndexSchema,
    rewrites: DocumentRewrites,
    estimate: Estimate,
    caps: ServerCapabilities,
    aliases: List[str],
    taken: Callable[[str], bool],
) -> ModeDecision:
    """Online where the documents stay as they are and the second index fits, unless asked otherwise."""
    if requested == DROP_RECREATE:
        return ModeDecision(mode=DROP_RECREATE, reason="drop_recreate was asked for")
    if rewrites.any:
        reason = _rewrite_reason(rewrites)
        if requested == ONLINE:
            return ModeDecision(
                mode=ONLINE,
                reason=reason,
                blocked=(
                    f"mode online needs the documents to stay as they are, but {reason}; use mode auto or drop_recreate"
                ),
            )
        return ModeDecision(mode=DROP_RECREATE, reason=f"{reason}: the index must be down while they change")
    needed = _memory_needed(estimate)
    swap = OnlineSwap(
        index=target.name if target.name != source.name else next_generation(source.name, taken),
        names=online_names(source, aliases),
        memory_needed_bytes=needed,
        memory_used_bytes=caps.used_memory_bytes,
        memory_limit_bytes=caps.maxmemory_bytes,
    )
    if not _fits(needed, caps):
        room = (
            f"a second index of about {needed} bytes while it builds would take used memory "
            f"({caps.used_memory_bytes} bytes) past {MEMORY_CEILING:.0%} of maxmemory ({caps.maxmemory_bytes} bytes)"
        )
        if requested == ONLINE:
            return ModeDecision(
                mode=ONLINE,
                reason=room,
                online=swap,
                blocked=f"mode online: {room}; free memory, raise maxmemory or use drop_recreate",
            )
        return ModeDecision(
            mode=DROP_RECREATE,
            reason=room,
            warning=(
                f"Online was not possible: {room}; the migration drops and recreates the index instead (with a read "
                "gap). Free memory or raise maxmemory for an online migration."
            ),
        )
    return ModeDecision(
        mode=ONLINE,
        online=swap,
        reason=("the documents stay as they are: the target is built beside the live index and swapped in at once"),
    )


def memory_now_fits(swap: OnlineSwap, caps: ServerCapabilities) -> Tuple[bool, str]:
    """Whether the second index still fits the server's memory as it is now (checked before building)."""
    if _fits(swap.memory_needed_bytes, caps):
        return True, ""
    return False, (
        f"a second index of about {swap.memory_needed_bytes} bytes would take used memory "
        f"({caps.used_memory_bytes} bytes) past {MEMORY_CEILING:.0%} of maxmemory ({caps.maxmemory_bytes} "
        "bytes)"
    )
