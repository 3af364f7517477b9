"""Version-2 records: compact, exact round trip, and hostile bytes refused with one line."""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from inspector.core.positions import BITMAP, DENSE, HOLES
from inspector.errors import InputError
from inspector.format import container, header, spec
from inspector.format.header_v2 import decode_header, encode_header

GOLDEN = Path(__file__).resolve().parent / "golden" / "v2" / "positions.dcz"


def split(data: bytes) -> tuple[bytes, int]:
    (hlen,) = struct.unpack("<I", data[6:10])
    return data[spec.PREFIX_NBYTES : spec.PREFIX_NBYTES + hlen], spec.PREFIX_NBYTES + hlen


def rebuilt(data: bytes, head: bytes) -> bytes:
    """``data`` with header ``head`` (its length and CRC fixed up)."""
    _, end = split(data)
    prefix = data[:6] + struct.pack("<I", len(head))
    return prefix + head + struct.pack("<I", zlib.crc32(head)) + data[end + 4 :]


def test_records_round_trip_exactly() -> None:
    head, _ = split(GOLDEN.read_bytes())
    records = decode_header(head)
    assert encode_header(records) == head
    assert {r.deep.layout.positions for r in records if r.deep} >= {BITMAP, DENSE, HOLES}


def test_records_are_smaller_than_version_1() -> None:
    head, _ = split(GOLDEN.read_bytes())
    records = decode_header(head)
    assert len(head) < 0.9 * len(header.encode_header(records))  # measured: 291 vs 342 B


def test_shared_names_and_shapes() -> None:
    rec = header.LayerRecord("block.0.conv.weight", "float32", (8, 4), 128, 7)
    same = dataclasses.replace(rec, name="block.0.conv.bias")
    head = encode_header([rec, same])
    assert head.count(b"block.0.conv") == 1 and decode_header(head) == [rec, same]
    one = encode_header([rec])
    # shared, suffix length, "bias", dtype with the same-shape bit, method, payload 128, CRC
    assert len(head) - len(one) == 1 + 1 + 4 + 1 + 1 + 2 + 4


@pytest.mark.parametrize("stored", ["float16", "bfloat16"])
def test_raw_layers_held_at_lower_precision(tmp_path: Path, stored: str) -> None:
    values = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)
    payload = (values.astype(np.float16).tobytes() if stored == "float16"
               else (values.view(np.uint32) >> 16).astype("<u2").tobytes())
    rec = header.LayerRecord("n.weight", "float32", (4,), 8, container.crc(payload), None, stored)
    path = tmp_path / "s.dcz"
    container.write(path, [rec], [payload])
    box = container.open_container(path)
    assert box.version == 2 and box.records[0].stored == stored
    got = box.read_layer(0)
    assert got.dtype == np.float32 and np.array_equal(got, values)


def test_lower_precision_of_an_integer_layer_is_refused(tmp_path: Path) -> None:
    rec = header.LayerRecord("n", "int32", (4,), 8, 0, None, "float16")
    path = tmp_path / "i.dcz"
    container.write(path, [rec], [bytes(8)])
    with pytest.raises(InputError, match="cannot be stored as float16"):
        container.open_container(path)


def test_zero_bit_streams_cannot_claim_more_entries_than_elements(tmp_path: Path) -> None:
    """A constant stream costs no bits, so entries are bounded by the shape, not the bytes."""
    data = GOLDEN.read_bytes()
    head, _ = split(data)
    records = decode_header(head)
    i = next(i for i, r in enumerate(records) if r.deep and r.deep.layout.gap_constant)
    r = records[i]
    lay = dataclasses.replace(r.deep.layout, entries=r.size + 1)
    records[i] = dataclasses.replace(r, deep=dataclasses.replace(r.deep, layout=lay))
    path = tmp_path / "huge.dcz"
    path.write_bytes(rebuilt(data, encode_header(records)))
    with pytest.raises(InputError, match="inconsistent stream sizes"):
        container.open_container(path)


@pytest.mark.parametrize("mask", [0xFF, 0x01, 0x40])
def test_damaged_records_with_valid_checksums_never_crash(tmp_path: Path, mask: int) -> None:
    data = GOLDEN.read_bytes()
    head, _ = split(data)
    path = tmp_path / "forged.dcz"
    for i in range(len(head)):
        bad = bytearray(head)
        bad[i] ^= mask
        path.write_bytes(rebuilt(data, bytes(bad)))
        with contextlib.suppress(InputError):
            container.open_container(path).read_all()


def test_damaged_payloads_with_valid_checksums_never_crash(tmp_path: Path) -> None:
    data = GOLDEN.read_bytes()
    head, end = split(data)
    records = decode_header(head)
    path = tmp_path / "forged.dcz"
    start = end + 4
    for i in range(start, len(data), 3):
        bad = bytearray(data)
        bad[i] ^= 0xFF
        fixed, pos = [], start
        for r in records:
            fixed.append(dataclasses.replace(r, crc=zlib.crc32(bad[pos : pos + r.payload_nbytes])))
            pos += r.payload_nbytes
        path.write_bytes(rebuilt(bytes(bad), encode_header(fixed)))
        with contextlib.suppress(InputError):
            container.open_container(path).read_all()
