"""decoder/examples/lenet_infer.c: LeNet-300-100 run in C straight from its .dcz gives the
top-1 that ``inspector eval --compressed`` measures for the same file.

The C program reads no HDF5, so the test first writes the digits of sample_models/mnist_test.h5
as raw little-endian float32 (N x 784, through the project's own reader, which applies the
file's scale) and the labels as int32.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.runtime.eval_data import read_eval_data

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_models"
CC = shutil.which("cc")

pytestmark = [
    pytest.mark.skipif(CC is None, reason="no C compiler (cc) on this machine: C example untested"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
]


def export_digits(out: Path) -> tuple[Path, Path]:
    data = read_eval_data(SAMPLES / "mnist_test.h5")
    images, labels = out / "digits.f32", out / "labels.i32"
    images.write_bytes(data.inputs.reshape(data.count, -1).astype("<f4").tobytes())
    labels.write_bytes(data.labels.astype("<i4").tobytes())
    return images, labels


def eval_top1(dcz: Path, capsys: pytest.CaptureFixture[str]) -> float:
    capsys.readouterr()
    assert main(["eval", str(SAMPLES / "lenet300_100_scripted.pt"), "--compressed", str(dcz),
                 "--data", str(SAMPLES / "mnist_test.h5"), "--allow-code", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["top1"]


def test_lenet_in_c_matches_inspector_eval(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    exe = tmp_path / "lenet_infer"
    library = sorted(str(p) for p in (ROOT / "decoder").glob("*.c") if p.name != "dczdump.c")
    cmd = [CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-I", str(ROOT / "decoder"), *library,
           str(ROOT / "decoder" / "examples" / "lenet_infer.c"), "-o", str(exe), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    dcz = tmp_path / "lenet.dcz"
    assert main(["compress", str(SAMPLES / "lenet300_100.pt"), "-o", str(dcz),
                 "--config", str(SAMPLES / "lenet300_100_paper.json")]) == 0
    images, labels = export_digits(tmp_path)
    done = subprocess.run([str(exe), str(dcz), str(images), str(labels)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(r"top1 ([0-9.]+) \((\d+)/(\d+)\)\n", done.stdout)
    assert match, done.stdout
    correct, count = int(match[2]), int(match[3])
    assert count == np.fromfile(labels, "<i4").size == 1000
    assert correct / count == pytest.approx(eval_top1(dcz, capsys), abs=1e-9)
