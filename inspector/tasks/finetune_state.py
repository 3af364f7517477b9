"""The request and the state of a fine-tuning run, shared by its loop and its steps.

:mod:`inspector.tasks.finetune` runs the loop (what happens in which order) and
:mod:`inspector.tasks.finetune_steps` does each step to the tensors; both need these types, so
they live here and neither of the two imports the other's (no import cycle). Data only: torch
is never imported here.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from inspector.errors import InputError, SettingsError
from inspector.model.settings import ModelSettings

Stage = Literal["pruned", "quantized"]
Optimizer = Literal["sgd", "adam"]


@dataclass(frozen=True, slots=True, eq=False)
class FineTuneRequest:
    """Everything one fine-tuning run needs; the module itself is never modified.

    Attributes
    ----------
    module : torch.nn.Module
        The trainable model (``runtime.trainable.load_trainable``); training runs on a copy.
    train_inputs, train_labels : ndarray
        float32 ``[N, ...]`` inputs and int64 ``[N]`` class labels.
    settings : ModelSettings
        The compression settings whose masks and bit widths are trained for.
    val_inputs, val_labels : ndarray, optional
        Validation data for the per-epoch top-1 accuracy.
    prune_epochs, quant_epochs : int
        Epochs of masked retraining and of centroid training.
    prune_lr, quant_lr : float
        Learning rates of the two stages (``quant_lr`` drives the centroids' SGD).
    optimizer : {"sgd", "adam"}
        Stage 1's optimizer; stage 2 always uses SGD, as the paper does.
    momentum : float
        SGD momentum (both stages).
    cosine : bool
        Decay stage 1's learning rate to 0 along a cosine (else constant).
    weight_decay : float
        L2 penalty added to the weights' gradients (in stage 2, to the members' gradients
        before they are summed into their centroid).
    batch_size, seed, threads : int
        Minibatch size; seed of the shuffling and of torch; torch's CPU threads.
    train_others : bool
        Whether tensors that are not pruned and quantized (biases, excluded layers) train too.
    prune_steps : int
        1: the compressor's mask on the original weights, fixed from the start. More: prune
        gradually in that many steps, each on the retrained weights, to the same count per
        layer (see ``finetune_steps.prune_schedule``).
    distill, temperature : float
        Weight in [0, 1] of distillation from the original model's outputs (softened by
        ``temperature``) in the loss, against ``1 - distill`` of cross-entropy on the labels.
        Helps when the training set is small.
    mask_zeros : bool
        Layers of a straight-through method (uniform, int-N, ternary, binary; see
        ``finetune_methods``): hold the weights their first encoding sets to 0 at 0 (a mask),
        else let every weight move and the codec re-choose its zeros each step.
    """

    module: Any
    train_inputs: np.ndarray
    train_labels: np.ndarray
    settings: ModelSettings = field(default_factory=ModelSettings)
    val_inputs: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    prune_epochs: int = 10
    quant_epochs: int = 3
    prune_lr: float = 0.05
    quant_lr: float = 1e-4
    optimizer: Optimizer = "sgd"
    momentum: float = 0.9
    cosine: bool = True
    weight_decay: float = 0.0
    batch_size: int = 64
    seed: int = 0
    threads: int = 2
    train_others: bool = True
    prune_steps: int = 1
    distill: float = 0.0
    temperature: float = 4.0
    mask_zeros: bool = True

    def __post_init__(self) -> None:
        for name in ("prune_epochs", "quant_epochs", "seed"):
            _check_int(name, getattr(self, name), 0)
        for name in ("batch_size", "threads", "prune_steps"):
            _check_int(name, getattr(self, name), 1)
        for name in ("prune_lr", "quant_lr", "temperature"):
            _check_number(name, getattr(self, name), positive=True)
        for name in ("momentum", "weight_decay", "distill"):
            _check_number(name, getattr(self, name), positive=False)
        if self.distill > 1:
            raise SettingsError(f"distill must be between 0 and 1, got {self.distill!r}")
        if not isinstance(self.mask_zeros, bool):
            raise SettingsError(f"mask_zeros must be true or false, got {self.mask_zeros!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise SettingsError(f"optimizer must be sgd or adam, got {self.optimizer!r}")
        _check_data("training", self.train_inputs, self.train_labels)
        if (self.val_inputs is None) != (self.val_labels is None):
            raise InputError("validation inputs and labels must be given together")
        if self.val_inputs is not None:
            _check_data("validation", self.val_inputs, self.val_labels)


@dataclass(frozen=True, slots=True)
class EpochStats:
    """One row of the training history.

    ``epoch`` 0 is the state a stage starts from (pruned, or freshly quantized), before any
    training. ``loss`` is the mean training loss of the epoch (nan for epoch 0); ``top1`` the
    validation accuracy of the weights as they are then (None without validation data).
    """

    stage: Stage
    epoch: int
    loss: float
    top1: float | None


@dataclass(slots=True)
class _Run:
    """The state of one run: the module being trained and its data, as torch tensors."""

    req: FineTuneRequest
    module: Any
    x: Any
    y: Any
    teacher: Any
    val: tuple[Any, Any] | None
    rng: np.random.Generator
    nbatches: int
    total: int
    layers: list[_Layer] = field(default_factory=list)
    methods: list[Any] = field(default_factory=list)  # finetune_methods.MethodLayer
    trained: list[Any] = field(default_factory=list)
    history: list[EpochStats] = field(default_factory=list)

    def batches(self) -> Generator[tuple[int, tuple[Any, Any, Any]], None, None]:
        """Shuffled minibatches ``(index, (inputs, labels, teacher logits or None))``."""
        perm = self.rng.permutation(len(self.y))
        for i, lo in enumerate(range(0, len(perm), self.req.batch_size)):
            rows = perm[lo : lo + self.req.batch_size]
            soft = None if self.teacher is None else self.teacher[rows]
            yield i, (self.x[rows], self.y[rows], soft)


@dataclass(slots=True)
class _Layer:
    """One compressed layer during training: its live tensor and fixed mask (flat, 0/1)."""

    name: str
    tensor: Any
    keep: Any
    codebook: Any = None
    assignment: Any = None


def _check_data(what: str, inputs: Any, labels: Any) -> None:
    if not isinstance(inputs, np.ndarray) or inputs.ndim < 1 or inputs.dtype.kind != "f":
        raise InputError(f"{what} inputs must be a floating-point array [N, ...]")
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise InputError(f"{what} labels must be an integer array [N]")
    if len(inputs) != len(labels) or len(labels) == 0:
        raise InputError(f"{what} data: {len(inputs)} inputs but {len(labels)} labels")
    if labels.min() < 0:
        raise InputError(f"{what} labels must be >= 0")


def _check_int(name: str, value: object, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise SettingsError(f"{name} must be an integer >= {lo}, got {value!r}")


def _check_number(name: str, value: object, positive: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise SettingsError(f"{name} must be a finite number {bound}, got {value!r}")
