"""Low-rank (method ``lowrank``, issue 13.1): accuracy against size, and the factorised ONNX
export's speed.

1. LeNet-5 and LeNet-300-100 (``sample_models/*.onnx``) with ``lowrank`` on every conv/fc
   weight at several energies and ranks, factors as float (fp16/fp32 by error) or uniform
   int8; biases raw. Size: the written ``.dcz`` file's bytes; accuracy: top-1 on
   ``sample_models/mnist_test.h5`` (1,000 examples) in onnxruntime, no retraining.
2. For chosen settings, the rewritten ONNX export (each low-rank layer as two nodes) against
   the original: file bytes and onnxruntime latency at batch 1 and 32, one intra-op and one
   inter-op thread for both, median of ``--repeats`` runs after a warm-up; the same for the
   rewritten TorchScript export (``*_scripted.pt``, ``torch.set_num_threads(1)``, no_grad).

Run::

    nice -n 10 .venv/bin/python benchmarks/lowrank_study.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from inspector.io import read_model
from inspector.model.settings import ModelSettings
from inspector.tasks.accuracy import open_evaluator
from inspector.tasks.codec import ModelCodec, compress
from inspector.tasks.drive import run_to_end
from inspector.tasks.export import export_rewritten

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"
SWEEP: list[tuple[str, dict]] = [
    *[(f"energy {e}", {"energy": e}) for e in (0.99, 0.95, 0.9, 0.8, 0.7, 0.6)],
    *[(f"energy {e} int8", {"energy": e, "values": "uniform", "factor_bits": 8})
      for e in (0.9, 0.8)],
    *[(f"rank {r}", {"rank": r}) for r in (64, 48, 32, 16, 8)],
    *[(f"rank {r} int8", {"rank": r, "values": "uniform", "factor_bits": 8}) for r in (64, 16)],
    *[(f"rank {r} spatial", {"rank": r, "split": "spatial"}) for r in (16, 8)],
    ("rank 16 spatial int8", {"rank": 16, "split": "spatial", "values": "uniform",
                              "factor_bits": 8}),
]
SPEED: dict[str, list[tuple[str, dict]]] = {
    "lenet300_100": [("rank 64", {"rank": 64}), ("rank 32", {"rank": 32}),
                     ("rank 16", {"rank": 16}),
                     ("energy 0.8", {"energy": 0.8})],
    "lenet5": [("rank 16", {"rank": 16}), ("rank 8", {"rank": 8}),
               ("rank 16 spatial", {"rank": 16, "split": "spatial"}),
               ("rank 8 spatial", {"rank": 8, "split": "spatial"}),
               ("energy 0.8", {"energy": 0.8})],
}


def settings_of(given: dict) -> ModelSettings:
    fc = {"method": "lowrank", **{k: v for k, v in given.items() if k != "split"}}
    return ModelSettings(defaults={"min_sqnr": None},
                         kinds={"fc": fc, "conv": {"method": "lowrank", **given}})


def accuracy_table(name: str, tmp: Path, only: str = "") -> None:
    path = SAMPLES / f"{name}.onnx"
    model = read_model(path)
    ev = open_evaluator(path, SAMPLES / "mnist_test.h5")
    base = ev.baseline.top1
    print(f"\n### {name}: top-1 against the .dcz size (baseline {base:.1%}, "
          f"{path.stat().st_size:,} bytes of ONNX, {model.nbytes:,} bytes of fp32 tensors)\n")
    print("| setting | ranks (per conv/fc layer) | .dcz bytes | x vs fp32 | top-1 | drop (pt) |")
    print("|---|---|---:|---:|---:|---:|")
    for label, given in SWEEP:
        if only and not any(w == label for w in only.split(",")):
            continue
        s = settings_of(given)
        codec = ModelCodec(model)
        est, nbytes = run_to_end(compress(codec, s, tmp / "m.dcz"))
        ranks = [str(_rank(r)) if r.coded is not None else "raw"
                 for r in est.layers if r.info.kind in ("conv", "fc")]
        tensors = {i.name: codec.quantized(i.name, s) for i in model.infos}
        acc = ev.evaluate(tensors).top1
        print(f"| {label} | {' / '.join(ranks)} | {nbytes:,} | {model.nbytes / nbytes:.1f} | "
              f"{acc:.1%} | {100 * (base - acc):+.1f} |")
        sys.stdout.flush()


def _rank(est: object) -> int:
    from inspector.core.stages import registry

    return registry.method("lowrank").describe(est.coded.params)["rank"]  # type: ignore


def latency(path: Path, x: np.ndarray, repeats: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    for _ in range(20):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def latency_torch(path: Path, x: np.ndarray, repeats: int) -> float:
    import torch

    module = torch.jit.load(str(path))
    t_x = torch.from_numpy(x)
    times = []
    with torch.no_grad():
        for _ in range(20):
            module(t_x)
        for _ in range(repeats):
            t = time.perf_counter()
            module(t_x)
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def speed_table(name: str, tmp: Path, repeats: int, torchscript: bool = False) -> None:
    path = SAMPLES / (f"{name}_scripted.pt" if torchscript else f"{name}.onnx")
    model = read_model(path)
    runner = "TorchScript (torch.jit.load, " if torchscript else "ONNX in onnxruntime ("
    print(f"\n### {name}: the factorised {runner}1 thread, median of {repeats})\n")
    print("| model | file bytes | batch 1 (us) | speed-up | batch 32 (us) | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    xs = {b: rng.random((b, 784)).astype(np.float32) for b in (1, 32)}
    timer = latency_torch if torchscript else latency
    base = {b: timer(path, x, repeats) for b, x in xs.items()}
    print(f"| original | {path.stat().st_size:,} | {base[1] * 1e6:.1f} | 1.00 | "
          f"{base[32] * 1e6:.1f} | 1.00 |")
    for label, given in SPEED[name]:
        out = tmp / f"{name}_{label.replace(' ', '_')}{path.suffix}"
        result = run_to_end(export_rewritten(model, settings_of(given), out,
                                             allow_code=torchscript))
        assert result.verified, result.mismatches
        t = {b: timer(out, x, repeats) for b, x in xs.items()}
        print(f"| {label} | {out.stat().st_size:,} | {t[1] * 1e6:.1f} | {base[1] / t[1]:.2f} | "
              f"{t[32] * 1e6:.1f} | {base[32] / t[32]:.2f} |")
        sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--no-accuracy", action="store_true")
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--models", default="lenet5,lenet300_100")
    p.add_argument("--only", default="", help="only these accuracy rows (labels, comma-separated)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            if not args.no_accuracy:
                accuracy_table(name, Path(d), args.only)
            if not args.no_speed:
                speed_table(name, Path(d), args.repeats)
                speed_table(name, Path(d), args.repeats, torchscript=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
