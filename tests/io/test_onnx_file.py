"""The ONNX reader, on models built with the onnx library (and one exported by torch)."""

from __future__ import annotations

import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inspector.errors import InputError
from inspector.io import read_model
from inspector.io.onnx_file import sniff_onnx
from inspector.io.registry import SNIFF_BYTES, reader_formats


def initializers() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv1.weight": rng.normal(size=(4, 1, 3, 3)).astype(np.float32),
        "fc1.weight": rng.normal(size=(6, 5)).astype(np.float16),
        "fc2.weight": rng.normal(size=(3, 6)).astype(ml_dtypes.bfloat16),
        "fc2.bias": rng.normal(size=3).astype(np.float64),
        "temperature": np.array(0.5, dtype=np.float32),  # 0-d
    }


def save_model(path: Path, arrays: dict[str, np.ndarray], external: bool = False) -> Path:
    """A graph whose float initializers are ``arrays``, plus an int64 shape initializer."""
    inits = [numpy_helper.from_array(a, name) for name, a in arrays.items()]
    inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), "shape"))
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None])],
        inits,
    )
    opset = [helper.make_opsetid("", 17)]
    model = helper.make_model(graph, producer_name="tests", opset_imports=opset)
    model.ir_version = 9
    if external:
        onnx.save(model, path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    else:
        onnx.save(model, path)
    return path


def test_round_trip(tmp_path: Path) -> None:
    arrays = initializers()
    model = read_model(save_model(tmp_path / "m.onnx", arrays))
    assert model.format == "onnx"
    assert list(model.tensors) == list(arrays)  # float initializers only, in file order
    assert model.dtypes == {
        "conv1.weight": "float32",
        "fc1.weight": "float16",
        "fc2.weight": "bfloat16",
        "fc2.bias": "float64",
        "temperature": "float32",
    }
    for name, array in arrays.items():
        got = model.tensors[name]
        assert got.shape == array.shape
        expected = array.astype(np.float32) if name == "fc2.weight" else array
        np.testing.assert_array_equal(got, expected)
    assert model.tensors["fc2.weight"].dtype == np.float32  # bfloat16 widened, exactly
    assert model.tensors["temperature"].shape == ()
    assert model.info("conv1.weight").kind == "conv"
    assert model.info("fc1.weight").kind == "fc"
    assert model.metadata["producer"] == "tests"
    assert model.metadata["opset"] == "17"


def test_external_data(tmp_path: Path) -> None:
    arrays = initializers()
    path = save_model(tmp_path / "m.onnx", arrays, external=True)
    assert (tmp_path / "weights.bin").stat().st_size > 0
    model = read_model(path)
    np.testing.assert_array_equal(model.tensors["conv1.weight"], arrays["conv1.weight"])
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(InputError, match=r"conv1\.weight") as info:
        read_model(path)
    assert str(info.value).startswith(f"{path}: ")


def test_sniffed_without_the_extension(tmp_path: Path) -> None:
    path = save_model(tmp_path / "model.bin", initializers())
    assert sniff_onnx(path.read_bytes()[:SNIFF_BYTES])
    assert read_model(path).format == "onnx"
    assert "onnx" in [spec.name for spec in reader_formats()]


def test_sniff_claims_no_other_format(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.numpy import save_file

    state = {"w": np.ones((3, 4), np.float32)}
    files = {
        "zip.pt": lambda p: torch.save({"w": torch.ones(3)}, p),
        "legacy.pt": lambda p: torch.save(
            {"w": torch.ones(3)}, p, _use_new_zipfile_serialization=False
        ),
        "m.safetensors": lambda p: save_file(state, str(p)),
        "m.npz": lambda p: np.savez(p, **state),
    }
    for name, save in files.items():
        save(tmp_path / name)
        assert not sniff_onnx((tmp_path / name).read_bytes()[:SNIFF_BYTES]), name
    assert not sniff_onnx(b"\x08")
    assert not sniff_onnx(b"\x08\x09\x12")  # a field cut short is not enough evidence


def test_torch_export(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.zeros(1, 4),), str(path), dynamo=False)
    model = read_model(path)
    for name, tensor in net.state_dict().items():
        np.testing.assert_array_equal(model.tensors[name], tensor.numpy())


@pytest.mark.parametrize(
    "content",
    [b"\x08\x09\x12\x05hello:\xff\xff\xff\xff\x0f", b"not a protobuf at all"],
    ids=["truncated", "garbage"],
)
def test_bad_files_are_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_model_without_float_weights(tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.onnx", {})
    with pytest.raises(InputError, match="no float initializers"):
        read_model(path)


# ---------------------------------------------------------------- subgraphs and Constants
def branch(name: str, arrays: dict[str, np.ndarray], nodes: list | None = None) -> onnx.GraphProto:
    """A subgraph holding ``arrays`` as initializers; it outputs the outer value ``h``."""
    return helper.make_graph(
        nodes or [helper.make_node("Identity", ["h"], [f"{name}_out"])],
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )


def nested_model(path: Path, external: bool = False) -> Path:
    """Float tensors in every place the reader looks: main graph, Constants, If branches, a
    Loop body with an If inside, and a custom node with a GRAPHS attribute."""
    rng = np.random.default_rng(5)
    proj = helper.make_tensor("proj", TensorProto.DOUBLE, [4, 4], rng.normal(size=16))
    loop_body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Constant", [], ["shift"], value=numpy_helper.from_array(
                rng.normal(size=(4, 4)).astype(np.float32))),
            helper.make_node(
                "If", ["cond_in"], ["inner_out"], name="inner",
                then_branch=branch("t2", {"w": np.full(2, 3.0, np.float32)}),
                else_branch=branch("e2", {"w": np.full(2, 4.0, np.float32)}),
            ),
            helper.make_node("Identity", ["inner_out"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
        ],
        [numpy_helper.from_array(np.arange(3, dtype=np.float64), "decay")],
    )
    nodes = [
        helper.make_node("Identity", ["x"], ["h"]),
        helper.make_node("Constant", [], ["proj_out"], value=proj),
        helper.make_node("Constant", [], ["half"], value_float=0.5),
        helper.make_node("Constant", [], ["offsets"], value_floats=[1.0, 2.0, 3.0]),
        helper.make_node("Constant", [], ["axes"], value_ints=[0]),  # not float: skipped
        helper.make_node("Constant", [], ["steps"], value=numpy_helper.from_array(
            np.array(2, np.int64))),
        helper.make_node(
            "If", ["flag"], ["gated"], name="gate",
            then_branch=branch("t", {"w": np.ones((2, 3), np.float16)}),
            else_branch=branch("e", {"w": np.zeros((2, 3), np.float32)}),
        ),
        helper.make_node("Loop", ["steps", "flag", "gated"], ["looped"], body=loop_body),
        helper.make_node(
            "Multi", ["h"], ["y"], domain="tests",
            graphs=[branch("g0", {"w": np.full(5, 7.0, np.float32)}),
                    branch("g1", {"v": np.full(6, 8.0, np.float32)})],
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "nested",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((4, 4), np.float32), "fc.weight"),
         numpy_helper.from_array(np.array(True), "flag")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    if external:
        onnx.save(model, path, save_as_external_data=True, location="weights.bin",
                  size_threshold=0, convert_attribute=True)
    else:
        onnx.save(model, path)
    return path


NESTED_NAMES = {  # reader name: (shape, stored dtype), in the reader's order
    "fc.weight": ((4, 4), "float32"),
    "proj_out": ((4, 4), "float64"),
    "half": ((), "float32"),
    "offsets": ((3,), "float32"),
    # make_node sorts attributes by name: else_branch is first in the file
    "gate:else_branch/w": ((2, 3), "float32"),
    "gate:then_branch/w": ((2, 3), "float16"),
    "decay": ((3,), "float64"),
    "shift": ((4, 4), "float32"),
    "Loop#7:body/inner:else_branch/w": ((2,), "float32"),
    "Loop#7:body/inner:then_branch/w": ((2,), "float32"),
    "Multi#8:graphs[0]/w": ((5,), "float32"),
    "v": ((6,), "float32"),
}


def test_subgraphs_and_constants(tmp_path: Path) -> None:
    model = read_model(nested_model(tmp_path / "m.onnx"))
    assert list(model.tensors) == list(NESTED_NAMES)
    for name, (shape, dtype) in NESTED_NAMES.items():
        assert model.tensors[name].shape == shape, name
        assert model.dtypes[name] == dtype, name
    np.testing.assert_array_equal(model.tensors["gate:then_branch/w"], np.ones((2, 3)))
    np.testing.assert_array_equal(model.tensors["Loop#7:body/inner:else_branch/w"], [4.0, 4.0])
    np.testing.assert_array_equal(model.tensors["offsets"], [1.0, 2.0, 3.0])
    assert model.tensors["half"].dtype == np.float32 and float(model.tensors["half"]) == 0.5
    assert model.tensors["decay"].dtype == np.float64
    # A 2-D Constant (a MatMul weight, say) is a compressible fc; scalars are not.
    kinds = {info.name: info.kind for info in model.infos}
    assert kinds["proj_out"] == kinds["shift"] == kinds["gate:else_branch/w"] == "fc"
    assert kinds["half"] == "other" and kinds["offsets"] == "other"


def test_subgraphs_and_constants_in_external_data(tmp_path: Path) -> None:
    inline = read_model(nested_model(tmp_path / "inline.onnx"))
    folder = tmp_path / "ext"
    folder.mkdir()
    path = nested_model(folder / "m.onnx", external=True)
    proto = onnx.load(path, load_external_data=False)
    shift = proto.graph.node[7].attribute[0].g.node[1].attribute[0].t
    assert shift.data_location == TensorProto.EXTERNAL  # Constants are stored outside too
    model = read_model(path)
    assert list(model.tensors) == list(inline.tensors)
    for name, array in inline.tensors.items():
        np.testing.assert_array_equal(model.tensors[name], array)
    (folder / "weights.bin").write_bytes(b"")
    with pytest.raises(InputError, match=r"fc\.weight") as info:
        read_model(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_external_data_outside_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    path = nested_model(folder / "m.onnx")
    proto = onnx.load(path)
    decay = proto.graph.node[7].attribute[0].g.initializer[0]  # in the Loop body
    decay.ClearField("double_data")
    decay.data_location = TensorProto.EXTERNAL
    for key, value in {"location": "../secret.bin", "offset": "0", "length": "16"}.items():
        entry = decay.external_data.add()
        entry.key, entry.value = key, value
    path.write_bytes(proto.SerializeToString())  # onnx.save would refuse to write it
    with pytest.raises(InputError, match=r"'decay'.*outside"):
        read_model(path)


def test_name_clashes_get_a_suffix(tmp_path: Path) -> None:
    """A Constant whose output repeats a main initializer's name (which ONNX forbids) and
    Constants repeating each other's output still get names of their own."""
    constant = numpy_helper.from_array(np.full((2, 2), 9.0, np.float32))
    nodes = [
        helper.make_node("Constant", [], ["fc.weight"], value=constant),
        helper.make_node("Constant", [], ["c"], value_float=1.0),
        helper.make_node("Constant", [], ["c"], value_float=2.0),
        helper.make_node("Constant", [], ["c"], value_float=3.0),
    ]
    graph = helper.make_graph(
        nodes, "g", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.ones((2, 2), np.float32), "fc.weight")],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), path)
    model = read_model(path)
    assert list(model.tensors) == ["fc.weight", "fc.weight~2", "c", "c~2", "c~3"]
    np.testing.assert_array_equal(model.tensors["fc.weight"], np.ones((2, 2)))
    np.testing.assert_array_equal(model.tensors["fc.weight~2"], np.full((2, 2), 9.0))
    assert [float(model.tensors[n]) for n in ("c", "c~2", "c~3")] == [1.0, 2.0, 3.0]


def test_torch_export_with_control_flow(tmp_path: Path) -> None:
    """The TorchScript-based exporter writes a scripted ``if`` as an If node, and tensors
    made in ``forward`` as Constant nodes, in the main graph and in the branches."""
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.fc(x) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.5], [0.5, 0.0, 1.0]])
            if y.sum() > 0:  # noqa: SIM108 (a statement, as models write it)
                y = y * 0.25
            else:
                y = y - 1.5
            return y

    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(Net().eval())
        torch.onnx.export(scripted, (torch.zeros(2, 4),), str(path), dynamo=False,
                          do_constant_folding=False, opset_version=17)
    model = read_model(path)
    names = list(model.tensors)
    assert names[:2] == ["fc.weight", "fc.bias"]
    constants = {n: model.tensors[n] for n in names[2:]}
    (mix,) = [n for n, a in constants.items() if a.shape == (3, 3)]
    assert constants[mix][0, 1] == 0.5 and model.info(mix).kind == "fc"
    scalars = {float(a) for a in constants.values() if a.ndim == 0}
    assert {0.25, 1.5} <= scalars  # the two branches' Constants
    assert len(set(names)) == len(names)
