"""Fuzzing: damaged and random bytes through our .dcz reader, every sniffer and every reader.

The seeds are the valid files of the committed corpus (``tests/corpus/any_*``). Whatever the
bytes, a reader may only raise InputError (one line naming the file), a sniffer only answer
True or False, a parser only raise its own error type.

``scripts/fuzz.py`` runs these same properties for much longer; the number of examples comes
from the environment variable ``INSPECTOR_FUZZ_EXAMPLES`` (default 200 here).
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.errors import InputError
from inspector.format import container, metadata, spec
from inspector.format import header as v1_header
from inspector.format.header import LayerRecord
from inspector.format.header_v2 import decode_header, encode_header
from inspector.io import caffe, read_model, reader_formats, safetensors_file, sniff

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "corpus"
EXAMPLES = int(os.environ.get("INSPECTOR_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Readers that start torch, onnx or a child process per file: fewer examples.
SLOW = settings(FUZZ, max_examples=max(20, EXAMPLES // 5))
CHILD = settings(FUZZ, max_examples=max(3, EXAMPLES // 50))
MAX_TRACED_BYTES = 16 << 20

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning",  # torch on odd pickle protocols and storage types
    "ignore::DeprecationWarning",  # torch.jit.load's own deprecation
)


def seed(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


DCZ = seed("any_dcz_named.pt")


def with_metadata(data: bytes, block: bytes) -> bytes:
    """``data`` (a version-2 .dcz) with metadata ``block`` after its header CRC, flag 1 set."""
    start = spec.PREFIX_NBYTES + struct.unpack_from("<I", data, 6)[0] + spec.CRC_NBYTES
    return data[:5] + bytes([metadata.F_METADATA]) + data[6:start] + block + data[start:]


# version 2: a layer of each position code and codebook form, and a metadata block
DCZ_V2 = with_metadata(
    (CORPUS.parent / "format" / "golden" / "v2" / "positions.dcz").read_bytes(),
    metadata.encode({"format": "pt", "note": "fuzz seed"}),
)
SEEDS = {
    "pt": seed("any_pt_named.npz"),
    "pt_legacy": seed("any_pt_legacy_named.bin"),
    "torchscript": seed("any_torchscript_named.bin"),
    "safetensors": seed("any_safetensors_named.pt"),
    "npz": seed("any_npz_named.bin"),
    "onnx": seed("any_onnx_named.bin"),
    "caffe": seed("any_caffe_named.bin"),
    "caffe_v0": seed("caffe_v0.caffemodel"),
    "keras": seed("any_keras_named.zip"),
    "h5": seed("any_h5_named.bin"),
    "dcz": DCZ,
}
# Damaged files keep their format's extension, so the reader it names still gets them.
SUFFIX = {"pt": ".pt", "pt_legacy": ".pt", "torchscript": ".pt", "safetensors": ".safetensors",
          "npz": ".npz", "onnx": ".onnx", "caffe": ".caffemodel", "caffe_v0": ".caffemodel",
          "keras": ".keras", "h5": ".h5", "dcz": ".dcz"}  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, data: bytes, keep: int = 0) -> bytes:
    """``data`` after a few edits: bytes set or flipped, runs of 0xff (huge varints and
    lengths) or of 9s (huge numbers in JSON and .npy headers), bytes inserted or deleted, the
    end cut off. The first ``keep`` bytes (a magic number, say) stay, so the edits reach
    further than the first check."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "flip", "ff", "nines", "insert", "delete", "cut"]))
        last = max(len(out) - 1, 0)
        pos = draw(st.integers(min(keep, last), last))
        if kind == "set" and out:
            out[pos] = draw(st.integers(0, 255))
        elif kind == "flip" and out:
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "ff":
            out[pos : pos + draw(st.integers(1, 9))] = b"\xff" * draw(st.integers(1, 9))
        elif kind == "nines":
            out[pos:pos] = b"9" * draw(st.integers(1, 20))
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del out[pos : pos + draw(st.integers(1, 16))]
        elif kind == "cut":
            del out[pos:]
    return bytes(out)


@pytest.fixture(scope="module", autouse=True)
def _imported(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every seed read once first: a reader's first call imports its library (torch, onnx),
    which would count as the first example's allocations."""
    folder = tmp_path_factory.mktemp("seeds")
    for kind, data in SEEDS.items():
        path = folder / f"seed{SUFFIX[kind]}"
        path.write_bytes(data)
        read_model(path)


def only_input_error(path: Path, data: bytes) -> None:
    """``read_model`` reads ``data`` or raises one InputError line naming ``path``, and never
    allocates (through Python or numpy) much more than the file's own size."""
    path.write_bytes(data)
    tracing = not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    try:
        read_model(path)
    except InputError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        if tracing:
            tracemalloc.stop()
    assert peak < MAX_TRACED_BYTES + 64 * len(data), f"{peak} bytes allocated"


# ------------------------------------------------------------------------ (a) our own .dcz


def forged(data: bytes) -> bytes:
    """``data`` with every checksum made right again where its header still decodes, so the
    damage reaches the decoders behind the CRC checks."""
    if len(data) < spec.PREFIX_NBYTES:
        return data
    (hlen,) = struct.unpack_from("<I", data, 6)
    start, end = spec.PREFIX_NBYTES, spec.PREFIX_NBYTES + hlen
    header = data[start:end]
    if len(header) != hlen:
        return data
    payloads = data[end + spec.CRC_NBYTES :]
    block = b""
    if data[5] & metadata.F_METADATA and len(payloads) >= 8:  # its CRC made right too
        (n,) = struct.unpack_from("<I", payloads)
        if n + 8 <= len(payloads):
            text = payloads[4 : 4 + n]
            block = payloads[:4] + text + struct.pack("<I", zlib.crc32(text))
            payloads = payloads[n + 8 :]
    try:
        records = decode_header(header, data[4])
    except ValueError:
        return data[:end] + struct.pack("<I", zlib.crc32(header)) + block + payloads
    fixed: list[LayerRecord] = []
    pos = 0
    for r in records:
        crc = zlib.crc32(payloads[pos : pos + r.payload_nbytes])
        fixed.append(LayerRecord(r.name, r.dtype, r.shape, r.payload_nbytes, crc, r.deep))
        pos += r.payload_nbytes
    header = encode_header(fixed) if data[4] != 1 else v1_header.encode_header(fixed)
    prefix = data[:6] + struct.pack("<I", len(header))
    return prefix + header + struct.pack("<I", zlib.crc32(header)) + block + payloads


def read_container(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        box = container.open_container(path)
        for index in range(len(box.records)):
            box.read_layer(index)
    except InputError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc), str(exc)


@FUZZ
@given(data=st.one_of(mutated(DCZ, keep=spec.PREFIX_NBYTES), mutated(DCZ_V2, keep=6)),
       forge=st.booleans())
def test_dcz_damage_gives_input_error(tmp_path: Path, data: bytes, forge: bool) -> None:
    data = forged(data) if forge else data
    read_container(tmp_path / "fuzz.dcz", data)
    only_input_error(tmp_path / "fuzz.dcz", data)


@FUZZ
@given(body=st.binary(max_size=600), version=st.sampled_from([spec.VERSION, 0, 1, 255]),
       flags=st.sampled_from([0, metadata.F_METADATA]))
def test_random_dcz_gives_input_error(
    tmp_path: Path, body: bytes, version: int, flags: int
) -> None:
    data = spec.MAGIC + bytes([version, flags]) + struct.pack("<I", len(body)) + body
    read_container(tmp_path / "random.dcz", forged(data))


DCZ_HEADER = DCZ[spec.PREFIX_NBYTES : spec.PREFIX_NBYTES + struct.unpack_from("<I", DCZ, 6)[0]]


@FUZZ
@given(header=st.one_of(st.binary(max_size=300), mutated(DCZ_HEADER)))
def test_header_decoder_raises_only_value_error(header: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_header(header)


# --------------------------------------------------------------- (b) sniffers and headers


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    """Random bytes, or the damaged start of a valid file of any format."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=1024))
    start = SEEDS[draw(st.sampled_from(sorted(SEEDS)))][:1024]
    return draw(mutated(start))[:1024]


@FUZZ
@given(head=heads())
def test_sniffers_answer_true_or_false(head: bytes) -> None:
    for reader in reader_formats():
        assert reader.sniff(head) in (True, False), reader.name
    name = sniff.zip_first_name(head)
    assert name is None or isinstance(name, str)


def safetensors_headers() -> st.SearchStrategy[dict[str, Any]]:
    """Headers shaped like safetensors ones, with hostile values mixed in."""
    number = st.one_of(
        st.integers(-2, 64), st.integers(-(2**70), 2**70), st.floats(), st.booleans()
    )
    entry = st.fixed_dictionaries(
        {},
        optional={
            "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "BOOL", "F4", "F33", ""]),
            "shape": st.one_of(st.lists(number, max_size=5), number, st.none()),
            "data_offsets": st.one_of(st.lists(number, max_size=3), st.text(max_size=3)),
        },
    )
    value = st.one_of(entry, st.none(), number, st.text(max_size=4), st.lists(number, max_size=2))
    return st.dictionaries(st.text(max_size=6), value, max_size=4)


@FUZZ
@given(header=safetensors_headers(), data=st.binary(max_size=64))
def test_safetensors_header_gives_input_error(tmp_path: Path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    with contextlib.suppress(InputError):
        safetensors_file.read_header(path)
    only_input_error(path, path.read_bytes())


@FUZZ
@given(data=st.one_of(mutated(SEEDS["caffe"]), mutated(SEEDS["caffe_v0"]), st.binary()))
def test_caffe_parser_raises_only_its_errors(data: bytes) -> None:
    with contextlib.suppress(caffe.CaffeError):
        caffe.parse_net(data)
    try:
        caffe.caffemodel_from_bytes(data, "fuzz.caffemodel")
    except InputError as exc:
        assert str(exc).startswith("fuzz.caffemodel: ") and "\n" not in str(exc)


@FUZZ
@given(data=mutated(SEEDS["pt"]))
def test_zip_check_gives_input_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.zip"
    path.write_bytes(data)
    try:
        sniff.check_zip_members(path, "test")
    except InputError as exc:
        assert str(exc).startswith(f"{path}: ")


# --------------------------------------------------------------- (b) whole readers, damaged


@FUZZ
@given(kind=st.sampled_from(["safetensors", "npz", "caffe", "caffe_v0"]), data=st.data())
def test_fast_readers_give_input_error(tmp_path: Path, kind: str, data: st.DataObject) -> None:
    only_input_error(tmp_path / f"fuzz{SUFFIX[kind]}", data.draw(mutated(SEEDS[kind])))


@SLOW
@given(kind=st.sampled_from(["pt", "pt_legacy", "torchscript", "onnx"]), data=st.data())
def test_library_readers_give_input_error(tmp_path: Path, kind: str, data: st.DataObject) -> None:
    only_input_error(tmp_path / f"fuzz{SUFFIX[kind]}", data.draw(mutated(SEEDS[kind])))


@CHILD
@given(kind=st.sampled_from(["keras", "h5"]), data=st.data())
def test_child_process_readers_give_input_error(
    tmp_path: Path, kind: str, data: st.DataObject
) -> None:
    only_input_error(tmp_path / f"fuzz{SUFFIX[kind]}", data.draw(mutated(SEEDS[kind])))
