"""Wires the session to background work: loading models and keeping the estimate current.

Every settings change submits an estimate to one serial worker (the model's codecs are not
thread-safe, and only the newest request matters); results of older generations are dropped.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QObject, QTimer, Signal

from inspector.io.model_file import LoadedModel
from inspector.model.estimate import ModelEstimate
from inspector.model.session import Session
from inspector.model.settings import ModelSettings, load_settings
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.load import Opened, open_model

from .accuracy import AccuracyController
from .code_consent import CodeConsent
from .target import TargetController
from .tuning import TuningController
from .workers import COLLECTOR, SerialWorker, Token, drive

MIN_APPLY_MS = 40  # least time between two estimates shown (a drag makes many)
#: The estimate thread's niceness above the GUI thread's (see workers.lower_thread_priority).
#: Dragging the 10M embedding's threshold at load 10-12 on 2 cores, 6 runs each: worst stall
#: 101-196 ms at 0, 69-99 ms at 3, with the same estimate lag (median 117-158 / 121-167 ms);
#: 5 starved the estimate (fewer landed, lag up by half).
ESTIMATE_NICE = 3


def own_sweep(settings: ModelSettings | None, model: LoadedModel) -> ModelSettings | None:
    """``settings`` without its sensitivity sweep if the sweep is of another model's layers
    (names and sizes): a sweep describes the weights it was measured on."""
    sweep = settings.sensitivity if settings is not None else None
    if sweep is None:
        return settings
    sizes = {i.name: i.size for i in model.infos}
    if all(sizes.get(la.name) == la.size for la in sweep.layers):
        return settings
    return settings.with_sensitivity(None)


class Controller(QObject):
    """Runs the session's background work and reports it for the status bar."""

    status = Signal(str)  # a message for the status bar
    progress = Signal(int, int, str)  # done, total, label of the running load
    load_failed = Signal(str)  # one line naming the file and the problem
    loaded = Signal(str)  # path of the model just opened
    estimating = Signal(bool)

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.codec: ModelCodec | None = None
        self.loader = SerialWorker("load", self)
        self.estimator = SerialWorker("estimate", self, nice=ESTIMATE_NICE)
        self.consent = CodeConsent()  # asked once per file, shared by everything that runs it
        self.accuracy = AccuracyController(session, self, consent=self.consent)
        self.accuracy.status.connect(self.status)
        self.tuning = TuningController(session, self.accuracy, self)
        self.tuning.status.connect(self.status)
        self.target = TargetController(session, self.accuracy, self)
        self.target.status.connect(self.status)
        self._pending: dict[int, tuple[ModelSettings | None, str | None]] = {}
        self._shown = 0  # generation of the estimate on screen
        self._deferred: tuple[int, ModelEstimate] | None = None
        self._since_apply = QElapsedTimer()
        self._since_apply.start()
        self._apply_timer = QTimer(self)
        self._apply_timer.setSingleShot(True)
        self._apply_timer.timeout.connect(self._on_apply_timer_timeout)
        self.loader.progress.connect(self._on_loader_progress)
        self.loader.finished.connect(self._on_loader_finished)
        self.loader.failed.connect(self._on_loader_failed)
        self.estimator.finished.connect(self._on_estimator_finished)
        self.estimator.failed.connect(self._on_estimator_failed)
        self.estimator.cancelled.connect(self._on_estimator_cancelled)
        session.settings_changed.connect(self.request_estimate)

    # ------------------------------------------------------------------ loading
    def open_path(
        self,
        path: str | Path,
        settings_path: str | Path | None = None,
        data_path: str | Path | None = None,
        settings: ModelSettings | None = None,
    ) -> int:
        """Load ``path`` in the background with ``settings`` or those in ``settings_path``;
        with ``data_path``, measure accuracy on that evaluation file."""
        path = str(path)
        if settings_path is not None:
            try:
                settings = load_settings(settings_path)
            except Exception as exc:  # InspectorError: a bad settings file is one message
                self.load_failed.emit(str(exc))
                return 0
        self.status.emit(f"Opening {path}…")

        def job(token: Token) -> Opened:
            with COLLECTOR.paused():
                return drive(open_model(path), token)

        generation = self.loader.submit(job)
        self._pending[generation] = (settings, None if data_path is None else str(data_path))
        return generation

    def _on_loader_progress(self, generation: int, step: Progress) -> None:
        if generation == self.loader.generation:
            self.progress.emit(step.done, step.total, step.label)

    def _on_loader_finished(self, generation: int, opened: Opened) -> None:
        settings, data_path = self._pending.pop(generation, (None, None))
        if generation != self.loader.generation:
            return
        self.estimator.cancel()
        self._shown = self.estimator.generation  # nothing from the previous model lands
        self._deferred = None
        self.codec = opened.codec
        self.accuracy.open(opened.model, data_path)
        self.session.open(opened.model, opened.stats, own_sweep(settings, opened.model))
        self.session.settings_path = None
        self.progress.emit(1, 1, "")
        self.loaded.emit(opened.model.path)
        self.status.emit(
            f"Opened {opened.model.path}: {len(opened.model.infos)} tensors, "
            f"{opened.model.param_count:,} parameters"
        )

    def _on_loader_failed(self, generation: int, message: str) -> None:
        self._pending.pop(generation, None)
        if generation == self.loader.generation:
            self.progress.emit(1, 1, "")
            self.load_failed.emit(message)
            self.status.emit(message)

    # --------------------------------------------------------------- estimating
    def request_estimate(self) -> int:
        """Estimate the current settings in the background; newer requests replace it."""
        codec = self.codec
        if codec is None or self.session.model is None:
            return 0
        settings = self.session.settings

        def job(token: Token) -> ModelEstimate:
            return codec.estimate(settings, progress=lambda _step: token.check())

        self.estimating.emit(True)
        return self.estimator.submit(job, cancel_running=False)

    def _on_estimator_finished(self, generation: int, estimate: ModelEstimate) -> None:
        # Results arrive in submission order; one older than what is shown is dropped, one
        # newer is shown even if a still newer request is on its way (the size follows a
        # drag), but at most one every MIN_APPLY_MS: redrawing every widget for each one
        # starves the drag itself.
        if generation <= self._shown or self.session.model is None:
            return
        wait = MIN_APPLY_MS - self._since_apply.elapsed()
        if wait > 0:  # the timer shows the latest one soon; nothing is lost
            self._deferred = (generation, estimate)
            self._apply_timer.start(int(wait))
            return
        self._apply(generation, estimate)

    def _apply(self, generation: int, estimate: ModelEstimate) -> None:
        self._deferred = None
        self._apply_timer.stop()
        self._shown = generation
        self._since_apply.restart()
        self.session.set_estimate(estimate)
        if generation == self.estimator.generation:
            self.estimating.emit(False)

    def _on_apply_timer_timeout(self) -> None:
        if self._deferred is not None and self._deferred[0] > self._shown:
            self._apply(*self._deferred)

    def _on_estimator_failed(self, generation: int, message: str) -> None:
        if generation == self.estimator.generation:
            self.estimating.emit(False)
            self.status.emit(f"Cannot estimate: {message}")

    def _on_estimator_cancelled(self, generation: int) -> None:
        if generation == self.estimator.generation:
            self.estimating.emit(False)

    def shutdown(self) -> None:
        """Stop every worker (on window close)."""
        self.loader.shutdown()
        self.estimator.shutdown()
        self.accuracy.shutdown()
        self.tuning.shutdown()
        self.target.shutdown()
