"""Accuracy of compressed weights, measured by running the model: top-1 on labelled data, and
agreement with the original model on any inputs (labelled, inputs-only or synthetic).

An :class:`Evaluator` holds a runnable model, its inputs and the uncompressed model's outputs
(the baseline, computed once and kept). Each evaluation substitutes some of the model's tensors
and compares the new outputs with the labels (top-1) and with the baseline's (top-1 agreement,
output cosine, relative error; see :mod:`inspector.runtime.agreement`).

When the model cannot run, the app and the CLI fall back to :func:`weight_proxy`: the weights'
signal-to-noise ratio, which is a stand-in, not an accuracy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.core.settings import LayerSettings
from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.io.torchscript import runs_code
from inspector.model.accuracy import METRICS, Accuracy
from inspector.model.estimate import ModelEstimate
from inspector.model.settings import ModelSettings
from inspector.runtime.agreement import Reference, Tally, has_class_axis
from inspector.runtime.eval_data import EvalData, EvalInputs, read_eval_inputs
from inspector.runtime.eval_inputs import DEFAULT_COUNT, example_shape, synthetic_inputs
from inspector.runtime.runnable import Runnable
from inspector.runtime.runnable_open import open_runnable
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.drive import run_to_end

Measured = Generator[Progress, None, Accuracy]
Sink = Callable[[slice, tuple[np.ndarray, ...]], None]


class Evaluator:
    """Measures substituted weights against labels and against the original model's outputs.

    Not thread-safe: use it from one thread at a time (the app's accuracy worker).

    Parameters
    ----------
    runnable : Runnable
        The model to run.
    data : EvalData or EvalInputs
        The examples; with labels, top-1 accuracy is measured too.
    reference : LoadedModel
        The model's own tensors; every one must be a tensor ``runnable`` takes.
    metric : str, optional
        What drops are measured in (:data:`inspector.model.accuracy.METRICS`); default
        ``"top1"`` with labels, else ``"agreement"`` for outputs with a class axis, else
        ``"cosine"``.
    """

    def __init__(
        self, runnable: Runnable, data: EvalData | EvalInputs, reference: LoadedModel,
        metric: str | None = None,
    ) -> None:
        if metric is not None and metric not in METRICS:
            raise InputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        self.runnable = runnable
        self.data = data
        self.reference = reference
        self._check_names(reference)
        self._labels = data.labels
        self._wanted = metric
        self._baseline: Accuracy | None = None
        self._outputs: Reference | None = None
        # Decoded tensors by layer, with the settings they were decoded with.
        self._decoded: dict[str, tuple[LayerSettings, np.ndarray]] = {}
        self._decoded_model: LoadedModel | None = None

    @property
    def inputs_note(self) -> str:
        """What the examples are, for people ("256 synthetic inputs (...)", "1,000 examples
        of mnist_test.h5")."""
        data = self.data
        if isinstance(data, EvalInputs) and data.synthetic:
            return data.source
        labelled = "examples" if data.labels is not None else "inputs (no labels)"
        return f"{data.count:,} {labelled} of {Path(data.path).name}"

    @property
    def baseline(self) -> Accuracy:
        """Accuracy of the uncompressed model (agreement 1.0); computed on first use."""
        if self._baseline is None:
            run_to_end(self._run_baseline())
        assert self._baseline is not None  # run_to_end without should_stop runs to the end
        return self._baseline

    @property
    def metric(self) -> str:
        """What drops are measured in (runs the baseline if it has not run)."""
        return self.baseline.metric

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
        if self._baseline is None and (
            run_to_end(self._run_baseline(), should_stop=should_stop) is None
        ):
            return None
        return run_to_end(self._measure(weights, 0, self._batch_count()), should_stop=should_stop)

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
        accuracy = yield from self._measure(weights, len(todo), total)
        yield Progress(total, total, "done")
        return accuracy

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

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """The outputs compared: with labels the logits ``[n, C]``, else every output."""
        if self._labels is None:
            return self.runnable.outputs(batch)
        logits = self.runnable.forward(batch)
        self._check_classes(logits)
        return (logits,)

    def _batches(
        self, weights: Mapping[str, np.ndarray], done: int, total: int, sink: Sink
    ) -> Generator[Progress, None, None]:
        """Runs every batch with ``weights``; hands each one's (slice, outputs) to ``sink``."""
        inputs = self.data.inputs
        with self.runnable.substituted(weights):
            for i, where in enumerate(self.runnable.batches(inputs)):
                yield Progress(done + i, total, f"running batch {i + 1}")
                sink(where, self._run(inputs[where]))

    def _run_baseline(self) -> Measured:
        count = self.data.count
        correct = 0

        def sink(where: slice, outputs: tuple[np.ndarray, ...]) -> None:
            nonlocal correct
            if self._outputs is None:
                classes = self._labels is not None or has_class_axis(
                    outputs, self.runnable.ends_in)
                self._outputs = Reference(count, classes, self.runnable.path)
            self._outputs.store(where, outputs)
            if self._labels is not None:
                correct += int(np.sum(outputs[0].argmax(axis=1) == self._labels[where]))

        try:
            yield from self._batches({}, 0, self._batch_count(), sink)
        except BaseException:
            self._outputs = None  # half-filled: the next call starts again
            raise
        assert self._outputs is not None
        metric = self._choose_metric(self._outputs.classes)
        top1 = correct / count if self._labels is not None else math.nan
        agreement = 1.0 if self._outputs.classes else math.nan
        self._baseline = Accuracy(top1, agreement, count, top1, 1.0, 0.0, metric,
                                  self.inputs_note)
        return self._baseline

    def _choose_metric(self, classes: bool) -> str:
        wanted = self._wanted
        if wanted == "top1" and self._labels is None:
            raise InputError("top-1 accuracy needs labels; these inputs have none (measure "
                             "agreement or cosine with the original instead)",
                             self.data.path or self.runnable.path)
        if wanted == "agreement" and not classes:
            raise InputError("the model's outputs have no class axis, so there is no top-1 "
                             "to agree on; measure the output cosine instead",
                             self.runnable.path)
        if wanted is not None:
            return wanted
        return "top1" if self._labels is not None else ("agreement" if classes else "cosine")

    def _measure(self, weights: Mapping[str, np.ndarray], done: int, total: int) -> Measured:
        """Accuracy with ``weights``; yields before each batch."""
        assert self._baseline is not None and self._outputs is not None
        reference, tally, correct = self._outputs, Tally(), 0

        def sink(where: slice, outputs: tuple[np.ndarray, ...]) -> None:
            nonlocal correct
            reference.compare(where, outputs, tally)
            if self._labels is not None:
                correct += int(np.sum(outputs[0].argmax(axis=1) == self._labels[where]))

        yield from self._batches(weights, done, total, sink)
        base = self._baseline
        top1 = correct / base.count if self._labels is not None else math.nan
        return Accuracy(top1, tally.agreement, base.count, base.baseline_top1, tally.cosine,
                        tally.relative_error, base.metric, base.inputs)

    def _check_classes(self, logits: np.ndarray) -> None:
        assert self._labels is not None
        classes = logits.shape[1]
        highest = int(self._labels.max())
        if highest >= classes:
            raise InputError(
                f"labels go up to {highest} but the model {self.runnable.path} gives "
                f"{classes} scores per example",
                self.data.path,
            )


def open_evaluator(
    model_path: str | os.PathLike[str],
    data_path: str | os.PathLike[str] | None = None,
    *,
    allow_pickle: bool = False,
    synthetic: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    distribution: str = "normal",
    metric: str | None = None,
    allow_code: bool = False,
) -> Evaluator:
    """An :class:`Evaluator` of a runnable model file on a data file, or on synthetic inputs.

    Parameters
    ----------
    model_path : str or path-like
        TorchScript archive or ONNX model (or, with ``allow_pickle``, a pickled torch module).
    data_path : str or path-like, optional
        HDF5, ``.npz`` or ``.npy`` inputs, labelled or not (see
        :func:`inspector.runtime.eval_data.read_eval_inputs`). Without it, ``synthetic`` inputs
        (default 256) are made from the model's input shape.
    allow_pickle : bool
        Allow unpickling a whole torch module, which runs code from the file.
    synthetic : int, optional
        Number of synthetic inputs (only without ``data_path``).
    input_shape : tuple of int, optional
        The input's shape, batch first, for synthetic inputs (needed for TorchScript, and
        overrides an ONNX model's declared shape).
    seed, distribution : int, str
        Of the synthetic inputs (see :func:`inspector.runtime.eval_inputs.synthetic_inputs`).
    metric : str, optional
        See :class:`Evaluator`.
    allow_code : bool
        Allow loading a TorchScript archive, which runs the code it contains.

    Raises
    ------
    InputError
        The data cannot be read or made, or the model cannot run; one line naming the file.
    """
    if data_path is not None and synthetic is not None:
        raise InputError("give evaluation data or a number of synthetic inputs, not both")
    data = None if data_path is None else read_eval_inputs(data_path)
    if data is None and input_shape is None and runs_code(Path(model_path)):
        # TorchScript records no input shape: say so before asking leave to run its code.
        example_shape(None, None, model_path)
    runnable = open_runnable(model_path, allow_pickle=allow_pickle, allow_code=allow_code)
    if data is None:
        shape, note = example_shape(runnable.input_shape, input_shape, runnable.path)
        count = DEFAULT_COUNT if synthetic is None else synthetic
        data = synthetic_inputs(shape, count, seed, distribution, note)
    return Evaluator(runnable, data, runnable.reference(), metric)


def agreement_line(acc: Accuracy) -> str:
    """What was measured against the original, in one line: ``"agreement with the original on
    256 synthetic inputs (...): top-1 98.4%, output cosine 0.9960, relative output error
    0.05"`` (no top-1 for outputs without classes)."""
    parts = [] if math.isnan(acc.agreement) else [f"top-1 {acc.agreement:.1%}"]
    parts += [f"output cosine {acc.cosine:.4f}", f"relative output error {acc.relative_error:.3g}"]
    return f"agreement with the original on {acc.inputs}: " + ", ".join(parts)


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
