"""Exports: the size written is the size estimated, files read back bit-exactly, a cancelled
export leaves nothing behind, and the source model is never overwritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.errors import InputError
from inspector.format.container import open_container
from inspector.io import read_model, write_weights
from inspector.io.model_file import LoadedModel
from inspector.model.settings import ModelSettings, load_settings
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.drive import run_to_end
from inspector.tasks.export import (
    COMPRESSED,
    DECOMPRESSED,
    KINDS,
    REWRITTEN,
    SETTINGS,
    ExportResult,
    export,
    export_compressed,
    export_decompressed,
    export_kind,
    export_settings,
)

SETTINGS_USED = ModelSettings().with_defaults(policy="sparsity", value=0.8)
# A safetensors source cannot be written back into: test_export_rewritten.py covers that kind.
PLAIN_KINDS = [k for k in KINDS if k != REWRITTEN]


@pytest.fixture
def model(tmp_path: Path) -> LoadedModel:
    """A safetensors file with float32, bfloat16 and float16 layers, written by the library."""
    rng = np.random.default_rng(3)
    tensors = {
        "conv1.weight": rng.normal(0, 0.1, (8, 1, 5, 5)).astype(np.float32),
        "conv1.bias": rng.normal(0, 0.01, 8).astype(np.float32),
        "fc1.weight": rng.normal(0, 0.05, (64, 200)).astype(np.float32),
        "fc1.bias": np.zeros(64, np.float32),
        "fc2.weight": rng.normal(0, 0.1, (10, 64)).astype(np.float16),
        "fc2.bias": np.zeros(10, np.float16),
    }
    path = tmp_path / "src" / "model.safetensors"
    path.parent.mkdir()
    write_weights(path, tensors, {"fc1.weight": "bfloat16"})
    return read_model(path)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def run(gen) -> tuple[ExportResult, list[Progress]]:
    steps = []
    return run_to_end(gen, steps.append), steps


def bits(a: np.ndarray) -> bytes:
    return a.dtype.str.encode() + repr(a.shape).encode() + a.tobytes()


def test_compressed_export_is_the_estimated_size_and_verifies(model, out) -> None:
    estimate = ModelCodec(model).estimate(SETTINGS_USED)
    result, steps = run(export_compressed(model, SETTINGS_USED, out / "m.dcz"))
    assert result.path == str(out / "m.dcz")
    assert result.nbytes == result.estimated_nbytes == estimate.file_nbytes
    assert result.nbytes == (out / "m.dcz").stat().st_size
    assert result.verified and result.mismatches == ()
    assert [s.done for s in steps] == sorted(s.done for s in steps)
    assert {s.total for s in steps} == {3 * len(model.infos) + 1}
    assert sum(s.label.startswith("verifying") for s in steps) == len(model.infos)
    codec = ModelCodec(model)
    box = open_container(out / "m.dcz")
    for i, record in enumerate(box.records):
        assert bits(box.read_layer(i)) == bits(codec.quantized(record.name, SETTINGS_USED))
    assert sorted(p.name for p in out.iterdir()) == ["m.dcz"]


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".npz"])
def test_decompressed_export_round_trips_to_the_quantized_weights(model, out, suffix) -> None:
    target = out / f"m{suffix}"
    result, _ = run(export_decompressed(model, SETTINGS_USED, target))
    assert result.verified and result.mismatches == ()
    assert result.nbytes == target.stat().st_size and result.estimated_nbytes is None
    back = read_model(target)
    codec = ModelCodec(model)
    assert list(back.tensors) == list(model.tensors)
    for name, array in back.tensors.items():
        assert bits(array) == bits(codec.quantized(name, SETTINGS_USED))
    if suffix != ".npz":  # numpy has no bfloat16: .npz keeps it widened to float32
        assert back.dtypes == model.dtypes
    assert back.dtypes["fc2.weight"] == "float16"


def test_settings_export_reads_back_equal(model, out) -> None:
    result, steps = run(export_settings(SETTINGS_USED, out / "s.json", protect=model.path))
    assert result.verified and len(steps) == 1
    assert load_settings(out / "s.json") == SETTINGS_USED
    assert result.nbytes == (out / "s.json").stat().st_size


def count_steps(kind: str, model: LoadedModel, folder: Path) -> int:
    _, steps = run(export(kind, model, SETTINGS_USED, folder / f"count{suffix_of(kind)}"))
    return len(steps)


def suffix_of(kind: str) -> str:
    return {COMPRESSED: ".dcz", DECOMPRESSED: ".safetensors", SETTINGS: ".json"}[kind]


@pytest.mark.parametrize("kind", PLAIN_KINDS)
def test_closing_the_generator_at_any_step_leaves_no_file(model, out, tmp_path, kind) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for stop_after in range(1, count_steps(kind, model, scratch) + 1):
        gen = export(kind, model, SETTINGS_USED, out / f"m{suffix_of(kind)}")
        for _ in range(stop_after):
            next(gen)
        gen.close()
        assert list(out.iterdir()) == [], f"left a file after closing at step {stop_after}"


def test_cancelling_while_verifying_keeps_the_old_file(model, out) -> None:
    target = out / "m.dcz"
    target.write_bytes(b"the old file")
    gen = export_compressed(model, SETTINGS_USED, target)
    step = next(gen)
    while not step.label.startswith("verifying"):
        step = next(gen)
    partial = [p for p in out.iterdir() if p != target]
    assert len(partial) == 1 and open_container(partial[0]).records  # the new file is written
    gen.close()
    assert target.read_bytes() == b"the old file"
    assert list(out.iterdir()) == [target]


@pytest.mark.parametrize("kind", PLAIN_KINDS)
def test_the_source_model_is_never_overwritten(model, tmp_path, kind) -> None:
    source = Path(model.path)
    before = source.read_bytes()
    link = tmp_path / f"link{source.suffix}"
    link.symlink_to(source)
    for target in (source, link):
        with pytest.raises(InputError, match="refusing to overwrite the source model"):
            run(export(kind, model, SETTINGS_USED, target))
    assert source.read_bytes() == before
    assert sorted(p.name for p in source.parent.iterdir()) == [source.name]


def test_a_missing_folder_is_one_input_error(model, tmp_path) -> None:
    with pytest.raises(InputError, match="folder does not exist") as err:
        run(export_compressed(model, SETTINGS_USED, tmp_path / "nope" / "m.dcz"))
    assert str(tmp_path / "nope" / "m.dcz") in str(err.value)


def test_a_layer_decoding_differently_is_reported_and_the_file_kept(model, out, monkeypatch):
    real = ModelCodec.quantized

    def shifted(self, name, settings):
        array = real(self, name, settings)
        return array + np.float32(1) if name == "conv1.weight" else array

    monkeypatch.setattr(ModelCodec, "quantized", shifted)
    result, _ = run(export_compressed(model, SETTINGS_USED, out / "m.dcz"))
    assert not result.verified
    assert result.mismatches == ("conv1.weight: 200 of 200 values differ",)
    assert (out / "m.dcz").exists()


def test_export_kind_follows_the_extension() -> None:
    assert export_kind("a.dcz") == COMPRESSED
    assert export_kind("a.JSON") == SETTINGS
    for name in ("a.pt", "a.pth", "a.safetensors", "a.npz"):
        assert export_kind(name) == DECOMPRESSED
    assert export_kind("a.txt") is None


def test_the_source_extension_asks_for_a_rewritten_copy_when_one_can_be_written() -> None:
    assert export_kind("b.pt", "a.pt") == REWRITTEN
    assert export_kind("b.ONNX", "a.onnx") == REWRITTEN
    assert export_kind("b.safetensors", "a.pt") == DECOMPRESSED
    assert export_kind("b.pt", None) == DECOMPRESSED


def test_a_format_without_write_back_is_one_input_error(model, out) -> None:
    with pytest.raises(InputError, match="cannot write back into safetensors files"):
        run(export(REWRITTEN, model, SETTINGS_USED, out / "m.safetensors"))
    assert list(out.iterdir()) == []
