"""numba kernels of the per-layer pipeline; their numpy twins are in ``reference.py``.

Every kernel works on a flat, contiguous weight array ``w`` (float32 or float64) and is
deterministic: the size accountant and the writer call the same kernels, so the bytes the
accountant counts are the bytes the writer writes.

A weight is pruned when ``|w| < t``, or when ``|w| == t`` and fewer than ``m`` weights of
magnitude ``t`` came before it (ties broken by position). ``m = TIES_ALL`` prunes every tie.
"""

from __future__ import annotations

import numba
import numpy as np

TIES_ALL = np.iinfo(np.int64).max

_JIT = {"cache": True, "nogil": True}


@numba.njit(inline="always", **_JIT)
def grid_bin(x: float, lo: float, inv_width: float, nbins: int) -> int:
    """The fine-histogram bin of value ``x`` (clipped to the grid)."""
    v = (x - lo) * inv_width
    # Clip before converting: int() of a value past the int64 range wraps to the lowest int64
    # (a threshold far outside a float64 layer's tiny span would land in bin 0, not the last).
    # NaN (0 * inf when the span is subnormal) goes to bin 0.
    if not v >= 0.0:
        return 0
    if v >= nbins:
        return nbins - 1
    return int(v)


@numba.njit(**_JIT)
def weight_moments(w: np.ndarray) -> tuple[int, int, float, float, float, float]:
    """Return (non-finite count, nonzero count, sum, sum of squares, min, max) in one pass."""
    nonfinite = 0
    nonzero = 0
    s1 = 0.0
    s2 = 0.0
    lo = np.inf
    hi = -np.inf
    for i in range(w.size):
        x = np.float64(w[i])
        if not np.isfinite(x):
            nonfinite += 1
            continue
        if x != 0.0:
            nonzero += 1
        s1 += x
        s2 += x * x
        lo = min(lo, x)
        hi = max(hi, x)
    return nonfinite, nonzero, s1, s2, lo, hi


@numba.njit(**_JIT)
def abs_histogram(w: np.ndarray, scale: float, counts: np.ndarray) -> None:
    """Accumulate ``counts[bin(|w|)]`` on the grid ``[0, nbins / scale)``."""
    nbins = counts.size
    for i in range(w.size):
        counts[grid_bin(abs(np.float64(w[i])), 0.0, scale, nbins)] += 1


@numba.njit(**_JIT)
def abs_in_bin(w: np.ndarray, scale: float, nbins: int, target: int, out: np.ndarray) -> int:
    """Copy the magnitudes falling in abs-histogram bin ``target`` into ``out``; return count."""
    n = 0
    for i in range(w.size):
        a = abs(np.float64(w[i]))
        if grid_bin(a, 0.0, scale, nbins) == target:
            out[n] = a
            n += 1
    return n


@numba.njit(**_JIT)
def grid_histogram(
    w: np.ndarray, lo: float, inv_width: float, cnt: np.ndarray, s1: np.ndarray, s2: np.ndarray
) -> None:
    """Accumulate count, sum and sum of squares of ``w`` per fine-grid bin."""
    nbins = cnt.size
    for i in range(w.size):
        x = np.float64(w[i])
        b = grid_bin(x, lo, inv_width, nbins)
        cnt[b] += 1
        s1[b] += x
        s2[b] += x * x


@numba.njit(**_JIT)
def candidates(w: np.ndarray, t: float, out: np.ndarray) -> int:
    """Write the positions with ``|w| >= t`` to ``out``; return their count.

    Branch-free compaction (the store always happens, the count advances on a match) runs
    ~3x faster than a branch on randomly placed survivors; ``>=`` compiles tighter than ``>``.
    """
    n = 0
    for i in range(w.size):
        out[n] = i
        n += abs(np.float64(w[i])) >= t
    return n


@numba.njit(**_JIT)
def candidate_magnitudes(w: np.ndarray, t: float, out: np.ndarray, mag: np.ndarray) -> int:
    """As ``candidates``, and also write each candidate's ``|w|`` (in w's dtype) to ``mag``.

    Both need one slot more than the matches, or ``w.size`` slots.
    """
    n = 0
    for i in range(w.size):
        a = abs(w[i])
        out[n] = i
        mag[n] = a
        n += np.float64(a) >= t
    return n


@numba.njit(**_JIT)
def at_least(idx: np.ndarray, mag: np.ndarray, n: int, t: float, out: np.ndarray) -> int:
    """Write the ``idx[:n]`` whose ``mag`` is ``>= t`` to ``out`` (in order); return their count.

    Branch-free over contiguous magnitudes: a cached candidate list of a lower floor holds
    many below ``t``, and a branch on those mispredicts (measured 2-3x slower).
    """
    c = 0
    for j in range(n):
        out[c] = idx[j]
        c += np.float64(mag[j]) >= t
    return c


@numba.njit(**_JIT)
def survivor_gaps(
    w: np.ndarray,
    idx: np.ndarray,
    n: int,
    t: float,
    m: int,
    near: float,
    lo: float,
    inv_width: float,
    nbins: int,
    edge: np.ndarray,
    cnt: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
) -> int:
    """Decide the candidates ``idx[:n]`` against mask ``(t, m)``; overwrite them with gaps.

    Candidates with ``|w| > near`` survive outright; the rare ones at or below it take the
    exact path: below ``t`` pruned, the first ``m`` ties pruned, and survivors in the
    fine-grid bins ``edge[0]``/``edge[1]`` (those of -t and t, the only bins a threshold
    splits) summed into entries 0/1 of ``cnt``, ``s1``, ``s2``. A gap is a survivor's
    position minus the previous survivor's (the first from -1). Returns the survivor count.
    """
    ties = 0
    last = -1
    ns = 0
    for j in range(n):
        i = idx[j]
        x = np.float64(w[i])
        a = abs(x)
        if a <= near:
            if a < t:
                continue
            if a == t:
                ties += 1
                if ties <= m:
                    continue
            b = grid_bin(x, lo, inv_width, nbins)
            for e in range(2):
                if b == edge[e]:
                    cnt[e] += 1
                    s1[e] += x
                    s2[e] += x * x
                    break
        idx[ns] = i - last
        last = i
        ns += 1
    return ns


@numba.njit(**_JIT)
def gap_code_counts(gaps: np.ndarray, tail: int, index_bits: int, counts: np.ndarray) -> int:
    """Histogram of the gap codes (``gap - 1``, with fillers); return the filler count.

    ``counts`` has ``2**index_bits`` zeroed entries. A gap g above ``2**b`` is stored as
    ``(g - 1) >> b`` fillers of code ``2**b - 1`` followed by code ``(g - 1) & (2**b - 1)``.
    ``tail`` (positions after the last survivor) adds ``tail >> b`` trailing fillers, so every
    stored layer ends within ``2**b`` of its last entry and a decoder can bound its size.
    """
    mask = (1 << index_bits) - 1
    fillers = tail >> index_bits
    for j in range(gaps.size):
        g = np.int64(gaps[j]) - 1
        fillers += g >> index_bits
        counts[g & mask] += 1
    counts[mask] += fillers
    return fillers


@numba.njit(**_JIT)
def entry_symbols(
    w: np.ndarray,
    gaps: np.ndarray,
    tail: int,
    lut: np.ndarray,
    cuts: np.ndarray,
    lo: float,
    inv_width: float,
    index_bits: int,
    filler: int,
    wsym: np.ndarray,
    gsym: np.ndarray,
) -> int:
    """Write the weight-index and gap-code symbol of every entry; return the entry count.

    A survivor's cluster is ``lut[bin]`` on the fine grid, or, when ``lut`` is empty, the
    number of ``cuts`` (ascending cluster minima) at or below its value.
    """
    mask = (1 << index_bits) - 1
    nbins = lut.size
    pos = -1
    e = 0
    for j in range(gaps.size):
        g = np.int64(gaps[j])
        pos += g
        g -= 1
        for _ in range(g >> index_bits):
            wsym[e] = filler
            gsym[e] = mask
            e += 1
        x = np.float64(w[pos])
        if nbins:
            wsym[e] = lut[grid_bin(x, lo, inv_width, nbins)]
        else:
            wsym[e] = np.searchsorted(cuts, x, side="right")
        gsym[e] = g & mask
        e += 1
    for _ in range(tail >> index_bits):
        wsym[e] = filler
        gsym[e] = mask
        e += 1
    return e


@numba.njit(**_JIT)
def scatter_entries(
    wsym: np.ndarray,
    gsym: np.ndarray,
    codebook: np.ndarray,
    filler: int,
    index_bits: int,
    out: np.ndarray,
) -> int:
    """Decode entries into the zeroed ``out``; return 0, or -(entry + 1) of the first bad entry.

    An entry is bad when its position runs past ``out``, its weight symbol is outside the
    codebook, or a filler carries a gap code other than ``2**b - 1``; entry count + 1 is
    reported when the entries end ``2**b`` or more before the end of ``out``.
    """
    mask = (1 << index_bits) - 1
    k = codebook.size
    pos = -1
    for e in range(wsym.size):
        pos += np.int64(gsym[e]) + 1
        if pos >= out.size:
            return -(e + 1)
        s = wsym[e]
        if s == filler:
            if gsym[e] != mask:
                return -(e + 1)
            continue
        if s >= k:
            return -(e + 1)
        out[pos] = codebook[s]
    if out.size - 1 - pos >> index_bits:
        return -(wsym.size + 1)
    return 0
