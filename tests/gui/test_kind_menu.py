"""The layer table's "Treat as" / "Compress this tensor" menu and the kind cell's reason."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMenu

import numpy as np
import pytest

from inspector.gui.controls import ControlsWidget
from inspector.gui.kind_menu import build_kind_menu
from inspector.gui.layer_table import KIND, NAME, LayerTableWidget
from inspector.io.model_file import LoadedModel
from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec


@pytest.fixture
def table(qtbot, opened) -> LayerTableWidget:
    widget = LayerTableWidget(opened[0])
    qtbot.addWidget(widget)
    return widget


def cell(widget: LayerTableWidget, name: str, column: int, role=Qt.ItemDataRole.DisplayRole):
    model = widget.table_model
    return model.data(model.index(model.row_of(name), column), role)


def action(menu: QMenu, path: str):
    *parents, leaf = path.split(" > ")
    for title in parents:
        menu = next(a.menu() for a in menu.actions() if a.text() == title)
    return next(a for a in menu.actions() if a.text() == leaf)


def test_treat_as_sets_an_undoable_kind_override(table, opened) -> None:
    session, codec = opened
    menu = build_kind_menu(session, ("conv1.bias",), table)
    assert action(menu, "Treat as > bias").isChecked()
    assert not action(menu, "Compress this tensor").isChecked()
    action(menu, "Treat as > fc").trigger()
    assert session.settings.layers["conv1.bias"] == {"kind": "fc"}
    assert session.undo_label() == "treat conv1.bias as fc"
    assert cell(table, "conv1.bias", KIND) == "fc"
    tip = cell(table, "conv1.bias", KIND, Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("Treated as fc (your setting); the file says bias")
    assert not session.layer_settings("conv1.bias").excluded
    session.set_estimate(codec.estimate(session.settings))
    # compressed as fc now: 8 weights, which deep cannot make smaller than their 32 bytes,
    # so the layer is stored raw and the estimate says why
    assert "stored raw: deep would take" in session.estimate.layer("conv1.bias").note
    session.undo()
    assert "conv1.bias" not in session.settings.layers
    assert cell(table, "conv1.bias", KIND) == "bias"
    menu.deleteLater()


def test_compress_this_tensor_includes_a_lossless_kind_and_the_controls_follow(
    qtbot, table, opened
) -> None:
    session, codec = opened
    controls = ControlsWidget(session)
    qtbot.addWidget(controls)
    session.select(("ip1.bias",))
    assert controls.targets() == ()
    menu = build_kind_menu(session, ("ip1.bias",), table)
    action(menu, "Compress this tensor").trigger()
    assert session.settings.layers["ip1.bias"] == {"excluded": False}
    assert session.undo_label() == "compress ip1.bias"
    assert controls.targets() == ("ip1.bias",)
    session.set_estimate(codec.estimate(session.settings))
    assert cell(table, "ip1.bias", NAME, Qt.ItemDataRole.ForegroundRole) is None  # not muted
    menu.deleteLater()
    again = build_kind_menu(session, ("ip1.bias",), table)
    assert action(again, "Compress this tensor").isChecked()
    action(again, "Compress this tensor").trigger()  # unchecks: back to lossless
    assert session.layer_settings("ip1.bias").excluded
    again.deleteLater()


def test_compress_is_offered_only_for_finite_float_values(qtbot) -> None:
    rng = np.random.default_rng(0)
    tensors = {"123": rng.normal(size=(4, 2, 3, 3)).astype(np.float32),
               "mask": np.array([0.0, -np.inf] * 40, np.float32)}
    model = LoadedModel.build("m.onnx", "onnx", tensors,
                              kinds={"123": ("conv", "feeds Conv 'x' as W")})
    session = Session()
    session.open(model, {})
    widget = LayerTableWidget(session)
    qtbot.addWidget(widget)
    assert cell(widget, "123", KIND, Qt.ItemDataRole.ToolTipRole) == "conv: feeds Conv 'x' as W"
    menu = build_kind_menu(session, ("mask",), widget)
    assert not action(menu, "Compress this tensor").isEnabled()
    action(menu, "Treat as > conv").trigger()  # allowed, but the data keeps it lossless
    assert not session.compressible("mask")
    est = ModelCodec(model).estimate(session.settings)
    assert est.layer("mask").plan is None
    menu.deleteLater()


def test_right_click_opens_the_menu_for_the_selection(table, opened, monkeypatch) -> None:
    from inspector.gui import layer_table

    session, _ = opened
    shown: list[tuple[tuple[str, ...], list[str]]] = []

    class Shown:  # QMenu.exec would block the test: record what would be shown instead
        def __init__(self, session: Session, names: tuple[str, ...], parent: object) -> None:
            self.menu = build_kind_menu(session, names, table)
            self.names = names

        def exec(self, *_args: object) -> None:
            shown.append((self.names, [a.text() for a in self.menu.actions()]))

        def deleteLater(self) -> None:
            self.menu.deleteLater()

    monkeypatch.setattr(layer_table, "build_kind_menu", Shown)
    session.select(("ip2.bias",))
    table.view.customContextMenuRequested.emit(QPoint(5, 5))
    assert shown == [(("ip2.bias",), ["Treat as", "Compress this tensor"])]
    session.select(())
    table.view.customContextMenuRequested.emit(QPoint(5, 5))
    assert len(shown) == 1  # nothing selected: no menu
