"""``cabac``: context-adaptive binary arithmetic coding of signed levels (DeepCABAC-like).

Each level is binarised into a significance flag, a sign flag, "greater than k" flags for
k = 1..G and an exp-Golomb remainder; every flag and exp-Golomb prefix bin is coded with an
adaptive probability chosen by its context (the magnitudes of the two previous levels), the
exp-Golomb suffix (but its top two bins) with equiprobable (bypass) bins. The coder is an
LZMA-style range coder (32-bit range, carry propagation) with two-speed probability states
(windows of 64 and 512 bins, averaged, warmed up faster). docs/format.md ("cabac stream") is
the specification; :mod:`.cabac_ref` is its plain-Python twin.

Rate model for quantizers: :func:`level_bits` (exact bits of each level of a stream) and
:func:`cost_table` (bits of a level given its two neighbours, under adapted probabilities).

A stream is empty for zero symbols, else one parameter byte (G << 4 | k, the number of
greater-than flags and the exp-Golomb order) and the range code, whose tail is the shortest
one that decodes (see ``_tail``): the decoder accepts exactly the bytes the encoder writes.

The kernels are in :mod:`.cabac_kernels`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from inspector.core.bitpack import as_uint8
from inspector.core.stages import cabac_ref
from inspector.core.stages.cabac_kernels import (
    _LEVEL_BYTES,
    MAX_EGK,
    MAX_GT,
    MAX_LEVEL,
    PROB_BITS,
    SYMBOLS_PER_BYTE,
    _cost_grid,
    _decode_kernel,
    _encode_kernel,
    fresh_states,
)
from inspector.core.stages.registry import register_entropy

__all__ = ["MAX_LEVEL", "Cabac", "choose_params", "cost_table", "encode_with", "level_bits"]

# -log2 of the probability p / 2**15, tabulated on p >> 3 (bin centres).
_LOG2 = -np.log2((np.arange(1 << (PROB_BITS - 3)) + 0.5) / (1 << (PROB_BITS - 3)))
_ERRORS = {
    1: "a level is out of range",
    2: "the code runs past its end",
    3: "its tail is not the one the encoder writes",
}


def as_levels(symbols: np.ndarray) -> np.ndarray:
    """``symbols`` as a flat int32 array of levels; ValueError beyond +-MAX_LEVEL."""
    raw = np.asarray(symbols).reshape(-1)
    if raw.dtype.kind not in "iu":
        raise ValueError(f"levels must be integers, got dtype {raw.dtype}")
    if raw.size and (int(raw.min()) < -MAX_LEVEL or int(raw.max()) > MAX_LEVEL):
        raise ValueError(f"cabac codes levels up to +-{MAX_LEVEL} (2**30), got "
                         f"{int(raw.min())}..{int(raw.max())}")
    return np.ascontiguousarray(raw, dtype=np.int32)


def choose_params(levels: np.ndarray) -> tuple[int, int]:
    """The writer's (G, k) for a stream: greater-than flags and exp-Golomb order.

    Always (8, 0): on the real layers of benchmarks/entropy_bench.py (int5 to int8 and
    sparser steps) the pairs tried, G in {4, 8, 15} and k in {0, 1, 2}, were within 0.6%
    of each other (the exp-Golomb prefix and top suffix bins adapt). The stream stores them,
    so a better rule later needs no format change.
    """
    return 8, 0


def _code(levels: np.ndarray, ngt: int, egk: int, out: np.ndarray | None = None,
          cost: np.ndarray | None = None) -> int:
    """Runs the coder from fresh states: bytes of the range code (-1: ``out`` too small)."""
    return _encode_kernel(levels, ngt, egk, out, cost, _LOG2, *fresh_states())


def level_bits(levels: np.ndarray, params: tuple[int, int] | None = None) -> np.ndarray:
    """The rate model, exact: float64 ideal bits of each level coded in this order under the
    adaptive model (-log2 of each bin's probability, 1 per bypass bin).

    The sum is within about 0.1% + 40 bits of ``8 * (nbytes - 1)``: the coder adds only its
    arithmetic's rounding and tail. A level's cost depends on the levels before it (its
    contexts and the adapted probabilities), so this prices a whole candidate stream; for
    choosing one level at a time see :func:`cost_table`. ``params`` (G, k) defaults to
    :func:`choose_params` of ``levels``.
    """
    lv = as_levels(levels)
    cost = np.zeros(lv.size, dtype=np.float64)
    if lv.size:
        _code(lv, *(params if params is not None else choose_params(lv)), cost=cost)
    return cost


def cost_table(levels: np.ndarray, max_abs: int,
               params: tuple[int, int] | None = None) -> np.ndarray:
    """The rate model, per decision: bits of a level given its neighbours' magnitudes.

    ``table[a1, a2, m]`` (float64, shape ``(G + 2, G + 2, max_abs + 1)``) is the cost of a
    level of magnitude ``m`` (its sign counted as 1 bit) right after levels of magnitudes
    ``a1`` (the previous one) and ``a2`` (the one before), both capped at G + 1 (beyond it
    no context differs), under the probabilities the coder has adapted to after coding
    ``levels`` (a first-pass guess of the stream, e.g. plain rounding). A rate-distortion
    quantizer walking the weights in order picks each level minimising
    ``err + lambda * table[min(a1, G + 1), min(a2, G + 1), |level|]`` and can re-run this
    on its own output to refine. ``params`` defaults to :func:`choose_params` of ``levels``.
    """
    lv = as_levels(levels)
    if not 0 <= max_abs <= 1 << 16:
        raise ValueError(f"max_abs must be in 0..65536, got {max_abs}")
    ngt, egk = params if params is not None else choose_params(lv)
    pf, ps, cnt = fresh_states()
    _encode_kernel(lv, ngt, egk, None, None, _LOG2, pf, ps, cnt)
    table = np.empty((ngt + 2, ngt + 2, max_abs + 1), dtype=np.float64)
    _cost_grid(pf, ps, ngt, egk, _LOG2, table)
    return table


def encode_with(levels: np.ndarray, ngt: int, egk: int) -> bytes:
    """The stream of ``levels`` with G = ``ngt``, k = ``egk`` (0..15 each)."""
    if not (0 <= ngt <= MAX_GT and 0 <= egk <= MAX_EGK):
        raise ValueError(f"G and k must be in 0..15, got {ngt}, {egk}")
    levels = as_levels(levels)
    if levels.size == 0:
        return b""
    out = np.empty(2 * levels.size + _LEVEL_BYTES, dtype=np.uint8)  # 16 bits a level
    n = _code(levels, ngt, egk, out)
    if n < 0:  # more than that: count, then code into a buffer of the exact size
        out = np.empty(_code(levels, ngt, egk) + _LEVEL_BYTES, dtype=np.uint8)
        n = _code(levels, ngt, egk, out)
    return bytes([ngt << 4 | egk]) + out[:n].tobytes()


class Cabac:
    """The ``cabac`` entropy stage (see the module docstring)."""

    name: ClassVar[str] = "cabac"
    code: ClassVar[int] = 3

    def nbytes(self, symbols: np.ndarray) -> int:
        lv = as_levels(symbols)
        if lv.size == 0:
            return 0
        ngt, egk = choose_params(lv)
        return 1 + _code(lv, ngt, egk)

    def encode(self, symbols: np.ndarray) -> bytes:
        lv = as_levels(symbols)
        return encode_with(lv, *choose_params(lv)) if lv.size else b""

    def decode(self, data: bytes | memoryview, count: int) -> np.ndarray:
        buf, ngt, egk = _open(data, count)
        out = np.empty(count, dtype=np.int32)
        if count:
            status, i = _decode_kernel(buf, ngt, egk, out)
            if status:
                raise ValueError(f"cabac stream is damaged: {_ERRORS[status]} (symbol {i})")
        return out

    def decode_reference(self, data: bytes | memoryview, count: int) -> np.ndarray:
        buf, ngt, egk = _open(data, count)
        return cabac_ref.decode(buf.tobytes(), ngt, egk, count)


def _open(data: bytes | memoryview, count: int) -> tuple[np.ndarray, int, int]:
    """(code bytes, G, k) of a stream said to hold ``count`` levels, checked up front."""
    buf = as_uint8(data)
    count = int(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count == 0:
        if buf.size:
            raise ValueError("cabac stream is damaged: bytes for an empty stream")
        return buf, 0, 0
    if buf.size == 0:
        raise ValueError("cabac stream is damaged: no parameter byte")
    if count > buf.size * SYMBOLS_PER_BYTE:
        raise ValueError(f"cabac stream is damaged: {buf.size} bytes cannot hold {count} levels")
    return buf[1:], int(buf[0]) >> 4, int(buf[0]) & 15


register_entropy(Cabac())
