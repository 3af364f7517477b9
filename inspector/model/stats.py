"""What the app shows of a layer's weights before any setting: histogram and magnitude scale."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OUTLIER_FRACTION = 0.001  # the default view leaves out this much of each tail
MIN_BINS, MAX_BINS = 4, 512


@dataclass(frozen=True, slots=True)
class LayerStats:
    """Histogram of a layer's weights and what converts a threshold to the policies' units.

    ``abs_edges``/``abs_cum`` describe the magnitudes: ``abs_cum[i]`` weights have
    ``|w| < abs_edges[i + 1]`` (approximately: bins are not split). ``fine`` is a finer
    histogram on equal bins over the same range as ``edges`` (the plot re-bins a zoomed view
    from it, cheaply); ``mean``, ``zeros`` and ``distinct`` are shown as the layer's
    statistics (``distinct`` is a lower bound when ``distinct_exact`` is False).
    """

    name: str
    size: int
    edges: np.ndarray
    counts: np.ndarray
    std: float
    std_nonzero: float
    absmax: float
    abs_edges: np.ndarray
    abs_cum: np.ndarray
    fine: np.ndarray | None = None
    mean: float = 0.0
    zeros: int = 0
    distinct: int = 0
    distinct_exact: bool = True

    @property
    def lo(self) -> float:
        """The smallest weight."""
        return float(self.edges[0])

    @property
    def hi(self) -> float:
        """The largest weight."""
        return float(self.edges[-1])

    def _grid(self) -> tuple[np.ndarray, float]:
        """The finest histogram there is and its bin width."""
        counts = self.fine if self.fine is not None else self.counts
        return counts, (self.hi - self.lo) / max(counts.size, 1)

    def robust_view(self, fraction: float = OUTLIER_FRACTION) -> tuple[float, float]:
        """The x range to show by default: symmetric about 0, leaving out the outliers.

        The magnitude that holds all but ``fraction`` of each tail (to the fine bins'
        resolution), mirrored, and clipped to the weights' own range: a pruning band is
        symmetric, and a few far weights would otherwise squeeze the rest into a few pixels.
        """
        counts, width = self._grid()
        total = int(counts.sum())
        if total == 0 or width <= 0:
            return self.lo, self.hi
        cum = np.cumsum(counts)
        low_bin = int(np.searchsorted(cum, fraction * total, side="right"))
        high_bin = int(np.searchsorted(cum, (1.0 - fraction) * total, side="left"))
        low, high = self.lo + low_bin * width, self.lo + (high_bin + 1) * width
        reach = max(-low, high, 0.0)
        a, b = max(self.lo, -reach), min(self.hi, reach)
        return (a, b) if b > a else (self.lo, self.hi)

    def outside(self, a: float, b: float) -> tuple[int, int]:
        """About how many weights lie below ``a`` and above ``b`` (whole fine bins)."""
        counts, width = self._grid()
        if width <= 0:
            return 0, 0
        i0, i1 = self._bin_range(a, b, counts.size, width)
        return int(counts[:i0].sum()), int(counts[i1:].sum())

    def _bin_range(self, a: float, b: float, n: int, width: float) -> tuple[int, int]:
        i0 = min(max(math.floor((a - self.lo) / width + 1e-9), 0), n)
        i1 = min(max(math.ceil((b - self.lo) / width - 1e-9), i0), n)
        return i0, i1

    def binned(self, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
        """Edges and counts of the weights in ``[a, b]``, re-binned for a plot.

        About ``sqrt(n)`` bins for the ``n`` weights in view (between MIN_BINS and MAX_BINS),
        never finer than the fine histogram; O(fine bins), no pass over the weights.
        """
        counts, width = self._grid()
        if width <= 0 or counts.size == 0:
            return np.array([self.lo, self.hi]), np.array([counts.sum()])
        i0, i1 = self._bin_range(a, b, counts.size, width)
        if i1 <= i0:
            i0, i1 = max(min(i0, counts.size - 1), 0), max(min(i0, counts.size - 1), 0) + 1
        seen = int(counts[i0:i1].sum())
        nbins = min(max(round(math.sqrt(seen)), MIN_BINS), MAX_BINS)
        group = max(1, math.ceil((i1 - i0) / nbins))
        starts = np.arange(i0, i1, group)
        out = np.add.reduceat(counts[i0:i1], starts - i0)
        bounds = np.append(starts, i1)
        return self.lo + bounds * width, out

    def sparsity_at(self, threshold: float) -> float:
        """About the fraction of weights with ``|w| <= threshold``."""
        if self.size == 0 or threshold < 0:
            return 0.0
        below = np.interp(threshold, self.abs_edges, np.concatenate(([0], self.abs_cum)))
        return float(min(1.0, below / self.size))

    def threshold_at(self, sparsity: float) -> float:
        """About the magnitude below which ``sparsity`` of the weights lie."""
        if self.size == 0:
            return 0.0
        cum = np.concatenate(([0], self.abs_cum))
        return float(np.interp(sparsity * self.size, cum, self.abs_edges))

    def threshold_of(self, policy: str, value: float, std_of: str = "all") -> float:
        """The magnitude a policy value prunes up to (approximate for sparsity)."""
        if policy == "threshold":
            return value
        if policy == "std":
            return value * (self.std if std_of == "all" else self.std_nonzero)
        return self.threshold_at(value)

    def value_of(self, policy: str, threshold: float, std_of: str = "all") -> float:
        """The policy value that prunes up to ``threshold`` (inverse of ``threshold_of``)."""
        if policy == "threshold":
            return max(threshold, 0.0)
        if policy == "std":
            std = self.std if std_of == "all" else self.std_nonzero
            return max(threshold, 0.0) / std if std > 0 else 0.0
        return self.sparsity_at(threshold)
