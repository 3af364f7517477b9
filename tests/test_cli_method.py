"""``compress --method`` and the option flags made from the registry; ``info`` and
``--explain`` name each layer's method."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.cli_method import add_method_flags, method_changes
from inspector.core.stages import registry


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "m.npz"
    np.savez(path, **{"fc1.weight": rng.normal(0, 0.1, (40, 30)).astype(np.float32),
                      "fc1.bias": np.zeros(40, np.float32),
                      "fc2.weight": rng.normal(0, 0.1, (10, 40)).astype(np.float32)})
    return path


def cli(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_compress_with_a_method_writes_its_estimate(capsys, npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.dcz"
    code, text, _ = cli(capsys, "compress", npz, "-o", out, "--method", "bf16", "--json")
    assert code == 0
    data = json.loads(text)
    assert data["file_nbytes"] == data["estimated_nbytes"] == out.stat().st_size
    methods = {la["name"]: la["method"] for la in data["layers"]}
    assert methods == {"fc1.weight": "bf16", "fc1.bias": "raw", "fc2.weight": "bf16"}
    code, text, _ = cli(capsys, "info", out, "--json")
    layers = {la["name"]: la for la in json.loads(text)["layers"]}
    assert layers["fc2.weight"]["method"] == "bf16"
    assert layers["fc2.weight"]["recipe"] == registry.method("bf16").describe(b"")
    code, text, _ = cli(capsys, "info", out)
    shown = {line.split()[0]: line.split()[3] for line in text.splitlines()[2:5]}
    assert shown == {"fc1.weight": "bf16", "fc1.bias": "raw", "fc2.weight": "bf16"}


def test_explain_shows_the_method_and_where_it_came_from(capsys, npz: Path) -> None:
    code, text, _ = cli(capsys, "compress", npz, "--method", "fp16", "--explain", "fc1.weight")
    assert code == 0
    assert "method      = fp16       (--method)" in text
    assert "-> fp16, SQNR" in text and "2,400 bytes" in text


def test_a_bad_option_for_the_method_is_one_line(capsys, npz: Path, tmp_path: Path,
                                                 toy_method) -> None:
    code, _, err = cli(capsys, "compress", npz, "-o", tmp_path / "o.dcz", "--method", "fp16",
                       "--step", "0.1")
    assert code == 2 and "method fp16: unknown option(s) step" in err
    assert len(err.strip().splitlines()) == 1


def test_flags_come_from_the_declared_options_once_each(toy_method, monkeypatch) -> None:
    class Other(type(toy_method)):
        name = "toy2"
        code = 251

    monkeypatch.setitem(registry.METHODS, "toy2", Other())
    p = argparse.ArgumentParser()
    p.add_argument("--threshold")
    add_method_flags(p, {"threshold"})
    flags = [a.option_strings for a in p._actions]
    assert flags.count(["--step"]) == 1  # toy and toy2 both declare it
    step = next(a for a in p._actions if a.option_strings == ["--step"])
    assert "toy, toy2" in step.help and "quantization step" in step.help
    args = p.parse_args(["--method", "toy", "--step", "0.5", "--layout", "rows", "--no-signed"])
    assert method_changes(args) == {"method": ("toy", "--method"), "step": (0.5, "--step"),
                                    "layout": ("rows", "--layout"),
                                    "signed": (False, "--signed")}
    with pytest.raises(SystemExit):
        p.parse_args(["--layout", "cols"])
