"""The container's metadata block: the source model's own string metadata (safetensors
``__metadata__``, a Keras archive's ``metadata.json`` fields, ...), so that a decompressed file
can carry it again (docs/format.md, "Metadata block").

Version 2 only, present when prefix flag :data:`F_METADATA` is set, right after the header
CRC: ``length u32 | JSON (UTF-8) | CRC-32 u32 of the JSON``. The JSON is one object whose keys
and values are strings, no key twice, at most :data:`MAX_NBYTES` bytes. A file without
metadata has no block and flags 0, byte for byte what earlier writers wrote.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import BinaryIO

#: Prefix flag bit: a metadata block follows the header CRC.
F_METADATA = 0x01
#: Largest metadata JSON a file may hold (the reader refuses more before reading it).
MAX_NBYTES = 1 << 20
_FRAME_NBYTES = 8  # the u32 length before the JSON and the u32 CRC after it


def encode(metadata: Mapping[str, str]) -> bytes:
    """The whole block (length, JSON, CRC) for ``metadata``; empty when there is none.

    Raises ValueError if a key or value is not a string or the JSON is over the limit.
    """
    if not metadata:
        return b""
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("metadata keys and values must be strings")
    # ASCII with \u escapes: any Python string (a lone surrogate too) reads back equal
    data = json.dumps(dict(metadata), separators=(",", ":")).encode("ascii")
    if len(data) > MAX_NBYTES:
        raise ValueError(f"its metadata takes {len(data):,} bytes as JSON, more than the "
                         f"{MAX_NBYTES:,} a compressed file holds")  # fmt: skip
    return struct.pack("<I", len(data)) + data + struct.pack("<I", zlib.crc32(data))


def nbytes(metadata: Mapping[str, str]) -> int:
    """Bytes the block of ``metadata`` adds to a file (0 without metadata)."""
    return len(encode(metadata))


def read(f: BinaryIO, available: int) -> tuple[dict[str, str], int]:
    """The metadata block at ``f``'s position and its size; ``available`` is the number of
    bytes left in the file. ValueError says what is wrong."""
    head = f.read(4)
    if len(head) < 4 or available < _FRAME_NBYTES:
        raise ValueError("metadata block is truncated")
    (length,) = struct.unpack("<I", head)
    if length > MAX_NBYTES:
        raise ValueError(f"metadata block claims {length:,} bytes, more than the limit of "
                         f"{MAX_NBYTES:,}")  # fmt: skip
    if length + _FRAME_NBYTES > available:
        raise ValueError("metadata block is truncated")
    data = f.read(length)
    (stored,) = struct.unpack("<I", f.read(4))
    if zlib.crc32(data) != stored:
        raise ValueError("metadata block is damaged (checksum mismatch)")
    return decode(data), length + _FRAME_NBYTES


def decode(data: bytes) -> dict[str, str]:
    """The metadata from its JSON bytes (ValueError unless an object of strings)."""
    try:
        pairs = json.loads(data.decode("utf-8"), object_pairs_hook=_pairs)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"metadata block is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(pairs, _Object):
        raise ValueError("metadata block is not a JSON object")
    out: dict[str, str] = {}
    for key, value in pairs:
        if not isinstance(value, str):
            raise ValueError(f"metadata entry {key!r} is not a string")
        if key in out:
            raise ValueError(f"metadata names {key!r} twice")
        out[key] = value
    if not out:
        raise ValueError("metadata block is empty (a writer leaves it out)")
    return out


class _Object(list):
    """A JSON object as its (key, value) pairs, so that a key written twice is seen."""


def _pairs(items: list[tuple[str, object]]) -> _Object:
    return _Object(items)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
