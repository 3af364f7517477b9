"""``fp16`` and ``bf16``: each weight rounded to 16-bit float storage, 2 bytes a value.

Payload: the layer's elements in C order as little-endian float16 (IEEE half) or bfloat16
(the upper 16 bits of the float32 pattern), rounded to nearest, ties to even. A finite weight
past the format's largest finite value saturates to it (float16: 65504) instead of becoming
infinite. The record's parameters are empty. Neither method has a numeric option to trade
size for fidelity, so a fidelity floor (``min_sqnr``) does not apply to them: the size is
always 2 bytes a value and the SQNR is what rounding gives (float16 about 70-75 dB on
typical weights, bfloat16 about 50 dB).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from inspector.core.floats import bfloat16_bits, bfloat16_values
from inspector.core.stages.base import Option, Options, Plan
from inspector.core.stages.registry import register_method

_F16_MAX = 65504.0
_BF16_MAX_BITS = 0x7F7F  # the largest finite bfloat16


def to_float16_bits(w: np.ndarray) -> np.ndarray:
    """The float16 nearest each (finite) weight, saturated to +-65504, as 16-bit patterns."""
    with np.errstate(over="ignore"):
        half = np.clip(np.asarray(w), -_F16_MAX, _F16_MAX).astype("<f2")
    return half.view("<u2")


def to_bfloat16_bits(w: np.ndarray) -> np.ndarray:
    """The bfloat16 nearest each (finite) weight, saturated to the largest finite one."""
    bits = bfloat16_bits(w)
    inf = (bits & 0x7FFF) == 0x7F80
    if inf.any():
        bits[inf] = (bits[inf] & 0x8000) | _BF16_MAX_BITS
    return bits


def reference_values(bits: np.ndarray, exponent_bits: int, mantissa_bits: int) -> np.ndarray:
    """The twin: float values of 16-bit patterns by the definition of the format
    (sign, biased exponent, mantissa; exponent 0 subnormal; all ones inf or NaN), in float64
    arithmetic (exact for these formats), then float32."""
    b = np.asarray(bits, dtype=np.int64)
    sign = np.where(b >> 15, -1.0, 1.0)
    e = (b >> mantissa_bits) & ((1 << exponent_bits) - 1)
    m = (b & ((1 << mantissa_bits) - 1)).astype(np.float64)
    bias = (1 << (exponent_bits - 1)) - 1
    scale = float(1 << mantissa_bits)
    normal = np.ldexp(1.0 + m / scale, (e - bias).astype(np.int32))
    subnormal = np.ldexp(m / scale, 1 - bias)
    out = np.where(e == 0, subnormal, normal)
    top = e == (1 << exponent_bits) - 1
    out = np.where(top, np.where(m == 0, np.inf, np.nan), out)
    return (sign * out).astype(np.float32)


class _Precision:
    """A 16-bit float storage method (the two differ only in the rounding and widening)."""

    name: ClassVar[str]
    code: ClassVar[int]
    options: ClassVar[tuple[Option, ...]] = ()
    _layout: ClassVar[tuple[int, int]]  # exponent bits, mantissa bits

    def round_bits(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def widen(self, bits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def bind(self, weights: np.ndarray, shape: tuple[int, ...],
             importance: np.ndarray | None = None) -> _PrecisionLayer:
        return _PrecisionLayer(self, np.asarray(weights).reshape(-1), tuple(shape))

    def check(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> None:
        if params:
            raise ValueError(f"its record has {len(params)} parameter bytes, {self.name} none")
        size = int(np.prod(shape, dtype=np.int64))
        if payload_nbytes != 2 * size:
            raise ValueError(f"its payload is {payload_nbytes:,} bytes, {2 * size:,} expected")

    def _bits(self, params: bytes, payload: bytes | memoryview,
              shape: tuple[int, ...]) -> np.ndarray:
        self.check(params, len(payload), shape)
        return np.frombuffer(payload, dtype="<u2")

    def decode(self, params: bytes, payload: bytes | memoryview,
               shape: tuple[int, ...]) -> np.ndarray:
        return self.widen(self._bits(params, payload, shape))

    def decode_reference(self, params: bytes, payload: bytes | memoryview,
                         shape: tuple[int, ...]) -> np.ndarray:
        return reference_values(self._bits(params, payload, shape), *self._layout)

    def describe(self, params: bytes) -> dict[str, Any]:
        return {"name": self.name, "bytes_per_value": 2, "fidelity_floor": "does not apply"}


class _PrecisionLayer:
    def __init__(self, method: _Precision, weights: np.ndarray, shape: tuple[int, ...]) -> None:
        self.method, self.weights, self.shape = method, weights, shape
        self._bits: np.ndarray | None = None
        self._plan: Plan | None = None

    def bits(self) -> np.ndarray:
        if self._bits is None:
            self._bits = self.method.round_bits(self.weights)
        return self._bits

    def decoded(self, options: Options) -> np.ndarray:
        return self.method.widen(self.bits())

    def plan(self, options: Options) -> Plan:
        if self._plan is None:
            w = self.weights.astype(np.float64)
            err = w - self.decoded(options).astype(np.float64)
            zeros = int(np.count_nonzero((self.bits() & 0x7FFF) == 0))
            self._plan = Plan(self.method.name, Options(), b"", 2 * w.size,
                              float(np.dot(err, err)), float(np.dot(w, w)), zeros)
        return self._plan

    def encode(self, options: Options) -> tuple[Plan, bytes]:
        return self.plan(options), self.bits().astype("<u2").tobytes()


class Float16(_Precision):
    name: ClassVar[str] = "fp16"
    code: ClassVar[int] = 20
    _layout = (5, 10)

    def round_bits(self, w: np.ndarray) -> np.ndarray:
        return to_float16_bits(w)

    def widen(self, bits: np.ndarray) -> np.ndarray:
        return np.asarray(bits, dtype="<u2").view("<f2").astype(np.float32)


class BFloat16(_Precision):
    name: ClassVar[str] = "bf16"
    code: ClassVar[int] = 21
    _layout = (8, 7)

    def round_bits(self, w: np.ndarray) -> np.ndarray:
        return to_bfloat16_bits(w)

    def widen(self, bits: np.ndarray) -> np.ndarray:
        return bfloat16_values(bits)


FP16 = register_method(Float16())
BF16 = register_method(BFloat16())
