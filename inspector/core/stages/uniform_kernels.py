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

# A rate model: the current levels -> the bits each level value costs, as a float64 table
# indexed by ``level + L`` for levels -L..L (``L`` its second argument); levels outside cost
# the table's largest entry. An adaptive-context model can plug in here later.
RateModel = Callable[[np.ndarray, int], np.ndarray]


def empirical_rate(levels: np.ndarray, span: int) -> np.ndarray:
    """``-log2`` of each level's frequency (half a count for unseen ones): the rate of a
    memoryless adaptive coder that has learnt the histogram."""
    counts = np.bincount(np.clip(levels, -span, span) + span, minlength=2 * span + 1)
    p = (counts + 0.5) / (levels.size + 0.5 * counts.size)
    return -np.log2(p)


@numba.njit(cache=True, nogil=True)
def _unit_scales(w, rows, rowlen, g, gpr, out_max):
    for r in range(rows):
        row = w[r * rowlen:(r + 1) * rowlen]
        for j in range(row.size):
            u = r * gpr + j // g
            a = abs(row[j])
            if a > out_max[u]:
                out_max[u] = a


def unit_max(w: np.ndarray, geometry: tuple[int, int, int, int], units: int) -> np.ndarray:
    """max |w| of every unit (float64)."""
    rows, rowlen, g, gpr = geometry
    out = np.zeros(units, dtype=np.float64)
    if w.size:
        _unit_scales(w, rows, rowlen, g, gpr, out)
    return out


@numba.njit(cache=True, nogil=True)
def _quantize(w, imp, inv, rows, rowlen, g, gpr, recon, lam, cost, span, levels):
    """Each weight's level minimising ``imp * (x - r(q))**2 + lam * cost[q + span]`` where
    ``x = w / step`` and ``r(q) = sign(q) * recon[|q|]`` (``|q|`` past the table: ``|q|``)."""
    k = recon.size - 1
    top = cost.max()
    for r in range(rows):
        row = w[r * rowlen:(r + 1) * rowlen]
        wimp = imp[r * rowlen:(r + 1) * rowlen] if imp.size else imp
        out = levels[r * rowlen:(r + 1) * rowlen]
        for j in range(row.size):
            x = row[j] * inv[r * gpr + j // g]
            s = 1 if x >= 0 else -1
            ax = abs(x)
            a = min(np.int64(ax), LEVEL_MAX)
            c = wimp[j] if imp.size else 1.0
            best, bq = np.inf, 0
            for m in (0, a - 1, a, a + 1):
                if m < 0 or m > LEVEL_MAX:
                    continue
                rm = recon[m] if m <= k else float(m)
                q = s * m
                bits = cost[q + span] if -span <= q <= span else top
                e = (ax - rm) * (ax - rm) * c + lam * bits
                if e < best:
                    best, bq = e, q
            out[j] = bq


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
    span = int(min(LEVEL_MAX, np.max(np.abs(w) * np.repeat(inv, _unit_sizes(geometry))) + 2))
    cost = np.zeros(2 * span + 1)
    _quantize(w, weights, inv, rows, rowlen, g, gpr, recon, 0.0, cost, span, levels)
    for _ in range(rounds if lam > 0 else 0):
        cost = np.asarray(rate(levels, span), dtype=np.float64)
        _quantize(w, weights, inv, rows, rowlen, g, gpr, recon, lam, cost, span, levels)
    return levels


def _unit_sizes(geometry: tuple[int, int, int, int]) -> np.ndarray:
    """Weights per unit, in unit order (the last group of a row may be short)."""
    rows, rowlen, g, gpr = geometry
    per_row = np.full(gpr, g, dtype=np.int64)
    if gpr:
        per_row[-1] = rowlen - g * (gpr - 1)
    return np.tile(per_row, rows)


@numba.njit(cache=True, nogil=True)
def _decode(levels, steps, table, rows, rowlen, g, gpr, out):
    k = table.size - 1
    for r in range(rows):
        q = levels[r * rowlen:(r + 1) * rowlen]
        o = out[r * rowlen:(r + 1) * rowlen]
        for j in range(q.size):
            m = abs(np.int64(q[j]))
            t = table[m] if m <= k else 128 * m
            if q[j] < 0:
                t = -t
            o[j] = np.float32(np.float64(t) * np.float64(steps[r * gpr + j // g]) / 128.0)


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
