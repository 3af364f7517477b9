"""A fidelity floor: prune a layer less, down to nothing, until its SQNR reaches ``min_sqnr``.

The safe default prunes at most 90% of a layer but never so much that the decoded weights fall
below a weight-space signal-to-noise floor (pruning 90% of a Gaussian layer removes 56% of its
energy: SQNR 2.5 dB, noise). The search runs on the layer's fine histogram (count, sum and sum
of squares of each of 2**16 value bins), not on re-encodes: the energy the k smallest
magnitudes carry is a cumulative sum, and the quantization error of the survivors is k-means on
the histogram's points. Because optimal k-means error never grows when points are removed, a
short fixed-point iteration (k-means of the current survivors, then the largest count whose
pruned energy fits what is left of the budget) climbs to the most pruning the floor allows in
2-3 k-means runs. One exact plan then checks the result; if it disagrees, the search repeats
with the budget corrected by what the plan measured. The result is ordinary settings (target
sparsity, no floor) that the plan, the file's record and the app all share, so the estimate is
still the bytes written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from inspector.core.cluster import Points, kmeans, rough_starts
from inspector.core.settings import MAX_BITS, LayerSettings

FIXED_POINT_STEPS = 3  # k-means runs of one search; the pruned count converges in 2-3
SPARSITY_GRID = 1000  # the chosen sparsity is a multiple of 0.1%, as the app shows it
CLEARLY_ABOVE = 1.0  # pruned energy alone over the budget: no exact check needed
CORRECTIONS = 4  # exact checks before giving up and pruning nothing
Exact = Callable[[LayerSettings], tuple[float, int, int]]  # -> (error SSE, pruned, bytes)


@dataclass(frozen=True, slots=True)
class EnergyOrder:
    """A layer's nonempty histogram bins by value, and cumulative counts and energies by
    magnitude (bins ordered by the magnitude of their mean)."""

    cnt: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    order: np.ndarray  # bin positions, smallest magnitude first
    rank: np.ndarray  # rank[i]: where bin i comes in ``order``
    cum_cnt: np.ndarray
    cum_s2: np.ndarray
    sumsq: float

    @property
    def size(self) -> int:
        return int(self.cum_cnt[-1]) if self.cum_cnt.size else 0


def energy_order(cnt: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> EnergyOrder:
    """The search's view of a fine histogram (``cnt``, ``s1``, ``s2`` per bin, by value)."""
    bins = np.flatnonzero(cnt)
    c, a, b = cnt[bins].astype(np.int64), s1[bins].astype(np.float64), s2[bins].astype(np.float64)
    order = np.argsort(np.abs(a / np.maximum(c, 1)), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return EnergyOrder(c, a, b, order, rank, np.cumsum(c[order]), np.cumsum(b[order]),
                       float(b.sum()))


def pruned_energy(e: EnergyOrder, k: int) -> float:
    """Sum of squares of the ``k`` smallest magnitudes (the last bin pro rata)."""
    if k <= 0 or e.size == 0:
        return 0.0
    j = min(int(np.searchsorted(e.cum_cnt, k, side="left")), e.order.size - 1)
    before_cnt = int(e.cum_cnt[j - 1]) if j else 0
    before = float(e.cum_s2[j - 1]) if j else 0.0
    b = e.order[j]
    return before + e.s2[b] * min(1.0, (k - before_cnt) / e.cnt[b])


def survivors(e: EnergyOrder, k: int) -> Points:
    """The histogram points left after pruning the ``k`` smallest magnitudes."""
    cnt, s1, s2 = e.cnt.copy(), e.s1.copy(), e.s2.copy()
    if k > 0:
        j = min(int(np.searchsorted(e.cum_cnt, k, side="left")), e.order.size - 1)
        cnt[e.rank < j] = 0
        b = e.order[j]
        left = max(int(e.cum_cnt[j]) - k, 0)
        scale = left / e.cnt[b]
        cnt[b], s1[b], s2[b] = left, s1[b] * scale, s2[b] * scale
    keep = cnt > 0
    return Points(cnt[keep], s1[keep], s2[keep])


def quantization_noise(e: EnergyOrder, k: int, s: LayerSettings) -> float:
    """The k-means error of the survivors of pruning ``k`` weights, on the histogram.

    Counted with one centroid fewer than ``s`` has (a pruned layer may need a filler code,
    which takes one), so it never undercounts for that reason.
    """
    points = survivors(e, k)
    clusters = max(s.clusters - 1, 1)
    if points.size == 0:
        return 0.0
    if s.init != "optimal":
        return kmeans(points, clusters, s.init, s.seed).sse
    # The optimal quantizer's merged-points partition, without its refinement: an upper
    # bound on the error, close to it, in a fraction of the time.
    starts = rough_starts(points, clusters, per_cluster=4)
    cnt, s1, s2 = (np.add.reduceat(a, starts) for a in (points.cnt, points.s1, points.s2))
    return float(np.maximum(s2 - s1 * s1 / cnt, 0.0).sum())


def estimated_noise(e: EnergyOrder, k: int, s: LayerSettings) -> float:
    """About the squared error of the layer with its ``k`` smallest magnitudes pruned."""
    return pruned_energy(e, k) + quantization_noise(e, k, s)


def most_pruned(
    e: EnergyOrder, budget: float, cap: int, s: LayerSettings, q0: float | None = None
) -> int:
    """The most weights, at most ``cap``, whose pruning keeps the noise within ``budget``.

    Optimal k-means error never grows when points are removed, so with the survivors' error
    ``q`` of some count, every count whose pruned energy fits ``budget - q`` and is at least
    as large fits the budget: each step below is feasible and prunes more than the last.
    ``q0``, if known, is the quantization error of pruning nothing.
    """
    if e.size == 0 or budget <= 0:
        return 0
    k = 0
    for step in range(FIXED_POINT_STEPS):
        q = q0 if step == 0 and q0 is not None else quantization_noise(e, k, s)
        nxt = _energy_bound(e, budget - q, cap)
        if nxt <= k:
            break
        k = nxt
    return k


def _energy_bound(e: EnergyOrder, budget: float, cap: int) -> int:
    """The most weights whose pruned energy alone fits ``budget`` (at most ``cap``)."""
    if budget <= 0 or cap <= 0:
        return 0
    j = int(np.searchsorted(e.cum_s2, budget, side="right"))  # whole bins that fit
    whole = int(e.cum_cnt[j - 1]) if j else 0
    if j < e.order.size:  # and the fitting part of the next bin
        b = e.order[j]
        spare = budget - (float(e.cum_s2[j - 1]) if j else 0.0)
        whole += int(e.cnt[b] * spare / e.s2[b]) if e.s2[b] > 0 else int(e.cnt[b])
    return min(cap, whole)


def channel_cap(channels: np.ndarray, min_sqnr: float) -> int:
    """The most weights a magnitude threshold may prune so that no channel (row of
    ``channels``) loses more than its share ``10**(-min_sqnr / 10)`` of its own energy.

    A conv layer is usually followed by a per-channel scale (BatchNorm): a channel of small
    weights is scaled back up with its noise, so pruning it away breaks the model while the
    tensor's SQNR barely notices (EfficientNet-Lite0's depthwise convs at a 30 dB tensor floor:
    6% top-1 agreement; with this cap: see benchmarks/floor_results.md).
    """
    a = np.sort(np.abs(channels.astype(np.float64)), axis=1)
    energy = np.cumsum(a * a, axis=1)
    budget = energy[:, -1:] * 10.0 ** (-min_sqnr / 10.0)
    kept_from = (energy <= budget).sum(axis=1)  # per channel: how many may go
    full = kept_from >= a.shape[1]
    if full.all():
        return int(a.size)
    rows = np.flatnonzero(~full)
    t = float(a[rows, kept_from[rows]].min())  # prune |w| < t: within every channel's budget
    return int(np.count_nonzero(a < t))


def fit_floor(
    e: EnergyOrder, s: LayerSettings, exact: Exact, channels: np.ndarray | None = None
) -> LayerSettings:
    """Settings without a floor that prune as ``s`` asks, or less, keeping SQNR >= the floor.

    Parameters
    ----------
    e
        The layer's histogram (:func:`energy_order`).
    s
        The requested settings; ``s.min_sqnr`` is the floor in dB (None: ``s`` as it is).
        With ``s.raise_bits``, a layer whose estimate misses the floor even unpruned gets
        more bits: the smaller file of the fewest bits whose estimate meets it and one more.
    exact
        The exact error SSE, pruned count and payload bytes of settings, from the layer's plan.
    channels
        The weights as ``[channels, rest]`` for a per-channel cap (:func:`channel_cap`), or
        None.

    Returns
    -------
    LayerSettings
        ``s`` without its floor when it already meets it; else target sparsity settings
        pruning the most the floor allows (a multiple of 0.1%), or nothing.
    """
    plain = replace(s, min_sqnr=None, raise_bits=False)
    if s.min_sqnr is None or s.excluded or e.sumsq <= 0:
        return plain
    target = e.sumsq * 10.0 ** (-s.min_sqnr / 10.0)
    if channels is not None and channels.shape[0] > 1 and s.policy == "sparsity":
        limit = channel_cap(channels, s.min_sqnr)
        if limit < round(s.value * e.size):  # a smaller target sparsity
            value = math.floor(limit * SPARSITY_GRID / e.size) / SPARSITY_GRID
            plain = replace(plain, value=value)
    if not s.raise_bits:
        return _fit_pruning(e, plain, target, exact)[0]
    # The estimate is an upper bound: bits it accepts meet the floor (the exact plan checks).
    q0 = {}
    for bits in range(s.bits, MAX_BITS + 1):
        q0[bits] = quantization_noise(e, 0, replace(plain, bits=bits))
        if q0[bits] <= target:
            break
    first = bits
    found = []
    for b in range(first, min(first + 1, MAX_BITS) + 1):
        fitted, met, nbytes = _fit_pruning(e, replace(plain, bits=b), target, exact, q0.get(b))
        if met or b == MAX_BITS:
            found.append((nbytes, fitted))
    return min(found, key=lambda f: f[0])[1]


def _fit_pruning(
    e: EnergyOrder, s: LayerSettings, target: float, exact: Exact, q0: float | None = None
) -> tuple[LayerSettings, bool, int]:
    """The most pruning of ``s`` (no floor) with noise <= ``target``; whether it met it."""
    if s.policy == "sparsity":  # the count is known: skip the exact plan when clearly too much
        cap = min(e.size, max(0, round(s.value * e.size)))
    if s.policy != "sparsity" or cap == 0 or pruned_energy(e, cap) <= CLEARLY_ABOVE * target:
        noise, cap, nbytes = exact(s)
        if noise <= target or cap == 0:
            return s, noise <= target, nbytes
    budget = target
    for _ in range(CORRECTIONS):
        k = most_pruned(e, budget, cap - 1, s, q0 if budget == target else None)
        fitted = replace(s, policy="sparsity", value=math.floor(k * SPARSITY_GRID / e.size)
                         / SPARSITY_GRID)
        noise, pruned, nbytes = exact(fitted)
        if noise <= target or fitted.value == 0:
            return fitted, noise <= target, nbytes
        # The histogram underestimated: spend less by what the exact plan added.
        budget -= noise - estimated_noise(e, pruned, s)
    fitted = replace(s, policy="sparsity", value=0.0)
    noise, _, nbytes = exact(fitted)
    return fitted, noise <= target, nbytes
