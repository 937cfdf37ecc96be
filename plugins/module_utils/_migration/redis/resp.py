# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn raw RESP2 / RESP3 replies into plain Python values.

We read replies with `decode_responses=False` (vectors are binary), so text comes back as bytes;
RESP2 sends maps as flat [key, value, ...] lists where RESP3 sends dicts, and numbers as strings
where RESP3 sends doubles. These helpers give one shape whichever protocol was chosen.
"""

from __future__ import annotations

import math
from typing import Any


def text(value: Any) -> Any:
    """bytes -> str (undecodable bytes kept as escapes); anything else unchanged."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value


def decode(value: Any) -> Any:
    """Recursively decode bytes to str in lists, tuples, sets and dict keys and values."""
    if isinstance(value, bytes):
        return text(value)
    if isinstance(value, dict):
        return {decode(k): decode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [decode(v) for v in value]
    return value


def as_map(value: Any) -> dict:
    """A RESP3 map, or a RESP2 flat [k1, v1, k2, v2, ...] list, as a dict with str keys."""
    if isinstance(value, dict):
        return {text(k): v for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) % 2:
            raise ValueError(f"expected an even number of elements for a map, got {len(value)}")
        return {text(value[i]): value[i + 1] for i in range(0, len(value), 2)}
    raise ValueError(f"expected a map reply, got {type(value).__name__}")


def as_float(value: Any, default: float | None = None) -> float | None:
    if value is None:
        return default
    value = text(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def as_int(value: Any, default: int | None = None) -> int | None:
    number = as_float(value)
    if number is None or math.isnan(number):
        return default
    return int(number)
