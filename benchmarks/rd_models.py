"""The models of the rate-distortion benchmark and how each one's output fidelity is measured.

A :class:`Subject` is a model's float tensors (what every codec codes, and whose float32 bytes
are the ratio's denominator), its loaded file (for our Deep Compression codec), and a
``measure`` function: decoded tensors in, one score out, on fixed inputs.

- LeNet-300-100 and LeNet-5 (TorchScript samples): top-1 on ``sample_models/mnist_test.h5``
  (1,000 digits), scored as the drop in points against the uncompressed model.
- EfficientNet-Lite0: logit cosine with the original on 48 crops of bundled photographs
  (top-1 agreement is reported beside it); forward in :mod:`forwards`.
- MiniLM-L6 sentence transformer: mean embedding cosine over 16 sentences.
- PP-OCRv4 text detector (ONNX, run in onnxruntime through ``tasks.accuracy``): cosine of its
  text-probability map with the original's, on 12 images of printed text (PIL's bundled font).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from forwards import (
    EFFNET,
    MINILM,
    bert_embed,
    effnet_forward,
    float_tensors,
    image_crops,
    sentence_ids,
    text_images,
)

from inspector.io import read_model
from inspector.io.model_file import LoadedModel
from inspector.runtime.eval_data import EvalInputs
from inspector.runtime.runnable_open import open_runnable
from inspector.tasks.accuracy import Evaluator, open_evaluator

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"
PPOCR_DET = Path("/work/realmodels/x/rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx")


@dataclass(frozen=True, slots=True)
class Score:
    """One measurement: ``value`` is what the levels compare (drop in points, or a cosine);
    ``note`` says more for people (the top-1, the agreement)."""

    value: float
    note: str


@dataclass(frozen=True, slots=True)
class Subject:
    """A model, its fidelity measure and the levels the table reports.

    ``metric`` is ``"drop"`` (accuracy drop in points: a level is met at ``value <= level``)
    or ``"cosine"`` (met at ``value >= level``). ``tier`` 0 (LeNets), 1 (1-5M parameters)
    or 2 (~20M) sets how many sweep points each codec gets.
    """

    name: str
    loaded: LoadedModel
    tensors: dict[str, np.ndarray]
    measure: Callable[[dict[str, np.ndarray]], Score]
    metric: str
    levels: tuple[float, ...]
    tier: int
    what: str

    @property
    def fp32_nbytes(self) -> int:
        return 4 * sum(int(a.size) for a in self.tensors.values())

    def meets(self, value: float, level: float) -> bool:
        return value <= level + 1e-9 if self.metric == "drop" else value >= level


DROP_LEVELS = (0.0, 0.1, 0.3, 1.0)
COSINE_LEVELS = (0.999, 0.995, 0.99)


def coded_tensors(model: LoadedModel) -> dict[str, np.ndarray]:
    """The float tensors of ``model`` (integer buffers such as batch counters are left out of
    every codec alike), float32."""
    return {k: np.asarray(v, np.float32) for k, v in model.tensors.items()
            if np.asarray(v).dtype.kind == "f" and np.asarray(v).size}


def lenet(file: str, name: str) -> Subject:
    # our own bundled samples: running their TorchScript code is what we mean to do
    ev = open_evaluator(SAMPLES / file, SAMPLES / "mnist_test.h5", allow_code=True)
    base = ev.baseline

    def measure(w: dict[str, np.ndarray]) -> Score:
        acc = ev.evaluate(w)
        return Score(acc.drop_points, f"top-1 {acc.top1:.1%}")

    return Subject(name, ev.reference, coded_tensors(ev.reference), measure, "drop",
                   DROP_LEVELS, 0,
                   f"top-1 on {ev.inputs_note} (uncompressed {base.top1:.1%}), drop in points")


def effnet(path: Path = EFFNET, crops: int = 48) -> Subject:
    model = read_model(path)
    base = float_tensors(model.tensors)
    x = image_crops(crops)
    with torch.no_grad():
        ref = effnet_forward(base, x)

    def measure(w: dict[str, np.ndarray]) -> Score:
        with torch.no_grad():
            y = effnet_forward({**base, **float_tensors(w)}, x)
        cos = float(torch.nn.functional.cosine_similarity(y, ref).mean())
        agree = float((y.argmax(1) == ref.argmax(1)).float().mean())
        return Score(cos, f"top-1 agreement {agree:.0%}")

    return Subject("EfficientNet-Lite0", model, coded_tensors(model), measure, "cosine",
                   COSINE_LEVELS, 1,
                   f"mean logit cosine with the original on {crops} crops of 3 bundled photos")


def minilm(path: Path = MINILM) -> Subject:
    model = read_model(path)
    base = float_tensors(model.tensors)
    ids = sentence_ids(path)
    with torch.no_grad():
        ref = torch.stack([bert_embed(base, i) for i in ids])

    def measure(w: dict[str, np.ndarray]) -> Score:
        with torch.no_grad():
            full = {**base, **float_tensors(w)}
            got = torch.stack([bert_embed(full, i) for i in ids])
        cos = (got * ref).sum(dim=1)
        return Score(float(cos.mean()), f"min {float(cos.min()):.4f}")

    return Subject("MiniLM-L6 (sentence transformer)", model, coded_tensors(model), measure,
                   "cosine", COSINE_LEVELS, 2,
                   f"mean embedding cosine with the original over {len(ids)} sentences")


def ppocr_det(path: Path = PPOCR_DET, count: int = 12) -> Subject:
    # Rendered text, not synthetic noise or photographs: on N(0, 1) inputs the detector's map
    # is so unstable that even int8 weights leave an output cosine of 0.91, and on photos
    # without text the map is near zero everywhere (its cosine measures noise).
    runnable = open_runnable(path)
    x = text_images(count)
    data = EvalInputs(x, None, "", f"{count} rendered 320x320 images of printed text lines",
                      synthetic=True)
    ev = Evaluator(runnable, data, runnable.reference(), metric="cosine")
    ev.baseline  # noqa: B018 - run the original once, outside the sweep

    def measure(w: dict[str, np.ndarray]) -> Score:
        acc = ev.evaluate(w)
        return Score(acc.cosine, f"rel. error {acc.relative_error:.3f}")

    return Subject("PP-OCRv4 det (ONNX)", ev.reference, coded_tensors(ev.reference), measure,
                   "cosine", COSINE_LEVELS, 1,
                   f"output cosine in onnxruntime on {ev.inputs_note}")


def subjects(which: list[str]) -> list[Subject]:
    """The subjects named in ``which`` (lenet300, lenet5, effnet, minilm, ppocr) whose files
    exist here."""
    makers: dict[str, tuple[Callable[[], Subject], Path]] = {
        "lenet300": (lambda: lenet("lenet300_100_scripted.pt", "LeNet-300-100"),
                     SAMPLES / "lenet300_100_scripted.pt"),
        "lenet5": (lambda: lenet("lenet5_scripted.pt", "LeNet-5"), SAMPLES / "lenet5_scripted.pt"),
        "effnet": (effnet, EFFNET),
        "minilm": (minilm, MINILM),
        "ppocr": (ppocr_det, PPOCR_DET),
    }
    return [makers[w][0]() for w in which if makers[w][1].exists()]
