"""Write-back into Keras files: a copy of a ``.keras`` archive or an HDF5 file, weights replaced.

A ``.keras`` archive is copied member by member, every member unchanged except
``model.weights.h5``, which is unpacked to a scratch file beside the target, updated and packed
back in its place. An HDF5 file (legacy ``model.save("m.h5")``, Keras 3 ``.weights.h5``) is
copied whole and updated. Updating overwrites the values of the named datasets in place, so each
keeps its dtype, shape, storage and attributes; config, optimizer state and assets stay as they
were, and Keras loads the copy as it loaded the source.

The HDF5 work runs in a child process (:func:`~inspector.io.isolated.read_isolated`), as reading
does. ``write_back`` has read the source in a child already, but writing runs HDF5 code a read
never reaches (and the file may have changed since): a damaged file that crashes HDF5 there must
not take the app down. The new values reach the child in an uncompressed ``.npz`` in a scratch
folder beside the target, which costs one extra write of the weights and a quarter of a second.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import InputError
from inspector.format.dtypes import bfloat16_bits
from inspector.io import isolated, keras_file
from inspector.io.keras_layout import weight_entries
from inspector.io.model_file import LoadedModel
from inspector.io.registry import rewriter

_CHUNK = 1 << 20  # bytes per read when copying zip members


@rewriter(format="keras")
def rewrite_keras(source: Path, target: Path, tensors: Mapping[str, np.ndarray]) -> None:
    """Write to ``target`` a copy of Keras file ``source`` with ``tensors`` replaced.

    Parameters
    ----------
    source : Path
        A ``.keras`` archive or a Keras HDF5 file that :func:`~inspector.io.read_model` reads.
    target : Path
        Where the copy goes (a temporary file of :func:`~inspector.io.write_back`).
    tensors : mapping of str to ndarray
        New values by reader name, with the shapes the source stores; cast to the stored dtype.

    Raises
    ------
    InputError
        A complex tensor, or the child found a name, shape or dataset it cannot write, or
        crashed or timed out on a damaged source. The problem names no file: the caller adds it.
    """
    names = list(tensors)
    for name in names:
        if tensors[name].dtype.kind == "c":
            raise InputError(f"tensor {name!r} is complex; Keras weights are real")
    nbytes = source.stat().st_size + sum(int(tensors[n].nbytes) for n in names)
    # Copying and updating each pass over the data once.
    timeout = isolated.BASE_TIMEOUT + 2 * nbytes / isolated.BYTES_PER_SECOND
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as folder:
        scratch = Path(folder).absolute()
        values = scratch / "values.npz"
        np.savez(values, **{f"t{i}": np.asarray(tensors[n]) for i, n in enumerate(names)})
        spec = {"source": source, "target": target, "scratch": scratch, "values": values}
        job = scratch / "job.json"
        job.write_text(json.dumps({**{k: os.path.abspath(v) for k, v in spec.items()},
                                   "names": names}))  # fmt: skip
        try:
            done = isolated.read_isolated(run_job, job, library="HDF5", timeout=timeout)
        except InputError as exc:
            raise InputError(f"cannot write a copy of {source.name}: {exc.problem}") from None
    if done.metadata.get("written") != str(len(names)):
        raise InputError(f"cannot write a copy of {source.name}: the writer stopped short")


def run_job(job: Path) -> LoadedModel:
    """Child side of :func:`rewrite_keras`: do the job ``job`` describes.

    Returns
    -------
    LoadedModel
        No tensors; ``metadata["written"]`` counts the datasets written.
    """
    spec = json.loads(job.read_text())
    names = [str(n) for n in spec["names"]]
    with np.load(spec["values"], allow_pickle=False) as values:
        tensors = _Values(names, values)
        count = rewrite_keras_here(
            Path(spec["source"]), Path(spec["target"]), tensors, Path(spec["scratch"])
        )
    return LoadedModel.build(str(job), "keras", {}, metadata={"written": str(count)})


class _Values(Mapping[str, np.ndarray]):
    """The job's tensors by name, each read from the ``.npz`` only when asked for."""

    def __init__(self, names: list[str], npz: Any) -> None:
        self._keys = {name: f"t{i}" for i, name in enumerate(names)}
        self._npz = npz

    def __getitem__(self, name: str) -> np.ndarray:
        return np.asarray(self._npz[self._keys[name]])

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def rewrite_keras_here(
    source: Path, target: Path, tensors: Mapping[str, np.ndarray], scratch: Path | None = None
) -> int:
    """:func:`rewrite_keras` in this process: only for files known to be intact.

    ``scratch`` is the folder for the unpacked weights of a ``.keras`` archive (default: the
    target's); the parent's scratch folder, so nothing is left behind if the child is killed.

    Returns
    -------
    int
        How many datasets were written.

    Raises
    ------
    InputError
        A name the file lacks, a shape that differs, a dataset that is not plainly the file's
        own, or a damaged archive. Other exceptions come from h5py or zipfile on damaged files.
    """
    if zipfile.is_zipfile(source):
        return _rewrite_archive(source, target, tensors, scratch or target.parent)
    import h5py

    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as f:
        return _update(source, f, keras_file.hdf5_config(f), tensors)


def _rewrite_archive(
    source: Path, target: Path, tensors: Mapping[str, np.ndarray], scratch: Path
) -> int:
    """Copy a ``.keras`` archive member by member, its weights member updated."""
    import h5py

    with zipfile.ZipFile(source) as archive:
        infos = archive.infolist()
        _check_members(source, infos)
        config = keras_file.archive_config(source, archive)
        with _scratch_file(scratch) as weights:
            with archive.open(keras_file.WEIGHTS_MEMBER) as src, weights.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            with h5py.File(weights, "r+") as f:
                count = _update(source, f, config, tensors)
            with zipfile.ZipFile(target, "w") as out:
                out.comment = archive.comment
                for info in infos:
                    if info.filename == keras_file.WEIGHTS_MEMBER:
                        with weights.open("rb") as src:
                            _put_member(out, info, src, weights.stat().st_size)
                    else:
                        with archive.open(info) as src:
                            _put_member(out, info, src, info.file_size)
    return count


def _check_members(source: Path, infos: list[zipfile.ZipInfo]) -> None:
    names = [i.filename for i in infos]
    if keras_file.WEIGHTS_MEMBER not in names:
        raise InputError(f"not a Keras archive (no {keras_file.WEIGHTS_MEMBER})", source)
    if len(set(names)) != len(names):
        raise InputError("the Keras archive holds two members of one name", source)
    size = source.stat().st_size
    for info in infos:  # copying a zip bomb would fill the disk
        keras_file.check_unpacked_size(source, info, size)


def _put_member(out: zipfile.ZipFile, like: zipfile.ZipInfo, data: Any, size: int) -> None:
    """Stream ``data`` into ``out`` as a member named, dated and compressed like ``like``."""
    info = zipfile.ZipInfo(like.filename, like.date_time)
    info.compress_type = like.compress_type
    info.external_attr = like.external_attr
    info.create_system = like.create_system
    info.comment = like.comment
    info.file_size = size  # lets zipfile choose zip64 for a member over 2 GiB
    with out.open(info, "w") as dst:
        shutil.copyfileobj(data, dst, _CHUNK)


@contextmanager
def _scratch_file(folder: Path) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix=".model.weights.", suffix=".h5", dir=folder)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _update(source: Path, f: Any, config: Any, tensors: Mapping[str, np.ndarray]) -> int:
    """Overwrite the datasets of ``tensors`` in the open, writable HDF5 file ``f``."""
    entries = {e.name: e for e in weight_entries(f, config)}
    missing = [name for name in tensors if name not in entries]
    if missing:  # checked before anything is written
        raise InputError(f"the Keras file has no weight {missing[0]!r}", source)
    for name in tensors:
        ds = keras_file.weight_dataset(source, f, entries[name])
        value = tensors[name]
        if value.shape != ds.shape:
            problem = f"tensor {name!r} has shape {value.shape}, the Keras file {ds.shape}"
            raise InputError(problem, source)
        if value.size:
            ds[()] = _stored(value, ds.dtype)
    return len(tensors)


def _stored(value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``value`` in the dtype a dataset stores (rounded, not truncated, into integers)."""
    if keras_file.is_bfloat16(dtype):
        return bfloat16_bits(value).view(dtype)
    if dtype.kind in "iub" and value.dtype.kind == "f":
        value = np.rint(value)
    return value.astype(dtype, copy=False)
