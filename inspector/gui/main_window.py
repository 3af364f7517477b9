"""The main window: composes the widgets, menus, toolbar and status bar; holds no logic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from inspector import __version__
from inspector.errors import InspectorError
from inspector.model.session import Session
from inspector.model.settings import load_settings, save_settings

from .controller import Controller
from .controls import ControlsWidget
from .histogram import HistogramWidget
from .layer_table import LayerTableWidget
from .method_options import MethodOptionsWidget
from .methods_controller import MethodsController
from .methods_view import MethodsViewWidget
from .model_bytes import ModelBytesWidget
from .resources import icon
from .sensitivity_view import SensitivityWidget
from .summary import SummaryWidget
from .target_widget import TargetWidget
from .tune_menu import DATA_FILTER, TuneMenu

MAX_RECENT = 10
MODEL_FILTER = (
    "Models (*.pt *.pth *.bin *.ckpt *.safetensors *.npz *.onnx *.keras *.h5 *.hdf5 "
    "*.caffemodel *.dcz);;All files (*)"
)


class MainWindow(QMainWindow):
    """Inspector's window over one Session.

    Parameters
    ----------
    session
        The session to show (a new one by default).
    settings
        Where the layout and recent files are remembered (the user's settings by default).
    on_error
        ``on_error(title, message)`` reports a failure; by default a warning box.
    """

    def __init__(
        self,
        session: Session | None = None,
        settings: QSettings | None = None,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__()
        self.session = session or Session()
        self.qsettings = settings or QSettings("inspector", "inspector")
        self.on_error = on_error or self._warn
        self.controller = Controller(self.session, self)
        self.setWindowTitle("Inspector")
        self.setWindowIcon(icon("inspector.svg"))
        self.setAcceptDrops(True)
        self._build_widgets()
        self._build_actions()
        self._build_status_bar()
        self._connect()
        self._restore_layout()
        self._update_title()

    # ----------------------------------------------------------------- building
    def _build_widgets(self) -> None:
        s = self.session
        self.summary = SummaryWidget(s)
        self.target_bar = TargetWidget(s, self.controller.target)
        self.table = LayerTableWidget(s)
        self.histogram = HistogramWidget(s)
        self.model_bytes = ModelBytesWidget(s)
        self.controls = ControlsWidget(s)
        self.method_options = MethodOptionsWidget(s)
        self.sensitivity = SensitivityWidget(s)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.histogram, "Layer weights")
        self.tabs.addTab(self.model_bytes, "Model bytes")
        self.tabs.addTab(self.sensitivity, "Sensitivity")
        self.methods = MethodsViewWidget()
        self.tabs.addTab(self.methods, "Methods")
        self.methods_control = MethodsController(s, self.methods, self.controller.accuracy, self)
        # top: the selected layer's plot beside its controls; bottom: every layer, full width
        self.right = QSplitter(Qt.Orientation.Horizontal)
        self.right.addWidget(self.tabs)
        panel = QWidget()  # the controls keep their natural height; the panel fills the rest
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.controls)
        column.addWidget(self.method_options)
        column.addStretch(1)
        self.right.addWidget(panel)
        self.right.setStretchFactor(0, 3)
        self.right.setStretchFactor(1, 1)
        self.right.setSizes([900, 480])
        self.split = QSplitter(Qt.Orientation.Vertical)
        self.split.addWidget(self.right)
        self.split.addWidget(self.table)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 2)
        self._sized = False
        work = QWidget()
        layout = QVBoxLayout(work)
        layout.addWidget(self.summary)
        layout.addWidget(self.target_bar)
        layout.addWidget(self.split, 1)
        self.empty = QLabel(
            "Open a model to start: File ▸ Open (Ctrl+O), drop a file here, or run "
            "<code>inspector MODEL</code>.<br>PyTorch (.pt, .pth, TorchScript), safetensors, "
            "NumPy .npz, ONNX, Keras (.keras, .h5), Caffe (.caffemodel) and inspector's own "
            ".dcz files are supported."
        )
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(work)
        self.setCentralWidget(self.stack)
        self.resize(1400, 860)

    def _action(
        self, text: str, slot: object, shortcut: object = None, icon_name: str = ""
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        if icon_name:
            action.setIcon(icon(icon_name))
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        k = QKeySequence.StandardKey
        self.open_action = self._action("&Open…", self.choose_model, k.Open, "open.svg")
        self.data_action = self._action("Open Evaluation &Data…", self.choose_data, "Ctrl+D")
        self.load_settings_action = self._action("&Load Settings…", self.choose_settings)
        self.save_settings_action = self._action(
            "&Save Settings", self.save_settings, k.Save, "save.svg"
        )
        self.save_as_action = self._action("Save Settings &As…", self.save_settings_as, k.SaveAs)
        self.export_action = self._action("&Export…", self.export, "Ctrl+E", "export.svg")
        self.quit_action = self._action("&Quit", self.close, k.Quit)
        self.undo_action = self._action("&Undo", self.session.undo, k.Undo, "undo.svg")
        self.redo_action = self._action("&Redo", self.session.redo, k.Redo, "redo.svg")
        self.paper_action = self._action(
            "&Paper Defaults (conv 8, fc 5 bits)", self.session.apply_paper_defaults
        )
        self.about_action = self._action("&About Inspector", self.about)
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent = file_menu.addMenu("Open &Recent")
        file_menu.addAction(self.data_action)
        file_menu.addSeparator()
        for a in (self.load_settings_action, self.save_settings_action, self.save_as_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit = self.menuBar().addMenu("&Edit")
        for a in (self.undo_action, self.redo_action):
            edit.addAction(a)
        edit.addSeparator()
        edit.addAction(self.paper_action)
        self.tune = TuneMenu(self)
        self.menuBar().addMenu("&Help").addAction(self.about_action)
        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")
        for a in (self.open_action, self.save_settings_action, self.export_action):
            bar.addAction(a)
        bar.addSeparator()
        bar.addAction(self.undo_action)
        bar.addAction(self.redo_action)
        self._fill_recent()

    def _build_status_bar(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().showMessage("Ready")

    def _connect(self) -> None:
        c, s = self.controller, self.session
        c.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.methods_control.status.connect(lambda t: self.statusBar().showMessage(t, 8000))
        c.progress.connect(self._on_controller_progress)
        c.target.progress.connect(self._on_controller_progress)
        c.target.busy.connect(lambda busy: busy or self._on_controller_progress(1, 1, ""))
        c.load_failed.connect(self._on_controller_load_failed)
        c.loaded.connect(self._on_controller_loaded)
        c.estimating.connect(self.summary.set_busy)
        c.accuracy.busy.connect(self.summary.set_accuracy_busy)
        c.tuning.partial_sweep.connect(self.sensitivity.show_partial)
        c.tuning.busy.connect(lambda busy: busy or self.sensitivity.end_partial())
        s.model_changed.connect(self._on_session_model_changed)
        s.undo_changed.connect(self._on_session_undo_changed)
        s.settings_changed.connect(self._update_title)
        self._on_session_model_changed()
        self._on_session_undo_changed()

    # ----------------------------------------------------------------- commands
    def open_model(
        self,
        path: str | Path,
        settings_path: str | Path | None = None,
        data_path: str | Path | None = None,
    ) -> int:
        """Open ``path`` in the background; keep measuring accuracy on ``data_path`` (by
        default the evaluation file already chosen, if any)."""
        data = data_path if data_path is not None else self.controller.accuracy.data_path
        return self.controller.open_path(path, settings_path, data)

    def choose_data(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open evaluation data", self._last_dir(), DATA_FILTER
        )
        if path:
            self.open_data(path)

    def open_data(self, path: str | Path) -> None:
        """Measure accuracy on evaluation file ``path`` from now on."""
        if self.session.model is not None:
            self.controller.accuracy.open(self.session.model, path)
        else:
            self.controller.accuracy.data_path = str(path)

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open model", self._last_dir(), MODEL_FILTER)
        if path:
            self.open_model(path)

    def choose_settings(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load settings", self._last_dir(), "Settings (*.json)"
        )
        if path:
            self.load_settings(path)

    def load_settings(self, path: str | Path) -> bool:
        try:
            settings = load_settings(path)
        except InspectorError as exc:
            self.on_error("Cannot load settings", str(exc))
            return False
        self.session.set_settings(settings, "load settings")
        self.session.settings_path = str(path)
        self.statusBar().showMessage(f"Loaded settings from {path}", 8000)
        return True

    def save_settings(self) -> None:
        if self.session.settings_path:
            self._write_settings(self.session.settings_path)
        else:
            self.save_settings_as()

    def save_settings_as(self) -> None:
        default = str(Path(self._last_dir()) / "settings.json")
        path, _ = QFileDialog.getSaveFileName(self, "Save settings", default, "Settings (*.json)")
        if path:
            self._write_settings(path)

    def _write_settings(self, path: str) -> None:
        try:
            save_settings(self.session.settings, path)
        except OSError as exc:
            self.on_error("Cannot save settings", f"{path}: {exc.strerror or exc}")
            return
        self.session.settings_path = path
        self.statusBar().showMessage(f"Saved settings to {path}", 8000)

    def export(self) -> None:
        if self.session.model is None:
            return
        from .export_dialog import ExportDialog

        dialog = ExportDialog(self.session, self, consent=self.controller.consent)
        dialog.exec()
        dialog.deleteLater()

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About Inspector",
            f"<b>Inspector {__version__}</b><p>Deep Compression of trained networks: prune, "
            "quantize with optimal 1-D k-means, Huffman-code, with the exact file size shown "
            "live.</p><p>A smaller file is not a faster model: the paper's speed-ups were "
            "measured on pruned fully connected layers at batch size 1.</p>",
        )

    # ------------------------------------------------------------- event slots
    def _on_controller_progress(self, done: int, total: int, label: str) -> None:
        busy = done < total
        self.progress.setVisible(busy)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        if busy and label:
            self.statusBar().showMessage(label)

    def _on_controller_load_failed(self, message: str) -> None:
        self.on_error("Cannot open model", message)

    def _warn(self, title: str, message: str) -> None:
        QMessageBox.warning(self, title, message)

    def _on_controller_loaded(self, path: str) -> None:
        recent = [p for p in self._recent_files() if p != path]
        self.qsettings.setValue("recent", [path, *recent][:MAX_RECENT])
        self._fill_recent()

    def _on_session_model_changed(self) -> None:
        has_model = self.session.model is not None
        self.stack.setCurrentIndex(1 if has_model else 0)
        if has_model:
            QTimer.singleShot(0, self._initial_sizes)  # once the page is laid out
        for action in (
            self.save_settings_action,
            self.save_as_action,
            self.export_action,
            self.paper_action,
            self.data_action,
        ):
            action.setEnabled(has_model)
        self.tune.set_enabled(has_model)
        self._update_title()

    def _on_session_undo_changed(self) -> None:
        s = self.session
        self.undo_action.setEnabled(s.can_undo)
        self.redo_action.setEnabled(s.can_redo)
        self.undo_action.setText(f"&Undo {s.undo_label()}".rstrip())
        self.redo_action.setText(f"&Redo {s.redo_label()}".rstrip())

    def _update_title(self) -> None:
        model = self.session.model
        self.setWindowTitle(f"{Path(model.path).name} — Inspector" if model else "Inspector")

    # ------------------------------------------------------ recent files, layout
    def _recent_files(self) -> list[str]:
        value = self.qsettings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _fill_recent(self) -> None:
        self.recent.clear()
        for path in self._recent_files():
            action = self.recent.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_model(p))
        self.recent.setEnabled(bool(self._recent_files()))

    def _last_dir(self) -> str:
        recent = self._recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def _restore_layout(self) -> None:
        geometry = self.qsettings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.qsettings.value("state")
        if state is not None:
            self.restoreState(state)
        for name, splitter in (("split", self.split), ("right", self.right)):
            value = self.qsettings.value(name)
            if value is not None:
                splitter.restoreState(value)

    def _initial_sizes(self) -> None:
        """First model of a first run: plot and controls over ~60% of the height."""
        if not self._sized and self.qsettings.value("split") is None:
            self._sized = True
            # the split may not be laid out yet: size it from the window (less bars, summary)
            height = max(self.split.height(), self.height() - 220, 400)
            self.split.setSizes([int(height * 0.6), int(height * 0.4)])

    def closeEvent(self, event: QCloseEvent) -> None:
        self.qsettings.setValue("geometry", self.saveGeometry())
        self.qsettings.setValue("state", self.saveState())
        self.qsettings.setValue("split", self.split.saveState())
        self.qsettings.setValue("right", self.right.saveState())
        self.controller.shutdown()
        self.methods_control.shutdown()
        super().closeEvent(event)

    # ------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls: list[QUrl] = event.mimeData().urls()
        local = [u.toLocalFile() for u in urls if u.isLocalFile()]
        if local:
            self.open_model(local[0])
            event.acceptProposedAction()
