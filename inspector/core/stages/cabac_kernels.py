"""The numba kernels of :mod:`.cabac` (its format constants live here too).

Kernels here call only kernels in this module, because numba's cache does not notice edits
to other modules.
"""

from __future__ import annotations

import numba
import numpy as np

MAX_LEVEL = 1 << 30  # largest |level| a stream holds; encode refuses beyond it
MAX_GT = 15  # G is stored in 4 bits
MAX_EGK = 15
# Every symbol codes at least one adaptive bin, and no adaptive bin keeps more than
# 32606/32768 of the range: the fast state stays in 63..32705 and the slow one in 261..32507
# (their limits along all-ones and all-zeros bins, the extremes since an update is monotone),
# so p = P(0) is in 162..32606 and a bin costs >= 0.00713 bit. A stream of L code bytes thus
# holds at most (L + 1) * 1122 symbols: a count beyond that is refused before anything is
# decoded or allocated (tests/core/stages/test_cabac.py re-derives the limits).
SYMBOLS_PER_BYTE = 1122

PROB_BITS = 15
_ONE = 1 << PROB_BITS
_HALF = 1 << (PROB_BITS - 1)
FAST, SLOW = 6, 9  # the two adaptation rates (windows of ~64 and ~512 bins)
# Warm-up: a context's n-th update (from 0) shifts by min(rate, _RATE[min(n, 255)]), so its
# first bins move it about as fast as a running mean would.
_RATE = np.array([min(SLOW, (n + 1).bit_length()) for n in range(256)], dtype=np.int64)
_TOP = 1 << 24
_MASK32 = 0xFFFFFFFF

# Context indices. sig: 3 * min(a1, 2) + min(a2, 2) (a1, a2: |previous level|, |the one
# before|); sign: the previous level's sign (0 zero, 1 positive, 2 negative); gt k: 3 per k,
# by how many of a1, a2 exceed k; exp-Golomb prefix bin i: min(i, 31); the top two suffix
# bins of a suffix of kk <= 15 bits: EGS + 2 * kk (its top bin), EGS + 2 * kk + 1 (the next).
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
def _adapt(pf: np.ndarray, ps: np.ndarray, cnt: np.ndarray, c: int, bit: int) -> None:
    n = cnt[c]
    r = _RATE[n]
    f = min(FAST, r)
    sl = min(SLOW, r)
    cnt[c] = min(n + 1, 255)
    if bit:
        pf[c] -= pf[c] >> f
        ps[c] -= ps[c] >> sl
    else:
        pf[c] += (_ONE - pf[c]) >> f
        ps[c] += (_ONE - ps[c]) >> sl


@numba.njit(**_INL)
def _put(pf: np.ndarray, ps: np.ndarray, cnt: np.ndarray, c: int, bit: int, low: int,
         rng: int, out: np.ndarray | None, j: int) -> tuple:
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
    _adapt(pf, ps, cnt, c, bit)
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


# A level never takes more than 50 adaptive bins (of at most -log2(162/32768) = 7.7 bits each)
# and 30 bypass bins: 413 bits, at most 53 bytes shifted out. The encoder stops when fewer
# than this are left in its buffer.
_LEVEL_BYTES = 64


@numba.njit(**_JIT)
def _encode_kernel(levels: np.ndarray, ngt: int, egk: int, out: np.ndarray | None,
                   cost: np.ndarray | None, log2: np.ndarray, pf: np.ndarray,
                   ps: np.ndarray, cnt: np.ndarray) -> int:
    # Codes `levels` into out and returns the bytes written, or -1 if out was too small (the
    # caller counts and tries again). out=None only counts. A cost array gets the ideal bits
    # of each level under the adaptive model (-log2 p from the table `log2`, 1 per bypass
    # bin). None arguments compile to versions without that work (numba prunes `is None`).
    # pf, ps, cnt: the probability states (fast, slow) and update counts, adapted in place
    # (from fresh_states()).
    low, rng, j = 0, _MASK32, 0
    a1 = a2 = s1 = 0
    for i in range(levels.size):
        if out is not None and j + _LEVEL_BYTES > out.size:
            return -1
        v = np.int64(levels[i])
        a = abs(v)
        bit = 1 if a else 0
        p, low, rng, j = _put(pf, ps, cnt, SIG + 3 * min(a1, 2) + min(a2, 2), bit, low, rng, out, j)
        bits = _bits(log2, p, bit) if cost is not None else 0.0
        if a:
            bit = 1 if v < 0 else 0
            p, low, rng, j = _put(pf, ps, cnt, SIGN + s1, bit, low, rng, out, j)
            if cost is not None:
                bits += _bits(log2, p, bit)
            for k in range(1, ngt + 1):
                c = GT + 3 * (k - 1) + (1 if a1 > k else 0) + (1 if a2 > k else 0)
                bit = 1 if a > k else 0
                p, low, rng, j = _put(pf, ps, cnt, c, bit, low, rng, out, j)
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
                    p, low, rng, j = _put(pf, ps, cnt, EG + min(n, 31), bit, low, rng, out, j)
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
                        p, low, rng, j = _put(pf, ps, cnt, EGS + 3 * kk - 1 - b, bit, low, rng,
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
def _get(pf: np.ndarray, ps: np.ndarray, cnt: np.ndarray, c: int, code: int, rng: int,
         low: int, buf: np.ndarray, pos: int) -> tuple:
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
    _adapt(pf, ps, cnt, c, bit)
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
    cnt = np.zeros(NCTX, dtype=np.int64)
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
        bit, code, rng, low, pos = _get(pf, ps, cnt, c, code, rng, low, buf, pos)
        a = 0
        neg = 0
        if bit:
            neg, code, rng, low, pos = _get(pf, ps, cnt, SIGN + s1, code, rng, low, buf, pos)
            a = 1
            for k in range(1, ngt + 1):
                c = GT + 3 * (k - 1) + (1 if a1 > k else 0) + (1 if a2 > k else 0)
                bit, code, rng, low, pos = _get(pf, ps, cnt, c, code, rng, low, buf, pos)
                if not bit:
                    break
                a = k + 1
            if a > ngt:
                kk = egk
                n = 0
                r = 0
                while True:
                    bit, code, rng, low, pos = _get(pf, ps, cnt, EG + min(n, 31), code, rng, low,
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
                        bit, code, rng, low, pos = _get(pf, ps, cnt, EGS + 3 * kk - 1 - b,
                                                        code, rng, low, buf, pos)
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




def fresh_states() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The states every stream starts from: P(0) = 1/2 in every context, no updates yet."""
    return (np.full(NCTX, _HALF, dtype=np.int64), np.full(NCTX, _HALF, dtype=np.int64),
            np.zeros(NCTX, dtype=np.int64))


@numba.njit(**_JIT)
def _cost_grid(pf: np.ndarray, ps: np.ndarray, ngt: int, egk: int, log2: np.ndarray,
               table: np.ndarray) -> None:
    # table[a1, a2, m]: bits of a level of magnitude m (sign: 1 bit) after levels of
    # magnitudes a1, a2 (capped at G + 1: no context looks further), under the frozen states.
    amax = table.shape[2] - 1
    for a1 in range(table.shape[0]):
        for a2 in range(table.shape[1]):
            for m in range(amax + 1):
                c = SIG + 3 * min(a1, 2) + min(a2, 2)
                p = (pf[c] + ps[c]) >> 1
                bits = _bits(log2, p, 1 if m else 0)
                if m:
                    bits += 1.0
                    for k in range(1, ngt + 1):
                        c = GT + 3 * (k - 1) + (1 if a1 > k else 0) + (1 if a2 > k else 0)
                        bits += _bits(log2, (pf[c] + ps[c]) >> 1, 1 if m > k else 0)
                        if m <= k:
                            break
                    if m > ngt:
                        r = m - ngt - 1
                        kk = egk
                        n = 0
                        while True:
                            bit = 1 if r >= (np.int64(1) << kk) else 0
                            c = EG + min(n, 31)
                            bits += _bits(log2, (pf[c] + ps[c]) >> 1, bit)
                            if not bit:
                                break
                            r -= np.int64(1) << kk
                            kk += 1
                            n += 1
                        for b in range(kk - 1, -1, -1):
                            if kk <= 15 and b >= kk - 2:
                                c = EGS + 3 * kk - 1 - b
                                bits += _bits(log2, (pf[c] + ps[c]) >> 1, (r >> b) & 1)
                            else:
                                bits += 1.0
                table[a1, a2, m] = bits
