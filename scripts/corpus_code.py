"""Hostile corpus cases of issue 11, classes 1, 2, 5 and 10, for ``tests/io/test_corpus.py``.

Called by ``scripts/make_corpus.py``, which writes them next to its own files and lists them in
``tests/corpus/manifest_code.json``:

1. code execution: pickles naming ``os.system``/``builtins.exec`` (zip, legacy, TorchScript
   data and constants, ``.npz`` object arrays), a TorchScript ``__setstate__`` that creates a
   file when ``torch.jit.load`` runs it, Keras configs with a ``Lambda`` layer (marshalled code)
   and registered custom objects;
2. memory corruption in torch: sparse COO/CSR tensors with indices outside their shape (zip and
   legacy), negative strides, views reaching past their storage;
3. silent corruption: valid checkpoints, TorchScript archives and ``.keras`` files re-zipped
   with deflate (they must read equal to the stored original, listed as ``"equals"``);
4. accepted where refusal is right: a safetensors header filling the whole file, the E8M0
   scale dtype, duplicate header keys, ONNX external data with unknown keys.

Entries may carry ``"equals"`` (another corpus file whose tensors they must read as, bit for
bit) and ``"marker"`` (a file that must not exist after reading, in the reader's working
folder: the hostile payload creates it).
"""

from __future__ import annotations

import base64
import collections
import io
import json
import marshal
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: The file a TorchScript ``__setstate__`` creates (in the current folder) if it ever runs.
TS_MARKER = "INSPECTOR_CORPUS_PWNED_TS"
SEED = 20151001


# ------------------------------------------------------------------------ zip surgery


def rezip(data: bytes, compress: Callable[[str], bool] = lambda name: True) -> bytes:
    """The same archive with the members ``compress`` picks deflated, dated 1980."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            kind = zipfile.ZIP_DEFLATED if compress(info.filename) else zipfile.ZIP_STORED
            fresh = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fresh.compress_type = kind
            target.writestr(fresh, source.read(info.filename))
    return out.getvalue()


def replace_member(data: bytes, name: str, content: bytes, drop: str | None = None) -> bytes:
    """The archive with member ``name`` holding ``content`` (members dated 1980), and without
    the members whose names end with ``drop``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if drop is not None and info.filename.endswith(drop):
                continue
            fresh = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fresh.compress_type = info.compress_type
            body = content if info.filename == name else source.read(info.filename)
            target.writestr(fresh, body)
    return out.getvalue()


def member_named(data: bytes, suffix: str) -> str:
    return next(n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.endswith(suffix))


# -------------------------------------------------------------- hand-made torch archives


class Storage:
    """A storage written as torch's persistent id ``("storage", type, key, "cpu", numel)``."""

    def __init__(self, key: str, values: np.ndarray) -> None:
        import torch

        self.key, self.values = key, np.ascontiguousarray(values)
        self.kind = {np.float32: torch.FloatStorage, np.int64: torch.LongStorage}[
            self.values.dtype.type
        ]


class Strided:
    """A tensor record ``_rebuild_tensor_v2(storage, offset, shape, strides, ...)``, any values."""

    def __init__(self, storage: Storage, offset: int, shape: tuple[int, ...],
                 strides: tuple[int, ...]) -> None:  # fmt: skip
        self.args = (storage, offset, shape, strides)

    def __reduce__(self) -> tuple[Any, ...]:
        import torch

        return (torch._utils._rebuild_tensor_v2, (*self.args, False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.values.size)
        return None


def torch_zip(obj: Any, storages: list[Storage], folder: str = "archive") -> bytes:
    """A zip checkpoint laid out as ``torch.save`` writes one, holding hand-made records."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        members = [("data.pkl", buf.getvalue()), ("byteorder", b"little")]
        members += [(f"data/{s.key}", s.values.tobytes()) for s in storages]
        members += [("version", b"3\n")]
        for name, body in members:
            archive.writestr(zipfile.ZipInfo(f"{folder}/{name}", (1980, 1, 1, 0, 0, 0)), body)
    return out.getvalue()


class Calls:
    """Unpickling this calls ``func(*args)``: a file that runs code when loaded."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


# --------------------------------------------------------------------------- the builders


def small_state() -> dict[str, Any]:
    import torch

    flat = torch.randn(24, generator=torch.Generator().manual_seed(SEED))
    # Views of one storage: a legacy file orders its storages by memory address.
    return {"fc1.weight": flat[:12].view(4, 3), "fc1.bias": flat[12:16],
            "fc2.weight": flat[16:].view(2, 4)}  # fmt: skip


def add_code_execution(c: Any, torch_bytes: Callable[..., bytes], torchscript: bytes,
                       tmp: Path) -> None:  # fmt: skip
    """Class 1: every way a model file could run code while its weights are read."""
    import os

    state = small_state()
    refuse = "refers to posix.system: not loaded" if os.name == "posix" else "not loaded"
    system = Calls(os.system, "touch INSPECTOR_CORPUS_PWNED_SYSTEM")
    c.add("code_pt_zip_system.pt", torch_bytes({**state, "x": system}),
          "zip checkpoint whose pickle calls os.system", refuse)
    c.add("code_pt_legacy_system.pt", torch_bytes({**state, "x": system}, legacy=True),
          "legacy checkpoint whose pickle calls os.system", refuse)
    data_pkl = member_named(torchscript, "/data.pkl")
    hostile = pickle.dumps(Calls(exec, "import os; os.environ['INSPECTOR_CORPUS_PWNED'] = '1'"),
                           protocol=2)  # fmt: skip
    c.add("code_ts_data_exec.pt", replace_member(torchscript, data_pkl, hostile),
          "TorchScript data.pkl calling builtins.exec", "refers to builtins.exec: not loaded")
    constants = member_named(torchscript, "/constants.pkl")
    c.add("code_ts_constants_system.pt", replace_member(torchscript, constants,
          pickle.dumps(system, protocol=2)), "TorchScript constants.pkl calling os.system",
          refuse)  # fmt: skip
    c.add("code_ts_setstate.pt", setstate_script(tmp),
          f"TorchScript __setstate__ creating {TS_MARKER} when torch.jit.load runs it",
          "restores its state with its own code", marker=TS_MARKER)
    obj = np.empty(1, dtype=object)
    obj[0] = system
    npy = io.BytesIO()
    np.lib.format.write_array(npy, obj, allow_pickle=True)
    c.add("code_npz_object_system.npz", npz({"w.npy": npy.getvalue()}),
          ".npz object array whose pickle calls os.system", refuse)
    keras, h5 = keras_with_code(tmp)
    c.add("code_keras_lambda.keras", keras,
          ".keras config with a Lambda layer (marshalled code) and a custom object", "reads")
    c.add("code_h5_lambda.h5", h5, "legacy .h5 config with a Lambda layer", "reads")


def setstate_script(tmp: Path) -> bytes:
    """A scripted module whose ``__setstate__`` creates :data:`TS_MARKER` (torch.from_file)."""
    import subprocess
    import sys

    source = tmp / "setstate_module.py"
    source.write_text(f'''
import io, sys, torch
from typing import Tuple

class Marked(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(-1, 1, 6).view(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t()

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        marker = torch.from_file("{TS_MARKER}", True, 1)
        if marker.numel() < 0:
            return
        self.weight = state[0]
        self.training = state[1]

buf = io.BytesIO()
torch.jit.save(torch.jit.script(Marked()), buf)
sys.stdout.buffer.write(buf.getvalue())
''')  # the compiler needs the class's source in a file
    data = subprocess.run([sys.executable, str(source)], capture_output=True, check=True,
                          cwd=tmp).stdout  # fmt: skip
    serial = member_named(data, ".data/serialization_id")
    # The debug records name the temporary source file: leave them out (they are optional).
    return replace_member(data, serial, b"0" * 40, drop=".debug_pkl")


def npz(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in members.items():
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), body)
    return out.getvalue()


def keras_with_code(tmp: Path) -> tuple[bytes, bytes]:
    """A ``.keras`` and a legacy ``.h5`` whose configs hold a Lambda layer with marshalled
    bytecode (setting ``INSPECTOR_CORPUS_PWNED`` if Keras ever deserialized it)."""
    import h5py

    code = compile("import os; os.environ['INSPECTOR_CORPUS_PWNED'] = '1'", "<lambda>", "exec")
    function = base64.b64encode(marshal.dumps(code)).decode()
    rng = np.random.default_rng(SEED)
    kernel, bias = rng.normal(size=(3, 2)).astype(np.float32), np.zeros(2, np.float32)
    layers = [
        {"class_name": "Dense", "config": {"name": "fc1", "units": 2}},
        {"class_name": "Lambda", "config": {"name": "hook", "function": {
            "class_name": "__lambda__", "config": {"code": function, "defaults": None,
                                                   "closure": None}}}},
        {"class_name": "MyCustomLayer", "registered_name": "Custom>MyCustomLayer",
         "module": "os", "config": {"name": "custom"}},
    ]  # fmt: skip
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": layers}}
    weights = tmp / "code.weights.h5"
    with h5py.File(weights, "w", track_order=True) as f:
        group = f.create_group("layers/dense/vars")
        group.create_dataset("0", data=kernel)
        group.create_dataset("1", data=bias)
        f.create_group("layers/lambda/vars")
        f.create_group("layers/my_custom_layer/vars")
    meta = {"keras_version": "3.0.0", "date_saved": "1980-01-01@00:00:00"}
    archive = npz({"metadata.json": json.dumps(meta).encode(),
                   "config.json": json.dumps(config).encode(),
                   "model.weights.h5": weights.read_bytes()})  # fmt: skip
    legacy = tmp / "code.h5"
    with h5py.File(legacy, "w", track_order=True) as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"fc1", b"hook", b"custom"]
        for name in ("fc1", "hook", "custom"):
            g = root.create_group(name)
            own = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            g.attrs["weight_names"] = own if name == "fc1" else []
        root["fc1"].create_dataset("fc1/kernel:0", data=kernel)
        root["fc1"].create_dataset("fc1/bias:0", data=bias)
    return archive, legacy.read_bytes()


def add_memory_corruption(c: Any, torch_bytes: Callable[..., bytes]) -> None:
    """Class 2: tensors whose layout would make torch read or write outside their memory."""
    import torch

    values = torch.tensor([1.0, 2.0])

    def coo(indices: list[list[int]]) -> Any:
        return torch.sparse_coo_tensor(torch.tensor(indices), values, (4, 4),
                                       check_invariants=False)  # fmt: skip

    def csr(crow: list[int], col: list[int]) -> Any:
        return torch.sparse_csr_tensor(torch.tensor(crow), torch.tensor(col), values, (2, 4),
                                       check_invariants=False)  # fmt: skip

    for name, tensor, damage in (
        ("mem_pt_coo_far.pt", coo([[0, 1 << 30], [0, 2]]), "COO index 2**30 in a 4x4 tensor"),
        ("mem_pt_coo_edge.pt", coo([[0, 4], [0, 2]]), "COO index 4 in a 4x4 tensor (one past)"),
        ("mem_pt_coo_negative.pt", coo([[0, -3], [0, 2]]), "COO index -3"),
        ("mem_pt_csr_column.pt", csr([0, 1, 2], [0, 99]), "CSR column 99 of 4"),
        ("mem_pt_csr_rows.pt", csr([0, 5, 2], [0, 1]), "CSR row pointers 0, 5, 2 for 2 values"),
    ):
        c.add(name, torch_bytes({"w": tensor}), damage, "sparse")
    c.add("mem_pt_legacy_coo_far.pt", torch_bytes({"w": coo([[0, 1 << 30], [0, 2]])},
          legacy=True), "legacy checkpoint, COO index 2**30 in a 4x4 tensor", "sparse")
    c.add("mem_pt_legacy_csr_rows.pt", torch_bytes({"w": csr([0, 5, 2], [0, 1])}, legacy=True),
          "legacy checkpoint, CSR row pointers 0, 5, 2 for 2 values", "sparse")
    storage = Storage("0", np.arange(6, dtype=np.float32))
    for name, record, damage, expect in (
        ("mem_pt_negative_stride.pt", Strided(storage, 5, (6,), (-1,)),
         "a view with stride -1 from the storage's end", "negative strides"),
        ("mem_pt_stride_past.pt", Strided(storage, 0, (3, 3), (3, 1)),
         "a 3x3 view of a 6-element storage", "storage"),
        ("mem_pt_offset_past.pt", Strided(storage, 1 << 40, (2,), (1,)),
         "storage offset 2**40 in a 6-element storage", "storage"),
        ("mem_pt_negative_offset.pt", Strided(storage, -1, (), ()),
         "storage offset -1 (the element before the storage)", "negative storage offset"),
    ):  # fmt: skip
        c.add(name, torch_zip({"w": record}, [storage]), damage, expect)


def add_silent_corruption(c: Any, torch_bytes: Callable[..., bytes], torchscript: bytes,
                          keras: bytes) -> None:  # fmt: skip
    """Class 5: legal re-packings of valid files, which must read exactly as the originals."""
    import torch

    state = small_state()
    state["bf"] = torch.linspace(-2, 2, 5).to(torch.bfloat16)
    state["steps"] = torch.tensor(7)
    stored = torch_bytes(state)
    c.add("silent_pt_stored.pt", stored, "the reference: a checkpoint with stored members",
          "reads")
    c.add("silent_pt_deflated.pt", rezip(stored), "the same checkpoint re-zipped with deflate",
          "reads", equals="silent_pt_stored.pt")
    c.add("silent_pt_one_deflated.pt", rezip(stored, lambda n: n.endswith("data/0")),
          "only the first storage deflated", "reads", equals="silent_pt_stored.pt")
    c.add("silent_ts_stored.pt", torchscript, "the reference: a TorchScript archive", "reads")
    c.add("silent_ts_deflated.pt", rezip(torchscript),
          "the same TorchScript archive re-zipped with deflate", "reads",
          equals="silent_ts_stored.pt")
    c.add("silent_keras_stored.keras", keras, "the reference: a .keras archive", "reads")
    c.add("silent_keras_deflated.keras", rezip(keras), "the same .keras re-zipped with deflate",
          "reads", equals="silent_keras_stored.keras")
    c.add("silent_pt_complex.pt", torch_bytes({"fc.weight": state["fc1.weight"],
          "phase": torch.tensor([1 + 2j, -0.5j], dtype=torch.complex64)}),
          "a complex64 tensor (compress must not drop its imaginary part)", "reads",
          compress="is complex64")  # fmt: skip


def add_wrong_acceptance(c: Any, onnx_bytes: Callable[..., bytes]) -> None:
    """Class 10: files each reader accepted although they are malformed or unsupported."""
    from onnx import TensorProto

    def safetensors(header: dict[str, Any] | bytes, data: bytes = b"") -> bytes:
        raw = header if isinstance(header, bytes) else json.dumps(header).encode()
        return struct.pack("<Q", len(raw)) + raw + data

    empty = {"w": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}
    c.add("accept_st_header_fills_file.safetensors", safetensors(empty),
          "header length = file size - 8: one empty tensor, no data", "reads",
          compress="holds no weights")
    c.add("accept_st_metadata_only.safetensors", safetensors({"__metadata__": {"a": "b"}}),
          "header length = file size - 8: metadata only", "no tensors")
    e8m0 = {"w": {"dtype": "F8_E8M0", "shape": [4], "data_offsets": [0, 4]}}
    c.add("accept_st_e8m0_nan.safetensors", safetensors(e8m0, b"\xff\x7f\x00\x01"),
          "F8_E8M0 scales, one of them NaN (0xFF)", "F8_E8M0")
    f4 = {"w": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}
    c.add("accept_st_f4.safetensors", safetensors(f4, b"\x12\x34"), "a 4-bit F4 tensor", "F4")
    twice = (b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
             b'"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')  # fmt: skip
    c.add("accept_st_duplicate_key.safetensors", safetensors(twice, bytes(8)),
          "the header names tensor w twice", "twice")
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "accept_onnx_external_unknown_key.bin"), ("offset", "0"),
                       ("length", "48"), ("compression", "zlib")):  # fmt: skip
        tensor.external_data.add(key=key, value=value)
    c.add("accept_onnx_external_unknown_key.onnx", onnx_bytes(tensor),
          "external data entry with an unknown key 'compression'", "unknown external-data key")
    c.companion("accept_onnx_external_unknown_key.bin", bytes(48))


def add_all(c: Any, tmp: Path, torch_bytes: Callable[..., bytes], torchscript: bytes,
            keras: bytes, onnx_bytes: Callable[..., bytes]) -> None:  # fmt: skip
    """Every case of this module, in order."""
    add_code_execution(c, torch_bytes, torchscript, tmp)
    add_memory_corruption(c, torch_bytes)
    add_silent_corruption(c, torch_bytes, torchscript, keras)
    add_wrong_acceptance(c, onnx_bytes)
