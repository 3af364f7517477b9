"""Weight statistics and the three pruning policies, resolved to an exact mask rule.

A mask is ``(threshold, ties)``: prune ``|w| < threshold`` and the first ``ties`` weights
(by position) whose magnitude equals it. The threshold policies prune every tie; the sparsity
policy prunes exactly the requested count. Counts are int64 throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from inspector.core import kernels
from inspector.core.settings import LayerSettings
from inspector.errors import SettingsError

ABS_BINS = 1 << 16  # the finest magnitude grid, for layers of at least this many weights
MIN_ABS_BINS = 64
Above = Callable[[float], np.ndarray]


@dataclass(frozen=True, slots=True)
class Mask:
    """Prune ``|w| < threshold``, plus the first ``ties`` weights with ``|w| == threshold``."""

    threshold: float
    ties: int


@dataclass(frozen=True, slots=True)
class Profile:
    """What one pass over a layer's weights tells, computed once per layer."""

    size: int
    nonfinite: int
    nonzero: int
    mean: float
    std: float
    std_nonzero: float
    sumsq: float
    lo: float
    hi: float
    abs_scale: float
    abs_cum: np.ndarray

    @property
    def absmax(self) -> float:
        return max(abs(self.lo), abs(self.hi)) if self.size else 0.0


def profile(w: np.ndarray) -> Profile:
    """Moments, range and a cumulative magnitude histogram of the flat weights ``w``."""
    nonfinite, nonzero, s1, s2, lo, hi = kernels.weight_moments(w)
    n = w.size - nonfinite
    if n == 0:
        lo = hi = 0.0
    mean = s1 / n if n else 0.0
    std = float(np.sqrt(max(s2 / n - mean * mean, 0.0))) if n else 0.0
    mean_nz = s1 / nonzero if nonzero else 0.0
    std_nz = float(np.sqrt(max(s2 / nonzero - mean_nz**2, 0.0))) if nonzero else 0.0
    absmax = max(abs(lo), abs(hi))
    nbins = abs_bins(w.size)
    scale = nbins / absmax if absmax > 0 else 0.0
    counts = np.zeros(nbins, dtype=np.int64)
    if nonfinite == 0:
        kernels.abs_histogram(w, scale, counts)
    return Profile(
        size=int(w.size),
        nonfinite=int(nonfinite),
        nonzero=int(nonzero),
        mean=float(mean),
        std=std,
        std_nonzero=std_nz,
        sumsq=float(s2),
        lo=float(lo),
        hi=float(hi),
        abs_scale=float(scale),
        abs_cum=np.cumsum(counts),
    )


def abs_bins(size: int) -> int:
    """Magnitude-histogram bins of a ``size``-weight layer: a power of two >= ``size`` (at
    least MIN_ABS_BINS), up to ABS_BINS, so the histogram stays proportional to the layer."""
    return min(ABS_BINS, max(MIN_ABS_BINS, 1 << max(0, int(size) - 1).bit_length()))


def resolve_mask(
    w: np.ndarray, prof: Profile, settings: LayerSettings, above: Above | None = None
) -> Mask:
    """The exact mask rule of ``settings`` for the weights ``w`` profiled as ``prof``.

    ``above(floor)``, if given, returns the magnitudes (any order) of a set of positions that
    includes every one with ``|w| >= floor``: a cached shortcut for the sparsity policy, which
    otherwise reads all ``w``.
    """
    if settings.policy == "threshold":
        return Mask(float(settings.value), kernels.TIES_ALL)
    if settings.policy == "std":
        std = prof.std if settings.std_of == "all" else prof.std_nonzero
        return Mask(float(settings.value) * std, kernels.TIES_ALL)
    if settings.policy == "sparsity":
        return sparsity_mask(w, prof, pruned_count(prof.size, settings.value), above)
    raise SettingsError(f"unknown prune policy {settings.policy!r}")


def pruned_count(size: int, fraction: float) -> int:
    """How many of ``size`` weights a sparsity of ``fraction`` prunes (rounded half to even)."""
    return min(size, max(0, round(fraction * size)))


def sparsity_mask(w: np.ndarray, prof: Profile, k: int, above: Above | None = None) -> Mask:
    """The mask pruning exactly the ``k`` smallest magnitudes, earlier positions first on ties."""
    if k <= 0:
        return Mask(-1.0, 0)
    if k >= prof.size:
        return Mask(np.inf, 0)
    cum = prof.abs_cum
    b = int(np.searchsorted(cum, k))  # first bin whose cumulative count reaches k
    before = int(cum[b - 1]) if b else 0
    vals = np.empty(int(cum[b]) - before, dtype=np.float64)
    if above is not None and prof.abs_scale > 0:
        mag = above(max(b - 1, 0) / prof.abs_scale)  # bin b starts above the bin below it
        found = kernels.abs_in_bin(mag, prof.abs_scale, cum.size, b, vals)
    else:
        found = kernels.abs_in_bin(w, prof.abs_scale, cum.size, b, vals)
    vals = np.sort(vals[:found])
    t = float(vals[k - before - 1])
    less = before + int(np.searchsorted(vals, t, side="left"))
    return Mask(t, k - less)


def count_pruned(w: np.ndarray, mask: Mask) -> int:
    """How many weights ``mask`` prunes (a reference count, one pass)."""
    a = np.abs(w.astype(np.float64, copy=False))
    ties = int(np.count_nonzero(a == mask.threshold))
    return int(np.count_nonzero(a < mask.threshold)) + min(ties, mask.ties)
