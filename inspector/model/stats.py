"""What the app shows of a layer's weights before any setting: histogram and magnitude scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class LayerStats:
    """Histogram of a layer's weights and what converts a threshold to the policies' units.

    ``abs_edges``/``abs_cum`` describe the magnitudes: ``abs_cum[i]`` weights have
    ``|w| < abs_edges[i + 1]`` (approximately: bins are not split).
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
