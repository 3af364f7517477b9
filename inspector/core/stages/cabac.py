"""``cabac``: context-adaptive binary arithmetic coding of signed levels (DeepCABAC-like).

Each level is binarised into a significance flag, a sign flag, "greater than k" flags for
k = 1..G and an exp-Golomb remainder; every flag and exp-Golomb prefix bin is coded with an
adaptive probability chosen by its context (the magnitudes of the two previous levels), the
exp-Golomb suffix with equiprobable (bypass) bins. The coder is an LZMA-style range coder
(32-bit range, carry propagation) with two-speed probability states. docs/format.md
("cabac stream") is the specification; :mod:`.cabac_ref` is its plain-Python twin.

A stream is empty for zero symbols, else one parameter byte (G << 4 | k, the number of
greater-than flags and the exp-Golomb order) and the range code, whose tail is the shortest
one that decodes (see ``_tail``): the decoder accepts exactly the bytes the encoder writes.

Kernels here call only kernels in this module, because numba's cache does not notice edits
to other modules.
"""

from __future__ import annotations

from typing import ClassVar

import numba
import numpy as np

from inspector.core.bitpack import as_uint8
from inspector.core.stages.registry import register_entropy

__all__ = ["MAX_LEVEL", "Cabac", "choose_params", "level_bits"]

MAX_LEVEL = 1 << 30  # largest |level| a stream holds; encode refuses beyond it
MAX_GT = 15  # G is stored in 4 bits
MAX_EGK = 15
# Every symbol codes at least one adaptive bin, and no adaptive bin keeps more than
# 32625/32768 of the range (the states' limits: 31..32737 and 255..32513), so a symbol costs
# >= 0.00629 bit and a stream of L code bytes holds at most (L + 1) * 1272 symbols: a count
# beyond that is refused before anything is decoded or allocated.
SYMBOLS_PER_BYTE = 1272

PROB_BITS = 15
_ONE = 1 << PROB_BITS
_HALF = 1 << (PROB_BITS - 1)
FAST, SLOW = 5, 8  # the two adaptation rates (windows of ~32 and ~256 bins)
_TOP = 1 << 24
_MASK32 = 0xFFFFFFFF

# Context indices. sig: 3 * min(a1, 2) + min(a2, 2) (a1, a2: |previous level|, |the one
# before|); sign: the previous level's sign (0 zero, 1 positive, 2 negative); gt k: 3 per k,
# by how many of a1, a2 exceed k; exp-Golomb prefix bin i: min(i, 31); the top two suffix
# bins of a suffix of kk <= 15 bits: 2 * kk + 0 (its top bin), 2 * kk + 1 (the next).
SIG, SIGN, GT = 0, 9, 12
EG = GT + 3 * MAX_GT
EGS = EG + 32
NCTX = EGS + 32

_JIT = {"cache": True, "nogil": True}
_INL = {"cache": True, "nogil": True, "inline": "always"}


# ------------------------------------------------------------------------------- encoder


@numba.njit(**_INL)
def _carry(out: np.ndarray | None, j: int) -> None:
    # Adds 1 to the bytes written so far (their last one is the lowest): 0xFF bytes wrap to 0.
    # It never runs past out[0]: the code's value stays below 2**32 in the first window.
    if out is not None:
        k = j - 1
        while out[k] == 0xFF:
            out[k] = 0
            k -= 1
        out[k] += 1


@numba.njit(**_INL)
def _adapt(pf: np.ndarray, ps: np.ndarray, c: int, bit: int) -> None:
    if bit:
        pf[c] -= pf[c] >> FAST
        ps[c] -= ps[c] >> SLOW
    else:
        pf[c] += (_ONE - pf[c]) >> FAST
        ps[c] += (_ONE - ps[c]) >> SLOW


@numba.njit(**_INL)
def _put(pf: np.ndarray, ps: np.ndarray, c: int, bit: int, low: int, rng: int,
         out: np.ndarray | None, j: int) -> tuple:
    # One adaptive bin: bit 0 takes the lower (rng >> 15) * p of the range, p = P(bit = 0).
    # `low` holds the 32 bits of the current window (a carry out of it goes to the bytes).
    p = (pf[c] + ps[c]) >> 1
    bound = (rng >> PROB_BITS) * p
    if bit:
        low += bound
        rng -= bound
        if low > _MASK32:
            low &= _MASK32
            _carry(out, j)
    else:
        rng = bound
    _adapt(pf, ps, c, bit)
    while rng < _TOP:
        if out is not None:
            out[j] = low >> 24
        j += 1
        low = (low & 0x00FFFFFF) << 8
        rng <<= 8
    return p, low, rng, j


@numba.njit(**_INL)
def _bits(log2: np.ndarray, p: int, bit: int) -> float:
    return log2[(_ONE - p if bit else p) >> 3]


# A level never takes more than 50 adaptive bins (of at most 7.9 bits each) and 30 bypass
# bins: 53 bytes. The encoder stops when fewer than this are left in its buffer.
_LEVEL_BYTES = 64


@numba.njit(**_JIT)
def _encode_kernel(levels: np.ndarray, ngt: int, egk: int, out: np.ndarray | None,
                   cost: np.ndarray | None, log2: np.ndarray) -> int:
    # Codes `levels` into out and returns the bytes written, or -1 if out was too small (the
    # caller counts and tries again). out=None only counts. A cost array gets the ideal bits
    # of each level under the adaptive model (-log2 p from the table `log2`, 1 per bypass
    # bin). None arguments compile to versions without that work (numba prunes `is None`).
    pf = np.full(NCTX, _HALF, dtype=np.int64)
    ps = np.full(NCTX, _HALF, dtype=np.int64)
    low, rng, j = 0, _MASK32, 0
    a1 = a2 = s1 = 0
    for i in range(levels.size):
        if out is not None and j + _LEVEL_BYTES > out.size:
            return -1
        v = np.int64(levels[i])
        a = abs(v)
        bit = 1 if a else 0
        p, low, rng, j = _put(pf, ps, SIG + 3 * min(a1, 2) + min(a2, 2), bit, low, rng, out, j)
        bits = _bits(log2, p, bit) if cost is not None else 0.0
        if a:
            bit = 1 if v < 0 else 0
            p, low, rng, j = _put(pf, ps, SIGN + s1, bit, low, rng, out, j)
            if cost is not None:
                bits += _bits(log2, p, bit)
            for k in range(1, ngt + 1):
                c = GT + 3 * (k - 1) + (1 if a1 > k else 0) + (1 if a2 > k else 0)
                bit = 1 if a > k else 0
                p, low, rng, j = _put(pf, ps, c, bit, low, rng, out, j)
                if cost is not None:
                    bits += _bits(log2, p, bit)
                if not bit:
                    break
            if a > ngt:
                # Exp-Golomb of order egk: prefix bins adaptive, then the suffix.
                r = a - ngt - 1
                kk = egk
                n = 0
                while True:
                    bit = 1 if r >= (np.int64(1) << kk) else 0
                    p, low, rng, j = _put(pf, ps, EG + min(n, 31), bit, low, rng, out, j)
                    if cost is not None:
                        bits += _bits(log2, p, bit)
                    if not bit:
                        break
                    r -= np.int64(1) << kk
                    kk += 1
                    n += 1
                for b in range(kk - 1, -1, -1):
                    bit = (r >> b) & 1
                    if kk <= 15 and b >= kk - 2:  # the top two suffix bins are adaptive
                        p, low, rng, j = _put(pf, ps, EGS + 3 * kk - 1 - b, bit, low, rng,
                                              out, j)
                        if cost is not None:
                            bits += _bits(log2, p, bit)
                        continue
                    rng >>= 1  # a bypass bin: bit 1 takes the upper half
                    if bit:
                        low += rng
                        if low > _MASK32:
                            low &= _MASK32
                            _carry(out, j)
                    while rng < _TOP:
                        if out is not None:
                            out[j] = low >> 24
                        j += 1
                        low = (low & 0x00FFFFFF) << 8
                        rng <<= 8
                    bits += 1.0
        if cost is not None:
            cost[i] = bits
        a2 = a1
        a1 = a
        s1 = 0 if v == 0 else (1 if v > 0 else 2)
    n, v = _tail(low, rng)
    if v > _MASK32:
        _carry(out, j)
    for t in range(n):
        if out is not None:
            out[j] = (v >> (24 - 8 * t)) & 0xFF
        j += 1
    return j


@numba.njit(**_INL)
def _tail(low: int, rng: int) -> tuple:
    # The value with the fewest bytes in [low, low + rng): the smallest multiple of
    # 2**(32 - 8n) >= low, for the least n in 0..4 that fits. Returns (n, value).
    for n in range(5):
        unit = np.int64(1) << (32 - 8 * n)
        v = (low + unit - 1) & ~(unit - 1)
        if v < low + rng:
            return n, v
    return 4, low  # unreachable: n = 4 always fits


# ------------------------------------------------------------------------------- decoder


@numba.njit(**_INL)
def _get(pf: np.ndarray, ps: np.ndarray, c: int, code: int, rng: int, low: int,
         buf: np.ndarray, pos: int) -> tuple:
    # Mirrors _put. `low` (mod 2**32) is tracked only to check the tail at the end; bytes
    # past the end of buf read as zeros (at most 4 of them in a valid stream).
    p = (pf[c] + ps[c]) >> 1
    bound = (rng >> PROB_BITS) * p
    if code < bound:
        rng = bound
        bit = 0
    else:
        code -= bound
        rng -= bound
        low += bound
        bit = 1
    _adapt(pf, ps, c, bit)
    while rng < _TOP:
        rng <<= 8
        code = (code << 8) | (np.int64(buf[pos]) if pos < buf.size else 0)
        low = (low << 8) & _MASK32
        pos += 1
    return bit, code, rng, low, pos


@numba.njit(**_JIT)
def _decode_kernel(buf: np.ndarray, ngt: int, egk: int, out: np.ndarray) -> tuple[int, int]:
    # Returns (0, count) or (status, i): 1 a level beyond MAX_LEVEL or an exp-Golomb prefix
    # too long at symbol i, 2 reading past the tail, 3 the tail is not the encoder's.
    pf = np.full(NCTX, _HALF, dtype=np.int64)
    ps = np.full(NCTX, _HALF, dtype=np.int64)
    code = 0
    for t in range(4):
        code = (code << 8) | (np.int64(buf[t]) if t < buf.size else 0)
    pos, rng, low = 4, _MASK32, 0
    if code >= rng:
        return 1, 0
    limit = buf.size + 4
    a1 = a2 = s1 = 0
    for i in range(out.size):
        c = SIG + 3 * min(a1, 2) + min(a2, 2)
        bit, code, rng, low, pos = _get(pf, ps, c, code, rng, low, buf, pos)
        a = 0
        neg = 0
        if bit:
            neg, code, rng, low, pos = _get(pf, ps, SIGN + s1, code, rng, low, buf, pos)
            a = 1
            for k in range(1, ngt + 1):
                c = GT + 3 * (k - 1) + (1 if a1 > k else 0) + (1 if a2 > k else 0)
                bit, code, rng, low, pos = _get(pf, ps, c, code, rng, low, buf, pos)
                if not bit:
                    break
                a = k + 1
            if a > ngt:
                kk = egk
                n = 0
                r = 0
                while True:
                    bit, code, rng, low, pos = _get(pf, ps, EG + min(n, 31), code, rng, low,
                                                    buf, pos)
                    if not bit:
                        break
                    r += np.int64(1) << kk
                    kk += 1
                    n += 1
                    if kk > 30:
                        return 1, i
                for b in range(kk - 1, -1, -1):
                    if kk <= 15 and b >= kk - 2:
                        bit, code, rng, low, pos = _get(pf, ps, EGS + 2 * kk + kk - 1 - b, code,
                                                        rng, low, buf, pos)
                        r += np.int64(bit) << b
                        continue
                    rng >>= 1
                    if code >= rng:
                        code -= rng
                        low += rng
                        r += np.int64(1) << b
                    while rng < _TOP:
                        rng <<= 8
                        code = (code << 8) | (np.int64(buf[pos]) if pos < buf.size else 0)
                        low = (low << 8) & _MASK32
                        pos += 1
                a = ngt + 1 + r
                if a > MAX_LEVEL:
                    return 1, i
        if pos > limit:
            return 2, i
        out[i] = -a if neg else a
        a2 = a1
        a1 = a
        s1 = 0 if a == 0 else (2 if neg else 1)
    n, v = _tail(low & _MASK32, rng)
    if ((low + code) & _MASK32) != (v & _MASK32) or buf.size != pos - 4 + n:
        return 3, out.size
    return 0, out.size


# ------------------------------------------------------------------------------- the stage

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
    """(G, k) for a stream: the greater-than flags and the exp-Golomb order (a heuristic;
    any values decode, the stream stores them)."""
    return 8, 0


def level_bits(levels: np.ndarray, params: tuple[int, int] | None = None) -> np.ndarray:
    """The rate model: float64 ideal bits of each level coded in this order, under the
    adaptive model (-log2 of each bin's probability, 1 per bypass bin).

    The sum is within about 0.01% + 4 bytes of ``8 * (nbytes - 1)``: the coder adds only its
    arithmetic's rounding and tail. A level's cost depends on the levels before it (its
    contexts and the adapted probabilities), so a quantizer choosing levels in order can use
    the bits of each candidate given the prefix already chosen. ``params`` defaults to
    :func:`choose_params` of ``levels``.
    """
    lv = as_levels(levels)
    cost = np.zeros(lv.size, dtype=np.float64)
    if lv.size:
        ngt, egk = params if params is not None else choose_params(lv)
        _encode_kernel(lv, ngt, egk, None, cost, _LOG2)
    return cost


def encode_with(levels: np.ndarray, ngt: int, egk: int) -> bytes:
    """The stream of non-empty int32 ``levels`` with G = ``ngt``, k = ``egk`` (0..15)."""
    if not (0 <= ngt <= MAX_GT and 0 <= egk <= MAX_EGK):
        raise ValueError(f"G and k must be in 0..15, got {ngt}, {egk}")
    out = np.empty(2 * levels.size + _LEVEL_BYTES, dtype=np.uint8)  # 16 bits a level
    n = _encode_kernel(levels, ngt, egk, out, None, _LOG2)
    if n < 0:  # more than that: count, then code into a buffer of the exact size
        out = np.empty(_encode_kernel(levels, ngt, egk, None, None, _LOG2) + _LEVEL_BYTES,
                       dtype=np.uint8)
        n = _encode_kernel(levels, ngt, egk, out, None, _LOG2)
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
        return 1 + _encode_kernel(lv, ngt, egk, None, None, _LOG2)

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
        from inspector.core.stages import cabac_ref

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
