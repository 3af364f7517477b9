"""Layer table: texts agree with the estimate, numeric sort, selection mirrors the session."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QColor

import pytest

from inspector.gui.layer_table import (
    BYTES,
    COLUMNS,
    KEPT,
    NAME,
    RATIO,
    SQNR,
    THRESHOLD,
    LayerTableModel,
    LayerTableWidget,
)
from inspector.model.session import Session


@pytest.fixture
def table(qtbot, opened) -> LayerTableWidget:
    session, _ = opened
    widget = LayerTableWidget(session)
    qtbot.addWidget(widget)
    widget.resize(900, 300)
    return widget


def cell(widget: LayerTableWidget, name: str, column: int, role=Qt.ItemDataRole.DisplayRole):
    model = widget.table_model
    return model.data(model.index(model.row_of(name), column), role)


def view_names(widget: LayerTableWidget) -> list[str]:
    p = widget.proxy
    return [p.data(p.index(r, NAME)) for r in range(p.rowCount())]


def test_one_row_per_tensor_with_texts_from_the_estimate(table) -> None:
    session = table.session
    assert view_names(table) == [i.name for i in session.infos]
    layer = session.estimate.layer("ip1.weight")
    nbytes = layer.record.payload_nbytes
    kept = layer.plan.survivors / layer.info.size
    assert cell(table, "ip1.weight", BYTES) == f"{nbytes:,}"
    assert cell(table, "ip1.weight", KEPT) == f"{100 * kept:.2f}%"
    assert cell(table, "ip1.weight", RATIO) == f"{layer.info.nbytes / nbytes:.1f}x"
    assert cell(table, "ip1.weight", THRESHOLD) == f"{layer.plan.mask.threshold:.4g}"
    assert cell(table, "ip1.weight", SQNR) == f"{layer.plan.sqnr_db:.1f} dB"
    k = layer.plan.codebook.size
    texts = [cell(table, "ip1.weight", c) for c in range(len(COLUMNS))]
    assert texts[:5] == ["ip1.weight", "fc", "64x200", "12,800", f"{100 * 51200 / 54888:.1f}%"]
    assert texts[7:9] == [f"{layer.plan.settings.bits} (K = {k})", "5"]  # bits the floor chose
    assert cell(table, "ip1.bias", KEPT) == "raw"
    assert cell(table, "ip1.bias", SQNR) == "-"
    bias = session.estimate.layer("ip1.bias")
    assert cell(table, "ip1.bias", BYTES) == f"{bias.payload_nbytes:,}"


def test_numbers_right_aligned_raw_rows_muted_headers_explained(table) -> None:
    align = cell(table, "ip1.weight", BYTES, Qt.ItemDataRole.TextAlignmentRole)
    assert align & Qt.AlignmentFlag.AlignRight
    assert cell(table, "ip1.weight", NAME, Qt.ItemDataRole.TextAlignmentRole) & (
        Qt.AlignmentFlag.AlignLeft
    )
    assert cell(table, "ip1.weight", NAME, Qt.ItemDataRole.ForegroundRole) is None
    muted = cell(table, "ip1.bias", NAME, Qt.ItemDataRole.ForegroundRole)
    assert isinstance(muted.color(), QColor)
    tip = table.table_model.headerData(SQNR, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    assert "proxy" in tip and "not" in tip


def test_sorting_by_bytes_is_numeric(table) -> None:
    table.view.sortByColumn(BYTES, Qt.SortOrder.AscendingOrder)
    p = table.proxy
    keys = [p.data(p.index(r, BYTES), Qt.ItemDataRole.UserRole) for r in range(p.rowCount())]
    assert keys == sorted(keys)
    sizes = [int(p.data(p.index(r, BYTES)).replace(",", "")) for r in range(p.rowCount())]
    assert sizes == sorted(sizes)  # as text, "1,698" < "208" < "32"
    assert view_names(table)[-1] == "ip1.weight"


def test_view_selection_sets_the_session_in_view_order(table) -> None:
    session = table.session
    table.view.sortByColumn(BYTES, Qt.SortOrder.DescendingOrder)
    names = view_names(table)
    model = table.view.selectionModel()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    model.clearSelection()
    for name in ("ip2.weight", "ip1.weight"):
        model.select(table.proxy.index(names.index(name), 0), flags)
    assert session.selection == ("ip1.weight", "ip2.weight")  # ip1 has more bytes: first
    assert table.selected_names() == session.selection


def test_session_selection_selects_rows_without_echo(table) -> None:
    session = table.session
    emitted: list[int] = []
    session.selection_changed.connect(lambda: emitted.append(1))
    session.select(("ip2.weight", "conv1.weight"))
    assert len(emitted) == 1
    assert session.selection == ("ip2.weight", "conv1.weight")  # not re-ordered by the view
    assert set(table.selected_names()) == {"ip2.weight", "conv1.weight"}
    assert table.view.currentIndex().data() == "ip2.weight"


def test_filter_hides_rows_but_keeps_the_session_selection(table) -> None:
    session = table.session
    session.select(("ip1.weight",))
    table.filter_edit.setText("BIAS")
    assert view_names(table) == ["conv1.bias", "ip1.bias", "ip2.bias"]
    assert session.selection == ("ip1.weight",)
    table.filter_edit.setText("")
    assert len(view_names(table)) == len(session.infos)
    assert table.selected_names() == ("ip1.weight",)


def test_settings_and_estimate_reach_the_cells(table, opened) -> None:
    session, codec = opened
    session.set_layers(("ip1.weight",), "x", value=0.5)
    session.set_estimate(codec.estimate(session.settings))
    assert cell(table, "ip1.weight", KEPT) == "50.00%"
    layer = session.estimate.layer("ip1.weight")
    assert cell(table, "ip1.weight", BYTES) == f"{layer.record.payload_nbytes:,}"
    session.set_layers(("ip1.weight",), "x", excluded=True)  # muted before the estimate
    assert cell(table, "ip1.weight", NAME, Qt.ItemDataRole.ForegroundRole) is not None
    session.set_estimate(codec.estimate(session.settings))
    assert cell(table, "ip1.weight", KEPT) == "raw"


def test_model_changes_reset_rows_and_empty_session_is_empty(qtbot, opened) -> None:
    session = Session()
    widget = LayerTableWidget(session)
    qtbot.addWidget(widget)
    assert widget.proxy.rowCount() == 0
    assert widget.selected_names() == ()
    with qtbot.waitSignal(widget.table_model.modelReset):
        session.open(opened[0].model, {})
    assert widget.proxy.rowCount() == 6
    assert cell(widget, "ip1.weight", BYTES) == ""  # no estimate yet
    assert widget.selected_names() == ("conv1.weight",)


def test_model_alone_needs_no_widget(opened) -> None:
    session, _ = opened
    model = LayerTableModel(session)
    assert model.rowCount() == len(session.infos)
    assert model.columnCount() == len(COLUMNS)


def test_renders(table, tmp_path) -> None:
    table.show()
    path = tmp_path / "table.png"
    assert table.grab().save(str(path))
    assert path.stat().st_size > 0


def test_a_deleted_widget_leaves_the_session(qtbot, opened) -> None:
    session, codec = opened
    widget = LayerTableWidget(session)
    before = len(session.estimate_changed)
    widget.deleteLater()
    qtbot.waitUntil(lambda: len(session.estimate_changed) < before)
    session.select(("ip2.weight",))
    session.set_estimate(codec.estimate(session.settings))  # no slot of a dead widget runs
