"""Build the damaged-file corpus that ``tests/io/test_corpus.py`` replays.

Every file starts as a tiny valid model written by the real library (torch, safetensors, numpy,
onnx, Keras 3, h5py, protobuf, our own compressor), then gets one kind of damage: cut short,
bytes flipped, a header that claims huge sizes, negative or overflowing shapes, checksums that no
longer match, unknown versions, hostile pickles. ``tests/corpus/manifest.json`` lists each file,
its damage, and the expected outcome: a substring of the one-line error, or ``"reads"`` for a
file that must still open (a wrong extension that sniffing sees through, say).

The files are committed; the tests never run this script. Rerun it only to add a case:

    .venv/bin/python scripts/make_corpus.py           # rewrite tests/corpus/
    .venv/bin/python scripts/make_corpus.py --check   # rebuild elsewhere, compare byte by byte

The output is byte-identical from run to run: random values are seeded, zip dates and the random
ids torch and Keras write are pinned. Library upgrades may still change a few bytes (``--check``
says which files).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import corpus_code  # scripts/, beside this file
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
SEED = 20151001  # the Deep Compression paper's arXiv month


class Corpus:
    """The files being written and their manifest entries."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.entries: list[dict[str, Any]] = []

    def add(self, name: str, data: bytes, damage: str, expect: str, **extra: Any) -> None:
        """Write ``data`` as ``name``.

        ``extra`` may set ``huge`` (the file claims sizes far beyond its own: memory is
        checked), ``known_bug`` or ``known_cli_bug`` (the reader, or only ``inspector info``,
        does not meet the expectation yet: the test expects it to fail).
        """
        (self.folder / name).write_bytes(data)
        fmt = name.split("_", 1)[0]
        self.entries.append({"file": name, "format": fmt, "damage": damage, "expect": expect,
                             **extra})  # fmt: skip

    def companion(self, name: str, data: bytes) -> None:
        """A file an entry needs next to it (external data); not replayed on its own."""
        (self.folder / name).write_bytes(data)
        self.entries[-1].setdefault("companions", []).append(name)

    def manifest(self, generator: str = "scripts/make_corpus.py") -> bytes:
        doc = {"generator": generator, "entries": self.entries}
        return (json.dumps(doc, indent=1) + "\n").encode()


# ------------------------------------------------------------------------------- byte surgery


def cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def flip(data: bytes, pos: int, mask: int = 0xFF) -> bytes:
    out = bytearray(data)
    out[pos] ^= mask
    return bytes(out)


def member_offset(data: bytes, name: str) -> int:
    """Where the bytes of zip member ``name`` start."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    return info.header_offset + 30 + name_len + extra_len


def set_member(data: bytes, name: str, content: bytes | None = None) -> bytes:
    """Zip ``data`` with stored member ``name`` holding ``content`` (same length), its CRC-32
    updated and its date set to 1980-01-01 wherever the archive records them."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    info = archive.getinfo(name)
    start = member_offset(data, name)
    out = bytearray(data)
    if content is not None:
        assert info.compress_type == zipfile.ZIP_STORED and len(content) == info.file_size
        out[start : start + len(content)] = content
    crc = zlib.crc32(content if content is not None else archive.read(name))
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name.encode())] != name.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<HHI", out, central + 12, 0, 0x21, crc)  # time, date, CRC-32
    struct.pack_into("<HH", out, info.header_offset + 10, 0, 0x21)
    if info.flag_bits & 0x08:  # the CRC-32 follows the data, in a data descriptor
        at = start + info.compress_size
        struct.pack_into("<I", out, at + 4 * (data[at : at + 4] == b"PK\x07\x08"), crc)
    else:
        struct.pack_into("<I", out, info.header_offset + 14, crc)
    return bytes(out)


def pin_numbers(data: bytes, pattern: bytes) -> bytes:
    """Every distinct number ``pattern``'s group 1 matches (memory addresses written as ids)
    replaced by a fixed one of the same length, so lengths and sameness are kept."""
    fixed: dict[bytes, bytes] = {}

    def pinned(match: re.Match[bytes]) -> bytes:
        number = match.group(1)
        new = fixed.setdefault(number, str(10 ** (len(number) - 1) + len(fixed)).encode())
        return match.group(0).replace(number, new)

    return re.sub(pattern, pinned, data)


def pin_torch_id(data: bytes) -> bytes:
    """torch writes a random ``.data/serialization_id``; make it a fixed one."""
    name = next(n for n in zipfile.ZipFile(io.BytesIO(data)).namelist()
                if n.endswith(".data/serialization_id"))  # fmt: skip
    return set_member(data, name, b"0" * 40)


# ----------------------------------------------------------------------- valid files, tiny


def torch_state() -> dict[str, Any]:
    """Three tensors, views of one storage: a legacy file orders its storages by memory
    address, so only a single storage keeps its bytes the same from run to run."""
    import torch

    flat = torch.randn(24, generator=torch.Generator().manual_seed(SEED))
    return {"fc1.weight": flat[:12].view(4, 3), "fc1.bias": flat[12:16],
            "fc2.weight": flat[16:].view(2, 4)}  # fmt: skip


def torch_bytes(obj: Any, legacy: bool = False) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    if legacy:  # storages are keyed by their memory address, a pickled string of digits
        return pin_numbers(buf.getvalue(), rb"X[\x08-\x20]\x00\x00\x00(\d{8,32})(?=q)")
    return pin_torch_id(buf.getvalue())


def torchscript_bytes() -> bytes:
    import torch

    torch.manual_seed(SEED)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), buf)
    return pin_torch_id(buf.getvalue())


def safetensors_bytes() -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(SEED)
    return save({"fc1.weight": rng.normal(size=(4, 3)).astype(np.float32),
                 "fc1.bias": rng.normal(size=4).astype(np.float32)})  # fmt: skip


def safetensors_with(entry: dict[str, Any], data: bytes = bytes(16)) -> bytes:
    """A safetensors file with one hand-set header entry ``"w"`` and ``data``."""
    header = json.dumps({"w": entry}, separators=(",", ":")).encode()
    return struct.pack("<Q", len(header)) + header + data


def npy_bytes(arr: np.ndarray, shape: tuple[int, ...] | None = None) -> bytes:
    """``arr`` in ``.npy`` form; ``shape`` replaces the shape its header claims."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    if shape is None:
        return buf.getvalue()
    header = io.BytesIO()
    fields = {"descr": np.lib.format.dtype_to_descr(arr.dtype), "fortran_order": False,
              "shape": shape}  # fmt: skip
    np.lib.format.write_array_header_1_0(header, fields)
    return header.getvalue() + arr.tobytes()


def npz_bytes(members: dict[str, bytes], compress: bool = False) -> bytes:
    """An ``.npz``: a zip of ``.npy`` members, dated 1980 so the bytes never change."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, raw in members.items():
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            archive.writestr(info, raw)
    return buf.getvalue()


def valid_npz() -> bytes:
    rng = np.random.default_rng(SEED)
    weight, bias = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    return npz_bytes({"fc1.weight.npy": npy_bytes(weight), "fc1.bias.npy": npy_bytes(bias)})


def onnx_bytes(initializer: Any = None) -> bytes:
    """A one-Gemm ONNX model; ``initializer`` replaces its 3x4 weight ``w``."""
    from onnx import TensorProto, helper, numpy_helper

    if initializer is None:
        w = np.random.default_rng(SEED).normal(size=(3, 4)).astype(np.float32)
        initializer = numpy_helper.from_array(w, "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    graph = helper.make_graph([node], "corpus", [x], [y], [initializer])
    opset = [helper.make_opsetid("", 13)]
    return helper.make_model(graph, producer_name="corpus", opset_imports=opset).SerializeToString()


def onnx_external(location: str, offset: int = 0, length: int = 48) -> bytes:
    """The model with its weight stored outside it, at ``location``."""
    from onnx import TensorProto

    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)
    return onnx_bytes(tensor)


def keras_files(tmp: Path) -> tuple[bytes, bytes, Path]:
    """A tiny Keras 3 model saved as ``.keras`` and as legacy ``.h5`` (and the .h5's path)."""
    os.environ["KERAS_BACKEND"] = "torch"  # read once, when keras is first imported
    import keras

    keras.utils.set_random_seed(SEED)
    x = keras.Input(shape=(4,), name="input")
    h = keras.layers.Dense(3, activation="relu", name="fc1")(x)
    model = keras.Model(x, keras.layers.Dense(2, name="fc2")(h), name="tiny")
    model.save(tmp / "tiny.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp / "tiny.h5")
    data = (tmp / "tiny.keras").read_bytes()
    meta = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("metadata.json"))
    pinned = json.dumps({**meta, "date_saved": "1980-01-01@00:00:00"}).encode()
    data = set_member(data, "model.weights.h5")  # its date is the time of saving
    config = zipfile.ZipFile(io.BytesIO(data)).read("config.json")
    data = set_member(data, "config.json", pin_numbers(config, rb'"shared_object_id": (\d+)'))
    h5 = tmp / "tiny.h5"
    return set_member(data, "metadata.json", pinned), h5.read_bytes(), h5


def h5_huge_dataset(source: Path, target: Path) -> bytes:
    """The legacy .h5 with fc1's kernel replaced by a chunked 2**20 x 2**20 dataset, unwritten."""
    import h5py

    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as f:
        found: list[str] = []
        f.visititems(lambda name, obj: found.append(name) if name.endswith("kernel") else None)
        name = next(n for n in found if "fc1" in n)
        del f[name]
        f.create_dataset(name, shape=(1 << 20, 1 << 20), dtype="f4", chunks=(16, 16))
    return target.read_bytes()


@functools.cache
def caffe_classes() -> dict[str, Any]:
    """NetParameter and the messages below it, from BVLC caffe.proto's field numbers."""
    from google.protobuf import descriptor_pb2, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="corpus_caffe.proto", package="corpus",
                                               syntax="proto2")  # fmt: skip
    layouts = {
        "BlobShape": [("dim", 1, field.TYPE_INT64, True, "")],
        "BlobProto": [("num", 1, field.TYPE_INT64, False, ""),
                      ("channels", 2, field.TYPE_INT64, False, ""),
                      ("height", 3, field.TYPE_INT64, False, ""),
                      ("width", 4, field.TYPE_INT64, False, ""),
                      ("data", 5, field.TYPE_FLOAT, True, ""),
                      ("shape", 7, field.TYPE_MESSAGE, False, ".corpus.BlobShape")],
        "LayerParameter": [("name", 1, field.TYPE_STRING, False, ""),
                           ("type", 2, field.TYPE_STRING, False, ""),
                           ("blobs", 7, field.TYPE_MESSAGE, True, ".corpus.BlobProto")],
        "V0LayerParameter": [("name", 1, field.TYPE_STRING, False, ""),
                             ("type", 2, field.TYPE_STRING, False, ""),
                             ("blobs", 50, field.TYPE_MESSAGE, True, ".corpus.BlobProto")],
        "V1LayerParameter": [("layer", 1, field.TYPE_MESSAGE, False, ".corpus.V0LayerParameter")],
        "NetParameter": [("name", 1, field.TYPE_STRING, False, ""),
                         ("layers", 2, field.TYPE_MESSAGE, True, ".corpus.V1LayerParameter"),
                         ("layer", 100, field.TYPE_MESSAGE, True, ".corpus.LayerParameter")],
    }  # fmt: skip
    for message, fields in layouts.items():
        msg = proto.message_type.add(name=message)
        for name, number, kind, repeated, type_name in fields:
            label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
            f = msg.field.add(name=name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name
            if repeated and kind != field.TYPE_MESSAGE:
                f.options.packed = True  # as Caffe writes them
    classes = message_factory.GetMessages([proto])
    return {name.rsplit(".", 1)[1]: cls for name, cls in classes.items()}


def caffe_bytes(shape: tuple[int, ...] | None = None, values: int | None = None) -> bytes:
    """A net with a conv and an fc layer; ``shape``/``values`` replace the fc weight's."""
    net = caffe_classes()["NetParameter"](name="tiny")
    rng = np.random.default_rng(SEED)
    layers = (("conv1", "Convolution", (4, 1, 3, 3)), ("ip1", "InnerProduct", (2, 4)))
    for name, kind, dims in layers:
        blob = net.layer.add(name=name, type=kind).blobs.add()
        count = int(np.prod(dims)) if values is None or name == "conv1" else values
        blob.shape.dim.extend(shape if shape is not None and name == "ip1" else dims)
        blob.data.extend(rng.normal(size=count).astype(np.float32).tolist())
    return net.SerializeToString()


def caffe_v0_bytes() -> bytes:
    """A pre-2014 net: layers wrapped as V0LayerParameter, blobs with legacy 4-D dims."""
    net = caffe_classes()["NetParameter"](name="lenet_v0")
    rng = np.random.default_rng(SEED)
    layers = (("conv1", "conv", (4, 1, 3, 3)), ("ip1", "innerproduct", (1, 1, 2, 4)))
    for name, kind, dims in layers:
        layer = net.layers.add().layer
        layer.name, layer.type = name, kind
        blob = layer.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
        blob.data.extend(rng.normal(size=int(np.prod(dims))).astype(np.float32).tolist())
    return net.SerializeToString()


def dcz_bytes(tmp: Path) -> bytes:
    """Our own compressed file: one deep layer with Huffman streams, raw bias and buffer."""
    from inspector.io import LoadedModel
    from inspector.model.settings import ModelSettings
    from inspector.tasks.codec import ModelCodec, compress
    from inspector.tasks.drive import run_to_end

    rng = np.random.default_rng(SEED)
    tensors = {"fc1.weight": rng.normal(size=(12, 10)).astype(np.float32),
               "fc1.bias": rng.normal(size=12).astype(np.float32),
               "steps": np.array([7], np.int64)}  # fmt: skip
    model = LoadedModel.build(str(tmp / "src.npz"), "numpy", tensors)
    settings = ModelSettings(defaults={"value": 0.5, "bits": 3, "index_bits": 3})
    run_to_end(compress(ModelCodec(model), settings, tmp / "tiny.dcz"))
    return (tmp / "tiny.dcz").read_bytes()


def dcz_header(data: bytes) -> bytes:
    from inspector.format import spec

    (hlen,) = struct.unpack_from("<I", data, 6)
    return data[spec.PREFIX_NBYTES : spec.PREFIX_NBYTES + hlen]


def dcz_reheader(data: bytes, header: bytes) -> bytes:
    """``data`` with another header, its CRC made right: damage only the reader's own checks
    can catch."""
    from inspector.format import spec

    payloads = data[spec.PREFIX_NBYTES + len(dcz_header(data)) + spec.CRC_NBYTES :]
    prefix = data[:6] + struct.pack("<I", len(header))
    return prefix + header + struct.pack("<I", zlib.crc32(header)) + payloads


def dcz_records(data: bytes, edit: Callable[[Any], Any]) -> bytes:
    """``data`` with every header record passed through ``edit``, CRC made right."""
    from inspector.format.header_v2 import decode_header, encode_header

    return dcz_reheader(data, encode_header([edit(r) for r in decode_header(dcz_header(data))]))


# ------------------------------------------------------------------------------------ entries


class Hostile:
    """Unpickling this runs ``exec``: a model file that would run code on load."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, ("import os; os.environ['INSPECTOR_CORPUS_PWNED'] = '1'",))


def add_generic(c: Corpus, tmp: Path) -> None:
    """Empty, a folder, noise, and valid files under the wrong name (sniffing must see through
    it; the fuzz tests start from these valid files too)."""
    noise = np.random.default_rng(SEED).bytes(512)
    c.add("any_empty.pt", b"", "empty file", "empty file")
    folder = c.folder / "any_directory.pt"
    folder.mkdir()
    (folder / "README.txt").write_text("A folder named like a model: read_model must refuse it.\n")
    c.entries.append({"file": "any_directory.pt", "format": "any", "damage": "a directory",
                      "expect": "is a directory"})  # fmt: skip
    c.add("any_noise.xyz", noise, "random bytes, unknown extension", "unrecognised model format")
    c.add("any_noise.pt", noise, "random bytes named .pt", "corrupt or truncated PyTorch file")
    c.add("any_safetensors_named.pt", safetensors_bytes(), "safetensors named .pt", "reads")
    c.add("any_pt_named.npz", torch_bytes(torch_state()), "PyTorch zip named .npz", "reads")
    c.add("any_dcz_named.pt", dcz_bytes(tmp), "our .dcz named .pt", "reads")
    c.add("any_pt_legacy_named.bin", torch_bytes(torch_state(), legacy=True),
          "legacy PyTorch pickle named .bin", "reads")
    c.add("any_torchscript_named.bin", torchscript_bytes(), "TorchScript named .bin", "reads")
    c.add("any_npz_named.bin", valid_npz(), ".npz named .bin", "reads")
    c.add("any_onnx_named.bin", onnx_bytes(), "ONNX named .bin", "reads")
    archive, h5, _ = keras_files(tmp)
    c.add("any_keras_named.zip", archive, ".keras named .zip", "reads")
    c.add("any_h5_named.bin", h5, "legacy Keras .h5 named .bin", "reads")
    c.add("any_caffe_named.bin", caffe_bytes(), ".caffemodel named .bin", "reads")


def add_pytorch(c: Corpus) -> None:
    import torch

    state = torch_state()
    zipped, legacy = torch_bytes(state), torch_bytes(state, legacy=True)
    c.add("pt_zip_truncated.pt", cut(zipped, 0.6), "zip cut at 60%", "corrupt or truncated")
    c.add("pt_legacy_truncated.pt", cut(legacy, 0.6), "legacy pickle cut at 60%",
          "corrupt or truncated")  # fmt: skip
    for name, data in (("pt_zip_exec.pt", torch_bytes({**state, "x": Hostile()})),
                       ("pt_legacy_exec.pt", torch_bytes({**state, "x": Hostile()}, True))):
        c.add(name, data, "a pickle calling builtins.exec on load",
              "refers to builtins.exec: not loaded")  # fmt: skip
    data_member = next(n for n in zipfile.ZipFile(io.BytesIO(zipped)).namelist()
                       if n.endswith("data/0"))  # fmt: skip
    c.add("pt_zip_crc.pt", flip(zipped, member_offset(zipped, data_member) + 5, 0x01),
          "one bit of tensor data flipped: the member's CRC-32 no longer matches", "Bad CRC-32")
    version = next(n for n in zipfile.ZipFile(io.BytesIO(zipped)).namelist()
                   if n.endswith("/version"))  # fmt: skip
    c.add("pt_zip_version.pt", set_member(zipped, version, b"99"),
          "archive version 99 (CRC-32 right)", "a PyTorch file with version 99")
    c.add("pt_expanded.pt", torch_bytes({"w": torch.zeros(1).expand(1 << 40)}),
          "a 1-element storage viewed as 2**40 elements", "more than the", huge=True)
    big = torch_bytes({"w": torch.ones(70_000)}, legacy=True)
    claim = b"J" + (70_000).to_bytes(4, "little")
    at = big.index(claim)  # the storage's element count in the pickle
    hostile = big[:at] + b"J" + (2**31 - 1).to_bytes(4, "little") + big[at + 5 :]
    c.add("pt_legacy_storage_huge.pt", hostile[:-70_000 * 4 + 64],
          "legacy storage claiming 2**31 floats, 64 bytes present", "wrong byte size", huge=True)
    nest: Any = [torch.ones(2)]
    for _ in range(30):
        nest = [nest, nest]  # 2**30 paths to the tensor through shared lists
    c.add("pt_shared_bomb.pt", torch_bytes({"w": nest}), "one list shared 2**30 ways", "reads")
    loop: dict[str, Any] = {"epoch": 1}
    inner: dict[str, Any] = {"fc.weight": torch.ones(2, 2)}
    inner["again"], loop["model"], loop["weights"] = inner, loop, inner
    c.add("pt_cycle.pt", torch_bytes(loop), "dicts holding themselves", "reads")
    deep: Any = torch.ones(1)
    for _ in range(40):
        deep = [deep]
    c.add("pt_deep.pt", torch_bytes({"w": deep}), "lists nested 40 deep", "more than 32 deep")


def add_torchscript(c: Corpus) -> None:
    data = torchscript_bytes()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    c.add("ts_truncated.pt", cut(data, 0.5), "TorchScript archive cut in half",
          "damaged TorchScript archive")  # fmt: skip
    pickle = next(n for n in names if n.endswith("/data.pkl"))
    c.add("ts_pickle_flip.pt", flip(data, member_offset(data, pickle)),
          "first byte of data.pkl flipped", "Bad CRC-32 for file 'archive/data.pkl'")
    tensor = next(n for n in names if n.endswith("data/0"))
    c.add("ts_crc.pt", flip(data, member_offset(data, tensor) + 5, 0x01),
          "one bit of tensor data flipped: the member's CRC-32 no longer matches", "Bad CRC-32")


def add_safetensors(c: Corpus) -> None:
    data = safetensors_bytes()
    f32 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    c.add("st_truncated.safetensors", data[:-5], "last 5 data bytes cut", "truncated")
    c.add("st_header_huge.safetensors", (2**63).to_bytes(8, "little") + data[8:],
          "header length 2**63", "header claims", huge=True)
    c.add("st_header_past_end.safetensors", (len(data)).to_bytes(8, "little") + data[8:],
          "header length larger than the file", "header claims")
    c.add("st_negative_shape.safetensors", safetensors_with({**f32, "shape": [-1, 4]}),
          "shape [-1, 4]", "invalid shape")
    c.add("st_overflow_shape.safetensors", safetensors_with({**f32, "shape": [2**62, 2**62]}),
          "shape [2**62, 2**62]: its byte count overflows 64 bits", "claims shape", huge=True)
    past_end = safetensors_with({**f32, "data_offsets": [0, 1 << 40]})
    c.add("st_offsets_past_end.safetensors", past_end, "data_offsets end 2**40 bytes in",
          "truncated safetensors file", huge=True)
    c.add("st_bad_json.safetensors", data[:8] + b"{" + data[10:], "a quote of the JSON lost",
          "malformed safetensors header")  # fmt: skip
    c.add("st_unknown_dtype.safetensors", safetensors_with({**f32, "dtype": "F33"}),
          "dtype F33", "unknown dtype")
    nested = b'{"w":' + b"[" * 5000 + b"]" * 5000 + b"}"
    c.add("st_nested_json.safetensors", struct.pack("<Q", len(nested)) + nested,
          "JSON nested 5000 deep", "nested too deep")


def add_npz(c: Corpus) -> None:
    data = valid_npz()
    obj = np.array([{"a": 1}], dtype=object)
    c.add("npz_pickled.npz", npz_bytes({"w.npy": npy_bytes(obj)}), "an object (pickled) array",
          "pickled Python objects")  # fmt: skip
    c.add("npz_truncated.npz", cut(data, 0.7), "zip cut at 70%", "truncated")
    c.add("npz_crc.npz", flip(data, member_offset(data, "fc1.weight.npy") + 140, 0x01),
          "one bit of array data flipped", "Bad CRC-32")
    ones = np.ones(4, np.float32)
    c.add("npz_huge_shape.npz", npz_bytes({"w.npy": npy_bytes(ones, (2**31,))}),
          ".npy header claiming 2**31 floats over 16 bytes", "claims shape", huge=True)
    c.add("npz_negative_shape.npz", npz_bytes({"w.npy": npy_bytes(ones, (-1,))}),
          ".npy header with shape (-1,)", "negative dimension")
    bomb = bytearray(npz_bytes({"w.npy": npy_bytes(np.zeros(4096, np.float32))}, compress=True))
    central = bomb.index(b"PK\x01\x02")
    struct.pack_into("<I", bomb, central + 24, 0xFFFF0000)  # unpacked size: 4 GB
    c.add("npz_size_claim.npz", bytes(bomb), "deflated member claiming 4 GB unpacked",
          "bytes unpacked", huge=True)


def add_onnx(c: Corpus) -> None:
    from onnx import TensorProto, numpy_helper

    data = onnx_bytes()
    c.add("onnx_truncated.onnx", cut(data, 0.5), "cut in half", "not a readable ONNX model")
    c.add("onnx_garbage.onnx", b"\x08\x07" + np.random.default_rng(SEED).bytes(300),
          "ir_version then random bytes", "not a readable ONNX model")
    c.add("onnx_external_outside.onnx", onnx_external("../secret.bin"),
          "external data at ../secret.bin", "points outside")
    c.add("onnx_external_absolute.onnx", onnx_external("/etc/passwd"),
          "external data at /etc/passwd", "absolute path")
    c.add("onnx_external_past_end.onnx", onnx_external("onnx_external_past_end.bin", 32, 48),
          "external data read past the end of its file", "exceeds")
    c.companion("onnx_external_past_end.bin", np.arange(12, dtype=np.float32).tobytes())
    huge = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    huge.dims[:] = [1 << 40, 1 << 40]
    assert huge.data_type == TensorProto.FLOAT
    c.add("onnx_dims_huge.onnx", onnx_bytes(huge), "initializer dims 2**40 x 2**40 over 12 values",
          "cannot reshape", huge=True)
    negative = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    negative.dims[:] = [-1, 4]
    c.add("onnx_dims_negative.onnx", onnx_bytes(negative), "initializer dims [-1, 4]",
          "negative dimension")


def add_keras(c: Corpus, tmp: Path) -> None:
    archive, h5, h5_path = keras_files(tmp)
    weights = member_offset(archive, "model.weights.h5")
    c.add("keras_truncated.keras", cut(archive, 0.5), "archive cut in half",
          "truncated or damaged .keras archive")  # fmt: skip
    c.add("keras_crc.keras", flip(archive, weights + 3000, 0x01),
          "one bit of the weights member flipped", "Bad CRC-32")
    c.add("h5_truncated.h5", cut(h5, 0.5), "HDF5 file cut in half", "truncated file")
    c.add("h5_superblock_flip.h5", flip(h5, 12), "a superblock byte flipped",
          "not a readable HDF5 file")  # fmt: skip
    c.add("h5_huge_shape.h5", h5_huge_dataset(h5_path, tmp / "huge.h5"),
          "a kernel dataset claiming 2**40 floats, none stored", "more than the file holds",
          huge=True)


def add_caffe(c: Corpus) -> None:
    data = caffe_bytes()
    layer = data.index(b"\xa2\x06")  # LayerParameter (field 100), then its length varint
    assert data[layer + 2] & 0x80, "the first layer must need a two-byte length"
    c.add("caffe_truncated_varint.caffemodel", data[: layer + 3], "cut inside a length varint",
          "truncated varint")
    c.add("caffe_huge_length.caffemodel", data + b"\xa2\x06\xff\xff\xff\xff\x0f",
          "a layer claiming 4 GB", "claims 4294967295 bytes", huge=True)
    c.add("caffe_blob_mismatch.caffemodel", caffe_bytes(values=6),
          "fc weight shape 2x4 holding 6 values", "(8 values) but holds 6")
    c.add("caffe_huge_shape.caffemodel", caffe_bytes(shape=(1 << 40, 1 << 40)),
          "fc weight shape 2**40 x 2**40 holding 8 values", "but holds 8", huge=True)
    c.add("caffe_v0.caffemodel", caffe_v0_bytes(), "none: a valid pre-2014 (V0) net", "reads")
    c.add("caffe_garbage.caffemodel", np.random.default_rng(SEED + 1).bytes(400),
          "random bytes", "corrupt or truncated caffemodel")


def add_dcz(c: Corpus, tmp: Path) -> None:
    import dataclasses

    from inspector.format import spec
    from inspector.format.wire import varint

    data = dcz_bytes(tmp)
    header = dcz_header(data)
    payload_start = spec.PREFIX_NBYTES + len(header) + spec.CRC_NBYTES
    c.add("dcz_bad_magic.dcz", b"\x89DCY" + data[4:], "magic bytes \\x89DCY", "bad magic")
    c.add("dcz_unknown_version.dcz", data[:4] + b"\x09" + data[5:], "format version 9",
          "format version 9 is not supported")
    c.add("dcz_unknown_flags.dcz", data[:5] + b"\x04" + data[6:], "a reserved flag set",
          "unknown file flags")
    c.add("dcz_header_crc.dcz", flip(data, spec.PREFIX_NBYTES + 3, 0x01), "a header bit flipped",
          "header is damaged (checksum mismatch)")
    c.add("dcz_payload_crc.dcz", flip(data, payload_start + 2, 0x01), "a payload bit flipped",
          "is damaged (checksum mismatch)")
    c.add("dcz_truncated.dcz", cut(data, 0.8), "cut at 80%", "truncated")
    c.add("dcz_header_length_huge.dcz", data[:6] + b"\xff\xff\xff\xff" + data[10:],
          "header length 4 GB", "header is truncated", huge=True)
    count = varint(1 << 40) + header[1:]  # the real header has fewer than 128 layers
    c.add("dcz_huge_layer_count.dcz", dcz_reheader(data, count), "2**40 layers claimed",
          "exceeds the limit", huge=True)
    wide = (1 << 30, 1 << 30)
    c.add("dcz_shape_overflow.dcz", dcz_records(data, lambda r: dataclasses.replace(
        r, shape=wide + r.shape)), "every layer's shape grown by 2**30 x 2**30", "absurd shape",
        huge=True)  # fmt: skip
    c.add("dcz_length_past_end.dcz", dcz_records(data, lambda r: dataclasses.replace(
        r, payload_nbytes=r.payload_nbytes + (1 << 40)) if r.deep else r),
        "the deep layer's payload claims 2**40 more bytes", "truncated", huge=True)  # fmt: skip
    c.add("dcz_trailing.dcz", data + b"\0" * 7, "7 bytes after the last payload",
          "unexpected trailing bytes")


def build(folder: Path) -> None:
    """Write every corpus file and the manifest into the empty ``folder``."""
    c = Corpus(folder)
    with tempfile.TemporaryDirectory() as tmp:
        add_generic(c, Path(tmp))
        add_pytorch(c)
        add_torchscript(c)
        add_safetensors(c)
        add_npz(c)
        add_onnx(c)
        add_keras(c, Path(tmp))
        add_caffe(c)
        add_dcz(c, Path(tmp))
        code = Corpus(folder)  # issue 11's classes 1, 2, 5 and 10: their own manifest
        corpus_code.add_all(code, Path(tmp), torch_bytes, torchscript_bytes(),
                            keras_files(Path(tmp))[0], onnx_bytes)
    (folder / "manifest.json").write_bytes(c.manifest())
    (folder / "manifest_code.json").write_bytes(code.manifest("scripts/corpus_code.py"))
    import corpus_bounds  # its entries start from the valid files above; own manifest
    import corpus_dcz  # version-2 .dcz forms, from the committed golden file; own manifest

    corpus_bounds.build(folder)
    corpus_dcz.build(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="rebuild in a temporary folder and compare with tests/corpus/")
    args = parser.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0":
        # TorchScript writes a module's constants in set order, which string hashing decides.
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, __file__, *sys.argv[1:]])
    sys.path.insert(0, str(ROOT))
    if not args.check:
        shutil.rmtree(CORPUS, ignore_errors=True)
        CORPUS.mkdir(parents=True)
        build(CORPUS)
        files = [p for p in CORPUS.rglob("*") if p.is_file()]
        print(f"wrote {len(files)} files, {sum(p.stat().st_size for p in files):,} bytes")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        fresh = {p.relative_to(tmp): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
    kept = {p.relative_to(CORPUS): p.read_bytes() for p in CORPUS.rglob("*") if p.is_file()}
    differ = sorted(str(n) for n in fresh.keys() | kept.keys() if fresh.get(n) != kept.get(n))
    print("identical" if not differ else "differ: " + ", ".join(differ))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
