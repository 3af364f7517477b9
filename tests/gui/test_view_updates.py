"""A view update never writes the session: selections and model switches change no setting.

Every widget of the main window mirrors the session; pyqtgraph's ``setBounds``/``setValue``
and Qt's ``setValue``/``setCurrentIndex``/``setChecked`` emit the same signals as a user's
action, so a widget that updates itself with signals enabled writes the model back (issue 10
item 2: selecting ``ip1.weight`` after ``conv1.weight`` pruned it 100%).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import permutations
from pathlib import Path

import shiboken6
from PySide6.QtCore import QEvent, QSettings
from PySide6.QtWidgets import QApplication

import numpy as np
import pytest

from inspector.gui.main_window import MainWindow
from inspector.model.session import Session

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
LOAD_MS = 30000


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[MainWindow]:
    """A shown MainWindow on the test's own ini file, closed at the end."""
    ini = str(tmp_path / "s.ini")
    win = MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    yield win
    if shiboken6.isValid(win):
        win.close()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def wide_ranges(tmp_path: Path) -> str:
    """Three fc layers whose weights differ in scale by 10^4 (made with torch.save)."""
    import torch

    rng = np.random.default_rng(3)
    state = {
        f"fc{i}.weight": torch.from_numpy(rng.normal(0, std, (40, 30)).astype(np.float32))
        for i, std in enumerate((3.0, 0.0003, 0.05))
    }
    path = tmp_path / "wide.pt"
    torch.save(state, path)
    return str(path)


def open_and_estimate(qtbot, window: MainWindow, path: str) -> None:
    with qtbot.waitSignal(window.controller.loaded, timeout=LOAD_MS):
        window.open_model(path)
    qtbot.waitUntil(lambda: window.session.estimate is not None, timeout=LOAD_MS)


def compressible(session: Session) -> list[str]:
    return [n for n in session.stats if not session.layer_settings(n).excluded]


def assert_untouched(window: MainWindow, settings: object, when: str) -> None:
    s = window.session
    assert s.settings is settings, f"{when}: settings changed to {s.settings.layers}"
    assert not s.can_undo, f"{when}: undo step {s.undo_label()!r}"
    assert window.undo_action.text() == "&Undo", when


def select_every_order(qtbot, window: MainWindow) -> None:
    """Select every ordered pair of layers, all at once, none; settings must not move."""
    s = window.session
    settings = s.settings
    names = compressible(s)
    for a, b in permutations(names, 2):
        for name in (a, b):
            s.select((name,))
            qtbot.wait(1)  # let queued signals and timers run
            assert_untouched(window, settings, f"select {name} (after {a})")
            assert window.histogram.title.text().find("estimating") < 0 or not s.estimate
    for selection in (tuple(names), tuple(reversed(names)), ()):
        s.select(selection)
        qtbot.wait(1)
        assert_untouched(window, settings, f"select {selection}")


def test_selecting_layers_in_any_order_changes_no_setting(qtbot, window, tmp_path) -> None:
    open_and_estimate(qtbot, window, str(SAMPLES / "lenet5.pt"))
    select_every_order(qtbot, window)
    open_and_estimate(qtbot, window, wide_ranges(tmp_path))
    select_every_order(qtbot, window)


def test_switching_models_changes_no_setting(qtbot, window, tmp_path) -> None:
    wide = wide_ranges(tmp_path)
    paths = [str(SAMPLES / "lenet5.pt"), wide, str(SAMPLES / "lenet300_100.pt"), wide]
    for path in paths:
        s = window.session
        if s.model is not None:  # leave the widest layer shown: its lines are the furthest out
            s.select((max(compressible(s), key=lambda n: s.stats[n].absmax),))
        open_and_estimate(qtbot, window, path)
        qtbot.wait(50)
        assert window.session.settings.layers == {}, path
        assert not window.session.can_undo, window.session.undo_label()


def test_a_user_threshold_beyond_the_next_layers_range_stays_its_own(qtbot, window, tmp_path):
    """The case of the issue: layer A's line sits outside layer B's range when B is shown."""
    open_and_estimate(qtbot, window, wide_ranges(tmp_path))
    s = window.session
    s.select(("fc0.weight",))
    s.set_layers(("fc0.weight",), "prune fc0.weight", policy="threshold", value=2.0)
    qtbot.waitUntil(lambda: s.current_plan("fc0.weight") is not None, timeout=LOAD_MS)
    settings, label = s.settings, s.undo_label()
    for name in ("fc1.weight", "fc2.weight", "fc0.weight", "fc1.weight"):
        s.select((name,))
        qtbot.wait(1)
        assert s.settings is settings, (name, s.settings.layers)
        assert s.undo_label() == label


def test_the_panels_keep_their_widths_whatever_is_selected(qtbot, window, tmp_path) -> None:
    """Long names and texts must not widen the controls and make the plot jump."""
    import torch

    rng = np.random.default_rng(4)
    long = "encoder.layer.11.attention.self.a_rather_long_projection_name_" * 2 + "weight"
    state = {
        "fc.weight": torch.from_numpy(rng.normal(0, 0.1, (30, 20)).astype(np.float32)),
        long: torch.from_numpy(rng.normal(0, 3, (300, 200)).astype(np.float32)),
        "fc.bias": torch.zeros(30),
    }
    path = tmp_path / "names.pt"
    torch.save(state, path)
    window.resize(1400, 860)
    open_and_estimate(qtbot, window, str(path))
    qtbot.wait(50)
    s = window.session
    sizes, plot = window.right.sizes(), window.histogram.plot.width()
    for selection in ((long,), ("fc.weight",), ("fc.bias",), tuple(state), (long,), ()):
        s.select(selection)
        qtbot.wait(20)
        assert window.right.sizes() == sizes, selection
        assert window.histogram.plot.width() == plot, selection


def test_clicking_rows_of_a_sorted_table_changes_no_setting(qtbot, window) -> None:
    """As the issue did it: click conv1.weight, then ip1.weight, with the mouse."""
    from PySide6.QtCore import Qt

    from inspector.gui.layer_table import BYTES, NAME

    open_and_estimate(qtbot, window, str(SAMPLES / "lenet5.pt"))
    s, view = window.session, window.table.view
    settings = s.settings
    view.sortByColumn(BYTES, Qt.SortOrder.DescendingOrder)  # rows move as estimates land

    def click(name: str) -> None:
        proxy = view.model()
        row = next(r for r in range(proxy.rowCount()) if proxy.index(r, NAME).data() == name)
        rect = view.visualRect(proxy.index(row, NAME))
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

    for name in ("conv1.weight", "ip1.weight", "conv2.weight", "ip2.weight", "conv1.weight"):
        click(name)
        qtbot.wait(60)  # past the estimate and redraw throttles
        assert s.selection == (name,)
        assert_untouched(window, settings, f"click {name}")
