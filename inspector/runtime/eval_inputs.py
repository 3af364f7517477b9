"""Inputs made up from a model's input shape, to compare compressed weights with the original.

Without evaluation data, agreement with the original model can still be measured: the same
seeded random inputs go through the original and the compressed weights, and their outputs are
compared. The inputs are not real data, so the result says so ("256 synthetic inputs").

The shape per example comes from the model file (ONNX declares its inputs; a dimension it
leaves open gets :data:`OPEN_DIM`) or from the user (``--input-shape 1x3x48x320``, batch first);
TorchScript archives record no shape, so there it must be given.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from inspector.errors import InputError
from inspector.runtime.eval_data import MAX_INPUT_NBYTES, EvalInputs

#: Synthetic inputs measured when no count is given.
DEFAULT_COUNT = 256
#: A dimension the model leaves open (ONNX ``N x 3 x ? x ?``) is given this size: big enough
#: for a detector's or recogniser's strides, small enough to run 256 inputs in seconds.
OPEN_DIM = 160
DISTRIBUTIONS = ("normal", "uniform")
_NO_SHAPE = (
    "the model file records no input shape (TorchScript archives do not), so no synthetic "
    "inputs can be made: give evaluation data, or the shape with --input-shape, batch first "
    "(e.g. 1x784 or 1x3x224x224)"
)


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x3x48x320"`` (or ``1,3,48,320``) as a tuple; batch first, every size >= 1.

    Raises
    ------
    InputError
        Anything else.
    """
    parts = [p for p in re.split(r"[x,\s]+", text.strip().lower()) if p]
    if len(parts) < 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise InputError(f"an input shape is sizes >= 1 joined by x, batch first "
                         f"(e.g. 1x3x48x320), not {text!r}")
    return tuple(int(p) for p in parts)


def example_shape(
    declared: tuple[int | None, ...] | None, given: tuple[int, ...] | None, path: str | Path
) -> tuple[tuple[int, ...], str]:
    """The shape of one example, and a note on where any size of it came from.

    Parameters
    ----------
    declared
        The model's data input without its batch axis (None per open dimension), or None when
        the file does not record it.
    given
        The user's shape, batch first (the batch size is ignored: inputs run in batches).
    path
        The model file, for errors.
    """
    if given is not None:
        shape = tuple(given[1:])
        if declared is not None:
            fixed = [(i, d) for i, d in enumerate(declared) if d is not None]
            if len(declared) != len(shape) or any(shape[i] != d for i, d in fixed):
                want = "x".join("?" if d is None else str(d) for d in ("N", *declared))
                raise InputError(f"the input shape {'x'.join(map(str, given))} does not fit "
                                 f"the model's input {want}", path)
        return shape, "shape given"
    if declared is None:
        raise InputError(_NO_SHAPE, path)
    if not declared:
        raise InputError("the model's input has no axis but the batch; nothing to make up",
                         path)
    shape = tuple(OPEN_DIM if d is None else d for d in declared)
    opened = sum(d is None for d in declared)
    note = f"{opened} open dimension(s) set to {OPEN_DIM}" if opened else "the model's shape"
    return shape, note


def synthetic_inputs(
    shape: tuple[int, ...], count: int = DEFAULT_COUNT, seed: int = 0,
    distribution: str = "normal", note: str = "",
) -> EvalInputs:
    """``count`` deterministic random inputs of ``shape`` per example.

    Parameters
    ----------
    shape
        One example's shape (no batch axis).
    count
        How many examples.
    seed
        The generator's seed: the same seed gives the same inputs on every run.
    distribution
        ``"normal"`` (mean 0, std 1: what normalised images and features look like) or
        ``"uniform"`` (in [0, 1): raw pixel scale).
    note
        Where the shape came from, added to the description.

    Raises
    ------
    InputError
        A count < 1, an unknown distribution, or inputs too big to hold.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"the number of synthetic inputs must be an integer >= 1, got {count!r}")
    if distribution not in DISTRIBUTIONS:
        raise InputError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, "
                         f"got {distribution!r}")
    if count * math.prod(shape) * 4 > MAX_INPUT_NBYTES:
        raise InputError(f"{count:,} synthetic inputs of shape {_dims(shape)} would take more "
                         f"than {MAX_INPUT_NBYTES >> 30} GiB; ask for fewer")
    rng = np.random.default_rng(seed)
    size = (count, *shape)
    if distribution == "normal":
        inputs = rng.standard_normal(size, dtype=np.float32)
    else:
        inputs = rng.random(size, dtype=np.float32)
    extra = f"; {note}" if note else ""
    source = (f"{count:,} synthetic inputs ({distribution}, seed {seed}, "
              f"{_dims(shape)} each{extra})")
    return EvalInputs(inputs, None, "", source, synthetic=True)


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
