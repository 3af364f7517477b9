"""Tuning across methods on the bundled LeNet-5: the result is measured within the budget
(re-measured from the file it writes), each tuned layer holds exactly its recipe and the
others keep theirs, a larger budget gives no larger file, and should_stop ends it."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from inspector.format.container import open_container
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, compress
from inspector.tasks.drive import run_to_end
from inspector.tasks.methods_curve import CurvesRequest, method_curves, plan_point
from inspector.tasks.tune_methods import ladder, tune_methods

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
LAYERS = ("conv1.weight", "ip2.weight")  # the small ones: the test stays quick


@pytest.fixture(scope="module")
def lenet5():
    from inspector.tasks.accuracy import open_evaluator

    evaluator = open_evaluator(SAMPLES / "lenet5.onnx", SAMPLES / "mnist_test.h5")
    return ModelCodec(evaluator.reference), evaluator


def drive(gen):
    return run_to_end(gen, lambda _step: None)


@pytest.fixture(scope="module")
def tuned(lenet5):
    codec, evaluator = lenet5
    return {b: drive(tune_methods(codec, evaluator, b, ModelSettings(), LAYERS, max_rounds=4))
            for b in (0.3, 5.0)}


def test_the_result_is_measured_within_the_budget_from_its_file(lenet5, tuned, tmp_path):
    codec, evaluator = lenet5
    for budget, result in tuned.items():
        assert result.fits and result.accuracy.drop_points <= budget + 1e-9
        path = tmp_path / f"{budget}.dcz"
        drive(compress(codec, result.settings, path))
        assert path.stat().st_size == result.file_nbytes
        box = open_container(path)
        weights = {r.name: box.read_layer(i) for i, r in enumerate(box.records)}
        assert evaluator.evaluate(weights).score == pytest.approx(result.accuracy.score, abs=0)


def test_each_tuned_layer_holds_its_recipe_and_the_others_keep_theirs(lenet5, tuned):
    codec, _ = lenet5
    default = ModelSettings()
    for result in tuned.values():
        assert [n for n, _ in result.recipes] == list(LAYERS)
        for name, recipe in result.recipes:
            info = codec.model.info(name)
            got = result.settings.resolve(name, info.kind)
            assert got.method == recipe.method
            assert {k: got.to_json()[k] for k in recipe.options} == recipe.options
            planned = plan_point(codec, name, recipe, default.resolve(name, info.kind))
            assert codec.layer(info, result.settings).payload_nbytes == planned.payload_nbytes
        for info in codec.model.infos:
            if info.name not in LAYERS:
                assert result.settings.resolve(info.name, info.kind) == default.resolve(
                    info.name, info.kind)
    assert tuned[5.0].file_nbytes <= tuned[0.3].file_nbytes
    # a large budget takes some other method than deep somewhere: the search is across them
    assert {r.method for _, r in tuned[5.0].recipes} - {"deep"}


def test_the_ladder_grows_in_size_and_fidelity_and_beats_every_recipe(lenet5):
    codec, _ = lenet5
    s = ModelSettings().resolve("ip2.weight", "fc")
    curves = drive(method_curves(codec, CurvesRequest("ip2.weight", s)))
    rungs = ladder(curves.curves)
    assert len(rungs) > 3
    for a, b in pairwise(rungs):
        assert a.payload_nbytes < b.payload_nbytes and a.sqnr_db < b.sqnr_db
    for _, points in curves.curves:
        for p in points:  # each is on the ladder or beaten by a rung no bigger and no worse
            assert any(r.payload_nbytes <= p.payload_nbytes and r.sqnr_db >= p.sqnr_db
                       for r in rungs)


def test_should_stop_ends_the_tune(lenet5):
    codec, evaluator = lenet5
    gen = tune_methods(codec, evaluator, 0.5, ModelSettings(), LAYERS, should_stop=lambda: True)
    assert drive(gen) is None
