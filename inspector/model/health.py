"""Which layers the weight-space proxy says are likely broken, and what to tell the user.

Without evaluation data the app only knows how much each layer's weights changed. Some changes
are large enough that the model almost surely breaks: a layer whose decoded weights are mostly
noise (SQNR below ``BROKEN_SQNR_DB``; pruning 90% of a Gaussian layer leaves 2.5 dB) or one
that is pruned almost entirely. Measured on real models (``benchmarks/floor_study.py``), every
layer at 10 dB already cost a sentence transformer its embeddings (cosine 0.61) and LeNet-300-100
2.6 points; 3 dB layers took them to cosine 0.14 and 31% top-1.
"""

from __future__ import annotations

import math

from inspector.core.layer import LayerPlan
from inspector.core.stages.base import Plan
from inspector.model.estimate import ModelEstimate

BROKEN_SQNR_DB = 10.0
BROKEN_PRUNED = 0.99


def layer_warning(plan: LayerPlan | Plan | None) -> str:
    """Why layer ``plan`` is likely broken, or ``""`` when the proxy sees nothing alarming.

    ``plan`` is a deep plan, or the plan of another registered method (only its SQNR)."""
    if isinstance(plan, Plan):
        return _noise_warning(plan.sqnr_db)
    if plan is None or plan.size == 0:
        return ""
    pruned = 1.0 - plan.survivors / plan.size
    if pruned > BROKEN_PRUNED:
        return (f"{100 * pruned:.2f}% of this layer's weights are pruned: it will probably "
                "break the model")
    return _noise_warning(plan.sqnr_db)


def _noise_warning(db: float) -> str:
    if not math.isnan(db) and db < BROKEN_SQNR_DB:
        return (f"SQNR {db:.1f} dB: the decoded weights are mostly noise; this layer will "
                "probably break the model")
    return ""


def broken_layers(estimate: ModelEstimate | None) -> list[str]:
    """Names of the layers :func:`layer_warning` warns about."""
    if estimate is None:
        return []
    return [r.info.name for r in estimate.layers if layer_warning(r.plan or r.coded)]


def summary_warning(estimate: ModelEstimate | None) -> str:
    """The summary's warning line when some layers are likely broken (``""`` if none)."""
    names = broken_layers(estimate)
    if not names:
        return ""
    what = "1 layer is" if len(names) == 1 else f"{len(names)} layers are"
    return (f"{what} likely broken (SQNR < {BROKEN_SQNR_DB:g} dB or pruned > "
            f"{100 * BROKEN_PRUNED:g}%): measure accuracy or use the safe default")
