"""One knob for the whole model: the value of a method's rate option that meets a target.

Equal slope across layers is the optimal allocation of a byte budget (see
:mod:`inspector.core.stages.rd`), so a model-wide target (a file size, a ratio, a weight-space
SQNR, or any floor a caller measures, e.g. accuracy) is met by one value ``t`` of the method's
rate knob (``rel_step``, ``step`` or ``lam`` of ``uniform``) set at the settings' *defaults*
level: kinds and per-layer entries that name the knob keep their own value. ``t`` is found
by bisection on ``log t`` over whole-model estimates (:meth:`ModelCodec.estimate`), so the
size it reaches is the size of the file ``compress`` writes, container and raw layers
included.

:func:`solve` is a task generator: it yields a :class:`~inspector.tasks.codec.Progress` per
estimate, and closing it (a cancelled worker) stops the search between estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from inspector.core.stages import registry
from inspector.core.stages.base import Option
from inspector.errors import SettingsError
from inspector.model.estimate import ModelEstimate
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, Progress

TargetKind = Literal["bytes", "ratio", "sqnr", "layer_sqnr", "floor"]
#: The best coder built, the default of a target: uniform levels per output channel, RD
#: rounding off, the smallest entropy coder for each layer.
BEST_METHOD: dict[str, Any] = {"method": "uniform", "granularity": "channel", "entropy": "auto"}
#: Each method's default rate knob (an option whose larger values give smaller files).
DEFAULT_KNOB = {"uniform": "rel_step"}
_RATIO_TOL = 0.01  # a ratio target is met within 1% of the file's real size
_MAX_STEPS = 40
_SPAN = 2.0**14  # a knob's search range: this factor below its coarse end


@dataclass(frozen=True, slots=True)
class Target:
    """What to reach. ``kind``: ``"bytes"`` (a file of at most ``value`` bytes),
    ``"ratio"`` (a file ``value`` times smaller than the fp32 bytes of its tensors),
    ``"sqnr"`` (model-wide weight SQNR of at least ``value`` dB), ``"layer_sqnr"`` (every
    coded layer at least ``value`` dB), ``"floor"`` (``measure(settings)`` at least
    ``value``: accuracy or agreement on evaluation data)."""

    kind: TargetKind
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("bytes", "ratio", "sqnr", "layer_sqnr", "floor"):
            raise SettingsError(f"unknown target {self.kind!r}")
        if not math.isfinite(self.value) or (self.kind in ("bytes", "ratio")
                                             and self.value <= 0):
            raise SettingsError(f"target {self.kind} must be a finite number > 0, "
                                f"got {self.value!r}")

    @property
    def sizes(self) -> bool:
        return self.kind in ("bytes", "ratio")


@dataclass(frozen=True, slots=True)
class TargetResult:
    """The settings found (the knob set at the defaults level) and what they reach."""

    settings: ModelSettings
    method: str
    knob: str
    value: float
    file_nbytes: int
    fp32_nbytes: int
    sqnr_db: float  # model-wide weight-space SQNR
    min_layer_sqnr_db: float
    met: bool  # False: even the knob's end closest to the target misses it
    evaluations: int
    measured: float | None = None  # a "floor" target's measure (the CLI's: minus the drop)

    @property
    def ratio(self) -> float:
        return self.fp32_nbytes / self.file_nbytes if self.file_nbytes else math.inf

    def describe(self) -> str:
        """One line: what was reached, and at which knob value."""
        lam = self.settings.defaults.get("lam")
        extra = f", lam {lam:g}" if self.knob != "lam" and lam is not None else ""
        miss = "" if self.met else " (target not reachable: closest shown)"
        fid = (f"; drop {-self.measured:.2f} points" if self.measured is not None else "")
        return (f"{self.method} at {self.knob} {self.value:.6g}{extra}: {self.file_nbytes:,} "
                f"bytes, {self.ratio:.2f}x smaller than fp32, weight SQNR {self.sqnr_db:.1f} "
                f"dB (worst layer {self.min_layer_sqnr_db:.1f} dB){fid}{miss}")


def fp32_nbytes(codec: ModelCodec) -> int:
    """The fp32 bytes of every tensor the file holds (what a ratio is measured against)."""
    return 4 * sum(int(i.size) for i in codec.model.infos)


def with_best_method(settings: ModelSettings) -> ModelSettings:
    """``settings`` with the best coder at the defaults level, where no method is set there."""
    if "method" in settings.defaults:
        return settings
    return settings.with_defaults(**BEST_METHOD)


def knob_option(method: str, knob: str | None = None) -> Option:
    """The rate knob of ``method`` (its default one unless named); SettingsError if it has
    no such numeric option."""
    name = knob or DEFAULT_KNOB.get(method)
    declared = {o.name: o for o in registry.method(method).options}
    if name is None or name not in declared or declared[name].kind is not float:
        words = ", ".join(n for n, o in declared.items() if o.kind is float) or "none"
        raise SettingsError(f"method {method} has no rate knob {name or ''} to solve "
                            f"(its float options: {words})".replace("knob  ", "knob "))
    return declared[name]


def solve(codec: ModelCodec, base: ModelSettings, target: Target, knob: str | None = None,
          measure: Callable[[ModelSettings], float] | None = None, rel_tol: float = 2e-3,
          check: Callable[[], None] | None = None
          ) -> Generator[Progress, None, TargetResult]:
    """The model-wide value of ``base``'s default method's rate knob that meets ``target``.

    Sizes: the finest value whose file fits (a ratio is met to within 1% when the knob can
    get that close); fidelity: the coarsest value that still meets the floor. Yields a
    Progress per whole-model estimate; ``check`` (e.g. a worker's cancellation check, which
    raises) is also called between the layers of each estimate, so a big model stops soon.
    """
    method = str(base.defaults.get("method", "deep"))
    if method == "deep":
        raise SettingsError("a model-wide target needs a method with a rate knob (e.g. "
                            "uniform); deep's pruning has none")
    option = knob_option(method, knob)
    if target.kind == "floor" and measure is None:
        raise SettingsError("a floor target needs evaluation data to measure")
    fp32 = fp32_nbytes(codec)
    lo, hi = _bounds(codec, base, option)
    budget = int(target.value if target.kind == "bytes" else fp32 // target.value)
    n = 0
    memo: dict[float, tuple[ModelSettings, ModelEstimate, float | None]] = {}
    side = ""
    # close enough: a file within half the ratio tolerance under the budget, a floor met
    # within 0.02 dB (a measured floor: only by bisection's width)
    close = (-math.log(1 - _RATIO_TOL / 2) if target.sizes
             else 0.02 if target.kind != "floor" else -1.0)

    def at(t: float) -> Generator[Progress, None, tuple[ModelSettings, ModelEstimate,
                                                        float | None]]:
        nonlocal n
        if t not in memo:
            n += 1
            yield Progress(min(n, _MAX_STEPS - 1), _MAX_STEPS, f"{option.name} {t:.4g}")
            s = base.with_defaults(**{option.name: t})
            est = codec.estimate(s, None if check is None else lambda _step: check())
            memo[t] = (s, est, measure(s) if target.kind == "floor" and measure else None)
        return memo[t]

    def score(e: ModelEstimate, m: float | None) -> float:
        """>= 0 where the target is met; smooth in log t, so a false-position step lands
        near the switch point in a few estimates."""
        if target.sizes:
            return math.log(budget) - math.log(e.file_nbytes)
        if target.kind == "floor":
            return -math.inf if m is None else m - target.value
        return (_sqnr(e) if target.kind == "sqnr" else _min_sqnr(e)) - target.value

    # sizes want the finest t that fits (good end: coarse), fidelity the coarsest that meets
    # the floor (good end: fine); "largest t" is coarsest when larger values code coarser
    good_t, bad_t = (hi, lo) if target.sizes else (lo, hi)
    good = yield from at(good_t)
    g = score(good[1], good[2])
    met = g >= 0
    if met:
        far = yield from at(bad_t)
        f = score(far[1], far[2])
        if f >= 0:
            good = far
        else:
            a, b = math.log(good_t), math.log(bad_t)
            ga, fb = g, f  # the ends' scores as the interpolation weighs them
            while abs(b - a) > rel_tol and n < _MAX_STEPS and not 0 <= g <= close:
                mid_t = math.exp(_next_point(a, b, ga, fb, target.kind != "floor"))
                mid = yield from at(mid_t)
                m = score(mid[1], mid[2])
                if m >= 0:
                    a, g, ga, good = math.log(mid_t), m, m, mid
                    fb = fb / 2 if side == "good" else fb  # Illinois: a stale end weighs less
                    side = "good"
                else:
                    b, fb = math.log(mid_t), m
                    ga = ga / 2 if side == "bad" else ga
                    side = "bad"
    s, est, measured = good
    t = float(s.defaults[option.name])
    yield Progress(_MAX_STEPS, _MAX_STEPS, "done")
    return TargetResult(s, method, option.name, t, est.file_nbytes, fp32, _sqnr(est),
                        _min_sqnr(est), met, n, measured)


def _next_point(a: float, b: float, ga: float, fb: float, interpolate: bool) -> float:
    """The next log t between ``a`` (score ``ga`` >= 0) and ``b`` (``fb`` < 0): false
    position, kept off the ends (a quarter of the bracket at least), or the middle."""
    if not interpolate or not (math.isfinite(ga) and math.isfinite(fb)) or ga == fb:
        return 0.5 * (a + b)
    x = ga / (ga - fb)  # where the score's chord crosses 0, as a fraction from a to b
    return a + min(max(x, 0.1), 0.9) * (b - a)


def _bounds(codec: ModelCodec, base: ModelSettings, option: Option) -> tuple[float, float]:
    """The knob's search range: its declared one, narrowed to where files differ."""
    if option.name == "step":  # an absolute step: relative to the model's largest weight
        top = max((float(np.max(np.abs(codec.model.tensors[i.name])))
                   for i in codec.model.infos if i.lossy_ok and i.size), default=1.0)
        hi = 2.0 * (top or 1.0)
    elif option.name == "lam":
        hi = 100.0
    else:
        hi = float(option.hi) if option.hi is not None else 1.0
    lo = max(float(option.lo or 0.0), hi / _SPAN)
    if option.hi is not None:
        hi = min(hi, float(option.hi))
    if option.lo is not None and option.lo > 0:
        lo = max(lo, float(option.lo))
    return lo, hi


def _sqnr(e: ModelEstimate) -> float:
    sse = sum(r.error_sse for r in e.layers)
    sumsq = sum(r.sumsq for r in e.layers)
    return math.inf if sse <= 0 or sumsq <= 0 else 10.0 * math.log10(sumsq / sse)


def _min_sqnr(e: ModelEstimate) -> float:
    return min((r.sqnr_db for r in e.layers if r.lossy), default=math.inf)
