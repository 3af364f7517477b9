"""Write-back into ONNX models: copies with replaced initializers (main graph and subgraphs)
and Constants that onnxruntime still runs, on models built with onnx and exported by torch."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from inspector.cli import main
from inspector.errors import InputError
from inspector.format.container import open_container
from inspector.io import onnx_writeback, read_model, write_back
from inspector.io.onnx_file import weights_of
from inspector.runtime.runnable_open import open_runnable

STORED = {  # reader name: stored dtype, in the reader's order
    "fc.weight": "float32",
    "fc.bias": "float16",
    "tau": "bfloat16",
    "proj": "float64",
    "half": "float32",
    "offsets": "float32",
    "gate:else_branch/w": "float32",
    "k": "float32",
    "gate:then_branch/w": "float16",
    "decay": "float64",
    "shift": "float32",
}


def tensor(array: np.ndarray, name: str = "") -> TensorProto:
    return numpy_helper.from_array(array, name)


def if_branch(name: str, nodes: list, inits: list) -> onnx.GraphProto:
    return helper.make_graph(
        nodes, name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)],
        inits,
    )


def build(path: Path, external: str = "") -> Path:
    """x[N,4] -> MatMul, Add (fp16 bias), MatMul (fp64 Constant), Mul/Add (value_float(s)
    Constants) -> If on sum > tau (bf16), each branch with an initializer ``w`` -> Loop of
    two steps whose body holds an fp64 initializer and a Constant -> y[N,3]."""
    rng = np.random.default_rng(7)
    then_branch = if_branch(
        "t",
        [helper.make_node("Cast", ["w"], ["w32"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["h4", "w32"], ["t_out"])],
        [tensor(rng.normal(size=3).astype(np.float16), "w")],
    )
    else_branch = if_branch(
        "e",
        [helper.make_node("Mul", ["h4", "w"], ["m"]),
         helper.make_node("Constant", [], ["k"], value=tensor(np.array(-0.75, np.float32))),
         helper.make_node("Add", ["m", "k"], ["e_out"])],
        [tensor(rng.normal(size=3).astype(np.float32), "w")],
    )
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Cast", ["decay"], ["d32"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["v", "d32"], ["vd"]),
            helper.make_node("Constant", [], ["shift"], value=tensor(
                rng.normal(size=3).astype(np.float32))),
            helper.make_node("Add", ["vd", "shift"], ["v_out"]),
        ],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)],
        [tensor(rng.uniform(0.5, 1.5, size=3), "decay")],
    )
    nodes = [
        helper.make_node("MatMul", ["x", "fc.weight"], ["a"]),
        helper.make_node("Cast", ["fc.bias"], ["b32"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["a", "b32"], ["h1"]),
        helper.make_node("Constant", [], ["proj"], value=tensor(rng.normal(size=(3, 3)))),
        helper.make_node("Cast", ["proj"], ["proj32"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["h1", "proj32"], ["h2"]),
        helper.make_node("Constant", [], ["half"], value_float=0.5),
        helper.make_node("Mul", ["h2", "half"], ["h3"]),
        helper.make_node("Constant", [], ["offsets"], value_floats=[0.25, -0.5, 1.0]),
        helper.make_node("Add", ["h3", "offsets"], ["h4"]),
        helper.make_node("Cast", ["tau"], ["tau32"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["h4"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "tau32"], ["c"]),
        helper.make_node("If", ["c"], ["h5"], name="gate",
                         then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Loop", ["steps", "", "h5"], ["y"], body=body),
    ]
    graph = helper.make_graph(
        nodes,
        "nested",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [tensor(rng.normal(size=(4, 3)).astype(np.float32), "fc.weight"),
         tensor(rng.normal(size=3).astype(np.float16), "fc.bias"),
         tensor(np.array(0.5, ml_dtypes.bfloat16), "tau"),
         tensor(np.array(2, np.int64), "steps")],
    )
    model = helper.make_model(graph, producer_name="tests", opset_imports=[
        helper.make_opsetid("", 17)])
    model.ir_version = 9
    helper.set_model_props(model, {"author": "tests"})
    onnx.checker.check_model(model, full_check=True)
    if external:
        onnx.save(model, path, save_as_external_data=True, location=external,
                  size_threshold=0, convert_attribute=True)
    else:
        onnx.save(model, path)
    return path


def reference(x: np.ndarray, t: dict[str, np.ndarray]) -> np.ndarray:
    """What the model computes with weights ``t`` (as float32 arrays of the stored values)."""
    f = {name: np.asarray(a, np.float32) for name, a in t.items()}
    h4 = ((x @ f["fc.weight"] + f["fc.bias"]) @ f["proj"]) * f["half"] + f["offsets"]
    if h4.sum() > f["tau"]:
        v = h4 + f["gate:then_branch/w"]
    else:
        v = h4 * f["gate:else_branch/w"] + f["k"]
    for _ in range(2):
        v = v * f["decay"] + f["shift"]
    return v


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def new_values(model_tensors: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Different values of the same shapes (float64, so the write-back must cast)."""
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=a.shape) for n, a in model_tensors.items()}


def as_stored(array: np.ndarray, dtype: str) -> np.ndarray:
    return np.asarray(array).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)


def assert_stored_equal(got: np.ndarray, expected: np.ndarray, dtype: str) -> None:
    """Bitwise equality in the dtype the model stores."""
    a, b = as_stored(got, dtype), as_stored(expected, dtype)
    assert a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def without_data(path: Path) -> bytes:
    """The model with every weight's data cleared: what must not change."""
    proto = onnx.load(path)
    for weight in weights_of(proto, path):
        for field in ("float_data", "int32_data", "double_data", "raw_data", "f", "floats"):
            if field in weight.holder.DESCRIPTOR.fields_by_name:
                weight.holder.ClearField(field)
    return proto.SerializeToString(deterministic=True)


def inputs(sign: float) -> np.ndarray:
    """Inputs whose sum is large, so the If takes the branch ``sign`` chooses."""
    return sign * np.abs(np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)) * 4


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("source") / "m.onnx")


def test_every_tensor_replaced_and_the_copy_runs(source: Path, tmp_path: Path) -> None:
    original = read_model(source)
    assert original.dtypes == STORED
    for x in (inputs(1.0), inputs(-1.0)):  # the reference is right on both branches
        np.testing.assert_allclose(ort_run(source, x), reference(x, original.tensors),
                                   rtol=1e-4, atol=1e-4)
    new = new_values(original.tensors, seed=1)
    out = tmp_path / "copy.onnx"
    write_back(source, out, new)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    copy = read_model(out)
    assert list(copy.tensors) == list(original.tensors) and copy.dtypes == STORED
    assert copy.metadata == original.metadata
    for name, dtype in STORED.items():
        assert_stored_equal(copy.tensors[name], new[name], dtype)
    assert without_data(out) == without_data(source)  # graph, opset, metadata: all kept
    assert onnx.load(out).metadata_props[0].value == "tests"
    rounded = {n: as_stored(a, STORED[n]).astype(np.float32) for n, a in new.items()}
    for sign in (1.0, -1.0):
        x = inputs(sign)
        got = ort_run(out, x)
        np.testing.assert_allclose(got, reference(x, rounded), rtol=1e-4, atol=1e-4)
        assert not np.allclose(got, ort_run(source, x), atol=1e-2)


def test_tensors_not_named_keep_their_values(source: Path, tmp_path: Path) -> None:
    original = read_model(source)
    changed = ["gate:then_branch/w", "shift", "half"]
    new = {n: a for n, a in new_values(original.tensors, seed=2).items() if n in changed}
    out = tmp_path / "copy.onnx"
    write_back(source, out, new)
    copy = read_model(out)
    for name, dtype in STORED.items():
        assert_stored_equal(copy.tensors[name], new.get(name, original.tensors[name]), dtype)
    x = inputs(1.0)
    expected = reference(x, {**original.tensors, **new})
    np.testing.assert_allclose(ort_run(out, x), expected, rtol=1e-3, atol=1e-3)


def test_the_runnable_substitutes_subgraph_tensors(source: Path, tmp_path: Path) -> None:
    """Main-graph Constants are fed, subgraph tensors are written into a second session: both
    agree with a written-back copy, and leaving the substitution restores the file's values."""
    runnable = open_runnable(source)
    original = read_model(source)
    assert runnable.names == tuple(original.tensors)
    new = new_values(original.tensors, seed=4)
    out = tmp_path / "copy.onnx"
    write_back(source, out, new)
    for sign in (1.0, -1.0):
        x = inputs(sign)
        np.testing.assert_allclose(runnable.run(x, new), ort_run(out, x), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(runnable.run(x, {}), ort_run(source, x), rtol=1e-5, atol=1e-5)
    only_main = {n: new[n] for n in ("proj", "offsets", "fc.bias")}
    x = inputs(1.0)
    expected = reference(x, {**original.tensors, **only_main})
    np.testing.assert_allclose(runnable.run(x, only_main), expected, rtol=1e-3, atol=1e-3)


def test_external_data_source_gives_a_self_contained_copy(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    source = build(folder / "m.onnx", external="m.onnx.data")
    data = (folder / "m.onnx.data").read_bytes()
    original = read_model(source)
    new = new_values({n: original.tensors[n] for n in ("fc.weight", "decay")}, seed=5)
    out_folder = tmp_path / "out"
    out_folder.mkdir()
    out = out_folder / "m.onnx"
    write_back(source, out, new)
    assert sorted(p.name for p in out_folder.iterdir()) == ["m.onnx"]
    proto = onnx.load(out, load_external_data=False)
    tensors = onnx.external_data_helper._get_all_tensors(proto)
    assert not any(onnx.external_data_helper.uses_external_data(t) for t in tensors)
    assert (folder / "m.onnx.data").read_bytes() == data
    x = inputs(-1.0)
    expected = reference(x, {**original.tensors, **new})
    np.testing.assert_allclose(ort_run(out, x), expected, rtol=1e-4, atol=1e-4)


def test_large_copies_get_their_own_data_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past protobuf's 2 GiB limit (lowered here) the copy's initializers go to
    ``<output>.data``; the source's data file is neither used nor touched."""
    monkeypatch.setattr(onnx_writeback, "INLINE_LIMIT", 0)
    monkeypatch.setattr(onnx_writeback, "EXTERNAL_THRESHOLD", 0)
    source = build(tmp_path / "m.onnx", external="weights.bin")
    digest = hashlib.sha256((tmp_path / "weights.bin").read_bytes()).hexdigest()
    original = read_model(source)
    new = new_values(original.tensors, seed=6)
    out = tmp_path / "small.onnx"
    write_back(source, out, new)
    assert (tmp_path / "small.onnx.data").is_file()
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    proto = onnx.load(out, load_external_data=False)
    locations = {
        e.value for t in onnx.external_data_helper._get_initializer_tensors(proto)
        for e in t.external_data if e.key == "location"
    }
    assert locations == {"small.onnx.data"}
    onnx.checker.check_model(str(out), full_check=True)
    copy = read_model(out)
    for name, dtype in STORED.items():
        assert_stored_equal(copy.tensors[name], new[name], dtype)
    assert hashlib.sha256((tmp_path / "weights.bin").read_bytes()).hexdigest() == digest
    rounded = {n: as_stored(a, STORED[n]).astype(np.float32) for n, a in new.items()}
    x = inputs(1.0)
    np.testing.assert_allclose(ort_run(out, x), reference(x, rounded), rtol=1e-4, atol=1e-4)

    # An output whose data file would be the source's own is refused, and nothing is written.
    other = build(tmp_path / "other.onnx", external="out.onnx.data")
    before = (tmp_path / "out.onnx.data").read_bytes()
    with pytest.raises(InputError, match="would overwrite the source") as info:
        write_back(other, tmp_path / "out.onnx", new)
    assert str(info.value).startswith(f"{tmp_path / 'out.onnx'}: ")
    assert (tmp_path / "out.onnx.data").read_bytes() == before
    assert not (tmp_path / "out.onnx").exists()


def torch_net(seed: int, constants: tuple[float, float]):  # type: ignore[no-untyped-def]
    """A scripted net with an ``if``: weights in initializers, Constants in both branches."""
    import torch

    class Net(torch.nn.Module):
        __constants__ = ("then_scale", "else_shift")  # TorchScript inlines them: Constants

        def __init__(self) -> None:
            super().__init__()
            self.then_scale, self.else_shift = constants
            self.fc1 = torch.nn.Linear(4, 8)
            self.fc2 = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc2(torch.relu(self.fc1(x)))
            if y.sum() > 0:  # noqa: SIM108 (a statement, as models write it)
                y = y * self.then_scale
            else:
                y = y - self.else_shift
            return y

    torch.manual_seed(seed)
    return Net().eval()


def export(net, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.jit.script(net), (torch.zeros(2, 4),), str(path), dynamo=False,
                          do_constant_folding=False, opset_version=17, input_names=["input"],
                          dynamic_axes={"input": {0: "batch"}})
    return path


def test_torch_exported_model(tmp_path: Path) -> None:
    """The copy of net A given all of net B's tensors computes what torch computes for B."""
    torch = pytest.importorskip("torch")
    net_b = torch_net(1, (0.25, 1.5))
    a = export(torch_net(0, (3.0, -2.0)), tmp_path / "a.onnx")
    b = export(net_b, tmp_path / "b.onnx")
    model_a, model_b = read_model(a), read_model(b)
    assert list(model_a.tensors) == list(model_b.tensors)
    assert not np.array_equal(model_a.tensors["fc1.weight"], model_b.tensors["fc1.weight"])
    scalars = [n for n, a in model_a.tensors.items() if a.ndim == 0]  # the branches' Constants
    assert {float(model_a.tensors[n]) for n in scalars} >= {3.0, -2.0}
    assert {float(model_b.tensors[n]) for n in scalars} >= {0.25, 1.5}
    out = tmp_path / "a_as_b.onnx"
    write_back(a, out, model_b.tensors)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    for sign in (1.0, -1.0):
        x = sign * np.abs(np.random.default_rng(2).normal(size=(5, 4))).astype(np.float32)
        with torch.no_grad():
            expected = net_b(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ort_run(out, x), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ort_run(out, x), ort_run(b, x), rtol=0, atol=0)


def test_cli_compress_then_write_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """compress -> decode the .dcz -> write_back: the copy holds the decoded weights, runs, and
    computes what the runnable computes with them substituted."""
    pytest.importorskip("torch")
    source = export(torch_net(0, (0.5, 1.0)), tmp_path / "net.onnx")
    assert main(["info", str(source)]) == 0
    dcz = tmp_path / "net.dcz"
    assert main(["compress", str(source), "-o", str(dcz), "--json"]) == 0
    box = open_container(dcz)
    decoded = {r.name: box.read_layer(i) for i, r in enumerate(box.records)}
    original = read_model(source)
    assert set(decoded) == set(original.tensors)
    assert not np.array_equal(decoded["fc1.weight"], original.tensors["fc1.weight"])  # pruned
    out = tmp_path / "net_compressed.onnx"
    write_back(source, out, decoded)
    copy = read_model(out)
    for name, array in decoded.items():
        assert_stored_equal(copy.tensors[name], array, copy.dtypes[name])
    assert main(["info", str(out)]) == 0
    capsys.readouterr()
    x = np.random.default_rng(4).normal(size=(9, 4)).astype(np.float32)
    runnable = open_runnable(source)
    np.testing.assert_allclose(ort_run(out, x), runnable.run(x, decoded), rtol=1e-5, atol=1e-5)


def test_wrong_shape_or_name_is_refused(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.onnx"
    with pytest.raises(InputError, match=r"'decay' has shape \(4,\), the source model \(3,\)"):
        write_back(source, out, {"decay": np.zeros(4)})
    with pytest.raises(InputError, match=r"no tensor 'gate:then_branch/v'"):
        write_back(source, out, {"gate:then_branch/v": np.zeros(3)})
    assert not out.exists()
