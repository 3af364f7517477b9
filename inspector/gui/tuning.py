"""Long runs on evaluation data: the sensitivity sweep, auto-tune and fine-tuning.

They run one at a time in a worker of their own, with an evaluator and codecs of their own
(neither is thread-safe, and the accuracy worker keeps using its own), report progress and
stop when cancelled. Results land in the session as one undoable settings change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QElapsedTimer, QObject, Signal

from inspector.errors import InputError
from inspector.model.session import Session
from inspector.tasks.codec import ModelCodec, Progress

from .accuracy import GUI_SYNTHETIC, NO_SHAPE, AccuracyController
from .util import eta_text
from .workers import COLLECTOR, SerialWorker, Token, drive


class TuningController(QObject):
    """Runs sweeps, tunes and fine-tunes for the session's model on one evaluation file."""

    progress = Signal(int, int, str)  # done, total, label
    busy = Signal(bool)
    status = Signal(str)
    failed = Signal(str)
    fine_tuned = Signal(str, object)  # path of the written model, its ModelSettings
    partial_sweep = Signal(object)  # the Sensitivity of the layers swept so far

    def __init__(
        self, session: Session, accuracy: AccuracyController, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self._accuracy = accuracy  # whose evaluation file the runs use
        self._tools: tuple[tuple[Any, ...], Any, ModelCodec] | None = None
        self._allow_code = False  # the user's answer for the model the running job opens
        self._worker = SerialWorker("tune", self)
        self._clock = QElapsedTimer()  # since the run started: the progress's time left
        self._worker.progress.connect(self._on_worker_progress)
        self._worker.finished.connect(self._on_worker_finished)
        self._worker.failed.connect(self._on_worker_failed)
        self._worker.cancelled.connect(self._on_worker_cancelled)
        session.model_changed.connect(self.cancel)

    @property
    def data_path(self) -> str | None:
        """The evaluation file (the one the app measures accuracy on)."""
        return self._accuracy.data_path

    @property
    def running(self) -> bool:
        return self._worker.busy

    def measure_sensitivity(self) -> int:
        """Sweep every compressed layer's prune fraction and bits on the evaluation data."""
        from inspector.tasks.sensitivity import sensitivity

        settings = self.session.settings

        def job(token: Token) -> tuple[str, Any]:
            evaluator, codec = self._open(token)
            sweep = drive(sensitivity(codec, evaluator, settings,
                                      should_stop=lambda: token.cancelled), token)
            token.check()
            return "sensitivity", sweep

        return self._start(job, "Measuring each layer's sensitivity…", "measuring its sensitivity")

    def auto_tune(self, max_drop_points: float) -> int:
        """Choose per-layer sparsity and bits for the smallest file within the budget."""
        from inspector.tasks.sensitivity import sensitivity, sweep_matches
        from inspector.tasks.tune import tune

        settings = self.session.settings

        def job(token: Token) -> tuple[str, Any]:
            evaluator, codec = self._open(token)
            sweep = settings.sensitivity
            if sweep is not None and (sweep.metric != evaluator.metric
                                      or not sweep_matches(codec, sweep, settings)):
                sweep = None  # measured on other data (labelled vs not), or for another
                # method than the layers have now: sweep again
            if sweep is None:
                sweep = drive(sensitivity(codec, evaluator, settings,
                                          should_stop=lambda: token.cancelled), token)
                token.check()
            result = drive(tune(codec, evaluator, sweep, max_drop_points, settings,
                                should_stop=lambda: token.cancelled), token)
            token.check()
            return "tune", result

        return self._start(job, f"Auto-tuning within {max_drop_points:g} points…", "auto-tuning it")

    def auto_tune_methods(self, max_drop_points: float) -> int:
        """Per layer the cheapest recipe of any registered method within the budget."""
        from inspector.tasks.tune_methods import tune_methods

        settings = self.session.settings

        def job(token: Token) -> tuple[str, Any]:
            evaluator, codec = self._open(token)
            result = drive(tune_methods(codec, evaluator, max_drop_points, settings,
                                        should_stop=lambda: token.cancelled), token)
            token.check()
            return "tune", result  # the same fields as deep's TuneResult that are shown

        return self._start(job, f"Auto-tuning across methods within {max_drop_points:g} "
                                "points…", "auto-tuning it")

    def fine_tune(
        self, train_path: str, output: str, epochs: tuple[int, int] | None = None
    ) -> int:
        """Retrain the model (masked, then its centroids) and write it to ``output``."""
        from inspector.runtime.eval_data import read_eval_data
        from inspector.runtime.trainable import load_trainable, save_trainable
        from inspector.tasks.finetune import FineTuneRequest, finetune

        model, settings, data = self.session.model, self.session.settings, self.data_path
        if model is None:
            return 0

        def job(token: Token) -> tuple[str, Any]:
            train = read_eval_data(train_path)
            val = read_eval_data(data) if data else None
            trainable = load_trainable(model.path, allow_code=self._allow_code)
            request = FineTuneRequest(
                trainable.module, train.inputs, train.labels, settings,
                val_inputs=None if val is None else val.inputs,
                val_labels=None if val is None else val.labels,
                **({} if epochs is None else {"prune_epochs": epochs[0],
                                               "quant_epochs": epochs[1]}),
            )
            result = drive(finetune(request), token)
            token.check()
            save_trainable(trainable.module, output, result.tensors, protect=[model.path])
            return "finetune", (output, result.settings)

        return self._start(job, f"Fine-tuning {Path(model.path).name}…", "fine-tuning it")

    def cancel(self) -> None:
        if self._worker.busy:
            self._worker.cancel()
            self.busy.emit(False)
            self.status.emit("Cancelled")

    def shutdown(self) -> None:
        self._worker.shutdown()

    # ---------------------------------------------------------------- helpers
    def _start(self, job: Any, message: str, action: str) -> int:
        if self.session.model is None:
            return 0
        path = self.session.model.path
        allow_code = self._accuracy.consent.allow_code(path, action)  # asked once per file
        if allow_code is None:
            self.failed.emit(f"{Path(path).name} contains code you chose not to run: "
                             f"{action} needs to run it.")
            return 0
        self._allow_code = allow_code  # read by this worker's jobs, set before they start
        self.busy.emit(True)
        self.status.emit(message)
        self._clock.start()
        return self._worker.submit(job)

    def _open(self, token: Token) -> tuple[Any, ModelCodec]:
        """This worker's evaluator and codec for the current model and data (kept)."""
        from inspector.tasks.accuracy import open_evaluator

        model, data = self.session.model, self.data_path
        if model is None:
            raise InputError("no model")
        shape = None if data else self._accuracy.input_shape(model.path)
        if data is None and shape is None and model.format == "torchscript":
            raise InputError(NO_SHAPE, model.path)  # before asking leave to run its code
        key = (model.path, data or "", shape)
        if self._tools is None or self._tools[0] != key or self._tools[2].model is not model:
            token.report(Progress(0, 1, "opening the evaluation data" if data
                                  else "making synthetic inputs"))
            with COLLECTOR.paused():
                # Without data: agreement with the original on synthetic inputs.
                evaluator = open_evaluator(model.path, data, allow_code=self._allow_code,
                                           synthetic=None if data else GUI_SYNTHETIC,
                                           input_shape=shape)
                self._tools = (key, evaluator, ModelCodec(model))
        return self._tools[1], self._tools[2]

    # ---------------------------------------------------------------- handlers
    def _on_worker_progress(self, generation: int, step: Progress) -> None:
        if generation == self._worker.generation:
            left = eta_text(step.done, step.total, self._clock.elapsed() / 1000.0)
            label = f"{step.label} ({left})" if left else step.label
            self.progress.emit(step.done, step.total, label)
            partial = getattr(step, "partial", None)
            if partial is not None:
                self.partial_sweep.emit(partial)

    def _on_worker_finished(self, generation: int, result: tuple[str, Any]) -> None:
        if generation != self._worker.generation:
            return
        self.busy.emit(False)
        what, value = result
        s = self.session
        if what == "sensitivity":
            s.set_settings(s.settings.with_sensitivity(value), "sensitivity sweep")
            self.status.emit(f"Measured {len(value.layers)} layers on {value.count:,} examples")
        elif what == "tune":
            s.set_settings(value.settings, f"auto-tune ({value.max_drop_points:g} pt)")
            acc = value.accuracy
            measure = {"top1": "top-1", "agreement": "agreement", "cosine": "cosine"}
            self.status.emit(
                f"Auto-tune: {value.ratio:.1f}x smaller, {measure[acc.metric]} "
                f"{100 * acc.score:.2f}% ({-acc.drop_points:+.2f} pt) on {acc.inputs}: "
                f"{value.note}"
            )
        elif what == "finetune":
            path, settings = value
            self.status.emit(f"Fine-tuned model written to {path}")
            # The sweep measured the weights before fine-tuning: it does not describe these.
            self.fine_tuned.emit(path, settings.with_sensitivity(None))

    def _on_worker_failed(self, generation: int, message: str) -> None:
        if generation == self._worker.generation:
            self.busy.emit(False)
            self.failed.emit(message)

    def _on_worker_cancelled(self, generation: int) -> None:
        if generation == self._worker.generation:
            self.busy.emit(False)
