"""What an estimate says: each layer's exact share of the file, and the totals."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from inspector.core.layer import LayerPlan
from inspector.core.stages.base import Plan
from inspector.format.header import LayerRecord
from inspector.io.model_file import TensorInfo


@dataclass(frozen=True, slots=True)
class LayerEstimate:
    """One layer's exact share of the file.

    ``plan`` is the deep plan of a deep-compressed layer, ``coded`` the plan of a layer of
    another registered method; both are None for a layer stored losslessly. ``note`` says
    why a layer is stored otherwise than its settings ask (e.g. raw: the method's payload
    would not be smaller than the layer's own bytes).
    """

    info: TensorInfo
    plan: LayerPlan | None
    record: LayerRecord
    coded: Plan | None = None
    note: str = ""

    @property
    def lossy(self) -> bool:
        """Whether a method codes this layer (deep or another), not raw bytes."""
        return self.plan is not None or self.coded is not None

    @property
    def method(self) -> str:
        """``"raw"``, ``"deep"`` or the registered method's name."""
        return self.record.method

    @property
    def sqnr_db(self) -> float:
        """The layer's weight-space SQNR in dB (inf when stored exactly)."""
        if self.plan is not None:
            return self.plan.sqnr_db
        return self.coded.sqnr_db if self.coded is not None else math.inf

    @property
    def sumsq(self) -> float:
        p = self.plan if self.plan is not None else self.coded
        return 0.0 if p is None else p.sumsq

    @property
    def error_sse(self) -> float:
        if self.plan is not None:
            return self.plan.error_sse
        return self.coded.sse if self.coded is not None else 0.0

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
        lossy = [r for r in self.layers if r.lossy]
        signal = sum(r.sumsq for r in lossy)
        noise = sum(r.error_sse for r in lossy)
        if not lossy or signal <= 0:
            return math.nan
        return math.inf if noise <= 0 else 10.0 * math.log10(signal / noise)
