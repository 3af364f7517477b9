"""The model-wide knob: bisection to a byte budget or a fidelity floor."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options
from inspector.core.stages.rd import (
    evaluate,
    every_layer,
    fit_nbytes,
    fit_sqnr,
    scaled,
    sensitivity_scales,
)

UNIFORM = registry.method("uniform")
BASE = resolve_options(UNIFORM.options, {"granularity": "tensor", "entropy": "fixed"})


def layers():
    rng = np.random.default_rng(0)
    shapes = [(40, 30), (20, 10), (8, 60)]
    ws = [rng.laplace(size=s) * scale for s, scale in zip(shapes, (0.05, 0.5, 0.01), strict=True)]
    return [UNIFORM.bind(w.reshape(-1), w.shape) for w in ws]


@pytest.mark.parametrize("budget", [900, 1500, 3000])
def test_fit_nbytes_is_the_finest_step_within_budget(budget: int) -> None:
    ls = layers()
    at = every_layer(BASE, "step", len(ls))
    sol = fit_nbytes(ls, at, budget, 1e-4, 10.0, overhead=8)
    assert sol is not None and sol.nbytes <= budget
    assert sol.nbytes == sum(p.payload_nbytes + len(p.params) + 8 for p in sol.plans)
    finer = evaluate(ls, at, sol.knob * (1 - 3e-3), overhead=8)
    assert finer.nbytes > budget
    assert all(o["step"] == sol.knob for o in sol.options)


def test_fit_sqnr_is_the_coarsest_step_meeting_the_floor() -> None:
    ls = layers()
    at = every_layer(BASE, "step", len(ls))
    sol = fit_sqnr(ls, at, 30.0, 1e-5, 10.0)
    assert sol is not None and sol.sqnr_db >= 30.0
    assert evaluate(ls, at, sol.knob * (1 + 3e-3)).sqnr_db < 30.0


def test_impossible_targets_give_none() -> None:
    ls = layers()
    at = every_layer(BASE, "step", len(ls))
    assert fit_nbytes(ls, at, 10, 1e-3, 1.0) is None
    assert fit_sqnr(ls, at, 400.0, 1e-3, 1.0) is None


def test_sensitivity_scales_equalise_the_weighted_slope() -> None:
    scales = sensitivity_scales([4.0, 1.0, 0.0], [10, 30, 5])
    assert scales[0] == pytest.approx(scales[1] / 2)  # 4x the importance: half the step
    assert scales[2] == pytest.approx(scales[1])  # unknown: the coarsest of the others
    logs = np.log(scales)
    assert float(np.dot(logs, [10, 30, 5])) == pytest.approx(0.0, abs=1e-12)


def test_scaled_steps_meet_a_budget_with_sensitive_layers_finer() -> None:
    ls = layers()
    scales = [1.0, 0.25, 1.0]
    sol = fit_nbytes(ls, scaled(BASE, "step", scales), 2000, 1e-4, 10.0)
    assert sol is not None and sol.nbytes <= 2000
    steps = [o["step"] for o in sol.options]
    assert steps[1] == pytest.approx(0.25 * steps[0])


def _level_bits(sol) -> float:
    total = 0.0
    for p in sol.plans:
        _, counts = np.unique(p.state[0].levels, return_counts=True)
        total -= float((counts * np.log2(counts / counts.sum())).sum())
    return total


def test_lambda_is_a_model_wide_knob_too() -> None:
    ls = layers()
    at = every_layer(BASE.replace(rel_step=0.02), "lam", len(ls))
    fine, coarse = evaluate(ls, at, 0.01), evaluate(ls, at, 2.0)
    assert coarse.sse > fine.sse
    assert _level_bits(coarse) < 0.9 * _level_bits(fine)  # the rate an adaptive coder pays
