"""Per-tensor overhead (issues 11.9, 10.8): memory and time follow a model's bytes, not its
count of tensors, and estimates of many-tensor models stay exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from inspector.core.layer import LayerCodec
from inspector.core.settings import LayerSettings
from inspector.format.container import open_container
from inspector.io import read_model
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, compress, summarize
from inspector.tasks.drive import run_to_end

ROOT = Path(__file__).resolve().parents[2]

# Runs in a child process, so the peak resident size measures this compress alone.
_CHILD = """
import json, resource, sys
from pathlib import Path
from inspector.io import read_model
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, compress
from inspector.tasks.drive import run_to_end

model = read_model(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
gen = compress(ModelCodec(model), ModelSettings(), Path(sys.argv[2]))
estimate, nbytes = run_to_end(gen)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kb": after - before, "nbytes": nbytes,
                  "estimated": estimate.file_nbytes, "layers": len(estimate.layers)}))
"""


def _tiny_model(path: Path, count: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    arrays = {f"block{i}.fc.weight": rng.standard_normal((size // 8, 8)).astype(np.float32)
              for i in range(count)}
    np.savez(path, **arrays)
    return path


def _mixed_model(path: Path) -> Path:
    rng = np.random.default_rng(2)
    sizes = [16_384, 64, 20_000, 300, 16_384, 40_000, 8, 16_384]
    arrays = {f"block{i}.fc.weight": rng.standard_normal((n // 8, 8)).astype(np.float32)
              for i, n in enumerate(sizes)}
    np.savez(path, **arrays)
    return path


def test_compress_memory_does_not_grow_with_the_count_of_tensors(tmp_path: Path) -> None:
    # 2,000 compressible tensors of 64 weights (0.5 MB of weights): each used to keep ~1.6 MB
    # of fixed-size state (65,536-bin histograms) until the file was written, 3.2 GB in all.
    source = _tiny_model(tmp_path / "tiny.npz", 2000, 64)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(source), str(tmp_path / "tiny.dcz")],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["layers"] == 2000
    assert result["nbytes"] == result["estimated"] == (tmp_path / "tiny.dcz").stat().st_size
    assert result["growth_kb"] < 200 * 1024, f"peak RSS grew {result['growth_kb'] / 1024:.0f} MB"


@pytest.mark.parametrize("index_bits", [8, 16])
@pytest.mark.parametrize("size", [1, 7, 64, 1000, 5000])
def test_a_small_layers_state_is_proportional_to_it(size: int, index_bits: int) -> None:
    # Everything a codec keeps (grids, magnitude histogram, plan, cluster tables) for a tiny
    # layer: at most a few KB plus a fixed multiple of its weights, never 65,536-bin arrays.
    w = np.random.default_rng(1).standard_normal(size).astype(np.float32)
    for bits in (2, 5, 8):  # load the kernels first: their code is not the layer's state
        LayerCodec(w.copy()).encode(LayerSettings(value=0.3, bits=bits, index_bits=index_bits))
    tracemalloc.start()
    try:
        codec = LayerCodec(w)
        for bits in (2, 5, 8):
            codec.encode(LayerSettings(value=0.3, bits=bits, index_bits=index_bits))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 16_384 + 200 * size, f"{held} bytes held for {size} weights"
    assert codec is not None


def test_many_tensor_estimate_is_exact_and_reuses_unchanged_layers(tmp_path: Path) -> None:
    model = read_model(_tiny_model(tmp_path / "m.npz", 300, 256))
    codec = ModelCodec(model)
    settings = ModelSettings()
    first = codec.estimate(settings)
    moved = settings.with_layer("block7.fc.weight", value=0.5)
    second = codec.estimate(moved)
    # Only the moved layer was re-planned; every other row is the very same object.
    same = [a is b for a, b in zip(first.layers, second.layers, strict=True)]
    assert same.count(False) == 1 and not same[7]
    # The incremental totals equal a from-scratch summary and the file written.
    assert summarize(second.layers).file_nbytes == second.file_nbytes
    gen = compress(ModelCodec(model), moved, tmp_path / "m.dcz")
    written, nbytes = run_to_end(gen)
    assert nbytes == second.file_nbytes == written.file_nbytes
    assert (tmp_path / "m.dcz").stat().st_size == nbytes
    assert open_container(tmp_path / "m.dcz").records[7].deep.settings.value == 0.5


def test_resolved_settings_follow_every_change(tmp_path: Path) -> None:
    # The memo of resolved settings must see a change of the defaults, of the layer's kind
    # entry and of the layer's own entry, and nothing else's.
    model = read_model(_tiny_model(tmp_path / "m.npz", 3, 64))
    codec = ModelCodec(model)
    info = model.infos[1]
    s = ModelSettings()
    steps = [s, s.with_defaults(value=0.5), s.with_defaults(value=0.5).with_kind("fc", bits=3),
             s.with_kind("fc", bits=3).with_layer(info.name, bits=2),
             s.with_layer(model.infos[0].name, bits=1), s]
    for settings in steps:
        assert codec.resolve(info, settings) == settings.resolve(info.name, info.kind)


def test_parallel_estimate_equals_layer_by_layer(tmp_path: Path) -> None:
    # Layers of 16,384+ weights to plan share two threads (codec.PARALLEL_MIN_SIZE), small
    # ones are planned meanwhile; the records must be those of each layer planned alone.
    model = read_model(_mixed_model(tmp_path / "m.npz"))
    settings = ModelSettings().with_layer("block3.fc.weight", bits=2, value=0.2)
    together = ModelCodec(model).estimate(settings)
    alone = ModelCodec(model)
    records = [alone.layer(info, settings).record for info in model.infos]
    assert [r.record for r in together.layers] == records
    assert together.file_nbytes == summarize([alone.layer(i, settings) for i in model.infos]
                                             ).file_nbytes


class _Stop(Exception):
    pass


def test_a_cancelled_parallel_estimate_leaves_the_codec_usable(tmp_path: Path) -> None:
    model = read_model(_mixed_model(tmp_path / "m.npz"))
    codec = ModelCodec(model)

    def progress(step: object) -> None:
        if step.done == 3:  # type: ignore[attr-defined]
            raise _Stop

    with pytest.raises(_Stop):
        codec.estimate(ModelSettings(), progress)
    again = codec.estimate(ModelSettings())
    assert again.file_nbytes == ModelCodec(model).estimate(ModelSettings()).file_nbytes
