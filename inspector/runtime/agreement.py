"""Comparing a model's outputs with the original model's, batch by batch.

The original outputs are run once and kept (:class:`Reference`); every later run is compared
with them per example: the top-1 prediction (for outputs with a class axis), the cosine of the
flattened outputs, and the squared error for the relative error over everything.

A class axis: a single output ``[N, C]`` (``C >= 2``, logits or probabilities) that is not
normalised like an embedding, or a single ``[N, T, C]`` that the model ends in a softmax over (a
sequence of classes, as in text recognition). Anything else (embeddings, detection maps, several
outputs) is compared by cosine only. ``[N, C]`` from a plain Gemm may be logits or an embedding:
both measures are reported, and the user can choose the metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.errors import InputError

#: Most bytes of original outputs kept for the comparison.
MAX_REFERENCE_NBYTES = 512 << 20


#: Operators that end a classifier over the last axis.
SOFTMAX_OPS = ("Softmax", "LogSoftmax")
#: Operators that end an embedding (a normalised or pooled vector, not class scores).
EMBEDDING_OPS = ("LpNormalization", "Div", "ReduceMean", "ReduceL2", "LayerNormalization")


def has_class_axis(outputs: tuple[np.ndarray, ...], ends_in: str) -> bool:
    """Whether top-1 predictions of ``outputs`` mean something (see the module docstring).

    ``ends_in`` is the operator computing the first output (``""`` when unknown).
    """
    if len(outputs) != 1 or outputs[0].shape[-1] < 2:
        return False
    ndim = outputs[0].ndim
    return (ndim == 2 and ends_in not in EMBEDDING_OPS) or (ndim == 3 and ends_in in SOFTMAX_OPS)


def flat(outputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """All outputs of each example side by side: float32 ``[n, D]``."""
    n = outputs[0].shape[0]
    parts = [np.asarray(o, np.float32).reshape(n, -1) for o in outputs]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


@dataclass(slots=True)
class Tally:
    """Running sums of one comparison."""

    agree: int = 0
    positions: int = 0
    cosine_sum: float = 0.0
    examples: int = 0
    error_ss: float = 0.0
    reference_ss: float = 0.0

    @property
    def agreement(self) -> float:
        return self.agree / self.positions if self.positions else float("nan")

    @property
    def cosine(self) -> float:
        return self.cosine_sum / self.examples if self.examples else float("nan")

    @property
    def relative_error(self) -> float:
        if self.reference_ss > 0:
            return float(np.sqrt(self.error_ss / self.reference_ss))
        return 0.0 if self.error_ss == 0 else float("inf")


class Reference:
    """The original model's outputs on ``count`` examples, filled batch by batch.

    Parameters
    ----------
    count
        Number of examples.
    classes
        Whether the outputs have a class axis (top-1 predictions are kept and compared).
    path
        The model file, for errors.
    """

    def __init__(self, count: int, classes: bool, path: str) -> None:
        self.count, self.classes, self.path = count, classes, path
        self._outputs: np.ndarray | None = None
        self._predictions: np.ndarray | None = None

    def store(self, where: slice, outputs: tuple[np.ndarray, ...]) -> None:
        """Keep the original outputs of examples ``where``."""
        values = flat(outputs)
        if self._outputs is None:
            nbytes = self.count * values.shape[1] * 4
            if nbytes > MAX_REFERENCE_NBYTES:
                raise InputError(
                    f"the model's outputs on {self.count:,} inputs take {nbytes >> 20:,} MB "
                    f"({values.shape[1]:,} values each), more than the "
                    f"{MAX_REFERENCE_NBYTES >> 20} MB inspector keeps to compare with; "
                    "use fewer inputs", self.path)
            self._outputs = np.empty((self.count, values.shape[1]), np.float32)
            if self.classes:
                shape = (self.count, *outputs[0].shape[1:-1])
                self._predictions = np.empty(shape, np.int64)
        self._check_width(values.shape[1])
        self._outputs[where] = values
        if self._predictions is not None:
            self._predictions[where] = outputs[0].argmax(axis=-1)

    def compare(self, where: slice, outputs: tuple[np.ndarray, ...], tally: Tally) -> None:
        """Add the comparison of examples ``where`` with the original to ``tally``."""
        assert self._outputs is not None, "store the original outputs first"
        values = flat(outputs)
        self._check_width(values.shape[1])
        ref = self._outputs[where]
        if self._predictions is not None:
            same = outputs[0].argmax(axis=-1) == self._predictions[where]
            tally.agree += int(same.sum())
            tally.positions += same.size
        a, b = values.astype(np.float64), ref.astype(np.float64)
        dot = np.einsum("ij,ij->i", a, b)
        na, nb = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.clip(dot / np.sqrt(na * nb), -1.0, 1.0)
        cos = np.where((na == 0) & (nb == 0), 1.0, np.nan_to_num(cos, nan=0.0))
        cos[np.all(values == ref, axis=1)] = 1.0  # exact, not 1 - 1 ulp
        tally.cosine_sum += float(cos.sum())
        tally.examples += values.shape[0]
        tally.error_ss += float(np.sum((a - b) ** 2))
        tally.reference_ss += float(nb.sum())

    def _check_width(self, width: int) -> None:
        assert self._outputs is not None
        if width != self._outputs.shape[1]:
            raise InputError(
                f"the model gives {width:,} output values per example in one batch and "
                f"{self._outputs.shape[1]:,} in another; inspector compares fixed shapes",
                self.path,
            )
