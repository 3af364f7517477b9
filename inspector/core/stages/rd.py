"""One knob for the whole model: the step (or lambda) that meets a size or a fidelity target.

Equal slope across layers is the optimal allocation of a byte budget: a layer-wide lambda
(or, at high rate, one absolute step for every layer: distortion ~ step**2 / 12 per weight
whatever the layer) spends each byte where it buys the most error. So a model-wide control
is a single number ``t``, mapped to every layer's options by ``options_at(t)`` (per-layer
overrides stay possible: it returns one Options per layer), and found by bisection on
``log t``, with the file's bytes non-increasing and the error non-decreasing in ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from inspector.core.stages.base import LayerMethod, Options, Plan

OptionsAt = Callable[[float], Sequence[Options]]


@dataclass(frozen=True, slots=True)
class Solution:
    """The knob found, each layer's options and plan there, and the totals."""

    knob: float
    options: tuple[Options, ...]
    plans: tuple[Plan, ...]
    nbytes: int  # payloads + params + ``overhead`` per layer
    sse: float
    sumsq: float
    evaluations: int

    @property
    def sqnr_db(self) -> float:
        if self.sse <= 0 or self.sumsq <= 0:
            return math.inf
        return 10.0 * math.log10(self.sumsq / self.sse)


def every_layer(base: Options, knob: str, count: int) -> OptionsAt:
    """``options_at`` that sets option ``knob`` (e.g. ``"step"`` or ``"lam"``) of ``base``
    to ``t`` in all ``count`` layers."""
    return lambda t: [base.replace(**{knob: t})] * count


def scaled(base: Options, knob: str, scales: Sequence[float]) -> OptionsAt:
    """``options_at`` that sets option ``knob`` of ``base`` to ``t * scales[i]`` in layer
    ``i`` (a per-layer sensitivity allocation under one model-wide knob)."""
    return lambda t: [base.replace(**{knob: t * s}) for s in scales]


def sensitivity_scales(mean_importance: Sequence[float], sizes: Sequence[int]
                       ) -> list[float]:
    """Per-layer step factors ``1 / sqrt(F_l)`` from each layer's mean importance ``F_l``
    (e.g. the Fisher diagonal's mean), normalised so their weight-count-weighted geometric
    mean is 1 (the knob keeps its scale).

    Why: with error weighted by ``F``, a layer's weighted distortion at step ``s`` is about
    ``F_l * s**2 / 12`` per weight; equal slope across layers (the optimal allocation) at
    high rate means ``F_l * s_l**2`` equal, so ``s_l`` proportional to ``F_l ** -1/2``. A
    layer with no measured importance (0) gets the largest factor of the others.
    """
    if len(mean_importance) != len(sizes):
        raise ValueError("one mean importance per layer size")
    logs = [math.log(f) if f > 0 else None for f in mean_importance]
    known = [(lg, n) for lg, n in zip(logs, sizes, strict=True) if lg is not None]
    if not known:
        return [1.0] * len(sizes)
    floor = min(lg for lg, _ in known)
    logs = [floor if lg is None else lg for lg in logs]
    total = sum(sizes) or 1
    mid = sum(lg * n for lg, n in zip(logs, sizes, strict=True)) / total
    return [math.exp(-0.5 * (lg - mid)) for lg in logs]


def evaluate(layers: Sequence[LayerMethod], options_at: OptionsAt, t: float,
             overhead: int = 0, evaluations: int = 1) -> Solution:
    """Plan every layer at knob ``t``."""
    opts = tuple(options_at(t))
    if len(opts) != len(layers):
        raise ValueError(f"options_at gave {len(opts)} options for {len(layers)} layers")
    plans = tuple(layer.plan(o) for layer, o in zip(layers, opts, strict=True))
    nbytes = sum(p.payload_nbytes + len(p.params) + overhead for p in plans)
    return Solution(t, opts, plans, nbytes, sum(p.sse for p in plans),
                    sum(p.sumsq for p in plans), evaluations)


def bisect(layers: Sequence[LayerMethod], options_at: OptionsAt,
           ok: Callable[[Solution], bool], lo: float, hi: float, *, largest: bool,
           overhead: int = 0, rel_tol: float = 1e-3, max_evaluations: int = 60
           ) -> Solution | None:
    """The largest (``largest``) or smallest ``t`` in ``[lo, hi]`` whose solution is ``ok``,
    assuming ``ok`` holds on one side of a single switch point; None if no ``t`` is ok.

    Bisection on ``log t`` to a relative width ``rel_tol``: ~log2(log(hi/lo) / rel_tol)
    plans of every layer.
    """
    if not 0 < lo <= hi:
        raise ValueError(f"need 0 < lo <= hi, got {lo}, {hi}")
    n = 0

    def at(t: float) -> Solution:
        nonlocal n
        n += 1
        return evaluate(layers, options_at, t, overhead, n)

    # good end: where ok is expected to hold (small t for "largest t that is ok")
    good_t, bad_t = (lo, hi) if largest else (hi, lo)
    good = at(good_t)
    if not ok(good):
        return None
    far = at(bad_t)
    if ok(far):
        return far
    a, b = math.log(good_t), math.log(bad_t)
    while abs(b - a) > rel_tol and n < max_evaluations:
        mid = at(math.exp(0.5 * (a + b)))
        if ok(mid):
            a, good = math.log(mid.knob), mid
        else:
            b = math.log(mid.knob)
    return Solution(good.knob, good.options, good.plans, good.nbytes, good.sse, good.sumsq, n)


def fit_nbytes(layers: Sequence[LayerMethod], options_at: OptionsAt, budget: int,
               lo: float, hi: float, overhead: int = 0, rel_tol: float = 1e-3
               ) -> Solution | None:
    """The finest ``t`` (smallest) whose layers fit in ``budget`` bytes."""
    return bisect(layers, options_at, lambda s: s.nbytes <= budget, lo, hi, largest=False,
                  overhead=overhead, rel_tol=rel_tol)


def fit_sqnr(layers: Sequence[LayerMethod], options_at: OptionsAt, floor_db: float,
             lo: float, hi: float, overhead: int = 0, rel_tol: float = 1e-3
             ) -> Solution | None:
    """The coarsest ``t`` (largest: the smallest file) whose model-wide SQNR (total energy
    over total squared error) is at least ``floor_db``."""
    return bisect(layers, options_at, lambda s: s.sqnr_db >= floor_db, lo, hi, largest=True,
                  overhead=overhead, rel_tol=rel_tol)
