"""Runnable models: TorchScript and ONNX compute the network's logits, weights can be swapped
in and out, and everything that cannot run says so in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from inspector.errors import InputError
from inspector.io import read_model
from inspector.runtime.runnable import Runnable
from inspector.runtime.runnable_open import open_runnable

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.(script|save|load)` is deprecated:DeprecationWarning"
)
FEATURES, HIDDEN, CLASSES = 20, 32, 5


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(FEATURES, HIDDEN)
        self.fc2 = torch.nn.Linear(HIDDEN, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.fixture(scope="module")
def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def save_onnx(net: Net, path: Path, batch: int | str = "N") -> Path:
    """The same network written with the onnx library: Gemm(transB) - Relu - Gemm."""
    inits = [numpy_helper.from_array(t.detach().numpy(), n) for n, t in net.state_dict().items()]
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, FEATURES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def files(net: Net, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runnable")
    torch.jit.script(net).save(str(folder / "net_scripted.pt"))
    save_onnx(net, folder / "net.onnx")
    save_onnx(net, folder / "fixed.onnx", batch=7)
    torch.save(net, folder / "whole.pt")
    torch.save(net.state_dict(), folder / "state.pt")
    return {p.name: p for p in folder.iterdir()}


def inputs(n: int = 50) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, FEATURES)).astype(np.float32)


def torch_logits(net: Net, x: np.ndarray, **replace: np.ndarray) -> np.ndarray:
    """The reference: plain torch on a copy of the network."""
    copy = Net()
    copy.load_state_dict(net.state_dict())
    with torch.no_grad():
        for name, value in replace.items():
            copy.get_parameter(name).copy_(torch.from_numpy(value))
        return copy(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", ["net_scripted.pt", "net.onnx", "fixed.onnx"])
def test_logits_match_torch(net: Net, files: dict[str, Path], name: str) -> None:
    runnable = open_runnable(files[name], allow_code=True)
    assert isinstance(runnable, Runnable)
    x = inputs()
    logits = runnable.run(x, {})
    assert logits.shape == (50, CLASSES) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, torch_logits(net, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["net_scripted.pt", "net.onnx"])
def test_names_are_the_readers(files: dict[str, Path], name: str) -> None:
    runnable = open_runnable(files[name], allow_code=True)
    model = read_model(files[name])
    assert runnable.names == tuple(model.tensors)
    reference = runnable.reference()
    assert list(reference.tensors) == list(model.tensors)
    for key, array in model.tensors.items():
        np.testing.assert_array_equal(reference.tensors[key], array)


@pytest.mark.parametrize("name", ["net_scripted.pt", "net.onnx", "fixed.onnx"])
def test_substitution_changes_outputs_then_restores(
    net: Net, files: dict[str, Path], name: str
) -> None:
    runnable = open_runnable(files[name], allow_code=True)
    x = inputs()
    changed = np.random.default_rng(2).normal(size=(HIDDEN, FEATURES)).astype(np.float32)
    logits = runnable.run(x, {"fc1.weight": changed})
    np.testing.assert_allclose(
        logits, torch_logits(net, x, **{"fc1.weight": changed}), rtol=1e-5, atol=1e-5
    )
    assert not np.allclose(logits, torch_logits(net, x), atol=1e-3)
    np.testing.assert_allclose(runnable.run(x, {}), torch_logits(net, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        runnable.reference().tensors["fc1.weight"], net.fc1.weight.detach().numpy()
    )


def test_failure_inside_substitution_restores(net: Net, files: dict[str, Path]) -> None:
    runnable = open_runnable(files["net_scripted.pt"], allow_code=True)
    zeros = np.zeros((HIDDEN, FEATURES), np.float32)
    with pytest.raises(RuntimeError), runnable.substituted({"fc1.weight": zeros}):
        raise RuntimeError("interrupted")
    x = inputs()
    np.testing.assert_allclose(runnable.run(x, {}), torch_logits(net, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["net_scripted.pt", "net.onnx"])
def test_bad_weights_name_the_tensor(files: dict[str, Path], name: str) -> None:
    runnable = open_runnable(files[name], allow_code=True)
    with pytest.raises(InputError, match=r"no tensor named 'conv9\.weight'"):
        runnable.run(inputs(), {"conv9.weight": np.zeros(3, np.float32)})
    with pytest.raises(InputError, match=r"'fc1\.weight' has shape \[3\]"):
        runnable.run(inputs(), {"fc1.weight": np.zeros(3, np.float32)})


@pytest.mark.parametrize("name", ["net_scripted.pt", "net.onnx"])
def test_data_the_model_cannot_take(files: dict[str, Path], name: str) -> None:
    runnable = open_runnable(files[name], allow_code=True)
    wrong = np.zeros((4, FEATURES + 1), np.float32)
    with pytest.raises(InputError, match=r"cannot run on inputs of shape \[4, 21\]") as info:
        runnable.run(wrong, {})
    message = str(info.value)
    assert message.startswith(f"{files[name]}: ") and "\n" not in message


def test_pickled_module_needs_opt_in(net: Net, files: dict[str, Path]) -> None:
    path = files["whole.pt"]
    with pytest.raises(InputError, match="allow_pickle=True") as info:
        open_runnable(path, allow_code=True)
    assert str(info.value).startswith(f"{path}: cannot run this file: ")
    runnable = open_runnable(path, allow_pickle=True, allow_code=True)
    x = inputs()
    np.testing.assert_allclose(runnable.run(x, {}), torch_logits(net, x), rtol=1e-5, atol=1e-5)
    assert runnable.names == tuple(net.state_dict())


def test_files_that_cannot_run(files: dict[str, Path], tmp_path: Path) -> None:
    npz = tmp_path / "w.npz"
    np.savez(npz, w=np.ones(3))
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"definitely not onnx")
    cases = {
        files["state.pt"]: "cannot run this file: it holds only weights",
        npz: "cannot run this file: only TorchScript",
        garbage: "not a readable ONNX model",
        tmp_path / "missing.onnx": "no such file",
    }
    for path, match in cases.items():
        for allow_pickle in (False, True):
            with pytest.raises(InputError, match=match) as info:
                open_runnable(path, allow_pickle=allow_pickle, allow_code=True)
            message = str(info.value)
            assert message.startswith(f"{path}: ") and "\n" not in message


def test_onnx_with_two_inputs(net: Net, tmp_path: Path) -> None:
    path = save_onnx(net, tmp_path / "two.onnx")
    model = onnx.load(path)
    model.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1]))
    onnx.save(model, path)
    with pytest.raises(InputError, match=r"takes 2 inputs \(x, mask\)"):
        open_runnable(path, allow_code=True)


@pytest.mark.parametrize("dtype", [TensorProto.FLOAT16, TensorProto.BFLOAT16])
def test_onnx_half_weights_are_replaced_in_their_dtype(
    net: Net, tmp_path: Path, dtype: int
) -> None:
    """fc1.weight stored as float16/bfloat16 (cast to float in the graph) takes float32 arrays."""
    path = save_onnx(net, tmp_path / "half.onnx")
    model = onnx.load(path)
    init = next(t for t in model.graph.initializer if t.name == "fc1.weight")
    narrow = helper.tensor_dtype_to_np_dtype(dtype)
    stored = net.fc1.weight.detach().numpy().astype(narrow)
    init.CopyFrom(numpy_helper.from_array(stored, "fc1.weight"))
    model.graph.node[0].input[1] = "fc1.weight.float"
    model.graph.node.insert(
        0, helper.make_node("Cast", ["fc1.weight"], ["fc1.weight.float"], to=TensorProto.FLOAT)
    )
    onnx.save(model, path)
    runnable = open_runnable(path, allow_code=True)
    assert read_model(path).dtypes["fc1.weight"] == np.dtype(narrow).name
    x = inputs()
    as_stored = stored.astype(np.float32)
    np.testing.assert_allclose(
        runnable.run(x, {}), torch_logits(net, x, **{"fc1.weight": as_stored}), atol=1e-5
    )
    changed = np.random.default_rng(3).normal(size=(HIDDEN, FEATURES)).astype(np.float32)
    rounded = changed.astype(narrow).astype(np.float32)
    np.testing.assert_allclose(
        runnable.run(x, {"fc1.weight": changed}),
        torch_logits(net, x, **{"fc1.weight": rounded}),
        atol=1e-5,
    )


def save_nested_onnx(net: Net, path: Path) -> Path:
    """The network with fc2.weight in a Constant node and fc1.bias in an If branch (the other
    branch holds an ``alt_bias`` Constant); the condition is a graph initializer."""
    state = {n: t.detach().numpy() for n, t in net.state_dict().items()}
    then_branch = helper.make_graph(
        [helper.make_node("Identity", ["fc1.bias"], ["b_then"])], "then", [],
        [helper.make_tensor_value_info("b_then", TensorProto.FLOAT, [HIDDEN])],
        [numpy_helper.from_array(state["fc1.bias"], "fc1.bias")],
    )
    alt = numpy_helper.from_array(np.full(HIDDEN, 5.0, np.float32))
    else_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["alt_bias"], value=alt)], "else", [],
        [helper.make_tensor_value_info("alt_bias", TensorProto.FLOAT, [HIDDEN])],
    )
    nodes = [
        helper.make_node("If", ["use_fc1_bias"], ["b1"], then_branch=then_branch,
                         else_branch=else_branch),
        helper.make_node("Gemm", ["x", "fc1.weight", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Constant", [], ["fc2.weight"],
                         value=numpy_helper.from_array(state["fc2.weight"])),
        helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "nested",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        [numpy_helper.from_array(state["fc1.weight"], "fc1.weight"),
         numpy_helper.from_array(state["fc2.bias"], "fc2.bias"),
         numpy_helper.from_array(np.array(True), "use_fc1_bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def test_onnx_constants_and_subgraph_weights(net: Net, tmp_path: Path) -> None:
    """A Constant of the main graph and an initializer of an If branch are replaced like any
    initializer; the session built for subgraph values is reused while they stay the same."""
    path = save_nested_onnx(net, tmp_path / "nested.onnx")
    runnable = open_runnable(path, allow_code=True)
    assert runnable.names == tuple(read_model(path).tensors)
    assert set(runnable.names) == {*net.state_dict(), "alt_bias"}
    x = inputs()
    np.testing.assert_allclose(runnable.run(x, {}), torch_logits(net, x), rtol=1e-5, atol=1e-5)
    rng = np.random.default_rng(4)
    new = {
        "fc2.weight": rng.normal(size=(CLASSES, HIDDEN)).astype(np.float32),
        "fc1.bias": rng.normal(size=HIDDEN).astype(np.float32),
    }
    expected = torch_logits(net, x, **new)
    np.testing.assert_allclose(runnable.run(x, new), expected, rtol=1e-5, atol=1e-5)
    with runnable.substituted(new):
        session = runnable._session  # the one built with the new fc1.bias
    with runnable.substituted({**new, "fc2.weight": np.zeros((CLASSES, HIDDEN), np.float32)}):
        assert runnable._session is session  # fc1.bias unchanged: no rebuild
    for name in new:  # one at a time, then the file's values again
        np.testing.assert_allclose(
            runnable.run(x, {name: new[name]}), torch_logits(net, x, **{name: new[name]}),
            rtol=1e-5, atol=1e-5,
        )
    np.testing.assert_allclose(runnable.run(x, {}), torch_logits(net, x), rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match=r"'fc1\.bias' has shape \[3\]"):
        runnable.run(x, {"fc1.bias": np.zeros(3, np.float32)})
