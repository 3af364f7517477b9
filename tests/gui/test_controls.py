"""ControlsWidget: every control drives the session, the session drives every control."""

from __future__ import annotations

import pytest

from inspector.errors import SettingsError
from inspector.gui.controls import ControlsWidget
from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec


@pytest.fixture
def controls(qtbot, opened) -> tuple[ControlsWidget, Session, ModelCodec]:
    session, codec = opened
    widget = ControlsWidget(session)
    qtbot.addWidget(widget)
    session.select(("ip1.weight",))
    return widget, session, codec


def settle(session: Session, codec: ModelCodec) -> None:
    """What the background estimate would do."""
    session.set_estimate(codec.estimate(session.settings))


def choose(combo, data: str) -> None:
    combo.setCurrentIndex(combo.findData(data))


def test_shows_the_first_selected_layer(controls) -> None:
    w, session, _ = controls
    session.select(("conv1.weight",))
    assert w.title.text() == "conv1.weight"
    assert w.bits_spin.value() == w.bits_slider.value() == 8  # conv: paper bits
    plan = session.current_plan("conv1.weight")
    k = int(plan.codebook.size)  # few weights survive: K is what the codebook has
    assert k < 256 - (plan.fillers > 0)
    assert w.clusters_label.text() == f"K = {k}"
    assert f"only {k} distinct values" in w.clusters_label.toolTip()
    assert w.policy_combo.currentData() == "sparsity"
    shown = session.current_plan("conv1.weight").settings.value  # what the floor chose
    assert shown < 0.9
    assert w.value_spin.value() == pytest.approx(shown)
    assert w.value_slider.value() == round(shown * 1000)
    assert all(e.isEnabled() for e in w.editors)


def test_nothing_compressible_disables_everything(controls) -> None:
    w, session, _ = controls
    session.select(("conv1.bias",))
    assert not any(e.isEnabled() for e in w.editors)
    assert "not compressible" in w.title.text()
    session.select(())
    assert not any(e.isEnabled() for e in w.editors)
    assert w.title.text() == "No layer selected"


def test_a_lossless_tensor_shows_its_own_settings_never_the_previous_layers(controls):
    w, session, codec = controls
    session.set_layers(("conv1.weight",), "test", bits=3, index_bits=12, init="linear",
                       huffman=False)
    settle(session, codec)
    for lossless in ("ip1.bias", "conv1.bias"):
        session.select(("conv1.weight",))
        assert w.bits_spin.value() == 3
        session.select((lossless,))
        own = session.layer_settings(lossless)
        assert not own.excluded or own.bits != 3  # a bias: its kind's bits, not conv1's 3
        assert w.bits_spin.value() == w.bits_slider.value() == own.bits
        assert w.index_spin.value() == own.index_bits
        assert w.init_combo.currentData() == own.init
        assert w.policy_combo.currentData() == own.policy
        assert w.value_spin.value() == pytest.approx(own.value)
        assert w.huffman_check.isChecked() == own.huffman
        assert w.exclude_check.isChecked()
        assert w.prune_info.text() == "stored losslessly" and w.prune_info.toolTip() == ""
        assert not any(e.isEnabled() for e in w.editors)
    session.select(())  # nothing selected: blank
    assert w.policy_combo.currentIndex() == w.init_combo.currentIndex() == -1
    assert [s.text() for s in (w.value_spin, w.bits_spin, w.index_spin)] == [" "] * 3
    assert not w.huffman_check.isChecked() and not w.exclude_check.isChecked()
    session.select(("conv1.weight",))  # and back: real values again
    assert w.bits_spin.text() == "3" and w.index_spin.text() == "12"


def test_value_spin_drives_model_and_slider(controls) -> None:
    w, session, _ = controls
    w.value_spin.setValue(0.5)
    assert session.layer_settings("ip1.weight").value == pytest.approx(0.5)
    assert w.value_slider.value() == 500
    assert session.undo_label() == "prune ip1.weight"


def test_value_slider_drag_is_one_undo_step(controls) -> None:
    w, session, _ = controls
    w.value_slider.setSliderDown(True)
    for position in (800, 700, 600):
        w.value_slider.setValue(position)
    w.value_slider.setSliderDown(False)
    assert session.layer_settings("ip1.weight").value == pytest.approx(0.6)
    assert w.value_spin.value() == pytest.approx(0.6)
    w.value_slider.setSliderDown(True)  # a second drag is a step of its own
    w.value_slider.setValue(500)
    w.value_slider.setSliderDown(False)
    session.undo()
    assert session.layer_settings("ip1.weight").value == pytest.approx(0.6)
    session.undo()
    assert session.layer_settings("ip1.weight").value == pytest.approx(0.9)
    assert not session.can_undo


@pytest.mark.parametrize("policy", ["std", "threshold"])
def test_policy_change_keeps_the_pruning(controls, policy) -> None:
    w, session, codec = controls
    before = session.estimate.layer("ip1.weight").plan
    choose(w.policy_combo, policy)
    s = session.layer_settings("ip1.weight")
    stats = session.stats["ip1.weight"]
    assert s.policy == policy
    assert s.value == pytest.approx(stats.value_of(policy, before.mask.threshold))
    settle(session, codec)
    after = session.estimate.layer("ip1.weight").plan
    assert after.survivors == pytest.approx(before.survivors, rel=0.01)
    assert w.policy_combo.currentData() == policy
    assert w.value_spin.value() == pytest.approx(s.value, abs=10 ** -w.value_spin.decimals())
    session.undo()
    assert session.layer_settings("ip1.weight").policy == "sparsity"


def test_threshold_slider_spans_the_layer(controls) -> None:
    w, session, _ = controls
    choose(w.policy_combo, "threshold")
    absmax = session.stats["ip1.weight"].absmax
    assert w.value_slider.maximum() == 1000
    w.value_slider.setValue(250)
    assert session.layer_settings("ip1.weight").value == pytest.approx(absmax / 4, rel=1e-3)


def test_bits_spin_and_slider(controls) -> None:
    w, session, _ = controls
    w.bits_spin.setValue(3)
    assert session.layer_settings("ip1.weight").bits == 3
    assert w.bits_slider.value() == 3 and w.clusters_label.text() == "K ≤ 8"  # estimating
    w.bits_slider.setValue(7)
    assert session.layer_settings("ip1.weight").bits == 7
    assert w.bits_spin.value() == 7 and w.clusters_label.text() == "K ≤ 128"


def test_init_index_bits_and_huffman(controls) -> None:
    w, session, _ = controls
    choose(w.init_combo, "linear")
    w.index_spin.setValue(3)
    w.huffman_check.setChecked(False)
    s = session.layer_settings("ip1.weight")
    assert (s.init, s.index_bits, s.huffman) == ("linear", 3, False)
    assert w.index_info.text() == "gaps up to 8 per entry"


def test_exclude_disables_the_other_controls(controls) -> None:
    w, session, _ = controls
    w.exclude_check.setChecked(True)
    assert session.layer_settings("ip1.weight").excluded
    assert w.exclude_check.isEnabled() and w.paper_button.isEnabled()
    assert not w.value_slider.isEnabled() and not w.bits_spin.isEnabled()
    assert not w.prune90_button.isEnabled()
    w.exclude_check.setChecked(False)
    assert all(e.isEnabled() for e in w.editors)


def test_presets(controls) -> None:
    w, session, _ = controls
    session.select(("conv1.weight", "ip1.weight"))
    w.bits_spin.setValue(3)
    choose(w.policy_combo, "std")
    w.paper_button.click()
    assert session.layer_settings("conv1.weight").bits == 8
    assert session.layer_settings("ip1.weight").bits == 5
    assert session.layer_settings("ip1.weight").policy == "std"  # prune settings kept
    w.prune90_button.click()
    for name in ("conv1.weight", "ip1.weight"):
        s = session.layer_settings(name)
        assert (s.policy, s.value) == ("sparsity", 0.9)
    assert w.bits_spin.value() == 8


def test_multi_select_applies_to_all_selected(controls) -> None:
    w, session, _ = controls
    session.select(("conv1.weight", "conv1.bias", "ip1.weight"))
    assert w.title.text().startswith("2 layers selected")
    w.bits_spin.setValue(4)
    w.value_spin.setValue(0.75)
    for name in ("conv1.weight", "ip1.weight"):
        s = session.layer_settings(name)
        assert (s.bits, s.value) == (4, 0.75)
    assert session.layer_settings("ip2.weight").bits == 5
    assert "conv1.bias" not in session.settings.layers
    session.undo()
    assert session.layer_settings("conv1.weight").value == 0.9  # one step for both layers


def test_model_drives_the_controls_without_echo(controls) -> None:
    w, session, _ = controls
    emitted: list[int] = []
    session.settings_changed.connect(lambda: emitted.append(1))
    session.set_layers(
        ("ip1.weight",), "code", policy="threshold", value=0.05, bits=3, init="density",
        index_bits=7, huffman=False,
    )  # fmt: skip
    assert len(emitted) == 1 and session.undo_label() == "code"
    assert w.policy_combo.currentData() == "threshold"
    assert w.value_spin.value() == pytest.approx(0.05)
    assert w.value_slider.value() == round(0.05 / (session.stats["ip1.weight"].absmax / 1000))
    assert (w.bits_spin.value(), w.bits_slider.value()) == (3, 3)
    assert w.init_combo.currentData() == "density"
    assert w.index_spin.value() == 7
    assert not w.huffman_check.isChecked()
    w.bits_spin.setValue(6)  # a widget change: exactly one more emission
    assert len(emitted) == 2
    session.undo()
    assert len(emitted) == 3 and w.bits_spin.value() == 3


def test_a_settings_error_is_shown_not_raised(controls, monkeypatch) -> None:
    w, session, _ = controls

    def refuse(*_args, **_kwargs) -> None:
        raise SettingsError("value must be a finite number >= 0")

    monkeypatch.setattr(session, "set_layers", refuse)
    w.bits_spin.setValue(2)
    assert not w.error_label.isHidden()
    assert "finite" in w.error_label.text()
    # back to what the model holds (the bits the floor chose)
    assert w.bits_spin.value() == session.current_plan("ip1.weight").settings.bits
    monkeypatch.undo()
    w.bits_spin.setValue(2)
    assert w.error_label.isHidden()


def test_prune_info_follows_the_estimate(controls) -> None:
    w, session, codec = controls
    plan = session.current_plan(w.targets()[0])
    assert f"{100 * (1 - plan.survivors / plan.size):.2f}%" in w.prune_info.text()
    w.value_spin.setValue(0.8)
    assert "estimating" in w.prune_info.text()
    settle(session, codec)
    assert "80.00%" in w.prune_info.text()


def test_renders(controls, tmp_path) -> None:
    w, _, _ = controls
    w.resize(900, 400)
    w.show()
    assert w.grab().save(str(tmp_path / "controls.png"))


def test_k_is_the_same_in_controls_table_and_histogram(controls, qtbot) -> None:
    """2**bits codes; with filler entries one is the zero they decode to (issue 10 item 6)."""
    from inspector.core.positions import GAPS
    from inspector.gui.histogram import HistogramWidget
    from inspector.gui.layer_table import BITS, LayerTableWidget

    w, session, codec = controls
    table, histogram = LayerTableWidget(session), HistogramWidget(session)
    qtbot.addWidget(table)
    qtbot.addWidget(histogram)
    session.set_layers(("ip1.weight",), "x", bits=6, index_bits=2)  # gaps > 4 need fillers
    codec.codec("ip1.weight").position_codes = (GAPS,)  # fillers exist only in the gap code
    settle(session, codec)
    plan = session.current_plan("ip1.weight")
    assert plan.fillers > 0 and plan.codebook.size == 63
    assert w.clusters_label.text() == "K = 63"
    assert "one code is the zero" in w.clusters_label.toolTip()
    row = table.table_model.row_of("ip1.weight")
    assert table.table_model.index(row, BITS).data() == "6 (K = 63)"
    assert "K = 63" in histogram.title.text()
