"""Plain-Python twin of :mod:`.cabac`: the specification, written for clarity, not speed.

The encoder keeps the low end of the interval as one exact (arbitrary-precision) integer,
so it needs no carry propagation and checks the numba coder's LZMA-style carry handling
independently; the decoder follows docs/format.md ("cabac stream") step by step. Both are
meant for small streams (tests): the encoder is quadratic in the stream's length.
"""

from __future__ import annotations

import numpy as np

from inspector.core.stages.cabac_kernels import (
    EG,
    EGS,
    FAST,
    GT,
    MAX_LEVEL,
    NCTX,
    PROB_BITS,
    SIG,
    SIGN,
    SLOW,
)

_ONE = 1 << PROB_BITS
_TOP = 1 << 24


class _Model:
    """The adaptive probabilities: per context two states, P(bit = 0) in 1/2**15."""

    def __init__(self) -> None:
        self.fast = [_ONE // 2] * NCTX
        self.slow = [_ONE // 2] * NCTX
        self.updates = [0] * NCTX

    def p0(self, c: int) -> int:
        return (self.fast[c] + self.slow[c]) // 2

    def update(self, c: int, bit: int) -> None:
        # Warm-up: the n-th update shifts by at most bit_length(n + 1) (n counted to 255).
        warm = (min(self.updates[c], 255) + 1).bit_length()
        rf, rs = min(FAST, warm), min(SLOW, warm)
        self.updates[c] += 1
        f, s = self.fast[c], self.slow[c]
        if bit:
            self.fast[c], self.slow[c] = f - (f >> rf), s - (s >> rs)
        else:
            self.fast[c], self.slow[c] = f + ((_ONE - f) >> rf), s + ((_ONE - s) >> rs)


def _bins(v: int, a1: int, a2: int, s1: int, ngt: int, egk: int) -> list[tuple[int, int]]:
    """The bins of level ``v`` as (context, bit); context -1 is a bypass bin."""
    a = abs(v)
    out = [(SIG + 3 * min(a1, 2) + min(a2, 2), int(a != 0))]
    if a == 0:
        return out
    out.append((SIGN + s1, int(v < 0)))
    for k in range(1, ngt + 1):
        out.append((GT + 3 * (k - 1) + int(a1 > k) + int(a2 > k), int(a > k)))
        if a <= k:
            return out
    r, k, n = a - ngt - 1, egk, 0
    while r >= 1 << k:
        out.append((EG + min(n, 31), 1))
        r, k, n = r - (1 << k), k + 1, n + 1
    out.append((EG + min(n, 31), 0))
    for b in range(k - 1, -1, -1):  # the top two suffix bins adaptive when k <= 15
        out.append((EGS + 3 * k - 1 - b if k <= 15 and b >= k - 2 else -1, (r >> b) & 1))
    return out


def _sign_ctx(v: int) -> int:
    return 0 if v == 0 else 1 if v > 0 else 2


def encode(levels: np.ndarray, ngt: int, egk: int) -> bytes:
    """The range code of ``levels`` (without the parameter byte)."""
    model = _Model()
    low, rng, shifts = 0, 0xFFFFFFFF, 0  # the interval is [low, low + rng) / 2**(8 * shifts)
    a1 = a2 = s1 = 0
    for v in (int(x) for x in levels):
        for c, bit in _bins(v, a1, a2, s1, ngt, egk):
            if c < 0:
                rng //= 2
                low += rng * bit
            else:
                bound = (rng >> PROB_BITS) * model.p0(c)
                low, rng = (low + bound, rng - bound) if bit else (low, bound)
                model.update(c, bit)
            while rng < _TOP:
                low, rng, shifts = low << 8, rng << 8, shifts + 1
        a1, a2, s1 = abs(v), a1, _sign_ctx(v)
    for n in range(5):  # the shortest tail: a multiple of 2**(32 - 8n) inside the interval
        unit = 1 << (32 - 8 * n)
        value = -(-low // unit) * unit
        if value < low + rng:
            break
    return value.to_bytes(4 + shifts, "big")[: shifts + n]


def decode(code: bytes, ngt: int, egk: int, count: int) -> np.ndarray:
    """``count`` levels from ``code`` (the range code, without the parameter byte)."""
    pos = 0

    def byte() -> int:
        nonlocal pos
        pos += 1
        return code[pos - 1] if pos <= len(code) else 0

    model = _Model()
    value = int.from_bytes(bytes(byte() for _ in range(4)), "big")
    rng, low = 0xFFFFFFFF, 0
    if value >= rng:
        raise ValueError("cabac stream is damaged: a level is out of range")

    def bin_(c: int) -> int:
        nonlocal value, rng, low
        if c < 0:
            rng //= 2
            bit = int(value >= rng)
            value, low = value - rng * bit, low + rng * bit
        else:
            bound = (rng >> PROB_BITS) * model.p0(c)
            bit = int(value >= bound)
            value, rng, low = (value - bound, rng - bound, low + bound) if bit else (
                value, bound, low)
            model.update(c, bit)
        while rng < _TOP:
            value, rng, low = (value << 8) | byte(), rng << 8, (low << 8) & 0xFFFFFFFF
        return bit

    out = []
    a1 = a2 = s1 = 0
    for _ in range(count):
        v = 0
        if bin_(SIG + 3 * min(a1, 2) + min(a2, 2)):
            neg, a = bin_(SIGN + s1), 1
            while a <= ngt and bin_(GT + 3 * (a - 1) + int(a1 > a) + int(a2 > a)):
                a += 1
            if a > ngt:
                r, k, n = 0, egk, 0
                while bin_(EG + min(n, 31)):
                    r, k, n = r + (1 << k), k + 1, n + 1
                    if k > 30:
                        raise ValueError("cabac stream is damaged: a level is out of range")
                for b in range(k - 1, -1, -1):
                    r += bin_(EGS + 3 * k - 1 - b if k <= 15 and b >= k - 2 else -1) << b
                a = ngt + 1 + r
                if a > MAX_LEVEL:
                    raise ValueError("cabac stream is damaged: a level is out of range")
            v = -a if neg else a
        if pos > len(code) + 4:
            raise ValueError("cabac stream is damaged: the code runs past its end")
        out.append(v)
        a1, a2, s1 = abs(v), a1, _sign_ctx(v)
    for n in range(5):
        unit = 1 << (32 - 8 * n)
        tail = -(-low // unit) * unit
        if tail < low + rng:
            break
    if (low + value - tail) % (1 << 32) or len(code) != pos - 4 + n:
        raise ValueError("cabac stream is damaged: its tail is not the one the encoder writes")
    return np.array(out, dtype=np.int32)
