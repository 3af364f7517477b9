"""The committed sample models: every file loads with its own library and holds the same net.

Keras is run in a subprocess (one for the whole module): importing Keras pulls in torch's
dynamo and sets a process-wide backend, which the rest of the suite should not inherit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from inspector.cli import main
from inspector.model.settings import load_settings
from inspector.runtime.eval_data import read_eval_data

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text(encoding="utf-8"))
MODELS = sorted(MANIFEST["models"])
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
TOLERANCE = 1e-4


def entry(name: str) -> dict:
    return MANIFEST["models"][name]


def path_of(name: str, role: str) -> Path:
    return SAMPLES / entry(name)["files"][role]


def state_dict(name: str) -> dict[str, np.ndarray]:
    state = torch.load(path_of(name, "state_dict"), weights_only=True)
    return {k: v.numpy() for k, v in state.items()}


def inference_state(name: str) -> dict[str, np.ndarray]:
    """The state dict without batch norm's batch counters, which no other format keeps."""
    return {k: v for k, v in state_dict(name).items() if not k.endswith("num_batches_tracked")}


def held_out(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A model's test inputs (``inputs * scale`` in float32) and labels, read with h5py."""
    with h5py.File(SAMPLES / entry(name)["data"]["test"], "r") as f:
        scale = np.float32(f.attrs["scale"])
        return f["inputs"][()].astype(np.float32) * scale, f["labels"][()]


def torchscript_logits(name: str, inputs: np.ndarray) -> np.ndarray:
    module = torch.jit.load(str(path_of(name, "torchscript"))).eval()
    with torch.no_grad():
        return module(torch.from_numpy(inputs)).numpy()


def onnx_session(name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(path_of(name, "onnx")), providers=["CPUExecutionProvider"])


def keras_layout(kind: str, name: str, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The torch tensors of Keras layer ``name`` in Keras's order and layout."""
    if kind == "Dense":
        return [state[f"{name}.weight"].T, state[f"{name}.bias"]]
    if kind == "Conv2D":
        kernel = [state[f"{name}.weight"].transpose(2, 3, 1, 0)]  # OIHW -> HWIO
        return kernel + ([state[f"{name}.bias"]] if f"{name}.bias" in state else [])
    assert kind == "BatchNormalization"
    return [state[f"{name}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]


def test_manifest_lists_existing_files_and_the_readme_describes_them() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    listed = {f for name in MODELS for f in entry(name)["files"].values()}
    listed |= {f for name in MODELS for f in entry(name)["data"].values()}
    assert listed | set(MANIFEST["data"]) | {"manifest.json", "README.md"} == {
        p.name for p in SAMPLES.iterdir()
    }
    for file in listed | set(MANIFEST["data"]):
        assert f"`{file}`" in readme, file
    assert set(MODELS) == {"lenet300_100", "lenet5", "digits_cnn"}


@pytest.mark.parametrize("file", sorted(MANIFEST["data"]))
def test_data_files(file: str) -> None:
    info = MANIFEST["data"][file]
    with h5py.File(SAMPLES / file, "r") as f:
        inputs, labels = f["inputs"], f["labels"]
        assert inputs.dtype == np.uint8 and labels.dtype == np.int64
        assert inputs.shape == (info["examples"], info["features"])
        assert labels.shape == (info["examples"],)
        assert np.prod(info["image"]) == info["features"]
        assert f.attrs["scale"] == pytest.approx(info["scale"])
        assert inputs[()].max() * f.attrs["scale"] == pytest.approx(1.0)  # 0..255, 0..16
        assert sorted(np.unique(labels[()])) == list(range(10))
        assert f.attrs["license"] and f.attrs["source"] and f.attrs["split_seed"] == 0
    data = read_eval_data(SAMPLES / file)  # as the app reads it
    assert data.count == info["examples"] and data.inputs.dtype == np.float32
    assert float(data.inputs.max()) == pytest.approx(1.0)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_and_torchscript_hold_the_same_tensors(name: str) -> None:
    state = state_dict(name)
    params = sum(v.size for k, v in state.items() if not k.endswith(BUFFERS))
    assert params == entry(name)["parameters"]
    assert len(state) == entry(name)["tensors"]
    scripted = torch.jit.load(str(path_of(name, "torchscript"))).state_dict()
    assert list(scripted) == list(state)
    for key, value in scripted.items():
        np.testing.assert_array_equal(value.numpy(), state[key], err_msg=key)
    if "safetensors" in entry(name)["files"]:
        from safetensors.numpy import load_file

        stored = load_file(path_of(name, "safetensors"))
        assert sorted(stored) == sorted(state)
        for key, value in stored.items():
            np.testing.assert_array_equal(value, state[key], err_msg=key)


@pytest.mark.parametrize("name", MODELS)
def test_onnx_keeps_the_state_dict_names_and_values(name: str) -> None:
    model = onnx.load(str(path_of(name, "onnx")))
    onnx.checker.check_model(model)
    state = inference_state(name)
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert sorted(weights) == sorted(state)
    for key, value in weights.items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    ops = {node.op_type for node in model.graph.node}
    assert ("BatchNormalization" in ops) == any(k.endswith("running_var") for k in state)
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert (graph_input.name, graph_output.name) == ("input", "logits")
    batch, features = graph_input.type.tensor_type.shape.dim
    assert batch.dim_param and features.dim_value == entry(name)["input_features"]


@pytest.mark.parametrize("name", MODELS)
def test_torchscript_and_onnx_agree_and_reach_the_manifest_accuracy(name: str) -> None:
    inputs, labels = held_out(name)
    expected = torchscript_logits(name, inputs)
    assert expected.shape == (len(labels), 10)
    session = onnx_session(name)
    logits = session.run(["logits"], {"input": inputs})[0]
    np.testing.assert_allclose(logits, expected, rtol=0, atol=TOLERANCE)
    few = session.run(["logits"], {"input": inputs[:7]})[0]  # the batch axis is dynamic
    np.testing.assert_allclose(few, expected[:7], rtol=0, atol=TOLERANCE)
    correct = int(np.sum(expected.argmax(1) == labels))
    assert correct == int(np.sum(logits.argmax(1) == labels)) == entry(name)["test_correct"]
    assert correct / len(labels) == pytest.approx(entry(name)["test_accuracy"], abs=1e-6)


def test_the_trained_nets_are_good() -> None:
    accuracy = {name: entry(name)["test_accuracy"] for name in MODELS}
    assert accuracy["lenet300_100"] == 0.975  # other tests rely on these exact weights
    assert accuracy["lenet5"] >= 0.98 and accuracy["digits_cnn"] >= 0.98


def test_legacy_keras_h5_holds_the_weights() -> None:
    """Read without Keras: ``model_weights/<layer>/<layer>/<variable>``."""
    state = state_dict("lenet300_100")
    with h5py.File(path_of("lenet300_100", "keras_h5"), "r") as f:
        assert f.attrs["backend"] == "torch"
        for layer in ("ip1", "ip2", "ip3"):
            stored = f["model_weights"][layer][layer]
            got = [stored["kernel"][()], stored["bias"][()]]
            for a, b in zip(got, keras_layout("Dense", layer, state), strict=True):
                np.testing.assert_array_equal(a, b, err_msg=layer)


_KERAS_DUMP = textwrap.dedent(
    """
    import json, sys
    import h5py, keras, numpy as np

    samples, out = sys.argv[1], sys.argv[2]
    manifest = json.load(open(f"{samples}/manifest.json"))
    arrays = {}
    for name, model_entry in manifest["models"].items():
        with h5py.File(f"{samples}/{model_entry['data']['test']}", "r") as f:
            x = f["inputs"][()].astype(np.float32) * np.float32(f.attrs["scale"])
        for role in ("keras", "keras_h5"):
            if role in model_entry["files"]:
                path = f"{samples}/{model_entry['files'][role]}"
                model = keras.saving.load_model(path, compile=False)
                arrays[f"{role}/{name}/logits"] = np.asarray(model.predict(x, verbose=0))
                for layer in model.layers:
                    for i, w in enumerate(layer.get_weights()):
                        key = f"{role}/{name}/{type(layer).__name__}/{layer.name}/{i}"
                        arrays[key] = w
    np.savez(out, **arrays)
    """
)


@pytest.fixture(scope="module")
def keras_arrays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Weights and test-set logits of every Keras file, as ``keras.saving.load_model`` reads
    them in a fresh process with the torch backend."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    out = tmp_path_factory.mktemp("keras") / "keras.npz"
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    subprocess.run(
        [sys.executable, "-c", _KERAS_DUMP, str(SAMPLES), str(out)],
        env=env,
        check=True,
        timeout=240,
        capture_output=True,
    )
    with np.load(out) as arrays:
        return dict(arrays)


@pytest.mark.parametrize("name", MODELS)
def test_keras_files_hold_the_torch_weights_and_compute_its_logits(
    name: str, keras_arrays: dict[str, np.ndarray]
) -> None:
    state = inference_state(name)
    inputs, _ = held_out(name)
    expected = torchscript_logits(name, inputs)
    for role in ("keras", "keras_h5"):
        if role not in entry(name)["files"]:
            continue
        prefix = f"{role}/{name}/"
        layers: dict[tuple[str, str], list[np.ndarray]] = {}
        for key in sorted(k for k in keras_arrays if k.startswith(prefix) and k.count("/") == 4):
            kind, layer, _i = key[len(prefix) :].split("/")
            layers.setdefault((kind, layer), []).append(keras_arrays[key])
        covered = set()
        for (kind, layer), weights in layers.items():
            for a, b in zip(weights, keras_layout(kind, layer, state), strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"{role} {layer}")
            covered |= {k for k in state if k.startswith(f"{layer}.")}
        assert covered == set(state)
        logits = keras_arrays[f"{prefix}logits"]
        np.testing.assert_allclose(logits, expected, rtol=0, atol=TOLERANCE, err_msg=role)


def test_inspector_info_reads_lenet5(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(SAMPLES / "lenet5.pt"), "--json"]) == 0
    layers = {layer["name"]: layer for layer in json.loads(capsys.readouterr().out)["layers"]}
    assert [layers[f"{n}.weight"]["kind"] for n in ("conv1", "conv2", "ip1", "ip2")] == [
        "conv",
        "conv",
        "fc",
        "fc",
    ]
    assert sum(layer["params"] for layer in layers.values()) == 431_080


def test_lenet5_paper_settings() -> None:
    settings = load_settings(SAMPLES / "lenet5_paper.json")
    kept = {"conv1.weight": 0.66, "conv2.weight": 0.12, "ip1.weight": 0.08, "ip2.weight": 0.19}
    for layer, fraction in kept.items():
        s = settings.resolve(layer, "conv" if layer.startswith("conv") else "fc")
        assert (s.policy, 1 - s.value) == ("sparsity", pytest.approx(fraction))
        assert (s.bits, s.index_bits) == ((8, 5) if layer.startswith("conv") else (5, 5))
