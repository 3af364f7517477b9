"""``deep``: Deep Compression (prune, k-means sharing, Huffman) as a registered method.

An adapter over :class:`~inspector.core.layer.LayerCodec`, so code can treat every method
alike. Its record parameters are the version-2 deep record (:mod:`.deep_record`), byte for
byte the record the container has always written for method byte 1 (which, unlike the
records of codes >= 16, carries no length prefix). Its settings are still the deep fields of
:class:`~inspector.core.settings.LayerSettings` (policy, value, bits, ...), not declared
options: :meth:`DeepMethod.bind` takes them; moving them into ``options`` is later work.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from inspector.core.stages.base import Option, Options, Plan
from inspector.core.stages.registry import register_method
from inspector.core.wire import Reader

# The codec, the decoder and the record load numba: they are imported where used, so
# reading the registry (the CLI's flags, the settings file) stays cheap.
if TYPE_CHECKING:
    from inspector.core.layer import LayerCodec, LayerPlan
    from inspector.core.settings import LayerSettings
    from inspector.core.stages.deep_record import Deep


def record_of(plan: LayerPlan) -> Deep:
    """The record of a deep plan: what the floor resolved to, the pruning the file has."""
    from inspector.core.stages.deep_record import Deep

    return Deep(plan.settings, plan.mask, plan.survivors, plan.layout)


class DeepLayer:
    """One layer under Deep Compression with fixed deep settings (the codec's caches)."""

    def __init__(self, codec: LayerCodec, settings: LayerSettings) -> None:
        self.codec = codec
        self.settings = settings

    def _plan(self, lp: LayerPlan) -> Plan:
        from inspector.core.stages.deep_record import encode_deep

        return Plan("deep", Options(), encode_deep(record_of(lp)), lp.payload_nbytes,
                    lp.error_sse, lp.sumsq, lp.size - lp.survivors, lp)

    def plan(self, options: Options) -> Plan:
        return self._plan(self.codec.plan(self.settings))

    def encode(self, options: Options) -> tuple[Plan, bytes]:
        lp, payload = self.codec.encode(self.settings)
        return self._plan(lp), payload

    def decoded(self, options: Options) -> np.ndarray:
        return self.codec.quantized(self.settings).reshape(-1)


class DeepMethod:
    """Deep Compression; see the module docstring."""

    name: ClassVar[str] = "deep"
    code: ClassVar[int] = 1
    options: ClassVar[tuple[Option, ...]] = ()

    def bind(self, weights: np.ndarray, shape: tuple[int, ...],
             importance: np.ndarray | None = None,
             settings: LayerSettings | None = None) -> DeepLayer:
        """The layer under ``settings`` (the deep fields; default ``LayerSettings()``)."""
        from inspector.core.layer import LayerCodec
        from inspector.core.settings import LayerSettings

        codec = LayerCodec(np.asarray(weights).reshape(shape))
        return DeepLayer(codec, settings or LayerSettings())

    def _record(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> Deep:
        from inspector.core.stages.deep_record import decode_deep

        r = Reader(params)
        size = int(np.prod(shape, dtype=np.int64))
        deep = decode_deep(r, "deep", size, payload_nbytes)
        if r.remaining:
            raise ValueError(f"its record has {r.remaining} unexpected trailing bytes")
        return deep

    def check(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> None:
        self._record(params, payload_nbytes, shape)

    def decode(self, params: bytes, payload: bytes | memoryview,
               shape: tuple[int, ...]) -> np.ndarray:
        from inspector.core.decode import decode_payload

        return decode_payload(payload, self._record(params, len(payload), shape).layout)

    def decode_reference(self, params: bytes, payload: bytes | memoryview,
                         shape: tuple[int, ...]) -> np.ndarray:
        """Kept positions as plain numpy (cumulative gaps or the position code), then each
        one's centroid; the streams are read by the same stream decoder."""
        from inspector.core.decode import decode_kept

        lay = self._record(params, len(payload), shape).layout
        codebook, kept, wsym = decode_kept(payload, lay)
        out = np.zeros(lay.size, dtype=np.float32)
        out[kept] = codebook[wsym]
        return out

    def describe(self, params: bytes) -> dict[str, Any]:
        from inspector.core.positions import NAMES
        from inspector.core.stages.deep_record import decode_deep

        r = Reader(params)
        deep = decode_deep(r, "deep", 0, 0, check=False)  # checked when it was read
        lay = deep.layout
        return {
            "name": "deep", "settings": {k: v for k, v in deep.settings.to_json().items()
                                         if k not in ("method", "raise_bits", "min_sqnr")},
            "threshold": deep.mask.threshold if math.isfinite(deep.mask.threshold) else None,
            "survivors": deep.survivors,
            "clusters": lay.codebook_size, "positions": NAMES[lay.positions],
            "codebook_dtype": "float16" if lay.codebook_half else "float32",
        }


DEEP = register_method(DeepMethod())
