"""What an estimate says: each layer's exact share of the file, and the totals."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from inspector.core.layer import LayerPlan
from inspector.format.header import LayerRecord
from inspector.io.model_file import TensorInfo


@dataclass(frozen=True, slots=True)
class LayerEstimate:
    """One layer's exact share of the file. ``plan`` is None for a layer stored losslessly."""

    info: TensorInfo
    plan: LayerPlan | None
    record: LayerRecord

    @property
    def original_nbytes(self) -> int:
        return self.info.nbytes

    @property
    def payload_nbytes(self) -> int:
        return self.record.payload_nbytes


@dataclass(frozen=True, slots=True)
class ModelEstimate:
    """Every layer's estimate and the exact size of the whole file."""

    layers: tuple[LayerEstimate, ...]
    file_nbytes: int
    container_nbytes: int
    original_nbytes: int
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # By name in O(1): views look up each selected layer after every estimate.
        index = {r.info.name: i for i, r in reversed(list(enumerate(self.layers)))}
        object.__setattr__(self, "_index", index)

    @property
    def ratio(self) -> float:
        return self.original_nbytes / self.file_nbytes if self.file_nbytes else float("inf")

    def layer(self, name: str) -> LayerEstimate | None:
        """The estimate of layer ``name``, if it is in this estimate."""
        i = self._index.get(name)
        return None if i is None else self.layers[i]

    @property
    def sqnr_db(self) -> float:
        """Weight-space signal-to-noise ratio over all compressed layers (a proxy, not accuracy)."""
        plans = [r.plan for r in self.layers if r.plan is not None]
        signal = sum(p.sumsq for p in plans)
        noise = sum(p.error_sse for p in plans)
        if not plans or signal <= 0:
            return math.nan
        return math.inf if noise <= 0 else 10.0 * math.log10(signal / noise)
