"""NumPy ``.npz`` archives of named arrays. Pickled (object) arrays are refused."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader, writer
from inspector.io.sniff import zip_first_name

_PICKLED = "contains pickled Python objects, which inspector refuses to load"


def sniff_npz(head: bytes) -> bool:
    """True for a zip archive whose first member is a ``.npy`` array."""
    name = zip_first_name(head)
    return name is not None and name.endswith(".npy")


@reader(name="numpy", extensions=(".npz",), sniff=sniff_npz)
def read_npz(path: Path) -> LoadedModel:
    """Read every array of an ``.npz`` archive, in archive order.

    Raises
    ------
    InputError
        Not a zip archive, a pickled array, or a non-numeric dtype.
    """
    if not zipfile.is_zipfile(path):
        raise InputError("not an .npz archive (a zip of .npy files)", path)
    tensors: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as archive:
        for name in archive.files:
            try:
                arr = archive[name]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise InputError(f"array {name!r} {_PICKLED}", path) from None
                raise
            if arr.dtype.kind not in "biufc":
                raise InputError(f"array {name!r} has unsupported dtype {arr.dtype}", path)
            tensors[name] = arr
    if not tensors:
        raise InputError("contains no arrays", path)
    return LoadedModel.build(str(path), "numpy", tensors)


def _numpy_dtype(name: str | None) -> np.dtype | None:
    """The numpy dtype called ``name``, or None when numpy has none (bfloat16, float8).

    Libraries such as onnx (via ml_dtypes) register "bfloat16" with numpy as a non-numeric
    type that ``.npz`` readers (ours included) refuse: such a dtype counts as none.
    """
    if name is None:
        return None
    try:
        dtype = np.dtype(name)
    except TypeError:
        return None
    return dtype if dtype.kind in "biufc" else None


@writer(name="numpy", extensions=(".npz",))
def write_npz(
    path: Path,
    tensors: Mapping[str, np.ndarray],
    dtypes: Mapping[str, str],
    metadata: Mapping[str, str],
) -> None:
    """Write an uncompressed ``.npz`` as ``np.savez`` does.

    Original dtypes numpy knows (float16, float64...) are restored; bfloat16 and float8 stay
    float32 because numpy cannot hold them. ``metadata`` is not stored.
    """
    # Written member by member rather than via np.savez(**tensors), whose own keyword
    # arguments ("file", "allow_pickle") would collide with tensors of those names.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, arr in tensors.items():
            target = _numpy_dtype(dtypes.get(name))
            if target is not None:
                arr = np.asarray(arr).astype(target, copy=False)
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
