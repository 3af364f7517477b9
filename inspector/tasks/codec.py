"""A whole model through the pipeline: exact estimates and the real file, on one code path.

``ModelCodec.plan`` is what the app calls on every slider move; ``compress`` writes the file
from the same plans, so the size shown is the size written.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.core.layer import LayerCodec
from inspector.errors import InputError, InspectorError, SettingsError
from inspector.format import container, dtypes
from inspector.format.header import Deep, LayerRecord
from inspector.format.spec import DTYPES
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.estimate import LayerEstimate, ModelEstimate
from inspector.model.settings import ModelSettings


@dataclass(frozen=True, slots=True)
class Progress:
    """``done`` of ``total`` steps finished; ``label`` names the step under way."""

    done: int
    total: int
    label: str


class ModelCodec:
    """Per-layer codecs of a loaded model, created on first use and kept for slider moves."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self._codecs: dict[str, LayerCodec] = {}

    def codec(self, name: str) -> LayerCodec:
        """The (cached) codec of tensor ``name``."""
        if name not in self._codecs:
            self._codecs[name] = LayerCodec(self.model.tensors[name])
        return self._codecs[name]

    def layer(self, info: TensorInfo, settings: ModelSettings) -> LayerEstimate:
        """The exact estimate of one tensor under ``settings``."""
        s = settings.resolve(info.name, info.kind)
        dtype = stored_dtype(info, self.model.path)
        if s.excluded:
            record = LayerRecord(info.name, dtype, info.shape, _raw_nbytes(info, dtype), 0)
            return LayerEstimate(info, None, record)
        try:
            plan = self.codec(info.name).plan(s)
        except SettingsError as exc:
            raise SettingsError(f"layer {info.name}: {exc.problem}", self.model.path) from exc
        deep = Deep(s, plan.mask, plan.survivors, plan.layout)
        record = LayerRecord(info.name, dtype, info.shape, plan.payload_nbytes, 0, deep)
        return LayerEstimate(info, plan, record)

    def estimate(
        self, settings: ModelSettings, progress: Callable[[Progress], None] | None = None
    ) -> ModelEstimate:
        """Exact sizes of every layer and of the file ``compress`` would write."""
        rows = []
        for i, info in enumerate(self.model.infos):
            if progress:
                progress(Progress(i, len(self.model.infos), info.name))
            rows.append(self.layer(info, settings))
        return summarize(rows)

    def payload(self, est: LayerEstimate) -> bytes:
        """The bytes ``est.record`` describes."""
        array = self.model.tensors[est.info.name]
        if est.plan is None:
            return dtypes.to_bytes(array, est.record.dtype)
        _, payload = self.codec(est.info.name).encode(est.plan.settings)
        return payload

    def quantized(self, name: str, settings: ModelSettings) -> np.ndarray:
        """Tensor ``name`` as the compressed file will decode it."""
        info = next(i for i in self.model.infos if i.name == name)
        s = settings.resolve(name, info.kind)
        dtype = stored_dtype(info, self.model.path)
        if s.excluded:
            array = self.model.tensors[name]
            return dtypes.from_bytes(dtypes.to_bytes(array, dtype), dtype, info.shape)
        return dtypes.cast(self.codec(name).quantized(s), dtype).reshape(info.shape)


def summarize(rows: Sequence[LayerEstimate]) -> ModelEstimate:
    """Totals of per-layer estimates, with the container's exact overhead."""
    records = [r.record for r in rows]
    return ModelEstimate(
        layers=tuple(rows),
        file_nbytes=container.file_nbytes(records),
        container_nbytes=container.container_nbytes(records),
        original_nbytes=sum(r.original_nbytes for r in rows),
    )


def compress(
    codec: ModelCodec, settings: ModelSettings, output: str | Path
) -> Generator[Progress, None, tuple[ModelEstimate, int]]:
    """Encode every layer and write ``output`` atomically; yields progress per layer.

    Returns the estimate and the size on disk. Closing the generator early writes nothing.

    Raises
    ------
    InputError
        The model holds no weights (every tensor is empty): there is nothing to compress.
    """
    infos = codec.model.infos
    if codec.model.param_count == 0:
        raise InputError("holds no weights (every tensor is empty): nothing to compress",
                         codec.model.path)  # fmt: skip
    total = 2 * len(infos) + 1
    rows, payloads = [], []
    for i, info in enumerate(infos):
        yield Progress(i, total, f"planning {info.name}")
        rows.append(codec.layer(info, settings))
    for i, est in enumerate(rows):
        yield Progress(len(infos) + i, total, f"encoding {est.info.name}")
        payload = codec.payload(est)
        payloads.append(payload)
        rows[i] = LayerEstimate(est.info, est.plan, _with_crc(est.record, payload))
    yield Progress(total - 1, total, "writing")
    estimate = summarize(rows)
    records = [r.record for r in rows]
    nbytes = container.write(output, records, payloads, protect=[codec.model.path])
    if nbytes != estimate.file_nbytes:
        raise InspectorError(
            f"internal error: wrote {nbytes} bytes but estimated {estimate.file_nbytes}", output
        )
    yield Progress(total, total, "done")
    return estimate, nbytes


def _with_crc(record: LayerRecord, payload: bytes) -> LayerRecord:
    return LayerRecord(
        record.name, record.dtype, record.shape, record.payload_nbytes,
        container.crc(payload), record.deep,
    )


def stored_dtype(info: TensorInfo, path: str | None = None) -> str:
    """The container dtype of a tensor: its own where the format has it, else float32.

    float32 holds every value of the narrower float types exactly (bfloat16, float8); a
    complex tensor it cannot hold, so that is refused rather than losing its imaginary part.

    Raises
    ------
    InputError
        A complex tensor.
    """
    if info.dtype in DTYPES:
        return info.dtype
    if info.dtype.startswith("complex"):
        raise InputError(
            f"tensor {info.name!r} is {info.dtype}: a .dcz file has no complex dtype, and "
            "storing it as float32 would drop its imaginary part",
            path,
        )
    return "float32"


def _raw_nbytes(info: TensorInfo, dtype: str) -> int:
    return info.size * DTYPES[dtype][1]
