# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a migration reaches its target: online, beside the live index, or by dropping and recreating it.

online          the target is built under another name while the source keeps serving, validated
                against it, and put in its place in one MULTI/EXEC: the source is dropped and its
                name and aliases point at the new index from the same instant. No read gap. Where
                the change rewrites documents (a datatype, a field that moves, a prefix), the new
                bytes are written beside the old ones first and the old ones removed after the swap
                (schema/online_layout.py: expand, swap, contract). It needs room in memory for the
                new values and the second index while both exist.
drop_recreate   the source is dropped, documents are rewritten, the target is created: queries fail
                from the drop until the new index has indexed everything.

Cut-over (online): `swap` moves the source's names to the new index in the same run; `side_by_side`
stops once the new index is built, serving under its own name (and an alias of the user's choosing)
beside the source, until a later run with `finish` swaps and contracts - clients move at their pace.

There is no way to rename an index, and an alias cannot take the name of a live index, so after an
online migration the new index has a name of its own and the old name is an alias of it: `products`
keeps answering every query, and the index behind it is `products--v2` (then `--v3`, ...). A rename
(`index.name` in the patch) builds the new index under the new name, and the old name becomes an
alias of it, so clients move over at their own pace.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Tuple

from ..core.deps import BaseModel, Field
from ..redis.capabilities import ServerCapabilities
from ..schema.model import IndexSchema
from ..schema.online_layout import OnlineLayout, online_layout
from ..schema.rewrites import DocumentRewrites
from .online_cost import OnlineMemory

AUTO, ONLINE, DROP_RECREATE = "auto", "online", "drop_recreate"
MODES = (AUTO, ONLINE, DROP_RECREATE)
SWAP, SIDE_BY_SIDE = "swap", "side_by_side"
CUTOVERS = (SWAP, SIDE_BY_SIDE)
# How far an online build may take used memory, as a share of maxmemory: past it, eviction (or OOM
# errors on writes) would hit the application while two indexes coexist.
MEMORY_CEILING = 0.9
_GENERATION = re.compile(r"^(?P<stem>.+)--v(?P<number>[0-9]+)$")


class OnlineSwap(BaseModel):
    """What an online migration builds and what it costs."""

    index: str  # the new index's own name
    names: List[str] = Field(default_factory=list)  # names that point at it after the swap (aliases)
    memory_needed_bytes: int = 0  # the window's peak: new values beside the old, and the second index
    memory_used_bytes: int = 0
    memory_limit_bytes: int = 0  # maxmemory; 0 = none
    memory_breakdown: Dict[str, int] = Field(default_factory=dict)
    cutover: str = SWAP
    side_by_side_alias: Optional[str] = None  # an alias of the new index while it serves beside the source
    # Documents rewritten online: where their new bytes live meanwhile; None when they stay as they are.
    layout: Optional[OnlineLayout] = None
    # A datatype change in place: the index on the side fields that serves between the two swaps.
    interim_index: Optional[str] = None

    @property
    def first_index(self) -> str:
        """The index the first build makes (and the first swap puts in the source's place)."""
        return self.interim_index or self.index


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


def _online_refusal(rewrites: DocumentRewrites, caps: ServerCapabilities) -> Optional[str]:
    """Why the documents cannot be rewritten online on this server, or None."""
    if rewrites.prefix is not None and caps.cluster_enabled:
        return (
            "a prefix change online copies each document beside its old key, which on a cluster lives in another slot"
        )
    return None


def _describe_memory(memory: OnlineMemory) -> str:
    parts = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in memory.breakdown.items())
    return f"about {memory.peak_bytes} bytes at its peak ({parts})"


def _names(
    source: IndexSchema, target: IndexSchema, layout: Optional[OnlineLayout], taken: Callable[[str], bool]
) -> Tuple[str, Optional[str]]:
    """(the new index's name, the interim index's name or None). A datatype change in place builds twice: the
    interim index takes the next generation name and the final one the generation after it."""
    interim = next_generation(source.name, taken) if layout is not None and layout.side_fields else None
    if target.name != source.name:
        return target.name, interim
    return next_generation(source.name, lambda name: name == interim or taken(name)), interim


def choose_mode(
    requested: str,
    source: IndexSchema,
    target: IndexSchema,
    rewrites: DocumentRewrites,
    memory: OnlineMemory,
    caps: ServerCapabilities,
    aliases: List[str],
    taken: Callable[[str], bool],
    cutover: str = SWAP,
    side_by_side_alias: Optional[str] = None,
) -> ModeDecision:
    """Online where the window fits in memory (and the server allows it), unless asked otherwise."""
    if requested == DROP_RECREATE:
        return _cutover_check(ModeDecision(mode=DROP_RECREATE, reason="drop_recreate was asked for"), cutover)
    layout = online_layout(rewrites)
    refusal = _online_refusal(rewrites, caps)
    if refusal:
        reason = f"{_rewrite_reason(rewrites)}, and {refusal}"
        if requested == ONLINE:
            return ModeDecision(mode=ONLINE, reason=reason, blocked=f"mode online: {reason}; use drop_recreate")
        return _cutover_check(
            ModeDecision(mode=DROP_RECREATE, reason=f"{reason}: the index must be down while they change"), cutover
        )
    final, interim = _names(source, target, layout, taken)
    swap = OnlineSwap(
        index=final,
        names=online_names(source, aliases),
        memory_needed_bytes=memory.peak_bytes,
        memory_used_bytes=caps.used_memory_bytes,
        memory_limit_bytes=caps.maxmemory_bytes,
        memory_breakdown=memory.breakdown,
        cutover=cutover,
        side_by_side_alias=side_by_side_alias,
        layout=layout,
        interim_index=interim,
    )
    if not _fits(memory.peak_bytes, caps):
        room = (
            f"the online window needs {_describe_memory(memory)} on top of the {caps.used_memory_bytes} bytes "
            f"used, past {MEMORY_CEILING:.0%} of maxmemory ({caps.maxmemory_bytes} bytes)"
        )
        if requested == ONLINE:
            return ModeDecision(
                mode=ONLINE,
                reason=room,
                online=swap,
                blocked=f"mode online: {room}; free memory, raise maxmemory or use drop_recreate",
            )
        return _cutover_check(
            ModeDecision(
                mode=DROP_RECREATE,
                reason=room,
                warning=(
                    f"Online was not possible: {room}; the migration drops and recreates the index instead (with a "
                    "read gap). Free memory or raise maxmemory for an online migration."
                ),
            ),
            cutover,
        )
    if layout is None:
        reason = "the documents stay as they are: the target is built beside the live index and swapped in at once"
    else:
        reason = (
            f"{_rewrite_reason(rewrites)}: the new bytes are written beside the old ones, the target is built on "
            f"them beside the live index ({layout.builds} build(s)), swapped in at once, and the old bytes removed"
        )
    return ModeDecision(mode=ONLINE, online=swap, reason=reason)


def _cutover_check(decision: ModeDecision, cutover: str) -> ModeDecision:
    """A side-by-side cut-over needs the new index beside the source: an online migration."""
    if cutover == SIDE_BY_SIDE and decision.mode != ONLINE and not decision.blocked:
        decision.blocked = (
            f"cutover side_by_side needs an online migration, and this one is drop_recreate ({decision.reason})"
        )
    return decision


def memory_now_fits(swap: OnlineSwap, caps: ServerCapabilities) -> Tuple[bool, str]:
    """Whether the window still fits the server's memory as it is now (checked before building)."""
    if _fits(swap.memory_needed_bytes, caps):
        return True, ""
    return False, (
        f"the online window needs about {swap.memory_needed_bytes} bytes on top of the {caps.used_memory_bytes} "
        f"bytes used, past {MEMORY_CEILING:.0%} of maxmemory ({caps.maxmemory_bytes} bytes)"
    )
