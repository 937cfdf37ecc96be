# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""int8 and uint8 codes: the parameters that map float values to them and back (QuantParams), published so
that applications encode their query vectors the same way (docs/quantization.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Optional

from ..core.deps import numpy
from ..schema.model import DISTANCE_METRICS
from .datatypes import FLOAT_DATATYPES, INT_DATATYPES, STORAGE, NonFiniteValues, normal_datatype

DEFAULT_PERCENTILE = 99.99

SCHEMES = {"int8": "symmetric", "uint8": "affine"}

QUANT_RANGE = {"int8": (-127, 127), "uint8": (0, 255)}


@dataclass(frozen=True)
class QuantParams:
    """How float values map to int8/uint8 codes, for every vector of a field alike.

    symmetric (int8):  q = clip(rint(v / scale), -127, 127)             v ~ q * scale
    affine (uint8):    q = clip(rint((v - offset) / scale), 0, 255)     v ~ q * scale + offset

    `scale` and `offset` are float32 values (stored as Python floats, exactly), so an application
    computing in float32 gets the same codes as the migration.
    """

    datatype: str
    scheme: str
    scale: float
    offset: float = 0.0
    metric: Optional[str] = None
    source_datatype: str = "float32"
    clip_fraction: float = 0.0
    percentile: float = DEFAULT_PERCENTILE

    def __post_init__(self):
        datatype = str(self.datatype).lower()
        if datatype not in INT_DATATYPES:
            raise ValueError(f"QuantParams apply to int8 or uint8, not {self.datatype!r}")
        if self.scheme != SCHEMES[datatype]:
            raise ValueError(f"{datatype} uses the {SCHEMES[datatype]} scheme, not {self.scheme!r}")
        scale, offset = float(self.scale), float(self.offset)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, not {self.scale!r}")
        if not math.isfinite(offset):
            raise ValueError(f"offset must be finite, not {self.offset!r}")
        if self.scheme == "symmetric" and offset != 0:
            raise ValueError("the symmetric scheme has no offset")
        metric = None if self.metric is None else str(self.metric).lower()
        if metric is not None and metric not in DISTANCE_METRICS:
            raise ValueError(f"metric must be one of {', '.join(DISTANCE_METRICS)}, not {self.metric!r}")
        if metric in ("cosine", "ip") and offset != 0:
            # An offset moves the origin: angles and dot products would no longer be comparable.
            raise ValueError(f"{metric} needs zero to stay zero: the offset must be 0")
        source = normal_datatype(self.source_datatype, "source_datatype")
        if source not in FLOAT_DATATYPES:
            raise ValueError(f"source_datatype must be a float type, not {self.source_datatype!r}")
        if not 0.0 <= float(self.clip_fraction) <= 1.0:
            raise ValueError(f"clip_fraction must be between 0 and 1, not {self.clip_fraction!r}")
        for name, value in (
            ("datatype", datatype),
            ("scale", scale),
            ("offset", offset),
            ("metric", metric),
            ("source_datatype", source),
            ("clip_fraction", float(self.clip_fraction)),
            ("percentile", float(self.percentile)),
        ):
            object.__setattr__(self, name, value)

    @property
    def qmin(self) -> int:
        return QUANT_RANGE[self.datatype][0]

    @property
    def qmax(self) -> int:
        return QUANT_RANGE[self.datatype][1]

    @property
    def range(self) -> tuple[float, float]:
        """The values that map to the lowest and highest code; anything beyond is clipped."""
        return self.qmin * self.scale + self.offset, self.qmax * self.scale + self.offset

    def to_dict(self) -> dict[str, Any]:
        """Everything an application needs to encode query vectors like the migration did."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        low, high = self.range
        data.update(qmin=self.qmin, qmax=self.qmax, range=[low, high])
        if self.scheme == "symmetric":
            data["encode"] = f"q = clip(rint(v / scale), {self.qmin}, {self.qmax}) as {self.datatype}"
            data["decode"] = "v = q * scale"
        else:
            data["encode"] = f"q = clip(rint((v - offset) / scale), {self.qmin}, {self.qmax}) as {self.datatype}"
            data["decode"] = "v = q * scale + offset"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuantParams":
        """Read back `to_dict()` output (derived keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def quantize(values, params: Optional[QuantParams], target: str):
    if params is None:
        raise ValueError(f"converting to {target} needs QuantParams (fit them with fit_quant_params)")
    if params.datatype != target:
        raise ValueError(f"these QuantParams are for {params.datatype}, not {target}")
    finite = numpy.isfinite(values)
    if not finite.all():
        bad = ~finite
        raise NonFiniteValues(
            int(numpy.count_nonzero(bad)), int(numpy.argmax(bad.any(axis=-1))) if bad.ndim > 1 else 0, target
        )
    # Same arithmetic as the published formula, in the values' own precision (float32 for float32
    # sources, like an application's numpy code).
    kind = values.dtype.type
    shifted = values - kind(params.offset) if params.offset else values
    codes = shifted / kind(params.scale)
    numpy.rint(codes, out=codes)
    numpy.clip(codes, params.qmin, params.qmax, out=codes)
    return codes.astype(STORAGE[target])


def dequantize(codes, params: QuantParams):
    # float64: q * scale is exact there, so the result is rounded once, to the target type.
    values = codes.astype(numpy.float64) * params.scale
    if params.offset:
        values += params.offset
    return values
