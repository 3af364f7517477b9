"""Top-1 accuracy of compressed weights, measured by running the model on labelled data.

An :class:`Evaluator` holds a runnable model, its evaluation data and the uncompressed
predictions (the baseline, computed once). Each evaluation substitutes some of the model's
tensors and compares the new top-1 predictions with the labels and with the baseline's.

When there is no data or the model cannot run, the app and the CLI fall back to
:func:`weight_proxy`: the weights' signal-to-noise ratio, which is a stand-in, not an accuracy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from inspector.core.settings import LayerSettings
from inspector.errors import InputError
from inspector.io.eval_data import EvalData, read_eval_data
from inspector.io.model_file import LoadedModel
from inspector.io.runnable import Runnable, open_runnable
from inspector.model.accuracy import Accuracy
from inspector.model.estimate import ModelEstimate
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, Progress

Predictions = Generator[Progress, None, np.ndarray]
T = TypeVar("T")


class Evaluator:
    """Measures top-1 accuracy of substituted weights on one data set.

    Not thread-safe: use it from one thread at a time (the app's accuracy worker).

    Parameters
    ----------
    runnable : Runnable
        The model to run.
    data : EvalData
        Labelled examples.
    reference : LoadedModel
        The model's own tensors; every one must be a tensor ``runnable`` takes.
    """

    def __init__(self, runnable: Runnable, data: EvalData, reference: LoadedModel) -> None:
        self.runnable = runnable
        self.data = data
        self.reference = reference
        self._check_names(reference)
        self._baseline: Accuracy | None = None
        self._baseline_predictions = np.empty(0, np.int64)
        # Decoded tensors by layer, with the settings they were decoded with.
        self._decoded: dict[str, tuple[LayerSettings, np.ndarray]] = {}
        self._decoded_model: LoadedModel | None = None

    @property
    def baseline(self) -> Accuracy:
        """Accuracy of the uncompressed model (agreement 1.0); computed on first use."""
        if self._baseline is None:
            _drive(self._run_baseline(), None)
        assert self._baseline is not None  # _drive without should_stop runs to the end
        return self._baseline

    def evaluate(
        self,
        weights: Mapping[str, np.ndarray],
        should_stop: Callable[[], bool] | None = None,
    ) -> Accuracy | None:
        """Accuracy with ``weights`` in place of the tensors they name.

        Parameters
        ----------
        weights : mapping of str to ndarray
            Replacements for some of the model's tensors; the others stay as in the file.
        should_stop : callable, optional
            Polled between batches; once it returns true the evaluation stops.

        Returns
        -------
        Accuracy or None
            None when stopped by ``should_stop`` (nothing is raised, the model is restored).
        """
        if self._baseline is None and _drive(self._run_baseline(), should_stop) is None:
            return None
        predictions = _drive(self._predict(weights, 0, self._batch_count()), should_stop)
        return None if predictions is None else self._accuracy(predictions)

    def evaluate_settings(
        self, codec: ModelCodec, settings: ModelSettings
    ) -> Generator[Progress, None, Accuracy]:
        """Accuracy of the weights ``codec``'s model decodes to under ``settings``.

        Decoded layers are kept per layer with their resolved settings, so a second call that
        changes one layer decodes only that layer. Layers stored losslessly keep the model's
        own tensors. Yields progress per decoded layer and per batch; closing the generator
        cancels (the model's tensors are restored).

        Raises
        ------
        InputError
            ``codec``'s model has layers the runnable model does not take.
        """
        model = codec.model
        self._check_names(model)
        if model is not self._decoded_model:
            self._decoded, self._decoded_model = {}, model
        if self._baseline is None:
            yield from self._run_baseline()
        weights, todo = self._reuse(model, settings)
        total = len(todo) + self._batch_count()
        for i, (name, resolved) in enumerate(todo):
            yield Progress(i, total, f"decoding {name}")
            array = codec.quantized(name, settings)
            self._decoded[name] = (resolved, array)
            weights[name] = array
        predictions = yield from self._predict(weights, len(todo), total)
        yield Progress(total, total, "done")
        return self._accuracy(predictions)

    # ---------------------------------------------------------------- internals
    def _check_names(self, model: LoadedModel) -> None:
        taken = set(self.runnable.names)
        missing = [name for name in model.tensors if name not in taken]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise InputError(
                f"the runnable model has no tensor named {shown}{more} (from {model.path})",
                self.runnable.path,
            )

    def _reuse(
        self, model: LoadedModel, settings: ModelSettings
    ) -> tuple[dict[str, np.ndarray], list[tuple[str, LayerSettings]]]:
        """Decoded tensors still valid under ``settings``, and the layers to decode."""
        weights: dict[str, np.ndarray] = {}
        todo: list[tuple[str, LayerSettings]] = []
        for info in model.infos:
            resolved = settings.resolve(info.name, info.kind)
            if resolved.excluded:  # stored losslessly: exactly the model's own tensor
                self._decoded.pop(info.name, None)
                continue
            cached = self._decoded.get(info.name)
            if cached is not None and cached[0] == resolved:
                weights[info.name] = cached[1]
            else:
                todo.append((info.name, resolved))
        return weights, todo

    def _batch_count(self) -> int:
        inputs = self.data.inputs
        return math.ceil(inputs.shape[0] / self.runnable.batch_size(inputs))

    def _predict(self, weights: Mapping[str, np.ndarray], done: int, total: int) -> Predictions:
        """Top-1 predictions with ``weights``; yields before each batch."""
        inputs = self.data.inputs
        predictions = np.empty(inputs.shape[0], np.int64)
        with self.runnable.substituted(weights):
            for i, batch in enumerate(self.runnable.batches(inputs)):
                yield Progress(done + i, total, f"running batch {i + 1}")
                logits = self.runnable.forward(inputs[batch])
                self._check_classes(logits)
                predictions[batch] = logits.argmax(axis=1)
        return predictions

    def _run_baseline(self) -> Generator[Progress, None, Accuracy]:
        predictions = yield from self._predict({}, 0, self._batch_count())
        top1 = float(np.mean(predictions == self.data.labels))
        self._baseline_predictions = predictions
        self._baseline = Accuracy(top1, 1.0, self.data.count, top1)
        return self._baseline

    def _check_classes(self, logits: np.ndarray) -> None:
        classes = logits.shape[1]
        highest = int(self.data.labels.max())
        if highest >= classes:
            raise InputError(
                f"labels go up to {highest} but the model {self.runnable.path} gives "
                f"{classes} scores per example",
                self.data.path,
            )

    def _accuracy(self, predictions: np.ndarray) -> Accuracy:
        assert self._baseline is not None
        return Accuracy(
            top1=float(np.mean(predictions == self.data.labels)),
            agreement=float(np.mean(predictions == self._baseline_predictions)),
            count=self.data.count,
            baseline_top1=self._baseline.top1,
        )


def _drive(gen: Generator[Progress, None, T], should_stop: Callable[[], bool] | None) -> T | None:
    """Run ``gen`` to its value; None (and the generator closed) once ``should_stop()``."""
    try:
        while True:
            next(gen)
            if should_stop is not None and should_stop():
                return None
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()


def open_evaluator(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    allow_code: bool = False,
) -> Evaluator:
    """An :class:`Evaluator` of a runnable model file on an evaluation data file.

    Parameters
    ----------
    model_path : str or path-like
        TorchScript archive or ONNX model (or, with ``allow_pickle``, a pickled torch module).
    data_path : str or path-like
        HDF5 or ``.npz`` evaluation data (see :func:`inspector.io.eval_data.read_eval_data`).
    allow_pickle : bool
        Allow unpickling a whole torch module, which runs code from the file.
    allow_code : bool
        Allow loading a TorchScript archive, which runs the code it contains.

    Raises
    ------
    InputError
        The data cannot be read or the model cannot run; one line naming the file.
    """
    data = read_eval_data(data_path)
    runnable = open_runnable(model_path, allow_pickle=allow_pickle, allow_code=allow_code)
    return Evaluator(runnable, data, runnable.reference())


# ---------------------------------------------------------------------------------- proxy


@dataclass(frozen=True, slots=True)
class LayerProxy:
    """Weight-space error of one compressed layer (a proxy, not an accuracy)."""

    name: str
    sqnr_db: float
    relative_error: float


@dataclass(frozen=True, slots=True)
class WeightProxy:
    """Weight-space stand-in for accuracy when the model cannot be run on data.

    Attributes
    ----------
    sqnr_db : float
        Signal-to-noise ratio of all compressed layers together, in dB (inf when exact,
        nan when nothing is compressed).
    relative_error : float
        ``||w - decoded|| / ||w||`` over all compressed layers.
    layers : tuple of LayerProxy
        The same per compressed layer, in model order.
    """

    sqnr_db: float
    relative_error: float
    layers: tuple[LayerProxy, ...]


def weight_proxy(estimate: ModelEstimate) -> WeightProxy:
    """Describe an estimate's weight-space error per layer and for the model."""
    plans = [(r.info.name, r.plan) for r in estimate.layers if r.plan is not None]
    layers = tuple(LayerProxy(name, p.sqnr_db, p.relative_error) for name, p in plans)
    signal = sum(p.sumsq for _, p in plans)
    noise = sum(p.error_sse for _, p in plans)
    relative = math.sqrt(noise / signal) if signal > 0 else (math.nan if not plans else 0.0)
    return WeightProxy(estimate.sqnr_db, relative, layers)
