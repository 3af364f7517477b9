"""Hostile files at scale (issue 11, classes 3, 4, 6): readers stay linear in the file's size,
bounded in time, and bound what they materialise summed over the whole model.

The committed corpus (scripts/corpus_bounds.py) holds small instances; these are the large ones,
and the sample models shipped in ``sample_models/`` re-packed the hostile way, built at test time
with the corpus builder's own surgery helpers.
"""

from __future__ import annotations

import dataclasses
import io
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from inspector.errors import InputError
from inspector.format import container
from inspector.io import caffe, read_model

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_models"
sys.path.insert(0, str(ROOT / "scripts"))
import corpus_bounds  # noqa: E402  (scripts/ is not a package)

pytestmark = [
    pytest.mark.timeout(120),  # on a reader without the bounds these cases hang: a failure
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
]


# ------------------------------------------------------------------------------ 3. hangs


def test_caffe_many_duplicate_names_is_linear() -> None:
    """20,000 layers called "a" (after "a_2" and "a_3", taken): numbered in one pass."""
    data = corpus_bounds.caffe_duplicates(20_000)
    start = time.perf_counter()
    model = caffe.caffemodel_from_bytes(data, "dups.caffemodel")
    elapsed = time.perf_counter() - start
    names = list(model.tensors)
    assert len(names) == len(set(names)) == 20_002
    assert names[:4] == ["a_2.weight", "a_3.weight", "a.weight", "a_4.weight"]
    assert elapsed < 10, f"{elapsed:.1f} s for 20,000 layers: not linear"


def test_keras_layer_listed_many_times_is_refused(tmp_path: Path) -> None:
    """A real legacy .h5 (lenet300_100) whose layer_names repeat one layer 10,000 times."""
    path = tmp_path / "repeated.h5"
    path.write_bytes((SAMPLES / "lenet300_100.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        f["model_weights"].attrs["layer_names"] = np.array([b"ip3"] * 10_000)
    start = time.perf_counter()
    with pytest.raises(InputError, match="is listed twice"):
        read_model(path)
    assert time.perf_counter() - start < 30


def _deflated_pytorch(tmp_path: Path, numel: int) -> bytes:
    """A torch.save zip re-packed with deflate (as re-zipping tools do), and its data member."""
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(numel)}, buf)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compresslevel=9)
    return out.getvalue()


def test_pytorch_repeated_member_is_not_inflated_again(tmp_path: Path) -> None:
    """A 10 MB member deflated to 10 KB and listed 3,000 times: 30 GB of inflating, refused
    before any of it."""
    data = _deflated_pytorch(tmp_path, 10 << 18)
    member = next(n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if "/data/" in n)
    path = tmp_path / "repeated.pt"
    path.write_bytes(corpus_bounds.repeat_central(data, member, 3_000))
    start = time.perf_counter()
    with pytest.raises(InputError, match="is listed twice"):
        read_model(path)
    assert time.perf_counter() - start < 5


def test_npz_quoted_overlap_is_refused(tmp_path: Path) -> None:
    """60 members, each holding the next: about 30 times the file's bytes would be read."""
    arrays = [np.full(4096, i, np.float32) for i in range(60)]
    path = tmp_path / "quoted.npz"
    path.write_bytes(corpus_bounds.quoted_zip([f"w{i}.npy" for i in range(60)], arrays))
    assert len(zipfile.ZipFile(path).namelist()) == 60  # a zip reader lists them all
    with pytest.raises(InputError, match="overlap"):
        read_model(path)


def test_evaluation_data_with_repeated_members_is_refused(tmp_path: Path) -> None:
    """The same rule for evaluation data: inputs and labels listed 500 times over."""
    from inspector.runtime.eval_data import read_eval_data

    buf = io.BytesIO()
    np.savez(buf, inputs=np.zeros((64, 1, 8, 8), np.float32), labels=np.zeros(64, np.int64))
    path = tmp_path / "eval.npz"
    path.write_bytes(corpus_bounds.repeat_central(buf.getvalue(), "inputs.npy", 500))
    with pytest.raises(InputError, match="is listed twice"):
        read_eval_data(path)


def test_real_keras_archive_with_a_repeated_member_is_refused(tmp_path: Path) -> None:
    data = (SAMPLES / "digits_cnn.keras").read_bytes()
    path = tmp_path / "repeated.keras"
    path.write_bytes(corpus_bounds.repeat_central(data, "model.weights.h5", 100))
    with pytest.raises(InputError, match="is listed twice"):
        read_model(path)


# --------------------------------------------------------------- 4. memory amplification


def _real_state() -> dict[str, Any]:
    import torch

    return torch.load(SAMPLES / "digits_cnn.pt", weights_only=True)


def test_real_checkpoint_repacked_as_overlapping_views_is_refused(tmp_path: Path) -> None:
    """digits_cnn.pt's largest tensor, viewed 2,000 times one element apart: each view fits
    the file, together they are 2,000 times it."""
    import torch

    state = _real_state()
    big = max(state.values(), key=lambda t: t.numel()).reshape(-1)
    n = big.numel() - 2_000
    views = {f"view{i}": big[i : i + n] for i in range(2_000)}
    path = tmp_path / "views.pt"
    torch.save(views, path)
    assert path.stat().st_size < 2 * big.numel() * 4 + 300_000
    with pytest.raises(InputError, match="bytes of data can hold"):
        read_model(path)


def test_real_checkpoint_with_tied_weights_reads(tmp_path: Path) -> None:
    """Every tensor of digits_cnn.pt under two names, the same view (tied weights): both read,
    counted once."""
    import torch

    state = _real_state()
    tied = {**state, **{f"tied.{k}": v for k, v in state.items()}}
    torch.save(tied, tmp_path / "tied.pt")
    model = read_model(tmp_path / "tied.pt")
    assert set(model.tensors) == set(tied)
    for name, value in state.items():
        assert np.array_equal(model.tensors[f"tied.{name}"], value.numpy())


def _external_onnx(tmp_path: Path, copies: int) -> Path:
    """digits_cnn.onnx with its initializers in one external file, plus ``copies`` more
    initializers naming the largest one's bytes."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load(str(SAMPLES / "digits_cnn.onnx"))
    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    onnx.save(model, str(tmp_path / "honest.onnx"))
    model = onnx.load(str(tmp_path / "honest.onnx"), load_external_data=False)
    largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    for i in range(copies):
        copy = model.graph.initializer.add()
        copy.CopyFrom(largest)
        copy.name = f"copy{i}"
    path = tmp_path / "shared.onnx"
    onnx.save(model, str(path))
    return path


def test_real_onnx_external_data_read_many_times_is_refused(tmp_path: Path) -> None:
    path = _external_onnx(tmp_path, copies=500)
    honest = read_model(tmp_path / "honest.onnx")  # the same data, each region once: reads
    assert honest.param_count == read_model(SAMPLES / "digits_cnn.onnx").param_count
    with pytest.raises(InputError, match="bytes of data can hold"):
        read_model(path)


def test_real_keras_double_deflate_is_bounded_over_the_model(tmp_path: Path) -> None:
    """lenet300_100.keras with each weight replaced by 64 times as many zeros, gzip-filtered
    inside model.weights.h5, which is deflated again: each dataset passes its own 1024x check,
    the model as a whole unpacks to far more than 1032 times the file."""
    source = SAMPLES / "lenet300_100.keras"
    with zipfile.ZipFile(source) as archive:
        members = {i.filename: archive.read(i) for i in archive.infolist()}
    weights = tmp_path / "w.h5"
    with h5py.File(io.BytesIO(members["model.weights.h5"])) as src, h5py.File(weights, "w") as f:

        def copy(name: str, node: Any) -> None:
            if isinstance(node, h5py.Dataset):
                big = (64 * node.shape[0], *node.shape[1:])
                chunks = (min(4096, big[0]), *big[1:])
                node = f.create_dataset(name, data=np.zeros(big, np.float32), chunks=chunks,
                                        compression="gzip", compression_opts=9)  # fmt: skip
            else:
                node = f.require_group(name)
            node.attrs.update(src[name].attrs)

        f.attrs.update(src.attrs)
        src.visititems(copy)
    members["model.weights.h5"] = weights.read_bytes()
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in members.items():
            out.writestr(name, data, compresslevel=9)
    with pytest.raises(InputError, match="bytes of data can hold"):
        read_model(path)


# ------------------------------------------------------------------------ 6. malformed .dcz


@pytest.fixture(scope="module")
def real_dcz(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """digits_cnn.pt compressed by the real compressor."""
    from inspector.model.settings import ModelSettings
    from inspector.tasks.codec import ModelCodec, compress
    from inspector.tasks.drive import run_to_end

    out = tmp_path_factory.mktemp("dcz") / "digits.dcz"
    run_to_end(compress(ModelCodec(read_model(SAMPLES / "digits_cnn.pt")), ModelSettings(), out))
    return out.read_bytes()


def test_real_dcz_with_duplicate_names_is_refused_up_front(tmp_path: Path, real_dcz: bytes):
    records, payloads = corpus_bounds.dcz_parts(real_dcz)
    records[-1] = dataclasses.replace(records[-1], name=records[0].name)
    path = tmp_path / "dups.dcz"
    path.write_bytes(corpus_bounds.dcz_from(records, payloads, real_dcz[4]))
    with pytest.raises(InputError, match="two layers are named"):
        container.open_container(path)


def test_real_dcz_past_the_summed_memory_bound_is_refused(
    tmp_path: Path, real_dcz: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory enough for any one layer, not for all of them together."""
    path = tmp_path / "real.dcz"
    path.write_bytes(real_dcz)
    records = container.open_container(path).records
    total = sum(4 * r.size if r.deep else r.size * r.itemsize for r in records)  # all float32
    memory = 2 * total - 1
    assert all(8 * r.size <= memory for r in records)  # each layer alone passes
    monkeypatch.setattr(container, "memory_nbytes", lambda: memory)
    with pytest.raises(InputError, match="memory budget"):
        container.open_container(path)
    monkeypatch.setattr(container, "memory_nbytes", lambda: 4 * total)
    assert len(container.open_container(path).read_all()) == len(records)


def test_real_dcz_with_each_deep_field_shifted_is_refused_up_front(
    tmp_path: Path, real_dcz: bytes
) -> None:
    """Every deep layer's survivors, entries or weight stream length moved by one: each
    disagrees with the payload, and opening the file (before any table is shown) says so."""
    records, payloads = corpus_bounds.dcz_parts(real_dcz)
    deep = [i for i, r in enumerate(records) if r.deep is not None]
    assert deep
    path = tmp_path / "shifted.dcz"
    refused = 0
    for i in deep:
        d = records[i].deep
        assert d is not None
        lay = d.layout
        for edit in (
            {"survivors": d.survivors - 1 if d.survivors else 1},
            {"layout": dataclasses.replace(lay, entries=lay.entries + 1)},
            {"layout": dataclasses.replace(lay, weight_nbytes=lay.weight_nbytes + 1)},
        ):
            changed = list(records)
            changed[i] = dataclasses.replace(records[i], deep=dataclasses.replace(d, **edit))
            path.write_bytes(corpus_bounds.dcz_from(changed, payloads, real_dcz[4]))
            with pytest.raises(InputError):
                container.open_container(path)
            refused += 1
    assert refused == 3 * len(deep)
