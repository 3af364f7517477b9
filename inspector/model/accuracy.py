"""What an accuracy measurement says, and what kind of number it is.

A measured accuracy comes from running the model on labelled data; a proxy (SQNR of the weights)
is all there is when the model cannot run or there is no data. The two are never confused: every
value carries its kind.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Accuracy:
    """Top-1 accuracy of compressed weights on ``count`` labelled examples.

    Attributes
    ----------
    top1 : float
        Fraction of examples whose top-1 prediction equals the label, in [0, 1].
    agreement : float
        Fraction of examples whose top-1 prediction equals the uncompressed model's, in [0, 1].
    count : int
        Number of examples evaluated.
    baseline_top1 : float
        Top-1 accuracy of the uncompressed model on the same examples.
    """

    top1: float
    agreement: float
    count: int
    baseline_top1: float

    @property
    def drop_points(self) -> float:
        """Accuracy lost against the uncompressed model, in percentage points (negative = gain)."""
        return (self.baseline_top1 - self.top1) * 100.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "top1": self.top1,
            "agreement": self.agreement,
            "count": self.count,
            "baseline_top1": self.baseline_top1,
            "drop_points": self.drop_points,
        }
