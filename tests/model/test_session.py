"""Session: the app's state, its events and undo/redo (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.errors import SettingsError
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.session import Session


def model() -> LoadedModel:
    rng = np.random.default_rng(0)
    arrays = {
        "a.weight": rng.normal(size=(20, 30)).astype(np.float32),
        "a.bias": np.zeros(20, np.float32),
        "b.weight": rng.normal(size=(4, 2, 3, 3)).astype(np.float32),
    }
    infos = tuple(
        TensorInfo(n, layer_kind(n, a.shape, a.dtype.name), a.shape, a.dtype.name)
        for n, a in arrays.items()
    )
    return LoadedModel("m.pt", "pytorch", arrays, infos, {})


class Recorder:
    def __init__(self, session: Session) -> None:
        self.events: list[str] = []
        for name in ("model_changed", "settings_changed", "selection_changed",
                     "estimate_changed", "undo_changed"):
            getattr(session, name).connect(lambda *_, n=name: self.events.append(n))


def test_open_selects_the_first_compressible_layer_and_resets_history() -> None:
    s = Session()
    s.open(model(), {})
    assert s.selection == ("a.weight",)
    s.set_layers(["a.weight"], "x", value=0.5)
    s.open(model(), {})
    assert not s.can_undo and not s.can_redo
    assert s.layer_settings("a.weight").value == 0.9


def test_set_layers_undo_redo() -> None:
    s = Session()
    s.open(model(), {})
    rec = Recorder(s)
    s.set_layers(["a.weight", "b.weight"], "prune", value=0.5)
    assert s.layer_settings("a.weight").value == 0.5
    assert s.layer_settings("b.weight").value == 0.5
    assert rec.events.count("settings_changed") == 1
    assert s.undo_label() == "prune"
    s.undo()
    assert s.layer_settings("a.weight").value == 0.9
    assert s.can_redo and s.redo_label() == "prune"
    s.redo()
    assert s.layer_settings("b.weight").value == 0.5


def test_merge_folds_a_drag_into_one_undo_step() -> None:
    s = Session()
    s.open(model(), {})
    for v in (0.5, 0.6, 0.7):
        s.set_layers(["a.weight"], "prune a", merge=True, value=v)
    s.set_layers(["a.weight"], "bits a", bits=3)
    s.undo()
    assert s.layer_settings("a.weight").value == 0.7
    s.undo()
    assert s.layer_settings("a.weight").value == 0.9
    assert not s.can_undo


def test_invalid_change_raises_and_changes_nothing() -> None:
    s = Session()
    s.open(model(), {})
    with pytest.raises(SettingsError):
        s.set_layers(["a.weight"], "x", value=1.5)
    assert s.layer_settings("a.weight").value == 0.9
    assert not s.can_undo


def test_same_settings_are_not_an_undo_step() -> None:
    s = Session()
    s.open(model(), {})
    rec = Recorder(s)
    s.set_settings(s.settings)
    assert rec.events == []


def test_paper_defaults_reset_bits_but_keep_pruning() -> None:
    s = Session()
    s.open(model(), {})
    s.set_layers(["a.weight"], "x", value=0.7, bits=2)
    s.apply_paper_defaults()
    a, b = s.layer_settings("a.weight"), s.layer_settings("b.weight")
    assert (a.bits, a.index_bits, a.value) == (5, 5, 0.7)
    assert (b.bits, b.index_bits) == (8, 8)


def test_biases_are_never_compressible_and_select_emits_once() -> None:
    s = Session()
    s.open(model(), {})
    assert s.layer_settings("a.bias").excluded
    assert not Session.is_compressible(s.info("a.bias"))
    rec = Recorder(s)
    s.select(["b.weight"])
    s.select(["b.weight"])
    assert rec.events == ["selection_changed"]
