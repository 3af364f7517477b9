"""Write-back: a copy of the source model in its own format with some tensors replaced. The
checks every format shares, and the TorchScript rewriter (the copy runs with the new weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inspector.errors import InputError
from inspector.io import can_write_back, read_model, rewriter_formats, write_back, write_weights

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.(script|trace|trace_method|save|load)` is deprecated:DeprecationWarning"
)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x))).flatten(1)
        return self.fc(h.to(self.fc.weight.dtype))


@pytest.fixture
def scripted(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = Net().eval()
    net.fc.half()  # a float16 layer: the copy must keep it float16
    path = tmp_path / "src" / "net.pt"
    path.parent.mkdir()
    torch.jit.script(net).save(str(path))
    return path


def halved(path: Path) -> dict[str, np.ndarray]:
    """The source's weight tensors halved, computed in float64 (the writer must cast)."""
    tensors = read_model(path).tensors
    return {k: v.astype(np.float64) / 2 for k, v in tensors.items() if k.endswith("weight")}


def test_torchscript_copy_holds_the_new_weights_in_the_source_dtypes(scripted, tmp_path) -> None:
    before = scripted.read_bytes()
    new = halved(scripted)
    out = tmp_path / "copy.pt"
    write_back(scripted, out, new, allow_code=True)
    source, copy = read_model(scripted), read_model(out)
    assert copy.format == "torchscript" and list(copy.tensors) == list(source.tensors)
    assert copy.dtypes == source.dtypes
    for name, array in copy.tensors.items():
        expected = new[name].astype(array.dtype) if name in new else source.tensors[name]
        assert array.tobytes() == expected.tobytes(), name
    assert scripted.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.pt", "src"]  # no temp left


def test_torchscript_copy_runs_with_the_new_weights(scripted, tmp_path) -> None:
    new = halved(scripted)
    out = tmp_path / "copy.pt"
    write_back(scripted, out, new, allow_code=True)
    original, reference = torch.jit.load(str(scripted)), torch.jit.load(str(scripted))
    with torch.no_grad():
        for name, value in reference.named_parameters():
            if name in new:
                value.copy_(torch.from_numpy(new[name]).to(value.dtype))
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        got = torch.jit.load(str(out))(x)
        assert torch.equal(got, reference(x))
        assert not torch.equal(got, original(x))  # the new weights change what it computes


def test_tensors_not_named_keep_their_values(scripted, tmp_path) -> None:
    source = read_model(scripted)
    write_back(scripted, tmp_path / "copy.pt", {"fc.bias": np.ones(5, np.float32)}, allow_code=True)
    copy = read_model(tmp_path / "copy.pt")
    assert np.array_equal(copy.tensors["fc.bias"], np.ones(5, np.float16))
    for name in source.tensors:
        if name != "fc.bias":
            assert copy.tensors[name].tobytes() == source.tensors[name].tobytes()


@pytest.mark.parametrize(
    ("tensors", "problem"),
    [
        ({"nope.weight": np.zeros(3, np.float32)}, "the source model has no tensor 'nope.weight'"),
        ({"fc.weight": np.zeros((5, 3), np.float32)}, "has shape (5, 3), the source model"),
        ({"fc.weight": np.array(["a"] * 720).reshape(5, 144)}, "is not a numeric array"),
        ({}, "nothing to write"),
    ],
)
def test_tensors_that_do_not_fit_are_one_input_error(scripted, tmp_path, tensors, problem):
    out = tmp_path / "copy.pt"
    with pytest.raises(InputError) as err:
        write_back(scripted, out, tensors, allow_code=True)
    assert problem in str(err.value) and str(out) in str(err.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_the_copy_must_keep_the_extension_and_never_be_the_source(scripted, tmp_path) -> None:
    new = halved(scripted)
    with pytest.raises(InputError, match=r"must keep its extension \.pt"):
        write_back(scripted, tmp_path / "copy.onnx", new, allow_code=True)
    link = tmp_path / "link.pt"
    link.symlink_to(scripted)
    before = scripted.read_bytes()
    for target in (scripted, link):
        with pytest.raises(InputError, match="refusing to overwrite the source model"):
            write_back(scripted, target, new, allow_code=True)
    assert scripted.read_bytes() == before
    with pytest.raises(InputError, match="folder does not exist"):
        write_back(scripted, tmp_path / "nope" / "copy.pt", new, allow_code=True)


def test_formats_without_write_back_say_what_to_write_instead(tmp_path) -> None:
    source = tmp_path / "w.safetensors"
    write_weights(source, {"fc.weight": np.ones((2, 2), np.float32)})
    assert not can_write_back(source)
    with pytest.raises(InputError, match=r"cannot write back into safetensors .*\.npz instead"):
        write_back(source, tmp_path / "copy.safetensors", {"fc.weight": np.zeros((2, 2))})
    assert not (tmp_path / "copy.safetensors").exists()


def test_write_back_formats_are_registered(scripted, tmp_path) -> None:
    assert {"onnx", "keras", "torchscript"} <= set(rewriter_formats())
    assert can_write_back(scripted)
    assert not can_write_back(tmp_path / "missing.pt")


def test_a_failing_rewriter_leaves_no_file(scripted, tmp_path, monkeypatch) -> None:
    def broken(module, path):
        Path(path).write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.jit, "save", broken)
    out = tmp_path / "copy.pt"
    with pytest.raises(InputError, match="disk full") as err:
        write_back(scripted, out, halved(scripted), allow_code=True)
    assert str(out) in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
