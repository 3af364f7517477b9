"""A low-rank ONNX export holds each factorised layer as two nodes: it runs in onnxruntime,
gives the product-decoded model's outputs (to float rounding), and is smaller."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.errors import CodeNotAllowed
from inspector.io import read_model, write_back
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec
from inspector.tasks.drive import run_to_end
from inspector.tasks.export import _decoded, export_rewritten

ROOT = Path(__file__).resolve().parents[2]


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize(("sample", "given", "ops"), [
    ("lenet300_100", {"rank": 20}, {"Gemm": 5}),  # ip3 at full rank stays raw
    ("lenet5", {"rank": 8}, {"Conv": 4, "Gemm": 4}),
    # conv1 (1 input channel): 5 vertical filters and 20 x 5 horizontal ones hold more values
    # than its 500 weights, so it stays one Conv
    ("lenet5", {"rank": 6, "split": "spatial", "values": "uniform"}, {"Conv": 3}),
])
def test_factorised_onnx_runs_like_the_product(tmp_path, sample, given, ops) -> None:
    import onnx

    src = ROOT / "sample_models" / f"{sample}.onnx"
    model = read_model(src)
    kinds = {"fc": {"method": "lowrank", **{k: v for k, v in given.items() if k != "split"}},
             "conv": {"method": "lowrank", **given}}
    settings = ModelSettings(defaults={"min_sqnr": None}, kinds=kinds)
    out = tmp_path / f"{sample}_lr.onnx"
    result = run_to_end(export_rewritten(model, settings, out))
    assert result.verified, result.mismatches
    # the same decoded weights, written back as products into the original graph
    tensors = run_to_end(_decoded(model, settings, 1))
    product = tmp_path / f"{sample}_product.onnx"
    write_back(src, product, tensors, model)
    graph = onnx.load(str(out)).graph
    counts = {op: sum(n.op_type == op for n in graph.node) for op in ops}
    assert counts == ops
    assert out.stat().st_size < product.stat().st_size
    x = np.random.default_rng(0).random((5, 784) if sample == "lenet300_100"
                                        else (5, 1, 28, 28)).astype(np.float32)
    if sample == "lenet5":
        x = x.reshape(5, 784)  # the graph reshapes its input itself
    a, b = _run(out, x), _run(product, x)
    assert np.allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))
    assert not np.allclose(a, _run(src, x), rtol=1e-6, atol=0)  # the layers did change


@pytest.mark.parametrize(("sample", "given"), [
    ("lenet300_100", {"rank": 16}),
    ("lenet5", {"rank": 8, "split": "spatial"}),
])
def test_factorised_torchscript_runs_like_the_product(tmp_path, sample, given) -> None:
    import torch

    src = ROOT / "sample_models" / f"{sample}_scripted.pt"
    model = read_model(src)
    kinds = {"fc": {"method": "lowrank", **{k: v for k, v in given.items() if k != "split"}},
             "conv": {"method": "lowrank", **given}}
    settings = ModelSettings(defaults={"min_sqnr": None}, kinds=kinds)
    out = tmp_path / f"{sample}_lr.pt"
    with pytest.raises(CodeNotAllowed):
        run_to_end(export_rewritten(model, settings, out))
    result = run_to_end(export_rewritten(model, settings, out, allow_code=True))
    assert result.verified, result.mismatches
    tensors = run_to_end(_decoded(model, settings, 1))
    product = tmp_path / f"{sample}_product.pt"
    write_back(src, product, tensors, model, allow_code=True)
    assert out.stat().st_size < product.stat().st_size
    split = [n for n, t in read_model(out).tensors.items() if t.size == 0]
    assert split and all(n.endswith(".weight") for n in split)
    x = torch.from_numpy(np.random.default_rng(0).random((5, 784)).astype(np.float32))
    with torch.no_grad():
        a = torch.jit.load(str(out))(x).numpy()
        b = torch.jit.load(str(product))(x).numpy()
    assert np.allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


def test_a_near_full_rank_layer_is_written_as_its_product(tmp_path) -> None:
    """At energy 0.99 LeNet-300-100's factors hold more values than its weights (the .dcz
    keeps them as float16): the export keeps the original graph with the product."""
    import onnx

    src = ROOT / "sample_models" / "lenet300_100.onnx"
    model = read_model(src)
    settings = ModelSettings(defaults={"min_sqnr": None},
                             kinds={"fc": {"method": "lowrank", "energy": 0.99}})
    assert any(est.coded is not None for est in
               (ModelCodec(model).layer(i, settings) for i in model.infos))
    out = tmp_path / "near_full.onnx"
    result = run_to_end(export_rewritten(model, settings, out))
    assert result.verified, result.mismatches
    assert [n.op_type for n in onnx.load(str(out)).graph.node].count("Gemm") == 3
    tensors = run_to_end(_decoded(model, settings, 1))
    back = read_model(out).tensors
    assert all(back[n].tobytes() == tensors[n].tobytes() for n in tensors)
