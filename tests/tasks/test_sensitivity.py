"""Sensitivity sweeps on a real small network: one layer at a time, exact codec tensors,
accuracy that really falls, progress, cancellation, and the sweep saved with the settings.

The network (also used by ``test_tune.py``): 16 inputs -> 64 ReLU -> 8 classes on Gaussian
blobs. The hidden layer is a fixed random projection and the output layer is fitted in
closed form (ridge regression), so it trains in milliseconds and identically everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest

from inspector.core.prune import pruned_count
from inspector.errors import SettingsError
from inspector.io.model_file import LoadedModel
from inspector.model.accuracy import Accuracy
from inspector.model.sensitivity import PRUNE_FRACTIONS, SWEEP_BITS, Sensitivity
from inspector.model.settings import ModelSettings, load_settings, save_settings
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.drive import run_to_end
from inspector.tasks.sensitivity import Evaluates, pruned, sensitivity, sweep_layers

LAYERS = ("fc1.weight", "fc2.weight")


def train_mlp(seed: int = 0, classes: int = 8, d: int = 16, hidden: int = 64):
    """Tensors (torch layout: out x in) and held-out examples of a small trained MLP."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (classes, d))
    y = rng.integers(0, classes, 3000)
    x = centers[y] + rng.normal(0.0, 1.0, (y.size, d))
    w1 = rng.normal(0.0, 1.0 / np.sqrt(d), (hidden, d))
    b1 = rng.normal(0.0, 0.5, hidden)
    h = np.hstack([np.maximum(x[:2000] @ w1.T + b1, 0.0), np.ones((2000, 1))])
    solution = np.linalg.solve(h.T @ h + np.eye(hidden + 1), h.T @ np.eye(classes)[y[:2000]])
    tensors = {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": solution[:-1].T,
               "fc2.bias": solution[-1]}
    return {k: v.astype(np.float32) for k, v in tensors.items()}, x[2000:], y[2000:]


def predict(tensors: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = np.maximum(x @ tensors["fc1.weight"].T.astype(np.float64) + tensors["fc1.bias"], 0.0)
    return np.argmax(h @ tensors["fc2.weight"].T.astype(np.float64) + tensors["fc2.bias"], axis=1)


class MlpEvaluator:
    """Implements ``Evaluates`` by running the network in numpy; records what it was given."""

    def __init__(self, tensors: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> None:
        self.tensors, self.x, self.y = tensors, x, y
        self.reference = predict(tensors, x)
        top1 = float(np.mean(self.reference == y))
        self.baseline = Accuracy(top1, 1.0, int(y.size), top1)
        self.calls: list[dict[str, np.ndarray]] = []
        self.stops: list[Callable[[], bool] | None] = []

    def evaluate(
        self, weights: Mapping[str, np.ndarray], should_stop: Callable[[], bool] | None = None
    ) -> Accuracy:
        assert set(weights) <= set(self.tensors)
        for name, w in weights.items():
            assert w.shape == self.tensors[name].shape
        self.calls.append(dict(weights))
        self.stops.append(should_stop)
        pred = predict({**self.tensors, **weights}, self.x)
        return Accuracy(float(np.mean(pred == self.y)), float(np.mean(pred == self.reference)),
                        int(self.y.size), self.baseline.top1)


def mlp(seed: int = 0) -> tuple[ModelCodec, MlpEvaluator]:
    tensors, x, y = train_mlp(seed)
    model = LoadedModel.build("mlp.npz", "npz", tensors)
    return ModelCodec(model), MlpEvaluator(tensors, x, y)


def drive(gen):
    """Run a task generator; return its value and the progress it yielded."""
    steps = []
    return run_to_end(gen, steps.append), steps


@pytest.fixture(scope="module")
def swept() -> tuple[ModelCodec, MlpEvaluator, Sensitivity, list[Progress]]:
    codec, evaluator = mlp()
    result, steps = drive(sensitivity(codec, evaluator, ModelSettings()))
    return codec, evaluator, result, steps


def test_the_network_is_worth_compressing() -> None:
    codec, evaluator = mlp()
    assert 0.85 < evaluator.baseline.top1 < 0.99
    assert isinstance(evaluator, Evaluates)
    kinds = {i.name: i.kind for i in codec.model.infos}
    assert kinds == {"fc1.weight": "fc", "fc1.bias": "bias", "fc2.weight": "fc", "fc2.bias": "bias"}


def test_one_evaluation_per_point_with_only_that_layer(swept) -> None:
    codec, evaluator, result, _ = swept
    per_layer = len(PRUNE_FRACTIONS) + len(SWEEP_BITS)
    assert [la.name for la in result.layers] == list(LAYERS)
    assert len(evaluator.calls) == 2 * per_layer
    assert [list(c) for c in evaluator.calls] == [["fc1.weight"]] * per_layer + [
        ["fc2.weight"]] * per_layer
    assert result.baseline_top1 == evaluator.baseline.top1
    assert result.count == evaluator.baseline.count
    for la in result.layers:
        assert la.kind == "fc"
        assert la.size == codec.model.info(la.name).size
        assert [p.at for p in la.prune] == list(PRUNE_FRACTIONS)
        assert [p.at for p in la.bits] == list(SWEEP_BITS)


def test_progress_counts_every_evaluation(swept) -> None:
    _, evaluator, _, steps = swept
    total = len(evaluator.calls)
    assert [s.done for s in steps] == list(range(total + 1))
    assert all(s.total == total for s in steps)
    assert steps[0].label == "fc1.weight: prune 0%"
    assert steps[len(PRUNE_FRACTIONS)].label == "fc1.weight: 1 bits"
    assert steps[-1].label == "done"


def test_no_pruning_and_8_bits_keep_the_baseline(swept) -> None:
    result = swept[2]
    for la in result.layers:
        zero = la.prune_point(0.0)
        assert zero.top1 == result.baseline_top1 and zero.agreement == 1.0
        eight = la.bits_point(8)
        assert abs(eight.drop_points(result.baseline_top1)) <= 0.5
        assert eight.agreement >= 0.99


def test_accuracy_falls_as_pruning_grows(swept) -> None:
    _, _, result, _ = swept
    for la in result.layers:
        top1 = {p.at: p.top1 for p in la.prune}
        assert top1[0.1] >= result.baseline_top1 - 0.01  # a little pruning is harmless
        assert top1[0.95] < top1[0.9] < top1[0.7] < top1[0.5]
        assert la.prune_point(0.95).drop_points(result.baseline_top1) > 20
        agreement = [p.agreement for p in la.prune]
        assert agreement[-1] < 0.7
        bits = {p.at: p for p in la.bits}
        assert bits[1].top1 < bits[4].top1 - 0.02  # one bit is too few
        assert bits[1].agreement < bits[3].agreement < bits[8].agreement


def test_prune_points_are_prune_only(swept) -> None:
    codec, evaluator, _, _ = swept
    original = codec.model.tensors["fc1.weight"]
    for f, call in zip(PRUNE_FRACTIONS, evaluator.calls, strict=False):
        w = call["fc1.weight"]
        zero = w == 0
        assert int(zero.sum()) == pruned_count(w.size, f)
        np.testing.assert_array_equal(w[~zero], original[~zero])  # survivors exact
        assert np.abs(original[zero]).max(initial=0) <= np.abs(original[~zero]).min(initial=9)


def test_bits_points_are_the_codecs_decoded_tensors_without_pruning(swept) -> None:
    codec, evaluator, _, _ = swept
    first = len(PRUNE_FRACTIONS)
    for b, call in zip(SWEEP_BITS, evaluator.calls[first:], strict=False):
        w = call["fc1.weight"]
        settings = ModelSettings().with_layer("fc1.weight", value=0.0, bits=b)
        np.testing.assert_array_equal(w, codec.quantized("fc1.weight", settings))
        assert len(np.unique(w)) <= 2**b
        assert np.count_nonzero(w) == w.size or b < 8  # nothing pruned (a centroid may be 0)


def test_pruned_matches_the_codecs_mask_in_c_order() -> None:
    rng = np.random.default_rng(5)
    fortran = np.asfortranarray(rng.normal(size=(30, 20)).astype(np.float32))
    # Nine magnitudes only: the masks must break ties by position, as the codec does. (Not
    # fewer: a tensor of at most 16 distinct values reads as a fixed constant, kind "other".)
    ties = (rng.integers(1, 10, (10, 40)) * rng.choice([-0.1, 0.1], (10, 40))).astype(np.float32)
    codec = ModelCodec(LoadedModel.build("t.npz", "npz", {"a.weight": fortran, "b.weight": ties}))
    for name in ("a.weight", "b.weight"):
        original = codec.model.tensors[name]
        for f in (0.0, 0.33, 0.5, 0.9, 1.0):
            w = pruned(codec, name, f)
            decoded = codec.quantized(name, ModelSettings().with_layer(name, value=f, bits=8))
            assert w.dtype == original.dtype and w.shape == original.shape
            assert int((w == 0).sum()) == pruned_count(w.size, f)
            np.testing.assert_array_equal(w == 0, decoded == 0)  # the codec prunes the same
            assert not np.shares_memory(w, original)


def test_saved_with_the_settings(swept, tmp_path: Path) -> None:
    _, _, result, _ = swept
    path = tmp_path / "SETTINGS.json"
    save_settings(ModelSettings().with_layer("fc1.weight", bits=4).with_sensitivity(result), path)
    loaded = load_settings(path)
    assert loaded.sensitivity == result
    assert loaded.resolve("fc1.weight", "fc").bits == 4


def test_chosen_layers_points_and_lossless_layers() -> None:
    codec, evaluator = mlp()
    result, steps = drive(sensitivity(codec, evaluator, ModelSettings(), ["fc2.weight"],
                                      fractions=[0.5, 0.0], bits=[2]))
    assert [la.name for la in result.layers] == ["fc2.weight"]
    assert [p.at for p in result.layers[0].prune] == [0.0, 0.5]
    assert len(evaluator.calls) == 3 and len(steps) == 4
    excluded = ModelSettings().with_layer("fc1.weight", excluded=True)
    assert sweep_layers(codec, excluded) == ["fc2.weight"]
    assert sweep_layers(codec, ModelSettings(), ["fc2.weight", "fc1.weight"]) == list(LAYERS)
    for bad in (["fc3.weight"], ["fc1.bias"]):
        with pytest.raises(SettingsError, match=bad[0].replace(".", r"\.")):
            drive(sensitivity(codec, evaluator, ModelSettings(), bad))
    for kwargs in ({"fractions": [1.5]}, {"bits": [0]}, {"bits": [9]}, {"fractions": []}):
        with pytest.raises(SettingsError):
            drive(sensitivity(codec, evaluator, ModelSettings(), **kwargs))


def test_closing_stops_the_sweep() -> None:
    codec, evaluator = mlp()
    gen = sensitivity(codec, evaluator, ModelSettings())
    for _ in range(4):
        next(gen)
    gen.close()
    assert len(evaluator.calls) == 3  # progress comes before each evaluation
    with pytest.raises(StopIteration):
        next(gen)
    assert len(evaluator.calls) == 3


def test_should_stop_is_passed_through_and_ends_the_sweep() -> None:
    codec, evaluator = mlp()
    per_layer = len(PRUNE_FRACTIONS) + len(SWEEP_BITS)

    def should_stop() -> bool:
        return len(evaluator.calls) >= per_layer + 2

    result, steps = drive(sensitivity(codec, evaluator, ModelSettings(), should_stop=should_stop))
    assert result is None
    assert all(s is should_stop for s in evaluator.stops)
    assert len(evaluator.calls) == per_layer + 2
    assert steps[-1].done == per_layer + 1  # no "done"

    class Stopping(MlpEvaluator):
        """Like the app's evaluator: returns None when stopped mid-evaluation."""

        def evaluate(self, weights, should_stop=None):
            accuracy = super().evaluate(weights, should_stop)
            return None if len(self.calls) == 3 else accuracy

    tensors, x, y = train_mlp()
    stopping = Stopping(tensors, x, y)
    assert drive(sensitivity(codec, stopping, ModelSettings()))[0] is None
    assert len(stopping.calls) == 3


def test_each_finished_layer_is_sent_once_as_a_partial_sweep(swept) -> None:
    _, _, result, steps = swept
    partials = [(s.done, s.partial) for s in steps if s.partial is not None]
    per_layer = len(PRUNE_FRACTIONS) + len(SWEEP_BITS)
    assert [done for done, _ in partials] == [per_layer]  # fc1 done, with fc2's first step
    assert partials[0][1].layers == result.layers[:1]
    assert partials[0][1].baseline_top1 == result.baseline_top1
