"""Trainable models: TorchScript in, TorchScript out, pickles only when allowed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from inspector.errors import InputError
from inspector.io.module_state import assign_state, named_tensors
from inspector.runtime.trainable import (
    clone_module,
    load_trainable,
    save_trainable,
    state_arrays,
)

# TorchScript is the point here; torch 2.13 flags torch.jit.save/load as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


@pytest.fixture
def scripted(tmp_path: Path) -> Path:
    path = tmp_path / "net_scripted.pt"
    torch.jit.script(make_net().eval()).save(str(path))
    return path


def new_weights(module: nn.Module) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        name: rng.normal(size=arr.shape).astype(arr.dtype)
        for name, arr in state_arrays(module).items()
        if arr.dtype == np.float32 and not name.endswith("running_var")
    }


def test_torchscript_round_trip_gives_the_new_weights_outputs(scripted: Path, tmp_path: Path):
    source_bytes = scripted.read_bytes()
    model = load_trainable(scripted, allow_code=True)
    assert model.scripted and model.path == str(scripted)
    before = state_arrays(model.module)
    weights = new_weights(model.module)
    out = tmp_path / "out" / "tuned.pt"
    out.parent.mkdir()
    save_trainable(model.module, out, weights, protect=[scripted])

    reloaded = torch.jit.load(str(out)).eval()
    expected = make_net().eval()
    expected.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    x = torch.randn(4, 6)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), expected(x), rtol=0, atol=0)
    saved = state_arrays(reloaded)
    for name, array in weights.items():
        np.testing.assert_array_equal(saved[name], array)
    # The source file and the loaded module are untouched; no temporary file is left.
    assert scripted.read_bytes() == source_bytes
    for name, array in state_arrays(model.module).items():
        np.testing.assert_array_equal(array, before[name])
    assert sorted(p.name for p in out.parent.iterdir()) == ["tuned.pt"]


def test_names_are_the_state_dict_names(scripted: Path):
    module = load_trainable(scripted, allow_code=True).module
    names = list(module.state_dict())
    assert list(state_arrays(module)) == names
    assert list(named_tensors(module)) == names
    assert "1.running_mean" in names and "3.weight" in names


def test_refuses_to_overwrite_the_source(scripted: Path):
    model = load_trainable(scripted, allow_code=True)
    before = scripted.read_bytes()
    with pytest.raises(InputError, match="overwrite") as err:
        save_trainable(model.module, scripted, protect=[scripted])
    assert str(scripted) in str(err.value)
    assert scripted.read_bytes() == before


def test_pickled_module_needs_allow_pickle(tmp_path: Path):
    path = tmp_path / "whole_module.pt"
    torch.save(make_net(), path)
    with pytest.raises(InputError, match="not a TorchScript archive") as err:
        load_trainable(path, allow_code=True)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    model = load_trainable(path, allow_pickle=True, allow_code=True)
    assert not model.scripted and isinstance(model.module, nn.Sequential)
    # A plain module is written back as TorchScript.
    out = tmp_path / "scripted.pt"
    save_trainable(model.module, out, new_weights(model.module))
    assert load_trainable(out, allow_code=True).scripted


def test_state_dict_is_not_a_trainable_model(tmp_path: Path):
    path = tmp_path / "state.pt"
    torch.save(make_net().state_dict(), path)
    with pytest.raises(InputError, match="not a TorchScript"):
        load_trainable(path, allow_code=True)
    with pytest.raises(InputError, match="state dict"):
        load_trainable(path, allow_pickle=True, allow_code=True)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"PK\x03\x04broken zip"])
def test_garbage_is_one_line_input_error(tmp_path: Path, content: bytes):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        load_trainable(path, allow_pickle=True, allow_code=True)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="no such file"):
        load_trainable(tmp_path / "missing.pt", allow_code=True)


def test_clone_collects_gradients_and_is_independent(scripted: Path):
    module = load_trainable(scripted, allow_code=True).module
    copy = clone_module(module)
    copy(torch.randn(4, 6)).sum().backward()
    live = named_tensors(copy)
    assert live["3.weight"].grad is not None
    assign_state(copy, {"3.weight": np.zeros((3, 5), np.float32)})
    assert not torch.equal(module.state_dict()["3.weight"], torch.zeros(3, 5))
    with pytest.raises(InputError, match="shape"):
        assign_state(copy, {"3.weight": np.zeros((5, 3), np.float32)})
    with pytest.raises(InputError, match="no tensor"):
        assign_state(copy, {"9.weight": np.zeros(3, np.float32)})
