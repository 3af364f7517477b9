"""The C decoder's registered methods (codes >= 16) against the Python reader.

Files written with every registered method and entropy stage (``Method.bind(...).encode``, as
the compress path does) must decode bit for bit as ``open_container(...).read_layer`` does,
to every float dtype a record may have; their damaged variants (cut short, bits flipped, CRCs
made right so the damage reaches the method checks) must be refused by both readers or by
neither, under AddressSanitizer and UndefinedBehaviorSanitizer. One gap is tested as such:
the C decoder does not read the ``huffman`` entropy stage (decoder/README.md) and refuses its
layers by name.
"""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options
from inspector.errors import SettingsError
from inspector.format import container
from inspector.format.header import Coded, LayerRecord

ROOT = Path(__file__).resolve().parents[2]


def _load(relative: str, name: str) -> ModuleType:
    spec_ = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec_ is not None and spec_.loader is not None
    module = importlib.util.module_from_spec(spec_)
    sys.modules[name] = module
    spec_.loader.exec_module(module)
    return module


_C = _load("tests/decoder/test_c_decoder.py", "_c_methods_base")
agree, forge = _C.agree, _C.forge

pytestmark = [
    pytest.mark.skipif(_C.CC is None, reason="no C compiler (cc) on this machine: C decoder "
                       "untested"),
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                               "ignore:overflow encountered in cast:RuntimeWarning"),
]

METHODS = ("uniform", "int8", "int4", "fp16", "bf16", "ternary", "binary", "pq", "hashed")
STAGES = ("fixed", "cabac")  # huffman: not read by the C decoder (see the module docstring)
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")


def coded_layer(name: str, method: str, options: dict, w: np.ndarray, dtype: str
                ) -> tuple[LayerRecord, bytes]:
    """One layer written as the compress path writes a registered method's layer."""
    m = registry.method(method)
    plan, payload = m.bind(w.reshape(-1), w.shape).encode(resolve_options(m.options, options))
    record = LayerRecord(name, dtype, w.shape, len(payload), zlib.crc32(payload),
                         coded=Coded(method, m.code, plan.params))
    return record, payload


def option_sets(method: str) -> list[dict]:
    """Every granularity and entropy stage the method offers (the C-readable ones), with
    uniform's cell means, rate-distortion levels and absolute step too."""
    names = {o.name: o for o in registry.method(method).options}
    grans = names["granularity"].choices if "granularity" in names else (None,)
    stages = STAGES if "entropy" in names else (None,)
    out = []
    for g in grans:
        for s in stages:
            o: dict = {}
            if g is not None:
                o["granularity"] = g
                if g == "group":
                    o["group"] = 7
            if s is not None:
                o["entropy"] = s
            out.append(o)
    if method == "uniform":
        out += [{"recon": "mean", "lam": 0.3, "entropy": "cabac", "granularity": "group",
                 "group": 5},
                {"recon": "mean", "entropy": "fixed"}, {"step": 0.01, "entropy": "cabac"},
                {"int_bits": 3, "granularity": "channel", "entropy": "fixed"}]
    if method == "pq":
        out += [{"dim": 3, "code_bits": 3, "entropy": "cabac"}, {"dim": 1, "entropy": "fixed"}]
    if method == "hashed":
        out += [{"sign": "on"}, {"sign": "off"}]
    return [o for o in out if set(o) <= set(names)]


def stage_of(record: LayerRecord) -> int | None:
    """The entropy stage code a coded record names (None for a method without a stream)."""
    assert record.coded is not None
    at = {"uniform": 1, "int8": 1, "int4": 1, "ternary": 0, "binary": 0, "pq": 0}
    return record.coded.params[at[record.coded.method]] if record.coded.method in at else None


SHAPES = ((7,), (6, 11), (4, 3, 2, 5))


def test_every_method_and_stage_decodes_bit_exactly(dczdump: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(16)
    covered = set()
    for method in METHODS:
        records, payloads = [], []
        for k, options in enumerate(option_sets(method)):
            for j, shape in enumerate(SHAPES):
                w = (rng.standard_t(3, shape) * 10.0 ** rng.integers(-3, 2)).astype(np.float32)
                dtype = FLOAT_DTYPES[(k + j) % 4]
                r, p = coded_layer(f"{method}.{k}.{j}", method, options, w, dtype)
                records.append(r)
                payloads.append(p)
                covered.add((method, options.get("entropy"), options.get("granularity")))
        path = tmp_path / f"{method}.dcz"
        container.write(path, records, payloads)
        assert agree(dczdump, path), method
    assert {m for m, _, _ in covered} == set(METHODS)
    assert {s for _, s, _ in covered} == {None, *STAGES}


SMALL_INTS = ("group", "dim", "code_bits", "int_bits", "buckets", "hash_seed")


@st.composite
def coded_files(draw: st.DrawFn) -> tuple[list[LayerRecord], list[bytes]]:
    """1-3 layers, each of any registered method with options drawn from its declarations."""
    records, payloads = [], []
    for i in range(draw(st.integers(1, 3))):
        method = draw(st.sampled_from(METHODS))
        m = registry.method(method)
        options: dict = {}
        for o in m.options:
            if not draw(st.booleans()):
                continue
            if o.name == "entropy":
                options[o.name] = draw(st.sampled_from(("auto", *STAGES)))
            elif o.choices:
                options[o.name] = draw(st.sampled_from(o.choices))
            elif o.kind is int and o.name in SMALL_INTS:
                options[o.name] = draw(st.integers(int(o.lo or 1), min(int(o.hi or 8), 9)))
            elif o.kind is float and o.name in ("rel_step", "lam"):
                options[o.name] = draw(st.sampled_from((0.01, 0.1, 0.5)))
        shape = draw(st.sampled_from(((1,), (9,), (3, 4), (5, 1, 3), (2, 8, 1, 1))))
        scale = draw(st.sampled_from((1e-4, 0.05, 1.0, 300.0)))
        seed = draw(st.integers(0, 2**16))
        w = (np.random.default_rng(seed).laplace(0, scale, shape)).astype(np.float32)
        if draw(st.booleans()):
            w[np.abs(w) < scale] = 0.0  # zero-heavy: constant units, zero scales
        try:
            r, p = coded_layer(f"l{i}", method, options, w, draw(st.sampled_from(FLOAT_DTYPES)))
        except SettingsError:
            assume(False)
        assume(stage_of(r) != 2)  # "auto" may pick huffman
        records.append(r)
        payloads.append(p)
    return records, payloads


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much])
@given(model=coded_files())
def test_random_coded_files_decode_bit_exactly(dczdump: Path, tmp_path: Path, model) -> None:
    records, payloads = model
    path = tmp_path / "coded.dcz"
    container.write(path, records, payloads)
    assert agree(dczdump, path)


def test_huffman_stage_is_refused_by_name(dczdump: Path, tmp_path: Path) -> None:
    """The documented gap: a layer whose levels are huffman-coded is refused in one line
    naming the coder (the Python reader reads it)."""
    w = np.random.default_rng(3).normal(0, 1, (8, 16)).astype(np.float32)
    r, p = coded_layer("w", "uniform", {"entropy": "huffman"}, w, "float32")
    assert stage_of(r) == 2
    path = tmp_path / "huffman.dcz"
    container.write(path, [r], [p])
    assert container.open_container(path).read_layer(0).shape == w.shape
    done = subprocess.run([str(dczdump), str(path)], capture_output=True, text=True)
    assert done.returncode != 0 and done.stdout == ""
    assert "unsupported entropy coder 2 (huffman)" in done.stderr


def test_damaged_coded_files_under_sanitizers(dczdump_asan: Path, tmp_path: Path) -> None:
    """One file per method (every C-readable stage), cut short and with bits flipped, CRCs
    kept wrong or made right: both readers agree, the sanitizers find nothing."""
    rng = np.random.default_rng(27)
    outcomes = {True: 0, False: 0}
    for method in METHODS:
        records, payloads = [], []
        for k, options in enumerate(option_sets(method)[:4]):
            w = rng.laplace(0, 0.1, (5, 6)).astype(np.float32)
            w[np.abs(w) < 0.05] = 0
            r, p = coded_layer(f"{method}{k}", method, options, w, FLOAT_DTYPES[k % 4])
            records.append(r)
            payloads.append(p)
        good = tmp_path / "good.dcz"
        container.write(good, records, payloads)
        data = good.read_bytes()
        variants = [data[:n] for n in sorted({10, len(data) // 2, len(data) - 1})]
        for _ in range(16):
            flipped = bytearray(data)
            flipped[int(rng.integers(10, len(data)))] ^= 1 << int(rng.integers(0, 8))
            variants.append(forge(bytes(flipped)))
        for j, variant in enumerate(variants):
            path = tmp_path / f"{method}_{j}.dcz"
            path.write_bytes(variant)
            outcomes[agree(dczdump_asan, path)] += 1
    assert outcomes[False] > 40 and outcomes[True] > 0, outcomes


def test_a_varint_past_32_bits_is_refused(dczdump: Path, tmp_path: Path) -> None:
    """A hashed bucket count spelled in five bytes whose top bits pass 2**32 (2**32 + 3) is
    refused by both readers; read into 32 bits it would wrap to 3, a valid count."""
    payload = np.arange(3, dtype="<f4").tobytes()
    for count, valid in ((bytes([3]), True), (bytes([0x83, 0x80, 0x80, 0x80, 0x10]), False)):
        params = bytes([0]) + (7).to_bytes(4, "little") + count
        rec = LayerRecord("h", "float32", (4, 2), len(payload), zlib.crc32(payload),
                          coded=Coded("hashed", 27, params))
        path = tmp_path / "hashed.dcz"
        container.write(path, [rec], [payload])
        assert agree(dczdump, path) == valid


def _uniform_file(path: Path, params: bytes, payload: bytes, shape: tuple[int, ...],
                  dtype: str = "float32") -> Path:
    rec = LayerRecord("u", dtype, shape, len(payload), zlib.crc32(payload),
                      coded=Coded("uniform", 16, params))
    container.write(path, [rec], [payload])
    return path


def test_uniform_edges_of_float32(dczdump: Path, tmp_path: Path) -> None:
    """Hand-made uniform records at float32's edges: a subnormal value (the smallest step
    with a -64/128 cell mean), a value and a step that overflow (refused), a level past
    2**20 - 1 (refused), a group of one weight; both readers agree on each."""
    fixed = registry.entropy("fixed")
    tiny = struct.pack("<f", 2.0**-126)
    big = struct.pack("<f", 3.0e38)
    levels = np.array([1, -1, 0, 2], dtype=np.int32)
    exps = bytes([0x00, 0x1F, 0xF0])  # 12-bit exponents 1 and 0xFF0 (o = 255: overflows)
    cases = [  # (params, payload, shape, dtype, accepted)
        (bytes([4, 1]) + tiny + bytes([1, 0xC0]), fixed.encode(levels), (4,), "float32", True),
        (bytes([4, 1]) + tiny + bytes([1, 0xC0]), fixed.encode(levels), (4,), "float16", True),
        (bytes([0, 1]) + big, fixed.encode(np.array([1, 1, 1, 1])), (2, 2), "float64", True),
        (bytes([0, 1]) + big, fixed.encode(levels), (2, 2), "float32", False),
        (bytes([1, 1]) + tiny + bytes([12]), exps[:2] + b"\x00" + fixed.encode(levels),
         (2, 2), "float32", True),
        (bytes([1, 1]) + tiny + bytes([12]), exps + fixed.encode(levels), (2, 2), "float32",
         False),
        (bytes([0, 1]) + tiny, fixed.encode(np.array([1 << 20, 0])), (2,), "float32", False),
        (bytes([0, 1]) + tiny, fixed.encode(np.array([(1 << 20) - 1, 0])), (2,), "float32",
         True),
        (bytes([2, 3]) + struct.pack("<f", 0.5) + bytes([3, 1]),
         bytes([0b00101100, 0b11000000]) + registry.entropy("cabac").encode(levels), (1, 4),
         "bfloat16", True),
    ]
    for k, (params, payload, shape, dtype, accepted) in enumerate(cases):
        path = _uniform_file(tmp_path / f"edge{k}.dcz", params, payload, shape, dtype)
        assert agree(dczdump, path) == accepted, k
