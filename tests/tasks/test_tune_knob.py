"""Sensitivity and auto-tune over a method with a rate knob (uniform's rel_step): the sweep
measures each layer along its knob, the tune picks each layer's knob within the budget
(re-measured from the file written), with labels and with the label-free agreement; deep
layers are still swept by pruning and bits."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import SettingsError
from inspector.format.container import open_container
from inspector.model.accuracy import Accuracy
from inspector.model.sensitivity import Sensitivity
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import compress
from inspector.tasks.sensitivity import KNOB_POINTS, sensitivity
from inspector.tasks.target import with_best_method
from inspector.tasks.tune import tune

_spec = importlib.util.spec_from_file_location(
    "sensitivity_tests", Path(__file__).with_name("test_sensitivity.py"))
net = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(net)

UNIFORM = with_best_method(ModelSettings())


class AgreementEvaluator(net.MlpEvaluator):
    """No labels: the drop is in top-1 agreement with the original model."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.baseline = Accuracy(math.nan, 1.0, int(self.y.size), math.nan, metric="agreement")

    def evaluate(self, weights, should_stop=None) -> Accuracy:
        acc = super().evaluate(weights, should_stop)
        return Accuracy(math.nan, acc.agreement, acc.count, math.nan, metric="agreement")


@pytest.fixture(scope="module")
def swept():
    codec, evaluator = net.mlp()
    sweep, _ = net.drive(sensitivity(codec, evaluator, UNIFORM))
    return codec, evaluator, sweep


def test_a_uniform_layer_is_swept_along_its_knob(swept) -> None:
    codec, evaluator, sweep = swept
    values = KNOB_POINTS["rel_step"]
    assert len(evaluator.calls) == 2 * len(values)
    for la in sweep.layers:
        assert la.knob_name == "rel_step" and not la.prune and not la.bits
        assert [p.at for p in la.knob] == sorted(values)
        fine, coarse = la.knob[0], la.knob[-1]
        assert fine.agreement > 0.97 and coarse.agreement < fine.agreement
    assert Sensitivity.from_json(sweep.to_json()) == sweep  # saved with the settings
    name = sweep.layers[0].name  # the weights measured are the layer as the file decodes it
    want = codec.quantized(name, UNIFORM.with_layer(name, rel_step=values[0], min_sqnr=None))
    np.testing.assert_array_equal(evaluator.calls[0][name], want)


def _measured(codec, settings, path: Path, evaluator) -> tuple[Accuracy, int]:
    net.drive(compress(codec, settings, path))
    box = open_container(path)
    weights = {r.name: box.read_layer(i) for i, r in enumerate(box.records)}
    return evaluator.evaluate(weights), path.stat().st_size


@pytest.mark.parametrize("labels", [True, False])
def test_tune_chooses_each_layers_knob_within_the_budget(swept, labels, tmp_path) -> None:
    codec, evaluator, sweep = swept
    budget = 2.0
    if not labels:
        evaluator = AgreementEvaluator(evaluator.tensors, evaluator.x, evaluator.y)
        sweep, _ = net.drive(sensitivity(codec, evaluator, UNIFORM))
        assert sweep.metric == "agreement"
    result, _ = net.drive(tune(codec, evaluator, sweep, budget, UNIFORM))
    assert result.fits and result.accuracy.drop_points <= budget
    for name, value, bits in result.choices:
        assert bits == 0 and value in KNOB_POINTS["rel_step"]
        assert result.settings.layers[name]["rel_step"] == value
    acc, nbytes = _measured(codec, result.settings, tmp_path / "t.dcz", evaluator)
    assert nbytes == result.file_nbytes and acc.drop_points <= budget
    finest = UNIFORM.with_defaults(rel_step=KNOB_POINTS["rel_step"][0])
    assert result.file_nbytes < codec.estimate(finest).file_nbytes


def test_a_deep_sweep_does_not_tune_uniform_layers(swept) -> None:
    codec, evaluator, _ = swept
    deep_sweep, _ = net.drive(sensitivity(codec, evaluator, ModelSettings(), None,
                                          (0.0, 0.5), (4, 8)))
    assert all(la.prune and la.bits and not la.knob for la in deep_sweep.layers)
    with pytest.raises(SettingsError, match="another method"):
        net.drive(tune(codec, evaluator, deep_sweep, 1.0, UNIFORM))
