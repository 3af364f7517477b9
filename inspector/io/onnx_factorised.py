"""Write-back of low-rank layers into ONNX as two nodes: a smaller and faster graph.

A weight coded by method ``lowrank`` decodes to ``W ~ P^T Q`` (:mod:`inspector.core.stages
.lowrank_kernels`). Where the weight is a main-graph initializer read by exactly one node, as
that node's second input, the node is replaced by two:

* ``Gemm`` with ``transB=1`` (torch's Linear, ``W`` = out x in): ``Gemm(A, Q, transB=1)``
  then ``Gemm(h, P, C)`` (``alpha``, ``beta`` and the bias on the second); with ``transB=0``
  (``W`` = in x out): ``Gemm(A, P, transB=1)`` then ``Gemm(h, Q, C)``.
* ``MatMul(A, W)`` (``W`` = in x out): ``MatMul(A, P^T)`` then ``MatMul(h, Q)``.
* ``Conv`` (group 1), split ``channels``: the node's own conv with ``Q`` as ``rank`` filters
  of the original size, then a 1 x 1 conv with ``P^T`` and the bias. Split ``spatial`` (2-D
  convs): a ``kh x 1`` conv (the vertical strides, dilations and pads) to ``rank`` channels,
  then a ``1 x kw`` conv (the horizontal ones) with the bias.

A layer whose factors hold no fewer values than the weight, any other weight, and any node
that cannot be split (grouped conv, ``auto_pad`` SAME with the spatial split, a weight shared
by two nodes or also a graph input), keeps the decoded product in place. The factors are
stored in the element type of the weight they replace, named ``<weight>.factor0`` (applied
first) and ``<weight>.factor1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inspector.core.stages.lowrank import Factors
from inspector.io.onnx_file import load_external, load_proto, weights_of
from inspector.io.onnx_writeback import replace_weight


def factorised_onnx(source: Path, target: Path, tensors: Mapping[str, np.ndarray],
                    factors: Mapping[str, Factors]) -> dict[str, np.ndarray]:
    """Write ``target``: ``source`` with ``tensors`` replaced and the ``factors`` layers split.

    Returns the new initializers (name: values as stored), one pair per split layer; the
    layers of ``factors`` that could not be split are written as their ``tensors`` product.
    """
    from onnx import numpy_helper

    proto = load_proto(source)
    load_external(proto, source)
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    # an initializer that is also a graph input (IR < 4 style) may be fed by the caller
    inputs = {i.name for i in graph.input}
    new: dict[str, np.ndarray] = {}
    for name, f in factors.items():
        if not fewer_values(f, inits[name].dims if name in inits else ()):
            continue
        node = _sole_consumer(graph, name) if name in inits and name not in inputs else None
        nodes = _split(node, name, inits[name], f) if node is not None else None
        if nodes is None:
            continue
        (n1, n2), arrays = nodes
        stored = numpy_helper.to_array(inits[name]).dtype
        at = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(at, n2)
        graph.node.insert(at, n1)
        graph.initializer.remove(inits[name])
        for key, arr in arrays.items():
            values = np.ascontiguousarray(arr.astype(stored))
            graph.initializer.append(numpy_helper.from_array(values, key))
            new[key] = values
    weights = {w.name: w for w in weights_of(proto, source)}
    for name, array in tensors.items():
        if name in weights:  # a split layer's weight is gone
            replace_weight(weights[name], array)
    target.write_bytes(proto.SerializeToString())
    return new


def fewer_values(f: Factors, dims: Any) -> bool:
    """Whether the two factors hold fewer values than the weight (else the product is smaller:
    a ``.dcz`` may keep a near-full rank in float16 that the model would store as float32)."""
    return f.p.size + f.q.size < int(np.prod(tuple(dims), dtype=np.int64))


def _sole_consumer(graph: Any, name: str) -> Any | None:
    users = [n for n in graph.node if name in n.input]
    if len(users) != 1 or len(users[0].input) < 2 or users[0].input[1] != name:
        return None
    if list(users[0].input).count(name) != 1 or users[0].op_type not in ("Gemm", "MatMul",
                                                                         "Conv"):
        return None
    return users[0]


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _split(node: Any, name: str, init: Any, f: Factors
           ) -> tuple[tuple[Any, Any], dict[str, np.ndarray]] | None:
    from onnx import helper

    p, q = f.p, f.q
    rank = p.shape[0]
    shape = tuple(init.dims)
    a = _attrs(node)
    x, rest = node.input[0], list(node.input[2:])
    mid = f"{name}.lowrank_hidden"
    k0, k1 = f"{name}.factor0", f"{name}.factor1"
    tag = node.name or name
    if node.op_type == "Gemm":
        first, second = (q, p) if a.get("transB", 0) else (p, q)
        n1 = helper.make_node("Gemm", [x, k0], [mid], name=f"{tag}/factor0",
                              transA=a.get("transA", 0), transB=1)
        n2 = helper.make_node("Gemm", [mid, k1, *rest], list(node.output), name=f"{tag}/factor1",
                              alpha=a.get("alpha", 1.0), beta=a.get("beta", 1.0))
        return (n1, n2), {k0: first, k1: second}
    if node.op_type == "MatMul":
        n1 = helper.make_node("MatMul", [x, k0], [mid], name=f"{tag}/factor0")
        n2 = helper.make_node("MatMul", [mid, k1], list(node.output), name=f"{tag}/factor1")
        return (n1, n2), {k0: p.T, k1: q}
    if a.get("group", 1) != 1 or len(shape) < 3:
        return None
    out, spatial = shape[0], shape[2:]
    if f.split == "channels":
        conv1 = {k: v for k, v in a.items() if k != "kernel_shape"}
        n1 = helper.make_node("Conv", [x, k0], [mid], name=f"{tag}/factor0", **conv1)
        n2 = helper.make_node("Conv", [mid, k1, *rest], list(node.output),
                              name=f"{tag}/factor1", kernel_shape=[1] * len(spatial))
        return (n1, n2), {k0: q.reshape(rank, *shape[1:]),
                          k1: p.T.reshape(out, rank, *([1] * len(spatial)))}
    if len(spatial) != 2 or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        return None
    (kh, kw), c = spatial, shape[1]
    st = a.get("strides", [1, 1])
    dil = a.get("dilations", [1, 1])
    pads = a.get("pads", [0, 0, 0, 0])
    n1 = helper.make_node("Conv", [x, k0], [mid], name=f"{tag}/factor0", kernel_shape=[kh, 1],
                          strides=[st[0], 1], dilations=[dil[0], 1],
                          pads=[pads[0], 0, pads[2], 0])
    n2 = helper.make_node("Conv", [mid, k1, *rest], list(node.output), name=f"{tag}/factor1",
                          kernel_shape=[1, kw], strides=[1, st[1]], dilations=[1, dil[1]],
                          pads=[0, pads[1], 0, pads[3]])
    vertical = p.reshape(rank, c, kh, 1)
    horizontal = q.reshape(rank, out, 1, kw).transpose(1, 0, 2, 3)
    return (n1, n2), {k0: vertical, k1: horizontal}
