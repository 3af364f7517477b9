"""The accuracy engine: measured top-1 of substituted weights, on TorchScript and ONNX models
made by the real libraries, checked against plain torch."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.model.settings import ModelSettings
from inspector.tasks.accuracy import Evaluator, open_evaluator, weight_proxy
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.drive import run_to_end

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.(script|save|load)` is deprecated:DeprecationWarning"
)
EXAMPLES, FLIPPED = 3000, 300  # more than one batch; 10% of the labels disagree with the net
SETTINGS = ModelSettings().with_defaults(policy="sparsity", value=0.6, bits=3)


class Mlp(torch.nn.Module):
    """``sizes[0]`` inputs, ReLU between fully connected layers ``fc1``, ``fc2``, ..."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in itertools.pairwise(sizes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def save_models(net: Mlp, folder: Path, stem: str) -> tuple[Path, Path]:
    """The network as a TorchScript archive and as an ONNX graph of the same initializers."""
    script = folder / f"{stem}_scripted.pt"
    torch.jit.script(net).save(str(script))
    state = net.state_dict()
    inits = [numpy_helper.from_array(t.numpy(), name) for name, t in state.items()]
    nodes, x = [], "x"
    count = len(net.layers)
    for i in range(count):
        out = "logits" if i == count - 1 else f"h{i}"
        w, b = f"layers.{i}.weight", f"layers.{i}.bias"
        nodes.append(helper.make_node("Gemm", [x, w, b], [out], transB=1))
        if i < count - 1:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        x = out
    sizes = (net.layers[0].in_features, net.layers[-1].out_features)
    graph = helper.make_graph(
        nodes,
        stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", sizes[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", sizes[1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx_path = folder / f"{stem}.onnx"
    onnx.save(model, onnx_path)
    return script, onnx_path


def torch_predictions(net: Mlp, x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """The independent reference: plain torch on a copy of the network."""
    copy = Mlp((net.layers[0].in_features, *(layer.out_features for layer in net.layers)))
    copy.load_state_dict(net.state_dict())
    with torch.no_grad():
        for name, value in weights.items():
            copy.get_parameter(name).copy_(torch.from_numpy(value))
        return copy(torch.from_numpy(x)).argmax(1).numpy()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("accuracy")
    torch.manual_seed(0)
    net = Mlp((20, 48, 6)).eval()
    script, onnx_path = save_models(net, folder, "mlp")
    x = np.random.default_rng(0).normal(size=(EXAMPLES, 20)).astype(np.float32)
    labels = torch_predictions(net, x, {})
    labels[:FLIPPED] = (labels[:FLIPPED] + 1) % 6
    data = folder / "data.npz"
    np.savez(data, inputs=x, labels=labels)
    return {"net": net, "script": script, "onnx": onnx_path, "data": data, "x": x,
            "labels": labels, "folder": folder}


def drive(gen: object) -> tuple[list[Progress], object]:
    steps = []
    return steps, run_to_end(gen, steps.append)


@pytest.mark.parametrize("kind", ["script", "onnx"])
def test_baseline(setup: dict, kind: str) -> None:
    evaluator = open_evaluator(setup[kind], setup["data"], allow_code=True)
    base = evaluator.baseline
    assert base.top1 == pytest.approx(1 - FLIPPED / EXAMPLES)
    assert base.baseline_top1 == base.top1
    assert base.agreement == 1.0 and base.count == EXAMPLES
    again = evaluator.evaluate({})
    assert again == base  # the uncompressed model agrees with itself everywhere


@pytest.mark.parametrize("kind", ["script", "onnx"])
def test_zeroing_a_layer_drops_accuracy(setup: dict, kind: str) -> None:
    evaluator = open_evaluator(setup[kind], setup["data"], allow_code=True)
    zeros = {"layers.0.weight": np.zeros((48, 20), np.float32)}
    accuracy = evaluator.evaluate(zeros)
    assert accuracy is not None
    # Every example now gets the same class: the one relu(bias) leads to.
    constant = torch_predictions(setup["net"], setup["x"], zeros)
    assert len(set(constant)) == 1
    assert accuracy.top1 == pytest.approx(np.mean(setup["labels"] == constant[0]))
    assert accuracy.top1 < accuracy.baseline_top1 - 0.3
    assert accuracy.drop_points == pytest.approx((accuracy.baseline_top1 - accuracy.top1) * 100)


def test_settings_on_onnx_and_torchscript_agree_with_torch(setup: dict) -> None:
    results = []
    for kind in ("script", "onnx"):
        evaluator = open_evaluator(setup[kind], setup["data"], allow_code=True)
        codec = ModelCodec(evaluator.reference)
        steps, accuracy = drive(evaluator.evaluate_settings(codec, SETTINGS))
        assert steps[-1].done == steps[-1].total
        results.append(accuracy)
    decoded = {n: codec.quantized(n, SETTINGS) for n in ("layers.0.weight", "layers.1.weight")}
    predictions = torch_predictions(setup["net"], setup["x"], decoded)
    base = torch_predictions(setup["net"], setup["x"], {})
    # Same predictions; the output cosine differs between runtimes only by float rounding.
    assert (results[0].top1, results[0].agreement) == (results[1].top1, results[1].agreement)
    assert results[0].cosine == pytest.approx(results[1].cosine, rel=1e-6)
    assert results[0].top1 == pytest.approx(np.mean(predictions == setup["labels"]))
    assert results[0].agreement == pytest.approx(np.mean(predictions == base))
    assert results[0].agreement < 1.0  # 3-bit weights change some predictions


def counting(codec: ModelCodec) -> list[str]:
    calls: list[str] = []
    original = codec.quantized

    def quantized(name: str, settings: ModelSettings) -> np.ndarray:
        calls.append(name)
        return original(name, settings)

    codec.quantized = quantized  # type: ignore[method-assign]
    return calls


def test_only_changed_layers_are_decoded_again(setup: dict) -> None:
    evaluator = open_evaluator(setup["onnx"], setup["data"], allow_code=True)
    codec = ModelCodec(evaluator.reference)
    calls = counting(codec)
    _, first = drive(evaluator.evaluate_settings(codec, SETTINGS))
    assert calls == ["layers.0.weight", "layers.1.weight"]  # biases are stored losslessly
    calls.clear()
    _, same = drive(evaluator.evaluate_settings(codec, SETTINGS))
    assert calls == [] and same == first
    changed = SETTINGS.with_layer("layers.1.weight", bits=1)
    _, second = drive(evaluator.evaluate_settings(codec, changed))
    assert calls == ["layers.1.weight"]
    assert second != first
    calls.clear()
    _, back = drive(evaluator.evaluate_settings(codec, SETTINGS.with_layer("layers.1.weight")))
    assert calls == ["layers.1.weight"] and back == first
    calls.clear()
    excluded = SETTINGS.with_layer("layers.0.weight", excluded=True)
    _, partly = drive(evaluator.evaluate_settings(codec, excluded))
    assert calls == []  # the excluded layer is the model's own tensor; the other is cached
    decoded = {"layers.1.weight": codec.quantized("layers.1.weight", SETTINGS)}
    assert partly == evaluator.evaluate(decoded)


@pytest.mark.parametrize("kind", ["script", "onnx"])
def test_cancel_restores_the_model(setup: dict, kind: str) -> None:
    evaluator = open_evaluator(setup[kind], setup["data"], allow_code=True)
    base = evaluator.baseline
    zeros = {"layers.0.weight": np.zeros((48, 20), np.float32)}
    polls: list[int] = []

    def stop_after_first_batch() -> bool:
        polls.append(1)
        return len(polls) > 1

    assert evaluator.evaluate(zeros, should_stop=stop_after_first_batch) is None
    assert len(polls) == 2
    gen = evaluator.evaluate_settings(ModelCodec(evaluator.reference), SETTINGS)
    steps = [next(gen) for _ in range(4)]  # two decodes, then inside the substituted run
    assert steps[-1].label.startswith("running batch")
    gen.close()
    assert evaluator.evaluate({}) == base
    np.testing.assert_array_equal(
        evaluator.runnable.reference().tensors["layers.0.weight"],
        setup["net"].state_dict()["layers.0.weight"].numpy(),
    )


def test_layers_the_model_does_not_take(setup: dict) -> None:
    evaluator = open_evaluator(setup["onnx"], setup["data"], allow_code=True)
    tensors = dict(evaluator.reference.tensors)
    tensors["extra.weight"] = np.ones((4, 4), np.float32)
    other = LoadedModel.build("other.pt", "pytorch", tensors)
    with pytest.raises(InputError, match=r"no tensor named 'extra\.weight' \(from other\.pt\)"):
        drive(evaluator.evaluate_settings(ModelCodec(other), SETTINGS))
    with pytest.raises(InputError, match="extra"):
        Evaluator(evaluator.runnable, evaluator.data, other)


def test_labels_beyond_the_classes(setup: dict, tmp_path: Path) -> None:
    data = tmp_path / "labels.npz"
    np.savez(data, inputs=setup["x"][:10], labels=np.arange(10))
    with pytest.raises(InputError, match="labels go up to 9") as info:
        open_evaluator(setup["script"], data, allow_code=True).baseline  # noqa: B018
    assert str(info.value).startswith(f"{data}: ")


def test_files_that_cannot_be_evaluated(setup: dict, tmp_path: Path) -> None:
    state = tmp_path / "state.pt"
    torch.save(setup["net"].state_dict(), state)
    bad_data = tmp_path / "bad.h5"
    bad_data.write_bytes(b"not hdf5")
    wrong_width = tmp_path / "wide.npz"
    np.savez(wrong_width, inputs=np.zeros((5, 21), np.float32), labels=np.zeros(5, np.int64))
    cases: list[tuple[Callable[[], object], Path, str]] = [
        (lambda: open_evaluator(state, setup["data"]), state, "holds only weights"),
        (lambda: open_evaluator(setup["onnx"], bad_data), bad_data, "not a readable HDF5"),
        (lambda: open_evaluator(setup["onnx"], wrong_width).baseline, setup["onnx"],
         r"cannot run on inputs of shape \[5, 21\]"),
    ]
    for call, path, match in cases:
        with pytest.raises(InputError, match=match) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message


def test_weight_proxy(setup: dict) -> None:
    evaluator = open_evaluator(setup["onnx"], setup["data"], allow_code=True)
    codec = ModelCodec(evaluator.reference)
    estimate = codec.estimate(SETTINGS)
    proxy = weight_proxy(estimate)
    assert [layer.name for layer in proxy.layers] == ["layers.0.weight", "layers.1.weight"]
    assert proxy.sqnr_db == estimate.sqnr_db
    signal = noise = 0.0
    for layer in proxy.layers:
        w = evaluator.reference.tensors[layer.name].astype(np.float64)
        q = codec.quantized(layer.name, SETTINGS).astype(np.float64)
        layer_noise, layer_signal = float(np.sum((w - q) ** 2)), float(np.sum(w**2))
        assert layer.relative_error == pytest.approx(math.sqrt(layer_noise / layer_signal), 1e-4)
        assert layer.sqnr_db == pytest.approx(10 * math.log10(layer_signal / layer_noise), 1e-4)
        signal, noise = signal + layer_signal, noise + layer_noise
    assert proxy.relative_error == pytest.approx(math.sqrt(noise / signal), 1e-4)


def test_lenet_sized_model_is_fast(tmp_path: Path) -> None:
    """LeNet-300-100 on 1,000 MNIST-shaped examples: well under a second per evaluation."""
    torch.manual_seed(1)
    net = Mlp((784, 300, 100, 10)).eval()
    x = np.random.default_rng(1).random((1000, 784), dtype=np.float32)
    data = tmp_path / "digits.npz"
    np.savez(data, inputs=x, labels=torch_predictions(net, x, {}))
    settings = ModelSettings().with_defaults(policy="sparsity", value=0.9, bits=5)
    for path in save_models(net, tmp_path, "lenet"):
        evaluator = open_evaluator(path, data, allow_code=True)
        assert evaluator.baseline.top1 == 1.0
        codec = ModelCodec(evaluator.reference)
        drive(evaluator.evaluate_settings(codec, settings))  # decodes every layer once
        start = time.perf_counter()
        _, accuracy = drive(evaluator.evaluate_settings(codec, settings.with_layer(
            "layers.2.weight", bits=2)))
        assert time.perf_counter() - start < 0.5, path.name
        assert accuracy.count == 1000  # type: ignore[attr-defined]
