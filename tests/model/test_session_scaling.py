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


def test_a_one_layer_change_resolves_one_layer_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The table asks every layer's settings after each change: re-resolving all of them
    # (~30 us each) made every slider move O(layers) on the GUI thread.
    session = Session()
    model = _model(300)
    session.open(model, {})
    names = [i.name for i in model.infos]
    before = [session.layer_settings(n) for n in names]
    calls = []
    original = settings_mod.ModelSettings.resolve
    def counted(self: settings_mod.ModelSettings, name: str, kind: str) -> object:
        calls.append(name)
        return original(self, name, kind)

    monkeypatch.setattr(settings_mod.ModelSettings, "resolve", counted)
    session.set_layers([names[7]], "value", value=0.25)
    after = [session.layer_settings(n) for n in names]
    assert set(calls) - {""} == {names[7]}  # "": the settings' own validation
    assert after[7].value == 0.25 and after[:7] == before[:7] and after[8:] == before[8:]
    session.set_settings(session.settings.with_kind("fc", bits=3), "bits")  # every layer
    assert all(session.layer_settings(n).bits == 3 for n in names)
