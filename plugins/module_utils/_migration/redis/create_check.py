# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prove that the server accepts a target index definition, before anything is dropped.

Some refusals only the server can make: a FILTER expression it cannot parse, a capacity above a
limit it derives from its memory, an option its version lacks. So the exact target definition
(ftcreate.create_args) is created under a throwaway name, on a throwaway prefix that no key has,
and dropped at once; the server's refusal, if any, is returned.

The definition is first checked against limits.py, because some values the server accepts crash
it (HNSW M 32768, ...): the throwaway FT.CREATE must not be the thing that brings it down.

Nothing is left behind: the throwaway index is created TEMPORARY (the server drops it by itself
after CHECK_TTL_SECONDS without use), and its name holds CHECK_PREFIX, so that a later call drops
any index a process killed between the create and the drop left. The name starts with the target's
own name: search commands treat index names as keys, and a user whose ACL key patterns cover the
index (`~products*`) may then create the throwaway one too.
"""

from __future__ import annotations

import secrets
from typing import List, Optional

from ..core import limits
from ..core.deps import redis_exceptions
from ..core.errors import ServerUnsupported
from ..schema.model import IndexSchema
from .ftcreate import create_args
from .permissions import refused_commands
from .resp import decode

CHECK_PREFIX = "__indexops_check_"
# Long enough for any create-then-drop; short enough that an interrupted check is gone soon.
CHECK_TTL_SECONDS = 30
# Refusals that say the check itself may not run (ACL, read-only replica), not that the definition is wrong.
_NOT_ALLOWED = ("noperm", "no permissions", "readonly", "read only", "you can't write against a read only")


class CreateCheckUnavailable(ServerUnsupported):
    """The server would not let the check create its throwaway index (ACL, replica)."""

    kind = "create_check_unavailable"


def leftover_checks(client) -> List[str]:
    """Throwaway indexes of earlier checks that were interrupted between create and drop."""
    return sorted(name for name in (str(n) for n in decode(client.execute_command("FT._LIST"))) if CHECK_PREFIX in name)


def _drop(client, name: str) -> None:
    try:
        client.execute_command("FT.DROPINDEX", name)
    except redis_exceptions.ResponseError as err:
        # Gone already: expired (TEMPORARY), or dropped by a concurrent check's clean-up.
        if "unknown index" not in str(err).lower() and "no such index" not in str(err).lower():
            raise


def drop_leftover_checks(client) -> List[str]:
    """Drop every throwaway index a check left; return their names. Only names holding CHECK_PREFIX."""
    found = leftover_checks(client)
    for name in found:
        _drop(client, name)
    return found


def check_name(target: str, token: Optional[str] = None) -> str:
    """A throwaway index name for checking `target`'s definition."""
    return f"{target}{CHECK_PREFIX}{token or secrets.token_hex(8)}"


def check_create(client, schema: IndexSchema) -> Optional[str]:
    """Create `schema` exactly, under a throwaway name and prefix, then drop it.

    Returns None when the server accepted the definition, or the first line of its refusal.
    Raises SchemaInvalid (before sending anything) when a value is outside limits.py, and
    CreateCheckUnavailable when the user may not create indexes or the server is read-only.
    Connection errors propagate. Leaves no index behind (see the module docstring)."""
    limits.check_schema(schema, "target")
    drop_leftover_checks(client)
    name = check_name(schema.name)
    probe = schema.model_copy(deep=True)
    # A prefix no key has, so the server indexes nothing; one prefix is enough to test the rest.
    probe.index.prefix = [f"{name}:"]
    args = create_args(probe, name)
    # TEMPORARY is accepted anywhere among the index options (search 2.10.5); right after the name.
    args[1:1] = ["TEMPORARY", str(CHECK_TTL_SECONDS)]
    # A user who may create the throwaway index but not drop it would leave it behind: ask first (queued
    # in a MULTI that is discarded, nothing runs).
    refused = refused_commands(client, [("FT.CREATE", *args), ("FT.DROPINDEX", name)])
    if refused:
        raise CreateCheckUnavailable(
            f"could not check the target definition with a throwaway FT.CREATE: the user may "
            f"not run {', '.join(sorted({command for command, _reason in refused}))}",
            hint="allow FT.CREATE and FT.DROPINDEX for this user on a writable primary",
        )
    try:
        client.execute_command("FT.CREATE", *args)
    except redis_exceptions.ResponseError as err:
        reason = (str(err).splitlines() or ["refused"])[0]
        if any(marker in reason.lower() for marker in _NOT_ALLOWED):
            raise CreateCheckUnavailable(
                f"could not check the target definition with a throwaway FT.CREATE: {reason}",
                hint="allow FT.CREATE and FT.DROPINDEX for this user on a writable primary",
            ) from None
        return reason
    _drop(client, name)
    return None
