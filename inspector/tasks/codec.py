"""A whole model through the pipeline: exact estimates and the real file, on one code path.

``ModelCodec.plan`` is what the app calls on every slider move; ``compress`` writes the file
from the same plans, so the size shown is the size written.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from inspector.core.layer import LayerCodec
from inspector.core.settings import LayerSettings
from inspector.core.stages import registry
from inspector.core.stages.base import LayerMethod, Method
from inspector.errors import InputError, InspectorError, SettingsError
from inspector.format import container, dtypes, spec
from inspector.format.header import Coded, Deep, LayerRecord
from inspector.format.header_v2 import encode_record
from inspector.format.spec import DTYPES
from inspector.format.wire import varint
from inspector.io.dcz_file import source_metadata
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.estimate import LayerEstimate, ModelEstimate
from inspector.model.resolved import ResolvedSettings
from inspector.model.settings import ModelSettings
from inspector.tasks.method_floor import method_plan


@dataclass(frozen=True, slots=True)
class Progress:
    """``done`` of ``total`` steps finished; ``label`` names the step under way."""

    done: int
    total: int
    label: str


class ModelCodec:
    """Per-layer codecs of a loaded model, created on first use and kept for slider moves.

    Each layer's last estimate is kept with the settings it was made for: a slider move
    re-plans only the layer that changed, so an estimate of a model of many tensors costs
    little more than one of its moving layer.
    """

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        #: the source's metadata, kept in the file's metadata block (docs/format.md)
        self.metadata = source_metadata(model)
        try:
            self.metadata_nbytes = container.metadata_nbytes(self.metadata)
        except ValueError:  # too large: compress refuses it, in one line, when it writes
            self.metadata_nbytes = 0
        self._codecs: dict[str, LayerCodec] = {}
        self._bound: dict[str, tuple[Method, LayerMethod]] = {}
        self._resolved = ResolvedSettings()
        self._rows: dict[str, _Row] = {}
        self._infos: dict[str, TensorInfo] = {}

    def _info(self, name: str) -> TensorInfo:
        if len(self._infos) != len(self.model.infos):
            self._infos = {i.name: i for i in self.model.infos}
        return self._infos[name]

    def codec(self, name: str) -> LayerCodec:
        """The (cached) codec of tensor ``name``."""
        if name not in self._codecs:
            self._codecs[name] = LayerCodec(self.model.tensors[name])
        return self._codecs[name]

    def has_codec(self, name: str) -> bool:
        """Whether the codec of tensor ``name`` exists (with its caches)."""
        return name in self._codecs or name in self._bound

    def release(self, name: str) -> None:
        """Drop the codec of tensor ``name`` and its caches (made again when next needed)."""
        self._codecs.pop(name, None)
        self._bound.pop(name, None)
        self._rows.pop(name, None)

    def resolve(self, info: TensorInfo, settings: ModelSettings) -> LayerSettings:
        """``settings.resolve`` for tensor ``info``, memoised while its inputs stay the same."""
        return self._resolved.get(settings, info.name, info.kind)

    def layer(self, info: TensorInfo, settings: ModelSettings) -> LayerEstimate:
        """The exact estimate of one tensor under ``settings``."""
        return self._row(info, settings).estimate

    def _row(self, info: TensorInfo, settings: ModelSettings) -> _Row:
        s = self.resolve(info, settings)
        row = self._rows.get(info.name)
        if row is None or row.settings != s:
            row = _Row(s, self._plan_layer(info, s))
            self._rows[info.name] = row
        return row

    def _plan_layer(self, info: TensorInfo, s: LayerSettings) -> LayerEstimate:
        dtype = stored_dtype(info, self.model.path)
        # NaN, inf or integers: only lossless makes sense; an empty tensor has nothing to prune
        if s.excluded or not info.lossy_ok or info.size == 0:
            return self._raw(info, dtype, s)
        try:
            est = (self._plan_deep(info, dtype, s) if s.method == "deep"
                   else self._plan_method(info, dtype, s))
        except SettingsError as exc:
            raise SettingsError(f"layer {info.name}: {exc.problem}", self.model.path) from exc
        raw = _raw_nbytes(info, dtype)
        if est.payload_nbytes >= raw:  # a method that would not save a byte: keep the bytes
            note = (f"stored raw: {s.method} would take {est.payload_nbytes:,} bytes, "
                    f"not fewer than its {raw:,}")
            return replace(self._raw(info, dtype, replace(s, store="native")), note=note)
        return est

    def _raw(self, info: TensorInfo, dtype: str, s: LayerSettings) -> LayerEstimate:
        stored = lower_precision(self.model.tensors[info.name], dtype, s.store)
        record = LayerRecord(info.name, dtype, info.shape, _raw_nbytes(info, stored or dtype),
                             0, None, stored)
        return LayerEstimate(info, None, record)

    def _plan_deep(self, info: TensorInfo, dtype: str, s: LayerSettings) -> LayerEstimate:
        plan = self.codec(info.name).plan(s)
        # The record holds what the floor resolved to: the pruning the file really has.
        deep = Deep(plan.settings, plan.mask, plan.survivors, plan.layout)
        record = LayerRecord(info.name, dtype, info.shape, plan.payload_nbytes, 0, deep)
        return LayerEstimate(info, plan, record)

    def _plan_method(self, info: TensorInfo, dtype: str, s: LayerSettings) -> LayerEstimate:
        method, plan = method_plan(self.bound(info.name, s.method), s)
        coded = Coded(method.name, method.code, plan.params)
        record = LayerRecord(info.name, dtype, info.shape, plan.payload_nbytes, 0, coded=coded)
        return LayerEstimate(info, None, record, coded=plan)

    def bound(self, name: str, method: str) -> tuple[Method, LayerMethod]:
        """The (cached) registered ``method`` bound to tensor ``name``'s weights."""
        held = self._bound.get(name)
        if held is None or held[0].name != method:
            m = registry.method(method)
            w = np.asarray(self.model.tensors[name])
            if w.dtype not in (np.float32, np.float64):
                w = w.astype(np.float32)
            held = (m, m.bind(np.ascontiguousarray(w).reshape(-1), tuple(w.shape)))
            self._bound[name] = held
        return held

    def estimate(
        self, settings: ModelSettings, progress: Callable[[Progress], None] | None = None
    ) -> ModelEstimate:
        """Exact sizes of every layer and of the file ``compress`` would write.

        Layers to plan that are big enough for their kernels (which release the GIL) to
        dominate go to two threads, while this one plans the small ones, whose cost is Python.
        """
        infos = self.model.infos
        big = [i for i in infos if i.size >= PARALLEL_MIN_SIZE and self._stale(i, settings)]
        # Each layer's codec is used by one thread only; the dicts are filled one key each.
        jobs = {}
        if len(big) >= 2:
            jobs = {i.name: _plan_pool().submit(self._row, i, settings) for i in big}
        rows = []
        try:
            for n, info in enumerate(infos):
                if progress:
                    progress(Progress(n, len(infos), info.name))
                job = jobs.get(info.name)
                if job is not None:
                    job.result()  # its row is then in the memo
                rows.append(self._row(info, settings))
        finally:  # cancelled or failed: nothing may still run on these codecs afterwards
            for job in jobs.values():
                job.cancel()
            futures.wait(list(jobs.values()))
        prev = [None, *(r.estimate.record for r in rows)][: len(rows)]
        return _summarize([r.estimate for r in rows],
                          sum(r.header_nbytes(p) for r, p in zip(rows, prev, strict=True)),
                          self.metadata_nbytes)

    def _stale(self, info: TensorInfo, settings: ModelSettings) -> bool:
        s = self.resolve(info, settings)
        row = self._rows.get(info.name)
        return not s.excluded and (row is None or row.settings != s)

    def payload(self, est: LayerEstimate) -> bytes:
        """The bytes ``est.record`` describes."""
        array = self.model.tensors[est.info.name]
        if est.coded is not None:
            _, lm = self.bound(est.info.name, est.coded.method)
            plan, payload = lm.encode(est.coded.options)
            assert plan.params == est.coded.params, "the method planned other parameters"
            return payload
        if est.plan is None:
            return dtypes.to_bytes(array, est.record.stored_dtype)
        _, payload = self.codec(est.info.name).encode(est.plan.settings)
        return payload

    def quantized(self, name: str, settings: ModelSettings) -> np.ndarray:
        """Tensor ``name`` as the compressed file will decode it."""
        info = self._info(name)
        s = self.resolve(info, settings)
        dtype = stored_dtype(info, self.model.path)
        est = self._row(info, settings).estimate
        if not est.lossy:
            array = self.model.tensors[name]
            held = est.record.stored_dtype
            values = dtypes.from_bytes(dtypes.to_bytes(array, held), held, info.shape)
            if est.record.stored is None:
                return values
            return values.astype(dtypes.numpy_dtype(dtype))
        if est.coded is not None:
            _, lm = self.bound(name, est.coded.method)
            return dtypes.cast(lm.decoded(est.coded.options), dtype).reshape(info.shape)
        return dtypes.cast(self.codec(name).quantized(s), dtype).reshape(info.shape)


PARALLEL_MIN_SIZE = 1 << 14  # layers to plan of this many weights share two threads
_POOL: list[ThreadPoolExecutor] = []


def _plan_pool() -> ThreadPoolExecutor:
    """The two threads that plan layers (not the kernels' pool: those jobs wait on it)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(2, thread_name_prefix="inspector-plan"))
    return _POOL[0]


class _Row:
    """A layer's estimate, the settings it was made for, and its record's header bytes."""

    __slots__ = ("_header_key", "_header_nbytes", "estimate", "settings")

    def __init__(self, settings: LayerSettings, estimate: LayerEstimate) -> None:
        self.settings = settings
        self.estimate = estimate
        self._header_nbytes = -1
        self._header_key: object = None

    def header_nbytes(self, prev: LayerRecord | None) -> int:
        """The record's header bytes after ``prev`` (they depend on its name and shape)."""
        key = None if prev is None else (prev.name, prev.shape)
        if self._header_nbytes < 0 or key != self._header_key:
            self._header_nbytes = record_header_nbytes(self.estimate.record, prev)
            self._header_key = key
        return self._header_nbytes


def record_header_nbytes(record: LayerRecord, prev: LayerRecord | None = None) -> int:
    """Bytes ``record`` adds to the container header after the record ``prev`` (the header is
    a count, then records, each coded against the one before it)."""
    return len(encode_record(record, prev))


def summarize(rows: Sequence[LayerEstimate], metadata_nbytes: int = 0) -> ModelEstimate:
    """Totals of per-layer estimates, with the container's exact overhead (``metadata_nbytes``:
    its metadata block)."""
    prev = [None, *(r.record for r in rows)][: len(rows)]
    return _summarize(rows, sum(record_header_nbytes(r.record, p)
                                for r, p in zip(rows, prev, strict=True)), metadata_nbytes)


def _summarize(
    rows: Sequence[LayerEstimate], records_nbytes: int, metadata_nbytes: int = 0
) -> ModelEstimate:
    header = len(varint(len(rows))) + records_nbytes
    overhead = spec.PREFIX_NBYTES + header + spec.CRC_NBYTES + metadata_nbytes
    return ModelEstimate(
        layers=tuple(rows),
        file_nbytes=overhead + sum(r.payload_nbytes for r in rows),
        container_nbytes=overhead,
        original_nbytes=sum(r.original_nbytes for r in rows),
    )


def compress(
    codec: ModelCodec, settings: ModelSettings, output: str | Path
) -> Generator[Progress, None, tuple[ModelEstimate, int]]:
    """Encode every layer and write ``output`` atomically; yields progress per layer.

    Layers are planned and encoded one at a time, and the codecs this call creates are
    dropped as soon as their layer is encoded: memory follows the model's bytes (the weights
    and the payloads), not its count of tensors. Codecs the caller had already made stay.

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
        yield Progress(2 * i, total, f"planning {info.name}")
        kept = codec.has_codec(info.name)
        est = codec.layer(info, settings)
        yield Progress(2 * i + 1, total, f"encoding {info.name}")
        payload = codec.payload(est)
        payloads.append(payload)
        rows.append(replace(est, record=_with_crc(est.record, payload)))
        if not kept:
            codec.release(info.name)
    yield Progress(total - 1, total, "writing")
    estimate = summarize(rows, codec.metadata_nbytes)
    records = [r.record for r in rows]
    nbytes = container.write(output, records, payloads, protect=[codec.model.path],
                             metadata=codec.metadata)
    if nbytes != estimate.file_nbytes:
        raise InspectorError(
            f"internal error: wrote {nbytes} bytes but estimated {estimate.file_nbytes}", output
        )
    yield Progress(total, total, "done")
    return estimate, nbytes


def _with_crc(record: LayerRecord, payload: bytes) -> LayerRecord:
    return replace(record, crc=container.crc(payload))


def lower_precision(array: np.ndarray, dtype: str, store: str) -> str | None:
    """The dtype a raw layer is held in under the ``store`` setting (None: its own).

    Only float32 and float64 layers get lower; float16 stays native for a layer with a finite
    value past float16's range (it would become infinite).
    """
    if store == "native" or dtype not in ("float32", "float64"):
        return None
    if store == "bf16":
        return "bfloat16"
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.asarray(array)
        if np.array_equal(np.isfinite(a), np.isfinite(a.astype(np.float16))):
            return "float16"
    return None


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
