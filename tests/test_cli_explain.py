"""``compress --explain`` and the command line's place in the settings chain; the safe default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.format import container
from inspector.model.settings import SAFE_MIN_SQNR

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gen = torch.Generator().manual_seed(1)
    state = {
        "conv1.weight": torch.randn(8, 3, 3, 3, generator=gen) * 0.2,
        "conv1.bias": torch.randn(8, generator=gen) * 0.01,
        "fc1.weight": torch.randn(64, 200, generator=gen) * 0.05,
        "fc2.weight": torch.randn(10, 64, generator=gen) * 0.05,
    }
    path = tmp_path_factory.mktemp("m") / "net.pt"
    torch.save(state, path)
    return path


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({
        "defaults": {"bits": 6, "huffman": False},
        "kinds": {"fc": {"init": "linear"}},
        "layers": {"fc1.weight": {"value": 0.8}},
    }))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def fields(out: str) -> dict[str, tuple[str, str]]:
    """``name = value (source)`` lines of --explain, by setting name."""
    found = re.findall(r"^\s+(\w+)\s+= (\S+)\s+\((.*)\)$", out, re.M)
    return {name: (value, source) for name, value, source in found}


def test_explain_names_where_each_setting_came_from(
    capsys: pytest.CaptureFixture[str], model_file: Path, config: Path, tmp_path: Path
) -> None:
    code, out, err = run(capsys, "compress", model_file, "--config", config,
                         "--explain", "fc1.weight")
    assert code == 0 and err == ""
    got = fields(out)
    assert got["bits"] == ("6", "settings file: defaults")
    assert got["index_bits"] == ("5", "built-in: fc")
    assert got["init"] == ("linear", "settings file: kinds.fc")
    assert got["value"] == ("0.8", "settings file: layers.fc1.weight")
    assert got["policy"] == ("sparsity", "built-in")
    assert got["min_sqnr"][0] == "off" and "no floor" in got["min_sqnr"][1]
    assert "prunes 80.00%" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]  # nothing written


def test_explain_shows_flags_and_the_floor(
    capsys: pytest.CaptureFixture[str], model_file: Path, config: Path
) -> None:
    code, out, _ = run(capsys, "compress", model_file, "--config", config, "--bits", "3",
                       "--fc-bits", "4", "--explain", "fc2.weight")
    got = fields(out)
    assert code == 0
    assert got["bits"] == ("4", "--fc-bits")
    assert got["huffman"] == ("false", "settings file: defaults")
    assert got["min_sqnr"] == (f"{SAFE_MIN_SQNR:g}", "built-in")
    assert f"the floor of {SAFE_MIN_SQNR:g} dB" in out
    _, out, _ = run(capsys, "compress", model_file, "--bits", "3", "--explain", "conv1.weight")
    assert fields(out)["bits"] == ("3", "--bits")
    _, out, _ = run(capsys, "compress", model_file, "--sparsity", "0.5", "--explain", "conv1.bias")
    got = fields(out)
    assert got["value"] == ("0.5", "--sparsity") and got["excluded"][0] == "true"
    assert "stored losslessly" in out


def test_flags_sit_between_the_files_kinds_and_its_layers(
    capsys: pytest.CaptureFixture[str], model_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"kinds": {"fc": {"bits": 6}},
                                "layers": {"fc1.weight": {"bits": 2}}}))
    _, out, _ = run(capsys, "compress", model_file, "--config", path, "--bits", "3",
                    "--explain", "fc2.weight")
    assert fields(out)["bits"] == ("3", "--bits")  # the flag replaces the file's kind entry
    _, out, _ = run(capsys, "compress", model_file, "--config", path, "--bits", "3",
                    "--explain", "fc1.weight")
    assert fields(out)["bits"] == ("2", "settings file: layers.fc1.weight")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--explain", "fc9.weight"], "no tensor named 'fc9.weight'"),
        ([], "needs -o"),
        (["--min-sqnr", "500", "-o", "x.dcz"], "min_sqnr"),
    ],
)
def test_bad_explain_and_output_are_one_line(
    capsys: pytest.CaptureFixture[str], model_file: Path, args: list[str], message: str
) -> None:
    code, out, err = run(capsys, "compress", model_file, *args)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_the_default_keeps_every_layer_above_the_floor(
    capsys: pytest.CaptureFixture[str], model_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "d.dcz"
    saved = tmp_path / "used.json"
    code, text, err = run(capsys, "compress", model_file, "-o", out, "--json",
                          "--save-config", saved)
    assert code == 0, err
    data = json.loads(text)
    assert data["file_nbytes"] == data["estimated_nbytes"] == out.stat().st_size
    deep = [r for r in container.open_container(out).records if r.deep is not None]
    assert deep
    rows = {r["name"]: r for r in data["layers"]}
    for r in deep:
        s = r.deep.settings
        assert s.policy == "sparsity" and 0 <= s.value < 0.9 and s.min_sqnr is None
        assert rows[r.name]["sqnr_db"] >= SAFE_MIN_SQNR
        assert r.deep.survivors == r.size - round(s.value * r.size)
    again = tmp_path / "again.dcz"
    assert run(capsys, "compress", model_file, "-o", again, "--config", saved)[0] == 0
    assert again.read_bytes() == out.read_bytes()
