"""`inspector decompress X.dcz --into MODEL -o COPY`: the decoded weights in a copy of the model
that runs as the source did, and measures what the compressed file measures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.format import container
from inspector.io import read_model

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.(script|trace|trace_method|save|load)` is deprecated:DeprecationWarning"
)
SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"
MODEL = SAMPLES / "lenet300_100_scripted.pt"
DATA = SAMPLES / "mnist_test.h5"
CONFIG = SAMPLES / "lenet300_100_paper.json"


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dcz") / "lenet.dcz"
    assert main(["compress", str(MODEL), "-o", str(path), "--config", str(CONFIG)]) == 0
    return path


def test_the_copy_holds_the_decoded_weights(capsys, compressed, tmp_path) -> None:
    capsys.readouterr()
    out = tmp_path / "small.pt"
    code, stdout, err = cli(capsys, "decompress", compressed, "--allow-code",
                            "--into", MODEL, "-o", out)
    assert code == 0 and err == ""
    assert f"wrote {out}: torchscript copy of {MODEL.name}" in stdout
    copy, box = read_model(out), container.open_container(compressed)
    assert copy.format == "torchscript"
    assert list(copy.tensors) == [r.name for r in box.records]
    for i, record in enumerate(box.records):
        assert copy.tensors[record.name].tobytes() == box.read_layer(i).tobytes(), record.name


def test_the_copy_measures_what_the_compressed_file_measures(capsys, compressed, tmp_path):
    out = tmp_path / "small.pt"
    assert main(["decompress", str(compressed), "--allow-code",
                 "--into", str(MODEL), "-o", str(out)]) == 0
    capsys.readouterr()
    code, copy_json, _ = cli(capsys, "eval", "--allow-code", out, "--data", DATA, "--json")
    assert code == 0
    code, dcz_json, _ = cli(capsys, "eval", "--allow-code",
                            MODEL, "--compressed", compressed, "--data", DATA,
                            "--json")
    assert code == 0
    copy, dcz = json.loads(copy_json), json.loads(dcz_json)
    assert copy["top1"] == dcz["top1"] < dcz["baseline_top1"]


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("small.onnx", "must keep its extension .pt"),
        ("lenet.dcz", "refusing to overwrite the compressed file"),
    ],
)
def test_bad_targets_are_one_line_and_exit_2(capsys, compressed, tmp_path, target, problem):
    out = compressed.parent / target if target.endswith(".dcz") else tmp_path / target
    before = compressed.read_bytes()
    code, stdout, err = cli(capsys, "decompress", compressed, "--allow-code",
                            "--into", MODEL, "-o", out)
    assert code == 2 and stdout == ""
    assert problem in err and err.count("\n") == 1 and "Traceback" not in err
    assert compressed.read_bytes() == before


def test_a_model_the_file_was_not_made_from_is_refused(capsys, compressed, tmp_path) -> None:
    other = SAMPLES / "lenet5_scripted.pt"
    code, _, err = cli(capsys, "decompress", compressed, "--allow-code",
                       "--into", other, "-o", tmp_path / "x.pt")
    assert code == 2 and "'ip1.weight' has shape (300, 784), the source model (500, 800)" in err
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("suffix", [".onnx", ".keras"])
def test_a_model_format_without_into_says_how(capsys, compressed, tmp_path, suffix) -> None:
    code, _, err = cli(capsys, "decompress", compressed, "-o", tmp_path / f"x{suffix}")
    assert code == 2 and f"--into MODEL{suffix}" in err


def test_untouched_tensors_count_as_kept(capsys, tmp_path) -> None:
    """A file holding only some of the model's tensors: the others keep the source's values."""
    source = read_model(MODEL)
    partial = tmp_path / "part.dcz"
    names = [n for n in source.tensors if n != "ip1.weight"]
    np.savez(tmp_path / "part.npz", **{n: source.tensors[n] for n in names})
    assert main(["compress", str(tmp_path / "part.npz"), "-o", str(partial)]) == 0
    capsys.readouterr()
    code, stdout, _ = cli(capsys, "decompress", partial, "--allow-code",
                          "--into", MODEL, "-o", tmp_path / "c.pt")
    assert code == 0 and "1 kept from" in stdout
    copy = read_model(tmp_path / "c.pt")
    assert copy.tensors["ip1.weight"].tobytes() == source.tensors["ip1.weight"].tobytes()
