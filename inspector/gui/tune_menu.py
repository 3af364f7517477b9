"""The Tune menu: sensitivity sweep, auto-tune and fine-tune, with their dialogs.

Its own module so that the main window only composes; the runs themselves belong to
``TuningController`` (background work), this class only asks the user and starts them.

The runs need a model that can run (TorchScript or ONNX): for any other the actions are
disabled, with the reason as their tooltip and in the status bar. Without evaluation data they
measure agreement with the original model on synthetic inputs, made from the model's input
shape: a TorchScript archive records none, so Input Shape asks for it (and a run asks first).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QInputDialog

from inspector.errors import InputError
from inspector.runtime.eval_inputs import parse_shape

if TYPE_CHECKING:
    from .tune_host import TuneHost

DATA_FILTER = "Evaluation data (*.h5 *.hdf5 *.npz *.npy);;All files (*)"
DEFAULT_BUDGET = 0.5  # points of top-1 accuracy (or of agreement, or of cosine x 100)
RUN_TIP = "Runs the model: on the evaluation data, or without it on synthetic inputs."
SHAPE_TIP = ("The shape of one batch of the model's input, batch first (e.g. 1x1x28x28), for "
             "the synthetic inputs measured without evaluation data. TorchScript archives do "
             "not record it; it overrides an ONNX model's declared shape.")
SHAPE_PROMPT = "Input shape, batch first (e.g. 1x1x28x28 or 1,3,224,224):"


class TuneMenu(QObject):
    """Builds the Tune menu of ``window`` and wires it to ``window.controller.tuning``."""

    def __init__(self, window: TuneHost) -> None:
        super().__init__(window)
        self.window = window
        self.tuning = tuning = window.controller.tuning
        self.sweep_action = self._action("Measure &Sensitivity", self.measure_sensitivity)
        self.tune_action = self._action("&Auto-Tune…", self.auto_tune)
        self.tune_methods_action = self._action("Auto-Tune Across &Methods…",
                                                self.auto_tune_methods)
        self.finetune_action = self._action("&Fine-Tune…", self.fine_tune)
        self.shape_action = self._action("Input &Shape…", self.choose_input_shape)
        self.cancel_action = self._action("&Cancel", tuning.cancel, "Esc")
        self.cancel_action.setEnabled(False)
        #: Why the runs are disabled for the open model ("" when they can run).
        self.reason = ""
        menu = window.menuBar().addMenu("&Tune")
        menu.setToolTipsVisible(True)
        for action in self.run_actions:
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.shape_action)
        menu.addSeparator()
        menu.addAction(self.cancel_action)
        tuning.progress.connect(window._on_controller_progress)
        tuning.busy.connect(self._on_tuning_busy)
        tuning.failed.connect(lambda message: window.on_error("Tuning failed", message))
        tuning.fine_tuned.connect(self._on_tuning_fine_tuned)

    @property
    def run_actions(self) -> tuple[QAction, ...]:
        return (self.sweep_action, self.tune_action, self.tune_methods_action,
                self.finetune_action)

    def _action(self, text: str, slot: object, shortcut: str | None = None) -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        return action

    def set_enabled(self, has_model: bool) -> None:
        """Enable the runs for a model that can run; else say why (tooltip and status tip)."""
        from inspector.runtime.runnable_open import run_refusal

        model = self.window.session.model
        self.reason = "" if model is None else (run_refusal(model.format) or "")
        for action in self.run_actions:
            action.setToolTip(self.reason or RUN_TIP)
            action.setStatusTip(self.reason or RUN_TIP)  # the status bar, on hovering it
        self.shape_action.setToolTip(self.reason or SHAPE_TIP)
        self.shape_action.setStatusTip(self.reason or SHAPE_TIP)
        self._update_actions(busy=self.tuning.running)

    def _update_actions(self, busy: bool) -> None:
        runnable = self.window.session.model is not None and not self.reason
        for action in (*self.run_actions, self.shape_action):
            action.setEnabled(runnable and not busy)

    # ----------------------------------------------------------------- commands
    def choose_input_shape(self) -> bool:
        """Ask for the open model's input shape; without evaluation data, measure its
        agreement on inputs of that shape. False: cancelled or not a shape."""
        model = self.window.session.model
        if model is None:
            return False
        accuracy = self.window.controller.accuracy
        current = accuracy.input_shape(model.path)
        text, ok = QInputDialog.getText(self.window, "Input shape", SHAPE_PROMPT,
                                        text="x".join(map(str, current)) if current else "")
        if not ok or not text.strip():
            return False
        try:
            shape = parse_shape(text)
        except InputError as exc:
            self.window.on_error("Input shape", str(exc))
            return False
        accuracy.use_input_shape(model, shape)
        self.window.statusBar().showMessage(
            f"Input shape of {Path(model.path).name}: {'x'.join(map(str, shape))}", 5000)
        return True

    def _has_inputs(self) -> bool:
        """Whether a run has inputs: evaluation data, or a shape to make them from (asked
        for a TorchScript archive, which records none)."""
        model = self.window.session.model
        accuracy = self.window.controller.accuracy
        if model is None or accuracy.data_path is not None or model.format != "torchscript":
            return True
        return accuracy.input_shape(model.path) is not None or self.choose_input_shape()

    def measure_sensitivity(self) -> None:
        if not self._has_inputs():
            return
        self.window.tabs.setCurrentWidget(self.window.sensitivity)
        self.tuning.measure_sensitivity()

    def auto_tune(self) -> None:
        if not self._has_inputs():
            return
        budget, ok = QInputDialog.getDouble(
            self.window, "Auto-tune", f"Largest drop in {self._measure()} (percentage points):",
            DEFAULT_BUDGET, 0.0, 100.0, 2,
        )
        if ok:
            self.tuning.auto_tune(budget)

    def auto_tune_methods(self) -> None:
        budget, ok = QInputDialog.getDouble(
            self.window, "Auto-tune across methods",
            f"Per layer, the cheapest method and setting within a drop in {self._measure()} "
            "(percentage points) of:", DEFAULT_BUDGET, 0.0, 100.0, 2,
        )
        if ok:
            self.tuning.auto_tune_methods(budget)

    def fine_tune(self) -> None:
        model = self.window.session.model
        if model is None:
            return
        train, _ = QFileDialog.getOpenFileName(
            self.window, "Training data for fine-tuning", str(Path(model.path).parent),
            DATA_FILTER,
        )
        if not train:
            return
        default = f"{Path(model.path).with_suffix('')}_finetuned.pt"
        output, _ = QFileDialog.getSaveFileName(
            self.window, "Save the fine-tuned model (TorchScript)", default, "TorchScript (*.pt)"
        )
        if output:
            self.tuning.fine_tune(train, output)

    def _measure(self) -> str:
        """What the budget is in: the metric of the last measurement, if any."""
        from inspector.model.accuracy import metric_name

        accuracy = self.window.session.accuracy
        if accuracy is not None:
            name = metric_name(accuracy.metric)
            return name + (" (cosine x 100)" if accuracy.metric == "cosine" else "")
        if self.tuning.data_path is None:
            return "agreement with the original (on synthetic inputs)"
        return "top-1 accuracy"

    # ---------------------------------------------------------------- handlers
    def _on_tuning_busy(self, busy: bool) -> None:
        self.cancel_action.setEnabled(busy)
        self._update_actions(busy)
        if not busy:
            self.window.progress.hide()

    def _on_tuning_fine_tuned(self, path: str, settings: object) -> None:
        controller = self.window.controller
        controller.open_path(path, data_path=controller.accuracy.data_path, settings=settings)
