"""The model-wide target control: a solve runs in the background, lands as one undoable
change that meets the target in the file written, a stale result is dropped, and Cancel
stops it."""

from __future__ import annotations

from inspector.gui.controller import Controller
from inspector.gui.target_widget import TargetWidget
from inspector.model.session import Session
from inspector.tasks.codec import compress
from inspector.tasks.drive import run_to_end as drain
from inspector.tasks.target import Target, fp32_nbytes

WAIT_MS = 20000




def _open(qtbot, save_model) -> tuple[Session, Controller, TargetWidget]:
    session = Session()
    controller = Controller(session)
    widget = TargetWidget(session, controller.target)
    qtbot.addWidget(widget)
    with qtbot.waitSignal(controller.loaded, timeout=WAIT_MS):
        controller.open_path(save_model())
    qtbot.waitUntil(lambda: session.estimate is not None, timeout=WAIT_MS)
    return session, controller, widget


def test_a_ratio_target_is_one_undoable_change_met_by_the_file(qtbot, save_model,
                                                                tmp_path) -> None:
    session, controller, widget = _open(qtbot, save_model)
    try:
        session.set_layers(["fc.weight"], {"seed": 3}, "a user's edit")
        before = session.settings
        widget.kind_combo.setCurrentIndex(widget.kind_combo.findData("ratio"))
        widget.value_spin.setValue(10.0)
        with qtbot.waitSignal(controller.target.solved, timeout=WAIT_MS) as got:
            widget.solve_button.click()
        result = got.args[0]
        assert session.settings is result.settings and session.undo_label().startswith("target")
        assert session.settings.layers == before.layers  # overrides kept
        assert session.settings.defaults["method"] == "uniform"
        assert "reached 10." in widget.result_label.text()
        out = tmp_path / "out.dcz"
        _, nbytes = drain(compress(controller.codec, session.settings, out))
        assert 10 <= fp32_nbytes(controller.codec) / nbytes <= 10.1
        session.undo()
        assert session.settings is before
    finally:
        controller.shutdown()


def test_a_stale_result_is_dropped_and_cancel_stops(qtbot, save_model) -> None:
    session, controller, widget = _open(qtbot, save_model)
    try:
        target = controller.target
        with qtbot.waitSignal(target.busy, timeout=WAIT_MS,
                              check_params_cb=lambda busy: not busy):
            target.solve(Target("ratio", 8.0))
            session.set_layers(["fc.weight"], {"seed": 5}, "edit while solving")
        changed = session.settings
        qtbot.wait(50)
        assert session.settings is changed  # the solve of the old settings did not land
        with qtbot.waitSignal(target.busy, timeout=WAIT_MS,
                              check_params_cb=lambda busy: not busy):
            target.solve(Target("layer_sqnr", 99.0))
            widget.cancel_button.click()
        qtbot.waitUntil(lambda: not target.running, timeout=WAIT_MS)
        assert session.settings is changed and widget.solve_button.isEnabled()
    finally:
        controller.shutdown()


def test_a_measured_floor_uses_the_evaluation_data(qtbot, tmp_path) -> None:
    from pathlib import Path

    samples = Path(__file__).resolve().parents[2] / "sample_models"
    session = Session()
    controller = Controller(session)
    widget = TargetWidget(session, controller.target)
    qtbot.addWidget(widget)
    try:
        with qtbot.waitSignal(controller.loaded, timeout=WAIT_MS):
            controller.open_path(samples / "lenet300_100.onnx",
                                 data_path=samples / "mnist_test.h5")
        qtbot.waitUntil(lambda: session.estimate is not None, timeout=WAIT_MS)
        widget.kind_combo.setCurrentIndex(widget.kind_combo.findData("floor"))
        widget.value_spin.setValue(0.5)
        assert widget.target() == Target("floor", -0.5)
        with qtbot.waitSignal(controller.target.solved, timeout=WAIT_MS) as got:
            widget.solve_button.click()
        result = got.args[0]
        assert result.met and -0.5 <= result.measured <= 0.5 and result.ratio > 8
        assert "drop" in widget.result_label.text()
        assert session.settings is result.settings
    finally:
        controller.shutdown()
