"""Kill-at-every-step and failover-at-every-step matrices: `make test-faults` runs every case, `make test`
only the representative ones - the others carry the `exhaustive` marker, which `make test` deselects, so that
the whole suite stays under 20 minutes on a 2-core machine (docs/reliability.md)."""

from __future__ import annotations

from typing import Any, Iterable, List

import pytest


def representative(cases: Iterable[Any], kept: Iterable[Any], ids: Iterable[str] = ()) -> List[Any]:
    """`cases` as parametrize takes them (values, or tuples for several names), those not in `kept` marked
    exhaustive. `ids`, when given, name the cases (and `kept` then holds ids)."""
    kept, ids = set(kept), list(ids)
    found = []
    for n, case in enumerate(cases):
        values = case if isinstance(case, tuple) else (case,)
        name = ids[n] if ids else None
        marks = () if (name if ids else case) in kept else (pytest.mark.exhaustive,)
        found.append(pytest.param(*values, id=name, marks=marks))
    return found
