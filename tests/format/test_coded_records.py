"""Records of registered methods (codes >= 16): ``varint(len(params)) + params`` after the
CRC, checked by the method before any payload is read; an unknown code is one clear line;
the deep method's record parameters are the deep record, byte for byte."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from inspector.core.stages import registry
from inspector.core.stages.deep_record import encode_deep
from inspector.errors import InputError
from inspector.format import container, spec
from inspector.format.header import Coded, LayerRecord
from inspector.format.header_v2 import decode_header, encode_header

GOLDEN = Path(__file__).resolve().parent / "golden" / "v2" / "positions.dcz"


def fp16_file(path: Path, values: np.ndarray) -> bytes:
    payload = values.astype("<f2").tobytes()
    rec = LayerRecord("w", "float32", values.shape, len(payload), zlib.crc32(payload),
                      coded=Coded("fp16", registry.method("fp16").code, b""))
    container.write(path, [rec], [payload])
    return path.read_bytes()


def rewrite(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with the first ``old`` in its header replaced, header length and CRC fixed."""
    (hlen,) = struct.unpack("<I", data[6:10])
    head = data[spec.PREFIX_NBYTES: spec.PREFIX_NBYTES + hlen]
    assert old in head
    head = head.replace(old, new, 1)
    rest = data[spec.PREFIX_NBYTES + hlen + 4:]
    return (data[:6] + struct.pack("<I", len(head)) + head
            + struct.pack("<I", zlib.crc32(head)) + rest)


def test_a_coded_record_round_trips_with_its_params(toy_method) -> None:
    rec = LayerRecord("a.weight", "float32", (3, 4), 24, 7,
                      coded=Coded("toy", toy_method.code, struct.pack("<d", 0.5)))
    head = encode_header([rec])
    assert head.endswith(bytes([8]) + struct.pack("<d", 0.5))  # varint length, then params
    (back,) = decode_header(head)
    assert back == rec and back.lossy and back.method == "toy"


def test_a_file_of_fp16_layers_opens_and_decodes(tmp_path: Path) -> None:
    values = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    fp16_file(tmp_path / "a.dcz", values)
    box = container.open_container(tmp_path / "a.dcz")
    assert box.records[0].coded.method == "fp16"
    assert np.array_equal(box.read_layer(0), values.astype(np.float16).astype(np.float32))


def test_an_unknown_method_code_is_one_clear_error(tmp_path: Path) -> None:
    data = fp16_file(tmp_path / "a.dcz", np.ones(4, np.float32))
    code = registry.method("fp16").code
    bad = rewrite(data, bytes([code]) + bytes([8]), bytes([99]) + bytes([8]))
    (tmp_path / "b.dcz").write_bytes(bad)
    with pytest.raises(InputError, match="method code 99, which this inspector does not know"):
        container.open_container(tmp_path / "b.dcz")


def test_the_method_checks_its_record_before_any_payload_is_read(tmp_path: Path,
                                                                monkeypatch) -> None:
    data = fp16_file(tmp_path / "a.dcz", np.ones(4, np.float32))
    code = registry.method("fp16").code
    bad = rewrite(data, bytes([code, 8]), bytes([code, 7]))  # method byte, payload length
    (tmp_path / "b.dcz").write_bytes(bad[:-1])  # 7 bytes claimed, 7 present: sizes agree
    read: list[int] = []
    monkeypatch.setattr(container.Container, "payload",
                        lambda self, i: read.append(i) or b"")
    with pytest.raises(InputError, match=r"\(fp16\): its payload is 7 bytes, 8 expected"):
        container.open_container(tmp_path / "b.dcz")
    assert read == []


def test_a_coded_layer_of_an_integer_dtype_is_refused(tmp_path: Path) -> None:
    data = fp16_file(tmp_path / "a.dcz", np.ones(4, np.float32))
    int_code = spec.DTYPES["int32"][0]
    bad = rewrite(data, bytes([spec.DTYPES["float32"][0], 1, 4]), bytes([int_code, 1, 4]))
    (tmp_path / "b.dcz").write_bytes(bad)
    with pytest.raises(InputError, match="a int32 layer cannot be coded by fp16"):
        container.open_container(tmp_path / "b.dcz")


def test_version_1_refuses_to_hold_a_coded_record() -> None:
    from inspector.format import header

    rec = LayerRecord("w", "float32", (2,), 4, 0, coded=Coded("fp16", 20, b""))
    with pytest.raises(ValueError, match="version 1 has no fp16 records"):
        header.encode_header([rec])


def test_the_deep_method_reads_the_deep_record_byte_for_byte() -> None:
    (hlen,) = struct.unpack("<I", GOLDEN.read_bytes()[6:10])
    data = GOLDEN.read_bytes()
    head = data[spec.PREFIX_NBYTES: spec.PREFIX_NBYTES + hlen]
    box = container.open_container(GOLDEN)
    deep = registry.method("deep")
    assert registry.method_by_code(spec.DEEP) is deep
    for i, rec in enumerate(box.records):
        if rec.deep is None:
            continue
        params = encode_deep(rec.deep)
        assert params in head  # the very bytes the file holds
        payload = box.payload(i)
        deep.check(params, len(payload), rec.shape)
        fast = deep.decode(params, payload, rec.shape)
        twin = deep.decode_reference(params, payload, rec.shape)
        assert np.array_equal(fast.view(np.uint32), twin.view(np.uint32))
        assert np.array_equal(fast.reshape(rec.shape), box.read_layer(i).astype(np.float32))
        assert deep.describe(params)["clusters"] == rec.deep.layout.codebook_size
        with pytest.raises(ValueError, match="trailing"):
            deep.check(params + b"\x00", len(payload), rec.shape)


def test_info_json_shows_each_layers_method_and_recipe(tmp_path: Path) -> None:
    from inspector.tasks import report

    fp16_file(tmp_path / "a.dcz", np.ones((2, 3), np.float32))
    rows = report.rows_of_container(container.open_container(tmp_path / "a.dcz"))
    data = rows[0].to_json()
    assert data["method"] == "fp16" and data["recipe"]["name"] == "fp16"
    assert data["compressed_nbytes"] == 12
    deep_rows = report.rows_of_container(container.open_container(GOLDEN))
    assert all(r.to_json()["recipe"]["name"] == "deep" for r in deep_rows if r.method == "deep")
