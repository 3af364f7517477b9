"""``inspector sensitivity`` and ``inspector tune`` end to end on an ONNX model made by onnx."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inspector import cli
from inspector.cli_tune import COMMANDS, EXIT_NO_FIT, add_parsers
from inspector.errors import InspectorError
from inspector.model.settings import load_settings


def main(argv: list[str]) -> int:
    """``inspector.cli.main`` once it registers these commands; until then the same rules."""
    if set(COMMANDS) <= set(cli.COMMANDS):
        return cli.main(argv)
    parser = argparse.ArgumentParser(prog="inspector")
    add_parsers(parser.add_subparsers())
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InspectorError as exc:
        print(f"inspector: error: {exc}", file=sys.stderr)
        return cli.EXIT_BAD_INPUT


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 16 -> 48 -> 6 ReLU network on Gaussian blobs (output layer fitted in closed form)."""
    folder = tmp_path_factory.mktemp("cli_tune")
    rng = np.random.default_rng(1)
    centers = rng.normal(0.0, 1.0, (6, 16))
    y = rng.integers(0, 6, 2000)
    x = (centers[y] + rng.normal(0.0, 1.0, (y.size, 16))).astype(np.float32)
    w1 = rng.normal(0.0, 0.25, (48, 16)).astype(np.float32)
    b1 = rng.normal(0.0, 0.5, 48).astype(np.float32)
    h = np.hstack([np.maximum(x[:1000] @ w1.T + b1, 0.0), np.ones((1000, 1))])
    fit = np.linalg.solve(h.T @ h + np.eye(49), h.T @ np.eye(6)[y[:1000]]).astype(np.float32)
    tensors = {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": np.ascontiguousarray(fit[:-1].T),
               "fc2.bias": fit[-1]}
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 6])],
        [numpy_helper.from_array(a, n) for n, a in tensors.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, folder / "net.onnx")
    np.savez(folder / "data.npz", inputs=x[1000:], labels=y[1000:])
    return {"model": folder / "net.onnx", "data": folder / "data.npz"}


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_sensitivity_saves_the_sweep(capsys, files, tmp_path) -> None:
    out_path = tmp_path / "swept.json"
    code, out, err = run(capsys, "sensitivity", "--allow-code",
                         files["model"], "--data", files["data"],
                         "-o", out_path, "--fractions", "0,0.5,0.95", "--bits", "1,4,8")
    assert code == 0, err
    sweep = load_settings(out_path).sensitivity
    assert [la.name for la in sweep.layers] == ["fc1.weight", "fc2.weight"]
    assert [p.at for p in sweep.layers[0].prune] == [0.0, 0.5, 0.95]
    assert sweep.count == 1000 and sweep.layers[0].prune[0].top1 == sweep.baseline_top1
    assert sweep.layers[0].prune[-1].top1 < sweep.baseline_top1 - 0.1
    assert "baseline top-1" in out and "fc2.weight" in out and str(out_path) in out

    code, out, err = run(capsys, "sensitivity", "--allow-code",
                         files["model"], "--data", files["data"],
                         "-o", tmp_path / "one.json", "--layer", "fc2.weight", "--bits", "8",
                         "--fractions", "0.5", "--json")
    data = json.loads(out)
    assert code == 0 and [la["name"] for la in data["sensitivity"]["layers"]] == ["fc2.weight"]


def test_tune_reuses_the_sweep_and_its_file_measures_within_budget(capsys, files, tmp_path):
    swept = tmp_path / "swept.json"
    run(capsys, "sensitivity", "--allow-code", files["model"], "--data", files["data"], "-o", swept,
        "--fractions", "0,0.3,0.5,0.7,0.9", "--bits", "2,3,4,6,8")
    tuned = tmp_path / "tuned.json"
    code, out, err = run(capsys, "tune", "--allow-code", files["model"], "--data", files["data"],
                         "--config", swept, "--max-drop", "1", "-o", tuned, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["fits"] and data["accuracy"]["drop_points"] <= 1 + 1e-9
    settings = load_settings(tuned)
    assert settings.sensitivity == load_settings(swept).sensitivity  # reused, not re-swept
    for name, chosen in data["layers"].items():
        s = settings.resolve(name, "fc")
        assert (s.value, s.bits) == (chosen["value"], chosen["bits"])
    # The file those settings write measures what tune reported.
    dcz = tmp_path / "net.dcz"
    assert cli.main(["compress", str(files["model"]), "-o", str(dcz), "--config", str(tuned)]) == 0
    assert dcz.stat().st_size == data["file_nbytes"]
    capsys.readouterr()
    assert cli.main(["eval", "--allow-code", str(files["model"]), "--data", str(files["data"]),
                     "--compressed", str(dcz), "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["top1"] == data["accuracy"]["top1"]
    assert measured["agreement"] == data["accuracy"]["agreement"]

    code, out, err = run(capsys, "tune", "--allow-code", files["model"], "--data", files["data"],
                         "--config", swept, "--max-drop", "1", "-o", tmp_path / "t2.json")
    assert code == 0 and err == ""
    assert "top-1" in out and "budget 1" in out and "within the budget" in out


def test_tune_sweeps_when_the_config_has_no_sweep(capsys, files, tmp_path) -> None:
    tuned = tmp_path / "tuned.json"
    code, _, err = run(capsys, "tune", "--allow-code", files["model"], "--data", files["data"],
                       "--max-drop", "2", "-o", tuned, "--json")
    assert code == 0, err
    sweep = load_settings(tuned).sensitivity
    assert len(sweep.layers[0].prune) == 11 and len(sweep.layers[0].bits) == 8


def test_nothing_fits_exit_code_and_warning(capsys, files, tmp_path) -> None:
    coarse = tmp_path / "coarse.json"
    run(capsys, "sensitivity", "--allow-code",
        files["model"], "--data", files["data"], "-o", coarse,
        "--fractions", "0.9", "--bits", "1")
    tuned = tmp_path / "tuned.json"
    code, out, err = run(capsys, "tune", "--allow-code", files["model"], "--data", files["data"],
                         "--config", coarse, "--max-drop", "0.5", "-o", tuned)
    assert code == EXIT_NO_FIT and f"wrote {tuned}" in out
    assert "warning" in err and "nothing tried fits" in err and err.count("\n") == 1
    assert tuned.exists() and load_settings(tuned).resolve("fc1.weight", "fc").bits == 1


@pytest.mark.parametrize("extra", [["--max-drop", "-1"], ["--max-drop", "nan"]])
def test_bad_budget_is_one_line(capsys, files, tmp_path, extra) -> None:
    code, out, err = run(capsys, "tune", "--allow-code", files["model"], "--data", files["data"],
                         "-o", tmp_path / "t.json", "--config", tmp_path / "none.json", *extra)
    assert code == 2 and err.count("\n") == 1  # the missing config is reported first
    swept = tmp_path / "s.json"
    run(capsys, "sensitivity", "--allow-code", files["model"], "--data", files["data"], "-o", swept,
        "--fractions", "0", "--bits", "8")
    code, out, err = run(capsys, "tune", "--allow-code", files["model"], "--data", files["data"],
                         "-o", tmp_path / "t.json", "--config", swept, *extra)
    assert code == 2 and out == "" and "budget" in err and err.count("\n") == 1
    assert not (tmp_path / "t.json").exists()


# ------------------------------------------------------------------ without labels


def test_eval_on_synthetic_inputs(capsys: pytest.CaptureFixture[str],
                                  files: dict[str, Path]) -> None:
    code, out, err = run(capsys, "eval", files["model"], "--synthetic", "32", "--json")
    data = json.loads(out)
    assert code == 0 and data["synthetic"] and data["metric"] == "agreement"
    assert (data["agreement"], data["cosine"], data["relative_error"]) == (1.0, 1.0, 0.0)
    assert data["top1"] is None and data["count"] == 32
    code, out, err = run(capsys, "eval", files["model"], "--synthetic", "32")
    assert code == 0 and err == ""
    assert ("agreement with the original on 32 synthetic inputs (normal, seed 0, 16 each; "
            "the model's shape): top-1 100.0%, output cosine 1.0000") in out
    assert "top-1  " not in out  # no accuracy without labels


def test_eval_input_shape_errors(capsys: pytest.CaptureFixture[str],
                                 files: dict[str, Path]) -> None:
    script = Path(__file__).resolve().parents[1] / "sample_models" / "lenet300_100_scripted.pt"
    for args, problem in [
        ((script,), "--input-shape"),
        ((files["model"], "--input-shape", "1x8"), "does not fit the model's input Nx16"),
        ((files["model"], "--input-shape", "big"), "batch first"),
        ((files["model"], "--data", files["data"], "--input-shape", "1x16"), "synthetic"),
        ((files["model"], "--data", files["data"], "--metric", "agreement", "--synthetic", "4"),
         None),
    ]:
        if problem is None:
            with pytest.raises(SystemExit):
                main(["eval", *map(str, args)])
            continue
        code, out, err = run(capsys, "eval", *args)
        assert code == 2 and out == "" and problem in err and err.count("\n") == 1
    capsys.readouterr()


def test_tune_to_a_minimum_cosine(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                                  tmp_path: Path) -> None:
    tuned = tmp_path / "tuned.json"
    code, out, err = run(capsys, "tune", files["model"], "--synthetic", "64",
                         "--min-cosine", "0.99", "-o", tuned, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["fits"] and data["accuracy"]["metric"] == "cosine"
    assert data["accuracy"]["cosine"] >= 0.99 - 1e-9
    assert load_settings(tuned).sensitivity.metric == "cosine"
    # Measured again from the file: the same cosine.
    code, out, err = run(capsys, "eval", files["model"], "--synthetic", "64", "--metric",
                         "cosine", "--config", tuned, "--json")
    assert json.loads(out)["cosine"] == pytest.approx(data["accuracy"]["cosine"])
    # A top-1 sweep from labelled data is not reused for an agreement tune: swept again.
    swept = tmp_path / "swept.json"
    run(capsys, "sensitivity", files["model"], "--data", files["data"], "-o", swept,
        "--fractions", "0,0.5", "--bits", "4,8")
    code, out, err = run(capsys, "tune", files["model"], "--synthetic", "32", "--config", swept,
                         "--max-drop", "2", "-o", tmp_path / "t.json")
    assert code in (0, EXIT_NO_FIT) and "sweeping again" in err
    assert load_settings(tmp_path / "t.json").sensitivity.metric == "agreement"
    assert "agreement with the original on 32 synthetic inputs" in out


def test_sensitivity_records_its_metric(capsys: pytest.CaptureFixture[str],
                                        files: dict[str, Path], tmp_path: Path) -> None:
    out_path = tmp_path / "cos.json"
    code, out, err = run(capsys, "sensitivity", files["model"], "--synthetic", "16",
                         "--metric", "cosine", "-o", out_path, "--fractions", "0,0.9",
                         "--bits", "2,8")
    assert code == 0, err
    assert json.loads(out_path.read_text())["sensitivity"]["metric"] == "cosine"
    assert "output cosine with the original" in out
