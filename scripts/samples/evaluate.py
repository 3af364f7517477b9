"""Measure the saved files: read a data file as inspector does, run the TorchScript and ONNX
files on it, and check that every format of a sample computes the same logits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from samples.export import onnx_logits, torchscript_logits

#: Largest difference allowed between the logits of two formats of one sample.
LOGIT_TOLERANCE = 1e-4


@dataclass(frozen=True, slots=True)
class Measured:
    """Top-1 accuracy of a sample's saved files on one data file."""

    correct: int
    examples: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.examples


def read_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (float32, ``inputs * scale`` in float32 like inspector) and int64 labels."""
    with h5py.File(path, "r") as f:
        inputs = f["inputs"][()].astype(np.float32) * np.float32(f.attrs["scale"])
        return inputs, f["labels"][()].astype(np.int64)


def check_close(what: str, a: np.ndarray, b: np.ndarray) -> None:
    """Raise unless two formats' logits agree within tolerance and pick the same classes."""
    diff = float(np.max(np.abs(a - b)))
    if diff >= LOGIT_TOLERANCE or not np.array_equal(a.argmax(1), b.argmax(1)):
        raise RuntimeError(f"{what}: logits differ by up to {diff:.3g}")


def measure(scripted: Path, onnx_file: Path, data: Path) -> Measured:
    """Accuracy of the TorchScript file on ``data``, after checking ONNX computes the same."""
    inputs, labels = read_data(data)
    logits = torchscript_logits(scripted, inputs)
    what = f"{onnx_file.name} vs {scripted.name} on {data.name}"
    check_close(what, onnx_logits(onnx_file, inputs), logits)
    return Measured(int(np.sum(logits.argmax(1) == labels)), len(labels))
