"""Size against error of one layer under every registered method, over each method's knob.

For the app's Methods view and the cross-method tuner: each *recipe* (a method and a value of
its natural knob) of one layer is planned exactly (the method's own plan: the payload bytes
the file will hold and the weight-space squared error) and, given an evaluator, measured with
only that layer replaced by its decoded weights (the others original), as the sensitivity
sweep does.

A recipe's ``entry`` is what the layer's settings-file entry must hold to get exactly that
plan (the fidelity floor off, so nothing moves the knob): applying a point is
``Session.set_method(names, recipe.method, label, recipe.entry)``.

The knobs swept: deep's fraction pruned at the layer's bits; for another method, the option
its declaration marks ``finer`` (uniform's ``rel_step``, pq's ``code_bits``, hashed's
``per_bucket``) over :data:`KNOB_VALUES`, or the doubling ladder around its default for a new
method; ternary's ``delta`` (not a fidelity knob, but its natural one); a single point for a
method with no knob (fp16, bf16, int8, int4, binary).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, replace

import numpy as np

from inspector.core.settings import LayerSettings
from inspector.core.stages import registry
from inspector.core.stages.base import Method, Option, Value, fidelity_option, resolve_options
from inspector.format import dtypes
from inspector.model.accuracy import Accuracy
from inspector.tasks.codec import ModelCodec, Progress, stored_dtype
from inspector.tasks.method_floor import method_plan
from inspector.tasks.sensitivity import Evaluates, ShouldStop, stopped

DEEP_FRACTIONS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
#: The values swept of a method's knob, where a fixed grid reads better than doubling.
KNOB_VALUES: dict[tuple[str, str], tuple[Value, ...]] = {
    ("uniform", "rel_step"): (0.01, 0.02, 0.04, 0.0667, 0.13, 0.27, 0.53),
    ("ternary", "delta"): (0.3, 0.5, 0.7, 1.0, 1.4),
    ("pq", "code_bits"): (2, 3, 4, 6, 8),  # 10+ bits: k-means of a big layer takes seconds
    ("hashed", "per_bucket"): (2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
}
#: Options that are a method's natural knob without being a fidelity floor's.
NATURAL_KNOBS = {"ternary": "delta"}
EXACT_DB = 200.0  # where a lossless point is drawn (its SQNR is infinite)


@dataclass(frozen=True, slots=True)
class Recipe:
    """A method at one knob value; ``entry`` the layer entry giving exactly it."""

    method: str
    knob: str  # "" for a method without one
    at: Value
    entry: tuple[tuple[str, Value], ...]

    @property
    def label(self) -> str:
        if self.method == "deep" and self.knob == "sparsity":
            return f"deep {_fmt(self.at)} pruned, {self.options['bits']} bits"
        return self.method if not self.knob else f"{self.method} {self.knob}={_fmt(self.at)}"

    @property
    def options(self) -> dict[str, Value]:
        return dict(self.entry)


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One recipe, planned; ``score``/``agreement`` measured (None without an evaluator)."""

    recipe: Recipe
    payload_nbytes: int
    sse: float
    sumsq: float
    score: float | None = None
    agreement: float | None = None

    @property
    def sqnr_db(self) -> float:
        if self.sse <= 0 or self.sumsq <= 0:
            return math.inf
        return 10.0 * math.log10(self.sumsq / self.sse)


@dataclass(frozen=True, slots=True)
class MethodCurves:
    """Every method's curve of one layer, and the layer's current recipe as a point."""

    layer: str
    size: int  # weights
    curves: tuple[tuple[str, tuple[CurvePoint, ...]], ...]  # (method, points), sorted by bytes
    current: CurvePoint | None
    metric: str | None = None  # the evaluator's, when measured
    baseline: float | None = None

    def bits_per_weight(self, p: CurvePoint) -> float:
        return 8.0 * p.payload_nbytes / max(self.size, 1)


@dataclass(frozen=True, slots=True)
class CurvesRequest:
    """What to sweep: layer ``name`` whose resolved settings are ``settings``."""

    name: str
    settings: LayerSettings
    measure: bool = False  # measure each point with the evaluator


Cache = dict[tuple[str, Recipe, bool], CurvePoint]


def recipes(settings: LayerSettings) -> list[Recipe]:
    """Every registered method's recipes for a layer now set to ``settings``."""
    registry.method("deep")  # loads the registry
    out = [deep_recipe(f, settings) for f in DEEP_FRACTIONS]
    for name in sorted(registry.METHODS):
        if name == "deep":
            continue
        m = registry.METHODS[name]
        own = dict(settings.options) if settings.method == name else {}
        option = knob_of(m)
        values: tuple[Value, ...] = (None,) if option is None else knob_values(m, option)
        for v in values:
            given = own if option is None else {**own, option.name: v}
            opts = resolve_options(m.options, given)
            entry = (*opts.items_, ("min_sqnr", None))
            out.append(Recipe(name, option.name if option else "", v, entry))
    return out


def deep_recipe(fraction: float, settings: LayerSettings, bits: int | None = None) -> Recipe:
    """Deep Compression pruning ``fraction`` at ``bits`` (default the layer's; its init, index
    bits and Huffman as set), the floor and the bit raising off."""
    b = settings.bits if bits is None else int(bits)
    entry = (("bits", b), ("min_sqnr", None), ("policy", "sparsity"), ("raise_bits", False),
             ("value", float(fraction)))
    return Recipe("deep", "sparsity", float(fraction), entry)


def current_recipe(settings: LayerSettings) -> Recipe:
    """The layer's own recipe as it stands (floor included), to mark it on the curves."""
    if settings.method == "deep":
        return Recipe("deep", "current", None, tuple(sorted(settings.to_json().items())))
    return Recipe(settings.method, "current", None,
                  (*settings.options.items_, ("min_sqnr", settings.min_sqnr)))


def knob_of(m: Method) -> Option | None:
    """The option a method's curve sweeps: its fidelity knob, else its natural one."""
    option = fidelity_option(m.options)
    if option is None and m.name in NATURAL_KNOBS:
        option = next(o for o in m.options if o.name == NATURAL_KNOBS[m.name])
    return option


def knob_values(m: Method, o: Option) -> tuple[Value, ...]:
    """The grid of :data:`KNOB_VALUES`, or a doubling ladder around the default."""
    if (m.name, o.name) in KNOB_VALUES:
        return KNOB_VALUES[(m.name, o.name)]
    default = float(o.default) if isinstance(o.default, int | float) else 1.0
    ladder = [default * 2.0 ** k for k in (-3, -2, -1, 0, 1, 2, 3)]
    if o.kind is int:
        ladder = [float(round(v)) for v in ladder]
    kept = sorted({v for v in ladder if (o.lo is None or v >= o.lo) and (o.hi is None
                                                                         or v <= o.hi)})
    return tuple(int(v) if o.kind is int else v for v in kept)


def method_curves(
    codec: ModelCodec,
    request: CurvesRequest,
    cache: Cache | None = None,
    evaluator: Evaluates | None = None,
    should_stop: ShouldStop | None = None,
) -> Generator[Progress, None, MethodCurves | None]:
    """Plan (and with ``evaluator`` measure) every recipe of one layer.

    ``cache`` (owned by the caller, used from one thread) keeps points between calls; keys
    name the layer, the recipe and whether measured. Yields a Progress before each point not
    in the cache; returns None when ``should_stop`` turned true.
    """
    cache = {} if cache is None else cache
    measure = request.measure and evaluator is not None
    todo = [*recipes(request.settings), current_recipe(request.settings)]
    points: list[CurvePoint] = []
    for n, recipe in enumerate(todo):
        key = (request.name, recipe, measure)
        point = cache.get(key)
        if point is None:
            yield Progress(n, len(todo), f"{request.name}: {recipe.label}")
            point = plan_point(codec, request.name, recipe, request.settings,
                               evaluator if measure else None, should_stop)
            if point is None or stopped(should_stop):
                return None
            cache[key] = point
        points.append(point)
    yield Progress(len(todo), len(todo), "done")
    by_method: dict[str, list[CurvePoint]] = {}
    for p in points[:-1]:
        by_method.setdefault(p.recipe.method, []).append(p)
    curves = tuple((m, tuple(sorted(ps, key=lambda p: p.payload_nbytes)))
                   for m, ps in by_method.items())
    base = evaluator.baseline if measure and evaluator is not None else None
    return MethodCurves(request.name, int(codec.model.info(request.name).size), curves,
                        points[-1], None if base is None else base.metric,
                        None if base is None else base.baseline_score)


def plan_point(
    codec: ModelCodec, name: str, recipe: Recipe, settings: LayerSettings,
    evaluator: Evaluates | None = None, should_stop: ShouldStop | None = None,
) -> CurvePoint | None:
    """``recipe`` on layer ``name``: its exact plan, and measured with ``evaluator``."""
    s = layer_settings(recipe, settings)
    if s.method == "deep":
        plan = codec.codec(name).plan(s)
        point = CurvePoint(recipe, int(plan.payload_nbytes), float(plan.error_sse),
                           float(plan.sumsq))
    else:
        m, lm = codec.bound(name, s.method)
        _, mp = method_plan((m, lm), s)
        point = CurvePoint(recipe, int(mp.payload_nbytes), float(mp.sse), float(mp.sumsq))
    if evaluator is None:
        return point
    info = codec.model.info(name)
    flat = (codec.codec(name).quantized(s) if s.method == "deep"
            else codec.bound(name, s.method)[1].decoded(mp.options))
    weights = dtypes.cast(np.asarray(flat), stored_dtype(info, codec.model.path))
    acc = evaluator.evaluate({name: weights.reshape(info.shape)}, should_stop)
    if acc is None:
        return None
    return replace(point, score=acc.score, agreement=_agreement(acc))


def layer_settings(recipe: Recipe, settings: LayerSettings) -> LayerSettings:
    """The layer's settings under ``recipe`` (as ``Session.set_method`` with its entry)."""
    if recipe.knob == "current":
        return settings
    return LayerSettings.from_json({**dict(recipe.entry), "method": recipe.method}, settings)


def _agreement(acc: Accuracy) -> float:
    return acc.agreement if acc.agreement == acc.agreement else acc.cosine


def _fmt(v: Value) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)

