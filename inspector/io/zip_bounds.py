"""Zip archives that claim more than they hold: overlapping or repeated members.

A zip's central directory may list any number of entries pointing into the same bytes: one
small deflated member listed 10,000 times, or members whose data overlap, unpack the same region
again and again (a "non-recursive zip bomb"). :func:`check_layout` refuses such archives before
any member is read: every entry must own a region of the file no other entry touches, so the
bytes read are at most the file's size and the bytes unpacked at most deflate's ratio times it.
"""

from __future__ import annotations

import itertools
import struct
import zipfile
from pathlib import Path

from inspector.errors import InputError

#: Deflate cannot pack more than 1032 bytes into one.
DEFLATE_RATIO = 1032
_LOCAL_HEADER_NBYTES = 30
_DATA_DESCRIPTOR_NBYTES = 12  # CRC-32 and two sizes (a signature or zip64 sizes make it larger)


def check_layout(archive: zipfile.ZipFile, path: Path, kind: str) -> None:
    """Refuse an archive whose entries repeat a name or share bytes of the file.

    Parameters
    ----------
    archive : zipfile.ZipFile
        The open archive.
    path : Path
        Its file, for the message.
    kind : str
        What the archive is (``"PyTorch"``, ``".npz"``), for the message.

    Raises
    ------
    InputError
        Two entries with one name, or two entries whose local header and data overlap.
    """
    infos = archive.infolist()
    names: set[str] = set()
    for info in infos:
        if info.filename in names:
            raise InputError(f"damaged {kind} archive: member {info.filename!r} is listed twice",
                             path)
        names.add(info.filename)
    spans = sorted((info.header_offset, _data_end(archive, info), info.filename) for info in infos)
    for (_, end, name), (start, _, other) in itertools.pairwise(spans):
        if start < end:
            raise InputError(
                f"damaged {kind} archive: members {name!r} and {other!r} overlap (a zip bomb?)",
                path,
            )


def unpacked_limit(info: zipfile.ZipInfo) -> int:
    """The most bytes ``info``'s packed data can honestly unpack to."""
    if info.compress_type == zipfile.ZIP_STORED:
        return info.compress_size
    return DEFLATE_RATIO * info.compress_size + 1024


def _data_end(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Where ``info``'s packed data ends: its local header's own name and extra lengths count."""
    fp = archive.fp
    assert fp is not None
    fp.seek(info.header_offset + 26)
    lengths = fp.read(4)
    name_len, extra_len = struct.unpack("<HH", lengths) if len(lengths) == 4 else (0, 0)
    end = info.header_offset + _LOCAL_HEADER_NBYTES + name_len + extra_len + info.compress_size
    return end + (_DATA_DESCRIPTOR_NBYTES if info.flag_bits & 0x08 else 0)
