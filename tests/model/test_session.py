"""Session: the app's state, its events and undo/redo (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.errors import SettingsError
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec
from inspector.tasks.load import layer_stats


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
        for name in (
            "model_changed",
            "settings_changed",
            "selection_changed",
            "estimate_changed",
            "undo_changed",
        ):
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


def estimated() -> tuple[Session, ModelCodec]:
    """A session on ``model()`` with stats and an estimate of its current settings."""
    m = model()
    codec = ModelCodec(m)
    stats = {
        i.name: layer_stats(i.name, codec.codec(i.name))
        for i in m.infos
        if Session.is_compressible(i)
    }
    s = Session()
    s.open(m, stats)
    s.set_estimate(codec.estimate(s.settings))
    return s, codec


def test_current_plan_is_the_estimates_plan_while_the_settings_match() -> None:
    s, _ = estimated()
    plan = s.estimate.layer("a.weight").plan
    assert s.current_plan("a.weight") is plan
    assert s.threshold("a.weight") == float(plan.mask.threshold)
    assert s.current_plan("a.bias") is None  # stored losslessly: no plan


def test_a_stale_estimate_has_no_current_plan_and_the_threshold_comes_from_stats() -> None:
    s, codec = estimated()
    other = s.current_plan("b.weight")
    s.set_layers(["a.weight"], "x", policy="std", value=0.5)
    assert s.current_plan("a.weight") is None
    a = s.layer_settings("a.weight")
    assert s.threshold("a.weight") == s.stats["a.weight"].threshold_of("std", 0.5, a.std_of)
    assert s.current_plan("b.weight") is other  # only the changed layer is stale
    s.set_estimate(codec.estimate(s.settings))
    plan = s.current_plan("a.weight")
    assert plan is not None and plan.settings == a
    assert s.threshold("a.weight") == float(plan.mask.threshold)


def test_threshold_without_estimate_or_stats() -> None:
    s = Session()
    s.open(model(), {})
    assert s.current_plan("a.weight") is None
    assert s.threshold("a.weight") == 0.0  # sparsity policy, no histogram to convert it
    s.set_layers(["a.weight"], "x", policy="threshold", value=0.25)
    assert s.threshold("a.weight") == 0.25
