"""How safe is the safe default? Measure a fidelity floor on real models (issue 10.4).

For each floor (dB) and each model: the size of the default file, and what the compressed
weights do to the model's outputs, measured where the model can run:

- **MiniLM sentence transformer** (safetensors): a BERT forward written here in torch from the
  weights alone, on a fixed set of sentences tokenized with the model's own ``vocab.txt``; the
  cosine of each sentence's mean-pooled embedding, compressed vs. original.
- **Runnable LeNets** (TorchScript samples): top-1 on ``sample_models/mnist_test.h5`` and the
  drop against the uncompressed model (``tasks.accuracy``).
- **EfficientNet-Lite0** (a PyTorch state dict): its forward written here from the weights,
  on 48 random crops of the three photographs that ship inside matplotlib and scikit-learn;
  top-1 agreement and logit cosine with the original (no labels needed).
- **Every model**: per compressible layer the weight-space SQNR, the pruned fraction the floor
  chose, and for fc layers the relative output error ``|(W'-W)x| / |Wx|`` on Gaussian inputs.

Run::

    .venv/bin/python benchmarks/floor_study.py --floors off 10 15 20 25 [--minilm PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from forwards import (
    EFFNET,
    IMAGES,
    MINILM,
    SENTENCES,
    bert_embed,
    effnet_forward,
    float_tensors,
    image_crops,
    sentence_ids,
)

from inspector.io import read_model
from inspector.model.settings import ModelSettings
from inspector.tasks.accuracy import open_evaluator
from inspector.tasks.codec import ModelCodec
from inspector.tasks.drive import run_to_end

ROOT = Path(__file__).resolve().parents[1]

def settings_for(floor: str) -> ModelSettings:
    """``off``, ``paper90``, ``DB`` or ``DB@BITS`` (the floor with every layer at BITS bits)."""
    if "@" in floor:
        db, bits = floor.split("@")
        return ModelSettings(defaults={"min_sqnr": float(db), "bits": int(bits)})
    if floor == "off":
        return ModelSettings(defaults={"min_sqnr": None})
    if floor == "paper90":
        return ModelSettings(defaults={"value": 0.9})
    return ModelSettings(defaults={"min_sqnr": float(floor)})


def decoded(codec: ModelCodec, settings: ModelSettings) -> tuple[dict[str, np.ndarray], float]:
    est = codec.estimate(settings)
    out = {}
    for row in est.layers:
        if row.plan is not None:
            out[row.info.name] = codec.quantized(row.info.name, settings)
    return out, est.ratio


def layer_rows(codec: ModelCodec, settings: ModelSettings, limit: int = 8) -> list[str]:
    est = codec.estimate(settings)
    rows = []
    rng = np.random.default_rng(0)
    for row in est.layers:
        p = row.plan
        if p is None:
            continue
        pruned = 1 - p.survivors / p.size
        extra = ""
        if row.info.kind == "fc" and len(row.info.shape) == 2:
            w = codec.model.tensors[row.info.name].astype(np.float32)
            q = codec.quantized(row.info.name, settings).astype(np.float32)
            x = rng.standard_normal((w.shape[1], 64)).astype(np.float32)
            extra = f" out-err {np.linalg.norm((q - w) @ x) / np.linalg.norm(w @ x):.3f}"
        rows.append(f"    {row.info.name:<48} {row.info.kind:<9} pruned {pruned:6.1%} "
                    f"bits {p.settings.bits} SQNR {p.sqnr_db:5.1f} dB{extra}")
    return rows if len(rows) <= limit else [*rows[: limit // 2], "    ...", *rows[-limit // 2:]]


def minilm(path: Path, floors: list[str]) -> None:
    model = read_model(path)
    codec = ModelCodec(model)
    ids = sentence_ids(path)
    base = float_tensors(model.tensors)
    ref = torch.stack([bert_embed(base, i) for i in ids])
    print(f"{path.name}: {len(SENTENCES)} sentences")
    for floor in floors:
        s = settings_for(floor)
        q, ratio = decoded(codec, s)
        w = {**base, **{k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in q.items()}}
        got = torch.stack([bert_embed(w, i) for i in ids])
        cos = (got * ref).sum(dim=1)
        # neighbours: does each sentence keep its nearest other sentence?
        sim_r, sim_g = ref @ ref.T, got @ got.T
        sim_r.fill_diagonal_(-2)
        sim_g.fill_diagonal_(-2)
        same = float((sim_r.argmax(1) == sim_g.argmax(1)).float().mean())
        print(f"  floor {floor:>7}: {ratio:5.1f}x  cosine mean {cos.mean():.4f} "
              f"min {cos.min():.4f}  nearest-neighbour kept {same:.0%}")
        for line in layer_rows(codec, s):
            print(line)
        sys.stdout.flush()


def lenets(floors: list[str]) -> None:
    data = ROOT / "sample_models" / "mnist_test.h5"
    for name in ("lenet300_100_scripted.pt", "lenet5_scripted.pt"):
        # our own bundled samples: running their TorchScript code is what we mean to do
        ev = open_evaluator(ROOT / "sample_models" / name, data, allow_code=True)
        codec = ModelCodec(ev.reference)
        print(f"{name}: baseline top-1 {ev.baseline.top1:.2%}")
        for floor in floors:
            s = settings_for(floor)
            gen = ev.evaluate_settings(codec, s)
            acc = run_to_end(gen)
            ratio = codec.estimate(s).ratio
            print(f"  floor {floor:>7}: {ratio:5.1f}x  top-1 {acc.top1:.2%}  drop "
                  f"{acc.drop_points:+.2f} pt  agreement {acc.agreement:.2%}")
            for line in layer_rows(codec, s):
                print(line)
        sys.stdout.flush()


def effnet(path: Path, floors: list[str]) -> None:
    model = read_model(path)
    codec = ModelCodec(model)
    base = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in model.tensors.items()}
    x = image_crops()
    with torch.no_grad():
        ref = effnet_forward(base, x)
    print(f"{path.name}: {len(x)} crops of {len(IMAGES)} images; agreement with the original")
    for floor in floors:
        s = settings_for(floor)
        q, ratio = decoded(codec, s)
        w = {**base, **{k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in q.items()}}
        with torch.no_grad():
            y = effnet_forward(w, x)
        agree = float((y.argmax(1) == ref.argmax(1)).float().mean())
        hit = y.topk(5, dim=1).indices == ref.argmax(1, keepdim=True)
        top5 = float(hit.any(1).float().mean())
        cos = float(torch.nn.functional.cosine_similarity(y, ref).mean())
        print(f"  floor {floor:>7}: {ratio:5.1f}x  top-1 agreement {agree:.0%}  original's "
              f"top-1 in top-5 {top5:.0%}  logit cosine {cos:.4f}")
        for line in layer_rows(codec, s):
            print(line)
        sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--floors", nargs="+", default=["paper90", "off", "10", "15", "20", "25"])
    p.add_argument("--only", choices=("minilm", "lenet", "effnet"), nargs="*")
    args = p.parse_args()
    torch.set_num_threads(1)
    only = set(args.only or ("minilm", "lenet", "effnet"))
    if "lenet" in only:
        lenets(args.floors)
    if "minilm" in only and MINILM.exists():
        minilm(MINILM, args.floors)
    if "effnet" in only and EFFNET.exists():
        effnet(EFFNET, args.floors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
