"""Plain-numpy twins of the numba kernels in ``kernels.py`` and ``cluster.py``.

Each twin states what its kernel computes in the most direct way (vectorised numpy, or a plain
loop where order matters), returns its results instead of filling buffers, and is meant for the
tests only: slow is fine, obviously correct is the point.
"""

from __future__ import annotations

import itertools

import numpy as np


def _seq_sum(x: np.ndarray) -> float:
    """Left-to-right float64 sum (the kernels' order, so results agree to the last bit)."""
    return float(sum(np.asarray(x, dtype=np.float64).tolist(), 0.0))


def grid_bin_ref(x: np.ndarray, lo: float, inv_width: float, nbins: int) -> np.ndarray:
    """Fine-grid bins of the values ``x``: ``trunc((x - lo) * inv_width)`` clipped to the grid.

    NaN (``0 * inf`` when the grid's width underflows) goes to bin 0.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        b = np.trunc((np.asarray(x, dtype=np.float64) - lo) * inv_width)
    return np.clip(np.nan_to_num(b, nan=0.0), 0, nbins - 1).astype(np.int64)


def weight_moments_ref(w: np.ndarray) -> tuple[int, int, float, float, float, float]:
    """(non-finite count, nonzero count, sum, sum of squares, min, max) of the finite weights.

    Sums run left to right in float64.
    Min and max are ``inf``/``-inf`` when no weight is finite.
    """
    x = np.asarray(w, dtype=np.float64).reshape(-1)
    finite = x[np.isfinite(x)]
    return (
        int(x.size - finite.size),
        int(np.count_nonzero(finite)),
        _seq_sum(finite),
        _seq_sum(finite * finite),
        float(finite.min()) if finite.size else np.inf,
        float(finite.max()) if finite.size else -np.inf,
    )


def abs_histogram_ref(w: np.ndarray, scale: float, nbins: int) -> np.ndarray:
    """int64 counts of ``|w|`` on the grid of ``nbins`` bins of width ``1 / scale`` from 0."""
    bins = grid_bin_ref(np.abs(np.asarray(w, dtype=np.float64)), 0.0, scale, nbins)
    return np.bincount(bins, minlength=nbins).astype(np.int64)


def abs_in_bin_ref(w: np.ndarray, scale: float, nbins: int, target: int) -> np.ndarray:
    """The magnitudes (float64, in position order) that fall in abs-histogram bin ``target``."""
    a = np.abs(np.asarray(w, dtype=np.float64))
    return a[grid_bin_ref(a, 0.0, scale, nbins) == target]


def grid_histogram_ref(
    w: np.ndarray, lo: float, inv_width: float, nbins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count (int64), sum and sum of squares (float64) of ``w`` per fine-grid bin."""
    x = np.asarray(w, dtype=np.float64)
    b = grid_bin_ref(x, lo, inv_width, nbins)
    cnt = np.bincount(b, minlength=nbins).astype(np.int64)
    s1 = np.bincount(b, weights=x, minlength=nbins)
    s2 = np.bincount(b, weights=x * x, minlength=nbins)
    return cnt, s1, s2


def candidates_ref(w: np.ndarray, t: float) -> np.ndarray:
    """Positions (int64, ascending) with ``|w| >= t``."""
    return np.flatnonzero(np.abs(np.asarray(w, dtype=np.float64)) >= t)


def candidate_magnitudes_ref(w: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (int64, ascending) with ``|w| >= t``, and their ``|w|`` in w's dtype."""
    w = np.asarray(w)
    idx = candidates_ref(w, t)
    return idx, np.abs(w[idx])


def at_least_ref(idx: np.ndarray, mag: np.ndarray, t: float) -> np.ndarray:
    """The ``idx`` whose ``mag`` is ``>= t``, in order."""
    return np.asarray(idx)[np.asarray(mag, dtype=np.float64) >= t]


def survivor_gaps_ref(
    w: np.ndarray,
    idx: np.ndarray,
    t: float,
    m: int,
    near: float,
    lo: float,
    inv_width: float,
    nbins: int,
    edge: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaps of the survivors among candidate positions ``idx``, and their edge-bin sums.

    A candidate with ``|w| <= near`` is pruned when ``|w| < t``, or when ``|w| == t`` and it is
    one of the first ``m`` such candidates; every other candidate survives. The surviving
    candidates at or below ``near`` whose bin is ``edge[0]`` (else ``edge[1]``) are summed into
    entry 0 (else 1) of count, sum and sum of squares.

    Returns
    -------
    gaps, cnt, s1, s2
        int64 gaps (first from -1) and the two-entry edge sums.
    """
    idx = np.asarray(idx, dtype=np.int64)
    x = np.asarray(w, dtype=np.float64)[idx]
    a = np.abs(x)
    exact = a <= near
    tie = exact & (a == t)
    tie_rank = np.cumsum(tie)
    pruned = exact & ((a < t) | (tie & (tie_rank <= m)))
    keep = ~pruned
    gaps = np.diff(idx[keep], prepend=-1)
    cnt, s1, s2 = np.zeros(2, np.int64), np.zeros(2), np.zeros(2)
    sel = keep & exact
    bins = grid_bin_ref(x[sel], lo, inv_width, nbins)
    xs = x[sel]
    first = bins == edge[0]
    second = ~first & (bins == edge[1])
    for e, m_ in enumerate((first, second)):
        cnt[e] = np.count_nonzero(m_)
        s1[e] = _seq_sum(xs[m_])
        s2[e] = _seq_sum(xs[m_] * xs[m_])
    return gaps.astype(np.int64), cnt, s1, s2


def gap_code_counts_ref(gaps: np.ndarray, tail: int, index_bits: int) -> tuple[np.ndarray, int]:
    """Histogram of the stored gap codes and the filler count, entry by entry.

    Each gap g becomes fillers (code ``2**b - 1``) while more than ``2**b`` positions remain,
    then one code ``g - 1``; the ``tail`` positions after the last survivor add a filler per
    whole ``2**b``.
    """
    step = 1 << index_bits
    counts = np.zeros(step, dtype=np.int64)
    fillers = 0
    for g in (int(v) for v in gaps):
        while g > step:
            counts[step - 1] += 1
            fillers += 1
            g -= step
        counts[g - 1] += 1
    while tail >= step:
        counts[step - 1] += 1
        fillers += 1
        tail -= step
    return counts, fillers


def entry_symbols_ref(
    w: np.ndarray,
    gaps: np.ndarray,
    tail: int,
    lut: np.ndarray,
    cuts: np.ndarray,
    lo: float,
    inv_width: float,
    index_bits: int,
    filler: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Weight-index and gap-code symbols (uint32) of every entry, fillers included.

    A survivor's cluster is ``lut[bin]`` on the fine grid, or, when ``lut`` is empty, the number
    of ``cuts`` at or below its value.
    """
    step = 1 << index_bits
    x = np.asarray(w, dtype=np.float64)
    wsym: list[int] = []
    gsym: list[int] = []
    pos = -1
    for g in (int(v) for v in gaps):
        pos += g
        while g > step:
            wsym.append(filler)
            gsym.append(step - 1)
            g -= step
        if lut.size:
            wsym.append(int(lut[grid_bin_ref(x[pos], lo, inv_width, lut.size)]))
        else:
            wsym.append(int(np.count_nonzero(np.asarray(cuts) <= x[pos])))
        gsym.append(g - 1)
    wsym += [filler] * (tail // step)
    gsym += [step - 1] * (tail // step)
    return np.array(wsym, dtype=np.uint32), np.array(gsym, dtype=np.uint32)


def scatter_entries_ref(
    wsym: np.ndarray,
    gsym: np.ndarray,
    codebook: np.ndarray,
    filler: int,
    index_bits: int,
    size: int,
) -> tuple[np.ndarray, int]:
    """Decode entries into ``size`` float32 zeros; return (weights, status).

    Status is 0, or ``-(e + 1)`` for the first bad entry e (position past the end, symbol
    outside the codebook, a filler whose gap code is not ``2**b - 1``), or ``-(entries + 1)``
    when ``2**b`` or more positions follow the last entry. On a bad entry the weights decoded
    so far are returned.
    """
    step = 1 << index_bits
    out = np.zeros(size, dtype=np.float32)
    pos = -1
    for e, (s, c) in enumerate(zip((int(v) for v in wsym), (int(v) for v in gsym), strict=True)):
        pos += c + 1
        if pos >= size:
            return out, -(e + 1)
        if s == filler:
            if c != step - 1:
                return out, -(e + 1)
            continue
        if s >= codebook.size:
            return out, -(e + 1)
        out[pos] = codebook[s]
    if size - 1 - pos >= step:
        return out, -(len(wsym) + 1)
    return out, 0


def hole_symbols_ref(kept: np.ndarray, size: int, index_bits: int) -> np.ndarray:
    """The HOLES position stream (uint32) of a layer keeping positions ``kept``, hole by hole.

    With ``e = 2**b - 1``: before each pruned position, skips of ``e`` while ``e`` or more
    positions remain to pass, then the code of the rest.
    """
    esc = (1 << index_bits) - 1
    keep = set(int(p) for p in kept)
    out: list[int] = []
    pos = -1
    for h in (p for p in range(size) if p not in keep):
        g = h - pos - 1  # positions passed over
        while g >= esc:
            out.append(esc)
            g -= esc
        out.append(g)
        pos = h
    return np.array(out, dtype=np.uint32)


def bitmap_ref(kept: np.ndarray, size: int) -> bytes:
    """The BITMAP position code: bit p (MSB first) set when position p is kept."""
    out = bytearray((size + 7) // 8)
    for p in (int(v) for v in kept):
        out[p // 8] |= 0x80 >> (p % 8)
    return bytes(out)


def decode_holes_ref(sym: np.ndarray, size: int, index_bits: int) -> np.ndarray:
    """The kept positions (int64) of a HOLES stream, symbol by symbol."""
    esc = (1 << index_bits) - 1
    pruned = set()
    pos = -1
    for c in (int(v) for v in sym):
        if c == esc:
            pos += esc
        else:
            pos += c + 1
            pruned.add(pos)
    return np.array([p for p in range(size) if p not in pruned], dtype=np.int64)


# --------------------------------------------------------------------------- 1-D k-means


def partition_sse_ref(
    cnt: np.ndarray, s1: np.ndarray, s2: np.ndarray, starts: np.ndarray
) -> float:
    """SSE of the weighted points when the contiguous clusters begin at ``starts``."""
    total = 0.0
    bounds = [*(int(s) for s in starts), cnt.size]
    for lo, hi in itertools.pairwise(bounds):
        n = float(np.sum(cnt[lo:hi]))
        if n > 0:
            s = float(np.sum(s1[lo:hi]))
            total += max(float(np.sum(s2[lo:hi])) - s * s / n, 0.0)
    return total


def optimal_partition_ref(
    cnt: np.ndarray, s1: np.ndarray, s2: np.ndarray, k: int
) -> tuple[float, np.ndarray]:
    """Textbook O(k n^2) DP: minimum SSE of ``n`` weighted sorted points in ``min(k, n)``
    contiguous clusters, and the first point of each cluster.

    ``D[q][j]`` is the best SSE of the first j points in q + 1 clusters; every cost is taken
    from prefix sums over the points centred on their overall mean (less cancellation).
    """
    cnt = np.asarray(cnt, dtype=np.float64)
    n = cnt.size
    k = min(k, n)
    if n == 0:
        return 0.0, np.zeros(0, np.int64)
    mean = float(np.sum(s1)) / float(np.sum(cnt))
    c1 = np.asarray(s1, dtype=np.float64) - mean * cnt  # sums of (x - mean)
    c2 = np.asarray(s2, dtype=np.float64) - 2 * mean * np.asarray(s1) + mean * mean * cnt
    pc, p1, p2 = (np.concatenate(([0.0], np.cumsum(a))) for a in (cnt, c1, c2))
    i = np.arange(n + 1)[:, None]
    j = np.arange(n + 1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = p1[j] - p1[i]
        cost = np.maximum(p2[j] - p2[i] - s * s / (pc[j] - pc[i]), 0.0)
    cost = np.where(j > i, cost, np.inf)  # cost[i, j]: one cluster over points i..j-1
    best = [cost[0]]
    arg = [np.zeros(n + 1, np.int64)]
    for _ in range(1, k):
        total = best[-1][:, None] + cost  # last cluster starts at point i
        arg.append(np.argmin(total, axis=0))
        best.append(total[arg[-1], np.arange(n + 1)])
    starts = np.zeros(k, dtype=np.int64)
    end = n
    for q in range(k - 1, 0, -1):
        end = int(arg[q][end])
        starts[q] = end
    return float(best[-1][n]), starts


def optimal_sse_ref(values: np.ndarray, k: int) -> float:
    """The exact 1-D k-means optimum: minimum SSE of ``values`` in at most ``k`` clusters."""
    v = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    sse, _ = optimal_partition_ref(np.ones(v.size), v, v * v, k)
    return sse


def lloyd_ref(
    cnt: np.ndarray, s1: np.ndarray, centroids: np.ndarray, max_iter: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's algorithm on weighted sorted points from ascending ``centroids``.

    A point goes to the first centroid whose midpoint with the next one lies above the point's
    mean (ties go up); a centroid whose cluster is empty stays where it is. Stops when no
    cluster boundary moves. Returns (centroids, starts), starts being each cluster's first point.
    """
    means = [float(a) / float(b) for a, b in zip(s1, cnt, strict=True)]
    c = [float(x) for x in centroids]
    starts: list[int] | None = None
    for _ in range(max_iter):
        new = []
        for q in range(len(c)):
            p = 0
            if q > 0:
                mid = 0.5 * (c[q - 1] + c[q])
                p = sum(1 for m in means if m < mid)
            new.append(p)
        if new == starts:
            break
        starts = new
        for q in range(len(c)):
            hi = starts[q + 1] if q + 1 < len(c) else len(means)
            n = 0.0
            s = 0.0
            for p in range(starts[q], hi):
                n += float(cnt[p])
                s += float(s1[p])
            if n > 0:
                c[q] = s / n
    return np.array(c, dtype=np.float64), np.array(starts or [0] * len(c), dtype=np.int64)
