"""Helpers for recognising file formats from their first bytes."""

from __future__ import annotations

import struct

_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_NAME_OFFSET = 30


def zip_first_name(head: bytes) -> str | None:
    """Name of the first member of a zip archive, from the archive's leading bytes.

    Both PyTorch checkpoints and ``.npz`` files are zip archives; the first member's name tells
    them apart (``"archive/data.pkl"`` versus ``"name.npy"``).

    Parameters
    ----------
    head : bytes
        Leading bytes of the file.

    Returns
    -------
    str or None
        The name, or None if ``head`` is not the start of a zip archive.
    """
    if not head.startswith(_ZIP_LOCAL_HEADER) or len(head) < _ZIP_NAME_OFFSET:
        return None
    (name_len,) = struct.unpack_from("<H", head, 26)
    raw = head[_ZIP_NAME_OFFSET : _ZIP_NAME_OFFSET + name_len]
    if len(raw) < name_len:
        return None
    return raw.decode("utf-8", errors="replace")
