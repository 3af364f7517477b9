"""The app asks before it runs a model's code, once per file, and honours a "no".

Reading a TorchScript archive never runs it; measuring accuracy, tuning and exporting a
TorchScript copy load it with ``torch.jit.load``, which runs code the archive holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import shiboken6
from PySide6.QtCore import QEvent, QSettings
from PySide6.QtWidgets import QApplication

import numpy as np
import pytest

from inspector.gui import code_consent
from inspector.gui.export_dialog import ExportDialog
from inspector.gui.main_window import MainWindow

LOAD_MS = 60000


@pytest.fixture
def scripted(tmp_path: Path) -> dict[str, str]:
    """A small scripted MLP and evaluation data for it."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    model, data = tmp_path / "mlp.pt", tmp_path / "eval.npz"
    torch.jit.save(torch.jit.script(net), str(model))
    rng = np.random.default_rng(0)
    np.savez(data, inputs=rng.normal(size=(40, 8)).astype(np.float32),
             labels=rng.integers(0, 3, 40))  # fmt: skip
    return {"model": str(model), "data": str(data)}


@pytest.fixture
def window(qtbot, tmp_path) -> Iterator[MainWindow]:
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    yield w
    if shiboken6.isValid(w):
        w.close()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _answer(monkeypatch: pytest.MonkeyPatch, window: MainWindow, yes: bool) -> list[str]:
    asked: list[str] = []

    def ask(path: Path, action: str) -> bool:
        asked.append(action)
        return yes

    monkeypatch.setattr(window.controller.consent, "ask", ask)
    return asked


def _open(qtbot, window: MainWindow, model: str, data: str) -> None:
    with qtbot.waitSignal(window.controller.loaded, timeout=LOAD_MS):
        window.open_model(model, data_path=data)
    qtbot.waitUntil(lambda: window.session.estimate is not None, timeout=LOAD_MS)


def test_no_keeps_the_code_from_running_and_says_why(qtbot, window, scripted, monkeypatch):
    import torch

    asked = _answer(monkeypatch, window, yes=False)
    errors: list[tuple[str, str]] = []  # the window's message box, which would wait offscreen
    monkeypatch.setattr(window, "on_error", lambda title, text: errors.append((title, text)))
    loads: list[str] = []
    real = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: loads.append("load") or real(*a, **k))
    _open(qtbot, window, scripted["model"], scripted["data"])
    qtbot.waitUntil(lambda: bool(window.session.accuracy_note), timeout=LOAD_MS)
    assert asked == ["measuring its accuracy"]
    assert "chose not to run" in window.session.accuracy_note
    assert window.session.accuracy is None and loads == []
    window.tune.measure_sensitivity()  # the answer is remembered: not asked again
    assert asked == ["measuring its accuracy"] and "chose not to run" in errors[0][1]
    assert loads == [] and window.session.model is not None  # the weights are still shown


def test_yes_is_asked_once_per_file(qtbot, window, scripted, monkeypatch):
    asked = _answer(monkeypatch, window, yes=True)
    monkeypatch.setattr(window, "on_error", lambda title, text: None)
    _open(qtbot, window, scripted["model"], scripted["data"])
    qtbot.waitUntil(lambda: window.session.accuracy_is_current, timeout=LOAD_MS)
    window.controller.tuning.measure_sensitivity()
    window.controller.tuning.cancel()
    assert asked == ["measuring its accuracy"]


def test_a_file_without_code_is_never_asked_about(tmp_path):
    asked: list[str] = []
    consent = code_consent.CodeConsent(lambda path, action: asked.append(action) or True)
    onnx_like = tmp_path / "m.onnx"
    onnx_like.write_bytes(b"\x08\x07")
    assert consent.allow_code(onnx_like, "measuring") is False and asked == []


def test_export_of_a_torchscript_copy_asks_and_honours_no(qtbot, window, scripted, tmp_path,
                                                         monkeypatch):  # fmt: skip
    _open(qtbot, window, scripted["model"], scripted["data"])
    dialog = ExportDialog(window.session, window, consent=code_consent.CodeConsent(
        lambda path, action: False))  # fmt: skip
    qtbot.addWidget(dialog)
    errors: list[str] = []
    monkeypatch.setattr(dialog, "_show_error", errors.append)
    dialog.path_edit.setText(str(tmp_path / "copy.pt"))
    assert dialog.start() == 0
    assert errors and "chose not to run" in errors[0] and not (tmp_path / "copy.pt").exists()
