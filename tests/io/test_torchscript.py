"""The TorchScript reader, on archives made by torch.jit.script / torch.jit.trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inspector.errors import InputError
from inspector.io import read_model, reader_formats
from inspector.io.pytorch import sniff_pytorch
from inspector.io.registry import SNIFF_BYTES
from inspector.io.torchscript import sniff_torchscript

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.(script|trace|trace_method|save|load)` is deprecated:DeprecationWarning"
)


class Net(torch.nn.Module):
    """Conv, batch norm (with its buffers), fc in float32, and an fc layer in float16."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.fc1 = torch.nn.Linear(4 * 6 * 6, 10)
        self.head = torch.nn.Linear(10, 3).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x))).flatten(1)
        return self.head(self.fc1(h).half()).float()


def make_net() -> Net:
    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():  # non-trivial buffers, so a round trip of them means something
        net.bn1.running_mean.uniform_(-1, 1)
        net.bn1.running_var.uniform_(0.5, 2)
        net.bn1.num_batches_tracked.fill_(17)
    return net.eval()


def head(path: Path) -> bytes:
    return path.read_bytes()[:SNIFF_BYTES]


@pytest.mark.parametrize("how", ["script", "trace"])
def test_round_trip(tmp_path: Path, how: str) -> None:
    net = make_net()
    path = tmp_path / "net.pt"
    if how == "script":
        torch.jit.script(net).save(str(path))
    else:
        torch.jit.trace(net, torch.zeros(2, 1, 8, 8)).save(str(path))
    model = read_model(path)
    state = net.state_dict()
    assert model.format == "torchscript"
    assert list(model.tensors) == list(state)  # params and buffers, in the module's order
    for name, tensor in state.items():
        np.testing.assert_array_equal(model.tensors[name], tensor.numpy())
        assert model.info(name).shape == tuple(tensor.shape)
    assert model.dtypes["head.weight"] == "float16"
    assert model.dtypes["bn1.num_batches_tracked"] == "int64"
    assert model.info("conv1.weight").kind == "conv"
    assert model.info("fc1.weight").kind == "fc"
    assert model.info("bn1.running_var").kind == "buffer"


def test_sniffed_before_pytorch_whatever_the_name(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"  # an extension the PyTorch reader claims
    torch.jit.script(make_net()).save(str(path))
    assert sniff_torchscript(head(path))
    assert not sniff_pytorch(head(path))
    assert read_model(path).format == "torchscript"
    names = [spec.name for spec in reader_formats()]
    assert names.index("torchscript") < names.index("pytorch")


def test_archive_without_tensors_is_handed_over(tmp_path: Path) -> None:
    """A module without tensors starts with data.pkl, like a checkpoint."""

    class Empty(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    path = tmp_path / "empty.pt"
    torch.jit.script(Empty()).save(str(path))
    assert sniff_pytorch(head(path))  # looks like a checkpoint from its first bytes...
    with pytest.raises(InputError, match="TorchScript archive holds no parameters") as info:
        read_model(path)  # ...but the PyTorch reader hands it to the TorchScript reader
    assert str(info.value).startswith(f"{path}: ")


def test_state_dict_is_not_sniffed_as_torchscript(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    torch.save(make_net().state_dict(), path)
    assert not sniff_torchscript(head(path))
    assert read_model(path).format == "pytorch"


def test_corrupt_archive_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    torch.jit.script(make_net()).save(str(path))
    data = bytearray(path.read_bytes())
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(data[: len(data) // 2]))  # truncated: the zip directory is gone
    with pytest.raises(InputError) as info:
        read_model(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message
