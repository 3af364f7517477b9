"""Sensitivity sweep: prune or quantize one layer at a time and measure the accuracy.

Every point is one evaluation with only that layer replaced, the others left original:

- prune points keep the layer's weights exact and zero the ones the codec's mask prunes
  (``policy="sparsity"``, smallest magnitudes first, ties by position), so the curve shows
  pruning alone;
- bits points are the layer exactly as the compressed file decodes it with that many cluster
  bits and **no pruning**, with the layer's own init, index bits and Huffman settings;
- a layer whose method is not deep but has a rate knob (``uniform``'s ``rel_step``:
  :data:`inspector.tasks.target.DEFAULT_KNOB`) gets a knob curve instead: the layer exactly as
  the file decodes it at each value of :data:`KNOB_POINTS`, its other options its own (a
  deep layer is swept as before).

The evaluator is anything with ``baseline`` and ``evaluate`` (:class:`Evaluates`), e.g.
``inspector.tasks.accuracy.Evaluator``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from inspector.core.settings import FIELDS, MAX_BITS, MIN_BITS, LayerSettings
from inspector.errors import SettingsError
from inspector.model.accuracy import Accuracy
from inspector.model.sensitivity import (
    PRUNE_FRACTIONS,
    SWEEP_BITS,
    LayerSensitivity,
    Sensitivity,
    SweepPoint,
)
from inspector.model.settings import COMPRESSIBLE_KINDS, ModelSettings
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.target import DEFAULT_KNOB

ShouldStop = Callable[[], bool]
#: The values of each knob a sweep measures, finest first (uniform's rel_step: steps of
#: 1/256 to 1/2 of each channel's largest weight, a factor of 2 apart).
KNOB_POINTS: dict[str, tuple[float, ...]] = {"rel_step": tuple(2.0**-k for k in range(8, 0, -1))}


@dataclass(frozen=True, slots=True)
class SweepProgress(Progress):
    """A step of a sweep; ``partial``: the layers finished so far, when one just finished."""

    partial: Sensitivity | None = None


@runtime_checkable
class Evaluates(Protocol):
    """What the sweep and the tuner need of an evaluator."""

    @property
    def baseline(self) -> Accuracy:
        """The uncompressed model's accuracy."""
        ...

    def evaluate(
        self, weights: Mapping[str, np.ndarray], should_stop: ShouldStop | None = None
    ) -> Accuracy | None:
        """Accuracy with the tensors named in ``weights`` replaced (the others original);
        None when ``should_stop()`` turned true during the evaluation."""
        ...


def sensitivity(
    codec: ModelCodec,
    evaluator: Evaluates,
    settings: ModelSettings,
    layers: Sequence[str] | None = None,
    fractions: Sequence[float] = PRUNE_FRACTIONS,
    bits: Sequence[int] = SWEEP_BITS,
    should_stop: ShouldStop | None = None,
) -> Generator[Progress, None, Sensitivity | None]:
    """Sweep each layer's prune fraction and cluster bits, one layer at a time.

    Parameters
    ----------
    codec
        The model's codec; pruned and quantized tensors come from it.
    evaluator
        Measures the accuracy of replaced weights.
    settings
        The layers' other settings (init, index bits, Huffman) for the bits sweep, and which
        layers are compressed.
    layers
        Layers to sweep; default every compressible layer that ``settings`` does not exclude.
    fractions, bits
        The points of the two curves.
    should_stop
        Handed to every evaluation; once it returns True the sweep ends and returns None.

    Yields
    ------
    SweepProgress
        Before each evaluation, and once when done; the first step after a layer is
        finished carries the layers finished so far. Closing the generator stops the sweep.

    Returns
    -------
    Sensitivity or None
        The curves of every swept layer, in model order; None when stopped by ``should_stop``.

    Raises
    ------
    SettingsError
        For an unknown or non-compressible layer, or a fraction or bits out of range.
    """
    names = sweep_layers(codec, settings, layers)
    fractions = _fractions(fractions)
    bit_list = _bits(bits)
    plans = {name: _points(codec, settings, name, fractions, bit_list) for name in names}
    total = sum(len(p) for p, _ in plans.values())
    baseline = evaluator.baseline
    done: list[LayerSensitivity] = []
    partial: Sensitivity | None = None  # sent once, with the next step: a live plot
    step = 0
    for name in names:
        info = codec.model.info(name)
        curves: dict[str, list[SweepPoint]] = {"prune": [], "bits": [], "knob": []}
        points, knob = plans[name]
        for curve, at, label in points:
            yield SweepProgress(step, total, f"{name}: {label}", partial)
            partial = None
            if curve == "prune":
                weights = pruned(codec, name, at)
            elif curve == "bits":
                weights = codec.quantized(name, _quantize_only(settings, name, info.kind, at))
            else:
                weights = codec.quantized(name, _knob_only(settings, name, info.kind, knob, at))
            acc = evaluator.evaluate({name: weights}, should_stop)
            if acc is None or stopped(should_stop):
                return None
            curves[curve].append(sweep_point(at, acc))
            step += 1
        done.append(LayerSensitivity(
            name, info.kind, info.size, tuple(curves["prune"]), tuple(curves["bits"]),
            tuple(curves["knob"]), knob,
        ))
        partial = Sensitivity(baseline.baseline_score, baseline.count, tuple(done), baseline.metric)
    yield SweepProgress(total, total, "done")
    return Sensitivity(baseline.baseline_score, baseline.count, tuple(done), baseline.metric)


def sweep_point(at: float, acc: Accuracy) -> SweepPoint:
    """The point of ``acc``: its metric's score, and the top-1 agreement (the cosine for
    outputs without classes), clipped to [0, 1] (a cosine can be negative)."""
    agreement = acc.agreement if acc.agreement == acc.agreement else acc.cosine  # nan: none
    return SweepPoint(at, _unit(acc.score), _unit(agreement))


def _unit(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def stopped(should_stop: ShouldStop | None) -> bool:
    """Whether ``should_stop`` says to stop (never, without one)."""
    return should_stop is not None and should_stop()


def sweep_layers(
    codec: ModelCodec, settings: ModelSettings, layers: Sequence[str] | None = None
) -> list[str]:
    """The layers a sweep covers, in model order (``layers`` checked, or the default set)."""
    infos = codec.model.infos
    if layers is None:
        return [i.name for i in infos
                if settings.kind_of(i.name, i.kind) in COMPRESSIBLE_KINDS
                and not settings.resolve(i.name, i.kind).excluded]
    known = {i.name: settings.kind_of(i.name, i.kind) for i in infos}  # the user's kind wins
    for name in layers:
        if name not in known:
            raise SettingsError(f"the model has no layer {name!r}", codec.model.path)
        if known[name] not in COMPRESSIBLE_KINDS:
            raise SettingsError(
                f"layer {name} ({known[name]}) is always stored losslessly; it cannot be swept",
                codec.model.path,
            )
    wanted = set(layers)
    return [i.name for i in infos if i.name in wanted]


def pruned(codec: ModelCodec, name: str, fraction: float) -> np.ndarray:
    """Tensor ``name`` with the ``fraction`` the codec would prune set to zero, the rest exact."""
    mask = codec.codec(name).mask(LayerSettings(policy="sparsity", value=fraction))
    # C order: the codec numbers positions in C order, and reshape(-1) must be a view.
    out = np.array(codec.model.tensors[name], copy=True, order="C")
    flat = out.reshape(-1)
    # The codec compares magnitudes in float64 (see core.prune.count_pruned).
    magnitude = np.abs(flat.astype(np.float64, copy=False))
    prune = magnitude < mask.threshold
    if mask.ties:
        prune[np.flatnonzero(magnitude == mask.threshold)[: mask.ties]] = True
    flat[prune] = 0
    return out


def knob_of(settings: ModelSettings, name: str, kind: str) -> str:
    """The rate knob a sweep moves for layer ``name`` (``""``: a deep layer, or a method
    without one: swept by pruning and bits)."""
    method = settings.resolve(name, kind).method
    knob = DEFAULT_KNOB.get(method, "") if method != "deep" else ""
    return knob if knob in KNOB_POINTS else ""


def sweep_matches(codec: ModelCodec, sweep: Sensitivity, settings: ModelSettings) -> bool:
    """Whether each layer of ``sweep`` was swept along what ``settings`` now tune for it
    (a knob, or deep's pruning and bits)."""
    kinds = {i.name: i.kind for i in codec.model.infos}
    return all(knob_of(settings, la.name, kinds[la.name]) == la.knob_name
               for la in sweep.layers if la.name in kinds)


def _points(codec: ModelCodec, settings: ModelSettings, name: str, fractions: list[float],
            bit_list: list[int]) -> tuple[list[tuple[str, float, str]], str]:
    """The points a sweep measures of layer ``name``, and its knob (``""``: deep's)."""
    knob = knob_of(settings, name, codec.model.info(name).kind)
    if knob:
        return [("knob", v, f"{knob} {v:.4g}") for v in KNOB_POINTS[knob]], knob
    points = [("prune", f, f"prune {f:.0%}") for f in fractions]
    return points + [("bits", b, f"{b} bits") for b in bit_list], knob


def _knob_only(settings: ModelSettings, name: str, kind: str, knob: str,
               value: float) -> ModelSettings:
    """Settings holding only layer ``name``: its own, with ``knob`` at ``value`` and no
    floor (exactly that value)."""
    s = settings.resolve(name, kind)
    # the method and its options only: an option named like a field (uniform's bits) would
    # be read back as that field
    options = {k: v for k, v in s.options.items() if k not in FIELDS}
    entry = {"method": s.method, **options, knob: value, "excluded": False, "min_sqnr": None,
             "store": s.store}
    return ModelSettings(defaults={}, kinds={}, layers={name: entry})


def _quantize_only(settings: ModelSettings, name: str, kind: str, bits: int) -> ModelSettings:
    """Settings holding only layer ``name``: its own, unpruned, at ``bits`` cluster bits.

    A one-layer ModelSettings keeps the codec call cheap (no re-validation of every layer).
    """
    s = replace(settings.resolve(name, kind), policy="sparsity", value=0.0, bits=bits,
                excluded=False, min_sqnr=None, raise_bits=False)  # exactly these bits
    return ModelSettings(defaults={}, kinds={}, layers={name: s.to_json()})


def _fractions(fractions: Sequence[float]) -> list[float]:
    out = sorted({float(f) for f in fractions})
    if not out or not all(0.0 <= f <= 1.0 for f in out):
        raise SettingsError(f"fractions pruned must be in [0, 1], got {list(fractions)!r}")
    return out


def _bits(bits: Sequence[int]) -> list[int]:
    out = sorted(set(bits))
    if not out or not all(
        isinstance(b, int) and not isinstance(b, bool) and MIN_BITS <= b <= MAX_BITS for b in out
    ):
        raise SettingsError(
            f"bits must be integers from {MIN_BITS} to {MAX_BITS}, got {list(bits)!r}"
        )
    return out
