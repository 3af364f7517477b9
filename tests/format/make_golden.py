"""Write golden files of the current format version: ``golden/v<N>/<name>.dcz`` and ``.npz``.

(Version 1's files, written by an earlier inspector, are ``golden/<name>.dcz``: kept as they
are, never rewritten.) The .npz holds the tensors the encoder meant the .dcz to decode to.
``test_golden.py`` decodes the committed files and compares; it never calls this script. Run it
only when adding a new golden case (existing files are kept unless ``--force``):

    .venv/bin/python tests/format/make_golden.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from inspector.format import container, spec
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, compress
from inspector.tasks.drive import run_to_end

GOLDEN = Path(__file__).resolve().parent / "golden" / f"v{spec.VERSION}"


def _model(name: str, tensors: dict[str, np.ndarray], dtypes: dict[str, str]) -> LoadedModel:
    infos = []
    for key, arr in tensors.items():
        dtype = dtypes.get(key, arr.dtype.name)
        infos.append(TensorInfo(key, layer_kind(key, arr.shape, dtype), arr.shape, dtype))
    return LoadedModel(f"<golden {name}>", "numpy", tensors, tuple(infos), {})


def fc_huffman() -> tuple[LoadedModel, ModelSettings]:
    """A small MLP, sparsity policy, optimal k-means, Huffman on (both streams Huffman-coded)."""
    rng = np.random.default_rng(20160101)
    tensors = {
        "fc1.weight": rng.laplace(0, 0.05, (24, 32)).astype(np.float32),
        "fc1.bias": rng.normal(0, 0.01, 24).astype(np.float32),
        "fc2.weight": rng.normal(0, 0.1, (10, 24)).astype(np.float32),
        "fc2.bias": np.zeros(10, np.float32),
    }
    settings = ModelSettings(
        defaults={"policy": "sparsity", "value": 0.8, "huffman": True},
        kinds={"fc": {"bits": 4, "index_bits": 3}},
        layers={"fc2.weight": {"value": 0.5, "bits": 2}},
    )
    return _model("fc_huffman", tensors, {}), settings


def fillers_fixed() -> tuple[LoadedModel, ModelSettings]:
    """Long runs of zeros (fillers, trailing fillers), fixed-width codes, float16 and float64."""
    rng = np.random.default_rng(1510)
    sparse = np.zeros(300, np.float64)
    where = np.sort(rng.choice(np.arange(5, 250), 20, replace=False))
    sparse[where] = rng.normal(0, 1, where.size)
    tensors = {
        "features.0.weight": rng.normal(0, 0.3, (6, 2, 3, 3)).astype(np.float16),
        "classifier.weight": sparse.reshape(10, 30),
        "classifier.bias": rng.normal(0, 0.1, 10).astype(np.float16),
    }
    settings = ModelSettings(
        defaults={"huffman": False},
        kinds={
            "conv": {"policy": "threshold", "value": 0.2, "bits": 3, "index_bits": 2,
                     "init": "density"},
            "fc": {"policy": "threshold", "value": 0.0, "bits": 5, "index_bits": 3},
        },
    )
    return _model("fillers_fixed", tensors, {}), settings


def raw_mixed() -> tuple[LoadedModel, ModelSettings]:
    """Lossless tensors of many dtypes next to a bfloat16 layer under std pruning, linear init."""
    rng = np.random.default_rng(35)
    emb = rng.normal(0, 0.2, (16, 12)).astype(np.float32)
    emb = (emb.view(np.uint32) & 0xFFFF0000).view(np.float32)  # bfloat16 values
    tensors = {
        "embed.weight": emb,
        "head.weight": rng.normal(0, 0.05, (8, 12)).astype(np.float16),  # excluded: raw float16
        "norm.weight": (1 + rng.normal(0, 0.02, 12)).astype(np.float32),  # raw bfloat16
        "norm.bias": rng.normal(0, 0.02, 12).astype(np.float64),
        "bn.num_batches_tracked": np.array(987654321012, np.int64),
        "mask": rng.random((3, 4)) < 0.5,
    }
    dtypes = {"embed.weight": "bfloat16", "norm.weight": "bfloat16"}
    settings = ModelSettings(
        defaults={"policy": "std", "value": 0.5, "std_of": "nonzero", "init": "linear"},
        kinds={"embedding": {"bits": 3, "index_bits": 4}},
        layers={"head.weight": {"excluded": True}},
    )
    return _model("raw_mixed", tensors, dtypes), settings


def positions() -> tuple[LoadedModel, ModelSettings]:
    """Version 2's position codes: dense, holes, bitmap; a constant gap stream; float32,
    float16 and delta-coded float16 codebooks."""
    rng = np.random.default_rng(2)
    nearly = rng.normal(0, 0.05, (40, 50)).astype(np.float32)
    nearly[rng.random(nearly.shape) < 0.02] = 0.0
    half = rng.normal(0, 0.05, (30, 40)).astype(np.float32)
    half[rng.random(half.shape) < 0.5] = 0.0
    strided = np.zeros((20, 30), np.float32)
    strided.reshape(-1)[2::3] = rng.normal(0, 1, 200).astype(np.float32)
    wide = rng.normal(0, 1e4, (8, 12)).astype(np.float32)  # float16 cannot hold its codebook
    sparse = rng.laplace(0, 0.05, (60, 80)).astype(np.float32)
    sparse[rng.random(sparse.shape) < 0.9] = 0.0  # relative index, both streams Huffman
    tensors = {
        "dense.weight": rng.normal(0, 0.05, (24, 30)).astype(np.float32),
        "nearly.weight": nearly,
        "half.weight": half,
        "strided.weight": strided,
        "wide.weight": wide,
        "wide.bias": np.zeros(8, np.float32),
        "sparse.weight": sparse,
        "fine.weight": rng.normal(0, 0.05, (50, 60)).astype(np.float32),  # delta-coded codebook
    }
    settings = ModelSettings(
        defaults={"policy": "threshold", "value": 0.0, "huffman": True},
        kinds={"fc": {"bits": 4, "index_bits": 6}},
        layers={"dense.weight": {"policy": "sparsity", "value": 0.0, "bits": 5},
                "wide.weight": {"bits": 8},
                "fine.weight": {"policy": "sparsity", "value": 0.5, "bits": 8}},
    )
    return _model("positions", tensors, {}), settings


def lowrank() -> tuple[LoadedModel, ModelSettings]:
    """Method lowrank (code 19): a spatial split of a conv with float factors, an fc layer with
    uniform-coded factors, a float64 layer by energy."""
    rng = np.random.default_rng(19)
    tensors = {
        "conv.weight": rng.normal(0, 0.2, (12, 4, 3, 3)).astype(np.float32),
        "fc.weight": rng.laplace(0, 0.05, (20, 48)).astype(np.float32),
        "head.weight": rng.normal(0, 0.1, (16, 40)).astype(np.float64),
    }
    settings = ModelSettings(
        defaults={"method": "lowrank", "min_sqnr": None},
        layers={"conv.weight": {"rank": 4, "split": "spatial"},
                "fc.weight": {"rank": 6, "values": "uniform", "factor_bits": 6},
                "head.weight": {"energy": 0.7}},
    )
    return _model("lowrank", tensors, {}), settings


CASES = {"fc_huffman": fc_huffman, "fillers_fixed": fillers_fixed, "raw_mixed": raw_mixed,
         "positions": positions, "lowrank": lowrank}


def write_case(name: str, force: bool) -> None:
    dcz, npz = GOLDEN / f"{name}.dcz", GOLDEN / f"{name}.npz"
    if not force and (dcz.exists() or npz.exists()):
        print(f"keeping {dcz.name} (use --force to rewrite)")
        return
    model, settings = CASES[name]()
    codec = ModelCodec(model)
    run_to_end(compress(codec, settings, dcz))
    expected = {info.name: codec.quantized(info.name, settings) for info in model.infos}
    decoded = container.open_container(dcz).read_all()
    for key, want in expected.items():
        got = decoded[key]
        if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
            raise SystemExit(f"{name}: {key} does not decode to what the encoder held")
    with open(npz, "wb") as f:
        np.savez(f, **expected)
    print(f"wrote {dcz.name} ({dcz.stat().st_size} bytes) and {npz.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rewrite existing golden files")
    args = parser.parse_args(argv)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in CASES:
        write_case(name, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
