"""The portable C decoder (decoder/dcz.c) against the Python reader, file by file.

Built with the system ``cc`` (skipped without one): ``dczdump`` must write, for every file the
Python reader accepts, exactly the float32 bytes of its layers (numpy's astype(float32) of
what ``read_layer`` returns), and refuse, with one line on stderr and nothing on stdout,
every file the Python reader refuses. The damaged files run through a second build under
AddressSanitizer and UndefinedBehaviorSanitizer, which abort (several lines, non-zero exit)
on any finding, so "refused with one line" also means "no finding".
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inspector.core.layer import LayerCodec
from inspector.core.positions import BITMAP, DENSE, GAPS, HOLES
from inspector.core.settings import LayerSettings
from inspector.errors import InputError
from inspector.format import container, spec, verify
from inspector.format import header as header_v1
from inspector.format.header import Deep, LayerRecord
from inspector.format.header_v2 import decode_header, encode_header

ROOT = Path(__file__).resolve().parents[2]
DECODER = ROOT / "decoder"
CORPUS = ROOT / "tests" / "corpus"
# Golden files of methods the C decoder does not read yet (decoder/README.md): it refuses them
# in one line, tested below; every other golden file must decode bit for bit.
C_UNSUPPORTED = {"lowrank.dcz": "unsupported method 19"}
GOLDEN = sorted(p for p in (ROOT / "tests" / "format").glob("golden*/**/*.dcz")
                if p.name not in C_UNSUPPORTED)
CC = shutil.which("cc")
# scripts/fuzz.py's knob: the suite runs 50, a fuzzing session as many as it asks for
FUZZ_EXAMPLES = int(os.environ.get("INSPECTOR_FUZZ_EXAMPLES", "50"))
EXAMPLES = settings(max_examples=FUZZ_EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

pytestmark = [
    pytest.mark.skipif(CC is None, reason="no C compiler (cc) on this machine: C decoder untested"),
    # float16 casts of 1e5-scale weights overflow to inf, in both readers
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                               "ignore:overflow encountered in cast:RuntimeWarning",
                               "ignore:invalid value encountered in cast:RuntimeWarning"),
]


def _load(relative: str, name: str) -> ModuleType:
    """Another test module's strategies, loaded by path (tests/ is not a package)."""
    spec_ = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec_ is not None and spec_.loader is not None
    module = importlib.util.module_from_spec(spec_)
    sys.modules[name] = module
    spec_.loader.exec_module(module)
    return module


_LAYER = _load("tests/core/test_layer.py", "_c_decoder_layer_strategies")
_BOUNDS = _load("tests/io/test_fuzz_bounds.py", "_c_decoder_bounds_strategies")
_FUZZ = _load("tests/io/test_fuzz.py", "_c_decoder_fuzz_strategies")


def python_values(path: Path, memory: int | None = None) -> bytes | None:
    """The float32 bytes the Python reader decodes ``path`` to, or None if it refuses it
    (on a machine with ``memory`` bytes, if given)."""
    with pytest.MonkeyPatch.context() as patch:
        if memory is not None:
            patch.setattr(container, "memory_nbytes", lambda: memory)
            patch.setattr(verify, "memory_nbytes", lambda: memory)
        try:
            box = container.open_container(path)
            layers = [box.read_layer(i) for i in range(len(box.records))]
        except InputError:
            return None
    with np.errstate(all="ignore"):  # float64 past float32's range: inf, in C too
        return b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in layers)


def agree(exe: Path, path: Path, memory: int | None = None) -> bool:
    """Assert the C decoder does with ``path`` what the Python reader does; True if accepted."""
    want = python_values(path, memory)
    env = {**os.environ, "ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1",
           "UBSAN_OPTIONS": "print_stacktrace=1"}
    if memory is not None:
        env["DCZDUMP_MEMORY"] = str(memory)
    done = subprocess.run([str(exe), str(path)], capture_output=True, timeout=60, env=env)
    if want is None:
        assert done.returncode != 0, f"{path}: the Python reader refuses it, the C decoder not"
        assert done.stdout == b""
        lines = done.stderr.decode("utf-8", "replace").splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{path}: "), done.stderr[-2000:]
        return False
    assert done.returncode == 0, f"{path}: refused by C only: {done.stderr[-2000:]!r}"
    assert done.stderr == b""
    assert len(done.stdout) == len(want)
    assert done.stdout == want, f"{path}: decoded values differ from the Python reader's"
    return True


def forge(data: bytes) -> bytes:
    """``data`` with its CRCs made right where its header still decodes (either version),
    so the damage reaches the checks behind them."""
    if len(data) < spec.PREFIX_NBYTES or data[4] not in spec.READ_VERSIONS:
        return data
    (hlen,) = struct.unpack_from("<I", data, 6)
    end = spec.PREFIX_NBYTES + hlen
    head, payloads = data[spec.PREFIX_NBYTES:end], data[end + spec.CRC_NBYTES:]
    if len(head) != hlen:
        return data
    try:
        records = decode_header(head, data[4])
        pos, fixed = 0, []
        for r in records:
            crc = zlib.crc32(payloads[pos:pos + r.payload_nbytes])
            fixed.append(dataclasses.replace(r, crc=crc))
            pos += r.payload_nbytes
        head = (header_v1.encode_header if data[4] == 1 else encode_header)(fixed)
    except (ValueError, KeyError, OverflowError, struct.error):
        pass
    prefix = data[:6] + struct.pack("<I", len(head))
    return prefix + head + struct.pack("<I", zlib.crc32(head)) + payloads


# ------------------------------------------------------------------------- valid files


def test_golden_files_decode_bit_exactly(dczdump: Path) -> None:
    assert len(GOLDEN) >= 7, GOLDEN
    for path in GOLDEN:
        assert agree(dczdump, path), f"{path} is refused"


def test_methods_it_does_not_read_are_refused_in_one_line(dczdump: Path) -> None:
    for name, why in C_UNSUPPORTED.items():
        path = ROOT / "tests" / "format" / "golden" / "v2" / name
        done = subprocess.run([str(dczdump), str(path)], capture_output=True, timeout=60)
        lines = done.stderr.decode("utf-8", "replace").splitlines()
        assert done.returncode != 0 and done.stdout == b"", name
        assert len(lines) == 1 and why in lines[0], lines


_RAW_DTYPES = sorted(spec.DTYPES)
_DEEP_DTYPES = ["float32", "float32", "float64", "float16", "bfloat16", "int8", "uint32",
                "int64", "bool"]


@st.composite
def model_files(draw: st.DrawFn) -> tuple[list[LayerRecord], list[bytes]]:
    """1-4 layers: deep ones from the layer property tests' weights and settings (any position
    code), raw ones of every dtype and method with any bytes (NaNs of every payload)."""
    records: list[LayerRecord] = []
    payloads: list[bytes] = []
    for i in range(draw(st.integers(1, 4))):
        name = f"features.{i}.weight" if draw(st.booleans()) else f"head{i}"
        w = draw(_LAYER.layer_weights()) if draw(st.booleans()) else None
        if w is not None and w.size:
            s = draw(_LAYER.layer_settings(w))
            codec = LayerCodec(w)
            codec.position_codes = (GAPS, draw(st.sampled_from([GAPS, BITMAP, DENSE, HOLES])))
            plan, payload = codec.encode(s)
            deep = Deep(plan.settings, plan.mask, plan.survivors, plan.layout)
            dtype = draw(st.sampled_from(_DEEP_DTYPES))
            crc = zlib.crc32(payload)
            records.append(LayerRecord(name, dtype, w.shape, len(payload), crc, deep))
            payloads.append(payload)
            continue
        dtype = draw(st.sampled_from(_RAW_DTYPES))
        stored = None
        if dtype in ("float32", "float64"):
            stored = draw(st.sampled_from([None, "float16", "bfloat16"]))
        if records and draw(st.booleans()):
            shape = records[-1].shape  # the version-2 "same shape" bit
        else:
            shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
        item = spec.DTYPES[stored or dtype][1]
        n = int(np.prod(shape, dtype=np.int64)) * item
        payload = draw(st.binary(min_size=n, max_size=n))
        records.append(LayerRecord(name, dtype, shape, n, zlib.crc32(payload), None, stored))
        payloads.append(payload)
    return records, payloads


def _v1_compatible(records: list[LayerRecord]) -> bool:
    for r in records:
        if r.stored is not None:
            return False
        lay = r.deep.layout if r.deep else None
        if lay and (lay.positions != GAPS or lay.codebook_half or lay.weight_constant
                    or lay.gap_constant):
            return False
    return True


@EXAMPLES
@given(model=model_files())
def test_random_files_decode_bit_exactly(dczdump: Path, tmp_path: Path, model) -> None:
    records, payloads = model
    names = [r.name for r in records]
    path = tmp_path / "model.dcz"
    container.write(path, records, payloads)
    assert agree(dczdump, path) == (len(set(names)) == len(names))
    if _v1_compatible(records):  # the same layers in a version-1 file
        path.write_bytes(_v1_file(records, payloads))
        agree(dczdump, path)


def _v1_file(records: list[LayerRecord], payloads: list[bytes]) -> bytes:
    head = header_v1.encode_header(records)
    return (spec.MAGIC + bytes([1, 0]) + struct.pack("<I", len(head)) + head
            + struct.pack("<I", zlib.crc32(head)) + b"".join(payloads))


def test_every_payload_form_decodes_bit_exactly(dczdump: Path, tmp_path: Path) -> None:
    """Each position code with fixed and Huffman streams, float32, float16 and delta-coded
    codebooks, fillers and constant streams, in version-2 files and (where the form exists
    there) version-1 files, decoded to several dtypes."""
    rng = np.random.default_rng(7)
    forms: set[tuple] = set()
    for p in (GAPS, BITMAP, DENSE, HOLES):
        records, payloads = [], []
        for i, (sparsity, bits, huffman, std) in enumerate(
            [(0.0, 8, True, 0.1), (0.05, 2, False, 1e5), (0.5, 8, False, 0.1),
             (0.5, 3, True, 1e-6), (0.97, 8, True, 0.1), (0.97, 1, False, 0.1)]
        ):
            w = rng.normal(0, std, (40, 75))
            codec = LayerCodec(w)
            codec.position_codes = (GAPS, p)
            s = LayerSettings(policy="sparsity", value=sparsity, bits=bits, huffman=huffman,
                              index_bits=8 if sparsity > 0.9 else 3)
            plan, payload = codec.encode(s)
            lay = plan.layout
            forms.add((lay.positions, lay.codebook_half, lay.codebook_coded, lay.weight_huffman,
                       lay.gap_huffman, lay.gap_constant, lay.has_filler))
            deep = Deep(plan.settings, plan.mask, plan.survivors, plan.layout)
            dtype = ["float32", "float16", "bfloat16", "float64"][i % 4]
            records.append(LayerRecord(f"l{i}.weight", dtype, w.shape, len(payload),
                                       zlib.crc32(payload), deep))
            payloads.append(payload)
        path = tmp_path / f"forms{p}.dcz"
        container.write(path, records, payloads)
        assert agree(dczdump, path)
        old = [(r, q) for r, q in zip(records, payloads, strict=True) if _v1_compatible([r])]
        if old:
            path.write_bytes(_v1_file([r for r, _ in old], [q for _, q in old]))
            assert agree(dczdump, path)
    seen = {name: any(f[k] for f in forms) for k, name in enumerate(
        ["positions", "half", "coded", "weight huffman", "gap huffman", "constant", "filler"])}
    assert {f[0] for f in forms} == {GAPS, BITMAP, DENSE, HOLES}
    assert all(seen.values()), seen
    assert any(not f[1] for f in forms)  # a float32 codebook too


def test_integer_deep_layers_cast_as_numpy_does(dczdump: Path, tmp_path: Path) -> None:
    """Inspector never deep-compresses an integer tensor, but the format allows the record:
    the values then go through numpy's float32 -> integer cast, out-of-range ones too."""
    rng = np.random.default_rng(5)
    w = rng.normal(0, 1, 400) * np.logspace(0, 20, 400)  # up to 1e20, both signs
    plan, payload = LayerCodec(w.astype(np.float32)).encode(
        LayerSettings(policy="sparsity", value=0.3, bits=8))
    deep = Deep(plan.settings, plan.mask, plan.survivors, plan.layout)
    for dtype in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                  "bool"):
        record = LayerRecord("w", dtype, w.shape, len(payload), zlib.crc32(payload), deep)
        path = tmp_path / f"{dtype}.dcz"
        with np.errstate(all="ignore"):
            container.write(path, [record], [payload])
            assert agree(dczdump, path)


def test_unknown_methods_are_refused_by_number(dczdump: Path, tmp_path: Path) -> None:
    """Method codes no reader knows (reserved 4-15, unregistered 19 and 200) fail safe,
    naming the code."""
    payload = np.arange(6, dtype="<f4").tobytes()
    rec = LayerRecord("fc.bias", "float32", (6,), len(payload), zlib.crc32(payload))
    head = bytearray(encode_header([rec]))
    at = head.index(bytes([spec.RAW, len(payload)]), 10)  # method byte, then payload length
    for method in (4, 19, 200):
        head[at] = method
        path = tmp_path / f"method{method}.dcz"
        path.write_bytes(spec.MAGIC + bytes([2, 0]) + struct.pack("<I", len(head)) + head
                         + struct.pack("<I", zlib.crc32(head)) + payload)
        assert not agree(dczdump, path)
        done = subprocess.run([str(dczdump), str(path)], capture_output=True, text=True)
        assert f"unsupported method {method}" in done.stderr


# ------------------------------------------------------------------------ damaged files


def corpus_files() -> list[tuple[Path, int | None]]:
    """The damaged-file corpus' .dcz files, by what its manifests say, with the machine
    memory an entry is meant for."""
    files = []
    for manifest in sorted(CORPUS.glob("manifest*.json")):
        for entry in json.loads(manifest.read_text())["entries"]:
            if entry["format"] == "dcz" or ".dcz" in entry.get("damage", ""):
                files.append((CORPUS / entry["file"], entry.get("memory_nbytes")))
    return files


def test_damaged_corpus_under_sanitizers(dczdump_asan: Path) -> None:
    files = corpus_files()
    assert len(files) >= 15
    accepted = [path.name for path, memory in files if agree(dczdump_asan, path, memory)]
    assert accepted == ["any_dcz_named.pt"]  # the valid one; every damaged one is refused


def test_damaged_golden_files_under_sanitizers(dczdump_asan: Path, tmp_path: Path) -> None:
    """Every golden file cut short and with bits flipped (CRCs kept wrong, or made right so
    the damage reaches the stream checks): both readers agree, sanitizers find nothing."""
    rng = np.random.default_rng(14)
    outcomes = {True: 0, False: 0}
    for k, golden in enumerate(GOLDEN):
        data = golden.read_bytes()
        variants = [data[:n] for n in sorted({0, 9, 10, 13, len(data) - 1,
                                              *rng.integers(14, len(data), 4).tolist()})]
        for _ in range(12):
            flipped = bytearray(data)
            flipped[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
            variants += [bytes(flipped), forge(bytes(flipped))]
        for j, variant in enumerate(variants):
            path = tmp_path / f"g{k}_{j}.dcz"
            path.write_bytes(variant)
            outcomes[agree(dczdump_asan, path)] += 1
    assert outcomes[False] > outcomes[True]


POSITIONS = (ROOT / "tests" / "format" / "golden" / "v2" / "positions.dcz").read_bytes()


@EXAMPLES
@given(data=st.one_of(_BOUNDS.edited_dcz(),
                      _FUZZ.mutated(_FUZZ.DCZ, keep=spec.PREFIX_NBYTES).map(forge),
                      _FUZZ.mutated(POSITIONS, keep=spec.PREFIX_NBYTES).map(forge)))
def test_fuzzed_files_agree_under_sanitizers(
    dczdump_asan: Path, tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "fuzzed.dcz"
    path.write_bytes(data)
    agree(dczdump_asan, path)


def test_dczdump_usage_and_missing_file(dczdump: Path, tmp_path: Path) -> None:
    assert subprocess.run([str(dczdump)], capture_output=True).returncode != 0
    done = subprocess.run([str(dczdump), str(tmp_path / "none.dcz")], capture_output=True)
    assert done.returncode != 0 and done.stdout == b"" and done.stderr.count(b"\n") == 1
    done = subprocess.run([str(dczdump), str(tmp_path)], capture_output=True)  # a directory
    assert done.returncode != 0 and done.stderr.count(b"\n") == 1
