"""The storages of torch's zip archives, checked against their tensor records and read by numpy.

:mod:`inspector.io.torch_pickle` turns an archive's pickle into tensor records without running
anything; this module reads the bytes they point at. Every record is checked against its
storage before a byte is touched: no negative offset or strides, the view within the storage,
sparse indices within the dense shape. A member stored as is is mapped from the file
(copy-on-write, as torch maps it); a deflate-compressed one is inflated through :mod:`zipfile`,
never past the size its record claims.
"""

from __future__ import annotations

import mmap
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from inspector.io.torch_pickle import (
    NUMPY_DTYPES,
    BadRecord,
    SparseRef,
    StorageRef,
    TensorRef,
    itemsize,
    unpickle,
)


class Storages:
    """The ``data/<key>`` members of one archive, each read once and checked against its record.

    A stored (uncompressed) member is a copy-on-write map of the file, as torch maps it; any
    other member is inflated through :mod:`zipfile` (which checks its CRC-32), never past the
    size the record claims.
    """

    def __init__(self, path: Path, archive: zipfile.ZipFile, folder: str, big_endian: bool):
        self._path, self._archive, self._folder = path, archive, folder
        self._big = big_endian
        self._bytes: dict[str, np.ndarray] = {}
        self._map: mmap.mmap | None = None

    def raw(self, ref: StorageRef) -> np.ndarray:
        """The storage's bytes as a uint8 array of exactly ``ref.nbytes``."""
        if ref.key not in self._bytes:
            self._bytes[ref.key] = self._read(ref)
        buf = self._bytes[ref.key]
        if buf.size != ref.nbytes:
            raise BadRecord(f"storage {ref.key!r} is named with {ref.nbytes} and {buf.size} bytes")
        return buf

    def _read(self, ref: StorageRef) -> np.ndarray:
        name = f"{self._folder}{ref.key}"
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise BadRecord(f"storage {ref.key!r} has no member {name}") from None
        if info.file_size != ref.nbytes:
            raise BadRecord(
                f"storage {ref.key!r} claims {ref.nbytes} bytes, its member holds {info.file_size}"
            )
        if info.compress_type == zipfile.ZIP_STORED and ref.nbytes:
            return self._mapped(info)
        with self._archive.open(info) as member:
            data = member.read(ref.nbytes + 1)
        if len(data) != ref.nbytes:
            raise BadRecord(f"storage {ref.key!r} inflates to {len(data)} bytes, not {ref.nbytes}")
        return np.frombuffer(bytearray(data), np.uint8)

    def _mapped(self, info: zipfile.ZipInfo) -> np.ndarray:
        if self._map is None:
            with self._path.open("rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        head = self._map[info.header_offset : info.header_offset + 30]
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            raise BadRecord(f"member {info.filename} has no local header")
        name_len, extra_len = struct.unpack_from("<HH", head, 26)
        start = info.header_offset + 30 + name_len + extra_len
        if start + info.file_size > len(self._map):
            raise BadRecord(f"member {info.filename} runs past the end of the file")
        return np.frombuffer(self._map, np.uint8, info.file_size, start)

    def array(self, ref: TensorRef) -> tuple[np.ndarray, str]:
        """The tensor as a numpy array (widened where numpy lacks its dtype), and its dtype."""
        check_strided(ref)
        raw = self.raw(ref.storage)
        size = itemsize(ref.dtype)
        if ref.numel == 0:
            return _widen(np.zeros(0, np.uint8), ref.dtype, self._big).reshape(ref.shape), ref.dtype
        if ref.storage.dtype is not None and itemsize(ref.storage.dtype) != size:
            raise BadRecord(f"a {ref.dtype} tensor views a {ref.storage.dtype} storage")
        if raw.size % size:
            raise BadRecord(f"storage {ref.storage.key!r} is not whole {ref.dtype} elements")
        elements = raw.size // size
        if _extent(ref) > elements:
            raise BadRecord(
                f"shape {list(ref.shape)}, strides {list(ref.stride)} and offset {ref.offset} "
                f"reach element {_extent(ref)} of a {elements}-element storage"
            )
        items = raw.view(f"V{size}") if size > 1 else raw.view("V1")
        view = np.lib.stride_tricks.as_strided(
            items[ref.offset :], ref.shape, tuple(s * size for s in ref.stride), writeable=False
        )
        flat = np.ascontiguousarray(view).reshape(-1).view(np.uint8)
        return _widen(flat, ref.dtype, self._big).reshape(ref.shape), ref.dtype


def _extent(ref: TensorRef) -> int:
    """One past the last storage element the view reaches (0 for an empty tensor)."""
    if ref.numel == 0:
        return 0
    return ref.offset + 1 + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))


def check_strided(ref: TensorRef) -> None:
    """Refuse a negative offset or strides (a view reaching before its storage)."""
    if ref.offset < 0:
        raise BadRecord(f"negative storage offset {ref.offset}")
    if any(s < 0 for s in ref.stride):
        raise BadRecord(f"negative strides {list(ref.stride)}")


def _widen(raw: np.ndarray, dtype: str, big: bool) -> np.ndarray:
    """Contiguous bytes of ``dtype`` as an array numpy can hold (exact widening)."""
    order = ">" if big else "<"
    if dtype == "bool":
        return raw != 0  # torch reads any nonzero byte as True
    if dtype in NUMPY_DTYPES:
        return raw.view(np.dtype(dtype).newbyteorder(order)).astype(np.dtype(dtype), copy=False)
    if dtype == "bfloat16":
        bits = raw.view(np.dtype("u2").newbyteorder(order)).astype(np.uint32) << 16
        return bits.view(np.float32)
    import torch  # float8 and complex32: torch's own conversion of validated bytes

    if big and dtype == "complex32":
        raw = raw.view(">u2").astype("<u2").view(np.uint8)
    tensor = torch.from_numpy(raw.copy()).view(getattr(torch, dtype))
    wide = torch.complex64 if dtype == "complex32" else torch.float32
    return tensor.to(wide).numpy()


def dense(storages: Storages, ref: SparseRef) -> np.ndarray:
    """A sparse tensor made dense, after checking every index against its shape."""
    parts = [storages.array(p)[0] for p in ref.parts]
    shape = ref.shape
    if ref.layout == "sparse_coo":
        indices, values = parts
        if indices.ndim != 2 or indices.dtype != np.int64 or indices.shape[1] != values.shape[0]:
            raise BadRecord("a sparse COO tensor's indices and values disagree in shape")
        sparse_dims = indices.shape[0]
        if sparse_dims > len(shape) or tuple(values.shape[1:]) != shape[sparse_dims:]:
            raise BadRecord("a sparse COO tensor's values disagree with its shape")
        _check_range(indices, shape[:sparse_dims])
        out = np.zeros(shape, values.dtype)
        np.add.at(out, tuple(indices), values)  # uncoalesced duplicates add, as in torch
        return out
    compressed, plain, values = parts
    if len(shape) != 2 or compressed.ndim != 1 or plain.ndim != 1 or values.ndim != 1:
        raise BadRecord(f"only 2-D {ref.layout} tensors without batch dims are supported")
    rows, cols = shape if ref.layout == "sparse_csr" else shape[::-1]
    if compressed.size != rows + 1 or plain.size != values.size or compressed.dtype.kind != "i":
        raise BadRecord(f"a {ref.layout} tensor's index arrays disagree with its shape")
    steps = np.diff(compressed)
    if compressed[0] != 0 or compressed[-1] != values.size or (steps < 0).any():
        raise BadRecord(f"a {ref.layout} tensor's compressed indices are not 0..nnz ascending")
    _check_range(plain.reshape(1, -1), (cols,))
    out = np.zeros((rows, cols), values.dtype)
    np.add.at(out, (np.repeat(np.arange(rows), steps), plain), values)
    return out if ref.layout == "sparse_csr" else np.ascontiguousarray(out.T)


def _check_range(indices: np.ndarray, shape: tuple[int, ...]) -> None:
    if indices.dtype.kind not in "iu":
        raise BadRecord("sparse indices are not integers")
    for dim, size in enumerate(shape):
        row = indices[dim]
        if row.size and (row.min() < 0 or row.max() >= size):
            raise BadRecord(
                f"sparse indices {int(row.min())}..{int(row.max())} fall outside dimension "
                f"{dim} of size {size}"
            )


# ------------------------------------------------------------------------- the archive

#: The newest zip archive version torch itself reads (caffe2's kMaxSupportedFileFormatVersion).
MAX_VERSION = 10


def archive_folder(archive: zipfile.ZipFile) -> str:
    """The folder every member of a torch archive lives in (``"model/"``)."""
    names = archive.namelist()
    if not names or "/" not in names[0]:
        raise BadRecord("not a torch archive (no top-level folder)")
    folder = names[0].split("/", 1)[0] + "/"
    if any(not n.startswith(folder) for n in names):
        raise BadRecord("members outside the archive's folder")
    return folder


def open_records(path: Path, archive: zipfile.ZipFile, member: str) -> tuple[Any, Storages]:
    """Unpickle ``<folder>/<member>`` of a torch archive; the storages its records name.

    Raises
    ------
    CodeRefused
        The pickle names a global outside the allowlist.
    BadRecord
        No such member, an unsupported version or byte order, a malformed record.
    """
    folder = archive_folder(archive)
    names = set(archive.namelist())
    candidates = (f"{folder}version", f"{folder}.data/version")
    version = next((v for v in candidates if v in names), None)
    if version is not None:
        text = archive.read(version)[:32].decode("ascii", "replace").strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_VERSION:
            raise BadRecord(
                f"a PyTorch file with version {text[:20]}, but this reader supports versions 1 "
                f"to {MAX_VERSION}"
            )
    order = b"little"
    if f"{folder}byteorder" in names:
        order = archive.read(f"{folder}byteorder")[:16].strip()
        if order not in (b"little", b"big"):
            raise BadRecord(f"unknown byte order {order[:16]!r}")
    if f"{folder}{member}" not in names:
        raise BadRecord(f"no {member} in the archive")
    records = unpickle(archive.read(f"{folder}{member}"))
    storage_folder = f"{folder}constants/" if member == "constants.pkl" else f"{folder}data/"
    return records, Storages(path, archive, storage_folder, order == b"big")


def read_array(storages: Storages, ref: TensorRef | SparseRef) -> tuple[np.ndarray, str]:
    """The array of a tensor record and its original dtype; sparse ones made dense."""
    if isinstance(ref, SparseRef):
        return dense(storages, ref), ref.dtype
    return storages.array(ref)
