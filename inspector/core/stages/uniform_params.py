"""The record of a ``uniform`` layer: its params bytes, and the step of each scale unit.

Params (little-endian), every field checked by :meth:`Header.parse`:

==========  =================================================================================
u8          layout: bits 0-1 granularity (0 tensor, 1 channel, 2 group), bit 2 a cell-mean
            offset table follows; bits 3-7 zero
u8          the entropy stage's code (the level stream's coder)
f32         ``base``: the smallest step, finite and normal, > 0
u8          (channel, group) ``exp_width``: bits per step exponent in the payload, 0..12
uvarint     (group) ``G``: consecutive weights of a row that share a step, 1..row length
u8 + K i8   (cell-mean) K, 1..31, then the offsets ``d_1..d_K`` in 1/128 of a step
==========  =================================================================================

Scale units: a tensor with two or more axes has ``rows = shape[0]`` (fc rows, conv filters)
of ``rowlen = prod(shape[1:])`` weights; a smaller one is one row. "tensor" is one unit,
"channel" one per row, "group" ``ceil(rowlen / G)`` per row. Unit ``u`` has exponent
``e_u = 16 * o + m`` (``0 <= m < 16``) and step ``float32(base * (16 + m) * 2**(o - 4))``:
rational factors only, so every machine computes the same float32 (no libm in the format).

Payload: the exponents (units > 1 only), ``exp_width`` bits each, MSB-first, zero-padded to a
byte; then the entropy stage's stream of the levels. Level ``q`` decodes to
``float32(t * step / 128)`` with ``t = sign(q) * (128 * |q| + d_|q|)`` (``d`` = 0 past K or
without a table): the product is exact in float64, so the one rounding is the float32 cast.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from inspector.core.bitpack import read_uvarint, uvarint

TENSOR, CHANNEL, GROUP = 0, 1, 2
GRANULARITIES = ("tensor", "channel", "group")
F_CELL_MEAN = 4
LEVEL_MAX = (1 << 20) - 1  # |level| bound: 128 * level * step stays exact in float64
MAX_TABLE = 31
OFFSET_LO, OFFSET_HI = -64, 63
EXP_WIDTH_MAX = 12
MAX_GROUP = 1 << 24
_F32_TINY = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True, slots=True)
class Header:
    """The decoded params of one layer."""

    granularity: int
    entropy_code: int
    base: float
    exp_width: int = 0
    group: int = 0
    offsets: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        flags = self.granularity | (F_CELL_MEAN if self.offsets else 0)
        out = [bytes([flags, self.entropy_code]), struct.pack("<f", self.base)]
        if self.granularity != TENSOR:
            out.append(bytes([self.exp_width]))
        if self.granularity == GROUP:
            out.append(uvarint(self.group))
        if self.offsets:
            out.append(bytes([len(self.offsets)]) + struct.pack(f"<{len(self.offsets)}b",
                                                                  *self.offsets))
        return b"".join(out)

    @classmethod
    def parse(cls, params: bytes, shape: tuple[int, ...]) -> Header:
        """The header in ``params``; ValueError naming the first bad field."""
        p = bytes(params)
        if len(p) < 6:
            raise ValueError(f"uniform params: {len(p)} bytes, need at least 6")
        flags, code = p[0], p[1]
        gran = flags & 3
        if gran > GROUP or flags & ~(3 | F_CELL_MEAN):
            raise ValueError(f"uniform params: bad layout byte {flags:#04x}")
        (base,) = struct.unpack_from("<f", p, 2)
        if not (math.isfinite(base) and base >= _F32_TINY):
            raise ValueError(f"uniform params: base step {base!r} is not a positive normal")
        pos, width, group = 6, 0, 0
        if gran != TENSOR:
            if pos >= len(p) or p[pos] > EXP_WIDTH_MAX:
                raise ValueError("uniform params: exponent width missing or > 12")
            width, pos = p[pos], pos + 1
        if gran == GROUP:
            try:
                group, pos = read_uvarint(p, pos, MAX_GROUP)
            except ValueError as exc:
                raise ValueError(f"uniform params: group size: {exc}") from None
            if not 1 <= group <= max(1, layout(shape)[1]):
                raise ValueError(f"uniform params: group size {group} outside 1..row length")
        offsets: tuple[int, ...] = ()
        if flags & F_CELL_MEAN:
            k = p[pos] if pos < len(p) else 0
            if not 1 <= k <= MAX_TABLE or pos + 1 + k > len(p):
                raise ValueError("uniform params: cell-mean table size missing or not 1..31")
            offsets = struct.unpack_from(f"<{k}b", p, pos + 1)
            if min(offsets) < OFFSET_LO:
                raise ValueError(f"uniform params: cell-mean offset below {OFFSET_LO}")
            pos += 1 + k
        if pos != len(p):
            raise ValueError(f"uniform params: {len(p) - pos} trailing bytes")
        return cls(gran, code, base, width, group, offsets)


def layout(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(rows, rowlen)`` of a tensor (Python ints: a hostile shape cannot overflow)."""
    n = math.prod(int(d) for d in shape)
    if len(shape) >= 2:
        rows = int(shape[0])
        return rows, (n // rows if rows else math.prod(int(d) for d in shape[1:]))
    return 1, n


def units_geometry(gran: int, shape: tuple[int, ...], group: int) -> tuple[int, int, int, int]:
    """``(rows, rowlen, G, groups per row)``: weight ``r * rowlen + j`` is in unit
    ``r * gpr + j // G`` (tensor: one row of one group)."""
    rows, rowlen = layout(shape)
    if gran == TENSOR:
        n = rows * rowlen
        return 1, n, max(n, 1), 1
    if gran == CHANNEL:
        return rows, rowlen, max(rowlen, 1), 1
    return rows, rowlen, group, -(-rowlen // group) if rowlen else 0


def unit_count(gran: int, shape: tuple[int, ...], group: int) -> int:
    rows, _, _, gpr = units_geometry(gran, shape, group)
    return rows * gpr


def unit_of_each(geometry: tuple[int, int, int, int]) -> np.ndarray:
    """The unit of every weight (int64, flat): the plain form of :func:`units_geometry`."""
    rows, rowlen, g, gpr = geometry
    r = np.repeat(np.arange(rows, dtype=np.int64), rowlen)
    j = np.tile(np.arange(rowlen, dtype=np.int64), rows)
    return r * gpr + j // g


def steps_of(base: float, exps: np.ndarray) -> np.ndarray:
    """The float32 step of each exponent (see the module docstring); ValueError if one
    overflows float32."""
    e = np.asarray(exps, dtype=np.int64)
    o, m = np.divmod(e, 16)
    with np.errstate(over="ignore"):
        s = np.ldexp(np.float64(np.float32(base)) * (16 + m), (o - 4).astype(np.int32))
        s = s.astype(np.float32)
    if not np.all(np.isfinite(s)):
        raise ValueError("uniform payload: a step exponent overflows float32")
    return s


def exponents_for(base: float, wanted: np.ndarray) -> np.ndarray:
    """The smallest exponent of each ``wanted`` step whose step is at least it (int64)."""
    w = np.maximum(np.asarray(wanted, dtype=np.float64), float(np.float32(base)))
    r = w / float(np.float32(base))
    o = np.floor(np.log2(r)).astype(np.int64)
    m = np.ceil((r / np.exp2(o.astype(np.float64)) - 1.0) * 16.0).astype(np.int64)
    e = np.maximum(16 * o + np.clip(m, 0, 16) - 2, 0)  # start low, then step up exactly
    for _ in range(8):
        low = steps_of(base, e).astype(np.float64) < w
        if not low.any():
            return e
        e = e + low
    raise AssertionError("exponent search did not converge")
