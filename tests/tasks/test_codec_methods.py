"""Registered methods through the whole pipeline: the estimate is the file's exact size, the
file decodes to what the estimate's layers hold, a method that saves nothing yields to raw
bytes, and a fidelity floor moves a method's declared knob."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inspector.format.container import open_container
from inspector.io import read_model
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, compress
from inspector.tasks.drive import run_to_end as drain
from inspector.tasks.export import decompress_file


def model_of(path: Path, tensors: dict[str, np.ndarray]) -> LoadedModel:
    infos = tuple(TensorInfo(n, layer_kind(n, a.shape, a.dtype.name), a.shape, a.dtype.name)
                  for n, a in tensors.items())
    path.write_bytes(b"stands in for the source model")
    return LoadedModel(str(path), "numpy", tensors, infos, {})


FINITE = st.floats(-1e4, 1e4, allow_nan=False, width=32)
LAYERS = st.lists(
    st.tuples(st.integers(1, 9), st.integers(1, 40), st.sampled_from(["float32", "float64"])),
    min_size=1, max_size=3,
)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(layers=LAYERS, data=st.data(), method=st.sampled_from(["fp16", "bf16"]))
def test_estimate_is_the_bytes_written_and_decode_is_exact(
    tmp_path_factory, layers, data, method: str
) -> None:
    folder = tmp_path_factory.mktemp("m")
    tensors = {}
    for i, (rows, cols, dtype) in enumerate(layers):
        w = data.draw(hnp.arrays(np.float32, (rows, cols), elements=FINITE))
        tensors[f"fc{i}.weight"] = w.astype(dtype)
        tensors[f"fc{i}.bias"] = np.arange(rows, dtype=np.float32)
    model = model_of(folder / "m.npz", tensors)
    codec = ModelCodec(model)
    s = ModelSettings(defaults={"method": method})
    shown = codec.estimate(s)
    est, nbytes = drain(compress(codec, s, folder / "out.dcz"))
    assert nbytes == shown.file_nbytes == est.file_nbytes == (folder / "out.dcz").stat().st_size
    box = open_container(folder / "out.dcz")
    for rec, layer in zip(box.records, est.layers, strict=True):
        assert rec.method == layer.method
        got = box.read_layer(box.records.index(rec))
        want = codec.quantized(rec.name, s)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        if rec.name.endswith(".bias"):
            assert rec.method == "raw"
    drain(decompress_file(folder / "out.dcz", folder / "back.npz"))
    back = np.load(folder / "back.npz")
    for name in tensors:
        assert np.array_equal(back[name], codec.quantized(name, s))


def test_a_registered_method_with_parameters_round_trips(toy_method, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (30, 20)).astype(np.float32)
    model = model_of(tmp_path / "m.npz", {"fc.weight": w})
    codec = ModelCodec(model)
    s = ModelSettings(layers={"fc.weight": {"method": "toy", "step": 0.01, "min_sqnr": None}})
    est, nbytes = drain(compress(codec, s, tmp_path / "out.dcz"))
    assert nbytes == est.file_nbytes
    box = open_container(tmp_path / "out.dcz")
    assert box.records[0].coded.params == est.layers[0].coded.params
    want = (np.round(w.astype(np.float64) / 0.01).astype(np.int16) * 0.01).astype(np.float32)
    assert np.array_equal(box.read_layer(0), want)


def test_the_floor_moves_a_declared_knob_as_little_as_reaches_it(toy_method, tmp_path) -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.1, (40, 40)).astype(np.float32)
    codec = ModelCodec(model_of(tmp_path / "m.npz", {"fc.weight": w}))
    coarse = ModelSettings(layers={"fc.weight": {"method": "toy", "step": 0.1,
                                                 "min_sqnr": None}})
    assert codec.estimate(coarse).layers[0].sqnr_db < 30
    floored = ModelSettings(layers={"fc.weight": {"method": "toy", "step": 0.1,
                                                  "min_sqnr": 30.0}})
    layer = codec.estimate(floored).layers[0]
    step = layer.coded.options["step"]
    assert layer.sqnr_db >= 30 and step < 0.1
    just_coarser = codec.bound("fc.weight", "toy")[1].plan(layer.coded.options.replace(
        step=step * 1.02))
    assert just_coarser.sqnr_db < 30  # the coarsest step that meets the floor, within 2%
    est, nbytes = drain(compress(codec, floored, tmp_path / "out.dcz"))
    assert nbytes == est.file_nbytes
    box = open_container(tmp_path / "out.dcz")
    assert np.array_equal(box.read_layer(0), codec.quantized("fc.weight", floored))


def test_the_floor_does_not_apply_to_fp16(tmp_path: Path) -> None:
    w = np.random.default_rng(2).normal(0, 0.1, (20, 20)).astype(np.float32)
    codec = ModelCodec(model_of(tmp_path / "m.npz", {"fc.weight": w}))
    layer = codec.estimate(ModelSettings(defaults={"method": "fp16", "min_sqnr": 100.0}))
    assert layer.layers[0].payload_nbytes == 800 and layer.layers[0].method == "fp16"


def test_a_method_that_saves_nothing_stores_the_layer_raw(tmp_path: Path) -> None:
    w = np.random.default_rng(3).normal(0, 0.1, (20, 20)).astype(np.float16)
    codec = ModelCodec(model_of(tmp_path / "m.npz", {"fc.weight": w}))
    s = ModelSettings(defaults={"method": "fp16"})
    est, nbytes = drain(compress(codec, s, tmp_path / "out.dcz"))
    layer = est.layers[0]
    assert layer.method == "raw" and "stored raw: fp16 would take 800 bytes" in layer.note
    assert nbytes == est.file_nbytes
    assert np.array_equal(read_model(tmp_path / "out.dcz").tensors["fc.weight"], w)


@pytest.mark.parametrize("method", ["fp16", "bf16"])
def test_info_of_the_file_names_the_method(tmp_path: Path, method: str) -> None:
    w = np.random.default_rng(4).normal(0, 0.1, (20, 20)).astype(np.float32)
    codec = ModelCodec(model_of(tmp_path / "m.npz", {"fc.weight": w}))
    drain(compress(codec, ModelSettings(defaults={"method": method}), tmp_path / "o.dcz"))
    from inspector.io import dcz_file

    info = dcz_file.layer_compression(read_model(tmp_path / "o.dcz"), "fc.weight")
    assert info["method"] == method and info["recipe"]["name"] == method


def test_a_registered_method_that_destroys_a_layer_is_flagged(toy_method, tmp_path) -> None:
    from inspector.model.health import broken_layers

    w = np.random.default_rng(5).normal(0, 0.1, (20, 20)).astype(np.float32)
    codec = ModelCodec(model_of(tmp_path / "m.npz", {"fc.weight": w}))
    rough = ModelSettings(defaults={"method": "toy", "step": 0.3, "min_sqnr": None})
    fine = ModelSettings(defaults={"method": "toy", "step": 0.001, "min_sqnr": None})
    assert codec.estimate(rough).layers[0].sqnr_db < 10
    assert broken_layers(codec.estimate(rough)) == ["fc.weight"]
    assert broken_layers(codec.estimate(fine)) == []
