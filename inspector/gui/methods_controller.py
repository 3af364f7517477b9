"""Computes the Methods view's curves in the background and applies a clicked point.

The selected layer's curves (``tasks.methods_curve``) are computed in a worker of its own with
a codec of its own (a ``ModelCodec`` is not thread-safe; the estimator uses the app's), and,
when evaluation data is open, an evaluator of its own. Points are cached per layer, recipe
and measurement, so coming back to a layer or clicking a point costs nothing. A new selection
(or new settings of the shown layer) cancels the running sweep; a result of an older request
is dropped. The weight-space curves are drawn first; measured ones replace them as they come.
Nothing is computed while the tab is hidden.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from inspector.core.settings import LayerSettings
from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.methods_curve import Cache, CurvesRequest, MethodCurves, Recipe, method_curves

from .accuracy import AccuracyController
from .methods_view import MethodsViewWidget
from .util import connect_session
from .workers import COLLECTOR, SerialWorker, Token, drive

DEBOUNCE_MS = 100  # settings still this long before the curves follow them


class MethodsController(QObject):
    """Feeds ``view`` the selected layer's curves; a click on a point sets that recipe."""

    status = Signal(str)

    def __init__(
        self, session: Session, view: MethodsViewWidget, accuracy: AccuracyController,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.view, self._accuracy = session, view, accuracy
        self.worker = SerialWorker("methods", self)
        self._codec: ModelCodec | None = None
        self._cache: Cache = {}  # touched by the worker thread only
        self._evaluator: tuple[tuple[str, str], Any] | None = None  # worker thread only
        self._asked: tuple[str, LayerSettings, str] | None = None  # the request on its way
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.request)
        self.worker.progress.connect(self._on_worker_progress)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self.worker.cancelled.connect(self._on_worker_cancelled)
        view.point_clicked.connect(self._on_view_point_clicked)
        view.shown.connect(self._timer.start)
        connect_session(self, [
            (session.model_changed, self._on_session_model_changed),
            (session.selection_changed, self._on_session_selection_changed),
            (session.settings_changed, self._on_session_settings_changed),
        ])

    def layer(self) -> str | None:
        """The layer the view compares: the first selected compressible one."""
        s = self.session
        return next((n for n in s.selection if s.compressible(n)), None)

    # ----------------------------------------------------------------- requests
    def request(self) -> int:
        """Compute the shown layer's curves (if the view is visible and they are not shown)."""
        self._timer.stop()
        name, model = self.layer(), self.session.model
        if name is None or model is None:
            self._asked = None
            self.worker.cancel()
            self.view.show_progress(1, 1, "")
            self.view.show_curves(None)
            return 0
        settings = self.session.layer_settings(name)
        data = self._accuracy.data_path or ""
        asked = (name, settings, data)
        if not self.view.isVisible() or asked == self._asked:
            return 0
        self._asked = asked
        allow = self._accuracy.consent.allow_code(model.path, "measuring the methods") \
            if data else None
        measure = bool(data) and allow is not None
        if self._codec is None or self._codec.model is not model:
            self._codec, self._cache, self._evaluator = ModelCodec(model), {}, None
        codec, cache = self._codec, self._cache

        def job(token: Token) -> MethodCurves | None:
            stop = lambda: token.cancelled  # noqa: E731 - the sweep's stop test
            plain = drive(method_curves(codec, CurvesRequest(name, settings), cache,
                                        should_stop=stop), token)
            if not measure or plain is None:
                return plain
            token.report(plain)  # drawn while the measurements run
            evaluator = self._open(model.path, data, bool(allow))
            return drive(method_curves(codec, CurvesRequest(name, settings, True), cache,
                                       evaluator, stop), token)

        return self.worker.submit(job)

    def _open(self, path: str, data: str, allow_code: bool) -> Any:
        """This worker's evaluator of ``path`` on ``data`` (kept; worker thread only)."""
        from inspector.tasks.accuracy import open_evaluator

        key = (path, data)
        if self._evaluator is None or self._evaluator[0] != key:
            with COLLECTOR.paused():
                evaluator = open_evaluator(path, data, allow_code=allow_code)
                evaluator.baseline  # noqa: B018 - measured here, off the GUI thread
            self._evaluator = (key, evaluator)
        return self._evaluator[1]

    def apply(self, layer: str, recipe: Recipe) -> None:
        """Give ``layer`` the clicked recipe: one undoable step."""
        if recipe.knob == "current" or self.session.model is None:
            return
        if not self.session.compressible(layer):
            return
        self.session.set_method((layer,), recipe.method, f"{recipe.label} for {layer}",
                                recipe.options)
        self.status.emit(f"{layer}: {recipe.label}")

    def shutdown(self) -> None:
        self._timer.stop()
        self.worker.shutdown()

    # ----------------------------------------------------------------- handlers
    def _on_session_model_changed(self) -> None:
        self.worker.cancel()
        self._asked = None
        self.view.show_curves(None)
        self._timer.start()

    def _on_session_selection_changed(self) -> None:
        if self._asked is not None and self._asked[0] != self.layer():
            self.worker.cancel()  # the sweep of a layer no longer shown
            self.view.show_progress(1, 1, "")
        self._timer.start()

    def _on_session_settings_changed(self) -> None:
        self._timer.start()  # the shown layer's settings may have changed: its star moves

    def _on_view_point_clicked(self, layer: str, recipe: Recipe) -> None:
        self.apply(layer, recipe)

    def _on_worker_progress(self, generation: int, step: Progress | MethodCurves) -> None:
        if generation != self.worker.generation:
            return
        if isinstance(step, MethodCurves):
            self.view.show_curves(step, "")
        else:
            self.view.show_progress(step.done, step.total, step.label)

    def _on_worker_finished(self, generation: int, curves: MethodCurves | None) -> None:
        if generation != self.worker.generation or curves is None:
            return  # stale: another layer or settings asked since
        if curves.layer != self.layer():
            return
        self.view.show_progress(1, 1, "")
        self.view.show_curves(curves)

    def _on_worker_failed(self, generation: int, message: str) -> None:
        if generation == self.worker.generation:
            self._asked = None
            self.view.show_progress(1, 1, "")
            self.status.emit(f"Cannot compare the methods: {message}")

    def _on_worker_cancelled(self, generation: int) -> None:
        if generation == self.worker.generation:
            self._asked = None
            self.view.show_progress(1, 1, "")
