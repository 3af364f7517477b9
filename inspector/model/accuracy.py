"""What an accuracy measurement says, and what kind of number it is.

A measured accuracy comes from running the model: on labelled data it is top-1 accuracy; on
inputs alone (a file without labels, or synthetic inputs) it is **agreement with the original
model**: the fraction of top-1 predictions that stay the same, and the cosine between the
outputs. A proxy (SQNR of the weights) is all there is when the model cannot run. The kinds are
never confused: every value carries its metric and what it was measured on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: What a drop is measured in: top-1 against labels, top-1 agreement with the original model,
#: or the mean cosine of the outputs with the original's (for outputs without classes).
METRICS = ("top1", "agreement", "cosine")
_NAN = math.nan


@dataclass(frozen=True, slots=True)
class Accuracy:
    """How close compressed weights come to the original model on ``count`` examples.

    Attributes
    ----------
    top1 : float
        Fraction of examples whose top-1 prediction equals the label, in [0, 1]; nan without
        labels.
    agreement : float
        Fraction of top-1 predictions equal to the uncompressed model's, in [0, 1]; nan when
        the outputs have no class axis.
    count : int
        Number of examples evaluated.
    baseline_top1 : float
        Top-1 accuracy of the uncompressed model on the same examples (nan without labels).
    cosine : float
        Mean over examples of the cosine between the outputs (all outputs of an example
        flattened) and the uncompressed model's, in [-1, 1].
    relative_error : float
        ``||y - y0|| / ||y0||`` over all outputs of all examples.
    metric : str
        What :attr:`score` and :attr:`drop_points` measure, one of :data:`METRICS`.
    inputs : str
        What the examples are ("1,000 examples of mnist_test.h5", "256 synthetic inputs ...").
    """

    top1: float
    agreement: float
    count: int
    baseline_top1: float
    cosine: float = _NAN
    relative_error: float = _NAN
    metric: str = "top1"
    inputs: str = ""

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")

    @property
    def score(self) -> float:
        """The value of :attr:`metric`."""
        return {"top1": self.top1, "agreement": self.agreement, "cosine": self.cosine}[self.metric]

    @property
    def baseline_score(self) -> float:
        """The uncompressed model's :attr:`score`: its top-1, or 1 (it agrees with itself)."""
        return self.baseline_top1 if self.metric == "top1" else 1.0

    @property
    def drop_points(self) -> float:
        """:attr:`score` lost against the uncompressed model, in percentage points (negative =
        gain); a cosine of 0.99 is a drop of 1 point."""
        return (self.baseline_score - self.score) * 100.0

    @property
    def labelled(self) -> bool:
        """Whether the examples had labels (top-1 accuracy is known)."""
        return not math.isnan(self.top1)

    def to_json(self) -> dict[str, float | int | str | None]:
        def number(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "metric": self.metric,
            "top1": number(self.top1),
            "agreement": number(self.agreement),
            "cosine": number(self.cosine),
            "relative_error": number(self.relative_error),
            "count": self.count,
            "baseline_top1": number(self.baseline_top1),
            "drop_points": number(self.drop_points),
            "inputs": self.inputs,
        }


def metric_name(metric: str) -> str:
    """How a metric is called in messages."""
    return {"top1": "top-1 accuracy", "agreement": "top-1 agreement with the original",
            "cosine": "output cosine with the original"}[metric]
