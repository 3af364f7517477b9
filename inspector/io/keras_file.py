"""Keras weights, read with h5py and zipfile only (Keras is never imported).

Legacy HDF5 files (``model.save("m.h5")``, tf.keras ``save_weights("w.h5")``), Keras 3
``.keras`` archives (a zip of ``metadata.json``, ``config.json`` and ``model.weights.h5``) and
Keras 3 ``.weights.h5`` files. Tensors are named ``<layer>.<variable>`` (``conv.kernel``,
``bn.moving_mean``); :mod:`inspector.io.keras_layout` finds and names them.

HDF5 crashes on some damaged files, so :func:`read_keras` reads in a child process.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import InputError
from inspector.io.budget import DEFLATE_RATIO, Budget
from inspector.io.isolated import read_isolated
from inspector.io.keras_layout import WeightEntry, is_keras3, weight_entries
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader
from inspector.io.sniff import zip_first_name
from inspector.io.zip_bounds import check_layout

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Archive member holding the weights of a ``.keras`` file.
WEIGHTS_MEMBER = "model.weights.h5"
# Keras writes metadata.json first; config.json and the weights follow.
_ARCHIVE_FIRST = frozenset({"metadata.json", "config.json", WEIGHTS_MEMBER})
# Names in the root group's object header or heap, within the first kilobyte of a Keras file.
_LEGACY_MARKERS = (b"keras_version\0", b"layer_names\0", b"model_weights\0")
_V3_MARKERS = (b"layers\0", b"vars\0")
_MAX_JSON_BYTES = 64 << 20


def sniff_keras(head: bytes) -> bool:
    """True for an HDF5 file with Keras structure near its start, or a ``.keras`` archive.

    Other HDF5 files (evaluation data, say) are left to other readers.
    """
    if head.startswith(HDF5_MAGIC):
        return any(m in head for m in _LEGACY_MARKERS) or all(m in head for m in _V3_MARKERS)
    return zip_first_name(head) in _ARCHIVE_FIRST


@reader(name="keras", extensions=(".keras", ".h5", ".hdf5"), sniff=sniff_keras)
def read_keras(path: Path) -> LoadedModel:
    """Read every weight of a Keras file, in the model's layer order.

    The HDF5 library crashes on some damaged files, so the file is read in a child process
    (:func:`~inspector.io.isolated.read_isolated`).

    Returns
    -------
    LoadedModel
        bfloat16 weights are widened to float32 with their dtype recorded. ``metadata`` holds
        ``keras_version``, ``backend`` and ``model_class`` where the file records them, and
        ``keras_layout`` (``"legacy_h5"`` or ``"keras3"``).

    Raises
    ------
    InputError
        Not a Keras file, a damaged file, or weights larger than the file can hold.
    """
    return read_isolated(read_keras_here, path, library="HDF5")


def read_keras_here(path: Path) -> LoadedModel:
    """:func:`read_keras` in this process: only for files known to be intact."""
    with _errors(path), _weights_file(path) as (f, config, metadata, limit):
        entries = weight_entries(f, config)
        tensors: dict[str, np.ndarray] = {}
        dtypes: dict[str, str] = {}
        # Deflate over deflate (gzip datasets in a deflated member) multiplies: one bound on
        # the whole model, against the file on disk, before each dataset is read.
        budget = Budget(path, path.stat().st_size, ratio=DEFLATE_RATIO)
        for entry in entries:
            arr, dtype = _read_dataset(path, f, entry, limit, budget)
            tensors[entry.name] = arr
            if dtype != arr.dtype.name:
                dtypes[entry.name] = dtype
        metadata["keras_layout"] = "keras3" if is_keras3(f) else "legacy_h5"
    if not tensors:
        raise InputError("Keras file holds no weights", path)
    return LoadedModel.build(str(path), "keras", tensors, dtypes, metadata)


def read_weight_entries(path: str | Path) -> tuple[WeightEntry, ...]:
    """The tensor names of a Keras file and the HDF5 datasets holding them, in reading order.

    For writers that put new values back into a copy of the original file. In a ``.keras``
    archive the datasets are inside member :data:`WEIGHTS_MEMBER`. Runs in this process: call
    it only on a file :func:`read_keras` has read.
    """
    path = Path(path)
    with _errors(path), _weights_file(path) as (f, config, _, _):
        return tuple(weight_entries(f, config))


def archive_config(path: Path, archive: zipfile.ZipFile) -> Any:
    """The model config (``config.json``) of an open ``.keras`` archive; None without one.

    Raises
    ------
    InputError
        The member is implausibly large or not JSON.
    """
    return _archive_json(path, archive, "config.json", set(archive.namelist()))


def hdf5_config(f: Any) -> Any:
    """The model config of an open legacy HDF5 file (``model_config``); None if it has none."""
    return _json_attr(f, "model_config")


def weight_dataset(path: Path, f: Any, entry: WeightEntry) -> Any:
    """The h5py dataset holding ``entry``, if it is a plain numeric dataset of the file itself.

    Every step of the dataset's path must be a hard link: soft and external links could lead
    into other files, which a reader must not read and a writer must not write.

    Raises
    ------
    InputError
        The dataset is missing, reached through a link, stored outside the file (virtual
        datasets, external raw storage) or holds strings, compounds and the like.
    """
    import h5py

    node = f
    for part in (p for p in entry.dataset.split("/") if p):
        link = node.get(part, getlink=True) if isinstance(node, h5py.Group) else None
        if link is None:
            raise InputError(f"Keras weight {entry.name!r} is missing ({entry.dataset})", path)
        if not isinstance(link, h5py.HardLink):
            raise InputError(f"Keras weight {entry.name!r} refers to data outside the file", path)
        node = node[part]
    if not isinstance(node, h5py.Dataset):
        raise InputError(f"Keras weight {entry.name!r} is missing ({entry.dataset})", path)
    if node.is_virtual or node.external or node.file.filename != f.filename:
        raise InputError(f"Keras weight {entry.name!r} refers to data outside the file", path)
    if not is_bfloat16(node.dtype) and node.dtype.kind not in "biuf":
        raise InputError(f"Keras weight {entry.name!r} has unsupported dtype {node.dtype}", path)
    return node


def is_bfloat16(dtype: np.dtype) -> bool:
    """Whether an HDF5 dataset's dtype is Keras's bfloat16 (ml_dtypes' type saved as opaque)."""
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.fields is None


@contextmanager
def _errors(path: Path) -> Iterator[None]:
    """Every failure as one InputError naming ``path``."""
    try:
        yield
    except InputError as exc:
        raise (exc if exc.path else InputError(exc.problem, path)) from None
    except Exception as exc:  # h5py and zipfile report damage in many ways
        raise InputError(f"damaged Keras file ({_short(exc)})", path) from exc


# ------------------------------------------------------------------------------------ opening


@contextmanager
def _weights_file(path: Path) -> Iterator[tuple[Any, Any, dict[str, str], int]]:
    """The open HDF5 weights, the model config (or None), metadata, and a byte limit."""
    import h5py

    metadata: dict[str, str] = {}
    config: Any = None
    with path.open("rb") as head:
        zipped = head.read(4) == b"PK\x03\x04"
    if zipped and not zipfile.is_zipfile(path):  # the central directory sits at the end
        raise InputError("truncated or damaged .keras archive (no zip directory)", path)
    if zipped:
        source: Any
        source, config, metadata = _open_archive(path)
        limit = len(source.getbuffer())
    else:
        source, limit = path, path.stat().st_size
    try:
        f = h5py.File(source, "r")
    except OSError as exc:
        raise InputError(f"not a readable HDF5 file ({_short(exc)})", path) from None
    with f:
        if config is None:
            config = _json_attr(f, "model_config")
            metadata.update(_root_metadata(f))
        if isinstance(config, dict) and isinstance(config.get("class_name"), str):
            metadata["model_class"] = config["class_name"]
        yield f, config, metadata, limit


def _open_archive(path: Path) -> tuple[io.BytesIO, Any, dict[str, str]]:
    """The weights member of a ``.keras`` archive (in memory), its config and metadata."""
    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        check_layout(archive, path, "Keras")
        names = set(archive.namelist())
        if WEIGHTS_MEMBER not in names:
            raise InputError(f"not a Keras archive (no {WEIGHTS_MEMBER})", path)
        info = archive.getinfo(WEIGHTS_MEMBER)
        check_unpacked_size(path, info, size)
        config = _archive_json(path, archive, "config.json", names)
        meta = _archive_json(path, archive, "metadata.json", names)
        data = archive.read(WEIGHTS_MEMBER)
    metadata = {}
    if isinstance(meta, dict):
        metadata = {k: str(meta[k]) for k in ("keras_version", "date_saved") if k in meta}
    return io.BytesIO(data), config, metadata


def check_unpacked_size(path: Path, info: zipfile.ZipInfo, archive_nbytes: int) -> None:
    """Refuse a member claiming to unpack to over 1024x the archive: a zip bomb, not a model."""
    if info.file_size > max(archive_nbytes, info.compress_size) * 1024:
        raise InputError(f"{info.filename} claims {info.file_size} bytes unpacked", path)


def _archive_json(path: Path, archive: zipfile.ZipFile, name: str, names: set[str]) -> Any:
    if name not in names:
        return None
    if archive.getinfo(name).file_size > _MAX_JSON_BYTES:
        raise InputError(f"{name} of the Keras archive is implausibly large", path)
    try:
        return json.loads(archive.read(name))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"malformed {name} in the Keras archive ({_short(exc)})", path) from None


def _root_metadata(f: Any) -> dict[str, str]:
    out = {}
    for key in ("keras_version", "backend"):
        value = f.attrs.get(key)
        if value is not None:
            out[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return out


def _json_attr(f: Any, key: str) -> Any:
    value = f.attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return None  # the config only improves names; the weights are still readable


# -------------------------------------------------------------------------------- the values


def _read_dataset(
    path: Path, f: Any, entry: WeightEntry, limit: int, budget: Budget
) -> tuple[np.ndarray, str]:
    """One dataset as a numpy array and its stored dtype name (bfloat16 widened to float32)."""
    ds = weight_dataset(path, f, entry)
    dtype = ds.dtype
    bfloat16 = is_bfloat16(dtype)
    nbytes = int(np.prod(ds.shape, dtype=object)) * dtype.itemsize
    stored = ds.id.get_storage_size()
    # Unfiltered data must fit in the file; compressed data may unpack to 1024x its size.
    if nbytes > (limit if ds.compression is None else 1024 * stored) or stored > limit:
        raise InputError(
            f"Keras weight {entry.name!r} claims shape {ds.shape} ({nbytes} bytes), more than "
            f"the file holds",
            path,
        )
    budget.take(entry.name, nbytes, 2 * nbytes if bfloat16 else nbytes)
    arr = np.asarray(ds[()])
    if bfloat16:  # Keras stores ml_dtypes' bfloat16 as a 2-byte opaque type
        bits = arr.view("<u2").astype("<u4") << 16
        return bits.view("<f4").astype(np.float32), "bfloat16"
    return arr, arr.dtype.name


def _short(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
