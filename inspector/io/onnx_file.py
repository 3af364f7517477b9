"""ONNX models: the float tensors (weights) of the graph and of its subgraphs.

Covered: float initializers of the main graph and of every subgraph (If branches, Loop and
Scan bodies, any node attribute holding a graph or graphs, recursively), and float tensors held
in ``Constant`` nodes (``value``, ``value_float``, ``value_floats``), stored inline or as
external data next to the model (onnx checks that external paths stay inside the model's folder
and within the data file). 0-d tensors stay 0-d. Not covered: sparse initializers and
``sparse_value`` constants, tensors inside model-local functions (templates, not weights), and
tensors in other nodes' attributes (``ConstantOfShape``...); integer tensors (shapes, indices)
are not weights and are skipped on purpose.

Names: a main-graph initializer keeps its ONNX name. Any other tensor is named after the value
it produces (the subgraph initializer's name, the Constant's output) when no other tensor of the
model produces a value of that name. Sibling subgraphs may reuse a name (both branches of an If
holding ``w``); such a tensor is named by the path of nodes and attributes that lead to its
graph, e.g. ``cond:then_branch/w`` or ``If#3:else_branch/Loop#0:body/w`` (a node without a name
is ``op_type#index`` in its graph; GRAPHS attributes add ``[i]``). A name still taken after that
(only in files that break ONNX's single-assignment rule) gets ``~2``, ``~3``... appended.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from inspector.errors import InputError
from inspector.io.budget import Budget
from inspector.io.model_file import LoadedModel
from inspector.io.onnx_kinds import onnx_kinds
from inspector.io.registry import reader

# TensorProto.DataType numbers of float types, with the dtype names LoadedModel uses.
FLOAT_TYPES: dict[int, str] = {
    1: "float32",
    10: "float16",
    11: "float64",
    16: "bfloat16",
    17: "float8_e4m3fn",
    18: "float8_e4m3fnuz",
    19: "float8_e5m2",
    20: "float8_e5m2fnuz",
}
_NUMPY_FLOATS = frozenset({"float16", "float32", "float64"})

# ModelProto fields: number -> protobuf wire type (0 varint, 2 length-delimited).
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
_MAX_IR_VERSION = 64
# AttributeProto.AttributeType numbers.
_ATTR_FLOAT, _ATTR_TENSOR, _ATTR_GRAPH, _ATTR_FLOATS, _ATTR_GRAPHS = 1, 4, 5, 6, 10
_ONNX_DOMAINS = ("", "ai.onnx")


def _varint(head: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(head) and shift < 64:
        byte = head[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def sniff_onnx(head: bytes) -> bool:
    """True when ``head`` parses as the start of an ONNX ``ModelProto``.

    The encoder writes ``ir_version`` (field 1) first; every field after it must be a known
    ModelProto field with a plausible length, until the graph (field 7) or the end of ``head``.
    """
    if head[:1] != b"\x08":
        return False
    pos, fields = 0, 0
    while pos < len(head):
        tag = _varint(head, pos)
        value = None if tag is None else _varint(head, tag[1])
        if tag is None or value is None:
            break  # cut off by the end of head
        number, wire = tag[0] >> 3, tag[0] & 7
        length, pos = value  # a varint field's value, or a length-delimited field's size
        if _MODEL_FIELDS.get(number) != wire or (fields == 0) != (number == 1):
            return False
        if number == 1 and not 1 <= length <= _MAX_IR_VERSION:
            return False
        if number == 7:
            return True
        fields += 1
        if wire == 2:
            pos += length
    return fields >= 2


def load_proto(path: Path) -> Any:
    """``onnx.load`` without external data; a file that is not ONNX raises InputError."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, or a message from the C++ parser
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"not a readable ONNX model ({reason})", path) from None
    if not proto.HasField("graph"):
        raise InputError("not a readable ONNX model (no graph)", path)
    return proto


@dataclass(frozen=True, slots=True)
class Weight:
    """One float tensor of an ONNX model and where the model holds it.

    Attributes
    ----------
    name : str
        The reader's name for it (see the module docstring).
    value : str
        The ONNX value it provides: the initializer's name or the Constant's output.
    holder : Any
        The ``TensorProto`` holding the data (an initializer or a Constant's ``value``), or
        the ``AttributeProto`` of a ``value_float`` / ``value_floats`` Constant.
    attribute : str
        ``""`` for an initializer, else the Constant attribute: ``value``, ``value_float``
        or ``value_floats``.
    main : bool
        Whether it lives in the main graph (not in a subgraph).
    """

    name: str
    value: str
    holder: Any
    attribute: str
    main: bool

    @property
    def data_type(self) -> int:
        """TensorProto.DataType of the stored elements (``value_float(s)`` are FLOAT)."""
        return self.holder.data_type if self.attribute in ("", "value") else 1

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's shape (``value_float`` is 0-d, ``value_floats`` 1-d)."""
        if self.attribute == "value_float":
            return ()
        if self.attribute == "value_floats":
            return (len(self.holder.floats),)
        return tuple(int(d) for d in self.holder.dims)


class _Found(NamedTuple):
    value: str
    scope: tuple[str, ...]  # node:attribute steps from the main graph to the tensor's graph
    holder: Any
    attribute: str


def weights_of(proto: Any, path: Path) -> list[Weight]:
    """Every float tensor of the model: main-graph initializers first, in file order, then
    Constants and subgraph tensors in the order of a depth-first walk over the nodes.

    The ``holder`` of each result points into ``proto``: changing it changes the model.

    Raises
    ------
    InputError
        A main-graph initializer name appears twice.
    """
    found = [_Found(t.name, (), t, "") for t in float_initializers(proto)]
    counts = Counter(f.value for f in found)
    twice = [name for name, count in counts.items() if count > 1]
    if twice:
        raise InputError(f"initializer {twice[0]!r} appears twice", path)
    _walk(proto.graph, (), found)
    return _named(found, len(counts))


def node_holders(proto: Any, functions: bool = False) -> list[Any]:
    """The main graph and every subgraph at any depth (and, if asked, every function)."""
    holders, stack = [], [proto.graph, *(proto.functions if functions else ())]
    while stack:  # protobuf's parser bounds the nesting, the stack is as deep as the file
        holder = stack.pop()
        holders.append(holder)
        for node in holder.node:
            for attr in node.attribute:
                if attr.type == _ATTR_GRAPH:
                    stack.append(attr.g)
                elif attr.type == _ATTR_GRAPHS:
                    stack.extend(attr.graphs)
    return holders


# Operator domains onnxruntime implements itself; any other needs a custom-op library, that is
# native code from somewhere else, which inspector never loads.
_BUILTIN_OP_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training",
                                 "com.microsoft", "com.microsoft.nchwc"})  # fmt: skip


def custom_operators(proto: Any) -> list[str]:
    """``domain.op_type`` of every node (in any graph or function) needing a custom operator.

    A call of one of the model's own functions is not one: it expands to ONNX nodes, which are
    checked in turn. Reading never runs anything; this is for running the model.
    """
    local = {(f.domain, f.name) for f in proto.functions}
    found: dict[str, None] = {}
    for holder in node_holders(proto, functions=True):
        for node in holder.node:
            if node.domain not in _BUILTIN_OP_DOMAINS and (node.domain, node.op_type) not in local:
                found[f"{node.domain}.{node.op_type}"] = None
    return list(found)


def _walk(graph: Any, scope: tuple[str, ...], found: list[_Found]) -> None:
    if scope:  # the main graph's initializers are listed first by the caller
        found.extend(_Found(t.name, scope, t, "") for t in float_initializers_of(graph))
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant" and node.domain in _ONNX_DOMAINS and node.output:
            held = _constant(node)
            if held is not None:
                found.append(_Found(node.output[0], scope, *held))
        label = node.name or f"{node.op_type}#{index}"
        for attr in node.attribute:
            # protobuf's parser bounds the nesting depth, so this recursion is bounded too
            if attr.type == _ATTR_GRAPH:
                _walk(attr.g, (*scope, f"{label}:{attr.name}"), found)
            elif attr.type == _ATTR_GRAPHS:
                for i, sub in enumerate(attr.graphs):
                    _walk(sub, (*scope, f"{label}:{attr.name}[{i}]"), found)


def _constant(node: Any) -> tuple[Any, str] | None:
    """The float data of a Constant node and the attribute holding it, if it is float."""
    for attr in node.attribute:
        if attr.name == "value" and attr.type == _ATTR_TENSOR and attr.t.data_type in FLOAT_TYPES:
            return attr.t, "value"
        if (attr.name, attr.type) in (("value_float", _ATTR_FLOAT), ("value_floats", _ATTR_FLOATS)):
            return attr, attr.name
    return None


def _named(found: list[_Found], initializers: int) -> list[Weight]:
    """Names for ``found``, whose first ``initializers`` are the main graph's (unique)."""
    counts = Counter(f.value for f in found)
    taken = {f.value for f in found[:initializers]}
    suffixes: Counter[str] = Counter()  # per base name, so hostile files cannot go quadratic
    weights = []
    for i, f in enumerate(found):
        if i < initializers:  # a main-graph initializer keeps its own name
            weights.append(Weight(f.value, f.value, f.holder, "", True))
            continue
        base = f.value if counts[f.value] == 1 or not f.scope else "/".join((*f.scope, f.value))
        name = base
        while name in taken:
            suffixes[base] += 1
            name = f"{base}~{suffixes[base] + 1}"
        taken.add(name)
        weights.append(Weight(name, f.value, f.holder, f.attribute, not f.scope))
    return weights


def float_initializers(proto: Any) -> list[Any]:
    """The main graph's initializers of float element type, in file order."""
    return float_initializers_of(proto.graph)


def float_initializers_of(graph: Any) -> list[Any]:
    """A graph's own initializers of float element type, in file order."""
    return [t for t in graph.initializer if t.data_type in FLOAT_TYPES]


def weight_array(weight: Weight, path: Path) -> tuple[np.ndarray, str]:
    """A weight as an array numpy can hold, and its stored dtype name.

    bfloat16 and float8 are widened to float32 (exact). External data is read from the
    model's folder.
    """
    if weight.attribute == "value_float":
        return np.array(weight.holder.f, dtype=np.float32), "float32"
    if weight.attribute == "value_floats":
        return np.array(weight.holder.floats, dtype=np.float32), "float32"
    return tensor_array(weight.holder, weight.name, path)


def tensor_array(tensor: Any, name: str, path: Path) -> tuple[np.ndarray, str]:
    """A float ``TensorProto`` as an array numpy can hold, and its dtype name."""
    from onnx import numpy_helper

    dtype = FLOAT_TYPES[tensor.data_type]
    if any(d < 0 for d in tensor.dims):  # numpy would infer a -1 and read the data anyway
        raise InputError(f"tensor {name!r} has a negative dimension {list(tensor.dims)}", path)
    try:
        array = numpy_helper.to_array(tensor, base_dir=str(path.parent))
    except Exception as exc:  # missing or short external file, bad raw_data size...
        raise InputError(f"tensor {name!r}: {_reason(exc)}", path) from None
    if dtype not in _NUMPY_FLOATS:
        array = array.astype(np.float32)
    return array, dtype


def load_external(proto: Any, path: Path) -> None:
    """Read every external tensor of ``proto`` (from ``path``'s folder) into the proto.

    onnx refuses locations outside the folder and ranges past the end of the data file.
    """
    from onnx.external_data_helper import load_external_data_for_model

    check_external_keys(proto, path)
    try:
        load_external_data_for_model(proto, str(path.parent))
    except Exception as exc:  # missing file, path outside the folder, short file
        raise InputError(f"external data: {_reason(exc)}", path) from None


# The keys of an external-data entry the ONNX spec defines; onnx ignores any other silently,
# so an entry saying how its bytes are encoded ("compression": "zlib") would read as garbage.
_EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})


def check_external_keys(proto: Any, path: Path) -> None:
    """Refuse an external-data entry with a key the spec does not define, or one given twice."""
    from onnx.external_data_helper import _get_all_tensors

    for tensor in _get_all_tensors(proto):
        keys = [entry.key for entry in tensor.external_data]
        unknown = [k for k in keys if k not in _EXTERNAL_KEYS]
        if unknown:
            raise InputError(f"tensor {tensor.name[:80]!r} has an unknown external-data key "
                             f"{unknown[0][:40]!r}", path)  # fmt: skip
        if len(set(keys)) != len(keys):
            raise InputError(f"tensor {tensor.name[:80]!r} repeats an external-data key", path)


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


@reader(name="onnx", extensions=(".onnx",), sniff=sniff_onnx)
def read_onnx(path: Path) -> LoadedModel:
    """Read the float tensors of an ONNX model: initializers of the graph and its subgraphs,
    and Constant nodes.

    Parameters
    ----------
    path : Path
        An ``.onnx`` file; external data must sit in the model's folder.

    Returns
    -------
    LoadedModel
        Main-graph initializers by their ONNX names, in file order, then Constants and
        subgraph initializers named as the module docstring says (0-d ones stay 0-d);
        metadata holds the producer, IR version and opset.

    Raises
    ------
    InputError
        Not an ONNX model, unreadable tensor, or no float tensors.
    """
    proto = load_proto(path)
    check_external_keys(proto, path)
    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    weights = weights_of(proto, path)
    # Every tensor's bytes come from the model or its external data, which many tensors could
    # otherwise point at alike: a model-wide bound, charged before each tensor is read.
    budget = Budget(path, _input_nbytes(path, weights), ratio=2)
    for weight in weights:
        stored, widened = _nbytes(weight)
        if stored <= budget.input_nbytes:  # a larger one alone fails to read, saying why
            budget.take(weight.name, stored, widened)
        tensors[weight.name], dtypes[weight.name] = weight_array(weight, path)
    if not tensors:
        raise InputError("ONNX model has no float initializers or Constant tensors (weights)", path)
    kinds = onnx_kinds(node_holders(proto), [(w.name, w.value, w.shape) for w in weights])
    return LoadedModel.build(str(path), "onnx", tensors, dtypes, _metadata(proto), kinds)


def _nbytes(weight: Weight) -> tuple[int, int]:
    """Bytes of ``weight`` as stored and as read (bfloat16 and float8 widen to float32)."""
    from inspector.io.model_file import dtype_itemsize

    size = math.prod(max(d, 0) for d in weight.shape)
    itemsize = dtype_itemsize(FLOAT_TYPES.get(weight.data_type, "float32"))
    return size * itemsize, size * max(itemsize, 4)


def _input_nbytes(path: Path, weights: list[Weight]) -> int:
    """The model file's size plus that of every distinct external data file it names."""
    folder = path.parent.resolve()
    total, seen = path.stat().st_size, set()
    for weight in weights:
        if weight.attribute not in ("", "value"):
            continue
        for entry in weight.holder.external_data:
            if entry.key == "location" and entry.value not in seen:
                seen.add(entry.value)
                target = (folder / entry.value).resolve()
                # a missing or outside file fails when the tensor is read, with its own message
                if target.is_relative_to(folder) and target.is_file():
                    total += target.stat().st_size
    return total


def _metadata(proto: Any) -> dict[str, str]:
    metadata = {"ir_version": str(proto.ir_version)}
    if proto.producer_name:
        metadata["producer"] = f"{proto.producer_name} {proto.producer_version}".strip()
    opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if opsets:
        metadata["opset"] = str(opsets[0])
    return metadata
