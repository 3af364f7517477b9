"""The model-wide target: solve one rate knob for a size, ratio or fidelity in the background.

The solve (:func:`inspector.tasks.target.solve`) runs in a worker of its own with a codec of
its own (codecs are not thread-safe, and the estimator keeps using the app's). A measured
floor (``"floor"``: at most so many points of drop) runs the model on the app's evaluation
data, or without data on synthetic inputs (agreement with the original), with an evaluator
of this worker's own; a runnable model's code runs only with the user's consent. A result is
applied as one undoable settings change, unless it is stale: a newer request, another model,
or settings the user changed while it ran (the knob was solved on top of the old ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.drive import run_to_end
from inspector.tasks.target import Target, TargetResult, solve, with_best_method

from .accuracy import GUI_SYNTHETIC, AccuracyController
from .workers import COLLECTOR, SerialWorker, Token, drive


class TargetController(QObject):
    """Runs target solves for the session's model and applies what they find."""

    progress = Signal(int, int, str)  # done, total, label
    busy = Signal(bool)
    status = Signal(str)
    failed = Signal(str)
    solved = Signal(object)  # the TargetResult applied

    def __init__(self, session: Session, accuracy: AccuracyController | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._accuracy = accuracy  # whose evaluation file and consent a floor uses
        self._codec: ModelCodec | None = None  # touched by the worker's thread only
        self._tools: tuple[tuple[str, str], Any, ModelCodec] | None = None  # a floor's
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
        data, allow_code = None, False
        if target.kind == "floor":
            if self._accuracy is None:
                self.failed.emit("a measured floor needs the app's evaluation data")
                return 0
            data = self._accuracy.data_path
            allowed = self._accuracy.consent.allow_code(model.path, "measuring a floor")
            if allowed is None:
                self.failed.emit(f"{Path(model.path).name} contains code you chose not to "
                                 "run: a measured floor needs to run it.")
                return 0
            allow_code = allowed

        def job(token: Token) -> TargetResult:
            if target.kind == "floor":
                codec, measure = self._measure(model, data, allow_code, token)
                return drive(solve(codec, base, target, measure=measure,
                                   check=token.check), token)
            if self._codec is None or self._codec.model is not model:
                self._codec = ModelCodec(model)
            return drive(solve(self._codec, base, target, check=token.check), token)

        self.busy.emit(True)
        self.status.emit(f"Solving the model-wide target ({target.kind} {target.value:g})…")
        generation = self._worker.submit(job)
        self._requests = {generation: (model, settings)}
        return generation

    def _measure(self, model: Any, data: str | None, allow_code: bool,
                 token: Token) -> tuple[ModelCodec, Any]:
        """This worker's codec of the runnable model and minus the drop of some settings."""
        from inspector.tasks.accuracy import open_evaluator

        key = (model.path, data or "")
        if self._tools is None or self._tools[0] != key or self._tools[2].model is not model:
            token.report(Progress(0, 1, "opening the evaluation data" if data
                                  else "making synthetic inputs"))
            with COLLECTOR.paused():
                evaluator = open_evaluator(model.path, data, allow_code=allow_code,
                                           synthetic=None if data else GUI_SYNTHETIC)
            self._tools = (key, evaluator, ModelCodec(evaluator.reference))
        _, evaluator, codec = self._tools

        def measure(settings: Any) -> float:
            token.check()
            return -run_to_end(evaluator.evaluate_settings(codec, settings)).drop_points

        return codec, measure

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
