"""Where a file's bytes go (issue 15): an unpruned layer pays for its codes, not positions."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np

from inspector.format import container, header, spec
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, ModelEstimate, compress
from inspector.tasks.drive import run_to_end


def loaded(path: Path, tensors: dict[str, np.ndarray]) -> LoadedModel:
    infos = tuple(TensorInfo(k, layer_kind(k, a.shape, a.dtype.name), a.shape, a.dtype.name)
                  for k, a in tensors.items())
    path.write_bytes(b"stands in for the source model")
    return LoadedModel(str(path), "numpy", tensors, infos, {})


def write(model: LoadedModel, settings: ModelSettings, out: Path) -> tuple[ModelEstimate, int]:
    gen = compress(ModelCodec(model), settings, out)
    return run_to_end(gen)


def test_unpruned_layer_file_is_its_codes_codebook_and_header(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    model = loaded(tmp_path / "m.npz",
                   {"fc.weight": rng.normal(0, 0.05, (256, 384)).astype(np.float32)})
    settings = ModelSettings(defaults={"policy": "sparsity", "value": 0.0, "bits": 6}, kinds={})
    est, nbytes = write(model, settings, tmp_path / "m.dcz")
    plan = est.layers[0].plan
    assert plan is not None and plan.survivors == plan.size
    need = plan.weights.nbytes + plan.codebook_nbytes + est.container_nbytes
    assert nbytes == est.file_nbytes == (tmp_path / "m.dcz").stat().st_size
    assert nbytes <= 1.01 * need, (nbytes, need)
    decoded = container.open_container(tmp_path / "m.dcz").read_all()["fc.weight"]
    assert np.count_nonzero(decoded) == np.count_nonzero(model.tensors["fc.weight"])


def fer_sized_keras_model(path: Path) -> LoadedModel:
    """A 57k-parameter Keras-style emotion CNN (48x48 grey in, 7 classes): four conv blocks
    with BatchNorm, two dense layers, named as the Keras reader names them."""
    rng = np.random.default_rng(2013)
    tensors: dict[str, np.ndarray] = {}
    channels = [1, 16, 32, 64, 32]
    for i, (cin, cout) in enumerate(itertools.pairwise(channels)):
        conv, bn = ("conv2d", "batch_normalization") if i == 0 else (
            f"conv2d_{i}", f"batch_normalization_{i}")
        fan = 9 * cin
        tensors[f"{conv}.kernel"] = rng.normal(0, (2 / fan) ** 0.5, (3, 3, cin, cout))
        tensors[f"{conv}.bias"] = rng.normal(0, 0.01, cout)
        tensors[f"{bn}.gamma"] = 1 + rng.normal(0, 0.05, cout)
        tensors[f"{bn}.beta"] = rng.normal(0, 0.05, cout)
        tensors[f"{bn}.moving_mean"] = rng.normal(0, 0.2, cout)
        tensors[f"{bn}.moving_variance"] = rng.gamma(2.0, 0.1, cout)
    for name, (cin, cout) in (("dense", (256, 56)), ("dense_1", (56, 7))):
        tensors[f"{name}.kernel"] = rng.normal(0, (1 / cin) ** 0.5, (cin, cout))
        tensors[f"{name}.bias"] = rng.normal(0, 0.01, cout)
    return loaded(path, {k: v.astype(np.float32) for k, v in tensors.items()})


def shares(est: ModelEstimate, header_nbytes: int, codebook_scale: float) -> dict[str, float]:
    """Header, codebook and raw bytes as shares of the file they would make."""
    codebooks = sum(r.plan.codebook_nbytes for r in est.layers if r.plan is not None)
    codebooks = int(codebooks * codebook_scale)
    raw = sum(r.payload_nbytes for r in est.layers if r.plan is None)
    codes = sum(r.payload_nbytes for r in est.layers if r.plan is not None) - codebooks
    total = header_nbytes + codebooks + raw + codes
    return {"header": header_nbytes / total, "codebook": codebooks / total, "raw": raw / total,
            "codes": codes / total, "bytes": total}


def test_fer_sized_keras_model_is_less_overhead(tmp_path: Path, capsys) -> None:
    """Issue 15: in a small model the header, codebooks and fp32 norms were most of the file."""
    model = fer_sized_keras_model(tmp_path / "fer.keras")
    assert 55_000 < sum(a.size for a in model.tensors.values()) < 60_000
    # The file: the paper's 90% (the default then); under today's safe floor the codes
    # are ~85% of the file and the overhead shares are small anyway.
    default = ModelSettings().with_defaults(policy="sparsity", value=0.9, min_sqnr=None)
    est, nbytes = write(model, default, tmp_path / "fer.dcz")
    assert nbytes == est.file_nbytes
    # before: version 1's header, float32 codebooks, float32 norms and biases
    records = [r.record for r in est.layers]
    v1_header = spec.PREFIX_NBYTES + len(header.encode_header(records)) + spec.CRC_NBYTES
    half = {id(r): r.plan.codebook_half for r in est.layers if r.plan is not None}
    v1_codebooks = sum(4 * r.plan.codebook.size for r in est.layers if r.plan is not None)
    now_codebooks = sum(r.plan.codebook_nbytes for r in est.layers if r.plan is not None)
    before = shares(est, v1_header, v1_codebooks / now_codebooks)
    after = shares(est, est.container_nbytes, 1.0)
    small = replace(default, kinds={**default.kinds, "norm": {"store": "fp16"},
                                 "bias": {"store": "fp16"}, "buffer": {"store": "fp16"}})
    est16, nbytes16 = write(model, small, tmp_path / "fer16.dcz")
    assert nbytes16 == est16.file_nbytes
    stored = shares(est16, est16.container_nbytes, 1.0)
    with capsys.disabled():
        for label, s in (("before", before), ("after", after), ("after, fp16 norms", stored)):
            print(f"\nfer-sized {label}: {s['bytes']:,} B; header {s['header']:.1%}, codebooks "
                  f"{s['codebook']:.1%}, raw {s['raw']:.1%}, codes {s['codes']:.1%}")
    assert any(half.values())
    # measured: header 8.4% -> 5.8%, header + codebooks 33.1% -> 12.4%, raw 23.5% -> 13.3%
    assert after["header"] < 0.75 * before["header"]
    assert after["header"] + after["codebook"] < min(0.15, 0.5 * (before["header"]
                                                           + before["codebook"]))
    assert stored["raw"] < 0.6 * after["raw"] and stored["bytes"] < 0.9 * after["bytes"]
    decoded = container.open_container(tmp_path / "fer16.dcz").read_all()
    gamma = model.tensors["batch_normalization.gamma"]
    np.testing.assert_array_equal(decoded["batch_normalization.gamma"],
                                  gamma.astype(np.float16).astype(np.float32))


def test_store_holds_float_raw_layers_at_lower_precision_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    tensors = {
        "fc.weight": rng.normal(0, 0.1, (20, 30)).astype(np.float32),
        "fc.bias": rng.normal(0, 0.1, 20).astype(np.float32),
        "bn.running_var": np.array([1e6, 2.0, 3.0], np.float32),  # past float16's range
        "bn.num_batches_tracked": np.array(7, np.int64),
        "ln.weight": rng.normal(1, 0.1, 30).astype(np.float64),
    }
    model = loaded(tmp_path / "m.npz", tensors)
    for store, held in (("fp16", "float16"), ("bf16", "bfloat16")):
        settings = ModelSettings(defaults={"store": store})
        est, nbytes = write(model, settings, tmp_path / f"{store}.dcz")
        assert nbytes == est.file_nbytes
        box = container.open_container(tmp_path / f"{store}.dcz")
        stored = {r.name: r.stored for r in box.records}
        assert stored["fc.bias"] == held and stored["ln.weight"] == held
        assert stored["bn.num_batches_tracked"] is None and stored["fc.weight"] is None
        assert stored["bn.running_var"] == (None if store == "fp16" else held)
        codec = ModelCodec(model)
        for name, got in box.read_all().items():
            want = codec.quantized(name, settings)
            assert got.dtype == want.dtype == model.tensors[name].dtype, name
            assert got.tobytes() == want.tobytes(), name
        bias = box.read_all()["fc.bias"]
        assert 0 < np.abs(bias - tensors["fc.bias"]).max() < 1e-2
    native, _ = write(model, ModelSettings(), tmp_path / "native.dcz")
    assert all(r.record.stored is None for r in native.layers)
