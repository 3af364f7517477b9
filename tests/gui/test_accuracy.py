"""Measured accuracy in the app, and the Tune menu's runs (sweep, auto-tune, fine-tune).

The model is a real one: a small MLP trained here on scikit-learn's 8x8 digits, saved as
TorchScript, with the held-out digits in an HDF5 evaluation file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import shiboken6
from PySide6.QtCore import QEvent, QSettings
from PySide6.QtWidgets import QApplication

import h5py
import numpy as np
import pytest

from inspector.gui.main_window import MainWindow
from inspector.io import read_model
from inspector.tasks.accuracy import open_evaluator
from inspector.tasks.codec import ModelCodec

LOAD_MS = 60000


def _write_data(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("inputs", data=x.astype(np.uint8))
        f.create_dataset("labels", data=y.astype(np.int64))
        f.attrs["scale"] = 1 / 16


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict[str, str]:
    """``{"model": scripted MLP, "test": eval file, "train": train file}`` on 8x8 digits."""
    import torch
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("digits")
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:1400], order[1400:]
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 10)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt = torch.from_numpy(x[train] / 16).float()
    yt = torch.from_numpy(y[train]).long()
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    paths = {"model": folder / "mlp.pt", "test": folder / "test.h5", "train": folder / "train.h5"}
    torch.jit.save(torch.jit.script(net), str(paths["model"]))
    _write_data(paths["test"], x[test], y[test])
    _write_data(paths["train"], x[train], y[train])
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture
def window(qtbot, tmp_path) -> Iterator[MainWindow]:
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    yield w
    if shiboken6.isValid(w):
        w.close()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _open(qtbot, window: MainWindow, model: str, data: str | None) -> None:
    with qtbot.waitSignal(window.controller.loaded, timeout=LOAD_MS):
        window.open_model(model, data_path=data)
    qtbot.waitUntil(lambda: window.session.estimate is not None, timeout=LOAD_MS)


def _measured(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.session.accuracy_is_current, timeout=LOAD_MS)


def _direct_top1(model_path: str, data: str, settings) -> float:
    """The same measurement outside the app."""
    from inspector.gui.workers import Token, drive

    evaluator = open_evaluator(model_path, data, allow_code=True)
    codec = ModelCodec(read_model(model_path))
    return drive(evaluator.evaluate_settings(codec, settings), Token()).top1


def test_measured_accuracy_is_shown_and_follows_the_settings(qtbot, window, digits):
    _open(qtbot, window, digits["model"], digits["test"])
    _measured(qtbot, window)
    s = window.session
    s.set_layers(("0.weight", "2.weight"), "mild", policy="sparsity", value=0.3, bits=6)
    _measured(qtbot, window)
    first = s.accuracy
    assert first.count == 397 and first.baseline_top1 > 0.9
    assert first.top1 > 0.9
    assert first.top1 == pytest.approx(_direct_top1(digits["model"], digits["test"], s.settings))
    text = window.summary.accuracy.text()
    assert "measured" in text and f"{100 * first.top1:.2f}%" in text
    assert window.summary.accuracy_kind == "measured"

    s.set_layers(("0.weight", "2.weight"), "harsh", policy="sparsity", value=0.98, bits=1)
    assert not s.accuracy_is_current  # the old figure stays, greyed, until the new one lands
    _measured(qtbot, window)
    assert s.accuracy.top1 < first.top1 - 0.2
    assert s.accuracy.top1 == pytest.approx(
        _direct_top1(digits["model"], digits["test"], s.settings)
    )
    assert window.summary.accuracy.isEnabled()


def test_no_runnable_model_keeps_the_proxy_and_says_why(qtbot, window, digits, tmp_path):
    import torch

    state = tmp_path / "state.pt"  # weights only: nothing to run
    torch.save(torch.jit.load(digits["model"]).state_dict(), state)
    _open(qtbot, window, str(state), digits["test"])
    qtbot.waitUntil(lambda: bool(window.session.accuracy_note), timeout=LOAD_MS)
    assert window.session.accuracy is None
    assert window.summary.accuracy_kind == "proxy"
    assert "Not measured" in window.summary.accuracy.toolTip()
    assert "state.pt" in window.session.accuracy_note


def test_a_bad_evaluation_file_is_one_message(qtbot, window, digits, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    _open(qtbot, window, digits["model"], str(bad))
    qtbot.waitUntil(lambda: bool(window.session.accuracy_note), timeout=LOAD_MS)
    assert "bad.h5" in window.session.accuracy_note
    assert "\n" not in window.session.accuracy_note


def test_sensitivity_sweep_then_auto_tune(qtbot, window, digits):
    _open(qtbot, window, digits["model"], digits["test"])
    _measured(qtbot, window)
    s = window.session
    window.tune.measure_sensitivity()
    qtbot.waitUntil(lambda: s.settings.sensitivity is not None, timeout=LOAD_MS)
    sweep = s.settings.sensitivity
    assert {la.name for la in sweep.layers} == {"0.weight", "2.weight"}
    assert window.tabs.currentWidget() is window.sensitivity
    curves = window.sensitivity.prune_plot.getPlotItem().listDataItems()
    assert len(curves) == 2
    assert s.undo_label() == "sensitivity sweep"

    before = window.session.estimate.file_nbytes
    window.controller.tuning.auto_tune(1.0)
    qtbot.waitUntil(lambda: s.undo_label().startswith("auto-tune"), timeout=LOAD_MS)
    assert s.settings.sensitivity == sweep  # the sweep stays with the settings
    # the defaults (90% pruned) cost this small net most of its accuracy: the tuned file is
    # larger, and accurate
    qtbot.waitUntil(lambda: s.estimate.file_nbytes != before, timeout=LOAD_MS)
    assert s.estimate.ratio > 2
    _measured(qtbot, window)
    assert s.accuracy.drop_points <= 1.0 + 1e-9
    s.undo()
    assert s.undo_label() == "sensitivity sweep"


def test_a_cancelled_sweep_changes_nothing(qtbot, window, digits):
    _open(qtbot, window, digits["model"], digits["test"])
    tuning = window.controller.tuning
    with qtbot.waitSignal(tuning.busy, timeout=LOAD_MS) as started:
        window.tune.measure_sensitivity()
    assert started.args == [True]
    assert window.tune.cancel_action.isEnabled()
    window.tune.cancel_action.trigger()
    assert not window.tune.cancel_action.isEnabled()
    qtbot.wait(500)
    assert window.session.settings.sensitivity is None


def test_torchscript_without_data_says_what_is_needed(qtbot, window, digits, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    asked: list[str] = []
    monkeypatch.setattr(QInputDialog, "getText",
                        lambda *args, **kw: (asked.append(args[2]), ("", False))[1])
    _open(qtbot, window, digits["model"], None)
    # No shape in the archive: no synthetic inputs, so the proxy stays, with the reason.
    qtbot.waitUntil(lambda: bool(window.session.accuracy_note), timeout=LOAD_MS)
    assert window.session.accuracy is None and window.summary.accuracy_kind == "proxy"
    note = window.session.accuracy_note
    assert "input shape" in note and "Tune ▸ Input Shape" in note and "evaluation data" in note
    assert window.tune.sweep_action.isEnabled() and window.tune.shape_action.isEnabled()
    window.tune.measure_sensitivity()  # asks for the shape first; cancelled: nothing runs
    assert len(asked) == 1 and "batch first" in asked[0]
    assert not window.controller.tuning.running and window.session.settings.sensitivity is None


def _answer(monkeypatch, text: str) -> list[str]:
    """Answer the input shape dialog with ``text``; returns the texts it was opened with."""
    from PySide6.QtWidgets import QInputDialog

    shown: list[str] = []

    def get_text(*_args: object, text: str = "", **_kw: object) -> tuple[str, bool]:
        shown.append(text)
        return answer, True

    answer = text
    monkeypatch.setattr(QInputDialog, "getText", get_text)
    return shown


def test_an_input_shape_given_in_the_app_measures_torchscript_without_data(
    qtbot, window, digits, monkeypatch
):
    errors: list[str] = []
    monkeypatch.setattr(window, "on_error", lambda title, text: errors.append(text))
    _open(qtbot, window, digits["model"], None)
    qtbot.waitUntil(lambda: bool(window.session.accuracy_note), timeout=LOAD_MS)
    _answer(monkeypatch, "1x64xbad")
    assert not window.tune.choose_input_shape()
    assert len(errors) == 1 and "batch first" in errors[0]
    shown = _answer(monkeypatch, "1x64")
    assert window.tune.choose_input_shape()  # Tune ▸ Input Shape…
    _measured(qtbot, window)
    s = window.session
    assert s.accuracy.metric == "agreement" and not s.accuracy.labelled
    assert "64 synthetic inputs" in s.accuracy.inputs and "shape given" in s.accuracy.inputs
    assert "agreement with the original: top-1" in window.summary.accuracy.text()
    with qtbot.waitSignal(window.controller.tuning.busy, timeout=LOAD_MS,
                          check_params_cb=lambda busy: not busy):
        window.tune.measure_sensitivity()  # the shape is known: no question
    sweep = s.settings.sensitivity
    assert sweep is not None and sweep.metric == "agreement" and len(shown) == 1
    window.tune.choose_input_shape()  # opened again, it shows the shape in use
    assert shown[-1] == "1x64" and errors == [errors[0]]


def test_the_command_lines_input_shape_reaches_the_app(qtbot, window, digits, monkeypatch):
    from inspector import cli
    from inspector.gui import app

    runs: list[tuple] = []
    monkeypatch.setattr(app, "run", lambda *args: runs.append(args) or 0)
    assert cli.main(["gui", digits["model"], "--input-shape", "1,64"]) == 0
    assert runs[0][6] == (1, 64)  # run(model, config, screenshot, select, data, code, shape, ...)
    assert cli.main(["gui", digits["model"], "--input-shape", "64"]) == 2  # one line, no run
    assert len(runs) == 1
    app.open_given(window, digits["model"], input_shape=runs[0][6])  # what run() does next
    qtbot.waitUntil(lambda: window.session.model is not None, timeout=LOAD_MS)
    _measured(qtbot, window)
    assert "shape given" in window.session.accuracy.inputs


def _onnx_mlp(path: Path) -> str:
    """Linear 64 -> 48 -> ReLU -> 10 with an open batch axis (the shape synthetic inputs use)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("fc1.weight", rng.normal(0, 0.3, (48, 64))), ("fc1.bias", rng.normal(0, 0.1, 48)),
        ("fc2.weight", rng.normal(0, 0.3, (10, 48))), ("fc2.bias", rng.normal(0, 0.1, 10)))]
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


def test_without_data_the_summary_shows_agreement_on_synthetic_inputs(qtbot, window, tmp_path):
    model = _onnx_mlp(tmp_path / "mlp.onnx")
    _open(qtbot, window, model, None)
    _measured(qtbot, window)
    s = window.session
    text = window.summary.accuracy.text()
    assert window.summary.accuracy_kind == "measured" and "SQNR" not in text
    assert "agreement with the original: top-1" in text and "synthetic inputs" in text
    assert s.accuracy.metric == "agreement" and not s.accuracy.labelled
    tip = window.summary.accuracy.toolTip()
    assert "without labels" in tip and "64 synthetic inputs (normal, seed 0, 64 each" in tip
    s.set_layers(("fc1.weight", "fc2.weight"), "harsh", policy="sparsity", value=0.95, bits=1)
    _measured(qtbot, window)
    assert s.accuracy.cosine < 0.99 and f"{s.accuracy.cosine:.3f}" in window.summary.accuracy.text()
    # The Tune menu runs with agreement as its measure.
    with qtbot.waitSignal(window.controller.tuning.busy, timeout=LOAD_MS,
                          check_params_cb=lambda busy: not busy):
        window.controller.tuning.measure_sensitivity()
    sweep = s.settings.sensitivity
    assert sweep is not None and sweep.metric == "agreement" and sweep.baseline_top1 == 1.0
    assert {la.name for la in sweep.layers} == {"fc1.weight", "fc2.weight"}
    axis = window.sensitivity.prune_plot.getPlotItem().getAxis("left")
    window.sensitivity._refresh()  # drawn when shown; the labels name what was measured
    assert "agreement with the original" in axis.labelText


def test_auto_tune_asks_for_the_budget_in_the_measured_metric(qtbot, window, digits,
                                                              tmp_path, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    asked: list[str] = []
    monkeypatch.setattr(QInputDialog, "getDouble",
                        lambda *args, **kw: (asked.append(args[2]), (0.0, False))[1])
    _open(qtbot, window, _onnx_mlp(tmp_path / "mlp.onnx"), None)
    _measured(qtbot, window)
    window.tune.auto_tune()
    _open(qtbot, window, digits["model"], digits["test"])
    _measured(qtbot, window)
    window.tune.auto_tune()
    assert asked == ["Largest drop in top-1 agreement with the original (percentage points):",
                     "Largest drop in top-1 accuracy (percentage points):"]


def test_tune_menu_needs_a_model_that_runs(qtbot, window, tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"fc.weight": np.ones((8, 8), np.float32)}, str(path))
    _open(qtbot, window, str(path), None)
    menu = window.tune
    for action in menu.run_actions:
        assert not action.isEnabled()
        assert action.toolTip() == "safetensors holds weights only: nothing to run"
        assert action.statusTip() == action.toolTip()
    assert "nothing to run" in window.session.accuracy_note  # the proxy says why, too
    model = _onnx_mlp(tmp_path / "mlp.onnx")
    _open(qtbot, window, model, None)
    assert all(a.isEnabled() for a in menu.run_actions) and menu.reason == ""


def test_fine_tune_writes_and_opens_the_retrained_model(qtbot, window, digits, tmp_path):
    _open(qtbot, window, digits["model"], digits["test"])
    s = window.session
    s.set_layers(("0.weight", "2.weight"), "prune", policy="sparsity", value=0.9, bits=3)
    out = tmp_path / "tuned.pt"
    with qtbot.waitSignal(window.controller.tuning.fine_tuned, timeout=LOAD_MS):
        window.controller.tuning.fine_tune(digits["train"], str(out), (1, 1))
    assert out.is_file()
    qtbot.waitUntil(lambda: s.model is not None and s.model.path == str(out), timeout=LOAD_MS)
    _measured(qtbot, window)
    weights = s.model.tensors["0.weight"]
    assert np.mean(weights == 0) >= 0.89  # the pruned weights stayed zero
    assert len(np.unique(weights[weights != 0])) <= 8
