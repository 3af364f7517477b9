"""The model-wide target: solve one rate knob for a size, ratio or fidelity in the background.

The solve (:func:`inspector.tasks.target.solve`) runs in a worker of its own with a codec of
its own (codecs are not thread-safe, and the estimator keeps using the app's). A result is
applied as one undoable settings change, unless it is stale: a newer request, another model,
or settings the user changed while it ran (the knob was solved on top of the old ones).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.target import Target, TargetResult, solve, with_best_method

from .workers import SerialWorker, Token, drive


class TargetController(QObject):
    """Runs target solves for the session's model and applies what they find."""

    progress = Signal(int, int, str)  # done, total, label
    busy = Signal(bool)
    status = Signal(str)
    failed = Signal(str)
    solved = Signal(object)  # the TargetResult applied

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._codec: ModelCodec | None = None  # touched by the worker's thread only
        self._requests: dict[int, tuple[object, object]] = {}  # generation: model, settings
        self._worker = SerialWorker("target", self)
        self._worker.progress.connect(self._on_worker_progress)
        self._worker.finished.connect(self._on_worker_finished)
        self._worker.failed.connect(self._on_worker_failed)
        self._worker.cancelled.connect(self._on_worker_cancelled)
        session.model_changed.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self._worker.busy

    def solve(self, target: Target) -> int:
        """Solve ``target`` on the current settings (the best coder where they name no
        method); returns the request's generation (0: no model)."""
        model = self.session.model
        if model is None:
            return 0
        settings = self.session.settings
        base = with_best_method(settings)

        def job(token: Token) -> TargetResult:
            if self._codec is None or self._codec.model is not model:
                self._codec = ModelCodec(model)
            return drive(solve(self._codec, base, target), token)

        self.busy.emit(True)
        self.status.emit(f"Solving the model-wide target ({target.kind} {target.value:g})…")
        generation = self._worker.submit(job)
        self._requests = {generation: (model, settings)}
        return generation

    def cancel(self) -> None:
        if self._worker.busy:
            self._worker.cancel()
            self.busy.emit(False)
            self.status.emit("Target cancelled")

    def shutdown(self) -> None:
        self._worker.shutdown()

    def _on_worker_progress(self, generation: int, step: Progress) -> None:
        if generation == self._worker.generation:
            self.progress.emit(step.done, step.total, step.label)

    def _on_worker_finished(self, generation: int, result: TargetResult) -> None:
        model, settings = self._requests.pop(generation, (None, None))
        if generation != self._worker.generation:
            return
        self.busy.emit(False)
        s = self.session
        if s.model is not model or s.settings is not settings:
            self.status.emit("Target result dropped: the model or its settings changed "
                             "while it was solved")
            return
        s.set_settings(result.settings, f"target {result.knob} {result.value:.4g}")
        self.solved.emit(result)
        self.status.emit(f"Target: {result.describe()}")

    def _on_worker_failed(self, generation: int, message: str) -> None:
        if generation == self._worker.generation:
            self.busy.emit(False)
            self.failed.emit(message)
            self.status.emit(f"Target failed: {message}")

    def _on_worker_cancelled(self, generation: int) -> None:
        if generation == self._worker.generation:
            self.busy.emit(False)
