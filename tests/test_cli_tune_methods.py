"""``inspector tune --methods`` on the bundled LeNet-5: settings within the budget whose
layers name other methods than deep, the JSON naming each layer's recipe; without the flag
the tune stays deep's (checked in test_cli_tune.py)."""

from __future__ import annotations

import json
from pathlib import Path

from inspector.cli import main
from inspector.io.registry import read_model
from inspector.model.settings import load_settings
from inspector.tasks.codec import ModelCodec

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"


def test_tune_across_methods_writes_settings_within_the_budget(tmp_path, capsys) -> None:
    out = tmp_path / "tuned.json"
    code = main(["tune", str(SAMPLES / "lenet5.onnx"), "--data", str(SAMPLES / "mnist_test.h5"),
                 "--max-drop", "0.5", "--methods", "--rounds", "3", "--json", "-o", str(out)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["fits"]
    assert report["accuracy"]["top1"] >= report["accuracy"]["baseline_top1"] - 0.005 - 1e-9
    layers = report["layers"]
    assert set(layers) == {"conv1.weight", "conv2.weight", "ip1.weight", "ip2.weight"}
    assert {v["method"] for v in layers.values()} - {"deep"}
    settings = load_settings(out)
    model = read_model(SAMPLES / "lenet5.onnx")
    for name, chosen in layers.items():
        s = settings.resolve(name, model.info(name).kind)
        assert s.method == chosen["method"]
    assert ModelCodec(model).estimate(settings).file_nbytes == report["file_nbytes"]
