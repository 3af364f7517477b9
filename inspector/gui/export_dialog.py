"""Export dialog: the compressed file, the weights it decodes to, or the settings.

The decoded weights go to bare tensors (.pt, .safetensors, .npz) or, for formats that can be
written back into (ONNX, Keras, TorchScript), into a copy of the model that runs as it did.

The export runs in the dialog's own ``SerialWorker`` with its own codec (``tasks.export``),
so the window's estimating thread is never shared. The size estimated before exporting is
shown next to the size written, and the written file is read back and checked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from inspector.errors import InspectorError
from inspector.io import can_write_back, write_back_runs_code
from inspector.model.session import Session
from inspector.tasks.codec import Progress
from inspector.tasks.export import (
    COMPRESSED,
    COMPRESSED_SUFFIX,
    DECOMPRESSED,
    REWRITTEN,
    SETTINGS,
    SETTINGS_SUFFIX,
    ExportResult,
    check_target,
    export,
    export_kind,
    weight_extensions,
)

from .code_consent import CodeConsent
from .util import signals_blocked
from .workers import SerialWorker, Token, drive

IDLE, RUNNING, FINISHED, FAILED, CANCELLED = "idle", "running", "finished", "failed", "cancelled"
KIND_LABELS = {
    COMPRESSED: "Compressed file (.dcz)",
    DECOMPRESSED: "Decompressed weights (.pt, .safetensors, .npz)",
    REWRITTEN: "Copy of the model with the decoded weights ({suffix})",
    SETTINGS: "Settings (.json)",
}
FILTERS = {  # file-dialog filter: extension it adds to a bare name
    "Compressed (*.dcz)": ".dcz",
    "PyTorch (*.pt)": ".pt",
    "safetensors (*.safetensors)": ".safetensors",
    "NumPy (*.npz)": ".npz",
    "Settings (*.json)": ".json",
}
FORMAT_SUFFIX = {"pytorch": ".pt", "safetensors": ".safetensors", "numpy": ".npz"}
ERROR_STYLE = "color: #d9534f;"  # a red that reads on light and dark backgrounds
MAX_LISTED = 8


class ExportDialog(QDialog):
    """Choose a file, export to it in the background, show what was written and checked.

    ``state`` is one of ``idle``, ``running``, ``finished``, ``failed``, ``cancelled``;
    ``result`` holds the last ``ExportResult``. ``confirm_overwrite(path) -> bool`` is asked
    before replacing an existing file (replace it in tests).
    """

    def __init__(
        self, session: Session, parent: QWidget | None = None, consent: CodeConsent | None = None
    ) -> None:
        super().__init__(parent)
        self.consent = consent or CodeConsent()  # a TorchScript copy runs the model's code
        if session.model is None:
            raise ValueError("ExportDialog needs a session with an open model")
        self.session = session
        self.model = session.model
        # Absolute, so a model opened by a relative name proposes names in its own folder.
        self.source = source = Path(self.model.path).absolute()
        # The source model when a copy of it can be written; fixed for the dialog's life.
        self.rewritable: Path | None = source if can_write_back(source) else None
        self.filters = dict(FILTERS)
        if self.rewritable is not None:
            suffix = source.suffix.lower()
            self.filters = {f"Same format as the model (*{suffix})": suffix, **FILTERS}
        self.state = IDLE
        self.result: ExportResult | None = None
        self.confirm_overwrite: Callable[[Path], bool] = self._ask_overwrite
        self.worker = SerialWorker("export", self)
        self._generation = 0
        self._shown_estimate: int | None = None
        self._completed: dict[int, list[ExportResult]] = {}
        self.setWindowTitle("Export")
        self._build()
        self._connect()
        self.path_edit.setText(str(self.source.with_suffix(COMPRESSED_SUFFIX)))
        self._set_state(IDLE)

    # ----------------------------------------------------------------- building
    def _build(self) -> None:
        self.path_edit = QLineEdit()
        self.path_edit.setMinimumWidth(420)
        self.browse_button = QPushButton("Browse…")
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.browse_button)
        self.kind_combo = QComboBox()
        for kind, label in KIND_LABELS.items():
            if kind == REWRITTEN:
                if self.rewritable is None:
                    continue
                label = label.format(suffix=self.rewritable.suffix.lower())
            self.kind_combo.addItem(label, kind)
        self.estimate_label = QLabel()
        form = QFormLayout()
        form.addRow("Save to:", row)
        form.addRow("Export:", self.kind_combo)
        form.addRow("Estimated size:", self.estimate_label)
        self.progress = QProgressBar()
        self.step_label = QLabel()
        self.result_label = QLabel()
        self.verify_label = QLabel()
        for label in (self.step_label, self.result_label, self.verify_label):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox()
        role = QDialogButtonBox.ButtonRole
        self.export_button = self.buttons.addButton("Export", role.AcceptRole)
        self.cancel_button = self.buttons.addButton("Close", role.RejectRole)
        # Enter exports: in a dialog every push button is an "auto default" that takes Enter
        # once it has had focus, and Browse, first in the tab order, took it.
        for button in (self.browse_button, self.cancel_button):
            button.setAutoDefault(False)
        self.export_button.setAutoDefault(True)
        self.export_button.setDefault(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for w in (self.progress, self.step_label, self.result_label, self.verify_label):
            layout.addWidget(w)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

    def _connect(self) -> None:
        self.path_edit.textChanged.connect(self._on_path_edit_text_changed)
        self.kind_combo.currentIndexChanged.connect(self._on_kind_combo_changed)
        self.browse_button.clicked.connect(self.browse)
        # The button box would accept()/reject() the dialog; the buttons are handled here.
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.worker.progress.connect(self._on_worker_progress)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self.worker.cancelled.connect(self._on_worker_cancelled)
        self.session.estimate_changed.connect(self._update_estimate)

    # ------------------------------------------------------------------ public
    def kind(self) -> str:
        """The export chosen in the combo box (``tasks.export.KINDS``)."""
        return self.kind_combo.currentData()

    def output_path(self) -> Path:
        """The target file; a relative name is taken relative to the model's folder."""
        path = Path(self.path_edit.text().strip()).expanduser()
        return path if path.is_absolute() else self.source.parent / path

    def browse(self) -> None:
        """Choose the target with a file dialog; its filter sets the kind of export."""
        current = self._kind_of(self.output_path()) or self.kind()
        selected = next(f for f, e in self.filters.items() if self._kind_of(f"x{e}") == current)
        path, chosen = QFileDialog.getSaveFileName(
            self,
            "Export",
            self.path_edit.text(),
            ";;".join(self.filters),
            selected,
            QFileDialog.Option.DontConfirmOverwrite,  # start() asks, once
        )
        if path:
            if not Path(path).suffix:
                path += self.filters.get(chosen, COMPRESSED_SUFFIX)
            self.path_edit.setText(path)

    def start(self) -> int:
        """Export to the chosen file in the background; return the job's generation (0: none)."""
        if self.state == RUNNING:
            return 0
        if not self.path_edit.text().strip():
            self._show_error("Choose a file to export to.")
            return 0
        try:
            path = check_target(self.output_path(), self.model.path)
        except InspectorError as exc:
            self._show_error(str(exc))
            return 0
        if path.exists() and not self.confirm_overwrite(path):
            return 0
        allow_code: bool | None = False
        if self.kind() == REWRITTEN and write_back_runs_code(self.model.path):
            allow_code = self.consent.allow_code(self.model.path, "writing a copy of it")
            if allow_code is None:
                self._show_error(f"{self.source.name} contains code you chose not to run: "
                                 "writing a copy of it needs to run it.")
                return 0
        gen = export(self.kind(), self.model, self.session.settings, path,
                     allow_code=bool(allow_code))
        estimate = self.session.estimate
        self._shown_estimate = estimate.file_nbytes if estimate is not None else None
        completed: list[ExportResult] = []

        def job(token: Token) -> ExportResult:
            result = drive(gen, token)
            completed.append(result)  # seen if a cancel arrives after the file was committed
            return result

        self._generation = self.worker.submit(job)
        self._completed = {self._generation: completed}
        self._set_state(RUNNING)
        return self._generation

    def cancel(self) -> None:
        """Cancel the running export (its temporary file is removed, nothing is written)."""
        if self.state == RUNNING:
            self.worker.cancel()
            self.step_label.setText("Cancelling…")

    # ------------------------------------------------------------ event slots
    def _on_path_edit_text_changed(self, text: str) -> None:
        kind = self._kind_of(text.strip()) if text.strip() else None
        if kind is not None and kind != self.kind():
            with signals_blocked(self.kind_combo):
                self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind))
        self._forget_result()
        self._update_estimate()

    def _on_kind_combo_changed(self, _index: int) -> None:
        with signals_blocked(self.path_edit):
            self.path_edit.setText(str(self._path_for(self.kind())))
        self._forget_result()
        self._update_estimate()

    def _forget_result(self) -> None:
        """A new target: the last export's result or error no longer describes it."""
        if self.state in (FINISHED, FAILED, CANCELLED):
            self._set_state(IDLE)

    def _on_cancel_button_clicked(self) -> None:
        if self.state == RUNNING:
            self.cancel()
        else:
            self.reject()

    def _on_worker_progress(self, generation: int, step: Progress) -> None:
        if generation == self._generation and self.state == RUNNING:
            self.progress.setRange(0, max(step.total, 1))
            self.progress.setValue(step.done)
            if self.step_label.text() != "Cancelling…":
                self.step_label.setText(step.label)

    def _on_worker_finished(self, generation: int, result: ExportResult) -> None:
        if generation == self._generation:
            self._show_result(result)

    def _on_worker_failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self._show_error(message)

    def _on_worker_cancelled(self, generation: int) -> None:
        if generation != self._generation:
            return
        completed = self._completed.pop(generation, [])
        if completed:  # the cancel came after the last step: the file is complete and checked
            self._show_result(completed[0], note=" It finished before it could be cancelled.")
            return
        self._set_state(CANCELLED)
        self.step_label.setText("Cancelled: nothing was written.")

    # ---------------------------------------------------------------- showing
    def _set_state(self, state: str) -> None:
        self.state = state
        running = state == RUNNING
        for w in (self.path_edit, self.browse_button, self.kind_combo, self.export_button):
            w.setEnabled(not running)
        self.export_button.setDefault(not running)  # disabling it gave the default away
        self.cancel_button.setText("Cancel" if running else "Close")
        self.progress.setVisible(running or state == FINISHED)
        if running:
            self.progress.setRange(0, 0)  # busy until the first step arrives
        for label in (self.step_label, self.result_label, self.verify_label):
            label.clear()
            label.setStyleSheet("")

    def _show_result(self, result: ExportResult, note: str = "") -> None:
        self.result = result
        self._set_state(FINISHED)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.step_label.setText(f"Exported to {result.path}.{note}")
        self.result_label.setText(self._size_text(result))
        if result.verified:
            self.verify_label.setText(self._verified_text())
        else:
            lines = list(result.mismatches[:MAX_LISTED])
            if len(result.mismatches) > MAX_LISTED:
                lines.append(f"… and {len(result.mismatches) - MAX_LISTED} more")
            count = len(result.mismatches)
            head = f"Not verified: {count} layers differ" if count > 1 else "Not verified:"
            self.verify_label.setText("\n".join([head, *(f"  {line}" for line in lines)]))
            self.verify_label.setStyleSheet(ERROR_STYLE)

    def _size_text(self, result: ExportResult) -> str:
        text = f"Wrote {result.nbytes:,} bytes"
        if result.estimated_nbytes is None:
            return text + "."
        estimated = self._shown_estimate
        if estimated is None:
            estimated = result.estimated_nbytes
        diff = result.nbytes - estimated
        if diff == 0:
            return f"{text} (estimated {estimated:,} bytes, identical)."
        more = "more" if diff > 0 else "less"
        return f"{text} (estimated {estimated:,} bytes; {abs(diff):,} bytes {more})."

    def _kind_of(self, path: str | Path) -> str | None:
        return export_kind(path, self.rewritable)

    def _verified_text(self) -> str:
        kind = self._kind_of(self.result.path) if self.result is not None else None
        if kind == SETTINGS:
            return "Verified: the file reads back as the current settings."
        if kind == REWRITTEN:
            return "Verified: the copy reads back with every layer's decoded weights."
        return "Verified: every layer decodes to the weights shown."

    def _show_error(self, message: str) -> None:
        self._set_state(FAILED)
        self.step_label.setText(" ".join(message.split()))
        self.step_label.setStyleSheet(ERROR_STYLE)

    def _update_estimate(self) -> None:
        kind = self.kind()
        estimate = self.session.estimate
        if kind == COMPRESSED:
            text = "estimating…" if estimate is None else f"{estimate.file_nbytes:,} bytes"
        elif kind == DECOMPRESSED:
            text = f"about {self.model.nbytes:,} bytes of weights, plus the format's overhead"
        elif kind == REWRITTEN:
            text = f"about the size of {self.source.name}: the weights are not packed"
        else:
            text = "a small text file"
        self.estimate_label.setText(text)

    def _path_for(self, kind: str) -> Path:
        """The current file name with the extension of ``kind`` (never the model itself)."""
        path = self.output_path() if self.path_edit.text().strip() else self.source
        if not path.name:
            path = self.source
        if kind == COMPRESSED:
            new = path.with_suffix(COMPRESSED_SUFFIX)
        elif kind == SETTINGS:
            new = path.with_suffix(SETTINGS_SUFFIX)
        elif kind == REWRITTEN:
            new = path.with_suffix(self.source.suffix)
        else:
            suffix = path.suffix.lower()
            keep = self._kind_of(path) == DECOMPRESSED and suffix in weight_extensions()
            new = path if keep else path.with_suffix(FORMAT_SUFFIX.get(self.model.format, ".npz"))
        if new.resolve() == self.source.resolve():
            new = new.with_name(f"{new.stem}-decompressed{new.suffix}")
        return new

    def _ask_overwrite(self, path: Path) -> bool:
        answer = QMessageBox.question(
            self, "Replace file?", f"{path.name} already exists in {path.parent}. Replace it?"
        )
        return answer == QMessageBox.StandardButton.Yes

    # --------------------------------------------------------------- closing
    def done(self, result: int) -> None:
        self._shutdown()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:  # Qt override
        self._shutdown()
        super().closeEvent(event)

    def _shutdown(self) -> None:
        """Cancel a running export (no file is left) and stop the worker thread."""
        self.session.estimate_changed.disconnect(self._update_estimate)
        self.worker.shutdown()
