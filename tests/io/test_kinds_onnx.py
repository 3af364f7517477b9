"""ONNX weights get their kind from the op and input slot that consume them, not their names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspector.io import read_model

RNG = np.random.default_rng(0)
F = TensorProto.FLOAT


def _w(*shape: int) -> np.ndarray:
    return RNG.normal(0, 0.1, shape).astype(np.float32)


def _save(path: Path, nodes: list, inits: dict[str, np.ndarray], inputs: list, outputs: list,
          opset: int = 18) -> Path:
    graph = helper.make_graph(
        nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits.items()]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def _kinds(path: Path) -> dict[str, tuple[str, str]]:
    return {i.name: (i.kind, i.reason) for i in read_model(path).infos}


def test_conv_weights_named_by_number_are_conv(tmp_path: Path) -> None:
    inits = {"123": _w(8, 3, 3, 3), "onnx::Conv_45": _w(8), "bn.s": _w(8) + 1, "bn.b": _w(8),
             "bn.m": _w(8), "bn.v": np.abs(_w(8)) + 1, "77": _w(4, 8, 2, 2)}
    nodes = [
        helper.make_node("Conv", ["x", "123", "onnx::Conv_45"], ["c"], name="conv1"),
        helper.make_node("BatchNormalization", ["c", "bn.s", "bn.b", "bn.m", "bn.v"], ["b"]),
        helper.make_node("ConvTranspose", ["b", "77"], ["y"], name="up"),
    ]
    path = _save(tmp_path / "conv.onnx", nodes, inits,
                 [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])],
                 [helper.make_tensor_value_info("y", F, None)])
    kinds = _kinds(path)
    assert kinds["123"] == ("conv", "feeds Conv 'conv1' as W")
    assert kinds["onnx::Conv_45"] == ("bias", "feeds Conv 'conv1' as B")
    assert kinds["77"] == ("conv", "feeds ConvTranspose 'up' as W")
    assert [kinds[n][0] for n in ("bn.s", "bn.b", "bn.m", "bn.v")] == [
        "norm", "norm", "buffer", "buffer"]
    assert kinds["bn.m"][1] == "feeds BatchNormalization 'BatchNormalization#1' as input_mean"


def test_lstm_weights_named_by_number(tmp_path: Path) -> None:
    hidden, feat = 4, 3
    inits = {"onnx::LSTM_1": _w(1, 4 * hidden, feat), "onnx::LSTM_2": _w(1, 4 * hidden, hidden),
             "onnx::LSTM_3": _w(1, 8 * hidden), "h0": np.zeros((1, 1, hidden), np.float32)}
    nodes = [helper.make_node("LSTM", ["x", "onnx::LSTM_1", "onnx::LSTM_2", "onnx::LSTM_3", "",
                                       "h0"], ["y"], hidden_size=hidden, name="lstm")]
    path = _save(tmp_path / "lstm.onnx", nodes, inits,
                 [helper.make_tensor_value_info("x", F, [5, 1, feat])],
                 [helper.make_tensor_value_info("y", F, None)])
    kinds = _kinds(path)
    assert kinds["onnx::LSTM_1"] == ("fc", "feeds LSTM 'lstm' as W")
    assert kinds["onnx::LSTM_2"] == ("fc", "feeds LSTM 'lstm' as R")
    assert kinds["onnx::LSTM_3"] == ("bias", "feeds LSTM 'lstm' as B")
    assert kinds["h0"][0] == "buffer"


def test_gather_matmul_add_gemm_and_shape_inputs(tmp_path: Path) -> None:
    inits = {"onnx::Gather_9": _w(50, 8), "onnx::MatMul_10": _w(8, 6), "11": _w(6),
             "scales": np.array([1, 1, 2, 2], np.float32), "gw": _w(6, 6), "gc": _w(6),
             "pos": _w(6), "wt": _w(6, 6)}
    nodes = [
        helper.make_node("Gather", ["onnx::Gather_9", "ids"], ["e"], name="embed"),
        helper.make_node("MatMul", ["e", "onnx::MatMul_10"], ["m"], name="proj"),
        helper.make_node("Add", ["m", "11"], ["a"]),
        helper.make_node("Add", ["a", "pos"], ["p"]),  # after an Add, not a MatMul: not a bias
        helper.make_node("Gemm", ["p", "gw", "gc"], ["g"], name="head", transB=1),
        helper.make_node("Transpose", ["wt"], ["wt_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["g", "wt_t"], ["q"], name="tied"),
        helper.make_node("Unsqueeze", ["q", "axes"], ["u"]),
        helper.make_node("Resize", ["u", "", "scales"], ["y"], name="up"),
    ]
    inits["axes"] = np.array([0], np.int64)
    path = _save(tmp_path / "mix.onnx", nodes, inits,
                 [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 5])],
                 [helper.make_tensor_value_info("y", F, None)])
    kinds = _kinds(path)
    assert kinds["onnx::Gather_9"] == ("embedding", "feeds Gather 'embed' as data")
    assert kinds["onnx::MatMul_10"] == ("fc", "feeds MatMul 'proj' as B")
    assert kinds["11"] == ("bias", "feeds Add 'Add#2' input 1")
    assert kinds["pos"] == ("other", "feeds Add 'Add#3' input 1")
    assert kinds["gw"] == ("fc", "feeds Gemm 'head' as B")
    assert kinds["gc"] == ("bias", "feeds Gemm 'head' as C")
    assert kinds["wt"] == ("fc", "feeds MatMul 'tied' as B (via Transpose)")
    assert kinds["scales"] == ("buffer", "feeds Resize 'up' as scales")


def test_constant_nodes_and_subgraph_initializers_are_classified(tmp_path: Path) -> None:
    kernel = numpy_helper.from_array(_w(4, 1, 3, 3), "k")
    branch_w = numpy_helper.from_array(_w(4, 1, 3, 3), "bw")
    then = helper.make_graph([helper.make_node("Conv", ["x", "bw"], ["t"], name="inner")], "then",
                             [], [helper.make_tensor_value_info("t", F, None)], [branch_w])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else",
                              [], [helper.make_tensor_value_info("e", F, None)])
    nodes = [
        helper.make_node("Constant", [], ["k"], value=kernel),
        helper.make_node("Conv", ["x", "k"], ["c"], name="outer"),
        helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other),
    ]
    path = _save(tmp_path / "sub.onnx", nodes, {},
                 [helper.make_tensor_value_info("x", F, [1, 1, 6, 6]),
                  helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                 [helper.make_tensor_value_info("y", F, None),
                  helper.make_tensor_value_info("c", F, None)])
    kinds = _kinds(path)
    assert kinds["k"] == ("conv", "feeds Conv 'outer' as W")
    assert kinds["bw"] == ("conv", "feeds Conv 'inner' as W")


def test_a_fixed_projection_fed_to_conv_is_kept_lossless(tmp_path: Path) -> None:
    """A detector's DFL head: a 1x1 conv whose kernel is arange(16), never trained."""
    inits = {"dfl.conv.weight": np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1),
             "model.0.conv.weight": _w(16, 3, 3, 3)}
    nodes = [helper.make_node("Conv", ["x", "model.0.conv.weight"], ["c"], name="stem"),
             helper.make_node("Conv", ["c", "dfl.conv.weight"], ["y"], name="dfl")]
    path = _save(tmp_path / "dfl.onnx", nodes, inits,
                 [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])],
                 [helper.make_tensor_value_info("y", F, None)])
    kinds = _kinds(path)
    assert kinds["model.0.conv.weight"][0] == "conv"
    kind, reason = kinds["dfl.conv.weight"]
    assert kind == "other"
    assert reason == (
        "constant: evenly spaced values (arange-like) (else conv: feeds Conv 'dfl' as W)")


def test_layer_norm_spelled_out_keeps_its_norm_names(tmp_path: Path) -> None:
    """Paddle exports LayerNorm as ReduceMean, Sub, Div, Mul, Add: a Mul says nothing."""
    inits = {"layer_norm_0.w_0": _w(6) + 1, "layer_norm_0.b_0": _w(6), "scale": _w(6)}
    nodes = [helper.make_node("Mul", ["x", "layer_norm_0.w_0"], ["m"]),
             helper.make_node("Add", ["m", "layer_norm_0.b_0"], ["a"]),
             helper.make_node("Mul", ["a", "scale"], ["y"])]
    path = _save(tmp_path / "ln.onnx", nodes, inits,
                 [helper.make_tensor_value_info("x", F, [1, 6])],
                 [helper.make_tensor_value_info("y", F, None)])
    kinds = _kinds(path)
    assert kinds["layer_norm_0.w_0"] == (
        "norm", "1-D, named like a norm layer; feeds Mul 'Mul#0' input 1")
    assert kinds["scale"] == ("other", "feeds Mul 'Mul#2' input 1")
