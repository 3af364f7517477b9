"""Is the rate-optimal coder a better safe default? (issue 12.7)

Two candidates for the settings a model opens with, each meeting the per-layer 30 dB weight
SQNR floor (``model.settings.SAFE_MIN_SQNR``):

- **deep**: today's safe default (``ModelSettings()``: deep, each layer pruned only as far as
  the floor allows, bits raised where needed);
- **uniform**: the best coder built (uniform, per-channel steps, entropy auto) at the one
  model-wide step that gives every coded layer at least 30 dB (``tasks.target.solve`` with a
  ``layer_sqnr`` target).

For each: the file's exact size, and what the decoded weights do to the outputs where the
model can run: top-1 on ``mnist_test.h5`` for the LeNets, sentence-embedding cosine for MiniLM
and logit agreement/cosine for EfficientNet-Lite0 (forwards of ``floor_study``), and output
cosine on synthetic inputs for the PP-OCR ONNX models.

Run::

    nice .venv/bin/python benchmarks/safe_default_study.py [--only lenet ocr minilm effnet]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import floor_study as fs

from inspector.io import read_model
from inspector.model.settings import SAFE_MIN_SQNR, ModelSettings
from inspector.tasks.accuracy import open_evaluator
from inspector.tasks.codec import ModelCodec
from inspector.tasks.drive import run_to_end
from inspector.tasks.target import Target, solve, with_best_method

OCR = Path("/work/realmodels/x/rapidocr_onnxruntime/models")
OCR_SHAPES = {"ch_PP-OCRv4_det_infer.onnx": (1, 3, 320, 320),
              "ch_PP-OCRv4_rec_infer.onnx": (1, 3, 48, 320),
              "ch_ppocr_mobile_v2.0_cls_infer.onnx": (1, 3, 48, 192)}


def candidates(codec: ModelCodec) -> list[tuple[str, ModelSettings, str]]:
    t = time.perf_counter()
    r = run_to_end(solve(codec, with_best_method(ModelSettings()),
                         Target("layer_sqnr", SAFE_MIN_SQNR)))
    note = f"rel_step {r.value:.4g}, solved in {time.perf_counter() - t:.1f} s"
    return [("deep", ModelSettings(), ""), ("uniform", r.settings, note)]


def sizes(codec: ModelCodec, s: ModelSettings) -> str:
    est = codec.estimate(s)
    fp32 = 4 * sum(i.size for i in codec.model.infos)
    worst = min((r.sqnr_db for r in est.layers if r.lossy), default=float("inf"))
    return f"{est.file_nbytes:>11,} B  {fp32 / est.file_nbytes:5.2f}x  worst layer {worst:5.1f} dB"


def decoded(codec: ModelCodec, s: ModelSettings) -> dict[str, np.ndarray]:
    est = codec.estimate(s)
    return {r.info.name: codec.quantized(r.info.name, s) for r in est.layers if r.lossy}


def lenets() -> None:
    data = fs.ROOT / "sample_models" / "mnist_test.h5"
    for name in ("lenet300_100_scripted.pt", "lenet5_scripted.pt"):
        ev = open_evaluator(fs.ROOT / "sample_models" / name, data, allow_code=True)
        codec = ModelCodec(ev.reference)
        print(f"{name}: baseline top-1 {ev.baseline.top1:.2%}")
        for label, s, note in candidates(codec):
            acc = run_to_end(ev.evaluate_settings(codec, s))
            print(f"  {label:<8} {sizes(codec, s)}  top-1 {acc.top1:.2%} "
                  f"({-acc.drop_points:+.2f} pt) agreement {acc.agreement:.2%}  {note}")
        sys.stdout.flush()


def ocr() -> None:
    for name, shape in OCR_SHAPES.items():
        ev = open_evaluator(OCR / name, synthetic=16, input_shape=shape, metric="cosine")
        codec = ModelCodec(ev.reference)
        print(f"{name}: 16 synthetic inputs {shape}")
        for label, s, note in candidates(codec):
            acc = run_to_end(ev.evaluate_settings(codec, s))
            print(f"  {label:<8} {sizes(codec, s)}  output cosine {acc.cosine:.5f}  {note}")
        sys.stdout.flush()


def minilm() -> None:
    model = read_model(fs.MINILM)
    codec = ModelCodec(model)
    vocab = {t: i for i, t in enumerate(
        (fs.MINILM.parent / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    ids = [fs.wordpiece(vocab, s) for s in fs.SENTENCES]
    base = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in model.tensors.items()
            if np.asarray(v).dtype.kind == "f"}
    ref = torch.stack([fs.bert_embed(base, i) for i in ids])
    print(f"{fs.MINILM.name}: {len(ids)} sentences")
    for label, s, note in candidates(codec):
        q = decoded(codec, s)
        w = {**base, **{k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in q.items()}}
        got = torch.stack([fs.bert_embed(w, i) for i in ids])
        cos = (got * ref).sum(dim=1)
        print(f"  {label:<8} {sizes(codec, s)}  embedding cosine mean {cos.mean():.4f} "
              f"min {cos.min():.4f}  {note}")
        sys.stdout.flush()


def effnet() -> None:
    model = read_model(fs.EFFNET)
    codec = ModelCodec(model)
    base = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in model.tensors.items()}
    x = fs.image_crops()
    with torch.no_grad():
        ref = fs.effnet_forward(base, x)
    print(f"{fs.EFFNET.name}: {len(x)} image crops")
    for label, s, note in candidates(codec):
        q = decoded(codec, s)
        w = {**base, **{k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in q.items()}}
        with torch.no_grad():
            y = fs.effnet_forward(w, x)
        agree = float((y.argmax(1) == ref.argmax(1)).float().mean())
        cos = float(torch.nn.functional.cosine_similarity(y, ref).mean())
        print(f"  {label:<8} {sizes(codec, s)}  top-1 agreement {agree:.0%}  logit cosine "
              f"{cos:.4f}  {note}")
        sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=("lenet", "ocr", "minilm", "effnet"))
    args = p.parse_args()
    torch.set_num_threads(1)
    for name in args.only or ("lenet", "ocr", "minilm", "effnet"):
        {"lenet": lenets, "ocr": ocr, "minilm": minilm, "effnet": effnet}[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
