"""Shared fixtures of the GUI tests: offscreen Qt, a small model opened in a Session."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# Offscreen, on a 1920x1200 virtual screen: the default 800x800 one is narrower than the
# main window's minimum width, so a remembered window size could not be restored on it.
if os.environ.get("QT_QPA_PLATFORM", "offscreen") == "offscreen":
    screen = Path(__file__).with_name("offscreen.json")
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={screen}"

import numpy as np
import pytest

from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec
from inspector.tasks.load import layer_stats


def small_model() -> LoadedModel:
    """LeNet-300-100 shapes, scaled down: two fc layers, a conv layer, biases."""
    rng = np.random.default_rng(0)
    arrays = {
        "conv1.weight": rng.normal(0, 0.1, (8, 1, 5, 5)).astype(np.float32),
        "conv1.bias": rng.normal(0, 0.01, 8).astype(np.float32),
        "ip1.weight": rng.normal(0, 0.05, (64, 200)).astype(np.float32),
        "ip1.bias": np.zeros(64, np.float32),
        "ip2.weight": rng.normal(0, 0.1, (10, 64)).astype(np.float32),
        "ip2.bias": np.zeros(10, np.float32),
    }
    infos = tuple(
        TensorInfo(n, layer_kind(n, a.shape, a.dtype.name), a.shape, a.dtype.name)
        for n, a in arrays.items()
    )
    return LoadedModel("small.pt", "pytorch", arrays, infos, {})


@pytest.fixture
def save_model(tmp_path: Path) -> Callable[..., str]:
    """``save_model(name="m.pt")`` writes a torch state dict (``fc.weight``, ``fc.bias``) in
    ``tmp_path`` with ``torch.save`` and returns its path."""

    def save(name: str = "m.pt", seed: int = 1) -> str:
        import torch

        rng = np.random.default_rng(seed)
        state = {
            "fc.weight": torch.from_numpy(rng.normal(0, 0.1, (50, 80)).astype(np.float32)),
            "fc.bias": torch.zeros(50),
        }
        path = tmp_path / name
        torch.save(state, path)
        return str(path)

    return save


@pytest.fixture
def opened() -> tuple[Session, ModelCodec]:
    """A Session showing ``small_model`` with stats and a first estimate, and its codec."""
    model = small_model()
    codec = ModelCodec(model)
    stats = {
        i.name: layer_stats(i.name, codec.codec(i.name))
        for i in model.infos
        if Session.is_compressible(i)
    }
    session = Session()
    session.open(model, stats)
    session.set_estimate(codec.estimate(session.settings))
    return session, codec


@pytest.fixture(autouse=True)
def code_consent_answers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every GUI test answers "yes" to "may this model's code run?" instead of opening a modal
    dialog (which would wait forever offscreen); the questions asked are recorded."""
    from inspector.gui import code_consent

    asked: list[tuple[str, str]] = []

    def yes(path: Path, action: str) -> bool:
        asked.append((path.name, action))
        return True

    monkeypatch.setattr(code_consent, "ask_dialog", yes)
    return asked
