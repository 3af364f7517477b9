"""The Methods tab and Auto-Tune Across Methods in the app, on the bundled LeNet-5 with its
MNIST evaluation file: the curves are measured accuracies, and the menu entry tunes across
methods as one undoable step within the budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import shiboken6
from PySide6.QtCore import QEvent, QSettings
from PySide6.QtWidgets import QApplication, QInputDialog

import pytest

from inspector.gui.main_window import MainWindow

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
WAIT_MS = 120_000


@pytest.fixture
def window(qtbot, tmp_path) -> Iterator[MainWindow]:
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.controller.loaded, timeout=WAIT_MS):
        w.open_model(SAMPLES / "lenet5.onnx", data_path=SAMPLES / "mnist_test.h5")
    qtbot.waitUntil(lambda: w.session.estimate is not None, timeout=WAIT_MS)
    yield w
    if shiboken6.isValid(w):
        w.close()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_with_evaluation_data_the_curves_are_measured_accuracies(qtbot, window) -> None:
    s, view = window.session, window.methods
    s.select(("conv1.weight",))
    window.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.curves is not None and view.curves.metric is not None
                    and view.curves.layer == "conv1.weight", timeout=WAIT_MS)
    c = view.curves
    assert c.metric == "top1" and 0.9 < c.baseline <= 1.0
    for _, points in c.curves:
        for p in points:
            assert p.score is not None and view.y_of(p) == 100.0 * p.score
    assert "top-1" in view.plot.getPlotItem().getAxis("left").labelText


def test_auto_tune_across_methods_is_one_undoable_step_within_the_budget(
        qtbot, window, monkeypatch) -> None:
    s = window.session
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (1.0, True))
    assert window.tune.tune_methods_action.isEnabled()
    window.tune.tune_methods_action.trigger()
    qtbot.waitUntil(lambda: s.undo_label().startswith("auto-tune"), timeout=WAIT_MS)
    methods = {s.layer_settings(n).method for n in ("conv1.weight", "conv2.weight",
                                                    "ip1.weight", "ip2.weight")}
    assert methods - {"deep"}  # the search went beyond deep
    qtbot.waitUntil(lambda: s.accuracy_is_current, timeout=WAIT_MS)
    assert s.accuracy.drop_points <= 1.0 + 1e-9
    s.undo()
    assert not s.can_undo


def test_a_click_in_the_window_updates_the_estimate_and_the_table(qtbot, tmp_path) -> None:
    from inspector.gui.layer_table import BYTES, KEPT, NAME

    from .test_methods_view import click

    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.controller.loaded, timeout=WAIT_MS):
        w.open_model(SAMPLES / "lenet5.onnx")  # no data: the weight-space curves
    s, view = w.session, w.methods
    s.select(("ip2.weight",))
    w.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.curves is not None and view.curves.layer == "ip2.weight"
                    and not view.progress.isVisible(), timeout=WAIT_MS)
    scatter = view.scatters["pq"]
    recipe = scatter.points()[2].data()
    point = view.point_of(recipe)
    click(qtbot, view, scatter, 2)
    assert s.layer_settings("ip2.weight").method == "pq"

    def shown() -> bool:
        est = s.estimate.layer("ip2.weight") if s.estimate else None
        return est is not None and est.method == "pq"

    qtbot.waitUntil(shown, timeout=WAIT_MS)
    assert s.estimate.layer("ip2.weight").payload_nbytes == point.payload_nbytes
    model = w.table.table_model
    row = next(r for r in range(model.rowCount())
               if model.index(r, NAME).data() == "ip2.weight")
    assert model.index(row, BYTES).data() == f"{point.payload_nbytes:,}"
    assert model.index(row, KEPT).data() == "pq"
    w.close()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
