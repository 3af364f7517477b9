"""Committed files of every format version must always decode to their committed arrays,
bit for bit: version 1 in ``golden/``, version N > 1 in ``golden/vN/``.

The files come from ``make_golden.py`` (of their time); this test only reads them. If it fails,
the reader (or the format) changed: fix the code, never the golden files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.core.positions import BITMAP, DENSE, GAPS, HOLES
from inspector.format import container

ROOT = Path(__file__).resolve().parent / "golden"
FOLDERS = {1: ROOT, 2: ROOT / "v2"}
CASES = sorted(str(p.relative_to(ROOT).with_suffix("")) for p in ROOT.rglob("*.dcz"))
GOLDEN = ROOT  # case names are relative to it


def version_of(name: str) -> int:
    return 1 if "/" not in name else int(name.split("/")[0][1:])


def test_golden_files_are_present() -> None:
    for version, folder in FOLDERS.items():
        assert len(list(folder.glob("*.dcz"))) >= 3, f"version {version} files missing"
    for name in CASES:
        assert (GOLDEN / f"{name}.npz").is_file(), name


@pytest.mark.parametrize("name", CASES)
def test_golden_decodes_bit_exactly(name: str) -> None:
    box = container.open_container(GOLDEN / f"{name}.dcz")
    assert box.version == version_of(name)
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as archive:
        expected = {key: archive[key] for key in archive.files}
    decoded = box.read_all()
    assert list(decoded) == list(expected)
    for key, want in expected.items():
        got = decoded[key]
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, key
        assert got.tobytes() == want.tobytes(), key


@pytest.mark.parametrize("name", CASES)
def test_golden_deep_layers_decode_to_codebook_entries(name: str) -> None:
    box = container.open_container(GOLDEN / f"{name}.dcz")
    for i, rec in enumerate(box.records):
        if rec.deep is None:
            continue
        flat = np.asarray(box.read_layer(i), np.float64).reshape(-1)
        assert np.count_nonzero(flat) <= rec.deep.survivors
        assert rec.deep.layout.entries >= rec.deep.survivors


@pytest.mark.parametrize("version", sorted(FOLDERS))
def test_golden_covers_the_format(version: int) -> None:
    """The set exercises Huffman and fixed streams, fillers, raw and deep layers, many dtypes."""
    boxes = [container.open_container(GOLDEN / f"{name}.dcz") for name in CASES
             if version_of(name) == version]
    records = [r for box in boxes for r in box.records]
    deep = [r.deep for r in records if r.deep is not None]
    assert any(d.layout.weight_huffman and d.layout.gap_huffman for d in deep)
    assert any(not d.layout.weight_huffman and not d.layout.gap_huffman for d in deep)
    assert any(d.layout.has_filler for d in deep)
    assert {d.settings.policy for d in deep} == {"std", "sparsity", "threshold"}
    raw = {r.dtype for r in records if r.deep is None}
    assert {"float16", "bfloat16", "int64", "float64", "bool"} <= raw
    assert {r.dtype for r in records if r.deep is not None} >= {"float32", "float16", "bfloat16"}


def test_golden_v2_covers_its_additions() -> None:
    """Every position code, a constant stream, float32, float16 and coded codebooks."""
    boxes = [container.open_container(GOLDEN / f"{name}.dcz") for name in CASES
             if version_of(name) == 2]
    lays = [r.deep.layout for box in boxes for r in box.records if r.deep is not None]
    assert {lay.positions for lay in lays} == {GAPS, BITMAP, DENSE, HOLES}
    assert any(lay.gap_constant for lay in lays)
    assert {lay.codebook_half for lay in lays} == {False, True}
    assert {lay.codebook_coded for lay in lays if lay.codebook_half} == {False, True}
