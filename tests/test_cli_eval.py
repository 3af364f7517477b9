"""``inspector eval`` (and ``info``) end to end on runnable models made by torch and onnx."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from inspector.cli import main

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.(script|save|load)` is deprecated:DeprecationWarning"
)
SETTINGS = {"version": 1, "defaults": {"policy": "sparsity", "value": 0.7, "bits": 2}}


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 40)
        self.fc2 = torch.nn.Linear(40, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli_eval")
    torch.manual_seed(0)
    net = Net().eval()
    torch.jit.script(net).save(str(folder / "net_scripted.pt"))
    torch.save(net, folder / "whole.pt")
    torch.save(net.state_dict(), folder / "state.pt")
    inits = [numpy_helper.from_array(t.numpy(), n) for n, t in net.state_dict().items()]
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, folder / "net.onnx")
    # Uint8 "pixels" with a scale, labelled by the network itself except for every 5th example.
    pixels = np.random.default_rng(0).integers(0, 256, size=(500, 16), dtype=np.uint8)
    with torch.no_grad():
        labels = net(torch.from_numpy(pixels.astype(np.float32) / 255)).argmax(1).numpy()
    labels[::5] = (labels[::5] + 1) % 4
    np.savez(folder / "data.npz", inputs=pixels, labels=labels, scale=np.float64(1 / 255))
    (folder / "settings.json").write_text(json.dumps(SETTINGS))
    return {p.name: p for p in folder.iterdir()}


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: object) -> dict:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    assert err == ""
    return json.loads(out)


@pytest.mark.parametrize(("name", "format"), [("net.onnx", "onnx"),
                                             ("net_scripted.pt", "torchscript")])
def test_info(capsys: pytest.CaptureFixture[str], files: dict[str, Path], name: str,
              format: str) -> None:
    data = run_json(capsys, "info", files[name])
    assert data["format"] == format
    layers = {la["name"]: la for la in data["layers"]}
    assert list(layers) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert layers["fc1.weight"]["kind"] == "fc" and layers["fc1.weight"]["shape"] == [40, 16]
    code, out, err = run(capsys, "info", files[name])
    assert code == 0 and err == "" and f"({format})" in out and "fc2.weight" in out


@pytest.mark.parametrize("name", ["net.onnx", "net_scripted.pt"])
def test_eval_uncompressed(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                           name: str) -> None:
    data = run_json(capsys, "eval", "--allow-code", files[name], "--data", files["data.npz"])
    assert data["weights"] == "original"
    assert data["count"] == 500
    assert data["top1"] == data["baseline_top1"] == pytest.approx(0.8)  # the scale was applied
    assert data["agreement"] == 1.0 and data["drop_points"] == 0.0
    code, out, err = run(capsys, "eval", "--allow-code", files[name], "--data", files["data.npz"])
    assert code == 0 and err == ""
    assert "top-1" in out and "80.00%" in out and "agreement" in out and "500" in out


def test_eval_compressed_equals_config(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    dcz = tmp_path / "net.dcz"
    code, _, err = run(capsys, "compress", files["net.onnx"], "-o", dcz,
                       "--config", files["settings.json"])
    assert code == 0, err
    results = []
    for model in ("net.onnx", "net_scripted.pt"):  # the names match, so either can run it
        for flag, source in (("--compressed", dcz), ("--config", files["settings.json"])):
            data = run_json(capsys, "eval", "--allow-code",
                            files[model], "--data", files["data.npz"],
                            flag, source)
            assert data["weights"] == flag.removeprefix("--")
            results.append({k: data[k] for k in ("top1", "agreement", "baseline_top1")})
    assert all(r == results[0] for r in results)
    assert results[0]["agreement"] < 1.0  # 2-bit weights change predictions
    code, out, err = run(capsys, "eval", "--allow-code",
                         files["net.onnx"], "--data", files["data.npz"],
                         "--compressed", dcz)
    assert code == 0 and err == "" and "drop" in out and "points" in out


def test_pickled_module_needs_the_flag(capsys: pytest.CaptureFixture[str],
                                       files: dict[str, Path]) -> None:
    code, out, err = run(capsys, "eval", "--allow-code",
                         files["whole.pt"], "--data", files["data.npz"])
    assert code == 2 and out == ""
    assert "--allow-pickle" in err and err.count("\n") == 1
    data = run_json(capsys, "eval", "--allow-code", files["whole.pt"], "--data", files["data.npz"],
                    "--allow-pickle")
    assert data["top1"] == pytest.approx(0.8)


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], files: dict[str, Path],
                             tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"nope")
    cases = [
        (files["state.pt"], files["data.npz"], "holds only weights"),
        (files["net.onnx"], bad, "not a readable HDF5"),
        (files["net.onnx"], tmp_path / "missing.npz", "no such file"),
    ]
    for model, data, problem in cases:
        code, out, err = run(capsys, "eval", "--allow-code", model, "--data", data)
        assert code == 2 and out == ""
        assert err.startswith("inspector: error: ") and problem in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as info:  # argparse: data or synthetic inputs, not both
        main(["eval", "--allow-code", str(files["net.onnx"]), "--data", str(files["data.npz"]),
              "--synthetic", "8"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["eval", "--allow-code", str(files["net.onnx"]), "--data", str(files["data.npz"]),
              "--compressed", "a.dcz", "--config", "b.json"])
    capsys.readouterr()
