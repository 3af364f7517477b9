"""``inspector compress --target-ratio/--target-bytes/--lambda``: the file written meets the
target, the printed result names the ratio reached and the knob, bad use is one line."""

from __future__ import annotations

import json
from pathlib import Path

from inspector.cli import main

LENET = Path(__file__).resolve().parents[1] / "sample_models" / "lenet300_100.pt"
FP32 = 4 * (784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10)


def cli(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_target_ratio_writes_a_file_within_one_percent(capsys, tmp_path: Path) -> None:
    out = tmp_path / "o.dcz"
    code, text, err = cli(capsys, "compress", LENET, "-o", out, "--target-ratio", 16)
    assert code == 0, err
    ratio = FP32 / out.stat().st_size
    assert 16 <= ratio <= 16 * 1.01
    line = next(s for s in text.splitlines() if s.startswith("target: "))
    assert "uniform at rel_step" in line and f"{ratio:.2f}x" in line


def test_target_bytes_with_lambda_json(capsys, tmp_path: Path) -> None:
    out = tmp_path / "o.dcz"
    code, text, err = cli(capsys, "compress", LENET, "-o", out, "--target-bytes", 30000,
                          "--lambda", 0.5, "--json")
    assert code == 0, err
    data = json.loads(text)
    assert data["target"]["lam"] == 0.5 and data["target"]["met"]
    assert data["file_nbytes"] == out.stat().st_size <= 30000
    assert data["settings"]["defaults"]["lam"] == 0.5


def test_target_with_deep_is_one_line(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "compress", LENET, "-o", tmp_path / "o.dcz",
                       "--target-ratio", 10, "--method", "deep")
    assert code == 2 and err.count("\n") == 1 and "rate knob" in err
    assert not (tmp_path / "o.dcz").exists()


def test_target_max_drop_is_met_by_the_file_written(capsys, tmp_path: Path) -> None:
    onnx = LENET.with_suffix(".onnx")
    data = LENET.with_name("mnist_test.h5")
    out = tmp_path / "o.dcz"
    code, text, err = cli(capsys, "compress", onnx, "-o", out, "--target-max-drop", 0.5,
                          "--data", data, "--json")
    assert code == 0, err
    target = json.loads(text)["target"]
    assert target["met"] and 0 <= target["drop_points"] <= 0.5 and target["ratio"] > 8
    code, text, err = cli(capsys, "eval", onnx, "--data", data, "--compressed", out, "--json")
    assert code == 0, err
    assert json.loads(text)["drop_points"] == target["drop_points"]  # the file's, re-measured
