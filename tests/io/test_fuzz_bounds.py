"""Fuzzing the bounds (issue 11, classes 3, 4, 6): whatever the damage, a reader refuses with
one line or reads what the file really holds, and never does more work or holds more memory
than the file justifies.

* a ``.dcz`` that opens decodes, every layer, to exactly what its records say (no field
  disagrees with another or with the payload once :func:`open_container` has accepted it);
* a zip whose central directory repeats or overlaps members is refused before it is read;
* many views of one PyTorch storage are refused exactly when, together, they claim more bytes
  than the file holds (tied weights, the same view twice, count once);
* Caffe's numbering of repeated layer names always gives distinct names, in one pass.

``scripts/fuzz.py`` runs these with the others for longer (``INSPECTOR_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.errors import InputError
from inspector.format import container
from inspector.io import caffe, read_model

DEFLATE_RATIO = 1032  # deflate's most bytes out per byte in

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
sys.path.insert(0, str(ROOT / "scripts"))
import corpus_bounds  # noqa: E402  (scripts/ is not a package)

EXAMPLES = int(os.environ.get("INSPECTOR_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SLOW = settings(FUZZ, max_examples=max(20, EXAMPLES // 5))  # torch.save per example

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

DCZ = (CORPUS / "any_dcz_named.pt").read_bytes()
# version 2, a layer of each position code, constant streams, float16 and delta-coded codebooks
DCZ_V2 = (ROOT / "tests" / "format" / "golden" / "v2" / "positions.dcz").read_bytes()
SOURCES = {1: (DCZ, *corpus_bounds.dcz_parts(DCZ)), 2: (DCZ_V2, *corpus_bounds.dcz_parts(DCZ_V2))}


# --------------------------------------------------------------------------- .dcz fields


@st.composite
def edited_dcz(draw: st.DrawFn) -> bytes:
    """A valid .dcz (version 1 or 2) with record fields moved and payload bytes changed, CRCs
    made right."""
    version = draw(st.sampled_from([1, 2]))
    original, records, payloads = SOURCES[version]
    records, payloads = list(records), list(payloads)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(records) - 1))
        r = records[i]
        delta = draw(st.sampled_from([-2, -1, 1, 2, 7]))
        field = draw(st.sampled_from(["name", "shape", "payload", "survivors", "entries",
                                      "weight_nbytes", "codebook_size", "index_bits",
                                      "position_entries"]))  # fmt: skip
        if field == "name":
            r = dataclasses.replace(r, name=records[draw(st.integers(0, len(records) - 1))].name)
        elif field == "shape" and r.shape:
            r = dataclasses.replace(r, shape=(max(0, r.shape[0] + delta), *r.shape[1:]))
        elif field == "payload" and payloads[i]:
            data = bytearray(payloads[i])
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
            payloads[i] = bytes(data)
        elif r.deep is not None and field == "survivors":
            deep = dataclasses.replace(r.deep, survivors=max(0, r.deep.survivors + delta))
            r = dataclasses.replace(r, deep=deep)
        elif r.deep is not None and field != "shape":
            lay = r.deep.layout
            value = max(0, getattr(lay, field, 0) + delta)
            if field in ("entries", "weight_nbytes", "codebook_size", "index_bits",
                         "position_entries"):
                layout = dataclasses.replace(lay, **{field: value})
                r = dataclasses.replace(r, deep=dataclasses.replace(r.deep, layout=layout))
        records[i] = r
    try:
        return corpus_bounds.dcz_from(records, payloads, version)
    except (ValueError, KeyError, OverflowError, struct.error):  # not encodable: unedited
        return original


@FUZZ
@given(data=edited_dcz())
def test_a_dcz_that_opens_decodes_as_its_records_say(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "edited.dcz"
    path.write_bytes(data)
    try:
        box = container.open_container(path)
    except InputError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
        return
    names = [r.name for r in box.records]
    assert len(set(names)) == len(names)
    for i, r in enumerate(box.records):
        arr = box.read_layer(i)  # no refusal after opening: every check was up front
        assert arr.shape == r.shape
        if r.deep is not None:
            assert np.count_nonzero(arr) <= r.deep.survivors


# ------------------------------------------------------------------------------ zip layout


@st.composite
def hostile_npz(draw: st.DrawFn) -> bytes:
    """A valid .npz, or one whose central directory repeats a member, or whose members quote
    each other."""
    count = draw(st.integers(1, 5))
    arrays = [np.full(draw(st.integers(1, 64)), i, np.float32) for i in range(count)]
    names = [f"w{i}.npy" for i in range(count)]
    kind = draw(st.sampled_from(["valid", "repeated", "quoted"]))
    if kind == "quoted" and count > 1:
        return corpus_bounds.quoted_zip(names, arrays)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, arr in zip(names, arrays, strict=True):
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)),
                             corpus_bounds.npy_bytes(arr))  # fmt: skip
    data = buf.getvalue()
    if kind == "repeated":
        data = corpus_bounds.repeat_central(data, draw(st.sampled_from(names)),
                                            draw(st.integers(2, 50)))  # fmt: skip
    return data


@FUZZ
@given(data=hostile_npz())
def test_npz_reads_each_byte_once_or_refuses(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data)
    infos = zipfile.ZipFile(path).infolist()
    try:
        model = read_model(path)
    except InputError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
        assert len({i.filename for i in infos}) < len(infos) or "overlap" in exc.problem
        return
    assert sum(i.compress_size for i in infos) <= len(data)  # every member its own bytes
    assert model.nbytes <= DEFLATE_RATIO * len(data)


# ------------------------------------------------------------------------ PyTorch views


@SLOW
@given(views=st.lists(st.tuples(st.integers(0, 1023), st.integers(1, 1024)), min_size=1,
                      max_size=300))  # fmt: skip
def test_views_of_one_storage_are_bounded_together(tmp_path: Path, views: list) -> None:
    import torch

    from inspector.io.budget import SLACK_NBYTES

    flat = torch.arange(2048, dtype=torch.float32)
    state: dict[str, Any] = {f"v{i}": flat[a : a + n] for i, (a, n) in enumerate(views)}
    path = tmp_path / "views.pt"
    torch.save(state, path)
    distinct = sum(4 * n for a, n in set(views))
    limit = 2 * path.stat().st_size + SLACK_NBYTES
    try:
        model = read_model(path)
    except InputError as exc:
        assert "bytes of data can hold" in exc.problem
        assert distinct > limit
        return
    assert distinct <= limit
    for i, (a, n) in enumerate(views):
        assert np.array_equal(model.tensors[f"v{i}"], np.arange(a, a + n, dtype=np.float32))


# ------------------------------------------------------------------------------ Caffe names


@FUZZ
@given(names=st.lists(st.sampled_from(["a", "a_2", "a_3", "b", "", "a_2_2"]), min_size=1,
                      max_size=60))  # fmt: skip
def test_caffe_layer_names_come_out_distinct(names: list[str]) -> None:
    net = corpus_bounds.caffe_classes()["NetParameter"](name="fuzz")
    for name in names:
        net.layer.add(name=name, type="InnerProduct").blobs.add(data=[1.0]).shape.dim.extend([1])
    model = caffe.caffemodel_from_bytes(net.SerializeToString(), "fuzz.caffemodel")
    out = [n.rsplit(".", 1)[0] for n in model.tensors]
    assert len(out) == len(names) == len(set(out))
    first = {n: i for i, n in reversed(list(enumerate(names)))}
    for i, (given_name, got) in enumerate(zip(names, out, strict=True)):
        if given_name and first[given_name] == i and given_name not in out[:i]:
            assert got == given_name  # the first of a name keeps it unless taken before
