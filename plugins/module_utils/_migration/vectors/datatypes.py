# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vector datatypes as stored: which are floats and which integer codes, the bytes one vector takes,
and the errors a stored vector can raise when it is read or converted (vectors/codec.py)."""

from __future__ import annotations

from typing import Any, Optional

from ..core.deps import numpy
from ..core.errors import DependencyMissing
from ..schema.model import DATATYPE_WIDTH, VECTOR_DATATYPES

FLOAT_DATATYPES = ("float64", "float32", "float16", "bfloat16")

INT_DATATYPES = ("int8", "uint8")

# Storage dtypes, always little-endian; bfloat16 has no numpy dtype, its bits are read as uint16.
STORAGE = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "bfloat16": "<u2", "int8": "i1", "uint8": "u1"}


class MalformedVector(ValueError):
    """A stored vector whose byte length does not match the datatype and dims."""

    def __init__(
        self,
        actual: int,
        expected: int,
        *,
        index: Optional[int] = None,
        count: int = 1,
        datatype: Optional[str] = None,
        dims: Optional[int] = None,
    ):
        self.actual = actual
        self.expected = expected
        self.index = index
        self.count = count
        self.datatype = datatype
        self.dims = dims
        where = "the vector" if index is None else f"vector {index} of the batch"
        shape = f" ({dims} x {datatype})" if datatype and dims else ""
        more = f"; {count} malformed vectors in the batch" if count > 1 else ""
        super().__init__(f"{where} has {actual} bytes, expected {expected}{shape}{more}")


class VectorOverflow(ValueError):
    """Finite values that the target datatype would turn into infinity."""

    def __init__(self, count: int, index: int, source: str, target: str):
        self.count = count
        self.index = index
        self.source = source
        self.target = target
        super().__init__(
            f"{count} finite values would become infinite converting {source} to {target} "
            f"(first in vector {index} of the batch); the values are beyond the range of {target}"
        )


class NonFiniteValues(ValueError):
    """NaN or infinite values where the target (int8/uint8) cannot represent them."""

    def __init__(self, count: int, index: int, target: str):
        self.count = count
        self.index = index
        self.target = target
        super().__init__(
            f"{count} values are NaN or infinite (first in vector {index} of the batch); {target} cannot represent them"
        )


def need_numpy(what: str) -> None:
    if numpy is None:
        raise DependencyMissing(
            f"numpy is required to {what}", hint="install it on the host that runs the module: pip install numpy"
        )


def normal_datatype(value: Any, role: str = "datatype") -> str:
    normal = str(value).strip().lower() if value is not None else ""
    if normal not in VECTOR_DATATYPES:
        raise ValueError(f"{role} must be one of {', '.join(VECTOR_DATATYPES)}, not {value!r}")
    return normal


def expected_length(datatype: str, dims: int) -> int:
    """Byte length of one stored vector."""
    if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
        raise ValueError(f"dims must be a positive integer, not {dims!r}")
    return DATATYPE_WIDTH[normal_datatype(datatype)] * dims
