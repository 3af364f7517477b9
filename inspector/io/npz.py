"""NumPy ``.npz`` archives of named arrays. Pickled (object) arrays are refused.

Each member's ``.npy`` header is checked before its data is read: the shape it claims must
account for exactly the bytes the member holds, so a hostile header cannot make numpy allocate
more than the archive can unpack to.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import numpy as np

from inspector.errors import InputError
from inspector.io.budget import Budget
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader, writer
from inspector.io.sniff import zip_first_name
from inspector.io.torch_pickle import code_refusal, pickle_global
from inspector.io.zip_bounds import check_layout

_PICKLED = "contains pickled Python objects, which inspector refuses to load"
# What numpy's own pickle of an object array names: not worth naming as the code it runs.
_NUMPY_OWN = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
              "numpy.ndarray", "numpy.dtype")  # fmt: skip
# Deflate cannot pack more than 1032 bytes into one; a member claiming more is lying.
_DEFLATE_RATIO = 1032
_MAX_HEADER_BYTES = 10_000  # numpy's own default limit for .npy headers


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
        Not a zip archive, a member that is not a ``.npy`` array, a pickled array, a
        non-numeric dtype, a shape that disagrees with the member's size, or a damaged member
        (each member's CRC-32 is checked).
    """
    if not zipfile.is_zipfile(path):
        raise InputError("not a readable .npz archive: no zip directory (truncated?)", path)
    tensors: dict[str, np.ndarray] = {}
    file_nbytes = path.stat().st_size
    budget = Budget(path, file_nbytes, ratio=None)  # deflate: the memory budget only
    try:
        with zipfile.ZipFile(path) as archive:
            check_layout(archive, path, ".npz")
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if name in tensors:
                    raise InputError(f"two arrays are named {name!r}", path)
                budget.take(name, info.file_size)
                tensors[name] = _read_member(archive, info, name, path, file_nbytes)
    except zipfile.BadZipFile as exc:
        raise InputError(f"damaged .npz archive ({exc})", path) from None
    except (EOFError, NotImplementedError, RuntimeError) as exc:  # cut short, odd, encrypted
        raise InputError(f"damaged .npz archive ({exc or type(exc).__name__})", path) from None
    if not tensors:
        raise InputError("contains no arrays", path)
    return LoadedModel.build(str(path), "numpy", tensors)


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, path: Path, file_nbytes: int
) -> np.ndarray:
    if not info.filename.endswith(".npy"):
        raise InputError(f"member {info.filename!r} is not a .npy array", path)
    stored = info.compress_type == zipfile.ZIP_STORED
    # The unpacked size the archive claims sizes numpy's buffer: it must be one it can hold.
    unpacked = info.compress_size if stored else _DEFLATE_RATIO * info.compress_size + 1024
    if info.file_size > unpacked or info.compress_size > file_nbytes:
        raise InputError(
            f"array {name!r} claims {info.file_size} bytes unpacked from {info.compress_size} "
            "packed, more than the archive can hold",
            path,
        )
    with archive.open(info) as member:
        dtype, shape, header_nbytes = _npy_header(member, name, path)
    data_nbytes = math.prod(shape) * dtype.itemsize  # Python ints: cannot overflow
    if header_nbytes + data_nbytes != info.file_size:
        raise InputError(
            f"array {name!r} claims shape {shape} of {dtype} ({data_nbytes} bytes) but its "
            f"member holds {info.file_size - header_nbytes} bytes of data",
            path,
        )
    with archive.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def _npy_header(member: IO[bytes], name: str, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, shape and header size of a ``.npy`` stream, refusing what we cannot read."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(member)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(member, max_header_size=_MAX_HEADER_BYTES)
    except (ValueError, SyntaxError, TypeError) as exc:
        problem = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"array {name!r} has a malformed .npy header ({problem})", path) from None
    if dtype.hasobject:
        # Name what the pickle would call, read without running it: refused as code.
        called = pickle_global(member.read(1 << 20), ignore=_NUMPY_OWN)
        problem = code_refusal(called, "save numeric arrays only") if called else _PICKLED
        raise InputError(f"array {name!r} {problem}", path)
    if dtype.kind not in "biufc":
        raise InputError(f"array {name!r} has unsupported dtype {dtype}", path)
    if any(d < 0 for d in shape):
        raise InputError(f"array {name!r} has a negative dimension {shape}", path)
    return dtype, shape, member.tell()


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
