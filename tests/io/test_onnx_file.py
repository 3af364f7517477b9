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
