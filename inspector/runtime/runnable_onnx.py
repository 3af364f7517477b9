"""Running ONNX models with onnxruntime on the CPU, with replaceable weights.

Every float initializer of the main graph is also declared a graph input: ONNX then treats the
initializer as a default the caller may override, so one session runs any set of substituted
weights (no session rebuild per evaluation). Float ``Constant`` nodes of the main graph are
turned into such initializers when the session is built (the node's output is renamed and left
unused). The price is that onnxruntime cannot constant-fold those weights, which costs little
for the networks inspector evaluates.

Tensors inside subgraphs (If branches, Loop and Scan bodies) cannot be fed from outside their
graph. Substituting any of them builds a second session from a copy of the model with their
values written in (as :mod:`inspector.io.onnx_writeback` writes them); that session is kept for
as long as the same values come back, so evaluating one setting many times builds it once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.io.onnx_file import (
    Weight,
    custom_operators,
    load_external,
    load_proto,
    node_holders,
    read_onnx,
    weights_of,
)
from inspector.io.onnx_writeback import replace_weight
from inspector.runtime.runnable import Runnable, cannot_run, run_failed

# Input element types inspector can feed (float data): float, float16, double.
_INPUT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}
_ORT_ERROR = 3  # log severity: errors only (overridable initializers make it warn otherwise)


class OnnxRunnable(Runnable):
    """An onnxruntime session whose float tensors can be replaced per call."""

    def __init__(self, path: Path, proto: Any) -> None:
        self.path = str(path)
        data = _data_input(path, proto)
        self._input = data.name
        self._input_dtype = _INPUT_TYPES[data.type.tensor_type.elem_type]
        dims = data.type.tensor_type.shape.dim
        # A batch axis of -1 (some exporters write it for "any") is as open as a named one.
        fixed = dims[0].dim_value if dims and dims[0].HasField("dim_value") else 0
        self._fixed_batch = max(0, fixed)
        self.input_shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                                 else None for d in dims[1:])
        weights = weights_of(proto, path)
        self.names = tuple(w.name for w in weights)
        self._shapes = {w.name: w.shape for w in weights}
        self._data_types = {w.name: w.data_type for w in weights}
        # Main-graph weights are fed by their value names; subgraph ones are written in.
        self._fed = _make_overridable(proto, [w for w in weights if w.main])
        self._nested = {w.name: w for w in weights if not w.main}
        self._proto = proto
        self._base = _session(path, proto)
        self._session = self._base
        self._output_names = [o.name for o in self._base.get_outputs()]
        self._output = self._output_names[0]
        producers = {out: node.op_type for node in proto.graph.node for out in node.output}
        self.ends_in = producers.get(self._output, "")
        self._nested_key: tuple[tuple[str, str], ...] = ()
        self._nested_session: Any = None
        self._feeds: dict[str, Any] = {}
        self._keep: list[np.ndarray] = []  # OrtValues borrow these arrays' memory

    @classmethod
    def open(cls, path: Path) -> OnnxRunnable:
        """Load ``path`` (external data from its folder) and start a CPU session."""
        proto = load_proto(path)
        custom = custom_operators(proto)
        if custom:
            more = f" and {len(custom) - 3} more" if len(custom) > 3 else ""
            raise cannot_run(path, f"it uses custom operators ({', '.join(custom[:3])}{more}), "
                             "which need native code from outside the file; inspector does not "
                             "load custom-operator libraries")
        load_external(proto, path)
        return cls(path, proto)

    def reference(self) -> LoadedModel:
        return read_onnx(Path(self.path))

    def batch_size(self, inputs: np.ndarray) -> int:
        # A model exported for a fixed batch takes exactly that many; the last batch is padded.
        return self._fixed_batch or super().batch_size(inputs)

    @contextmanager
    def substituted(self, weights: Mapping[str, np.ndarray]) -> Iterator[None]:
        self.check_weights(weights)
        feeds, keep, nested = {}, [], {}
        for name, array in weights.items():
            dims = self._shapes[name]
            if tuple(array.shape) != dims:
                raise InputError(
                    f"tensor {name!r} has shape {list(array.shape)}, the model's {list(dims)}",
                    self.path,
                )
            if name in self._nested:
                nested[name] = np.asarray(array)
                continue
            value, held = _ort_value(np.asarray(array), self._data_types[name])
            feeds[self._fed[name]] = value
            keep.append(held)
        session = self._with_nested(nested) if nested else self._base
        self._feeds, self._keep, self._session = feeds, keep, session
        try:
            yield
        finally:
            self._feeds, self._keep, self._session = {}, [], self._base

    def forward(self, batch: np.ndarray) -> np.ndarray:
        count = batch.shape[0]
        out = self._run(batch, [self._output])[0]
        if out.ndim == 0 or out.shape[0] != count:
            raise cannot_run(self.path, f"its output has shape {list(out.shape)}, not [N, C]")
        return out.astype(np.float32, copy=False).reshape(count, -1)

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        count = batch.shape[0]
        outs = self._run(batch, self._output_names)
        kept = tuple(o.astype(np.float32, copy=False) for o in outs
                     if o.ndim > 0 and o.shape[0] == count)
        if not kept:
            shapes = ", ".join(str(list(o.shape)) for o in outs)
            raise cannot_run(self.path, f"no output has a batch axis (shapes {shapes})")
        return kept

    def _run(self, batch: np.ndarray, names: list[str]) -> list[np.ndarray]:
        """The outputs ``names`` of one batch, the padding of a fixed batch cut off."""
        count = batch.shape[0]
        x = np.ascontiguousarray(batch, dtype=self._input_dtype)
        if self._fixed_batch and count < self._fixed_batch:
            pad = np.zeros((self._fixed_batch - count, *x.shape[1:]), dtype=x.dtype)
            x = np.concatenate([x, pad])
        feeds = {self._input: ort.OrtValue.ortvalue_from_numpy(x), **self._feeds}
        try:
            outs = [v.numpy() for v in self._session.run_with_ort_values(names, feeds)]
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
            raise run_failed(self.path, batch.shape, " ".join(str(exc).split())[:200]) from None
        padded = x.shape[0]
        return [o[:count] if o.ndim and o.shape[0] == padded else o for o in outs]

    def _with_nested(self, arrays: Mapping[str, np.ndarray]) -> Any:
        """A session whose subgraph tensors hold ``arrays`` (the others the file's values)."""
        types = self._data_types
        key = tuple(sorted((name, _digest(array, types[name])) for name, array in arrays.items()))
        if key != self._nested_key:
            self._nested_session = None  # one extra session at a time: free the old one first
            originals = {name: _copy(self._nested[name].holder) for name in arrays}
            try:
                for name, array in arrays.items():
                    replace_weight(self._nested[name], array)
                self._nested_session = _session(Path(self.path), self._proto)
            finally:
                for name, original in originals.items():
                    self._nested[name].holder.CopyFrom(original)
            self._nested_key = key
        return self._nested_session


def _make_overridable(proto: Any, weights: list[Weight]) -> dict[str, str]:
    """Declare main-graph weights graph inputs; by reader name, the input each is fed through.

    A Constant becomes an initializer of its output's name. Its node stays (removing it would
    move the nodes after it, and the subgraph weights that point into them), but computes an
    unused scalar under a fresh name.
    """
    graph = proto.graph
    declared = {i.name for i in graph.input}
    used = _value_names(proto)
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output}
    fed = {}
    for weight in weights:
        if weight.attribute:
            graph.initializer.append(_as_tensor(weight))
            node = constants[weight.value]
            node.output[0] = _fresh(f"{weight.value}.unused", used)
            del node.attribute[:]  # the data now lives in the initializer only
            node.attribute.append(helper.make_attribute("value_float", 0.0))
        if weight.value not in declared:
            declared.add(weight.value)
            graph.input.append(
                helper.make_tensor_value_info(weight.value, weight.data_type, weight.shape)
            )
        fed[weight.name] = weight.value
    return fed


def _as_tensor(weight: Weight) -> Any:
    """A Constant's value as an initializer named after its output."""
    if weight.attribute == "value":
        tensor = onnx.TensorProto()
        tensor.CopyFrom(weight.holder)
        tensor.name = weight.value
        return tensor
    values = weight.holder.f if weight.attribute == "value_float" else weight.holder.floats
    return numpy_helper.from_array(np.array(values, dtype=np.float32), weight.value)


def _value_names(proto: Any) -> set[str]:
    """Every value name of the model, subgraphs included (a new name must clash with none)."""
    names: set[str] = set()
    for graph in node_holders(proto):
        names.update(v.name for v in (*graph.input, *graph.output, *graph.initializer))
        for node in graph.node:
            names.update(node.input)
            names.update(node.output)
    return names


def _fresh(base: str, used: set[str]) -> str:
    name, count = base, 1
    while name in used:
        count += 1
        name = f"{base}{count}"
    used.add(name)
    return name


def _copy(message: Any) -> Any:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _digest(array: np.ndarray, data_type: int) -> str:
    """A fingerprint of ``array`` as the model stores it (values rounded to its type)."""
    stored = np.ascontiguousarray(array.astype(helper.tensor_dtype_to_np_dtype(data_type)))
    return hashlib.blake2b(stored.view(np.uint8).data, digest_size=16).hexdigest()


def _data_input(path: Path, proto: Any) -> Any:
    """The one graph input that is not an initializer: where the examples go."""
    stored = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in stored]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise cannot_run(path, f"it takes {len(inputs)} inputs ({names}); inspector feeds one")
    elem = inputs[0].type.tensor_type.elem_type
    if elem not in _INPUT_TYPES:
        kind = onnx.TensorProto.DataType.Name(elem) if elem else "not a tensor"
        raise cannot_run(path, f"its input {inputs[0].name!r} is {kind}; inspector feeds floats")
    return inputs[0]


def _session(path: Path, proto: Any) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.log_severity_level = _ORT_ERROR
    try:
        model = proto.SerializeToString()
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # invalid graph, unsupported operator or opset, over 2 GB
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise cannot_run(path, f"onnxruntime cannot load it ({reason})") from None


def _ort_value(array: np.ndarray, data_type: int) -> tuple[Any, np.ndarray]:
    """An OrtValue of ``data_type`` holding ``array``, and the array it borrows memory from."""
    target = helper.tensor_dtype_to_np_dtype(data_type)
    held = np.ascontiguousarray(array.astype(target, copy=False))
    if data_type in _INPUT_TYPES:
        return ort.OrtValue.ortvalue_from_numpy(held), held
    # bfloat16 and float8 (ml_dtypes): onnxruntime takes their raw bits with the ONNX type.
    bits = held.view(np.uint16 if held.dtype.itemsize == 2 else np.uint8)
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, data_type), bits
