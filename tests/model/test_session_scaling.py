"""A session of many layers: changing many at once and looking layers up cost O(layers)."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.io.model_file import LoadedModel
from inspector.model import settings as settings_mod
from inspector.model.estimate import ModelEstimate
from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec


def _model(count: int) -> LoadedModel:
    rng = np.random.default_rng(0)
    arrays = {f"l{i}.weight": rng.normal(size=(4, 4)).astype(np.float32) for i in range(count)}
    return LoadedModel.build("m.npz", "numpy", arrays)


def test_setting_many_layers_builds_one_settings_object(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each ModelSettings re-validates every override: one per selected layer made changing
    # 2,000 selected layers take minutes (quadratic), now it is one object.
    session = Session()
    model = _model(400)
    session.open(model, {})
    names = [i.name for i in model.infos]
    session.set_layers(names, "bits", bits=3)
    made = []
    original = settings_mod.ModelSettings.__post_init__
    monkeypatch.setattr(settings_mod.ModelSettings, "__post_init__",
                        lambda self: (made.append(1), original(self))[1])
    session.set_layers(names, "value", value=0.5)
    assert len(made) <= 2
    assert all(session.layer_settings(n).value == 0.5 and session.layer_settings(n).bits == 3
               for n in names)


def test_estimate_finds_layers_by_name() -> None:
    model = _model(300)
    est = ModelCodec(model).estimate(Session().settings)
    assert isinstance(est, ModelEstimate)
    for info in model.infos[::37]:
        assert est.layer(info.name) is est.layers[model.infos.index(info)]
    assert est.layer("missing") is None
