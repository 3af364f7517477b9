"""Shared fixtures of the GUI tests: offscreen Qt, a small model opened in a Session."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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
