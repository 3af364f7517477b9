"""The container's metadata block: the source's strings kept in a ``.dcz``, exactly sized,
CRC-checked, bounded; files without it are byte for byte what earlier writers wrote."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import InputError
from inspector.format import container, spec
from inspector.format import metadata as meta
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, compress

GOLDEN = Path(__file__).resolve().parent / "golden"
SOURCE = {"format": "pt", "note": 'h\u00e9llo "q"\nline 2', "lone": "\ud800", "": "empty key"}


def _layers(path: Path) -> tuple[list, list[bytes]]:
    box = container.open_container(path)
    return list(box.records), [box.payload(i) for i in range(len(box.records))]


@pytest.mark.parametrize("name", ["fc_huffman", "positions", "raw_mixed"])
def test_round_trip_and_exact_size(tmp_path: Path, name: str) -> None:
    records, payloads = _layers(GOLDEN / "v2" / f"{name}.dcz")
    out = tmp_path / "with.dcz"
    nbytes = container.write(out, records, payloads, metadata=SOURCE)
    assert nbytes == container.file_nbytes(records, SOURCE) == out.stat().st_size
    assert container.container_nbytes(records, SOURCE) == (
        container.container_nbytes(records) + container.metadata_nbytes(SOURCE))
    box = container.open_container(out)
    assert box.metadata == SOURCE and list(box.metadata) == list(SOURCE)  # order kept
    expected = container.open_container(GOLDEN / "v2" / f"{name}.dcz").read_all()
    assert {n: a.tobytes() for n, a in box.read_all().items()} == {
        n: a.tobytes() for n, a in expected.items()}


def test_without_metadata_the_file_is_unchanged(tmp_path: Path) -> None:
    """No metadata: flags 0 and no block, so a golden file rewrites to its own bytes."""
    path = GOLDEN / "v2" / "positions.dcz"
    records, payloads = _layers(path)
    for empty in (None, {}):
        out = tmp_path / "plain.dcz"
        container.write(out, records, payloads, metadata=empty)
        assert out.read_bytes() == path.read_bytes()
        assert container.open_container(out).metadata == {}


def _model(path: Path, metadata: dict[str, str]) -> LoadedModel:
    rng = np.random.default_rng(0)
    tensors = {"fc1.weight": rng.normal(0, 0.05, (64, 50)).astype(np.float32),
               "fc1.bias": rng.normal(0, 0.01, 64).astype(np.float32)}  # fmt: skip
    infos = tuple(TensorInfo(n, layer_kind(n, a.shape, a.dtype.name), a.shape, a.dtype.name)
                  for n, a in tensors.items())  # fmt: skip
    path.write_bytes(b"stands in for the source model")
    return LoadedModel(str(path), "numpy", tensors, infos, metadata)


def test_compress_keeps_the_source_metadata_at_the_estimated_size(tmp_path: Path) -> None:
    codec = ModelCodec(_model(tmp_path / "m.bin", dict(SOURCE)))
    gen = compress(codec, ModelSettings(), tmp_path / "m.dcz")
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            estimate, nbytes = stop.value
            break
    assert nbytes == estimate.file_nbytes == codec.estimate(ModelSettings()).file_nbytes
    assert estimate.container_nbytes > meta.nbytes(SOURCE) > 0
    assert container.open_container(tmp_path / "m.dcz").metadata == SOURCE


def test_metadata_over_the_limit_is_refused_when_writing(tmp_path: Path) -> None:
    records, payloads = _layers(GOLDEN / "v2" / "raw_mixed.dcz")
    big = {"blob": "x" * meta.MAX_NBYTES}
    with pytest.raises(InputError, match="more than the 1,048,576"):
        container.write(tmp_path / "big.dcz", records, payloads, metadata=big)
    assert not (tmp_path / "big.dcz").exists()
    just = {"b": "x" * (meta.MAX_NBYTES - len('{"b":""}'))}
    container.write(tmp_path / "just.dcz", records, payloads, metadata=just)
    assert container.open_container(tmp_path / "just.dcz").metadata == just


def _with_block(tmp_path: Path, block: bytes, flags: int = meta.F_METADATA) -> Path:
    data = (GOLDEN / "v2" / "raw_mixed.dcz").read_bytes()
    (hlen,) = struct.unpack_from("<I", data, 6)
    start = spec.PREFIX_NBYTES + hlen + spec.CRC_NBYTES
    out = tmp_path / "damaged.dcz"
    out.write_bytes(data[:5] + bytes([flags]) + data[6:start] + block + data[start:])
    return out


def _block(text: bytes, length: int | None = None) -> bytes:
    n = len(text) if length is None else length
    return struct.pack("<I", n) + text + struct.pack("<I", zlib.crc32(text))


@pytest.mark.parametrize(
    ("block", "expect"),
    [
        (_block(b'{"a":"b"}')[:-1] + b"\0", "damaged (checksum mismatch)"),
        (_block(b"{}", length=meta.MAX_NBYTES + 1), "more than the limit"),
        (_block(b"{}", length=1 << 31), "more than the limit"),
        (_block(b"{}", length=100_000), "truncated"),
        (_block(b'["a","b"]'), "not a JSON object"),
        (_block(b'{"a":1}'), "not a string"),
        (_block(b'{"a":["b"]}'), "not a string"),
        (_block(b'{"a":"1","a":"1"}'), "twice"),
        (_block(b"{}"), "empty"),
        (_block(b"{" * 2000), "not valid JSON"),
        (_block(b'{"a":"b"} x'), "not valid JSON"),
        (_block(b'{"a":"\xc3"}'), "not valid JSON"),
    ],
)
def test_a_damaged_block_is_one_line(tmp_path: Path, block: bytes, expect: str) -> None:
    path = _with_block(tmp_path, block)
    with pytest.raises(InputError) as info:
        container.open_container(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and expect in message


def test_the_flag_is_version_2_only_and_other_bits_stay_reserved(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown file flags 0x02"):
        container.open_container(_with_block(tmp_path, b"", flags=0x02))
    v1 = (GOLDEN / "fc_huffman.dcz").read_bytes()
    (tmp_path / "v1.dcz").write_bytes(v1[:5] + bytes([meta.F_METADATA]) + v1[6:])
    with pytest.raises(InputError, match="unknown file flags 0x01"):
        container.open_container(tmp_path / "v1.dcz")


def test_a_block_reads_in_time_linear_in_its_size() -> None:
    """The JSON of the largest block decodes at once (no quadratic key checks)."""
    many = {f"k{i}": "v" for i in range(60_000)}
    data = meta.encode(many)
    assert len(data) <= meta.MAX_NBYTES + 8
    assert meta.decode(data[4:-4]) == many
    assert json.loads(data[4:-4]) == many


def test_golden_files_still_decode_to_their_arrays() -> None:
    for path in sorted(GOLDEN.glob("*.dcz")) + sorted((GOLDEN / "v2").glob("*.dcz")):
        box = container.open_container(path)
        assert box.metadata == {}
        with np.load(path.with_suffix(".npz")) as expected:
            for name, arr in box.read_all().items():
                assert arr.tobytes() == expected[name].tobytes(), (path.name, name)
