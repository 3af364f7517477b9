"""The record shared by ``ternary`` and ``binary``: signed levels times one scale per unit.

A unit is the tensor, or (granularity "channel") one output channel: a tensor with two or
more axes has ``rows = shape[0]`` units of ``prod(shape[1:])`` weights (fc rows, conv
filters), a smaller one is one unit (:func:`.uniform_params.layout`).

Params (2 bytes): u8 the entropy stage's code; u8 flags: bit 0 one scale per channel (else
one for the tensor), bit 1 the scales are float16 (else float32), bits 2-7 zero.

Payload: the scales, little-endian, one per unit (finite, sign bit clear); then the entropy
stage's stream of one symbol per weight in C order. Symbol ``q`` of unit ``u`` decodes to
``float32(M[q] * scale_u)`` with the method's multiplier table ``M`` (ternary: -1, 0, +1 for
``q`` = -1, 0, 1; binary: -1, +1 for ``q`` = -1, 0): one float32 product, exact to define.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numba
import numpy as np

from inspector.core.bitpack import as_uint8
from inspector.core.stages.base import Option, Options
from inspector.core.stages.fitted import (
    Fit,
    FitLayer,
    cheaper_floats,
    entropy_name,
    entropy_stage,
    float_bytes,
    read_floats,
    read_symbols,
)
from inspector.core.stages.uniform_params import layout

F_CHANNEL, F_HALF = 1, 2
GRANULARITIES = ("tensor", "channel")


@numba.njit(cache=True, nogil=True)
def _decode(symbols, scales, mult, rows, rowlen, out):
    for r in range(rows):
        q, o, s = symbols[r * rowlen:(r + 1) * rowlen], out[r * rowlen:(r + 1) * rowlen], \
            scales[r]
        for j in range(q.size):
            o[j] = mult[q[j] + 1] * s


def unit_geometry(channel: bool, shape: tuple[int, ...]) -> tuple[int, int]:
    """``(units, weights per unit)``."""
    rows, rowlen = layout(shape)
    return (rows, rowlen) if channel else (1, rows * rowlen)


def decode_signs(symbols: np.ndarray, scales: np.ndarray, mult: np.ndarray,
                 geometry: tuple[int, int]) -> np.ndarray:
    out = np.empty(symbols.size, dtype=np.float32)
    if symbols.size:
        _decode(symbols, scales, mult, geometry[0], geometry[1], out)
    return out


def decode_signs_reference(symbols: np.ndarray, scales: np.ndarray, mult: np.ndarray,
                           geometry: tuple[int, int]) -> np.ndarray:
    unit = np.repeat(np.arange(geometry[0]), geometry[1])
    return (mult[symbols.astype(np.int64) + 1] * scales[unit]).astype(np.float32)


class ScaledSigns:
    """Base of :class:`~.ternary.Ternary` and :class:`~.binary.Binary`: the record, its
    check and decoders; a subclass fits the symbols and the scales' sums."""

    name: ClassVar[str]
    code: ClassVar[int]
    options: ClassVar[tuple[Option, ...]]
    mult: ClassVar[np.ndarray]  # float32 multiplier of symbol q at index q + 1
    symbols_lo: ClassVar[int]
    symbols_hi: ClassVar[int]

    def bind(self, weights: np.ndarray, shape: tuple[int, ...],
             importance: np.ndarray | None = None) -> FitLayer:
        return FitLayer(self, weights, shape, importance)

    def fit_units(self, layer: FitLayer, options: Options, geometry: tuple[int, int],
                  symbols: np.ndarray, num: np.ndarray, den: np.ndarray) -> None:
        """Fill ``symbols`` and per unit the (importance-weighted) sums of the kept |w| and
        of their weights: the least-squares scale of a unit is ``num / den``."""
        raise NotImplementedError

    def fit(self, layer: FitLayer, options: Options) -> Fit:
        channel = options["granularity"] == "channel"
        geo = unit_geometry(channel, layer.shape)
        symbols = np.zeros(layer.w.size, dtype=np.int32)
        num, den = np.zeros(geo[0]), np.zeros(geo[0])
        if layer.w.size:
            self.fit_units(layer, options, geo, symbols, num, den)
        scales = np.divide(num, den, out=np.zeros(geo[0]), where=den > 0)
        table, half, decoded = cheaper_floats(
            scales, lambda s: decode_signs(symbols, s, self.mult, geo), layer.w,
            f"{self.name}: a scale")
        flags = (F_CHANNEL if channel else 0) | (F_HALF if half else 0)
        return Fit(bytes([flags]), float_bytes(table, half), symbols, decoded)

    def _parse(self, params: bytes, shape: tuple[int, ...]) -> tuple[int, int]:
        p = bytes(params)
        if len(p) != 2:
            raise ValueError(f"{self.name} params: {len(p)} bytes, expected 2")
        entropy_stage(p[0], self.name)
        if p[1] & ~(F_CHANNEL | F_HALF):
            raise ValueError(f"{self.name} params: bad flags byte {p[1]:#04x}")
        return p[0], p[1]

    def _scales_nbytes(self, flags: int, shape: tuple[int, ...]) -> int:
        units, _ = unit_geometry(bool(flags & F_CHANNEL), shape)
        return units * (2 if flags & F_HALF else 4)

    def check(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> None:
        _, flags = self._parse(params, shape)
        need = self._scales_nbytes(flags, shape)
        if payload_nbytes < need:
            raise ValueError(f"{self.name} payload: {payload_nbytes} bytes, its scales alone "
                             f"take {need}")

    def _parts(self, params: bytes, payload: bytes | memoryview, shape: tuple[int, ...],
               reference: bool) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        data = as_uint8(payload)
        self.check(params, data.size, shape)
        code, flags = self._parse(params, shape)
        geo = unit_geometry(bool(flags & F_CHANNEL), shape)
        split = self._scales_nbytes(flags, shape)
        scales = read_floats(data, geo[0], bool(flags & F_HALF), f"{self.name} scales",
                             nonnegative=True)
        symbols = read_symbols(entropy_stage(code, self.name), data[split:],
                               geo[0] * geo[1], reference)
        if symbols.size and (int(symbols.min()) < self.symbols_lo
                             or int(symbols.max()) > self.symbols_hi):
            raise ValueError(f"{self.name} payload: a symbol outside "
                             f"{self.symbols_lo}..{self.symbols_hi}")
        return symbols, scales, geo

    def decode(self, params: bytes, payload: bytes | memoryview,
               shape: tuple[int, ...]) -> np.ndarray:
        symbols, scales, geo = self._parts(params, payload, shape, False)
        return decode_signs(symbols, scales, self.mult, geo)

    def decode_reference(self, params: bytes, payload: bytes | memoryview,
                         shape: tuple[int, ...]) -> np.ndarray:
        symbols, scales, geo = self._parts(params, payload, shape, True)
        return decode_signs_reference(symbols, scales, self.mult, geo)

    def describe(self, params: bytes) -> dict[str, Any]:
        code, flags = self._parse(params, ())
        return {"name": self.name,
                "granularity": GRANULARITIES[flags & F_CHANNEL],
                "scales": "float16" if flags & F_HALF else "float32",
                "entropy": entropy_name(code)}


def granularity_option() -> Option:
    return Option("granularity", str, "channel", "Scale per", "one scale for the tensor or "
                  "one per output channel (axis 0)", choices=GRANULARITIES)
