"""A source's metadata through the command line: ``compress`` keeps safetensors
``__metadata__`` in the ``.dcz``, ``info`` shows it, ``decompress -o X.safetensors`` restores it
(issue 10.6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from inspector.cli import main
from inspector.format.container import open_container
from inspector.io import read_model
from inspector.io.dcz_file import LAYER_KEY_PREFIX, SUMMARY_KEY, source_metadata

METADATA = {"format": "pt", "note": 'multi\nline "quoted" \u00e9', "step": "1200"}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "model.safetensors"
    save_file({"fc.weight": rng.normal(0, 0.1, (48, 40)).astype(np.float32),
               "fc.bias": np.zeros(48, np.float32)}, str(path), metadata=METADATA)  # fmt: skip
    return path


def test_compress_info_decompress_keep_the_metadata(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dcz, back = tmp_path / "model.dcz", tmp_path / "back.safetensors"
    assert main(["compress", str(source), "-o", str(dcz)]) == 0
    assert open_container(dcz).metadata == METADATA
    capsys.readouterr()
    assert main(["info", str(dcz)]) == 0
    out = capsys.readouterr().out
    assert "source metadata (3 keys):" in out
    assert '  "note": "multi\\nline \\"quoted\\" \\u00e9"' in out.splitlines()
    assert main(["info", str(dcz), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"] == METADATA
    assert main(["decompress", str(dcz), "-o", str(back)]) == 0
    with safe_open(str(back), "np") as f:
        restored = f.metadata()
    assert {k: restored[k] for k in METADATA} == METADATA
    assert SUMMARY_KEY in restored  # the compression records, as before


def test_recompressing_a_dcz_keeps_the_source_metadata_only(source: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first.dcz", tmp_path / "second.dcz"
    assert main(["compress", str(source), "-o", str(first)]) == 0
    model = read_model(first)
    assert any(k.startswith(LAYER_KEY_PREFIX) for k in model.metadata)
    assert source_metadata(model) == METADATA
    assert main(["compress", str(first), "-o", str(second)]) == 0
    assert open_container(second).metadata == METADATA


def test_a_model_without_metadata_writes_no_block(tmp_path: Path) -> None:
    path = tmp_path / "plain.npz"
    np.savez(path, **{"fc.weight": np.ones((16, 8), np.float32)})
    out = tmp_path / "plain.dcz"
    assert main(["compress", str(path), "-o", str(out)]) == 0
    assert out.read_bytes()[5] == 0 and open_container(out).metadata == {}
