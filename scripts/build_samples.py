"""Train the sample models on real digits and save each in every format inspector reads.

Deterministic: fixed splits and seeds, two threads. Writes, under ``sample_models/``:

- ``mnist_{train,test}.h5``, ``digits8_{train,test}.h5``: the data (``inputs`` uint8, one
  flattened image a row; ``labels`` int64; attributes ``scale``, ``source``, ``license``,
  ``split_seed``). A model's input is ``inputs.astype(float32) * scale``.
- for each of ``lenet300_100``, ``lenet5`` and ``digits_cnn``: ``<name>.pt`` (state dict),
  ``<name>_scripted.pt`` (TorchScript), ``<name>.onnx`` and ``<name>.keras``; for
  LeNet-300-100 also ``.safetensors`` and a legacy Keras ``.h5``.
- ``manifest.json``: every model's files, parameter count, data and the accuracy of the
  saved files.

Every sample takes float32 ``[N, F]`` and returns logits ``[N, 10]``. Run with
``make samples`` or ``.venv/bin/python scripts/build_samples.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from samples import data
from samples.evaluate import Measured, check_close, measure, read_data
from samples.export import save_onnx, save_torchscript, state_of, torchscript_logits
from samples.nets import DigitsCNN, LeNet5, LeNet300, parameter_count
from samples.train import Recipe, train
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SEED = 0
THREADS = 2
MANIFEST_VERSION = 1


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample model: its net, the data it learns, how, and which extra files it gets."""

    name: str
    net: Callable[[], nn.Module]
    data: Literal["mnist", "digits8"]
    recipe: Recipe
    description: str
    safetensors: bool = False
    keras_h5: bool = False
    settings: str | None = None  # the paper's settings, a hand-written file beside the model
    # where scripts/paper_results.py starts fine-tuning from (also hand-written)
    tuned_settings: str | None = None


SAMPLES = (
    Sample(
        name="lenet300_100",
        net=LeNet300,
        data="mnist",
        recipe=Recipe(side=28, epochs=50),
        description="LeNet-300-100: 784-300-100-10 fully connected, ReLU (ip1..ip3)",
        safetensors=True,
        keras_h5=True,
        settings="lenet300_100_paper.json",
        tuned_settings="lenet300_100_tuned.json",
    ),
    Sample(
        name="lenet5",
        net=LeNet5,
        data="mnist",
        recipe=Recipe(side=28, epochs=20),
        description="LeNet-5 (Caffe): conv1 20@5x5, pool, conv2 50@5x5, pool, "
        "ip1 800-500 ReLU, ip2 500-10",
        settings="lenet5_paper.json",
        tuned_settings="lenet5_tuned.json",
    ),
    Sample(
        name="digits_cnn",
        net=DigitsCNN,
        data="digits8",
        recipe=Recipe(side=8, epochs=20, max_shift_px=0.5),
        description="8x8-digits CNN: 3x (3x3 conv, BatchNorm, ReLU), 2 pools, "
        "fc1 256-64 ReLU, fc2 64-10",
    ),
)


def files_of(sample: Sample) -> dict[str, str]:
    """The sample's files by role."""
    n = sample.name
    files = {"state_dict": f"{n}.pt", "torchscript": f"{n}_scripted.pt", "onnx": f"{n}.onnx"}
    files["keras"] = f"{n}.keras"
    if sample.keras_h5:
        files["keras_h5"] = f"{n}.h5"
    if sample.safetensors:
        files["safetensors"] = f"{n}.safetensors"
    if sample.settings:
        files["settings"] = sample.settings
    if sample.tuned_settings:
        files["tuned_settings"] = sample.tuned_settings
    return files


def write_data(out: Path, splits: dict[str, data.Split]) -> None:
    """Write ``<key>_train.h5`` and ``<key>_test.h5`` for every split."""
    for key, split in splits.items():
        for part, x, y, source in (
            ("train", split.x_train, split.y_train, split.source_train),
            ("test", split.x_test, split.y_test, split.source_test),
        ):
            data.save_data(
                out / f"{key}_{part}.h5",
                x,
                y,
                scale=split.scale,
                source=source,
                license=split.license,
            )


def train_and_save(out: Path, sample: Sample, split: data.Split) -> float:
    """Train ``sample`` from its seed and write its torch and ONNX files; returns seconds."""
    torch.manual_seed(TRAIN_SEED)
    net = sample.net()
    # Divided in float64 and then cast, as the first LeNet-300-100 was trained: keeps it
    # byte-identical.
    x = torch.from_numpy(split.x_train / split.divisor).float()
    y = torch.from_numpy(split.y_train).long()
    start = time.perf_counter()
    train(net, x, y, sample.recipe)
    seconds = time.perf_counter() - start
    files = files_of(sample)
    state = state_of(net)
    torch.save(state, out / files["state_dict"])
    if sample.safetensors:
        path = out / files["safetensors"]
        # The first build's wording: keeps the file byte-identical.
        source = f"{split.what}; held-out split, seed {data.SPLIT_SEED}"
        save_file(state, str(path), metadata={"source": source})
        path.chmod(0o644)  # safetensors writes 0600
    save_torchscript(net, out / files["torchscript"])
    save_onnx(net, out / files["onnx"], features=split.side * split.side)
    return seconds


def save_keras(out: Path, sample: Sample) -> None:
    """Write the Keras twins from the saved state dict; check they compute the torch logits."""
    from samples.keras_nets import keras_logits, keras_model, load_keras  # imports Keras

    # Keras logs through absl that .h5 is a legacy format: the file is wanted as such.
    logging.getLogger("absl").setLevel(logging.ERROR)
    files = files_of(sample)
    state = torch.load(out / files["state_dict"], weights_only=True)
    model = keras_model(sample.name, {k: v.numpy() for k, v in state.items()})
    inputs, _ = read_data(out / f"{sample.data}_test.h5")
    expected = torchscript_logits(out / files["torchscript"], inputs)
    for role in ("keras", "keras_h5"):
        if role in files:
            model.save(out / files[role])
            logits = keras_logits(load_keras(out / files[role]), inputs)
            check_close(f"{files[role]} vs {files['torchscript']}", logits, expected)


def manifest_entry(out: Path, sample: Sample, net: nn.Module) -> dict[str, object]:
    """The manifest's record of a saved sample; its accuracies are measured on the files."""
    files = files_of(sample)
    measured: dict[str, Measured] = {}
    for part in ("test", "train"):
        data_file = out / f"{sample.data}_{part}.h5"
        measured[part] = measure(out / files["torchscript"], out / files["onnx"], data_file)
    test, train_ = measured["test"], measured["train"]
    return {
        "description": sample.description,
        "parameters": parameter_count(net),
        "tensors": len(net.state_dict()),
        "input_features": sample.recipe.side**2,
        "classes": 10,
        "files": files,
        "data": {"test": f"{sample.data}_test.h5", "train": f"{sample.data}_train.h5"},
        "test_accuracy": round(test.accuracy, 6),
        "test_correct": test.correct,
        "test_examples": test.examples,
        "train_accuracy": round(train_.accuracy, 6),
    }


def data_entry(split: data.Split, part: str) -> dict[str, object]:
    """The manifest's record of one data file."""
    x = split.x_train if part == "train" else split.x_test
    return {
        "examples": len(x),
        "features": x.shape[1],
        "image": [1, split.side, split.side],
        "scale": split.scale,
        "source": split.source_train if part == "train" else split.source_test,
        "license": split.license,
        "split_seed": data.SPLIT_SEED,
    }


def fix_hash_seed() -> None:
    """Re-run this script with ``PYTHONHASHSEED=0`` unless it already has it.

    ``torch.jit.save`` writes a module's constants in the order of a set of strings, which
    depends on Python's per-process hash seed; fixed, the TorchScript archives rebuild
    byte-identically.
    """
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])


def main() -> None:
    fix_hash_seed()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sample_models")
    parser.add_argument("--epochs", type=int, help="train every model this many epochs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(THREADS)

    splits = {"mnist": data.mnist(), "digits8": data.digits8()}
    write_data(args.out, splits)
    samples = [
        replace(s, recipe=replace(s.recipe, epochs=args.epochs or s.recipe.epochs)) for s in SAMPLES
    ]
    # Train everything before Keras is imported (see samples.keras_nets).
    for sample in samples:
        seconds = train_and_save(args.out, sample, splits[sample.data])
        print(f"{sample.name}: trained {sample.recipe.epochs} epochs in {seconds:.1f} s")
    for sample in samples:
        save_keras(args.out, sample)

    manifest = {"version": MANIFEST_VERSION, "models": {}, "data": {}}
    for sample in samples:
        entry = manifest_entry(args.out, sample, sample.net())
        manifest["models"][sample.name] = entry
        print(
            f"{sample.name}: {entry['parameters']:,} parameters, train accuracy "
            f"{entry['train_accuracy']:.2%}, test accuracy {entry['test_accuracy']:.2%} "
            f"({entry['test_examples']} digits)"
        )
    for key, split in splits.items():
        for part in ("train", "test"):
            manifest["data"][f"{key}_{part}.h5"] = data_entry(split, part)
    text = json.dumps(manifest, indent=2) + "\n"
    (args.out / "manifest.json").write_text(text, encoding="utf-8")

    total = 0
    for path in sorted(p for p in args.out.iterdir() if p.is_file()):
        total += path.stat().st_size
        print(f"{path}: {path.stat().st_size:,} bytes")
    print(f"total {total:,} bytes")


if __name__ == "__main__":
    main()
