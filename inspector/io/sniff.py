"""Helpers for the zip-based formats: recognising them from their first bytes, and checking
every member's checksum."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

from inspector.errors import InputError
from inspector.io.zip_bounds import check_layout

_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_NAME_OFFSET = 30
_CHUNK = 1 << 20


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


def check_zip_members(path: Path, kind: str) -> None:
    """Read every member of a zip archive once, so a damaged one fails its CRC-32 here.

    torch maps a checkpoint's tensor data straight from the file and never checks the
    archive's checksums, so a flipped byte would otherwise read as a wrong weight. Members are
    read in 1 MiB chunks: memory stays bounded whatever sizes the archive claims.

    Parameters
    ----------
    path : Path
        The archive.
    kind : str
        What the archive is, for the message (``"PyTorch"``).

    Raises
    ------
    InputError
        Not a readable zip archive, a member failing its checksum, or a member cut short.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            check_layout(archive, path, kind)  # repeated or overlapping members: a zip bomb
            for info in archive.infolist():
                with archive.open(info) as member:
                    while member.read(_CHUNK):
                        pass
    except zipfile.BadZipFile as exc:
        raise InputError(f"damaged {kind} archive ({exc})", path) from None
    # EOFError: a member cut short; NotImplementedError: an unknown compression method;
    # RuntimeError: an encrypted member; zlib.error: a damaged deflate stream.
    except (EOFError, OSError, NotImplementedError, RuntimeError, ValueError, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise InputError(f"damaged {kind} archive ({reason[:160]})", path) from None
