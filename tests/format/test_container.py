"""The .dcz container: exact size, bit-exact decode, every damaged file refused cleanly."""

from __future__ import annotations

import contextlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import InputError
from inspector.format import container, spec
from inspector.format.header import LayerRecord
from inspector.format.header_v2 import decode_header, encode_header
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, ModelEstimate, compress
from inspector.tasks.drive import run_to_end


def loaded_model(path: Path, tensors: dict[str, np.ndarray], dtypes: dict[str, str]) -> LoadedModel:
    """A model as a reader would return it, built by hand (``dtypes`` overrides arr.dtype)."""
    infos = []
    for name, arr in tensors.items():
        dtype = dtypes.get(name, arr.dtype.name)
        infos.append(TensorInfo(name, layer_kind(name, arr.shape, dtype), arr.shape, dtype))
    path.write_bytes(b"stands in for the source model")
    return LoadedModel(str(path), "numpy", tensors, tuple(infos), {})


def mixed_model(path: Path, seed: int = 0) -> LoadedModel:
    """fc/conv/embedding weights (float32, float16, bfloat16) plus raw bias, norm and buffer."""
    rng = np.random.default_rng(seed)
    bf16 = rng.normal(0, 0.1, (40, 12)).astype(np.float32)
    bf16 = (bf16.view(np.uint32) & 0xFFFF0000).view(np.float32)  # exact bfloat16 values
    tensors = {
        "fc1.weight": rng.normal(0, 0.05, (64, 50)).astype(np.float32),
        "fc1.bias": rng.normal(0, 0.01, 64).astype(np.float32),
        "conv1.weight": rng.normal(0, 0.2, (8, 3, 3, 3)).astype(np.float16),
        "bn1.num_batches_tracked": np.array(12345678901, dtype=np.int64),
        "embed.weight": bf16,
        "ln.weight": (1.0 + rng.normal(0, 0.01, 12)).astype(np.float32),
    }
    return loaded_model(path, tensors, {"embed.weight": "bfloat16", "ln.weight": "bfloat16"})


def run(codec: ModelCodec, settings: ModelSettings, out: Path) -> tuple[ModelEstimate, int]:
    gen = compress(codec, settings, out)
    return run_to_end(gen)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (so -0.0 != 0.0 and NaN == NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


SETTINGS = [
    ModelSettings(),
    ModelSettings(defaults={"policy": "threshold", "value": 0.0, "huffman": False, "bits": 2}),
    ModelSettings(defaults={"policy": "std", "value": 1.0, "index_bits": 2, "init": "linear"},
                  layers={"conv1.weight": {"excluded": True}}),
    ModelSettings(defaults={"value": 1.0}),  # everything pruned
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_round_trip(tmp_path: Path, settings: ModelSettings) -> None:
    model = mixed_model(tmp_path / "model.npz")
    codec = ModelCodec(model)
    out = tmp_path / "out.dcz"
    estimate, nbytes = run(codec, settings, out)
    assert out.stat().st_size == nbytes == estimate.file_nbytes
    assert ModelCodec(model).estimate(settings).file_nbytes == nbytes
    box = container.open_container(out)
    assert box.nbytes == nbytes
    assert [r.name for r in box.records] == list(model.tensors)
    decoded = box.read_all()
    for info in model.infos:
        want = codec.quantized(info.name, settings)
        assert same(decoded[info.name], want), info.name
        assert decoded[info.name].shape == info.shape
    assert decoded["bn1.num_batches_tracked"].dtype == np.int64
    assert int(decoded["bn1.num_batches_tracked"]) == 12345678901
    assert decoded["conv1.weight"].dtype == np.float16
    assert box.records[model.infos.index(model.info("embed.weight"))].dtype == "bfloat16"
    assert same(decoded["fc1.bias"], model.tensors["fc1.bias"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "out.dcz"]


def test_compressed_layers_use_the_deep_method(tmp_path: Path) -> None:
    model = mixed_model(tmp_path / "model.npz")
    run(ModelCodec(model), ModelSettings(), tmp_path / "out.dcz")
    box = container.open_container(tmp_path / "out.dcz")
    deep = {r.name for r in box.records if r.deep is not None}
    assert deep == {"fc1.weight", "conv1.weight", "embed.weight"}


def test_lenet_300_100_container_overhead_is_small(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {}
    for name, (rows, cols) in {"ip1": (300, 784), "ip2": (100, 300), "ip3": (10, 100)}.items():
        tensors[f"{name}.weight"] = rng.normal(0, 0.05, (rows, cols)).astype(np.float32)
        tensors[f"{name}.bias"] = rng.normal(0, 0.05, rows).astype(np.float32)
    model = loaded_model(tmp_path / "lenet.pt", tensors, {})
    settings = ModelSettings(defaults={"policy": "sparsity", "value": 0.92, "bits": 6},
                             kinds={"fc": {"bits": 6, "index_bits": 5}})
    estimate, nbytes = run(ModelCodec(model), settings, tmp_path / "lenet.dcz")
    assert (tmp_path / "lenet.dcz").stat().st_size == nbytes == estimate.file_nbytes
    assert estimate.container_nbytes <= 0.02 * nbytes
    assert estimate.original_nbytes == 4 * (266_200 + 410)
    assert estimate.ratio > 20


# ------------------------------------------------------------------------------ damage


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A few hundred bytes: one deep layer with Huffman streams, one with fillers, raw ones."""
    tmp = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(1)
    sparse = np.zeros(150, np.float32)
    sparse[[3, 40, 41, 149]] = [0.5, -0.25, 1.0, 2.0]
    tensors = {
        "a.weight": rng.normal(0, 1, (12, 10)).astype(np.float32),
        "b.weight": sparse.reshape(10, 15),
        "b.bias": np.arange(4, dtype=np.float16),
        "n": np.array([7], np.int64),
    }
    model = loaded_model(tmp / "m.npz", tensors, {})
    settings = ModelSettings(
        defaults={"value": 0.5, "bits": 3, "index_bits": 3},
        layers={"b.weight": {"policy": "threshold", "value": 0.0}},
    )
    run(ModelCodec(model), settings, tmp / "small.dcz")
    data = (tmp / "small.dcz").read_bytes()
    assert 150 < len(data) < 600
    return data


def refused(path: Path, data: bytes) -> InputError:
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        container.open_container(path).read_all()
    assert str(path) in str(info.value)
    return info.value


def test_small_file_is_valid(tmp_path: Path, small_file: bytes) -> None:
    (tmp_path / "ok.dcz").write_bytes(small_file)
    box = container.open_container(tmp_path / "ok.dcz")
    assert any(r.deep is not None and r.deep.layout.has_filler for r in box.records)
    box.read_all()


def test_every_truncation_is_refused(tmp_path: Path, small_file: bytes) -> None:
    for n in range(len(small_file)):
        refused(tmp_path / "cut.dcz", small_file[:n])


@pytest.mark.parametrize("mask", [0xFF, 0x01, 0x80])
def test_every_byte_flip_is_refused(tmp_path: Path, small_file: bytes, mask: int) -> None:
    for i in range(len(small_file)):
        data = bytearray(small_file)
        data[i] ^= mask
        refused(tmp_path / "flip.dcz", bytes(data))


def test_bad_magic(tmp_path: Path, small_file: bytes) -> None:
    err = refused(tmp_path / "x.dcz", b"PK\x03\x04" + small_file[4:])
    assert "magic" in err.problem
    refused(tmp_path / "x.dcz", b"")


def test_unknown_version(tmp_path: Path, small_file: bytes) -> None:
    data = bytearray(small_file)
    data[4] = spec.VERSION + 1
    err = refused(tmp_path / "v.dcz", bytes(data))
    assert "version" in err.problem


def test_trailing_garbage(tmp_path: Path, small_file: bytes) -> None:
    for extra in (b"\x00", b"garbage", small_file):
        err = refused(tmp_path / "t.dcz", small_file + extra)
        assert "trailing" in err.problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        container.open_container(tmp_path / "nope.dcz")


# ------------------------------------------------------------------------------ writing


def test_refuses_to_overwrite_the_input(tmp_path: Path) -> None:
    model = mixed_model(tmp_path / "model.dcz")
    before = (tmp_path / "model.dcz").read_bytes()
    with pytest.raises(InputError, match="overwrite"):
        run(ModelCodec(model), ModelSettings(), tmp_path / "model.dcz")
    assert (tmp_path / "model.dcz").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.dcz"]


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    model = mixed_model(tmp_path / "model.npz")
    codec = ModelCodec(model)
    est = codec.estimate(ModelSettings())
    records = [r.record for r in est.layers]
    payloads = [codec.payload(r) for r in est.layers]
    payloads[0] = payloads[0] + b"x"
    with pytest.raises(AssertionError):
        container.write(tmp_path / "out.dcz", records, payloads)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_rewrite_replaces_atomically(tmp_path: Path) -> None:
    model = mixed_model(tmp_path / "model.npz")
    out = tmp_path / "out.dcz"
    out.write_bytes(b"old")
    _, nbytes = run(ModelCodec(model), ModelSettings(), out)
    assert out.stat().st_size == nbytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "out.dcz"]


def test_cancelled_compress_writes_nothing(tmp_path: Path) -> None:
    model = mixed_model(tmp_path / "model.npz")
    codec = ModelCodec(model)
    out = tmp_path / "out.dcz"
    steps = 2 * len(model.infos) + 1  # progress reports before the file is written
    for stop_after in range(1, steps + 1):
        gen = compress(codec, ModelSettings(), out)
        labels = [next(gen).label for _ in range(stop_after)]
        gen.close()
        assert not out.exists(), labels
        assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def rechecked(data: bytes) -> bytes:
    """``data`` with the header CRC and every payload CRC recomputed (damage CRCs miss)."""
    (hlen,) = struct.unpack("<I", data[6:10])
    start = spec.PREFIX_NBYTES + hlen + spec.CRC_NBYTES
    records, pos = [], start
    for r in decode_header(data[spec.PREFIX_NBYTES : spec.PREFIX_NBYTES + hlen]):
        crc = zlib.crc32(data[pos : pos + r.payload_nbytes])
        records.append(LayerRecord(r.name, r.dtype, r.shape, r.payload_nbytes, crc, r.deep))
        pos += r.payload_nbytes
    header = encode_header(records)
    assert len(header) == hlen
    crc = struct.pack("<I", zlib.crc32(header))
    return data[:6] + struct.pack("<I", hlen) + header + crc + data[start:]


def forged(data: bytes) -> bytes:
    """The header CRC recomputed after the header was damaged."""
    (hlen,) = struct.unpack("<I", data[6:10])
    header = data[spec.PREFIX_NBYTES : spec.PREFIX_NBYTES + hlen]
    end = spec.PREFIX_NBYTES + hlen
    return data[:end] + struct.pack("<I", zlib.crc32(header)) + data[end + 4 :]


@pytest.mark.parametrize("mask", [0xFF, 0x01, 0x10, 0x80])
def test_damage_behind_valid_checksums_never_crashes(
    tmp_path: Path, small_file: bytes, mask: int
) -> None:
    """A hostile file with correct CRCs decodes or raises InputError, nothing else."""
    (hlen,) = struct.unpack("<I", small_file[6:10])
    header_end = spec.PREFIX_NBYTES + hlen
    path = tmp_path / "forged.dcz"
    for i in range(spec.PREFIX_NBYTES, len(small_file)):
        if header_end <= i < header_end + spec.CRC_NBYTES:
            continue
        data = bytearray(small_file)
        data[i] ^= mask
        data = forged(bytes(data)) if i < header_end else rechecked(bytes(data))
        path.write_bytes(data)
        with contextlib.suppress(InputError):
            container.open_container(path).read_all()


def test_a_layer_larger_than_memory_is_refused_before_decoding(tmp_path, monkeypatch) -> None:
    """A few bits of a pruned layer stand for 2**16 zeros: the limit is memory, not file size."""
    model = mixed_model(tmp_path / "model.npz")
    run(ModelCodec(model), ModelSettings(), tmp_path / "out.dcz")
    box = container.open_container(tmp_path / "out.dcz")
    index = next(i for i, r in enumerate(box.records) if r.deep is not None)
    record = box.records[index]
    assert container.memory_nbytes() > 1 << 30  # the real figure: this machine has GiBs
    monkeypatch.setattr(container, "memory_nbytes", lambda: record.size * 8 - 1)
    with pytest.raises(InputError, match="more than this machine's memory") as err:
        box.read_layer(index)
    assert f"layer {record.name!r} decodes to {record.size:,} values" in str(err.value)
    monkeypatch.setattr(container, "memory_nbytes", lambda: record.size * 8)
    assert box.read_layer(index).shape == record.shape
