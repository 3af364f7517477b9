"""Sensitivity sweeps: how accuracy falls when one layer at a time is pruned or quantized.

Deep Compression picks each layer's prune ratio and bits from such a sweep ([LW] Fig. 5).
A sweep has, per layer, two curves measured with only that layer changed:

- ``prune``: accuracy vs. the fraction of its weights pruned (smallest magnitudes first), the
  survivors left exact (not quantized);
- ``bits``: accuracy vs. the cluster bits, with **no** pruning. The two axes are measured
  apart so each curve depends on one knob only; a combination is checked by measuring it
  (``inspector.tasks.tune``), never assumed from the curves.

Without labels the curves measure agreement with the original model instead (``"metric"``:
``"agreement"``, the top-1 agreement, or ``"cosine"``, the output cosine clipped to [0, 1]); the
``top1`` of each point and ``baseline_top1`` then hold that metric (the baseline is 1).

It is saved with the settings (``"sensitivity"`` in SETTINGS.json)::

    {"metric": "top1", "baseline_top1": 0.981, "count": 10000,
     "layers": [{"name": "ip1.weight", "kind": "fc", "size": 235200,
                 "prune": [{"fraction": 0.0, "top1": 0.981, "agreement": 1.0}, ...],
                 "bits": [{"bits": 1, "top1": 0.52, "agreement": 0.53}, ...]}]}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from inspector.core.settings import MAX_BITS, MIN_BITS
from inspector.errors import SettingsError
from inspector.model.accuracy import METRICS

#: Fractions pruned in a default sweep.
PRUNE_FRACTIONS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: Cluster bits in a default sweep.
SWEEP_BITS: tuple[int, ...] = tuple(range(MIN_BITS, MAX_BITS + 1))


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """Accuracy with one layer changed to setting ``at`` (a fraction pruned, or bits).

    Attributes
    ----------
    at : float
        The fraction pruned in [0, 1] (prune curves) or the cluster bits (bits curves).
    top1 : float
        Top-1 accuracy in [0, 1].
    agreement : float
        Fraction of examples whose prediction equals the uncompressed model's, in [0, 1].
    """

    at: float
    top1: float
    agreement: float

    def __post_init__(self) -> None:
        for name in ("top1", "agreement"):
            _check_unit(name, getattr(self, name))

    def drop_points(self, baseline_top1: float) -> float:
        """Top-1 accuracy lost against ``baseline_top1``, in percentage points."""
        return (baseline_top1 - self.top1) * 100.0


@dataclass(frozen=True, slots=True)
class LayerSensitivity:
    """The curves of one layer, each in increasing order of its setting.

    A deep layer has the ``prune`` and ``bits`` curves; a layer of a registered method with
    a rate knob (``uniform``'s ``rel_step``) has instead the ``knob`` curve: accuracy vs.
    the value of option ``knob_name`` (larger: coarser), the layer coded exactly as the file
    would be. In JSON: ``"knob": {"name": "rel_step", "points": [{"value": ...}, ...]}``.
    """

    name: str
    kind: str
    size: int
    prune: tuple[SweepPoint, ...]
    bits: tuple[SweepPoint, ...]
    knob: tuple[SweepPoint, ...] = ()
    knob_name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SettingsError(f"layer name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.kind, str):
            raise SettingsError(f"layer {self.name}: kind must be a string")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise SettingsError(f"layer {self.name}: size must be an integer >= 0")
        _check_curve(self.name, "prune", self.prune, _check_fraction)
        _check_curve(self.name, "bits", self.bits, _check_bits)
        _check_curve(self.name, "knob", self.knob, _check_knob)
        if bool(self.knob) != bool(self.knob_name) or not isinstance(self.knob_name, str):
            raise SettingsError(f"layer {self.name}: a knob curve needs its option's name")

    def prune_point(self, fraction: float) -> SweepPoint | None:
        """The prune point measured at ``fraction``, if any."""
        return next((p for p in self.prune if p.at == fraction), None)

    def bits_point(self, bits: int) -> SweepPoint | None:
        """The bits point measured at ``bits``, if any."""
        return next((p for p in self.bits if p.at == bits), None)


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """A whole sweep: the uncompressed model's accuracy and every swept layer's curves.

    Attributes
    ----------
    baseline_top1 : float
        Top-1 accuracy of the uncompressed model on the same ``count`` examples.
    count : int
        Number of examples each point was measured on.
    layers : tuple of LayerSensitivity
        The swept layers, in model order.
    metric : str
        What the points' ``top1`` measure (:data:`inspector.model.accuracy.METRICS`).
    """

    baseline_top1: float
    count: int
    layers: tuple[LayerSensitivity, ...]
    metric: str = "top1"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise SettingsError(f"metric must be one of {', '.join(METRICS)}, "
                                f"got {self.metric!r}")
        _check_unit("baseline_top1", self.baseline_top1)
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise SettingsError(f"count must be an integer >= 1, got {self.count!r}")
        names = [la.name for la in self.layers]
        if len(set(names)) != len(names):
            raise SettingsError("a layer is swept twice")

    def layer(self, name: str) -> LayerSensitivity | None:
        """The curves of layer ``name``, if it was swept."""
        return next((la for la in self.layers if la.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (see the module docstring)."""
        return {
            "metric": self.metric,
            "baseline_top1": self.baseline_top1,
            "count": self.count,
            "layers": [
                {
                    "name": la.name,
                    "kind": la.kind,
                    "size": la.size,
                    "prune": [_point_json("fraction", p.at, p) for p in la.prune],
                    "bits": [_point_json("bits", int(p.at), p) for p in la.bits],
                    **({"knob": {"name": la.knob_name,
                                 "points": [_point_json("value", p.at, p) for p in la.knob]}}
                       if la.knob else {}),
                }
                for la in self.layers
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> Sensitivity:
        """A sweep from its JSON dict; anything malformed raises ``SettingsError``."""
        obj = _object(data, "sensitivity", {"metric", "baseline_top1", "count", "layers"})
        layers = obj.get("layers", [])
        if not isinstance(layers, list):
            raise SettingsError('sensitivity: "layers" must be a list')
        try:
            return cls(obj.get("baseline_top1"), obj.get("count"),
                       tuple(_layer_from_json(la) for la in layers),
                       obj.get("metric", "top1"))  # files before metrics measured top-1
        except SettingsError as exc:
            raise SettingsError(f"sensitivity: {exc.problem}") from exc


def _layer_from_json(data: Any) -> LayerSensitivity:
    obj = _object(data, "a swept layer", {"name", "kind", "size", "prune", "bits", "knob"})
    curves: dict[str, Any] = {}
    for curve, key in (("prune", "fraction"), ("bits", "bits")):
        points = obj.get(curve, [])
        if not isinstance(points, list):
            raise SettingsError(f'layer {obj.get("name")!r}: "{curve}" must be a list')
        curves[curve] = tuple(_point_from_json(p, key) for p in points)
    if "knob" in obj:
        knob = _object(obj["knob"], "a knob curve", {"name", "points"})
        points = knob.get("points", [])
        if not isinstance(points, list):
            raise SettingsError(f'layer {obj.get("name")!r}: knob "points" must be a list')
        curves["knob"] = tuple(_point_from_json(p, "value") for p in points)
        curves["knob_name"] = knob.get("name", "")
    return LayerSensitivity(obj.get("name"), obj.get("kind", ""), obj.get("size"), **curves)


def _point_from_json(data: Any, key: str) -> SweepPoint:
    obj = _object(data, "a sweep point", {key, "top1", "agreement"})
    return SweepPoint(obj.get(key), obj.get("top1"), obj.get("agreement"))


def _point_json(key: str, at: float, p: SweepPoint) -> dict[str, Any]:
    return {key: at, "top1": p.top1, "agreement": p.agreement}


def _object(data: Any, what: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SettingsError(f"{what} must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise SettingsError(f"unknown key(s) {', '.join(unknown)} in {what}")
    return data


def _check_curve(
    layer: str, curve: str, points: Any, check: Callable[[str, object], None]
) -> None:
    if not isinstance(points, tuple) or not all(isinstance(p, SweepPoint) for p in points):
        raise SettingsError(f"layer {layer}: {curve} must be a tuple of sweep points")
    for p in points:
        check(layer, p.at)
    if any(a.at >= b.at for a, b in pairwise(points)):
        raise SettingsError(f"layer {layer}: {curve} points must be in increasing order")


def _check_fraction(layer: str, at: object) -> None:
    if not _number(at) or not 0.0 <= at <= 1.0:
        raise SettingsError(f"layer {layer}: fraction pruned must be in [0, 1], got {at!r}")


def _check_bits(layer: str, at: object) -> None:
    if isinstance(at, bool) or not isinstance(at, int) or not MIN_BITS <= at <= MAX_BITS:
        raise SettingsError(
            f"layer {layer}: bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {at!r}"
        )


def _check_knob(layer: str, at: object) -> None:
    if not _number(at) or not at > 0:
        raise SettingsError(f"layer {layer}: a knob value must be a number > 0, got {at!r}")


def _check_unit(name: str, value: object) -> None:
    if not _number(value) or not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name} must be a number in [0, 1], got {value!r}")


def _number(value: object) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value))
