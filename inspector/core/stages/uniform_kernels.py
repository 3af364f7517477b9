"""Per-weight loops of the ``uniform`` method: rate-distortion quantization and decoding.

Kernels here call only kernels in this module (numba's cache does not notice edits to
other modules). Each works on a layer laid out as ``rows x rowlen`` with ``gpr`` units of
``G`` weights per row (:func:`.uniform_params.units_geometry`).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from inspector.core.stages.uniform_params import LEVEL_MAX

# A rate model: the current levels and a bound L on the magnitudes -> the bits a level costs,
# as a float64 table of one of two forms:
#   1-D, indexed by ``level + L`` for levels -L..L (context-free; levels outside cost the
#        table's largest entry);
#   3-D ``[a1, a2, m]``: a level of magnitude ``m`` (0..L, its sign included) right after
#        levels of magnitudes ``a1`` (the previous one in the flat order) and ``a2`` (the
#        one before), both capped at ``shape[0] - 1``: a context-adaptive coder's model,
#        e.g. ``lambda levels, bound: cabac.cost_table(levels, bound)``. The levels are then
#        chosen in order, each given the two chosen before it.
RateModel = Callable[[np.ndarray, int], np.ndarray]


def empirical_rate(levels: np.ndarray, span: int) -> np.ndarray:
    """``-log2`` of each level's frequency (half a count for unseen ones): the rate of a
    memoryless adaptive coder that has learnt the histogram."""
    counts = np.bincount(np.clip(levels, -span, span) + span, minlength=2 * span + 1)
    p = (counts + 0.5) / (levels.size + 0.5 * counts.size)
    return -np.log2(p)


@numba.njit(cache=True, nogil=True)
def _unit_max(w, rows, rowlen, g, gpr, out_max):
    for r in range(rows):
        for u in range(gpr):
            a = w[r * rowlen + u * g:r * rowlen + min((u + 1) * g, rowlen)]
            top = 0.0
            for j in range(a.size):
                top = max(top, abs(a[j]))
            out_max[r * gpr + u] = top


def unit_max(w: np.ndarray, geometry: tuple[int, int, int, int], units: int) -> np.ndarray:
    """max |w| of every unit (float64)."""
    rows, rowlen, g, gpr = geometry
    out = np.zeros(units, dtype=np.float64)
    if w.size:
        _unit_max(w, rows, rowlen, g, gpr, out)
    return out


# The loops below walk a row unit by unit (a 0-based slice per unit): no division per weight.


@numba.njit(cache=True, nogil=True)
def _round(w, inv, rows, rowlen, g, gpr, levels):
    """Nearest grid level (the lam = 0, grid case): half away from zero."""
    for r in range(rows):
        for u in range(gpr):
            lo, hi = r * rowlen + u * g, r * rowlen + min((u + 1) * g, rowlen)
            a, out, iv = w[lo:hi], levels[lo:hi], inv[r * gpr + u]
            for j in range(a.size):
                x = a[j] * iv
                m = min(np.int64(abs(x) + 0.5), LEVEL_MAX)
                out[j] = m if x >= 0 else -m


@numba.njit(cache=True, nogil=True)
def _quantize(w, imp, inv, rows, rowlen, g, gpr, recon, lam, cost, span, levels):
    """Each weight's level minimising ``imp * (x - r(q))**2 + lam * cost[q + span]`` where
    ``x = w / step`` and ``r(q) = sign(q) * recon[|q|]`` (``|q|`` past the table: ``|q|``),
    over ``q`` in {0, and the magnitudes next to |x|}."""
    k = recon.size - 1
    top = cost.max()
    weighted = imp.size > 0
    for r in range(rows):
        for u in range(gpr):
            lo, hi = r * rowlen + u * g, r * rowlen + min((u + 1) * g, rowlen)
            a, out, iv = w[lo:hi], levels[lo:hi], inv[r * gpr + u]
            c = imp[lo:hi] if weighted else imp
            for j in range(a.size):
                x = a[j] * iv
                s = 1 if x >= 0 else -1
                ax = abs(x)
                f = min(np.int64(ax), LEVEL_MAX)
                cj = c[j] if weighted else 1.0
                best, bq = ax * ax * cj + lam * cost[span], 0
                for m in (f - 1, f, f + 1):
                    if m < 1 or m > LEVEL_MAX:
                        continue
                    rm = recon[m] if m <= k else float(m)
                    q = s * m
                    bits = cost[q + span] if q <= span and -q <= span else top
                    e = (ax - rm) * (ax - rm) * cj + lam * bits
                    if e < best:
                        best, bq = e, q
                out[j] = bq


@numba.njit(cache=True, nogil=True)
def _quantize_ctx(w, imp, inv, rows, rowlen, g, gpr, recon, lam, table, levels):
    """:func:`_quantize` with a context cost ``table[a1, a2, m]`` (see ``RateModel``),
    greedily in the flat order: each level given the magnitudes chosen before it."""
    k = recon.size - 1
    cap = table.shape[0] - 1
    top = table.shape[2] - 1
    weighted = imp.size > 0
    a1, a2 = 0, 0
    for r in range(rows):
        for u in range(gpr):
            lo, hi = r * rowlen + u * g, r * rowlen + min((u + 1) * g, rowlen)
            a, out, iv = w[lo:hi], levels[lo:hi], inv[r * gpr + u]
            c = imp[lo:hi] if weighted else imp
            for j in range(a.size):
                x = a[j] * iv
                ax = abs(x)
                f = min(np.int64(ax), LEVEL_MAX)
                cj = c[j] if weighted else 1.0
                row = table[min(a1, cap), min(a2, cap)]
                best, bm = ax * ax * cj + lam * row[0], 0
                for m in (f - 1, f, f + 1):
                    if m < 1 or m > LEVEL_MAX:
                        continue
                    rm = recon[m] if m <= k else float(m)
                    e = (ax - rm) * (ax - rm) * cj + lam * row[min(m, top)]
                    if e < best:
                        best, bm = e, m
                out[j] = bm if x >= 0 else -bm
                a2, a1 = a1, bm


@numba.njit(cache=True, nogil=True)
def _max_level(w, inv, rows, rowlen, g, gpr):
    top = 0.0
    for r in range(rows):
        for u in range(gpr):
            a = w[r * rowlen + u * g:r * rowlen + min((u + 1) * g, rowlen)]
            iv = inv[r * gpr + u]
            for j in range(a.size):
                top = max(top, abs(a[j]) * iv)
    return top


@numba.njit(cache=True, nogil=True)
def _cell_sums(w, imp, inv, levels, rows, rowlen, g, gpr, num, den):
    """Per level magnitude 1..K: the (weighted) sums of ``|x| - m`` and of the weights."""
    k = num.size - 1
    weighted = imp.size > 0
    for r in range(rows):
        for u in range(gpr):
            lo, hi = r * rowlen + u * g, r * rowlen + min((u + 1) * g, rowlen)
            a, q, iv = w[lo:hi], levels[lo:hi], inv[r * gpr + u]
            c = imp[lo:hi] if weighted else imp
            for j in range(a.size):
                m = abs(np.int64(q[j]))
                if 1 <= m <= k:
                    cj = c[j] if weighted else 1.0
                    num[m] += (abs(a[j]) * iv - m) * cj
                    den[m] += cj


def cell_sums(w: np.ndarray, imp: np.ndarray | None, inv: np.ndarray, levels: np.ndarray,
              geometry: tuple[int, int, int, int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(num, den)`` over magnitudes 0..k (entry 0 unused) for cell-mean offsets."""
    rows, rowlen, g, gpr = geometry
    num, den = np.zeros(k + 1), np.zeros(k + 1)
    _cell_sums(w, np.empty(0) if imp is None else imp, inv, levels, rows, rowlen, g, gpr,
               num, den)
    return num, den


def quantize(w: np.ndarray, imp: np.ndarray | None, inv: np.ndarray,
             geometry: tuple[int, int, int, int], recon: np.ndarray, lam: float,
             rate: RateModel, rounds: int = 4) -> np.ndarray:
    """int32 levels of ``w`` (flat float64) for the per-unit inverse steps ``inv``.

    ``lam`` = 0 is nearest-reconstruction rounding; above, ``rounds`` passes alternate the
    choice of levels and ``rate`` re-estimated from them.
    """
    rows, rowlen, g, gpr = geometry
    levels = np.zeros(w.size, dtype=np.int32)
    weights = np.empty(0) if imp is None else imp
    if not w.size:
        return levels
    _round(w, inv, rows, rowlen, g, gpr, levels)
    if lam == 0 and recon.size == 1:
        return levels
    span = int(min(LEVEL_MAX, _max_level(w, inv, rows, rowlen, g, gpr) + 2))
    cost = np.zeros(2 * span + 1)
    for _ in range(rounds if lam > 0 else 1):
        if lam > 0:
            cost = np.ascontiguousarray(rate(levels, span), dtype=np.float64)
        if cost.ndim == 3:
            if cost.shape[0] < 1 or cost.shape[0] != cost.shape[1] or cost.shape[2] < 1:
                raise ValueError(f"a context rate table must be [a1, a2, m], got {cost.shape}")
            _quantize_ctx(w, weights, inv, rows, rowlen, g, gpr, recon, lam, cost, levels)
        elif cost.ndim == 1 and cost.size == 2 * span + 1:
            _quantize(w, weights, inv, rows, rowlen, g, gpr, recon, lam, cost, span, levels)
        else:
            raise ValueError(f"a rate table must be 1-D of {2 * span + 1} or 3-D, got "
                             f"{cost.shape}")
    return levels


@numba.njit(cache=True, nogil=True)
def sq_error(a, b):
    """``sum((a - b)**2)`` in float64 (``b`` may be empty: ``sum(a**2)``), one pass."""
    acc = 0.0
    if b.size == 0:
        for i in range(a.size):
            acc += np.float64(a[i]) * np.float64(a[i])
        return acc
    for i in range(a.size):
        d = np.float64(a[i]) - np.float64(b[i])
        acc += d * d
    return acc


@numba.njit(cache=True, nogil=True)
def _decode(levels, steps, table, rows, rowlen, g, gpr, out):
    k = table.size - 1
    for r in range(rows):
        for u in range(gpr):
            lo, hi = r * rowlen + u * g, r * rowlen + min((u + 1) * g, rowlen)
            q, o, st = levels[lo:hi], out[lo:hi], np.float64(steps[r * gpr + u])
            for j in range(q.size):
                m = abs(np.int64(q[j]))
                t = table[m] if m <= k else 128 * m
                if q[j] < 0:
                    t = -t
                o[j] = np.float32(np.float64(t) * st / 128.0)


def decode_levels(levels: np.ndarray, steps: np.ndarray, table: np.ndarray,
                  geometry: tuple[int, int, int, int]) -> np.ndarray:
    """float32 weights of ``levels`` (see :mod:`.uniform_params` for the formula)."""
    rows, rowlen, g, gpr = geometry
    out = np.empty(levels.size, dtype=np.float32)
    if levels.size:
        _decode(levels, steps, table, rows, rowlen, g, gpr, out)
    return out


def decode_levels_reference(levels: np.ndarray, steps: np.ndarray, table: np.ndarray,
                            unit: np.ndarray) -> np.ndarray:
    """The numpy twin of :func:`decode_levels` (``unit`` = every weight's unit)."""
    m = np.abs(levels.astype(np.int64))
    inside = m < table.size
    t = np.where(inside, table[np.minimum(m, table.size - 1)], 128 * m)
    t = np.where(levels < 0, -t, t)
    return (t.astype(np.float64) * steps[unit].astype(np.float64) / 128.0).astype(np.float32)
