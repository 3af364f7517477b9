"""Sensitivity sweep: prune or quantize one layer at a time and measure the accuracy.

Every point is one evaluation with only that layer replaced, the others left original:

- prune points keep the layer's weights exact and zero the ones the codec's mask prunes
  (``policy="sparsity"``, smallest magnitudes first, ties by position), so the curve shows
  pruning alone;
- bits points are the layer exactly as the compressed file decodes it with that many cluster
  bits and **no pruning**, with the layer's own init, index bits and Huffman settings.

The evaluator is anything with ``baseline`` and ``evaluate`` (:class:`Evaluates`), e.g.
``inspector.tasks.accuracy.Evaluator``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from inspector.core.settings import MAX_BITS, MIN_BITS, LayerSettings
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

ShouldStop = Callable[[], bool]


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
    total = len(names) * (len(fractions) + len(bit_list))
    baseline = evaluator.baseline
    done: list[LayerSensitivity] = []
    partial: Sensitivity | None = None  # sent once, with the next step: a live plot
    step = 0
    for name in names:
        info = codec.model.info(name)
        curves: dict[str, list[SweepPoint]] = {"prune": [], "bits": []}
        points = [("prune", f, f"prune {f:.0%}") for f in fractions]
        points += [("bits", b, f"{b} bits") for b in bit_list]
        for curve, at, label in points:
            yield SweepProgress(step, total, f"{name}: {label}", partial)
            partial = None
            if curve == "prune":
                weights = pruned(codec, name, at)
            else:
                weights = codec.quantized(name, _quantize_only(settings, name, info.kind, at))
            acc = evaluator.evaluate({name: weights}, should_stop)
            if acc is None or stopped(should_stop):
                return None
            curves[curve].append(sweep_point(at, acc))
            step += 1
        done.append(LayerSensitivity(
            name, info.kind, info.size, tuple(curves["prune"]), tuple(curves["bits"])
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
