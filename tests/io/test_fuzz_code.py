"""Fuzzing properties of issue 11's classes 1, 2 and 5 (``scripts/fuzz.py`` runs them longer).

* Round trip: any tensor of any dtype a reader accepts, written by the real library (torch zip
  and legacy, TorchScript, safetensors, numpy), read, compressed losslessly and decompressed to
  every weight format, reads back bit for bit as the reader first read it; a dtype the ``.dcz``
  cannot hold is refused in one line, never converted.
* Tensor records: any offset, shape and strides (negative too) over a storage, and any sparse
  COO/CSR indices, give the array numpy's own indexing gives, or one InputError; never a crash.
* Code: a pickle naming any callable is refused as code, by that name, in every container.
* Re-packing: any subset of a valid archive's members deflated reads as the original.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))  # the corpus builders
from corpus_code import Storage, Strided, member_named, replace_member, rezip, torch_zip

from inspector.errors import InputError
from inspector.format.container import open_container
from inspector.io import read_model, write_weights
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, compress
from inspector.tasks.drive import run_to_end

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
SAMPLES = ROOT / "sample_models"
EXAMPLES = int(os.environ.get("INSPECTOR_FUZZ_EXAMPLES", "200"))
# Each example writes and reads real files: a quarter of the examples test_fuzz.py runs (the
# suite's 200 give 50), and a twentieth where torch scripts and saves a module per example.
FUZZ = settings(max_examples=max(10, EXAMPLES // 4), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SLOW = settings(FUZZ, max_examples=max(10, EXAMPLES // 20))
# Everything excluded: the .dcz holds every tensor as it is, so the trip must be exact.
LOSSLESS = ModelSettings().with_defaults(excluded=True)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

TORCH_DTYPES = [
    torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8,
    torch.int16, torch.int32, torch.int64, torch.bool, torch.uint16, torch.uint32,
    torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2, torch.complex64, torch.complex128,
]  # fmt: skip
SOURCES = ("pt", "pt_legacy", "torchscript", "safetensors", "npz")
OUTPUTS = (".pt", ".safetensors", ".npz")


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    """Any bit pattern (NaN payloads, infinities, subnormals) of any dtype, any small shape."""
    dtype = draw(st.sampled_from(TORCH_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    size = torch.empty(0, dtype=dtype).element_size()
    raw = draw(st.binary(min_size=size * int(np.prod(shape)), max_size=size * int(np.prod(shape))))
    if dtype == torch.bool:
        raw = bytes(b & 1 for b in raw)
    return torch.frombuffer(bytearray(raw) or bytearray(size), dtype=torch.uint8)[
        : len(raw)
    ].view(dtype).reshape(shape).clone()


def _write_source(path: Path, kind: str, tensor: torch.Tensor) -> None:
    state = {"layer.weight": tensor, "layer.bias": torch.arange(3, dtype=torch.float32)}
    if kind in ("pt", "pt_legacy"):
        torch.save(state, path, _use_new_zipfile_serialization=kind == "pt")
    elif kind == "torchscript":
        module = torch.nn.Module()
        for name, value in state.items():
            module.register_buffer(name.replace(".", "_"), value)
        torch.jit.save(torch.jit.script(module), str(path))
    elif kind == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        try:
            arrays = {k: v.numpy() for k, v in state.items()}
        except TypeError:  # numpy has no such dtype
            assume(False)
        np.savez(path, **arrays)


def _decompress(dcz: Path, output: Path) -> dict[str, np.ndarray]:
    box = open_container(dcz)
    tensors = {r.name: box.read_layer(i) for i, r in enumerate(box.records)}
    write_weights(output, tensors, {r.name: r.dtype for r in box.records})
    return read_model(output).tensors


@SLOW
@given(tensor=tensors(), kind=st.sampled_from(SOURCES))
def test_decompress_writes_what_the_reader_read(
    tmp_path: Path, tensor: torch.Tensor, kind: str
) -> None:
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    source = tmp_path / f"source.{'npz' if kind == 'npz' else 'pt'}"
    if kind == "safetensors":
        source = tmp_path / "source.safetensors"
    try:
        _write_source(source, kind, tensor)
    except (RuntimeError, TypeError, ValueError, KeyError):
        assume(False)  # the library itself cannot write this dtype in this format
    try:
        model = read_model(source)
    except InputError as exc:
        # torch's own safe loader cannot read the dtypes its legacy format keeps untyped
        assume(not (kind == "pt_legacy" and "newer than that format" in exc.problem))
        raise
    dcz = tmp_path / "out.dcz"
    try:
        run_to_end(compress(ModelCodec(model), LOSSLESS, dcz))
    except InputError as exc:  # only a dtype the container cannot hold, said in one line
        assert tensor.dtype.is_complex and "complex" in exc.problem, exc
        assert "\n" not in str(exc) and not dcz.exists()
        return
    assert not tensor.dtype.is_complex, "a complex tensor went into the .dcz"
    for suffix in OUTPUTS:
        try:
            back = _decompress(dcz, tmp_path / f"back{suffix}")
        except InputError as exc:  # a writer refusing a dtype it cannot store: one line
            assert "\n" not in str(exc)
            continue
        assert sorted(back) == sorted(model.tensors), suffix  # safetensors sorts its names
        for name, first in model.tensors.items():
            got = back[name]
            assert got.shape == first.shape and got.dtype == first.dtype, (suffix, name)
            assert got.tobytes() == first.tobytes(), f"{suffix}: {name} changed bits"


# ------------------------------------------------------------------ hostile tensor records


@FUZZ
@given(
    numel=st.integers(0, 12),
    offset=st.integers(-2, 14),
    shape=st.lists(st.integers(0, 4), max_size=3),
    strides=st.lists(st.integers(-3, 5), min_size=3, max_size=3),
)
def test_any_strided_record_reads_as_numpy_indexes_it_or_is_refused(
    tmp_path: Path, numel: int, offset: int, shape: list[int], strides: list[int]
) -> None:
    values = np.arange(numel, dtype=np.float32)
    storage = Storage("0", values)
    strides = strides[: len(shape)]
    path = tmp_path / "records.pt"
    path.write_bytes(torch_zip({"w": Strided(storage, offset, tuple(shape), tuple(strides))},
                               [storage]))  # fmt: skip
    try:
        got = read_model(path).tensors["w"]
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    # It read: then every index it used lies inside the storage, and the values agree.
    index = np.full(shape, offset, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(shape, strides, strict=True)):
        steps = (np.arange(n) * s).reshape([-1 if a == axis else 1 for a in range(len(shape))])
        index = index + steps
    assert index.size == 0 or (index.min() >= 0 and index.max() < numel)
    np.testing.assert_array_equal(got, values[index] if index.size else np.zeros(shape, np.float32))


@FUZZ
@given(
    rows=st.lists(st.integers(-6, 6), min_size=0, max_size=5),
    cols=st.lists(st.integers(-6, 6), min_size=0, max_size=5),
    layout=st.sampled_from(["coo", "csr"]),
)
def test_any_sparse_indices_read_as_dense_or_are_refused(
    tmp_path: Path, rows: list[int], cols: list[int], layout: str
) -> None:
    n = min(len(rows), len(cols))
    values = torch.arange(1, n + 1, dtype=torch.float32)
    if layout == "coo":
        tensor = torch.sparse_coo_tensor(torch.tensor([rows[:n], cols[:n]], dtype=torch.int64)
                                         .reshape(2, n), values, (4, 4), check_invariants=False)
    else:  # rows as the compressed row pointers of a 3x4 matrix
        crow = torch.tensor([*rows, 0, 0, 0, 0][:4], dtype=torch.int64)
        tensor = torch.sparse_csr_tensor(crow, torch.tensor(cols[:n], dtype=torch.int64),
                                         values, (3, 4), check_invariants=False)
    path = tmp_path / "sparse.pt"
    torch.save({"w": tensor}, path)
    try:
        got = read_model(path).tensors["w"]
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    with torch.sparse.check_sparse_tensor_invariants():  # it read: torch agrees it is valid
        expected = torch.load(path, weights_only=True)["w"].to_dense().numpy()
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------- code in a pickle

CALLABLES = [("posix", "system"), ("builtins", "exec"), ("builtins", "eval"),
             ("subprocess", "Popen"), ("builtins", "getattr"), ("torch", "load"),
             ("numpy", "load"), ("shutil", "rmtree"), ("os", "remove")]  # fmt: skip


def _hostile_pickle(module: str, name: str) -> bytes:
    """``{"w": module.name("x")}`` as protocol 2 opcodes, written by hand (nothing imported)."""
    call = b"c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x00x\x85R"
    return b"\x80\x02}X\x01\x00\x00\x00w" + call + b"s."


@FUZZ
@given(target=st.sampled_from(CALLABLES), container=st.sampled_from(["pt", "torchscript", "npz"]))
def test_a_pickle_naming_a_callable_is_refused_as_code(
    tmp_path: Path, target: tuple[str, str], container: str
) -> None:
    module, name = target
    data = _hostile_pickle(module, name)
    if container == "npz":
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("w.npy", header.getvalue() + data)
        raw = out.getvalue()
    else:
        source = (CORPUS / ("silent_pt_stored.pt" if container == "pt" else "silent_ts_stored.pt"))
        original = source.read_bytes()
        raw = replace_member(original, member_named(original, "/data.pkl"), data)
    path = tmp_path / f"hostile.{'npz' if container == 'npz' else 'pt'}"
    path.write_bytes(raw)
    with pytest.raises(InputError) as info:
        read_model(path)
    assert f"refers to {module}.{name}: not loaded" in info.value.problem, info.value


# ------------------------------------------------------------------------- re-packing

ARCHIVES = ["silent_pt_stored.pt", "silent_ts_stored.pt", "silent_keras_stored.keras",
            "any_npz_named.bin"]  # fmt: skip


@settings(FUZZ, max_examples=max(10, EXAMPLES // 20))
@given(name=st.sampled_from(ARCHIVES), pick=st.lists(st.booleans(), min_size=20, max_size=20))
def test_any_members_deflated_read_as_the_original(
    tmp_path: Path, name: str, pick: list[bool]
) -> None:
    original = (CORPUS / name).read_bytes()
    names = zipfile.ZipFile(io.BytesIO(original)).namelist()
    chosen = {n for n, p in zip(names, pick, strict=False) if p}
    path = tmp_path / f"repacked{Path(name).suffix or '.npz'}"
    path.write_bytes(rezip(original, lambda n: n in chosen))
    want = read_model(CORPUS / name).tensors
    got = read_model(path).tensors
    assert list(got) == list(want)
    for key, arr in want.items():
        assert got[key].dtype == arr.dtype and got[key].tobytes() == arr.tobytes(), key
