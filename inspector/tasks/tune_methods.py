"""Auto-tuning across methods: per layer, the cheapest recipe (method and knob) in the budget.

The budget is in percentage points of the evaluator's metric, as for :mod:`.tune` (which
searches deep's sparsity and bits only, and stays the default). Here:

1. **Ladder.** Every registered method's recipes of a layer (:mod:`.methods_curve`) are
   planned exactly; the weight-space SQNR ranks them: sorted by payload bytes, a recipe is a
   rung only if it is more faithful than every smaller one (no rung is both bigger and
   worse). Along the ladder size and SQNR both grow.
2. **Accept by measuring.** The budget is shared over the tuned layers in proportion to their
   original bytes. Each layer takes the smallest rung whose *measured* drop, that layer alone
   compressed, is within its share: a bisection along the ladder (the drop is taken to fall
   as the SQNR grows), each measurement cached.
3. **Check.** All layers compressed at once are measured. Over the budget, the shares shrink
   (by the budget over the drop, at least halving) and step 2 repeats from the cache; within
   it with room to spare, the shares grow once the same way. The smallest file measured
   within the budget is the result; if none is, every layer's most faithful rung is measured
   and returned (``fits`` says whether it is within the budget).

The result's accuracy is always a measurement of the returned settings.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from inspector.core.settings import FIELDS, method_options
from inspector.model.accuracy import Accuracy
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.drive import run_to_end
from inspector.tasks.methods_curve import (
    Cache,
    CurvePoint,
    CurvesRequest,
    Recipe,
    deep_recipe,
    method_curves,
    plan_point,
)
from inspector.tasks.sensitivity import Evaluates, ShouldStop, stopped, sweep_layers
from inspector.tasks.tune import MAX_ROUNDS, TOLERANCE, _check_budget, decoded

#: deep's extra candidates beside its curve (the view's is at the layer's bits only): the
#: sensitivity tuner's grid of fractions pruned and bits, so this search has all its choices.
DEEP_FRACTIONS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
DEEP_BITS = (2, 3, 4, 5, 6, 8)


@dataclass(frozen=True, slots=True)
class MethodsTuneResult:
    """The chosen settings and what measuring them found.

    ``recipes`` are each tuned layer's (name, recipe label); ``checks`` the number of
    combined measurements; the other fields as in :class:`.tune.TuneResult`.
    """

    settings: ModelSettings
    accuracy: Accuracy
    file_nbytes: int
    original_nbytes: int
    max_drop_points: float
    checks: int
    fits: bool
    recipes: tuple[tuple[str, Recipe], ...]
    note: str

    @property
    def ratio(self) -> float:
        return self.original_nbytes / self.file_nbytes if self.file_nbytes else float("inf")


def ladder(curves: Sequence[tuple[str, Sequence[CurvePoint]]]) -> list[CurvePoint]:
    """The recipes not beaten by a smaller or equal one of at least their SQNR, by size."""
    points = sorted((p for _, ps in curves for p in ps),
                    key=lambda p: (p.payload_nbytes, -p.sqnr_db))
    out: list[CurvePoint] = []
    for p in points:
        if not out or p.sqnr_db > out[-1].sqnr_db:
            out.append(p)
    return out


def with_recipes(settings: ModelSettings, chosen: dict[str, Recipe]) -> ModelSettings:
    """``settings`` with each named layer set to its recipe (as ``Session.set_method``)."""
    layers: dict[str, dict[str, Any]] = dict(settings.layers)
    for name, r in chosen.items():
        declared = {o.name for o in method_options(r.method)}
        entry = layers.get(name, {})
        kept = {k: v for k, v in entry.items() if k in FIELDS or k == "kind" or k in declared}
        layers[name] = {**kept, **r.options, "method": r.method}
    return replace(settings, layers=layers)


def tune_methods(
    codec: ModelCodec,
    evaluator: Evaluates,
    max_drop_points: float,
    settings: ModelSettings,
    layers: Sequence[str] | None = None,
    max_rounds: int = MAX_ROUNDS,
    should_stop: ShouldStop | None = None,
) -> Generator[Progress, None, MethodsTuneResult | None]:
    """Per layer the cheapest recipe of any method within the budget (see the module doc).

    Returns None when ``should_stop`` turned true; SettingsError for a bad budget or layer.
    """
    _check_budget(max_drop_points, max_rounds)
    names = sweep_layers(codec, settings, layers)
    baseline = evaluator.baseline
    total = len(names) + max_rounds + 1
    ladders: dict[str, list[CurvePoint]] = {}
    cache: Cache = {}
    for i, name in enumerate(names):
        yield Progress(i, total, f"sizing {name} under every method")
        s = settings.resolve(name, codec.model.info(name).kind)
        curves = run_to_end(method_curves(codec, CurvesRequest(name, s), cache), lambda _: None)
        assert curves is not None
        deep = [plan_point(codec, name, deep_recipe(f, s, b), s)
                for f in DEEP_FRACTIONS for b in DEEP_BITS]
        ladders[name] = ladder([*curves.curves, ("deep", [p for p in deep if p is not None])])
    weight = {n: codec.model.info(n).nbytes for n in names}
    whole = sum(weight.values()) or 1
    drops: dict[tuple[str, Recipe], float] = {}

    def drop_of(name: str, p: CurvePoint) -> float | None:
        key = (name, p.recipe)
        if key not in drops:
            s = settings.resolve(name, codec.model.info(name).kind)
            m = plan_point(codec, name, p.recipe, s, evaluator, should_stop)
            if m is None or m.score is None:
                return None
            drops[key] = 100.0 * (baseline.baseline_score - m.score)
        return drops[key]

    def pick(scale: float) -> dict[str, Recipe] | None:
        chosen = {}
        for name, rungs in ladders.items():
            share = scale * max_drop_points * weight[name] / whole
            lo, hi = 0, len(rungs) - 1  # the answer is in [lo, hi]; hi is the fallback
            while lo < hi:
                mid = (lo + hi) // 2
                d = drop_of(name, rungs[mid])
                if d is None:
                    return None
                lo, hi = (lo, mid) if d <= share + TOLERANCE else (mid + 1, hi)
            chosen[name] = rungs[hi].recipe
        return chosen

    original = sum(info.nbytes for info in codec.model.infos)
    cache_w: dict = {}
    best: tuple[int, ModelSettings, Accuracy, dict[str, Recipe]] | None = None
    checks, scale = 0, 1.0
    fit, fail = 0.0, float("inf")  # the largest scale that fit, the smallest that did not
    tried: set[tuple[tuple[str, Recipe], ...]] = set()
    for r in range(max_rounds):
        yield Progress(len(names) + r, total, f"checking round {r + 1}")
        chosen = pick(scale)
        if chosen is None or stopped(should_stop):
            return None
        key = tuple(sorted(chosen.items()))
        if key not in tried:
            tried.add(key)
            new = with_recipes(settings, chosen)
            acc = evaluator.evaluate(decoded(codec, new, cache_w), should_stop)
            if acc is None or stopped(should_stop):
                return None
            checks += 1
            ok = acc.drop_points <= max_drop_points + TOLERANCE
            if ok:
                nbytes = codec.estimate(new).file_nbytes
                if best is None or nbytes < best[0]:
                    best = (nbytes, new, acc, chosen)
        else:
            ok = scale <= fit  # the same choices as a scale already measured
        fit, fail = (max(fit, scale), fail) if ok else (fit, min(fail, scale))
        nxt = _next_scale(fit, fail)
        if nxt is None:
            break
        scale = nxt
    if best is not None:
        nbytes, new, acc, chosen = best
        yield Progress(total, total, "done")
        return MethodsTuneResult(new, acc, nbytes, original, max_drop_points, checks, True,
                                 tuple(chosen.items()),
                                 f"within the budget; {checks} check(s)")
    safest = {name: rungs[-1].recipe for name, rungs in ladders.items()}
    new = with_recipes(settings, safest)
    acc = evaluator.evaluate(decoded(codec, new, cache_w), should_stop)
    if acc is None or stopped(should_stop):
        return None
    fits = acc.drop_points <= max_drop_points + TOLERANCE
    yield Progress(total, total, "done")
    note = ("no cheaper recipe fit the budget; every layer's most faithful one does" if fits
            else "nothing tried fits the budget: every layer has its most faithful recipe")
    return MethodsTuneResult(new, acc, codec.estimate(new).file_nbytes, original,
                             max_drop_points, checks + 1, fits, tuple(safest.items()), note)


def _next_scale(fit: float, fail: float) -> float | None:
    """The next share scale to try: doubling while everything fits, halving while nothing
    does, then bisecting (geometrically) until the two are within 10%."""
    if fail == float("inf"):
        return fit * 2.0 if fit < 64.0 else None
    if fit == 0.0:
        return fail / 4.0 if fail > 1e-3 else None
    if fail / fit < 1.1:
        return None
    return (fit * fail) ** 0.5
