"""Evaluation data from HDF5 and .npz: layouts, scale, and every way a file can be wrong."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from inspector.errors import InputError
from inspector.runtime.eval_data import EvalData, EvalInputs, read_eval_data, read_eval_inputs

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, size=(50, 12), dtype=np.uint8)
LABELS = RNG.integers(0, 10, size=50).astype(np.int64)


def write_h5(
    path: Path,
    scale_on: str | None = None,
    names: tuple[str, str] = ("inputs", "labels"),
    compression: str | None = "gzip",
) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset(names[0], data=PIXELS, compression=compression)
        f.create_dataset(names[1], data=LABELS.astype(np.uint8))
        f.attrs["source"] = "unit test digits"
        if scale_on == "file":
            f.attrs["scale"] = 1 / 255
        elif scale_on == "inputs":
            f[names[0]].attrs["scale"] = np.float64(1 / 255)
            f.attrs["scale"] = 1000.0  # the dataset's own attribute wins
    return path


def expect_error(path: Path, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        read_eval_data(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_hdf5(tmp_path: Path) -> None:
    data = read_eval_data(write_h5(tmp_path / "d.h5"))
    assert isinstance(data, EvalData)
    assert data.inputs.dtype == np.float32 and data.inputs.shape == (50, 12)
    np.testing.assert_array_equal(data.inputs, PIXELS.astype(np.float32))
    assert data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.labels, LABELS)
    assert data.count == 50
    assert data.source == "unit test digits"
    assert data.path == str(tmp_path / "d.h5")


@pytest.mark.parametrize("scale_on", ["file", "inputs"])
def test_hdf5_scale(tmp_path: Path, scale_on: str) -> None:
    data = read_eval_data(write_h5(tmp_path / "d.hdf5", scale_on))
    np.testing.assert_array_equal(data.inputs, PIXELS.astype(np.float32) * np.float32(1 / 255))
    assert data.inputs.max() <= 1.0


def test_hdf5_x_y_names(tmp_path: Path) -> None:
    data = read_eval_data(write_h5(tmp_path / "d.h5", names=("x", "y"), compression=None))
    np.testing.assert_array_equal(data.labels, LABELS)


def test_npz(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez_compressed(path, x=PIXELS, y=LABELS, scale=np.float32(0.5), source=np.array("npz"))
    data = read_eval_data(path)
    np.testing.assert_array_equal(data.inputs, PIXELS.astype(np.float32) * 0.5)
    np.testing.assert_array_equal(data.labels, LABELS)
    assert data.source == "npz"


def test_format_is_sniffed_not_named(tmp_path: Path) -> None:
    h5 = write_h5(tmp_path / "really_h5.data")
    npz = save_npz(tmp_path / "really_npz.h5", inputs=PIXELS, labels=LABELS)
    assert read_eval_data(h5).count == 50
    assert read_eval_data(npz).count == 50


def bad_h5(path: Path, **datasets: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[name] = value
    return path


@pytest.mark.parametrize(
    ("datasets", "match"),
    [
        ({"inputs": PIXELS}, "needs datasets 'inputs' and 'labels'"),
        ({"inputs": PIXELS, "labels": LABELS[:, None]}, "must be 1-D"),
        ({"inputs": PIXELS, "labels": LABELS.astype(np.float32)}, "integer class labels"),
        ({"inputs": PIXELS, "labels": LABELS[:49]}, "50 inputs but 49 labels"),
        ({"inputs": PIXELS[:0], "labels": LABELS[:0]}, "no examples"),
        ({"inputs": PIXELS, "labels": LABELS - 20}, "labels must be >= 0"),
        ({"inputs": PIXELS[:, 0], "labels": LABELS}, r"must be \[N, \.\.\.\]"),
        ({"inputs": np.array([b"a"] * 50), "labels": LABELS}, "must be numeric"),
    ],
    ids=["no-labels", "labels-2d", "float-labels", "count", "empty", "negative", "1d", "bytes"],
)
def test_bad_hdf5(tmp_path: Path, datasets: dict[str, np.ndarray], match: str) -> None:
    expect_error(bad_h5(tmp_path / "bad.h5", **datasets), match)


@pytest.mark.parametrize("scale", ["abc", np.nan, np.array([1.0, 2.0])], ids=["text", "nan", "two"])
def test_bad_scale(tmp_path: Path, scale: object) -> None:
    path = write_h5(tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        f.attrs["scale"] = scale
    expect_error(path, "scale must be one finite number")


def test_unallocated_dataset_claiming_too_much(tmp_path: Path) -> None:
    """A dataset that was never written costs no storage but would allocate its full size."""
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("inputs", shape=(200_000, 784), dtype=np.uint8)  # 157 MB, not stored
        f.create_dataset("labels", shape=(200_000,), dtype=np.int64)
    assert path.stat().st_size < 100_000
    expect_error(path, "claims 156,800,000 bytes but the file can hold only")


def test_beyond_the_evaluation_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("inputs", shape=(1 << 21, 1 << 10), dtype=np.uint8, chunks=(1, 1024))
        f.create_dataset("labels", shape=(1 << 21,), dtype=np.int64, chunks=(1024,))
    expect_error(path, "more than inspector evaluates at once")


def test_data_in_another_file_is_refused(tmp_path: Path) -> None:
    other = write_h5(tmp_path / "other.h5")
    path = tmp_path / "linked.h5"
    with h5py.File(path, "w") as f:
        f["inputs"] = h5py.ExternalLink(str(other), "inputs")
        f["labels"] = LABELS
    expect_error(path, "'inputs' keeps its data in another file")
    raw = tmp_path / "raw.bin"
    raw.write_bytes(PIXELS.tobytes())
    path = tmp_path / "external.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("inputs", shape=PIXELS.shape, dtype=np.uint8, external=[(raw, 0, 600)])
        f["labels"] = LABELS
    expect_error(path, "'inputs' keeps its data in another file")


def npz_with_lying_header(path: Path) -> Path:
    """An .npz whose ``inputs`` header claims a million rows but holds one."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (1_000_000, 12)}
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inputs.npy", header.getvalue() + PIXELS[:1].tobytes())
        with archive.open("labels.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(1_000_000, np.int64))
    return path


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    with path.open("wb") as f:  # a file object stops np.savez from renaming the file
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return path


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "make", "match"),
    [
        ("d.npz", npz_with_lying_header, "claims 12,000,000 bytes but the file can hold only"),
        ("d.npz", lambda p: save_npz(p, inputs=PIXELS), "needs arrays 'inputs' and 'labels'"),
        ("d.npz", lambda p: save_npz(p, inputs=PIXELS.astype(object), labels=LABELS),
         "'inputs' must be numeric, not object"),
        ("d.npz", lambda p: write(p, b"PK\x03\x04 broken"), "not a readable .npz"),
        ("d.h5", lambda p: write(p, b"\x89HDF\r\n\x1a\n broken"), "not a readable HDF5"),
        ("d.csv", lambda p: write(p, b"inputs,labels\n"), "unsupported evaluation data"),
    ],
    ids=["lying-header", "no-labels", "pickled", "bad-zip", "bad-hdf5", "csv"],
)
def test_bad_files(tmp_path: Path, name: str, make: Callable[[Path], Path], match: str) -> None:
    expect_error(make(tmp_path / name), match)


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nowhere.h5", "no such file")


def test_damaged_hdf5_is_one_error_or_a_read_never_a_crash(tmp_path: Path) -> None:
    """The HDF5 library is read in a child process: flips in its metadata cannot take the
    reader (or the app) down."""
    good = tmp_path / "good.h5"
    with h5py.File(good, "w") as f:
        f.create_dataset("inputs", data=np.arange(60, dtype=np.uint8).reshape(20, 3))
        f.create_dataset("labels", data=np.arange(20) % 3)
    raw = good.read_bytes()
    rng = np.random.default_rng(0)
    for offset in sorted(rng.choice(min(len(raw), 2048), 8, replace=False)):
        bad = bytearray(raw)
        bad[offset] ^= 0xFF
        path = tmp_path / f"flip{offset}.h5"
        path.write_bytes(bytes(bad))
        try:
            data = read_eval_data(path)
        except InputError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        else:
            assert data.count == 20


# ---------------------------------------------------------------------- inputs without labels


def test_inputs_without_labels(tmp_path: Path) -> None:
    h5 = bad_h5(tmp_path / "x.h5", inputs=PIXELS)
    with h5py.File(h5, "a") as f:
        f["inputs"].attrs["scale"] = 0.5
    npz = save_npz(tmp_path / "x.npz", x=PIXELS)
    npy = tmp_path / "x.npy"
    np.save(npy, PIXELS)
    for path, factor in ((h5, 0.5), (npz, 1.0), (npy, 1.0)):
        data = read_eval_inputs(path)
        assert isinstance(data, EvalInputs) and data.labels is None and not data.synthetic
        assert data.count == 50 and data.inputs.dtype == np.float32
        np.testing.assert_array_equal(data.inputs, PIXELS.astype(np.float32) * factor)
    for path in (h5, npz):  # labelled data is still needed where labels are
        with pytest.raises(InputError, match=r"needs (datasets|arrays) 'inputs' and 'labels'"):
            read_eval_data(path)
    with pytest.raises(InputError, match=r"expected HDF5 \(.h5, .hdf5\) or .npz$"):
        read_eval_data(npy)


def test_labels_are_kept_when_present(tmp_path: Path) -> None:
    data = read_eval_inputs(write_h5(tmp_path / "d.h5"))
    np.testing.assert_array_equal(data.labels, LABELS)
    with pytest.raises(InputError, match="must be 1-D"):  # present labels are still checked
        read_eval_inputs(bad_h5(tmp_path / "b.h5", inputs=PIXELS, labels=LABELS[:, None]))
    with pytest.raises(InputError, match=r"needs datasets 'inputs' \(or 'x'\), labels optional"):
        read_eval_inputs(bad_h5(tmp_path / "none.h5", images=PIXELS))


def test_bad_npy(tmp_path: Path) -> None:
    cases = {
        "objects.npy": np.array([{"a": 1}, None], dtype=object),
        "text.npy": np.array(["a", "b"]),
        "flat.npy": np.arange(5, dtype=np.float32),
        "empty.npy": np.zeros((0, 3), np.float32),
    }
    matches = {"objects.npy": "must be numeric", "text.npy": "must be numeric",
               "flat.npy": r"must be \[N, ...\]", "empty.npy": "holds no examples"}
    for name, array in cases.items():
        path = tmp_path / name
        np.save(path, array, allow_pickle=True)
        with pytest.raises(InputError, match=matches[name]) as info:
            read_eval_inputs(path)
        assert str(info.value).startswith(f"{path}: ")
    big = tmp_path / "truncated.npy"
    np.save(big, np.zeros((1000, 10), np.float32))
    big.write_bytes(big.read_bytes()[:2000])
    with pytest.raises(InputError, match="claims 40,000 bytes but the file can hold only"):
        read_eval_inputs(big)
    with pytest.raises(InputError, match="no such file"):
        read_eval_inputs(tmp_path / "missing.npy")
