"""The compressed file: write atomically, open and decode with every byte checked.

Layout: ``MAGIC | version u8 | flags u8 | header length u32 | header | header CRC32 u32 |
[metadata block] | payload of layer 0 | payload of layer 1 | ...`` (little-endian; see
docs/format.md). The metadata block (:mod:`inspector.format.metadata`) is there only when the
source had metadata, flagged in the prefix.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inspector.atomic import atomic_path, same_file
from inspector.errors import InputError
from inspector.format import dtypes, spec, verify
from inspector.format import metadata as meta
from inspector.format.header import LayerRecord
from inspector.format.header_v2 import decode_header, encode_header
from inspector.format.layer_values import values_of
from inspector.format.verify import Symbols, memory_nbytes

#: At most this many bytes of checked symbols are kept from opening a file for the reads
#: that follow (beyond it a read decodes its layer's streams again).
KEEP_NBYTES = 256 << 20


def file_nbytes(records: Sequence[LayerRecord], metadata: Mapping[str, str] | None = None) -> int:
    """Exact size of the file ``write`` would produce for ``records`` (CRC values irrelevant)."""
    return container_nbytes(records, metadata) + sum(r.payload_nbytes for r in records)


def container_nbytes(
    records: Sequence[LayerRecord], metadata: Mapping[str, str] | None = None
) -> int:
    """Bytes of prefix, header, header CRC and metadata block: the container's own overhead."""
    header = len(encode_header(records))
    return spec.PREFIX_NBYTES + header + spec.CRC_NBYTES + metadata_nbytes(metadata)


def metadata_nbytes(metadata: Mapping[str, str] | None) -> int:
    """Bytes the metadata block of ``metadata`` adds (0 for none; ValueError if too large)."""
    return meta.nbytes(metadata or {})


def write(
    path: str | Path,
    records: Sequence[LayerRecord],
    payloads: Iterable[bytes],
    protect: Iterable[str | Path] = (),
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write the container atomically (temp file + rename); return its size in bytes.

    ``metadata`` (the source's strings) goes into the metadata block; none, no block.
    Refuses to write over any path in ``protect`` (the source model), and a file the reader
    would refuse: no layers, a deep-compressed layer without elements, metadata over
    :data:`inspector.format.metadata.MAX_NBYTES`.
    """
    path = Path(path)
    if not records:
        raise InputError("nothing to compress: the model holds no tensors", path)
    for r in records:
        if r.size == 0 and r.lossy:
            raise InputError(f"tensor {r.name!r} has no elements to compress", path)
    for p in protect:
        if path.exists() and same_file(path, p):
            raise InputError("refusing to overwrite the input model", path)
    try:
        block = meta.encode(metadata or {})
    except ValueError as exc:
        raise InputError(str(exc), path) from None
    header = encode_header(records)
    flags = meta.F_METADATA if block else 0
    prefix = spec.MAGIC + bytes([spec.VERSION, flags]) + struct.pack("<I", len(header))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(prefix + header + struct.pack("<I", zlib.crc32(header)) + block)
        for record, payload in zip(records, payloads, strict=True):
            if len(payload) != record.payload_nbytes:
                raise AssertionError(f"payload of {record.name} has the wrong size")
            f.write(payload)
    return path.stat().st_size


def crc(payload: bytes) -> int:
    """The CRC32 a record stores for ``payload``."""
    return zlib.crc32(payload)


def sniff(head: bytes) -> bool:
    """Whether ``head`` starts like one of our files."""
    return head.startswith(spec.MAGIC)


class _Kept:
    """Checked symbols (or a registered method's values) by layer index, at most
    :data:`KEEP_NBYTES` of them (a running total: a file of many layers stays linear)."""

    __slots__ = ("by_index", "nbytes")

    def __init__(self) -> None:
        self.by_index: dict[int, Symbols | np.ndarray] = {}
        self.nbytes = 0

    def keep(self, index: int, symbols: Symbols | np.ndarray) -> None:
        if index not in self.by_index and self.nbytes + symbols.nbytes <= KEEP_NBYTES:
            self.by_index[index] = symbols
            self.nbytes += symbols.nbytes

    def take(self, index: int) -> Symbols | np.ndarray | None:
        symbols = self.by_index.pop(index, None)
        if symbols is not None:
            self.nbytes -= symbols.nbytes
        return symbols


@dataclass(frozen=True, slots=True)
class Container:
    """An opened compressed file: its records and where each payload starts."""

    path: str
    version: int
    records: tuple[LayerRecord, ...]
    offsets: tuple[int, ...]
    nbytes: int
    #: the source model's metadata, from the file's metadata block (empty without one)
    metadata: dict[str, str] = field(default_factory=dict)
    # what each deep layer's up-front check decoded, until its first read takes it
    _checked: _Kept = field(default_factory=lambda: _Kept(), compare=False, repr=False)

    def payload(self, index: int) -> bytes:
        """The stored bytes of layer ``index``, CRC checked: read payloads only through here."""
        rec = self.records[index]
        with open(self.path, "rb") as f:
            f.seek(self.offsets[index])
            payload = f.read(rec.payload_nbytes)
        if len(payload) != rec.payload_nbytes:
            raise InputError(f"layer {rec.name!r} is truncated", self.path)
        if zlib.crc32(payload) != rec.crc:
            raise InputError(f"layer {rec.name!r} is damaged (checksum mismatch)", self.path)
        return payload

    def check_layer(self, index: int) -> None:
        """Refuse layer ``index`` if its payload fails its CRC or disagrees with its record.

        A deep layer's decoded symbols are kept (while they fit :data:`KEEP_NBYTES`) for its
        next :meth:`read_layer`, so opening and reading a file decodes each stream once.
        """
        rec = self.records[index]
        payload = self.payload(index)
        if not rec.lossy:
            return
        try:
            symbols = verify.check_payload(rec, payload)
        except ValueError as exc:
            raise InputError(f"layer {rec.name!r} is inconsistent: {exc}", self.path) from None
        self._checked.keep(index, symbols)

    def read_layer(self, index: int) -> np.ndarray:
        """Decode layer ``index`` to its dtype and shape (CRC checked)."""
        rec = self.records[index]
        checked = self._checked.take(index)
        payload = self.payload(index) if checked is None else b""
        if not rec.lossy:
            values = dtypes.from_bytes(payload, rec.stored_dtype, rec.shape)
            return values if rec.stored is None else values.astype(dtypes.numpy_dtype(rec.dtype))
        # A pruned layer legitimately decodes to far more than its payload (a few bits stand
        # for 2**16 zeros), so only the machine's memory bounds what a small file may ask for.
        needed = rec.size * _DECODE_BYTES_PER_VALUE
        if needed > memory_nbytes():
            problem = (f"layer {rec.name!r} decodes to {rec.size:,} values "
                       f"({needed / 2**30:,.1f} GiB), more than this machine's memory")
            raise InputError(problem, self.path)
        try:
            if checked is None:
                flat = verify.decode_lossy(rec, payload)
            elif isinstance(checked, Symbols):
                assert rec.deep is not None
                flat = values_of(checked, rec.deep.layout)
            else:  # another method's values, decoded by the check
                flat = checked
        except ValueError as exc:
            raise InputError(f"layer {rec.name!r} cannot be decoded: {exc}", self.path) from exc
        return dtypes.cast(flat, rec.dtype).reshape(rec.shape)

    def read_all(self) -> dict[str, np.ndarray]:
        """Every layer, decoded, by name."""
        return {r.name: self.read_layer(i) for i, r in enumerate(self.records)}


_DECODE_BYTES_PER_VALUE = 8  # the float32 result and the decoder's scratch of the same size


def open_container(path: str | Path) -> Container:
    """Open a compressed file, checking every field against the others and the payloads.

    Up front, before anything is decoded or shown: layer names are unique, the layers summed
    decode to no more than :data:`~inspector.format.verify.MEMORY_FRACTION` of this machine's
    memory, every payload passes its CRC, and every deep layer's streams fill its payload
    exactly and describe exactly its record (:func:`~inspector.format.verify.check_deep_payload`).
    Reading is linear in the file's size.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(spec.PREFIX_NBYTES)
            records, start, version, metadata = _read_header(f, prefix, size)
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), path) from exc
    except ValueError as exc:
        raise InputError(str(exc), path) from exc
    offsets, pos = [], start
    for r in records:
        offsets.append(pos)
        pos += r.payload_nbytes
    if pos != size:
        problem = "is truncated" if pos > size else f"has {size - pos} unexpected trailing bytes"
        raise InputError(f"file {problem}", path)
    try:
        verify.check_records(records, int(memory_nbytes() * verify.MEMORY_FRACTION))
    except ValueError as exc:
        raise InputError(str(exc), path) from None
    box = Container(str(path), version, tuple(records), tuple(offsets), size, metadata)
    for index in range(len(records)):
        box.check_layer(index)
    return box


def _read_header(
    f, prefix: bytes, size: int
) -> tuple[list[LayerRecord], int, int, dict[str, str]]:
    if len(prefix) < spec.PREFIX_NBYTES or not prefix.startswith(spec.MAGIC):
        raise ValueError("not an inspector compressed file (bad magic bytes)")
    version = prefix[4]
    if version not in spec.READ_VERSIONS:
        raise ValueError(
            f"format version {version} is not supported (this inspector reads "
            f"{', '.join(map(str, spec.READ_VERSIONS))})"
        )
    known = meta.F_METADATA if version >= 2 else 0
    if prefix[5] & ~known:  # reserved: a file using a flag this reader does not know is refused
        raise ValueError(f"unknown file flags {prefix[5]:#04x} (damaged, or a newer writer)")
    (hlen,) = struct.unpack("<I", prefix[6:10])
    if spec.PREFIX_NBYTES + hlen + spec.CRC_NBYTES > size:
        raise ValueError("header is truncated")
    header = f.read(hlen)
    (stored,) = struct.unpack("<I", f.read(4))
    if zlib.crc32(header) != stored:
        raise ValueError("header is damaged (checksum mismatch)")
    records = decode_header(header, version)
    start = spec.PREFIX_NBYTES + hlen + spec.CRC_NBYTES
    metadata: dict[str, str] = {}
    if prefix[5] & meta.F_METADATA:
        metadata, block = meta.read(f, size - start)
        start += block
    return records, start, version, metadata
