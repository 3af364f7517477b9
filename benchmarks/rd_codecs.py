"""The codecs of the rate-distortion benchmark, each a sweep of points (bytes, decoded tensors).

Every codec codes the same tensors (a :class:`rd_models.Subject`'s float tensors) and is
measured by its own bytes: NNCodec's bitstream length, the zstd frame of the per-channel
int-N baseline, the file our writer produces for Deep Compression. Each point is decoded
from those bytes before its fidelity is measured. The "ours" hook lives in :mod:`rd_ours`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rd_nnc
import zstandard
from rd_models import SAMPLES, Score, Subject

from inspector.format.container import open_container
from inspector.model.settings import COMPRESSIBLE_KINDS, ModelSettings, load_settings
from inspector.tasks.codec import ModelCodec, compress


@dataclass(frozen=True, slots=True)
class Point:
    """One setting of one codec: its bytes and the fidelity of what they decode to."""

    codec: str
    label: str
    nbytes: int
    score: Score


Decoded = tuple[str, int, dict[str, np.ndarray]]  # label, bytes, decoded tensors


def measured(codec: str, subject: Subject, points: Iterator[Decoded]) -> Iterator[Point]:
    for label, nbytes, tensors in points:
        yield Point(codec, label, nbytes, subject.measure(tensors))


def lossy(subject: Subject) -> list[str]:
    """The tensors every lossy codec quantizes: the ones our codec compresses (fc, conv and
    embedding kinds; biases, norms and buffers are stored as they are)."""
    kinds = {i.name: i.kind for i in subject.loaded.infos}
    return [k for k, v in subject.tensors.items()
            if kinds.get(k) in COMPRESSIBLE_KINDS and v.ndim >= 2]


# -------------------------------------------------------------------------------- NNCodec
NNC_KINDS = frozenset({"conv", "fc", "embedding", "bias", "norm"})


def nnc_settings(tier: int, quick: bool) -> list[rd_nnc.Setting]:
    """QP (step 2**(qp/4)) and the RDOQ lambda scale, swept; coarser on bigger models, over
    the QPs that reach the levels measured (LeNets: no loss up to QP -18; the real models
    lose cosine 0.99 past QP -30)."""
    if quick:
        return [rd_nnc.Setting(qp) for qp in (-40, -30, -20)]
    qps = (range(-40, -9, 2), range(-44, -19, 3), range(-44, -27, 4))[tier]
    lambdas = ((0.0, 0.5, 1.0, 2.0), (0.0, 1.0), (0.0, 1.0))[tier]
    return [rd_nnc.Setting(qp, lam) for lam in lambdas for qp in qps]


def nnc_points(subject: Subject, quick: bool) -> Iterator[Decoded]:
    """Weights, biases and norms go to NNCodec (1-D ones at its fine non-weight QP); buffers
    (batch-norm statistics, an ONNX graph's shape constants) and other constants are counted
    as raw float32, as every codec here keeps them: NNCodec's fine quantization still moves
    a Resize scale of 2.0 to 2.0000005, and PP-OCR's detector then fails to run."""
    kinds = {i.name: i.kind for i in subject.loaded.infos}
    coded = {k: v for k, v in subject.tensors.items() if kinds.get(k) in NNC_KINDS and v.ndim}
    raw = 4 * sum(v.size for k, v in subject.tensors.items() if k not in coded)
    for s in nnc_settings(subject.tier, quick):
        bs = rd_nnc.encode(coded, s)
        got = rd_nnc.decode(bs)
        out = {**subject.tensors, **{k: got[k].reshape(v.shape) for k, v in coded.items()}}
        yield s.label, len(bs) + raw, out


# ------------------------------------------------------------- per-channel int-N + zstd
ZSTD_LEVEL = 19


def intn_encode(tensors: dict[str, np.ndarray], quantized: list[str], bits: int) -> bytes:
    """A zstd frame of: a JSON index (names, shapes, bits), then per tensor either its
    per-output-channel float32 scales and one int8 level a weight (symmetric, levels in
    +-(2**(bits-1) - 1); int4 and below packed two levels a byte), or its float32 values."""
    index, parts = [], []
    for name, w in tensors.items():
        q = name in quantized
        index.append([name, list(w.shape), bits if q else 32])
        if not q:
            parts.append(w.astype("<f4").tobytes())
            continue
        rows = w.reshape(w.shape[0], -1)
        top = (1 << (bits - 1)) - 1
        scale = (np.abs(rows).max(axis=1) / top).astype(np.float32)
        safe = np.where(scale > 0, scale, 1).astype(np.float32)
        levels = np.clip(np.rint(rows / safe[:, None]), -top, top).astype(np.int8)
        parts += [scale.astype("<f4").tobytes(), _pack(levels.reshape(-1), bits)]
    head = json.dumps(index, separators=(",", ":")).encode()
    raw = len(head).to_bytes(4, "little") + head + b"".join(parts)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)


def intn_decode(frame: bytes) -> dict[str, np.ndarray]:
    raw = memoryview(zstandard.ZstdDecompressor().decompress(frame))
    n = int.from_bytes(raw[:4], "little")
    pos, out = 4 + n, {}
    for name, shape, bits in json.loads(bytes(raw[4:4 + n])):
        size = int(np.prod(shape, dtype=np.int64))
        if bits == 32:
            out[name] = np.frombuffer(raw[pos:pos + 4 * size], "<f4").reshape(shape).copy()
            pos += 4 * size
            continue
        rows = shape[0]
        scale = np.frombuffer(raw[pos:pos + 4 * rows], "<f4")
        pos += 4 * rows
        nb = _packed_nbytes(size, bits)
        levels = _unpack(np.frombuffer(raw[pos:pos + nb], np.uint8), bits, size)
        pos += nb
        out[name] = (levels.reshape(rows, -1) * scale[:, None]).astype(np.float32).reshape(shape)
    return out


def _pack(levels: np.ndarray, bits: int) -> bytes:
    if bits > 4:
        return levels.tobytes()
    nib = (levels.astype(np.int16) & 0xF).astype(np.uint8)
    if nib.size % 2:
        nib = np.append(nib, np.uint8(0))
    return (nib[0::2] | (nib[1::2] << 4)).tobytes()


def _packed_nbytes(size: int, bits: int) -> int:
    return size if bits > 4 else (size + 1) // 2


def _unpack(data: np.ndarray, bits: int, size: int) -> np.ndarray:
    if bits > 4:
        return data.view(np.int8)[:size].astype(np.float32)
    nib = np.empty(2 * data.size, np.uint8)
    nib[0::2], nib[1::2] = data & 0xF, data >> 4
    return ((nib[:size].astype(np.int16) ^ 8) - 8).astype(np.float32)  # sign-extend 4 bits


def intn_points(subject: Subject, bits: tuple[int, ...]) -> Iterator[Decoded]:
    quantized = lossy(subject)
    for b in bits:
        frame = intn_encode(subject.tensors, quantized, b)
        yield f"int{b}", len(frame), intn_decode(frame)


# ------------------------------------------------------------ Deep Compression (ours, v1)
PAPER = {"LeNet-300-100": "lenet300_100_paper.json", "LeNet-5": "lenet5_paper.json"}


def deep_grid(tier: int, quick: bool) -> list[tuple[float, int, str]]:
    """(sparsity, bits, init): sparsity 0-0.9 in steps of 0.1, bits 3-8, optimal and the
    paper's linear init on the LeNets (as issue 12 measured); on the real models, where
    pruning half the weights already costs most of the output, 0-30% and 5-8 bits."""
    if quick:
        return [(0.5, 5, "optimal"), (0.8, 4, "optimal")]
    if tier == 1:
        return [(s, b, "optimal") for s in (0.0, 0.1, 0.2, 0.3) for b in (5, 6, 7, 8)]
    if tier == 2:
        return [(s, b, "optimal") for s in (0.0, 0.2) for b in (5, 6, 8)]
    return [(s / 10, b, init) for init in ("optimal", "linear") for s in range(10)
            for b in range(3, 9)]


def deep_settings(subject: Subject, quick: bool) -> list[tuple[str, ModelSettings]]:
    out = []
    paper = PAPER.get(subject.name)
    if paper:
        out.append(("paper recipe", load_settings(SAMPLES / paper)))
    for s, b, init in deep_grid(subject.tier, quick):
        cfg = {"policy": "sparsity", "value": s, "bits": b, "init": init, "min_sqnr": None}
        out.append((f"{s:.0%} pruned, {b} bits, {init}", ModelSettings(defaults=cfg)))
    return out


def deep_points(subject: Subject, settings: list[tuple[str, ModelSettings]]
                ) -> Iterator[Decoded]:
    """Each setting's ``.dcz`` as ``inspector compress`` writes it, read back from disk."""
    codec = ModelCodec(subject.loaded)
    with tempfile.TemporaryDirectory(prefix="rd_bench_") as tmp:
        path = Path(tmp) / "model.dcz"
        for label, s in settings:
            gen = compress(codec, s, path)
            try:
                while True:
                    next(gen)
            except StopIteration as stop:
                _, nbytes = stop.value
            assert nbytes == path.stat().st_size
            decoded = open_container(path).read_all()
            yield label, nbytes, {k: np.asarray(decoded[k], np.float32) for k in subject.tensors}
