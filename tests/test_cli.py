"""The command line, in-process and once as a real process, on a torch-saved state dict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.format import container
from inspector.io import read_model
from inspector.model.settings import ModelSettings, load_settings

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def state_dict_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LeNet-5-like state dict: conv, fc, bf16 embedding, biases, a BN buffer."""
    gen = torch.Generator().manual_seed(0)
    state = {
        "conv1.weight": torch.randn(6, 1, 5, 5, generator=gen) * 0.2,
        "conv1.bias": torch.randn(6, generator=gen) * 0.01,
        "bn1.weight": torch.ones(6),
        "bn1.running_mean": torch.zeros(6),
        "bn1.num_batches_tracked": torch.tensor(1234, dtype=torch.int64),
        "fc1.weight": torch.randn(120, 96, generator=gen) * 0.05,
        "fc1.bias": torch.randn(120, generator=gen) * 0.01,
        "fc2.weight": (torch.randn(10, 120, generator=gen) * 0.05).to(torch.float16),
        "embed.weight": (torch.randn(30, 8, generator=gen) * 0.1).to(torch.bfloat16),
    }
    path = tmp_path_factory.mktemp("model") / "net.pt"
    torch.save(state, path)
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: object) -> dict:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    assert err == ""
    return json.loads(out)


def deep_settings(path: Path) -> dict:
    """Settings recorded in a .dcz, by layer name (deep layers only)."""
    box = container.open_container(path)
    return {r.name: r.deep.settings for r in box.records if r.deep is not None}


# ---------------------------------------------------------------------------------- info


def test_info_text(capsys: pytest.CaptureFixture[str], state_dict_file: Path) -> None:
    code, out, err = cli(capsys, "info", state_dict_file)
    assert code == 0 and err == ""
    for name in ("conv1.weight", "fc1.weight", "bn1.num_batches_tracked", "embed.weight"):
        assert name in out
    assert "pytorch" in out and "bfloat16" in out


def test_info_json(capsys: pytest.CaptureFixture[str], state_dict_file: Path) -> None:
    data = cli_json(capsys, "info", state_dict_file)
    layers = {la["name"]: la for la in data["layers"]}
    assert data["format"] == "pytorch"
    assert layers["conv1.weight"]["kind"] == "conv"
    assert layers["fc1.weight"]["kind"] == "fc"
    assert layers["fc1.bias"]["kind"] == "bias"
    assert layers["embed.weight"]["dtype"] == "bfloat16"
    assert layers["embed.weight"]["bytes"] == 30 * 8 * 2
    assert data["params"] == sum(la["params"] for la in data["layers"])
    assert data["bytes"] == sum(la["bytes"] for la in data["layers"])


# ------------------------------------------------------------------------------ compress


def test_compress_json(
    capsys: pytest.CaptureFixture[str], state_dict_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "net.dcz"
    data = cli_json(capsys, "compress", state_dict_file, "-o", out)
    size = out.stat().st_size
    assert data["file_nbytes"] == size == data["estimated_nbytes"]
    assert data["ratio"] == pytest.approx(data["original_nbytes"] / size)
    assert data["original_nbytes"] == read_model(state_dict_file).nbytes
    assert data["container_nbytes"] < size
    assert {row["name"] for row in data["layers"]} == set(read_model(state_dict_file).tensors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.dcz"]


@pytest.mark.parametrize(
    ("flags", "policy", "value"),
    [
        (["--sparsity", "0.8"], "sparsity", 0.8),
        (["--std-q", "1.5"], "std", 1.5),
        (["--threshold", "0.01"], "threshold", 0.01),
        (["--min-sqnr", "off"], "sparsity", 0.9),  # the default without its floor
    ],
)
def test_prune_flags(
    capsys: pytest.CaptureFixture[str],
    state_dict_file: Path,
    tmp_path: Path,
    flags: list[str],
    policy: str,
    value: float,
) -> None:
    out = tmp_path / "p.dcz"
    data = cli_json(capsys, "compress", state_dict_file, "-o", out, *flags)
    recorded = deep_settings(out)
    assert set(recorded) == {"conv1.weight", "fc1.weight", "fc2.weight", "embed.weight"}
    for s in recorded.values():
        assert (s.policy, s.value) == (policy, value)
    rows = {r["name"]: r for r in data["layers"]}
    model = read_model(state_dict_file)
    w = model.tensors["fc1.weight"].astype(np.float64)
    if policy == "sparsity":
        assert rows["fc1.weight"]["kept"] == pytest.approx(1 - value, abs=1 / w.size)
    elif policy == "threshold":
        assert rows["fc1.weight"]["kept"] == np.count_nonzero(np.abs(w) > value) / w.size


def test_more_flags(
    capsys: pytest.CaptureFixture[str], state_dict_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f.dcz"
    cli_json(capsys, "compress", state_dict_file, "-o", out, "--index-bits", "3",
             "--init", "density", "--no-huffman")
    box = container.open_container(out)
    for r in box.records:
        if r.deep is not None:
            s = r.deep.settings
            assert (s.index_bits, s.init, s.huffman) == (3, "density", False)
            assert not r.deep.layout.weight_huffman and not r.deep.layout.gap_huffman


@pytest.mark.parametrize(
    ("flags", "conv", "fc"),
    [
        (["--min-sqnr", "off"], 8, 5),  # the paper's, without the floor that may raise them
        (["--bits", "3"], 3, 3),
        (["--conv-bits", "7", "--fc-bits", "4"], 7, 4),
        (["--bits", "3", "--fc-bits", "2"], 3, 2),
    ],
)
def test_bits_flags(
    capsys: pytest.CaptureFixture[str],
    state_dict_file: Path,
    tmp_path: Path,
    flags: list[str],
    conv: int,
    fc: int,
) -> None:
    out = tmp_path / "b.dcz"
    cli_json(capsys, "compress", state_dict_file, "-o", out, *flags)
    recorded = deep_settings(out)
    assert recorded["conv1.weight"].bits == conv
    assert recorded["fc1.weight"].bits == recorded["fc2.weight"].bits == fc
    for name in ("conv1.weight", "fc1.weight"):
        rec = next(r for r in container.open_container(out).records if r.name == name)
        assert rec.deep.layout.codebook_size <= 1 << rec.deep.settings.bits


def test_config_with_overrides_and_save_config(
    capsys: pytest.CaptureFixture[str], state_dict_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "in.json"
    config.write_text(json.dumps({
        "version": 1,
        "defaults": {"policy": "sparsity", "value": 0.7},
        "kinds": {"conv": {"bits": 6, "index_bits": 6}, "fc": {"bits": 4, "index_bits": 4}},
        "layers": {"fc1.weight": {"value": 0.95, "bits": 2},
                   "conv1.weight": {"excluded": True}},
    }))
    saved = tmp_path / "saved.json"
    first = tmp_path / "first.dcz"
    cli_json(capsys, "compress", state_dict_file, "-o", first, "--config", config,
             "--save-config", saved, "--fc-bits", "5")
    recorded = deep_settings(first)
    assert "conv1.weight" not in recorded
    assert (recorded["fc1.weight"].value, recorded["fc1.weight"].bits) == (0.95, 2)
    assert (recorded["fc2.weight"].value, recorded["fc2.weight"].bits) == (0.7, 5)
    used = load_settings(saved)
    assert used.kinds["fc"]["bits"] == 5 and used.layers["fc1.weight"]["bits"] == 2
    second = tmp_path / "second.dcz"
    cli_json(capsys, "compress", state_dict_file, "-o", second, "--config", saved)
    assert second.read_bytes() == first.read_bytes()


def test_save_config_of_flags_round_trips(
    capsys: pytest.CaptureFixture[str], state_dict_file: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "s.json"
    cli_json(capsys, "compress", state_dict_file, "-o", tmp_path / "a.dcz", "--std-q", "0.7",
             "--bits", "4", "--save-config", saved)
    # --bits goes in the defaults: it beats the built-in kinds' bits without restating them
    expected = ModelSettings().with_defaults(policy="std", value=0.7, bits=4)
    assert load_settings(saved) == expected


# ---------------------------------------------------------------------------- decompress


@pytest.fixture(scope="module")
def compressed(state_dict_file: Path) -> Path:
    out = state_dict_file.parent / "net.dcz"
    assert main(["compress", str(state_dict_file), "-o", str(out), "--json"]) == 0
    return out


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".npz"])
def test_decompress(
    capsys: pytest.CaptureFixture[str], compressed: Path, tmp_path: Path, suffix: str
) -> None:
    capsys.readouterr()
    target = tmp_path / f"restored{suffix}"
    code, out, err = cli(capsys, "decompress", compressed, "-o", target)
    assert code == 0 and err == ""
    assert str(target) in out
    box = container.open_container(compressed)
    want = box.read_all()
    restored = read_model(target)
    if suffix == ".safetensors":  # the library lays tensors out by dtype, not in our order
        assert sorted(restored.tensors) == sorted(want)
    else:
        assert list(restored.tensors) == list(want)
    for rec in box.records:
        got = restored.tensors[rec.name]
        assert got.shape == want[rec.name].shape, rec.name
        if rec.dtype != "bfloat16" or suffix != ".npz":
            assert restored.info(rec.name).dtype == rec.dtype, rec.name
        np.testing.assert_array_equal(got, want[rec.name], err_msg=rec.name)
        assert got.tobytes() == np.asarray(want[rec.name], got.dtype).tobytes(), rec.name


def test_info_on_compressed_prints_the_table(
    capsys: pytest.CaptureFixture[str], compressed: Path
) -> None:
    capsys.readouterr()
    code, out, err = cli(capsys, "info", compressed)
    assert code == 0 and err == ""
    assert "wbits" in out and "ibits" in out
    for name in ("conv1.weight", "fc1.weight", "fc2.weight", "fc1.bias"):
        assert name in out
    assert f"file {compressed.stat().st_size:,} bytes" in out
    data = cli_json(capsys, "info", compressed)
    assert data["totals"]["file_nbytes"] == compressed.stat().st_size
    rows = {r["name"]: r for r in data["layers"]}
    assert rows["fc1.weight"]["method"] == "deep" and rows["fc1.bias"]["method"] == "raw"


# ---------------------------------------------------------------------------- bad inputs


def one_line_error(code: int, out: str, err: str) -> None:
    assert code == 2, (out, err)
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("inspector: error: ")


def test_bad_inputs(
    capsys: pytest.CaptureFixture[str], state_dict_file: Path, compressed: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(3000))
    truncated = tmp_path / "truncated.dcz"
    truncated.write_bytes(compressed.read_bytes()[:-10])
    bad_config = tmp_path / "bad.json"
    bad_config.write_text('{"defaults": {"value": 0.5,}')
    unknown_config = tmp_path / "unknown.json"
    unknown_config.write_text('{"defaults": {"sparsity": 0.5}}')
    out = tmp_path / "o.dcz"
    cases = [
        ["info", tmp_path / "missing.pt"],
        ["info", garbage],
        ["info", truncated],
        ["compress", tmp_path / "missing.pt", "-o", out],
        ["compress", garbage, "-o", out],
        ["compress", state_dict_file, "-o", out, "--sparsity", "1.5"],
        ["compress", state_dict_file, "-o", out, "--bits", "9"],
        ["compress", state_dict_file, "-o", out, "--fc-bits", "0"],
        ["compress", state_dict_file, "-o", out, "--index-bits", "17"],
        ["compress", state_dict_file, "-o", out, "--std-q", "-1"],
        ["compress", state_dict_file, "-o", out, "--config", bad_config],
        ["compress", state_dict_file, "-o", out, "--config", unknown_config],
        ["compress", state_dict_file, "-o", out, "--config", tmp_path / "none.json"],
        ["decompress", truncated, "-o", tmp_path / "r.npz"],
        ["decompress", garbage, "-o", tmp_path / "r.npz"],
        ["decompress", compressed, "-o", tmp_path / "r.unknown"],
    ]
    for args in cases:
        one_line_error(*cli(capsys, *args))
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.json", "garbage.pt", "truncated.dcz", "unknown.json"
    ]


def test_refuses_to_overwrite_the_input(
    capsys: pytest.CaptureFixture[str], state_dict_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "model.dcz"  # a torch file under a .dcz name: sniffed, not trusted
    source.write_bytes(state_dict_file.read_bytes())
    code, out, err = cli(capsys, "compress", source, "-o", source)
    one_line_error(code, out, err)
    assert "overwrite" in err
    assert source.read_bytes() == state_dict_file.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["model.dcz"]


def test_bad_config_names_the_file(
    capsys: pytest.CaptureFixture[str], state_dict_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "cfg.json"
    config.write_text("{not json")
    code, out, err = cli(capsys, "compress", state_dict_file, "-o", tmp_path / "o.dcz",
                         "--config", config)
    one_line_error(code, out, err)
    assert str(config) in err


# ------------------------------------------------------------------------- real process


def test_subprocess(state_dict_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub.dcz"
    run = subprocess.run(
        [sys.executable, "-m", "inspector.cli", "compress", str(state_dict_file), "-o", str(out),
         "--json", "--sparsity", "0.85"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    data = json.loads(run.stdout)
    assert data["file_nbytes"] == out.stat().st_size
    assert data["ratio"] == pytest.approx(data["original_nbytes"] / out.stat().st_size)
    bad = subprocess.run(
        [sys.executable, "-m", "inspector.cli", "info", str(tmp_path / "missing.pt")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    one_line_error(bad.returncode, bad.stdout, bad.stderr)


def test_gui_without_a_display_is_one_line_not_a_qt_abort(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run(
        [sys.executable, "-m", "inspector.cli", "nosuch.pt"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no display" in done.stderr


def test_long_names_print_whole_so_different_tensors_never_print_alike(capsys, tmp_path) -> None:
    """Names cut at 40 (info) or 28 (compress) characters printed two tensors alike."""
    stem = "encoder.layer.10.attention.self.query_key_value_projection"
    state = {f"{stem}.{part}": torch.randn(16, 12) * 0.1 for part in ("weight", "weight_v")}
    state["embeddings.word_embeddings.weight"] = torch.randn(30, 8) * 0.1
    path = tmp_path / "long.pt"
    torch.save(state, path)
    code, out, _ = cli(capsys, "info", path)
    assert code == 0
    for name in state:
        assert sum(line.split()[0] == name for line in out.splitlines()) == 1, name
    code, out, _ = cli(capsys, "compress", path, "-o", tmp_path / "long.dcz")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    for name in state:
        assert sum(row[:1] == [name] for row in rows) == 1, name
    assert any(row[:2] == ["embeddings.word_embeddings.weight", "embedding"] for row in rows)


def test_decompress_writes_what_export_writes_metadata_included(
    capsys: pytest.CaptureFixture[str], compressed: Path, tmp_path: Path
) -> None:
    from inspector.tasks.drive import run_to_end
    from inspector.tasks.export import write_decoded

    target = tmp_path / "cli.safetensors"
    code, _, err = cli(capsys, "decompress", compressed, "-o", target)
    assert code == 0 and err == ""
    model = read_model(compressed)  # the .dcz as the app opens it
    exported = tmp_path / "export.safetensors"
    gen = write_decoded(model, dict(model.tensors), exported, 2 * len(model.infos) + 1)
    run_to_end(gen)
    written = read_model(target)
    assert written.metadata == read_model(exported).metadata == model.metadata
    assert any(key.startswith("compression/") for key in written.metadata)
    again = read_model(exported)
    for name, tensor in written.tensors.items():
        assert written.info(name).dtype == again.info(name).dtype, name
        np.testing.assert_array_equal(tensor, again.tensors[name], err_msg=name)


def test_the_progress_line_cuts_long_labels_in_the_middle() -> None:
    from inspector.cli_output import middle

    a = "profiling encoder.layer.10.attention.self.query.weight"
    b = "profiling encoder.layer.10.attention.self.key.weight"
    assert len(middle(a, 40)) == 40 and middle(a, 40) != middle(b, 40)
    assert middle(a, 40).endswith("query.weight") and middle("short", 40) == "short"


def test_info_says_why_each_tensor_has_its_kind(
    capsys: pytest.CaptureFixture[str], state_dict_file: Path
) -> None:
    layers = {la["name"]: la for la in cli_json(capsys, "info", state_dict_file)["layers"]}
    assert layers["conv1.weight"]["reason"] == "name ends in weight, 4-D"
    assert layers["bn1.num_batches_tracked"]["reason"] == "int64 values: not a learned weight"
    code, out, _ = cli(capsys, "info", state_dict_file)
    assert code == 0
    assert out.splitlines()[1].endswith("  why")
    row = next(line for line in out.splitlines() if line.startswith("conv1.weight "))
    assert row.endswith("  name ends in weight, 4-D")
