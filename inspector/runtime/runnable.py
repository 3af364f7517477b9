"""Models that can run: TorchScript archives, ONNX files, and (opt-in) pickled torch modules.

A :class:`Runnable` computes logits for a batch of inputs with some of its tensors replaced,
which is what measuring the accuracy of compressed weights needs. The backends live in
``runnable_torch`` and ``runnable_onnx`` and import their runtimes only when a file needs them;
``runnable_open`` picks one for a file. This module is the contract and the errors all of them
share, so none of them imports another's (no import cycle).

A runnable is used from one thread at a time (the app gives the accuracy worker its own).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel

#: Inputs per batch are capped so one batch's input stays near this many float32 values.
BATCH_VALUES = 1 << 20
MAX_BATCH = 1024


class Runnable(ABC):
    """A network that maps inputs ``[N, ...]`` to logits ``[N, C]``.

    Attributes
    ----------
    path : str
        The model file.
    names : tuple of str
        Tensors it takes replacements for: the same names the reader of the file reports.
    """

    path: str
    names: tuple[str, ...]
    #: The data input's shape per example (batch axis dropped), None for a dimension the file
    #: leaves open; None as a whole when the file does not record it (TorchScript).
    input_shape: tuple[int | None, ...] | None = None
    #: The operator that computes the first output ("Softmax", "Gemm"...; "" when unknown):
    #: a hint whether its last axis holds classes (see ``inspector.runtime.agreement``).
    ends_in: str = ""

    @abstractmethod
    def reference(self) -> LoadedModel:
        """The model's own tensors (as the file's reader reports them), copied."""

    @abstractmethod
    def substituted(self, weights: Mapping[str, np.ndarray]) -> AbstractContextManager[None]:
        """Within the block, :meth:`forward` uses ``weights`` in place of the tensors they name.

        The other tensors stay as in the file; leaving the block restores the replaced ones.
        """

    @abstractmethod
    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Logits ``[n, C]`` (float32) of one batch, with the current weights.

        Raises
        ------
        InputError
            The runtime refused the batch (shape or dtype mismatch...), naming the model file.
        """

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every output of one batch that has a batch axis, float32 ``[n, ...]``, in the
        model's order (the first is what :meth:`forward` flattens to logits).

        Raises
        ------
        InputError
            As :meth:`forward`.
        """
        return (self.forward(batch),)

    def batch_size(self, inputs: np.ndarray) -> int:
        """How many examples of ``inputs`` go into one :meth:`forward` call."""
        per_example = max(1, int(np.prod(inputs.shape[1:], dtype=np.int64)))
        return int(max(1, min(MAX_BATCH, BATCH_VALUES // per_example)))

    def batches(self, inputs: np.ndarray) -> Iterator[slice]:
        """Consecutive slices of ``inputs`` of :meth:`batch_size` examples."""
        step = self.batch_size(inputs)
        for start in range(0, inputs.shape[0], step):
            yield slice(start, min(start + step, inputs.shape[0]))

    def run(self, inputs: np.ndarray, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        """Logits ``[N, C]`` of all ``inputs``, in batches, with ``weights`` substituted.

        Parameters
        ----------
        inputs : ndarray
            float32 ``[N, ...]``.
        weights : mapping of str to ndarray
            Replacements for some of :attr:`names`; the rest stay as in the file.
        """
        with self.substituted(weights):
            parts = [self.forward(inputs[s]) for s in self.batches(inputs)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def check_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Refuse replacements for tensors this model does not take."""
        known = set(self.names)
        unknown = [n for n in weights if n not in known]
        if unknown:
            raise InputError(f"the model takes no tensor named {_names(unknown)}", self.path)


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def cannot_run(path: str | Path, reason: str) -> InputError:
    """The one error for a model its runtime cannot load or run."""
    return InputError(f"cannot run this file: {reason}", path)


def run_failed(path: str | Path, shape: tuple[int, ...], reason: str) -> InputError:
    """The one error for a runtime failure on a batch (shape or dtype mismatch with the data)."""
    return InputError(f"cannot run on inputs of shape {list(shape)}: {reason}", path)
