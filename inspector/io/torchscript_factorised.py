"""Write-back of low-rank layers into TorchScript as two ops: a smaller and faster archive.

For a layer ``W ~ P^T Q`` (:mod:`inspector.core.stages.lowrank_kernels`) held by a submodule
``nn.Linear`` or ``nn.Conv2d`` (zero padding given as numbers), the submodule's compiled
``forward`` is edited in place: its one use of ``self.weight`` (``aten::linear`` or the
``_conv_forward`` call) becomes two ops, as the ONNX write-back's nodes
(:mod:`inspector.io.onnx_factorised`): ``linear(linear(x, factor0), factor1, bias)``, and for
a conv ``conv2d`` with ``factor0`` (the original stride/padding/dilation, or with the spatial
split the vertical ones) then ``conv2d`` with ``factor1`` (1 x 1, or the horizontal ones)
and the bias.

What TorchScript allows, and so what the copy is:

* A submodule cannot be swapped for another inside a compiled module (the parent's code is
  typed by the submodule's class), so the submodule stays and its ``forward`` graph is
  rewritten; ``torch.jit.save`` prints the edited graph as the copy's code.
* A compiled module's Python API adds *attributes*, not parameters (``_register_attribute``
  has no parameter flag): ``factor0``/``factor1`` are tensor attributes of the submodule
  (saved in the archive, absent from ``state_dict()``), and ``weight`` stays a parameter
  holding an empty tensor (a parameter cannot be removed either).
* Methods and attributes belong to the submodule's class, which TorchScript shares between
  submodules of identical configuration: a layer whose class another submodule also uses is
  written as the product instead (as are grouped convs, other submodule types, and layers
  whose factors hold no fewer values than the weight).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inspector.core.stages.lowrank import Factors
from inspector.io.module_state import assign_state
from inspector.io.onnx_factorised import fewer_values
from inspector.io.torchscript import load_script, torch_reason


def factorised_torchscript(source: Path, target: Path, tensors: Mapping[str, np.ndarray],
                           factors: Mapping[str, Factors]) -> dict[str, np.ndarray]:
    """Write ``target``: ``source`` with ``tensors`` set and the ``factors`` layers split.

    Returns the factor tensors by ``<module>.factor0``/``<module>.factor1`` name (as stored);
    the layers not split keep their ``tensors`` product. The caller has the user's leave to
    load ``source`` (it runs the archive's code).
    """
    import torch

    module = load_script(source, allow_code=True)
    assign_state(module, tensors)
    subs = dict(module.named_modules())
    types: dict[str, int] = {}
    for sub in subs.values():
        key = sub._c._type().qualified_name()
        types[key] = types.get(key, 0) + 1
    new: dict[str, np.ndarray] = {}
    for name, f in factors.items():
        owner, _, leaf = name.rpartition(".")
        sub = subs.get(owner)
        if leaf != "weight" or sub is None or types[sub._c._type().qualified_name()] != 1:
            continue
        if not fewer_values(f, tuple(sub.weight.shape)):
            continue
        arrays = _split(sub, f, torch)
        if arrays is not None:
            new.update({f"{owner}.{k}": v for k, v in arrays.items()})
    try:
        torch.jit.save(module, str(target))
    except RuntimeError as exc:  # torch reports a full disk or a vanished folder this way
        raise OSError(torch_reason(exc)) from None
    return new


def _split(sub: Any, f: Factors, torch: Any) -> dict[str, np.ndarray] | None:
    graph = sub.forward.graph
    weight = [n for n in graph.nodes() if n.kind() == "prim::GetAttr" and n.s("name") == "weight"]
    if len(weight) != 1 or len(weight[0].output().uses()) != 1:
        return None
    use = weight[0].output().uses()[0].user
    dtype = sub.weight.dtype
    rank = f.p.shape[0]
    if use.kind() == "aten::linear":
        plan = [(f.q, None), (f.p.T, None)]
    elif use.kind() == "prim::CallMethod" and use.s("name") == "_conv_forward":
        plan = _conv_plan(sub, f, rank)
        if plan is None:
            return None
    else:
        return None
    out = {}
    for key, (arr, _) in zip(("factor0", "factor1"), plan, strict=True):
        values = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)
        sub._c._register_attribute(key, torch._C.TensorType.get(), values)
        out[key] = values.numpy() if dtype != torch.bfloat16 else values.float().numpy()
    _rewrite(graph, use, [p[1] for p in plan], torch)
    sub._c.setattr("weight", torch.nn.Parameter(torch.empty(0, dtype=dtype)))
    return out


def _conv_plan(sub: Any, f: Factors, rank: int) -> list[tuple[np.ndarray, Any]] | None:
    """The two conv2d weights and their (stride, padding, dilation), or None."""
    if sub.original_name != "Conv2d" or sub.groups != 1 or sub.padding_mode != "zeros" or \
            isinstance(sub.padding, str):
        return None
    out, c, kh, kw = sub.weight.shape
    st, pad, dil = list(sub.stride), list(sub.padding), list(sub.dilation)
    if f.split == "channels":
        return [(f.q.reshape(rank, c, kh, kw), (st, pad, dil)),
                (f.p.T.reshape(out, rank, 1, 1), ([1, 1], [0, 0], [1, 1]))]
    return [(f.p.reshape(rank, c, kh, 1), ([st[0], 1], [pad[0], 0], [dil[0], 1])),
            (f.q.reshape(rank, out, 1, kw).transpose(1, 0, 2, 3),
             ([1, st[1]], [0, pad[1]], [1, dil[1]]))]


def _rewrite(graph: Any, use: Any, convs: list[Any], torch: Any) -> None:
    """Replace the node ``use`` by two linear/conv2d ops on ``self.factor0``/``factor1``."""
    inputs = list(use.inputs())
    selfv = next(iter(graph.inputs()))
    x, bias = (inputs[0], inputs[2]) if use.kind() == "aten::linear" else (inputs[1], inputs[3])
    graph.setInsertPoint(use)
    none = graph.insertConstant(None)
    h = x
    for i, conv in enumerate(convs):
        get = graph.create("prim::GetAttr", [selfv], 1)
        get.s_("name", f"factor{i}")
        get.output().setType(torch._C.TensorType.get())
        graph.insertNode(get)
        b = bias if i == 1 else none
        if conv is None:
            op = graph.create("aten::linear", [h, get.output(), b], 1)
        else:
            st, pad, dil = (graph.insertConstant(v) for v in conv)
            op = graph.create("aten::conv2d", [h, get.output(), b, st, pad, dil,
                                               graph.insertConstant(1)], 1)
        op.output().setType(torch._C.TensorType.get())
        graph.insertNode(op)
        h = op.output()
    use.output().replaceAllUsesWith(h)
    use.destroy()
    torch._C._jit_pass_dce(graph)


def read_factors(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The factor attributes ``names`` (``<module>.factor0``...) of a written copy, as
    float32 or their stored dtype (those absent are left out)."""
    import torch

    module = load_script(path, allow_code=True)
    subs = dict(module.named_modules())
    out = {}
    for name in names:
        owner, _, leaf = name.rpartition(".")
        sub = subs.get(owner)
        if sub is not None and sub._c.hasattr(leaf):
            t = sub._c.getattr(leaf).detach()
            out[name] = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    return out
