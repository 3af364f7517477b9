"""TorchScript parameters get their kind from the module class in the archive (code never runs)."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from inspector.io import read_model
from inspector.io.torchscript_types import script_kinds


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.conv = nn.Conv1d(8, 8, 3)
        self.norm = nn.BatchNorm1d(8)
        self.rnn = nn.LSTM(8, 6, bidirectional=True)
        self.gru = nn.GRUCell(12, 4)
        self.head = nn.Sequential(nn.Linear(4, 3))
        self.p7 = nn.Parameter(torch.randn(5))  # a custom module's parameter: its name decides
        n = torch.arange(64, dtype=torch.float32)
        k = torch.arange(33, dtype=torch.float32)[:, None]
        self.register_buffer("basis", torch.cos(2 * torch.pi * k * n / 64))  # fixed, 2-D

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(self.emb(ids).transpose(1, 2)))
        y, _ = self.rnn(x.permute(2, 0, 1))
        return self.head(self.gru(y[-1])) + self.p7.sum() + self.basis.sum()


def _scripted(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(Net().eval()), str(path))
    return path


def test_parameters_take_the_kind_of_their_module_class(tmp_path: Path) -> None:
    model = read_model(_scripted(tmp_path))
    got = {i.name: (i.kind, i.reason) for i in model.infos}
    assert got["emb.weight"] == ("embedding", "weight of Embedding 'emb'")
    assert got["conv.weight"] == ("conv", "weight of Conv1d 'conv'")
    assert got["conv.bias"] == ("bias", "bias of Conv1d 'conv'")
    assert got["norm.weight"][0] == got["norm.bias"][0] == "norm"
    assert got["norm.running_var"][0] == "buffer"
    assert got["rnn.weight_ih_l0"] == ("fc", "weight_ih_l0 of LSTM 'rnn'")
    assert got["rnn.weight_hh_l0_reverse"][0] == "fc"
    assert got["rnn.bias_ih_l0"] == ("bias", "bias_ih_l0 of LSTM 'rnn'")
    assert got["rnn.bias_hh_l0_reverse"][0] == "bias"
    assert got["gru.weight_hh"][0] == "fc" and got["gru.bias_ih"][0] == "bias"
    assert got["head.0.weight"] == ("fc", "weight of Linear 'head.0'")
    assert got["basis"] == ("buffer", "registered buffer basis of Net")
    assert got["p7"][0] == "other"  # name guess: a 1-D tensor named p7


def test_an_archive_naming_a_dangerous_global_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple:
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
        archive.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
    assert script_kinds(path) == {}
    assert not marker.exists()


def test_a_damaged_archive_gives_no_hints(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert script_kinds(path) == {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("m/data.pkl", b"\x80\x02garbage")
    path.write_bytes(buf.getvalue())
    assert script_kinds(path) == {}


def test_the_runnable_reference_has_the_readers_kinds(tmp_path: Path) -> None:
    """Evaluation compresses the runnable's reference model: its kinds must be the reader's."""
    from inspector.runtime.runnable_open import open_runnable

    path = _scripted(tmp_path)
    read = {i.name: (i.kind, i.reason) for i in read_model(path).infos}
    runnable = open_runnable(path, allow_code=True)
    reference = {i.name: (i.kind, i.reason) for i in runnable.reference().infos}
    assert reference == read
    assert reference["basis"][0] == "buffer"
