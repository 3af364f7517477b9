"""The model-wide target control: a file size, a ratio or a fidelity floor, solved by one
rate knob for every layer (:mod:`inspector.gui.target` runs it in the background).

The control only asks; the controller writes the session (one undoable change) and this
widget shows what the solve reached.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from inspector.model.session import Session
from inspector.tasks.target import Target, TargetResult

from .target import TargetController
from .util import connect_session

#: (label, target kind, unit factor to the target's value, default, lo, hi, decimals, suffix)
KINDS: tuple[tuple[str, str, float, float, float, float, int, str], ...] = (
    ("Ratio", "ratio", 1.0, 20.0, 1.01, 10000.0, 2, "x smaller"),
    ("File size", "bytes", 1000.0, 100.0, 0.001, 1e9, 3, " KB"),
    ("Weight SQNR", "sqnr", 1.0, 30.0, 0.0, 100.0, 1, " dB"),
    ("Every layer's SQNR", "layer_sqnr", 1.0, 30.0, 0.0, 100.0, 1, " dB"),
    # measured: at most so many points lost (the floor is minus the drop)
    ("Max drop (measured)", "floor", -1.0, 0.5, 0.0, 100.0, 2, " pt"),
)


class TargetWidget(QWidget):
    """Kind, value, Solve / Cancel, and the last result."""

    def __init__(self, session: Session, controller: TargetController,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.controller = controller
        self.kind_combo = QComboBox()
        for label, kind, *_ in KINDS:
            self.kind_combo.addItem(label, kind)
        self.kind_combo.setToolTip("What one model-wide knob must reach: a ratio to the fp32 "
                                   "tensors, a file size, a weight-space fidelity floor, or "
                                   "a measured drop at most (top-1 on the evaluation data, "
                                   "else agreement with the original on synthetic inputs)")
        self.value_spin = QDoubleSpinBox()
        self.solve_button = QPushButton("Solve")
        self.solve_button.setToolTip("Find the single step (rate knob) for every layer that "
                                     "meets the target, with the best coder (uniform, per "
                                     "channel, entropy auto) where no method is set; layer "
                                     "overrides are kept. Undo goes back.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.result_label = QLabel()
        self.result_label.setMinimumWidth(1)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 0, 6, 0)
        row.addWidget(QLabel("Model-wide target:"))
        for w in (self.kind_combo, self.value_spin, self.solve_button, self.cancel_button):
            row.addWidget(w)
        row.addWidget(self.result_label, 1)
        self.kind_combo.currentIndexChanged.connect(self._on_kind_combo_changed)
        self.solve_button.clicked.connect(self._on_solve_button_clicked)
        self.cancel_button.clicked.connect(controller.cancel)
        controller.busy.connect(self._on_controller_busy)
        controller.solved.connect(self._on_controller_solved)
        controller.failed.connect(self._on_controller_failed)
        connect_session(self, [(session.model_changed, self._on_session_model_changed)])
        self._on_kind_combo_changed()
        self._on_session_model_changed()

    def target(self) -> Target:
        """The target the controls say."""
        _, kind, factor, *_ = KINDS[self.kind_combo.currentIndex()]
        value = self.value_spin.value() * factor
        return Target(kind, float(round(value)) if kind == "bytes" else value)

    def _on_kind_combo_changed(self) -> None:
        _, _, _, default, lo, hi, decimals, suffix = KINDS[self.kind_combo.currentIndex()]
        self.value_spin.setDecimals(decimals)
        self.value_spin.setRange(lo, hi)
        self.value_spin.setSuffix(suffix)
        self.value_spin.setValue(default)

    def _on_solve_button_clicked(self) -> None:
        self.result_label.setText("solving…")
        self.controller.solve(self.target())

    def _on_controller_busy(self, busy: bool) -> None:
        self.solve_button.setEnabled(not busy and self.session.model is not None)
        self.cancel_button.setEnabled(busy)
        if not busy and self.result_label.text() == "solving…":
            self.result_label.setText("")

    def _on_controller_solved(self, result: TargetResult) -> None:
        miss = "" if result.met else " (not reachable: closest)"
        drop = "" if result.measured is None else f", drop {-result.measured:.2f} pt"
        self.result_label.setText(
            f"reached {result.ratio:.2f}x, {result.file_nbytes:,} B, SQNR "
            f"{result.sqnr_db:.1f} dB{drop} at {result.knob} {result.value:.4g}{miss}")
        self.result_label.setToolTip(result.describe())

    def _on_controller_failed(self, message: str) -> None:
        self.result_label.setText(message)

    def _on_session_model_changed(self) -> None:
        self.solve_button.setEnabled(self.session.model is not None
                                     and not self.controller.running)
        self.result_label.setText("")
