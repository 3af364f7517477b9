"""What each ONNX weight is, from the op and input slot that consume it.

Exporters name initializers ``123``, ``onnx::Conv_45`` or ``conv2d_10.w_0``, so names say little;
the graph says exactly what a tensor feeds: Conv's W is a conv kernel, Gemm's C a bias, LSTM's R
a recurrent matrix, BatchNormalization's input_mean a running statistic. A tensor that passes
through Cast, Transpose, Identity or DequantizeLinear on its way is classified by where it ends
up. A tensor with several consumers takes the most specific kind among them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from inspector.io.kinds import guess_kind

# Ops a weight may pass through unchanged in meaning (their first input is the tensor).
_PASS_THROUGH = frozenset({"Cast", "Transpose", "Identity", "DequantizeLinear", "CastLike"})
_MAX_HOPS = 4
_DOMAINS = ("", "ai.onnx")

# Input slot names, for the reasons shown to the user.
_SLOTS: dict[str, tuple[str, ...]] = {
    "Conv": ("X", "W", "B"),
    "ConvTranspose": ("X", "W", "B"),
    "Gemm": ("A", "B", "C"),
    "MatMul": ("A", "B"),
    "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
    "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
    "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
    "Gather": ("data", "indices"),
    "GatherElements": ("data", "indices"),
    "BatchNormalization": ("X", "scale", "B", "input_mean", "input_var"),
    "LayerNormalization": ("X", "Scale", "B"),
    "InstanceNormalization": ("input", "scale", "B"),
    "GroupNormalization": ("X", "scale", "bias"),
    "Reshape": ("data", "shape"),
    "Resize": ("X", "roi", "scales", "sizes"),
    "Upsample": ("X", "scales"),
    "Slice": ("data", "starts", "ends", "axes", "steps"),
    "Expand": ("input", "shape"),
    "Tile": ("input", "repeats"),
    "Pad": ("data", "pads", "constant_value", "axes"),
    "ConstantOfShape": ("input",),
    "Range": ("start", "limit", "delta"),
}

# (op, slot) -> kind; slots not listed are "other".
_SLOT_KINDS: dict[tuple[str, int], str] = {
    ("Conv", 1): "conv", ("Conv", 2): "bias",
    ("ConvTranspose", 1): "conv", ("ConvTranspose", 2): "bias",
    ("Gemm", 0): "fc", ("Gemm", 1): "fc", ("Gemm", 2): "bias",
    ("LSTM", 1): "fc", ("LSTM", 2): "fc", ("LSTM", 3): "bias",
    ("LSTM", 5): "buffer", ("LSTM", 6): "buffer",
    ("GRU", 1): "fc", ("GRU", 2): "fc", ("GRU", 3): "bias", ("GRU", 5): "buffer",
    ("RNN", 1): "fc", ("RNN", 2): "fc", ("RNN", 3): "bias", ("RNN", 5): "buffer",
    ("BatchNormalization", 1): "norm", ("BatchNormalization", 2): "norm",
    ("BatchNormalization", 3): "buffer", ("BatchNormalization", 4): "buffer",
    ("LayerNormalization", 1): "norm", ("LayerNormalization", 2): "norm",
    ("InstanceNormalization", 1): "norm", ("InstanceNormalization", 2): "norm",
    ("GroupNormalization", 1): "norm", ("GroupNormalization", 2): "norm",
}  # fmt: skip
# Ops whose non-data inputs are shapes, indices, scales: fixed by the graph, never learned.
_SHAPE_OPS = frozenset(
    {"Reshape", "Resize", "Upsample", "Slice", "Expand", "Tile", "Pad", "ConstantOfShape",
     "Range", "Squeeze", "Unsqueeze", "TopK", "OneHot", "Split", "ReduceSum", "ReduceMean",
     "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "CenterCropPad", "Col2Im"}
)  # fmt: skip
# Most specific first: a tensor feeding both a Conv and a Mul is the Conv's kernel.
_PRIORITY = ("conv", "fc", "embedding", "bias", "norm", "buffer", "other")
# Ops whose output a small Add/Mul operand is a bias of (exporters split Gemm into MatMul + Add).
_LINEAR_OPS = frozenset({"MatMul", "Conv", "ConvTranspose", "Gemm", "Einsum"})


class _Use(NamedTuple):
    node: Any
    label: str  # node name, or op_type#index
    slot: int


def onnx_kinds(
    graphs: Iterable[Any], weights: Iterable[tuple[str, str, tuple[int, ...]]]
) -> dict[str, tuple[str, str]]:
    """Kind and reason of each weight, from the nodes that consume it.

    Parameters
    ----------
    graphs : iterable of onnx.GraphProto
        The main graph and every subgraph (:func:`inspector.io.onnx_file.node_holders`).
    weights : iterable of (name, value, shape)
        The reader's name of each weight, the ONNX value it provides, and its shape.

    Returns
    -------
    dict of str to (kind, reason)
        Only weights that some node consumes; the rest keep the name guess.
    """
    uses: dict[str, list[_Use]] = defaultdict(list)
    producers: dict[str, Any] = {}
    for graph in graphs:
        for index, node in enumerate(graph.node):
            label = node.name or f"{node.op_type}#{index}"
            for slot, value in enumerate(node.input):
                if value:
                    uses[value].append(_Use(node, label, slot))
            for value in node.output:
                producers[value] = node
    kinds = {}
    for name, value, shape in weights:
        found = [_classify(u, shape, producers, via) for u, via in _ends(value, uses)]
        if found:
            kinds[name] = _named(name, shape, min(found, key=lambda kr: _PRIORITY.index(kr[0])))
    return kinds


def _named(name: str, shape: tuple[int, ...], found: tuple[str, str]) -> tuple[str, str]:
    """``found``, unless it is "other" and the name says norm, bias or buffer: a LayerNorm
    exported as ReduceMean, Sub, Div, Mul, Add feeds its scale to a plain Mul."""
    if found[0] != "other":
        return found
    kind, why = guess_kind(name, shape, "float32")
    return (kind, f"{why}; {found[1]}") if kind in ("norm", "bias", "buffer") else found


def _ends(value: str, uses: dict[str, list[_Use]]) -> list[tuple[_Use, str]]:
    """The uses of ``value``, looking through pass-through ops, with the ops passed."""
    out, stack, seen = [], [(value, "", 0)], {value}
    while stack:
        name, via, hops = stack.pop()
        for use in uses.get(name, ()):
            op = use.node.op_type
            if op in _PASS_THROUGH and use.slot == 0 and hops < _MAX_HOPS and use.node.output:
                nxt = use.node.output[0]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, f"{via}, {op}" if via else op, hops + 1))
                continue
            out.append((use, via))
    return out


def _classify(
    use: _Use, shape: tuple[int, ...], producers: dict[str, Any], via: str
) -> tuple[str, str]:
    node, slot = use.node, use.slot
    op = node.op_type if node.domain in _DOMAINS else f"{node.domain}.{node.op_type}"
    names = _SLOTS.get(op, ())
    where = f"as {names[slot]}" if slot < len(names) else f"input {slot}"
    reason = f"feeds {op} '{use.label}' {where}" + (f" (via {via})" if via else "")
    kind = _SLOT_KINDS.get((op, slot))
    if kind is None:
        kind = _by_op(op, slot, shape, node, producers)
    return kind, reason


def _by_op(
    op: str, slot: int, shape: tuple[int, ...], node: Any, producers: dict[str, Any]
) -> str:
    if op == "MatMul":
        return "fc" if len(shape) >= 2 else "other"
    if op in ("Gather", "GatherElements") and slot == 0:
        return "embedding" if len(shape) == 2 else "other"
    if op in _SHAPE_OPS and slot > 0:
        return "buffer"
    if op == "Add" and _is_bias_shape(shape):
        other = node.input[1 - slot] if len(node.input) == 2 else ""
        source = producers.get(other)
        if source is not None and source.op_type in _LINEAR_OPS:
            return "bias"
    return "other"


def _is_bias_shape(shape: tuple[int, ...]) -> bool:
    """One vector, possibly with leading or trailing 1s: (C,), (1, C), (1, C, 1, 1)."""
    return sum(1 for d in shape if d != 1) == 1
