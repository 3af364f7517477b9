"""Agreement with the original model on inputs alone: synthetic inputs made from the model's
input shape, inputs-only files, top-1 agreement, output cosine and relative error; on ONNX
models built here with onnx.helper and on the bundled LeNet-300-100 (ONNX and TorchScript)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inspector.errors import InputError, SettingsError
from inspector.model.accuracy import Accuracy
from inspector.model.sensitivity import Sensitivity
from inspector.model.settings import ModelSettings
from inspector.runtime import agreement
from inspector.runtime.eval_inputs import example_shape, parse_shape, synthetic_inputs
from inspector.tasks.accuracy import agreement_line, open_evaluator
from inspector.tasks.codec import ModelCodec
from inspector.tasks.drive import run_to_end
from inspector.tasks.sensitivity import sensitivity
from inspector.tasks.tune import tune

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.(script|save|load)` is deprecated:DeprecationWarning"
)
SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
IN, HIDDEN, OUT = 12, 32, 16


def embedder(path: Path, end: str | None = None, two_outputs: bool = False,
             batch: int | str = "N") -> Path:
    """Gemm -> Relu -> Gemm: an embedding of 16 values (optionally L2-normalised), input
    ``[N, 12]`` with an open batch axis."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (HIDDEN, IN)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, HIDDEN).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.3, (OUT, HIDDEN)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, OUT).astype(np.float32), "b2"),
    ]
    last = "emb" if end is None else "raw"
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], [last], transB=1),
    ]
    if end is not None:
        nodes.append(helper.make_node(end, ["raw"], ["emb"], axis=1, p=2))
    outputs = [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [batch, OUT])]
    if two_outputs:
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", HIDDEN]))
    graph = helper.make_graph(
        nodes, "embedder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, IN])],
        outputs, inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def noise_like(array: np.ndarray, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, float(array.std()), array.shape).astype(np.float32)


# ---------------------------------------------------------------------------- exact agreement


@pytest.mark.parametrize("end", [None, "LpNormalization"])
def test_an_embedding_agrees_with_itself_exactly(tmp_path: Path, end: str | None) -> None:
    evaluator = open_evaluator(embedder(tmp_path / "e.onnx", end), synthetic=40, metric=None)
    base = evaluator.baseline
    again = evaluator.evaluate(dict(evaluator.reference.tensors))  # the same tensors, fed
    assert again is not None
    assert again.cosine == 1.0 and again.relative_error == 0.0 and again.drop_points == 0.0
    assert base.count == 40 and "40 synthetic inputs" in base.inputs and not base.labelled
    if end is None:  # [N, 16] from a Gemm: may be logits, so top-1 agreement is given too
        assert base.metric == "agreement" and again.agreement == 1.0
    else:  # a normalised embedding has no classes: cosine only
        assert base.metric == "cosine" and np.isnan(again.agreement)
        line = agreement_line(again)
        assert "top-1" not in line and "output cosine 1.0000, relative output error 0" in line


@pytest.mark.parametrize("name, shape", [("lenet300_100.onnx", None),
                                         ("lenet300_100_scripted.pt", (1, 784))])
def test_the_bundled_lenet_agrees_with_itself_exactly(name: str, shape: tuple | None) -> None:
    evaluator = open_evaluator(SAMPLES / name, synthetic=64, input_shape=shape, allow_code=True)
    same = evaluator.evaluate(dict(evaluator.reference.tensors))
    assert same is not None and evaluator.metric == "agreement"
    assert (same.agreement, same.cosine, same.relative_error) == (1.0, 1.0, 0.0)
    lossless = ModelSettings().with_defaults(excluded=True)  # every layer stored as it is
    codec = ModelCodec(evaluator.reference)
    exact = run_to_end(evaluator.evaluate_settings(codec, lossless))
    assert (exact.agreement, exact.cosine) == (1.0, 1.0)


# ---------------------------------------------------------------------------- damage shows


def test_a_destroyed_layer_gives_a_low_cosine(tmp_path: Path) -> None:
    evaluator = open_evaluator(embedder(tmp_path / "e.onnx"), synthetic=64, metric="cosine")
    w1 = evaluator.reference.tensors["w1"]
    broken = evaluator.evaluate({"w1": noise_like(w1)})
    mild = evaluator.evaluate({"w1": w1 + noise_like(w1) * 0.01})
    assert broken is not None and mild is not None
    assert broken.cosine < 0.7 and broken.relative_error > 0.5
    assert broken.drop_points == pytest.approx((1 - broken.cosine) * 100)
    assert 0.99 < mild.cosine < 1.0 and 0 < mild.relative_error < 0.05


def test_the_lenet_with_a_destroyed_layer_disagrees() -> None:
    evaluator = open_evaluator(SAMPLES / "lenet300_100.onnx", synthetic=128)
    name = evaluator.reference.infos[0].name
    broken = evaluator.evaluate({name: noise_like(evaluator.reference.tensors[name])})
    assert broken is not None
    assert broken.agreement < 0.5 and broken.cosine < 0.7


def test_several_outputs_are_compared_by_cosine(tmp_path: Path) -> None:
    evaluator = open_evaluator(embedder(tmp_path / "two.onnx", two_outputs=True), synthetic=16)
    assert evaluator.metric == "cosine"
    w2 = evaluator.reference.tensors["w2"]
    changed = evaluator.evaluate({"w2": noise_like(w2)})
    assert changed is not None
    # w2 changes only the first output; the second (the hidden layer) stays, so the cosine of
    # the two side by side is neither 1 nor that of the first alone.
    assert np.isnan(changed.agreement) and 0.0 < changed.cosine < 1.0


# ---------------------------------------------------------------------------- synthetic inputs


def test_synthetic_inputs_are_deterministic() -> None:
    a = synthetic_inputs((3, 8, 8), 10, seed=4)
    b = synthetic_inputs((3, 8, 8), 10, seed=4)
    c = synthetic_inputs((3, 8, 8), 10, seed=5)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)
    assert a.inputs.shape == (10, 3, 8, 8) and a.inputs.dtype == np.float32
    assert a.synthetic and a.labels is None and "10 synthetic inputs" in a.source
    uniform = synthetic_inputs((4,), 1000, distribution="uniform").inputs
    assert uniform.min() >= 0.0 and uniform.max() < 1.0


def test_measurements_on_synthetic_inputs_repeat(tmp_path: Path) -> None:
    path = embedder(tmp_path / "e.onnx")
    settings = ModelSettings().with_defaults(policy="sparsity", value=0.5, bits=3)
    results = []
    for _ in range(2):
        evaluator = open_evaluator(path, synthetic=50, seed=3)
        results.append(run_to_end(evaluator.evaluate_settings(ModelCodec(evaluator.reference),
                                                         settings)))
    assert results[0] == results[1] and results[0].cosine < 1.0


def test_input_shapes(tmp_path: Path) -> None:
    assert parse_shape("1x3x48x320") == (1, 3, 48, 320) == parse_shape("1,3,48,320")
    for bad in ("3", "1x0x4", "ax3", ""):
        with pytest.raises(InputError, match="batch first"):
            parse_shape(bad)
    assert example_shape((3, None, None), None, "m.onnx") == ((3, 160, 160), (
        "2 open dimension(s) set to 160"))
    assert example_shape((3, None, None), (1, 3, 48, 320), "m.onnx")[0] == (3, 48, 320)
    with pytest.raises(InputError, match=r"does not fit the model's input Nx3x\?x\?"):
        example_shape((3, None, None), (1, 1, 48, 320), "m.onnx")
    with pytest.raises(InputError, match="--input-shape"):
        example_shape(None, None, "m.pt")


def test_a_batch_axis_of_minus_one_is_open(tmp_path: Path) -> None:
    # Paddle exports (PP-OCR's classifier) write -1 for "any batch"; it once meant batches of
    # -1 examples, that is no batch at all.
    evaluator = open_evaluator(embedder(tmp_path / "m1.onnx", batch=-1), synthetic=10)
    assert evaluator.baseline.count == 10 and evaluator.runnable.batch_size(
        evaluator.data.inputs) > 1


def test_torchscript_needs_an_input_shape() -> None:
    with pytest.raises(InputError, match=r"records no input shape.*--input-shape") as info:
        open_evaluator(SAMPLES / "lenet300_100_scripted.pt")
    assert str(info.value).startswith(str(SAMPLES / "lenet300_100_scripted.pt"))


# ---------------------------------------------------------------------------- inputs-only files


def test_inputs_only_files(tmp_path: Path) -> None:
    x = synthetic_inputs((784,), 30, seed=9).inputs
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", inputs=x)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=x)
    results = []
    for name in ("x.npy", "x.npz", "x.h5"):
        evaluator = open_evaluator(SAMPLES / "lenet300_100.onnx", tmp_path / name)
        base = evaluator.baseline
        assert base.metric == "agreement" and not base.labelled
        assert base.inputs == f"30 inputs (no labels) of {name}"
        results.append(evaluator.evaluate({"ip1.weight": np.zeros((300, 784), np.float32)}))
    measured = {(r.agreement, r.cosine, r.relative_error, r.count) for r in results}
    assert len(measured) == 1 and results[0].agreement < 1.0


def test_labelled_data_measures_top1_and_agreement() -> None:
    evaluator = open_evaluator(SAMPLES / "lenet300_100.onnx", SAMPLES / "mnist_test.h5")
    base = evaluator.baseline
    assert base.metric == "top1" and base.labelled and base.cosine == 1.0
    cosine = open_evaluator(SAMPLES / "lenet300_100.onnx", SAMPLES / "mnist_test.h5",
                            metric="cosine")
    assert cosine.metric == "cosine" and cosine.baseline.top1 == base.top1


def test_metrics_that_do_not_fit(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="top-1 accuracy needs labels"):
        open_evaluator(SAMPLES / "lenet300_100.onnx", synthetic=4, metric="top1").baseline  # noqa: B018
    normalised = embedder(tmp_path / "n.onnx", "LpNormalization")
    with pytest.raises(InputError, match="no class axis"):
        open_evaluator(normalised, synthetic=4, metric="agreement").baseline  # noqa: B018
    with pytest.raises(InputError, match="not both"):
        open_evaluator(normalised, SAMPLES / "mnist_test.h5", synthetic=4)


def test_outputs_too_big_to_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agreement, "MAX_REFERENCE_NBYTES", 1000)
    evaluator = open_evaluator(embedder(tmp_path / "e.onnx"), synthetic=100)
    with pytest.raises(InputError, match="use fewer inputs"):
        evaluator.baseline  # noqa: B018


# ---------------------------------------------------------------------------- sweep and tune


def test_sweep_and_tune_on_cosine(tmp_path: Path) -> None:
    evaluator = open_evaluator(embedder(tmp_path / "e.onnx"), synthetic=64, metric="cosine")
    codec = ModelCodec(evaluator.reference)
    settings = ModelSettings().with_defaults(policy="sparsity", value=0.0, bits=8)
    kinds = {i.name: i.kind for i in codec.model.infos}
    layers = [n for n in ("w1", "w2") if kinds[n] in ("fc", "conv")]
    assert layers, kinds
    sweep = run_to_end(sensitivity(codec, evaluator, settings, layers, (0.0, 0.5, 0.9), (2, 4, 8)))
    assert sweep.metric == "cosine" and sweep.baseline_top1 == 1.0
    again = Sensitivity.from_json(sweep.to_json())
    assert again == sweep and sweep.to_json()["metric"] == "cosine"
    first = sweep.layers[0]
    assert first.prune[0].top1 == 1.0 and first.prune[-1].top1 < first.prune[0].top1
    result = run_to_end(tune(codec, evaluator, sweep, 1.0, settings))  # cosine >= 0.99
    assert result.fits and result.accuracy.metric == "cosine"
    assert result.accuracy.cosine >= 0.99 - 1e-9
    assert result.settings.sensitivity is not None
    assert result.settings.sensitivity.metric == "cosine"
    top1_sweep = Sensitivity(sweep.baseline_top1, sweep.count, sweep.layers, "top1")
    with pytest.raises(SettingsError, match="sweep again"):
        run_to_end(tune(codec, evaluator, top1_sweep, 1.0, settings))


def test_old_sweeps_measured_top1() -> None:
    data = {"baseline_top1": 0.9, "count": 10, "layers": []}
    assert Sensitivity.from_json(data).metric == "top1"
    with pytest.raises(SettingsError, match="metric"):
        Sensitivity.from_json({**data, "metric": "f1"})


def test_accuracy_json_says_what_it_is() -> None:
    acc = Accuracy(float("nan"), 0.9, 10, float("nan"), 0.95, 0.2, "agreement", "10 synthetic")
    data = acc.to_json()
    assert data["top1"] is None and data["metric"] == "agreement"
    assert data["drop_points"] == pytest.approx(10.0) and data["inputs"] == "10 synthetic"
