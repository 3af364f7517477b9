"""MainWindow end to end: open (menu, drop, recent), errors, undo, settings files, dialogs,
remembered layout, and the ``inspector gui --screenshot`` entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import shiboken6
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

import pytest

from inspector import __version__
from inspector.gui.export_dialog import ExportDialog
from inspector.gui.main_window import MainWindow
from inspector.gui.summary import exact_bytes
from inspector.model.settings import load_settings

LOAD_MS = 30000
MakeWindow = Callable[[], MainWindow]


@pytest.fixture
def ini(tmp_path: Path) -> str:
    return str(tmp_path / "s.ini")


@pytest.fixture
def make_window(qtbot, ini: str) -> Iterator[MakeWindow]:
    """``make_window()``: a shown MainWindow on the test's own ini file (never the user's).

    Every window is closed at the end, and no visible top-level widget may be left over.
    """
    made: list[MainWindow] = []

    def make() -> MainWindow:
        window = MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        if shiboken6.isValid(window):
            window.close()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    leaked = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    assert not leaked, f"visible top-level widgets left: {leaked}"


@pytest.fixture
def warnings(monkeypatch) -> list[tuple[str, str]]:
    """Every ``QMessageBox.warning(parent, title, text)`` call as ``(title, text)``."""
    calls: list[tuple[str, str]] = []

    def warning(_parent: object, title: str, text: str, *_: object) -> QMessageBox.StandardButton:
        calls.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", warning)
    return calls


def open_and_estimate(qtbot, window: MainWindow, path: str) -> None:
    """Open ``path`` through the window and wait for its first estimate."""
    with qtbot.waitSignal(window.controller.loaded, timeout=LOAD_MS):
        window.open_model(path)
    qtbot.waitUntil(lambda: window.session.estimate is not None, timeout=LOAD_MS)


def names(window: MainWindow) -> list[str]:
    model = window.table.table_model
    return [model.index(r, 0).data() for r in range(model.rowCount())]


def menu_texts(window: MainWindow, title: str) -> list[str]:
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == title)
    return [a.text() for a in menu.actions() if not a.isSeparator()]


def test_open_model_shows_the_work_page_table_and_estimate(qtbot, make_window, save_model):
    window = make_window()
    assert window.stack.currentIndex() == 0  # the empty page
    assert not window.export_action.isEnabled()
    path = save_model()
    open_and_estimate(qtbot, window, path)
    assert window.stack.currentIndex() == 1
    assert window.windowTitle() == "m.pt — Inspector"
    assert names(window) == ["fc.weight", "fc.bias"]
    estimate = window.session.estimate
    assert window.summary.compressed.text() == exact_bytes(estimate.file_nbytes)
    bytes_column = window.table.table_model.index(0, 9).data()
    assert bytes_column == f"{estimate.layer('fc.weight').payload_nbytes:,}"
    assert window.export_action.isEnabled() and window.save_as_action.isEnabled()
    qtbot.waitUntil(lambda: not window.progress.isVisible(), timeout=LOAD_MS)


def test_a_bad_file_warns_and_the_window_stays_usable(
    qtbot, make_window, save_model, tmp_path, warnings
):
    window = make_window()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with qtbot.waitSignal(window.controller.load_failed, timeout=LOAD_MS):
        window.open_model(bad)
    assert len(warnings) == 1
    title, text = warnings[0]
    assert title == "Cannot open model" and str(bad) in text and "\n" not in text
    assert window.stack.currentIndex() == 0 and window.open_action.isEnabled()
    assert not window.progress.isVisible()

    good = save_model()
    open_and_estimate(qtbot, window, good)  # still usable after the error
    with qtbot.waitSignal(window.controller.load_failed, timeout=LOAD_MS):
        window.open_model(bad)
    assert len(warnings) == 2
    assert window.stack.currentIndex() == 1  # the open model stays
    assert window.session.model.path == good and names(window) == ["fc.weight", "fc.bias"]
    assert QSettings(window.qsettings.fileName(), QSettings.Format.IniFormat).value("recent") in (
        good,
        [good],
    )  # a failed file is not remembered


def test_dropping_a_file_url_opens_it(qtbot, make_window, save_model):
    window = make_window()
    path = save_model()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(path)])
    action = Qt.DropAction.CopyAction
    button, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(50, 50), action, mime, button, mods)  # Qt: a QPoint
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), action, mime, button, mods)
    with qtbot.waitSignal(window.controller.loaded, timeout=LOAD_MS) as blocker:
        QApplication.sendEvent(window, drop)
    assert blocker.args == [path]
    assert drop.isAccepted()
    qtbot.waitUntil(lambda: window.session.estimate is not None, timeout=LOAD_MS)
    assert window.stack.currentIndex() == 1


def test_recent_files_are_remembered_listed_and_open(qtbot, make_window, save_model, ini):
    window = make_window()
    assert not window.recent.isEnabled()
    first, second = save_model("a.pt"), save_model("b.pt", seed=2)
    open_and_estimate(qtbot, window, first)
    open_and_estimate(qtbot, window, second)
    assert QSettings(ini, QSettings.Format.IniFormat).value("recent") == [second, first]
    assert [a.text() for a in window.recent.actions()] == [second, first]
    window.close()

    again = make_window()  # a new window reads the same ini
    assert again.recent.isEnabled()
    actions = again.recent.actions()
    assert [a.text() for a in actions] == [second, first]
    with qtbot.waitSignal(again.controller.loaded, timeout=LOAD_MS) as blocker:
        actions[1].trigger()
    assert blocker.args == [first] and again.session.model.path == first
    assert [a.text() for a in again.recent.actions()] == [first, second]  # most recent first


def test_undo_redo_actions_follow_the_session(qtbot, make_window, save_model):
    window = make_window()
    open_and_estimate(qtbot, window, save_model())
    undo, redo, session = window.undo_action, window.redo_action, window.session
    assert not undo.isEnabled() and not redo.isEnabled()
    assert (undo.text(), redo.text()) == ("&Undo", "&Redo")

    window.controls.value_spin.setValue(0.5)
    assert session.layer_settings("fc.weight").value == pytest.approx(0.5)
    assert undo.isEnabled() and not redo.isEnabled()
    assert "&Undo prune fc.weight" in menu_texts(window, "&Edit")

    undo.trigger()
    assert session.layer_settings("fc.weight").value == pytest.approx(0.9)
    plan = session.current_plan("fc.weight")  # the floor's choice, once it is known
    shown = plan.settings.value if plan is not None else 0.9
    assert window.controls.value_spin.value() == pytest.approx(shown)
    assert not undo.isEnabled() and redo.isEnabled()
    assert menu_texts(window, "&Edit")[:2] == ["&Undo", "&Redo prune fc.weight"]

    redo.trigger()
    assert session.layer_settings("fc.weight").value == pytest.approx(0.5)
    assert undo.isEnabled() and not redo.isEnabled()
    assert undo.text() == "&Undo prune fc.weight" and redo.text() == "&Redo"


def test_save_settings_as_then_load_settings(qtbot, make_window, save_model, tmp_path, monkeypatch):
    window = make_window()
    session = window.session
    open_and_estimate(qtbot, window, save_model())
    session.set_layers(["fc.weight"], "prune fc.weight", value=0.5, bits=3)
    target = str(tmp_path / "chosen.json")
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *_a, **_k: (target, "Settings (*.json)")
    )
    window.save_as_action.trigger()
    saved = load_settings(target)
    assert saved == session.settings and session.settings_path == target

    session.set_layers(["fc.weight"], "prune fc.weight", value=0.2)
    changed = session.settings
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", lambda *_a, **_k: (target, "Settings (*.json)")
    )
    window.load_settings_action.trigger()
    assert session.settings == saved
    assert session.undo_label() == "load settings"
    assert window.undo_action.text() == "&Undo load settings"
    window.undo_action.trigger()
    assert session.settings == changed


def test_load_settings_from_a_bad_file_warns(qtbot, make_window, save_model, tmp_path, warnings):
    window = make_window()
    open_and_estimate(qtbot, window, save_model())
    before = window.session.settings
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert not window.load_settings(bad)
    assert [t for t, _ in warnings] == ["Cannot load settings"] and str(bad) in warnings[0][1]
    assert window.session.settings is before and not window.session.can_undo


def test_export_opens_the_dialog_and_deletes_it(qtbot, make_window, save_model, monkeypatch):
    window = make_window()
    open_and_estimate(qtbot, window, save_model())
    shown: list[ExportDialog] = []

    def exec_(dialog: ExportDialog) -> int:
        shown.append(dialog)
        assert dialog.parent() is window
        dialog.reject()  # as if the user pressed Close at once
        return 0

    monkeypatch.setattr(ExportDialog, "exec", exec_)
    window.export_action.trigger()
    assert len(shown) == 1
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not shiboken6.isValid(shown[0])


def test_about_box(make_window, monkeypatch):
    window = make_window()
    calls: list[tuple[object, str, str]] = []
    monkeypatch.setattr(QMessageBox, "about", lambda *args: calls.append(args))
    window.about_action.trigger()
    assert len(calls) == 1
    parent, title, text = calls[0]
    assert parent is window and title == "About Inspector" and __version__ in text


def test_layout_is_saved_on_close_and_restored(qtbot, make_window, save_model, ini):
    window = make_window()
    open_and_estimate(qtbot, window, save_model())
    window.resize(1100, 700)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == (1100, 700))
    window.split.setSizes([300, 120])
    window.right.setSizes([400, 200])
    split, right = window.split.sizes(), window.right.sizes()
    window.close()
    stored = QSettings(ini, QSettings.Format.IniFormat)
    assert all(stored.value(k) is not None for k in ("geometry", "state", "split", "right"))

    again = make_window()
    open_and_estimate(qtbot, again, save_model())
    assert (again.width(), again.height()) == (1100, 700)
    assert again.split.sizes() == split and again.right.sizes() == right


# ------------------------------------------------------------------ the app entry point
def run_app(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "inspector.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_screenshot_of_a_selected_layer(save_model, tmp_path):
    out = tmp_path / "shot.png"
    done = run_app(
        "gui", save_model(), "--screenshot", str(out), "--select", "fc.weight", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_screenshot_of_an_unknown_layer_is_one_error_line(save_model, tmp_path):
    out = tmp_path / "shot.png"
    done = run_app(
        "gui", save_model(), "--screenshot", str(out), "--select", "nosuch", cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["inspector: error: no layer named 'nosuch'"]
    assert not out.exists()


def test_screenshot_of_a_missing_file_is_one_error_line_naming_it(tmp_path):
    done = run_app("nosuch.pt", "--screenshot", "out.png", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "nosuch.pt" in lines[0], done.stderr
    assert not (tmp_path / "out.png").exists()


def _corpus_samples() -> list[dict]:
    """The first damaged file of each format in the committed corpus."""
    import json

    manifest = Path(__file__).resolve().parents[1] / "corpus" / "manifest.json"
    first: dict[str, dict] = {}
    for entry in json.loads(manifest.read_text())["entries"]:
        if entry["expect"] != "reads" and not entry["file"].startswith("any_directory"):
            first.setdefault(entry["format"], entry)
    return list(first.values())


@pytest.mark.parametrize("entry", _corpus_samples(), ids=lambda e: e["file"])
def test_damaged_files_of_every_format_give_one_dialog_line(
    qtbot, make_window, warnings, entry
) -> None:
    window = make_window()
    path = Path(__file__).resolve().parents[1] / "corpus" / entry["file"]
    with qtbot.waitSignal(window.controller.load_failed, timeout=LOAD_MS):
        window.open_model(path)
    assert len(warnings) == 1
    title, text = warnings[0]
    assert title == "Cannot open model" and str(path) in text and "\n" not in text
    assert entry["expect"] in text and "Traceback" not in text
    assert window.open_action.isEnabled() and not window.progress.isVisible()
