"""Auto-tuning: per-layer sparsity and bits for the smallest file within an accuracy budget.

The budget is in percentage points of the sweep's metric: top-1 accuracy on labelled data, or
without labels the top-1 agreement with the original model, or its output cosine (a cosine of
0.99 is 1 point below the original's 1). Below, "top-1" stands for whichever it is.

The method, from a sensitivity sweep (:mod:`inspector.tasks.sensitivity`):

1. **Candidates.** For every swept layer, each pair (fraction pruned f, bits b) of the sweep's
   grid is a candidate with an exact payload size (the codec's plan) and a predicted
   single-layer top-1 drop ``max(0, drop_prune(f)) + max(0, drop_bits(b))`` in points; gains
   never offset losses. Its *cost* adds the predicted loss of agreement with the uncompressed
   model (1 % disagreement counts as 0.01 points), so that among points with no top-1 loss
   the less disturbing one ranks safer.
2. **Ladder.** A layer's candidates that are not beaten (smaller or equal size and lower or
   equal cost) by another form its ladder: sizes strictly increase and costs strictly
   decrease along it. Backing a layer off means one rung up.
3. **Shares.** The budget is split over the tuned layers in proportion to their original
   bytes; each layer starts at the smallest rung whose predicted drop is within its share
   (the safest rung if none is).
4. **Final check.** The combined settings, all layers compressed at once, are measured. If
   the drop D exceeds the budget B, the layers interact more than the sweep predicts: the
   predicted cost P of the settings must shrink by ``P * (1 - B / D)``. Layers are backed off
   a rung at a time, the worst first (most predicted cost per byte saved), until that relief
   is reached, and the check repeats.
5. **Slack.** A check that fits with room to spare (the shares are cautious: single-layer
   drops rarely add up in full) moves the other way: layers step down a rung at a time, the
   most bytes saved per predicted cost first, while the predicted cost stays within
   ``P * B / D``, and the check repeats. A check over the budget after a fit retries half
   of those steps from the last fit. The last fit (the smallest file that fit) is the
   result. At most ``max_rounds`` checks.
6. **Fallback.** If no check fits, the least compressed settings the tuner can choose (no
   pruning, the most bits swept) are measured and returned; ``TuneResult.fits`` says whether
   they are within the budget.

So the result's accuracy is always a measurement of the returned settings, never a prediction.
Layers the sweep does not cover, and layers the settings exclude, keep their settings.

A layer of a method with a rate knob (``uniform``) was swept along its knob instead
(:mod:`inspector.tasks.sensitivity`): its candidates are the knob's swept values, each with
its exact size and predicted drop, and the rest is the same. Its choice is recorded as
``(name, knob value, 0)`` (bits 0: not a deep layer).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from inspector.core.settings import LayerSettings
from inspector.errors import SettingsError
from inspector.model.accuracy import Accuracy, metric_name
from inspector.model.sensitivity import LayerSensitivity, Sensitivity
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.sensitivity import Evaluates, ShouldStop, knob_of, stopped

MAX_ROUNDS = 12
Decoded = dict[str, tuple[LayerSettings, np.ndarray]]
TOLERANCE = 1e-9  # points: a measured drop this far over the budget is float noise


@dataclass(frozen=True, slots=True)
class Rung:
    """One candidate setting of a layer, with its exact size and predicted damage."""

    fraction: float
    bits: int
    nbytes: int
    drop: float
    cost: float
    knob: str = ""  # a knob layer's option (``fraction`` is then its value, ``bits`` 0)


@dataclass(frozen=True, slots=True)
class TuneRound:
    """One measured check of combined settings.

    Attributes
    ----------
    choices : tuple of (str, float, int)
        Each tuned layer's (name, fraction pruned, bits) in this round.
    accuracy : Accuracy
        Measured with all layers compressed at once.
    file_nbytes : int
        Exact size of the file these settings write.
    fits : bool
        Whether the measured drop is within the budget.
    """

    choices: tuple[tuple[str, float, int], ...]
    accuracy: Accuracy
    file_nbytes: int
    fits: bool


@dataclass(frozen=True, slots=True)
class TuneResult:
    """The chosen settings and what measuring them found.

    Attributes
    ----------
    settings : ModelSettings
        The input settings with the tuned layers' ``policy="sparsity"``, ``value`` and
        ``bits``, carrying the sweep they were chosen from.
    accuracy : Accuracy
        The measured accuracy of ``settings``.
    file_nbytes, original_nbytes : int
        Exact size of the compressed file, and of the model's tensors.
    max_drop_points : float
        The budget asked for.
    rounds : tuple of TuneRound
        Every check, in order.
    fits : bool
        Whether the measured drop is within the budget. False only when nothing tried fits:
        the settings are then the least compressed the tuner can choose.
    choices : tuple of (str, float, int)
        Each tuned layer's (name, fraction pruned, bits) in ``settings``.
    note : str
        One line on how the result was reached.
    """

    settings: ModelSettings
    accuracy: Accuracy
    file_nbytes: int
    original_nbytes: int
    max_drop_points: float
    rounds: tuple[TuneRound, ...]
    fits: bool
    choices: tuple[tuple[str, float, int], ...]
    note: str

    @property
    def ratio(self) -> float:
        """Original bytes over compressed file bytes."""
        return self.original_nbytes / self.file_nbytes if self.file_nbytes else float("inf")


def tune(
    codec: ModelCodec,
    evaluator: Evaluates,
    sensitivity: Sensitivity,
    max_drop_points: float,
    settings: ModelSettings,
    max_rounds: int = MAX_ROUNDS,
    should_stop: ShouldStop | None = None,
) -> Generator[Progress, None, TuneResult | None]:
    """Choose each swept layer's sparsity and bits for the smallest file within the budget.

    Parameters
    ----------
    codec
        The model's codec (sizes and decoded tensors).
    evaluator
        Measures combined settings (the final checks).
    sensitivity
        A sweep of this model (:func:`inspector.tasks.sensitivity.sensitivity`).
    max_drop_points
        Largest measured top-1 drop allowed, in percentage points (0.5 = half a point).
    settings
        Starting settings: layers not tuned keep theirs; the tuned layers keep their init,
        index bits and Huffman choice.
    max_rounds
        Most final checks before falling back to the least compressed settings.
    should_stop
        Handed to every evaluation; once it returns True the tune ends and returns None.

    Yields
    ------
    Progress
        Per layer while sizing candidates and per check. Closing the generator stops it.

    Returns
    -------
    TuneResult or None
        The settings and their measured accuracy; None when stopped by ``should_stop``.

    Raises
    ------
    SettingsError
        For a negative or non-finite budget, or a sweep that does not match the model.
    """
    _check_budget(max_drop_points, max_rounds)
    measured = evaluator.baseline.metric
    if measured != sensitivity.metric:
        raise SettingsError(
            f"the sensitivity sweep measured {metric_name(sensitivity.metric)}, this evaluation "
            f"measures {metric_name(measured)}; sweep again with the same data and metric")
    settings = settings.with_sensitivity(sensitivity)  # saved with the settings it chose
    layers = _tuned_layers(codec, sensitivity, settings)
    total = len(layers) + max_rounds + 1
    ladders: dict[str, list[Rung]] = {}
    for i, sweep in enumerate(layers):
        yield Progress(i, total, f"sizing {sweep.name}")
        ladders[sweep.name] = ladder(codec, sweep, sensitivity.baseline_top1, settings)
    check = _Checker(codec, evaluator, settings, max_drop_points, should_stop)
    check.knobs = {la.name: la.knob_name for la in layers if la.knob}
    current = _initial(codec, ladders, max_drop_points)
    best: tuple[dict[str, int], _Checked] | None = None  # the last (smallest) fit
    steps: list[str] = []  # the steps tried from the last fit
    for r in range(max_rounds):
        yield Progress(len(layers) + r, total, f"checking round {r + 1}")
        checked = check(_at(ladders, current))
        if checked is None:
            return None
        drop = checked.round.accuracy.drop_points
        if checked.round.fits:
            best = (current, checked)
            steps = advance(ladders, current, drop, max_drop_points)
            nxt = _down(current, steps)
        elif best is not None:  # advanced too far: half the steps from the last fit
            steps = steps[: len(steps) // 2]
            nxt = _down(best[0], steps)
        else:
            nxt = back_off(ladders, current, drop, max_drop_points)
        if nxt == current or (best is not None and nxt == best[0]):
            break  # nothing new to measure
        current = nxt
    if best is not None:
        yield Progress(total, total, "done")
        return check.result(best[1], f"within the budget; {len(check.rounds)} check(s)")
    yield Progress(total - 1, total, "checking the least compressed settings")
    checked = check({la.name: (la.knob[0].at, 0) if la.knob else
                     (la.prune[0].at, int(la.bits[-1].at)) for la in layers})
    if checked is None:
        return None
    note = ("no tuned setting fit the budget; the least compressed settings do"
            if checked.round.fits else
            "nothing tried fits the budget: these are the least compressed settings")
    yield Progress(total, total, "done")
    return check.result(checked, note)


def ladder(
    codec: ModelCodec, sweep: LayerSensitivity, baseline_top1: float, settings: ModelSettings
) -> list[Rung]:
    """The layer's candidates not beaten in both size and cost, smallest file first."""
    info = codec.model.info(sweep.name)
    base = replace(settings.resolve(sweep.name, info.kind), policy="sparsity", excluded=False,
                   min_sqnr=None)  # each rung prunes exactly what the sweep measured
    if sweep.knob:
        return _prune_beaten(_knob_rungs(codec, sweep, baseline_top1, base))
    layer = codec.codec(sweep.name)
    rungs = []
    for p in sweep.prune:
        for q in sweep.bits:
            s = replace(base, value=float(p.at), bits=int(q.at))
            drop = max(0.0, p.drop_points(baseline_top1)) + max(0.0, q.drop_points(baseline_top1))
            cost = drop + (1.0 - p.agreement) + (1.0 - q.agreement)
            rungs.append(Rung(s.value, s.bits, layer.plan(s).payload_nbytes, drop, cost))
    return _prune_beaten(rungs)


def _knob_rungs(codec: ModelCodec, sweep: LayerSensitivity, baseline_top1: float,
                base: LayerSettings) -> list[Rung]:
    """A knob layer's candidates: each swept value, its exact payload and predicted cost."""
    _, layer = codec.bound(sweep.name, base.method)
    rungs = []
    for p in sweep.knob:
        plan = layer.plan(base.options.replace(**{sweep.knob_name: float(p.at)}))
        drop = max(0.0, p.drop_points(baseline_top1))
        rungs.append(Rung(float(p.at), 0, plan.payload_nbytes + len(plan.params), drop,
                          drop + (1.0 - p.agreement), sweep.knob_name))
    return rungs


def _prune_beaten(rungs: list[Rung]) -> list[Rung]:
    rungs.sort(key=lambda r: (r.nbytes, r.cost))
    out: list[Rung] = []
    for rung in rungs:
        if not out or rung.cost < out[-1].cost:
            out.append(rung)
    return out


def back_off(
    ladders: dict[str, list[Rung]], current: dict[str, int], measured: float, budget: float
) -> dict[str, int]:
    """Rungs one or more steps safer, after a check measured a drop of ``measured`` points.

    The sweep predicts the current settings cost ``P`` (the sum of the layers' costs); the
    measurement says the real drop is ``measured / P`` times that. So the predicted cost must
    come down to ``budget * P / measured``: layers step up one rung at a time, the one with the
    most cost removed per byte given up first, until that relief is reached (at least one step
    unless every layer is at its top).
    """
    predicted = sum(ladders[name][i].cost for name, i in current.items())
    target = predicted * (1.0 - budget / measured) if measured > 0 else predicted
    out, relief = dict(current), 0.0
    while True:
        options = []
        for name, i in out.items():
            rungs = ladders[name]
            if i + 1 < len(rungs):
                gain = rungs[i].cost - rungs[i + 1].cost
                options.append((gain / (rungs[i + 1].nbytes - rungs[i].nbytes), gain, name))
        if not options:
            return out
        _, gain, name = max(options, key=lambda o: (o[0], o[2]))
        out[name] += 1
        relief += gain
        if relief >= target:
            return out


def advance(
    ladders: dict[str, list[Rung]], current: dict[str, int], measured: float, budget: float
) -> list[str]:
    """Steps down the ladders (a layer per step, best first) after a check that fit with
    ``measured`` points.

    The mirror of :func:`back_off`: the predicted cost ``P`` may grow to ``budget * P /
    measured`` (by ``budget - measured`` if nothing was lost); layers step down a rung at a
    time, the most bytes saved per cost added first, while the added cost stays within that.
    """
    predicted = sum(ladders[name][i].cost for name, i in current.items())
    allowance = (predicted * budget / measured - predicted if measured > 0
                 else budget - measured)
    out, added, steps = dict(current), 0.0, []
    while True:
        options = []
        for name, i in out.items():
            rungs = ladders[name]
            if i > 0:
                extra = rungs[i - 1].cost - rungs[i].cost
                if added + extra <= allowance + TOLERANCE:
                    saved = rungs[i].nbytes - rungs[i - 1].nbytes
                    options.append((saved / extra, extra, name))
        if not options:
            return steps
        _, extra, name = max(options, key=lambda o: (o[0], o[2]))
        out[name] -= 1
        added += extra
        steps.append(name)


def _down(current: dict[str, int], steps: list[str]) -> dict[str, int]:
    """``current`` moved one rung down per step."""
    out = dict(current)
    for name in steps:
        out[name] -= 1
    return out


def decoded(
    codec: ModelCodec, settings: ModelSettings, cache: Decoded | None = None
) -> dict[str, np.ndarray]:
    """Every compressed tensor as the file written with ``settings`` decodes it.

    ``cache`` keeps each layer's last decoded tensor with its settings, so a round that backs
    off one layer decodes only that layer.
    """
    cache = {} if cache is None else cache
    out = {}
    for info in codec.model.infos:
        s = settings.resolve(info.name, info.kind)
        if s.excluded:
            continue
        hit = cache.get(info.name)
        if hit is None or hit[0] != s:
            hit = cache[info.name] = (s, codec.quantized(info.name, settings))
        out[info.name] = hit[1]
    return out


def _tuned_layers(
    codec: ModelCodec, sensitivity: Sensitivity, settings: ModelSettings
) -> list[LayerSensitivity]:
    out = []
    for sweep in sensitivity.layers:
        try:
            info = codec.model.info(sweep.name)
        except KeyError:
            raise SettingsError(
                f"the sensitivity sweep names layer {sweep.name}, which the model lacks",
                codec.model.path,
            ) from None
        if info.size != sweep.size:
            raise SettingsError(
                f"the sensitivity sweep of layer {sweep.name} is of {sweep.size} weights; "
                f"the model's has {info.size} (sweep again)",
                codec.model.path,
            )
        if not sweep.knob and (not sweep.prune or not sweep.bits):
            raise SettingsError(f"the sensitivity sweep of layer {sweep.name} is incomplete")
        if knob_of(settings, sweep.name, info.kind) != sweep.knob_name:
            raise SettingsError(
                f"the sensitivity sweep of layer {sweep.name} was measured for another method "
                "than the layer has now (sweep again)", codec.model.path)
        if not settings.resolve(sweep.name, info.kind).excluded:
            out.append(sweep)
    return out


def _initial(codec: ModelCodec, ladders: dict[str, list[Rung]], budget: float) -> dict[str, int]:
    weight = {name: codec.model.info(name).nbytes for name in ladders}
    total = sum(weight.values()) or 1
    current = {}
    for name, rungs in ladders.items():
        share = budget * weight[name] / total
        fitting = [i for i, r in enumerate(rungs) if r.drop <= share + TOLERANCE]
        current[name] = fitting[0] if fitting else len(rungs) - 1
    return current


def _set(settings: ModelSettings, choices: dict[str, tuple[float, int]],
         knobs: dict[str, str]) -> ModelSettings:
    """``settings`` with each named layer pruned by sparsity ``f`` at ``b`` bits, or (a
    knob layer, named in ``knobs``) with its knob at ``f`` (one copy)."""
    layers: dict[str, dict[str, Any]] = dict(settings.layers)
    for name, (fraction, bits) in choices.items():
        if knobs.get(name):
            layers[name] = {**layers.get(name, {}), knobs[name]: float(fraction)}
            continue
        layers[name] = {**layers.get(name, {}), "policy": "sparsity", "value": float(fraction),
                        "bits": int(bits)}
    return replace(settings, layers=layers)


class _Checker:
    """Measures combined settings and keeps the record of every check."""

    def __init__(
        self, codec: ModelCodec, evaluator: Evaluates, settings: ModelSettings, budget: float,
        should_stop: ShouldStop | None,
    ) -> None:
        self.codec, self.evaluator, self.settings = codec, evaluator, settings
        self.budget, self.should_stop = budget, should_stop
        self.rounds: list[TuneRound] = []
        self._cache: Decoded = {}
        self.knobs: dict[str, str] = {}  # knob layers: their option

    def __call__(self, choices: dict[str, tuple[float, int]]) -> _Checked | None:
        """The measured settings with ``choices`` (layer: (fraction, bits)); None if stopped."""
        settings = _set(self.settings, choices, self.knobs)
        weights = decoded(self.codec, settings, self._cache)
        accuracy = self.evaluator.evaluate(weights, self.should_stop)
        if accuracy is None or stopped(self.should_stop):
            return None
        fits = accuracy.drop_points <= self.budget + TOLERANCE
        nbytes = self.codec.estimate(settings).file_nbytes
        record = tuple((name, f, b) for name, (f, b) in choices.items())
        self.rounds.append(TuneRound(record, accuracy, nbytes, fits))
        return _Checked(settings, self.rounds[-1])

    def result(self, chosen: _Checked, note: str) -> TuneResult:
        r = chosen.round
        original = sum(info.nbytes for info in self.codec.model.infos)
        return TuneResult(chosen.settings, r.accuracy, r.file_nbytes, original, self.budget,
                          tuple(self.rounds), r.fits, r.choices, note)


@dataclass(frozen=True, slots=True)
class _Checked:
    settings: ModelSettings
    round: TuneRound


def _at(ladders: dict[str, list[Rung]], current: dict[str, int]) -> dict[str, tuple[float, int]]:
    return {name: (ladders[name][i].fraction, ladders[name][i].bits)
            for name, i in current.items()}


def _check_budget(budget: float, max_rounds: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not (
        0.0 <= budget < float("inf")
    ):
        raise SettingsError(f"the accuracy budget must be a number of points >= 0, got {budget!r}")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise SettingsError(f"max_rounds must be an integer >= 1, got {max_rounds!r}")
