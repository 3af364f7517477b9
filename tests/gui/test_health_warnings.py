"""Likely broken layers are visible: the table's SQNR cell and the summary warn; the presets."""

from __future__ import annotations

from PySide6.QtCore import Qt

from inspector.gui.controls import ControlsWidget
from inspector.gui.layer_table import SQNR, WARNING_COLOR, LayerTableWidget
from inspector.gui.summary import SummaryWidget
from inspector.model.accuracy import Accuracy
from inspector.model.settings import SAFE_MIN_SQNR


def sqnr_cell(table: LayerTableWidget, name: str, role: int):
    model = table.table_model
    return model.data(model.index(model.row_of(name), SQNR), role)


def test_a_broken_layer_is_coloured_and_explained(qtbot, opened) -> None:
    session, codec = opened
    table, summary = LayerTableWidget(session), SummaryWidget(session)
    qtbot.addWidget(table)
    qtbot.addWidget(summary)
    assert sqnr_cell(table, "ip1.weight", Qt.ItemDataRole.ForegroundRole) is None
    assert summary.warning.isHidden()  # the safe default breaks nothing
    session.set_layers(["ip1.weight", "conv1.weight"], "prune 90%", value=0.9)
    session.set_estimate(codec.estimate(session.settings))
    brush = sqnr_cell(table, "ip1.weight", Qt.ItemDataRole.ForegroundRole)
    assert brush.color().name() == WARNING_COLOR
    tip = sqnr_cell(table, "ip1.weight", Qt.ItemDataRole.ToolTipRole)
    assert "the decoded weights are mostly noise" in tip and "break the model" in tip
    assert sqnr_cell(table, "ip2.weight", Qt.ItemDataRole.ForegroundRole) is None
    assert not summary.warning.isHidden()
    assert "2 layers are likely broken (SQNR < 10 dB" in summary.warning.text()
    # a measurement of these settings is the real answer: the proxy's warning goes
    session.set_accuracy(Accuracy(0.5, 0.5, 100, 0.9), session.settings, "test data")
    assert summary.warning.isHidden()
    session.set_layers(["ip1.weight"], "less", value=0.2)
    assert not summary.warning.isHidden()  # the measurement is of other settings now


def test_presets_paper_90_and_the_safe_default(qtbot, opened) -> None:
    session, codec = opened
    w = ControlsWidget(session)
    qtbot.addWidget(w)
    session.select(("ip1.weight",))
    assert "needs fine-tuning" in w.prune90_button.text()
    assert f"SQNR floor {SAFE_MIN_SQNR:g} dB: prunes" in w.prune_info.toolTip()
    w.prune90_button.click()
    s = session.layer_settings("ip1.weight")
    assert (s.value, s.min_sqnr) == (0.9, None)  # the paper's 90%, exactly
    w.safe_button.click()
    s = session.layer_settings("ip1.weight")
    assert s.min_sqnr == SAFE_MIN_SQNR and s.raise_bits
    session.set_estimate(codec.estimate(session.settings))
    plan = session.current_plan("ip1.weight")
    assert plan is not None and plan.sqnr_db >= SAFE_MIN_SQNR
    assert session.undo_label() == "safe default ip1.weight"


def test_controls_show_what_the_floor_chose(qtbot, opened) -> None:
    """A drag starts from the pruning and bits the file will hold, not from the floor's cap."""
    session, codec = opened
    w = ControlsWidget(session)
    qtbot.addWidget(w)
    session.select(("ip1.weight",))
    plan = session.current_plan("ip1.weight")
    assert plan.requested is not None and plan.settings.value < 0.9
    assert w.value_spin.value() == plan.settings.value
    assert w.bits_spin.value() == plan.settings.bits
    before = session.settings
    session.set_estimate(codec.estimate(session.settings))  # a view update writes nothing
    assert session.settings is before
    w.value_spin.setValue(0.5)  # the user's pruning, exactly, without the floor
    session.set_estimate(codec.estimate(session.settings))
    assert session.current_plan("ip1.weight").settings.value == 0.5
    assert w.value_spin.value() == 0.5


def test_the_warning_coming_and_going_does_not_move_what_is_below(qtbot, opened) -> None:
    from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

    session, codec = opened
    window = QWidget()
    qtbot.addWidget(window)
    column = QVBoxLayout(window)
    summary, below = SummaryWidget(session), QLabel("the plots")
    column.addWidget(summary)
    column.addWidget(below, 1)
    window.resize(900, 400)
    window.show()
    qtbot.waitExposed(window)
    top = below.geometry()
    for value in (0.9, 0.2, 0.9):  # broken, fine, broken: the row shows, hides, shows
        session.set_layers(["ip1.weight"], "change", value=value)
        session.set_estimate(codec.estimate(session.settings))
        qtbot.wait(10)
        assert summary.warning.isHidden() == (value < 0.5)
        assert below.geometry() == top  # a resize of the plots is a full repaint
