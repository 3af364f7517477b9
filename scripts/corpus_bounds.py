"""Corpus entries for bounds (issue 11, classes 3, 4, 6, 8): files that would make a reader hang,
materialise far more than the file holds, or accept a ``.dcz`` whose fields disagree.

Called by ``scripts/make_corpus.py`` after its own entries (whose valid files these start from),
into the same folder; the entries go to ``tests/corpus/manifest_bounds.json``, which
``tests/io/test_corpus.py`` replays with the rest. An entry may set ``memory_nbytes``: the test
then runs as if the machine had that much memory, so a file whose layers sum past half of it is
refused the same way on every machine.

Large versions of these cases (10,000 duplicate names, gigabytes of repeated zip members) and
real models re-packed the hostile way are built at test time by ``tests/io/test_bounds.py``:
they would not fit a small committed corpus.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from make_corpus import (  # type: ignore[import-not-found]
    SEED,
    Corpus,
    caffe_classes,
    dcz_header,
    dcz_records,
    npy_bytes,
    pin_numbers,
    torch_bytes,
)

MANIFEST = "manifest_bounds.json"


# ------------------------------------------------------------------------------- zip surgery


def local_entry(name: str, data: bytes) -> bytes:
    """A stored member's local header and data (dated 1980)."""
    raw = name.encode()
    head = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, zlib.crc32(data),
                       len(data), len(data), len(raw), 0)  # fmt: skip
    return head + raw + data


def central_entry(name: str, data: bytes, offset: int) -> bytes:
    raw = name.encode()
    sizes = (zlib.crc32(data), len(data), len(data), len(raw))
    head = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, *sizes,
                       0, 0, 0, 0, 0, offset)  # fmt: skip
    return head + raw


def end_record(count: int, size: int, offset: int) -> bytes:
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, size, offset, 0)


def quoted_zip(names: list[str], arrays: list[np.ndarray]) -> bytes:
    """Members that each hold the next one, local header and all, inside their own data (a
    "quoted overlap" bomb: n members read about n**2 / 2 members' bytes). Every member is a
    valid ``.npy`` array; the inner ones are uint8 arrays of the bytes they quote."""
    inner = local_entry(names[-1], npy_bytes(arrays[-1]))
    datas = [npy_bytes(arrays[-1])]
    offsets_in = [0]
    for name in reversed(names[:-1]):
        header = npy_bytes(np.zeros(len(inner), np.uint8))[: -len(inner)]
        data = header + inner
        offsets_in.append(30 + len(name.encode()) + len(header))
        datas.append(data)
        inner = local_entry(name, data)
    datas.reverse()
    starts = [0]
    for skip in reversed(offsets_in[1:]):
        starts.append(starts[-1] + skip)
    central = b"".join(central_entry(n, d, s) for n, d, s in zip(names, datas, starts, strict=True))
    return inner + central + end_record(len(names), len(central), len(inner))


def repeat_central(data: bytes, name: str, times: int) -> bytes:
    """``data`` (a zip) with member ``name``'s central directory entry listed ``times`` times."""
    eocd = data.rindex(b"PK\x05\x06")
    count, size, offset = struct.unpack_from("<HIIH", data, eocd + 10)[:3]
    central = data[offset : offset + size]
    pos = 0
    while True:
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", central, pos + 28)
        end = pos + 46 + name_len + extra_len + comment_len
        if central[pos + 46 : pos + 46 + name_len] == name.encode():
            entry = central[pos:end]
            break
        pos = end
    central += entry * (times - 1)
    count += times - 1
    tail = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), offset, 0)
    return data[:offset] + central + tail


# ------------------------------------------------------------------------------ .dcz surgery


def dcz_from(records: list[Any], payloads: list[bytes], version: int = 1) -> bytes:
    """A ``.dcz`` of ``version`` with these records and payloads, every CRC right (no
    writer-side checks)."""
    from inspector.format import header as v1
    from inspector.format import header_v2 as v2
    from inspector.format import spec

    fixed = [dataclasses.replace(r, crc=zlib.crc32(p)) for r, p in zip(records, payloads,
                                                                         strict=True)]  # fmt: skip
    header = (v1 if version == 1 else v2).encode_header(fixed)
    prefix = spec.MAGIC + bytes([version, 0]) + struct.pack("<I", len(header))
    return prefix + header + struct.pack("<I", zlib.crc32(header)) + b"".join(payloads)


def dcz_parts(data: bytes) -> tuple[list[Any], list[bytes]]:
    """The records and payloads of a ``.dcz`` of either version (``data[4]``)."""
    from inspector.format import header as v1
    from inspector.format import header_v2 as v2
    from inspector.format import spec

    records = (v1 if data[4] == 1 else v2).decode_header(dcz_header(data))
    pos = spec.PREFIX_NBYTES + len(dcz_header(data)) + spec.CRC_NBYTES
    payloads = []
    for r in records:
        payloads.append(data[pos : pos + r.payload_nbytes])
        pos += r.payload_nbytes
    return records, payloads


def sparse_deep_layer(name: str, size: int, index_bits: int = 16) -> tuple[Any, bytes]:
    """A deep layer of ``size`` values holding one 1.0 at its end: fillers of the largest gap
    lead there, so a few kilobytes stand for ``size`` values (the real encoders' streams)."""
    from inspector.core.layer import Layout
    from inspector.core.prune import Mask
    from inspector.core.settings import LayerSettings
    from inspector.core.streams import encode_stream, plan_stream
    from inspector.format.header import Deep, LayerRecord

    step = 1 << index_bits
    entries = size // step
    assert entries * step == size
    wsym = np.ones(entries, np.uint32)
    wsym[-1] = 0  # the last entry is the one kept weight; every other is a filler
    gsym = np.full(entries, step - 1, np.uint32)
    wplan = plan_stream(np.bincount(wsym, minlength=2).astype(np.int64), 1, False)
    gplan = plan_stream(np.bincount(gsym, minlength=step).astype(np.int64), index_bits, True)
    wtable, wcode = encode_stream(wsym, wplan)
    gtable, gcode = encode_stream(gsym, gplan)
    payload = np.float32(1.0).tobytes() + wtable + gtable + wcode + gcode
    layout = Layout(size=size, codebook_size=1, has_filler=True, index_bits=index_bits,
                    entries=entries, weight_huffman=wplan.lengths is not None,
                    gap_huffman=gplan.lengths is not None, weight_nbytes=len(wcode))  # fmt: skip
    settings = LayerSettings(bits=1, index_bits=index_bits)
    deep = Deep(settings, Mask(0.5, 0), 1, layout)
    return LayerRecord(name, "float32", (size,), len(payload), 0, deep), payload


# ----------------------------------------------------------------------------------- entries


def add_hangs(c: Corpus) -> None:
    """Class 3: work that grows faster than the file (small instances; test_bounds has large)."""
    pt = (c.folder / "any_pt_named.npz").read_bytes()
    data_member = next(n for n in zipfile.ZipFile(io.BytesIO(pt)).namelist() if "/data/" in n)
    c.add("pt_zip_repeated_member.pt", repeat_central(pt, data_member, 40),
          "the tensor data member listed 40 times in the central directory",
          "is listed twice")  # fmt: skip
    rng = np.random.default_rng(SEED)
    arrays = [rng.normal(size=8).astype(np.float32) for _ in range(4)]
    c.add("npz_quoted_overlap.npz", quoted_zip([f"w{i}.npy" for i in range(4)], arrays),
          "4 members, each holding the next inside its data (quoted overlap)", "overlap")
    keras = (c.folder / "any_keras_named.zip").read_bytes()
    c.add("keras_repeated_member.keras", repeat_central(keras, "model.weights.h5", 5),
          "model.weights.h5 listed 5 times", "is listed twice")
    c.add("caffe_duplicate_names.caffemodel", caffe_duplicates(100),
          "100 layers named 'a' after layers named a_2 and a_3 (names stay unique)", "reads")
    c.add("h5_repeated_layer.h5", h5_repeated_layer(c.folder / "any_h5_named.bin", 200),
          "layer_names lists the same layer 200 times", "is listed twice")


def caffe_duplicates(count: int) -> bytes:
    net = caffe_classes()["NetParameter"](name="dups")
    for name in ["a_2", "a_3", *["a"] * count]:
        net.layer.add(name=name, type="InnerProduct").blobs.add(data=[1.0, 2.0]).shape.dim.extend(
            [2])
    return net.SerializeToString()


def h5_repeated_layer(source: Path, times: int) -> bytes:
    import tempfile

    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "rep.h5"
        target.write_bytes(source.read_bytes())
        with h5py.File(target, "r+") as f:
            group = f.get("model_weights", f)
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
            with_weights = next(n for n in names if len(group[n].attrs.get("weight_names", [])))
            group.attrs["layer_names"] = np.array([with_weights.encode()] * times)
        return target.read_bytes()


def add_amplification(c: Corpus) -> None:
    """Class 4: many tensors over the same bytes, and deflate over deflate."""
    import torch

    flat = torch.arange(1024, dtype=torch.float32)
    views = {f"w{i}": flat[i : i + 768] for i in range(100)}
    c.add("pt_overlapping_views.pt", torch_bytes(views),
          "100 tensors of 3 KB over one 4 KB storage, each shifted by one element",
          "bytes of data can hold", huge=True)  # fmt: skip
    buf = io.BytesIO()
    torch.save(views, buf, _use_new_zipfile_serialization=False)
    # storage keys are memory addresses; past 256 memo entries the pickle puts them with "r"
    legacy = pin_numbers(buf.getvalue(), rb"X[\x08-\x20]\x00\x00\x00(\d{8,32})(?=[qr])")
    c.add("pt_legacy_overlapping_views.pt", legacy,
          "the same 100 views, in a legacy (non-zip) torch.save file", "bytes of data can hold",
          huge=True)  # fmt: skip
    tied = {"embed.weight": flat.view(32, 32), "head.weight": flat.view(32, 32)}
    c.add("pt_tied_weights.pt", torch_bytes(tied), "two tensors, the same view (tied weights)",
          "reads")
    from onnx import TensorProto, helper

    inits = []
    for i in range(64):
        t = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[32, 32])
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "onnx_external_shared.bin"), ("offset", "0"),
                           ("length", "4096")):  # fmt: skip
            t.external_data.add(key=key, value=value)
        inits.append(t)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [32, 32])
    nodes = [helper.make_node("Add", ["x", "w0"], ["y"])]
    graph = helper.make_graph(nodes, "shared", [x], [y], inits)
    model = helper.make_model(graph, producer_name="corpus",
                              opset_imports=[helper.make_opsetid("", 13)])  # fmt: skip
    c.add("onnx_external_shared.onnx", model.SerializeToString(),
          "64 initializers of 4 KB, all the same 4 KB of one external file",
          "bytes of data can hold", huge=True)  # fmt: skip
    c.companion("onnx_external_shared.bin", np.arange(1024, dtype=np.float32).tobytes())
    c.add("npz_empty_member_bomb.npz", npz_zero_bomb(),
          "one deflated member of 2 MB of zeros, well within deflate's ratio", "reads")


def npz_zero_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo("zeros.npy", (1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, npy_bytes(np.zeros(1 << 19, np.float32)), compresslevel=9)
    return buf.getvalue()


def add_dcz(c: Corpus) -> None:
    """Class 6: a ``.dcz`` whose fields disagree with each other or with the payload."""
    from inspector.format.header import Deep

    data = (c.folder / "any_dcz_named.pt").read_bytes()
    records, payloads = dcz_parts(data)
    deep_at = next(i for i, r in enumerate(records) if r.deep is not None)
    deep = records[deep_at]
    assert deep.deep is not None
    renamed = [dataclasses.replace(r, name=records[0].name) for r in records]
    c.add("dcz_duplicate_names.dcz", dcz_from(renamed, payloads), "every layer has one name",
          "two layers are named")
    empty = dataclasses.replace(deep, shape=(0, *deep.shape))
    c.add("dcz_zero_dimension.dcz", dcz_records(data, lambda r: empty if r.deep else r),
          "the deep layer's shape gets a zero dimension", "zero dimension")
    c.add("dcz_no_layers.dcz", dcz_from([], []), "a header with no layers", "holds no layers")

    def with_deep(**changes: Any) -> list[Any]:
        new = Deep(**{**{f.name: getattr(deep.deep, f.name) for f in
                         dataclasses.fields(Deep)}, **changes})  # fmt: skip
        return [dataclasses.replace(r, deep=new) if i == deep_at else r
                for i, r in enumerate(records)]  # fmt: skip

    c.add("dcz_survivors_disagree.dcz",
          dcz_from(with_deep(survivors=deep.deep.survivors - 1), payloads),
          "the deep layer's record counts one kept weight fewer than its streams hold",
          "kept weights")  # fmt: skip
    lay = deep.deep.layout
    grown = with_deep(layout=dataclasses.replace(lay, weight_nbytes=lay.weight_nbytes + 1))
    grown[deep_at] = dataclasses.replace(grown[deep_at], payload_nbytes=deep.payload_nbytes + 1)
    extra = list(payloads)
    extra[deep_at] = payloads[deep_at] + b"\0"
    c.add("dcz_weight_stream_long.dcz", dcz_from(grown, extra),
          "the weight stream's length one byte longer (a byte added to keep the gap stream)",
          "weight stream")  # fmt: skip
    padded = list(records)
    padded[deep_at] = dataclasses.replace(deep, payload_nbytes=deep.payload_nbytes + 3)
    c.add("dcz_payload_padding.dcz", dcz_from(padded, [p + b"\0\0\0" if i == deep_at else p
                                                      for i, p in enumerate(payloads)]),
          "3 bytes after the deep layer's gap stream, within its payload", "does not end where")
    nan = list(payloads)
    nan[deep_at] = np.float32(np.nan).tobytes() + payloads[deep_at][4:]
    c.add("dcz_codebook_nan.dcz", dcz_from(records, nan), "a NaN in the codebook",
          "not finite")
    layers = [sparse_deep_layer(f"fc{i}.weight", 1 << 27) for i in range(8)]
    c.add("dcz_layers_sum_past_memory.dcz", dcz_from([r for r, _ in layers],
                                                     [p for _, p in layers]),
          "8 layers of 2**27 values (512 MiB each as float32) on a machine with 4 GiB: each "
          "fits, together they decode past half its memory", "memory budget", huge=True,
          memory_nbytes=4 << 30)  # fmt: skip


def add_environment(c: Corpus) -> None:
    """Class 8: an empty model (a 15-byte .dcz used to be written from it)."""
    header = b"{}"
    c.add("st_empty.safetensors", struct.pack("<Q", len(header)) + header,
          "a safetensors file holding no tensors", "holds no tensors")
    c.add("npz_empty.npz", npz_bytes_empty(), "an .npz with no members", "contains no arrays")


def npz_bytes_empty() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w"):
        pass
    return buf.getvalue()


def build(folder: Path) -> None:
    """Write every bounds entry into ``folder`` (make_corpus's files already there) and its
    manifest."""
    c = Corpus(folder)
    add_hangs(c)
    add_amplification(c)
    add_dcz(c)
    add_environment(c)
    doc = {**json.loads(c.manifest()), "generator": "scripts/corpus_bounds.py"}
    (folder / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n")
