"""The Tune menu: sensitivity sweep, auto-tune and fine-tune, with their dialogs.

Its own module so that the main window only composes; the runs themselves belong to
``TuningController`` (background work), this class only asks the user and starts them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QInputDialog

if TYPE_CHECKING:
    from .main_window import MainWindow

DATA_FILTER = "Evaluation data (*.h5 *.hdf5 *.npz);;All files (*)"
DEFAULT_BUDGET = 0.5  # points of top-1 accuracy


class TuneMenu(QObject):
    """Builds the Tune menu of ``window`` and wires it to ``window.controller.tuning``."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.tuning = tuning = window.controller.tuning
        self.sweep_action = self._action("Measure &Sensitivity", self.measure_sensitivity)
        self.tune_action = self._action("&Auto-Tune…", self.auto_tune)
        self.finetune_action = self._action("&Fine-Tune…", self.fine_tune)
        self.cancel_action = self._action("&Cancel", tuning.cancel, "Esc")
        self.cancel_action.setEnabled(False)
        menu = window.menuBar().addMenu("&Tune")
        for action in self.run_actions:
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.cancel_action)
        tuning.progress.connect(window._on_controller_progress)
        tuning.busy.connect(self._on_tuning_busy)
        tuning.failed.connect(lambda message: window.on_error("Tuning failed", message))
        tuning.fine_tuned.connect(self._on_tuning_fine_tuned)

    @property
    def run_actions(self) -> tuple[QAction, ...]:
        return (self.sweep_action, self.tune_action, self.finetune_action)

    def _action(self, text: str, slot: object, shortcut: str | None = None) -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        return action

    def set_enabled(self, has_model: bool) -> None:
        for action in self.run_actions:
            action.setEnabled(has_model and not self.tuning.running)

    # ----------------------------------------------------------------- commands
    def measure_sensitivity(self) -> None:
        self.window.tabs.setCurrentWidget(self.window.sensitivity)
        self.tuning.measure_sensitivity()

    def auto_tune(self) -> None:
        budget, ok = QInputDialog.getDouble(
            self.window, "Auto-tune", "Largest top-1 accuracy drop (percentage points):",
            DEFAULT_BUDGET, 0.0, 100.0, 2,
        )
        if ok:
            self.tuning.auto_tune(budget)

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

    # ---------------------------------------------------------------- handlers
    def _on_tuning_busy(self, busy: bool) -> None:
        self.cancel_action.setEnabled(busy)
        has_model = self.window.session.model is not None
        for action in self.run_actions:
            action.setEnabled(not busy and has_model)
        if not busy:
            self.window.progress.hide()

    def _on_tuning_fine_tuned(self, path: str, settings: object) -> None:
        controller = self.window.controller
        controller.open_path(path, data_path=controller.accuracy.data_path, settings=settings)
