"""Keeps a measured accuracy beside the size estimate when the model can run.

With an evaluation file, the model is evaluated on it (top-1 with labels, agreement with the
original without); with none, a runnable model is compared with itself on ``GUI_SYNTHETIC``
synthetic inputs made from its input shape (agreement with the original, labelled as such).
The model is evaluated in a worker of its own, with codecs of its own
(a ``ModelCodec`` is not thread-safe and the estimator uses the app's). The size follows a
slider while it moves; the accuracy is measured once the settings have been still for
``SETTLE_MS`` (a drag's release), and a newer request cancels the one running.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec

from .code_consent import CodeConsent
from .workers import COLLECTOR, SerialWorker, Token, drive

SETTLE_MS = 250  # settings unchanged this long = the user let go of the slider
#: Synthetic inputs measured without evaluation data: fewer than the CLI's 256, so that a
#: detector's measurement follows a drag within a few seconds.
GUI_SYNTHETIC = 64
NO_SHAPE = ("a TorchScript archive records no input shape: give it (Tune ▸ Input Shape…, or "
            "--input-shape) or open evaluation data (File ▸ Open Evaluation Data) to measure")


def _key(path: str | Path) -> str:
    return str(Path(path).resolve())


class AccuracyController(QObject):
    """Measures the session's settings on evaluation data and stores the result in it."""

    busy = Signal(bool)
    status = Signal(str)

    def __init__(
        self, session: Session, parent: QObject | None = None, consent: CodeConsent | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.consent = consent or CodeConsent()  # whether the model's code may run
        self.data_path: str | None = None
        self._evaluator: Any = None  # tasks.accuracy.Evaluator, imported lazily (torch)
        self._codec: ModelCodec | None = None
        self._worker = SerialWorker("accuracy", self)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self.request)
        self._worker.finished.connect(self._on_worker_finished)
        self._worker.failed.connect(self._on_worker_failed)
        self._worker.cancelled.connect(self._on_worker_cancelled)
        session.settings_changed.connect(self._on_session_settings_changed)
        session.model_changed.connect(self._on_session_model_changed)
        session.estimate_changed.connect(self._on_session_estimate_changed)
        self._refusal: str | None = None  # why the open model cannot run
        self._shapes: dict[str, tuple[int, ...]] = {}  # input shapes the user gave, by file
        self._deferred: Callable[[], None] | None = None  # the synthetic open, after an estimate

    @property
    def ready(self) -> bool:
        """Whether an evaluator is open (accuracy can be measured)."""
        return self._evaluator is not None

    def input_shape(self, path: str | Path) -> tuple[int, ...] | None:
        """The input shape (batch first) the user gave for model file ``path``, if any."""
        return self._shapes.get(_key(path))

    def set_input_shape(self, path: str | Path, shape: tuple[int, ...]) -> None:
        """Make synthetic inputs of ``shape`` (batch first) for model file ``path``: what a
        TorchScript archive needs to be measured without evaluation data."""
        self._shapes[_key(path)] = tuple(shape)

    def use_input_shape(self, model: LoadedModel, shape: tuple[int, ...]) -> None:
        """``set_input_shape`` for the open ``model``; without evaluation data, measure its
        agreement with the original on inputs of that shape now."""
        self.set_input_shape(model.path, shape)
        if self.data_path is None:
            self.open(model, None)
            if self.session.model is model and self.session.estimate is not None:
                self._on_session_estimate_changed()  # the model's estimate is in: start

    def open(self, model: LoadedModel, data_path: str | Path | None) -> None:
        """Prepare to evaluate ``model`` on ``data_path``; with None, on synthetic inputs if the
        model can run (else the proxy only, with the reason)."""
        from inspector.runtime.runnable_open import run_refusal

        self._evaluator, self._codec, self._refusal = None, None, None
        self._deferred = None
        self.data_path = None if data_path is None else str(data_path)
        data = self.data_path
        if data is None:
            self._refusal = run_refusal(model.format)
            shape = self.input_shape(model.path)
            if self._refusal is None and model.format == "torchscript" and shape is None:
                # No input shape to make inputs from; and no reason to ask to run its code.
                self._refusal = NO_SHAPE
            self._worker.cancel()
            if self._refusal is None:
                # Made-up inputs are nothing the user asked for: the first size estimate (what
                # opening a model is for) gets the CPU first, then the comparison starts.
                self._deferred = lambda: self._submit_open(model, None)
            return  # a refusal reaches the session once it holds the model
        self._submit_open(model, data)

    def _submit_open(self, model: LoadedModel, data: str | None) -> None:
        allow_code = self.consent.allow_code(model.path, "measuring its accuracy")
        if allow_code is None:  # the user said no: the proxy stays, with the reason

            def refused(_token: Token) -> tuple[str, Any]:
                raise InputError("contains code you chose not to run; measuring its accuracy "
                                 "runs it", model.path)  # fmt: skip

            self._worker.submit(refused)
            return
        if data is None:
            self.status.emit(f"Comparing {Path(model.path).name} with itself on "
                             f"{GUI_SYNTHETIC} synthetic inputs…")
        else:
            self.status.emit(f"Evaluating {Path(model.path).name} on {Path(data).name}…")
        self.busy.emit(True)

        shape = None if data else self.input_shape(model.path)

        def job(_token: Token) -> tuple[Any, ModelCodec]:
            from inspector.tasks.accuracy import open_evaluator

            with COLLECTOR.paused():
                evaluator = open_evaluator(model.path, data, allow_code=allow_code,
                                           synthetic=None if data else GUI_SYNTHETIC,
                                           input_shape=shape)
                evaluator.baseline  # noqa: B018 - measured here, off the GUI thread
            return evaluator, ModelCodec(model)

        self._worker.submit(lambda token: ("opened", job(token)))

    def request(self) -> int:
        """Measure the current settings in the background; returns the request's generation."""
        self._settle.stop()
        evaluator, codec = self._evaluator, self._codec
        if evaluator is None or codec is None or self.session.model is None:
            return 0
        settings = self.session.settings
        self.busy.emit(True)

        def job(token: Token) -> tuple[str, Any]:
            accuracy = drive(evaluator.evaluate_settings(codec, settings), token)
            return "measured", (accuracy, settings)

        return self._worker.submit(job)

    def shutdown(self) -> None:
        self._settle.stop()
        self._deferred = None
        self._worker.shutdown()

    # ---------------------------------------------------------------- handlers
    def _on_session_estimate_changed(self) -> None:
        deferred, self._deferred = self._deferred, None
        if deferred is not None and self.session.estimate is not None:
            deferred()
        elif deferred is not None:
            self._deferred = deferred  # a cleared estimate: keep waiting

    def _on_session_model_changed(self) -> None:
        if self._refusal is not None and self.session.model is not None:
            self.session.set_accuracy(None, None, self._refusal)  # shown in the proxy's tooltip

    def _on_session_settings_changed(self) -> None:
        if self._evaluator is not None:
            self._settle.start()  # restarted by every change of a drag

    def _on_worker_finished(self, generation: int, result: tuple[str, Any]) -> None:
        if generation != self._worker.generation:
            return  # stale: a newer request is on its way
        what, value = result
        if what == "opened":
            self._evaluator, self._codec = value
            self.request()
            return
        accuracy, settings = value
        self.session.set_accuracy(accuracy, settings, accuracy.inputs)
        self.busy.emit(False)

    def _on_worker_failed(self, generation: int, message: str) -> None:
        if generation != self._worker.generation:
            return
        if self._evaluator is None:  # could not open: the proxy stays, with the reason
            self.session.set_accuracy(None, None, message)
        self.status.emit(f"Cannot measure accuracy: {message}")
        self.busy.emit(False)

    def _on_worker_cancelled(self, generation: int) -> None:
        if generation == self._worker.generation:
            self.busy.emit(False)
