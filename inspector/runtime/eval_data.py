"""Evaluation data: inputs and integer labels from HDF5 or ``.npz``; or inputs alone.

Layout: a dataset (or array) ``inputs`` of shape ``[N, ...]`` and ``labels`` of shape ``[N]``
(``x``/``y`` are accepted too). :func:`read_eval_data` needs both; :func:`read_eval_inputs`
takes the labels when there are some, and reads a bare ``.npy`` array as inputs (measuring
agreement with the original model needs no labels). An optional ``scale`` (HDF5 attribute of
the file or of ``inputs``; in an ``.npz`` an array named ``scale``) multiplies the inputs after
their cast to float32, so uint8 pixels can be stored as they are and fed as 0..1.

Every size is checked before anything is allocated: a dataset that claims more bytes than its
file could hold is refused instead of being read into memory.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import InputError
from inspector.io.isolated import read_isolated
from inspector.io.model_file import LoadedModel
from inspector.io.zip_bounds import check_layout

#: Largest float32 inputs array a data file may produce.
MAX_INPUT_NBYTES = 4 << 30
#: deflate cannot compress more than ~1032:1; other filters get the same allowance.
MAX_COMPRESSION_RATIO = 1100
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_NAMES = (("inputs", "labels"), ("x", "y"))


@dataclass(frozen=True, slots=True)
class EvalData:
    """Labelled examples to measure top-1 accuracy on.

    Attributes
    ----------
    inputs : ndarray
        float32 ``[N, ...]``, already multiplied by the file's ``scale``.
    labels : ndarray
        int64 ``[N]``, every label >= 0.
    path : str
        The file they came from.
    source : str
        The file's own ``source`` description, or ``""``.
    """

    inputs: np.ndarray
    labels: np.ndarray
    path: str
    source: str

    @property
    def count(self) -> int:
        """Number of examples."""
        return int(self.labels.shape[0])


@dataclass(frozen=True, slots=True)
class EvalInputs:
    """Inputs to run a model on, with labels when the file has them.

    Attributes
    ----------
    inputs : ndarray
        float32 ``[N, ...]``, already multiplied by the file's ``scale``.
    labels : ndarray or None
        int64 ``[N]``, or None: only agreement with the original model can be measured.
    path : str
        The file they came from (``""`` for synthesised inputs).
    source : str
        What they are, for people: the file's ``source``, or how they were synthesised.
    synthetic : bool
        Whether they were made up (:mod:`inspector.runtime.eval_inputs`), not read from a file.
    """

    inputs: np.ndarray
    labels: np.ndarray | None
    path: str
    source: str
    synthetic: bool = False

    @property
    def count(self) -> int:
        """Number of examples."""
        return int(self.inputs.shape[0])


def read_eval_data(path: str | os.PathLike[str]) -> EvalData:
    """Read labelled examples from an HDF5 (``.h5``/``.hdf5``) or ``.npz`` file.

    Raises
    ------
    InputError
        Unreadable file, missing arrays, labels that are not 1-D non-negative integers,
        mismatched or zero counts, a size the file cannot hold, or a bad ``scale``.
    """
    data = _read(Path(path), need_labels=True)
    assert data.labels is not None  # need_labels: a file without labels was refused
    return EvalData(data.inputs, data.labels, data.path, data.source)


def read_eval_inputs(path: str | os.PathLike[str]) -> EvalInputs:
    """Read inputs, and labels if present, from HDF5, ``.npz`` or ``.npy`` (inputs only).

    Raises
    ------
    InputError
        As :func:`read_eval_data`, except that missing labels are no error.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return _read_npy(path)
    return _read(path, need_labels=False)


def _read(path: Path, need_labels: bool) -> EvalInputs:
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a data file", path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    suffix = path.suffix.lower()
    if head.startswith(_ZIP_MAGIC) or (suffix == ".npz" and not head.startswith(_HDF5_MAGIC)):
        return _read_npz(path, need_labels)
    if head.startswith(_HDF5_MAGIC) or suffix in (".h5", ".hdf5"):
        return _read_hdf5(path, need_labels)
    if head.startswith(_NPY_MAGIC) and not need_labels:
        return _read_npy(path)
    expected = "HDF5 (.h5, .hdf5) or .npz" + ("" if need_labels else " or .npy")
    raise InputError(f"unsupported evaluation data; expected {expected}", path)


# ---------------------------------------------------------------------------------- checks


def _check_size(path: Path, name: str, shape: tuple[int, ...], stored: int, limit: int) -> None:
    """Refuse an array of ``shape`` whose float32 copy is too big or whose claimed ``stored``
    bytes exceed ``limit`` (what its file can hold)."""
    count = math.prod(shape)
    if count * 4 > MAX_INPUT_NBYTES:
        raise InputError(
            f"{name!r} holds {count:,} values, more than inspector evaluates at once "
            f"({MAX_INPUT_NBYTES >> 30} GiB as float32)",
            path,
        )
    if stored > limit:
        raise InputError(
            f"{name!r} claims {stored:,} bytes but the file can hold only {limit:,} "
            "(truncated or damaged)",
            path,
        )


def _check_dtypes(path: Path, names: tuple[str, str], inputs: np.dtype,
                  labels: np.dtype | None) -> None:
    if inputs.kind not in "biuf":
        raise InputError(f"{names[0]!r} must be numeric, not {inputs}", path)
    if labels is not None and labels.kind not in "iu":
        raise InputError(f"{names[1]!r} must hold integer class labels, not {labels}", path)


def _check_shapes(path: Path, names: tuple[str, str], inputs: tuple,
                  labels: tuple | None) -> None:
    if labels is not None and len(labels) != 1:
        raise InputError(f"{names[1]!r} must be 1-D, got shape {list(labels)}", path)
    if len(inputs) < 2:
        raise InputError(f"{names[0]!r} must be [N, ...] with N examples, got {list(inputs)}", path)
    if labels is not None and inputs[0] != labels[0]:
        raise InputError(
            f"{inputs[0]:,} inputs but {labels[0]:,} labels; they must match", path
        )
    if inputs[0] < 1:
        raise InputError("holds no examples", path)


def _names(
    path: Path, found: set[str], need_labels: bool, what: str
) -> tuple[tuple[str, str], bool]:
    """The (inputs, labels) names of the first layout present, and whether labels are there."""
    for names in _NAMES:
        if all(k in found for k in names):
            return names, True
    if not need_labels:
        for names in _NAMES:
            if names[0] in found:
                return names, False
    listed = ", ".join(sorted(found)) or "nothing"
    if need_labels:
        wanted = "'inputs' and 'labels' (or 'x' and 'y')"
    else:
        wanted = "'inputs' (or 'x'), labels optional"
    raise InputError(f"needs {what} {wanted}; found {listed}", path)


def _scale(path: Path, value: Any) -> np.float32 | None:
    if value is None:
        return None
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "biuf" or not np.isfinite(array).all():
        raise InputError(f"scale must be one finite number, got {value!r}", path)
    return np.float32(array.reshape(()))


def _finish(
    path: Path, inputs: np.ndarray, labels: np.ndarray | None, scale: np.float32 | None,
    source: str,
) -> EvalInputs:
    if scale is not None:
        inputs *= scale  # in place: inputs is our own float32 copy
    if labels is not None:
        labels = labels.astype(np.int64, copy=False)
        if labels.min() < 0:
            raise InputError(f"labels must be >= 0, found {int(labels.min())}", path)
    return EvalInputs(inputs, labels, str(path), source)


# ---------------------------------------------------------------------------------- HDF5


def _read_hdf5(path: Path, need_labels: bool) -> EvalInputs:
    """In a child process: the HDF5 library can crash on a damaged file (see isolated)."""
    child = hdf5_as_model if need_labels else hdf5_inputs_as_model
    model = read_isolated(child, path, library="HDF5")
    labels = model.tensors.get("labels")
    source = model.metadata.get("source", "")
    return EvalInputs(model.tensors["inputs"], labels, str(path), source)


def hdf5_as_model(path: Path) -> LoadedModel:
    """The child's side of :func:`_read_hdf5`: the data as a two-tensor model."""
    return _as_model(path, _read_hdf5_here(path, need_labels=True))


def hdf5_inputs_as_model(path: Path) -> LoadedModel:
    """As :func:`hdf5_as_model`, for a file whose labels are optional."""
    return _as_model(path, _read_hdf5_here(path, need_labels=False))


def _as_model(path: Path, data: EvalInputs) -> LoadedModel:
    tensors = {"inputs": data.inputs}
    if data.labels is not None:
        tensors["labels"] = data.labels
    return LoadedModel.build(str(path), "eval-data", tensors, metadata={"source": data.source})


def _read_hdf5_here(path: Path, need_labels: bool) -> EvalInputs:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _from_hdf5(path, f, need_labels)
    except InputError:
        raise
    except MemoryError:
        raise InputError("not enough memory to read this data file", path) from None
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError for damaged files
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"not a readable HDF5 file ({reason})", path) from None


def _from_hdf5(path: Path, f: Any, need_labels: bool) -> EvalInputs:
    import h5py

    # Only datasets stored in this file: an external link, external raw storage or a virtual
    # dataset would read other files, whose size no check here bounds.
    def local(name: str) -> bool:
        return isinstance(f.get(name, getlink=True), h5py.HardLink | h5py.SoftLink)

    found = {k for k in f if isinstance(f.get(k), h5py.Dataset)}
    names, labelled = _names(path, found, need_labels, "datasets")
    used = names if labelled else names[:1]
    sets = [f[name] for name in used]
    for name, ds in zip(used, sets, strict=True):
        if not local(name) or ds.is_virtual or ds.external:
            raise InputError(f"{name!r} keeps its data in another file; store it in this one", path)
    x, y = sets[0], (sets[1] if labelled else None)
    _check_dtypes(path, names, x.dtype, None if y is None else y.dtype)
    _check_shapes(path, names, x.shape, None if y is None else y.shape)
    file_nbytes = path.stat().st_size
    for name, ds in zip(used, sets, strict=True):
        filtered = ds.id.get_create_plist().get_nfilters() > 0
        limit = file_nbytes * (MAX_COMPRESSION_RATIO if filtered else 1)
        _check_size(path, name, ds.shape, ds.size * ds.dtype.itemsize, limit)
    inputs = np.empty(x.shape, dtype=np.float32)
    if inputs.size:
        x.read_direct(inputs)  # HDF5 converts to float32 while reading: one copy, not two
    labels = None if y is None else np.asarray(y[()])
    scale = _scale(path, x.attrs.get("scale", f.attrs.get("scale")))
    return _finish(path, inputs, labels, scale, _text(f.attrs.get("source")))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------------------------- npz


def _read_npz(path: Path, need_labels: bool) -> EvalInputs:
    try:
        with zipfile.ZipFile(path) as archive:
            check_layout(archive, path, ".npz")  # repeated or overlapping members: a zip bomb
            return _from_npz(path, archive, need_labels)
    except InputError:
        raise
    except MemoryError:
        raise InputError("not enough memory to read this data file", path) from None
    except Exception as exc:  # BadZipFile, a bad .npy header, a truncated member...
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"not a readable .npz archive ({reason})", path) from None


def _from_npz(path: Path, archive: zipfile.ZipFile, need_labels: bool) -> EvalInputs:
    members = {n.removesuffix(".npy"): n for n in archive.namelist() if n.endswith(".npy")}
    names, labelled = _names(path, set(members), need_labels, "arrays")
    used = names if labelled else names[:1]
    headers = [_npy_header(archive, members[k]) for k in used]
    (x_shape, x_dtype), y = headers[0], (headers[1] if labelled else None)
    _check_dtypes(path, names, x_dtype, None if y is None else y[1])
    _check_shapes(path, names, x_shape, None if y is None else y[0])
    for name, (shape, dtype) in zip(used, headers, strict=True):
        info = archive.getinfo(members[name])
        limit = info.file_size
        if info.compress_type != zipfile.ZIP_STORED:
            limit = min(limit, info.compress_size * MAX_COMPRESSION_RATIO)
        _check_size(path, name, shape, math.prod(shape) * dtype.itemsize, limit)
    read = _npy_reader(archive, members)
    inputs = read(names[0]).astype(np.float32)
    scale = _scale(path, read("scale")) if "scale" in members else None
    source = _text(read("source").item()) if "source" in members else ""
    return _finish(path, inputs, read(names[1]) if labelled else None, scale, source)


def _npy_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(member) as f:
        return _header_of(f)


def _header_of(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(int(n) for n in shape), dtype


def _npy_reader(archive: zipfile.ZipFile, members: dict[str, str]) -> Callable[[str], np.ndarray]:
    def read(name: str) -> np.ndarray:
        with archive.open(members[name]) as f:
            return np.lib.format.read_array(f, allow_pickle=False)

    return read


# ---------------------------------------------------------------------------------- npy


def _read_npy(path: Path) -> EvalInputs:
    """A bare ``.npy`` array of inputs ``[N, ...]`` (no labels, no scale)."""
    names = ("inputs", "labels")
    try:
        with path.open("rb") as f:
            shape, dtype = _header_of(f)
            _check_dtypes(path, names, dtype, None)
            _check_shapes(path, names, shape, None)
            _check_size(path, "inputs", shape, math.prod(shape) * dtype.itemsize,
                        path.stat().st_size)
            f.seek(0)
            inputs = np.lib.format.read_array(f, allow_pickle=False).astype(np.float32)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except MemoryError:
        raise InputError("not enough memory to read this data file", path) from None
    except Exception as exc:  # a bad header, a truncated array, an object array...
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"not a readable .npy array ({reason})", path) from None
    return EvalInputs(inputs, None, str(path), "")
