"""Running ONNX models with onnxruntime on the CPU, with replaceable initializers.

Every float initializer of the main graph is also declared a graph input: ONNX then treats the
initializer as a default the caller may override, so one session runs any set of substituted
weights (no session rebuild per evaluation). The price is that onnxruntime cannot constant-fold
those weights, which costs little for the networks inspector evaluates.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.io.onnx_file import float_initializers, load_proto, read_onnx
from inspector.io.runnable import Runnable, cannot_run, run_failed

# Input element types inspector can feed (float data): float, float16, double.
_INPUT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}
_ORT_ERROR = 3  # log severity: errors only (overridable initializers make it warn otherwise)


class OnnxRunnable(Runnable):
    """An onnxruntime session whose float initializers can be overridden per call."""

    def __init__(self, path: Path, proto: Any) -> None:
        self.path = str(path)
        graph = proto.graph
        initializers = float_initializers(proto)
        self.names = tuple(dict.fromkeys(t.name for t in initializers))
        self._types = {t.name: (t.data_type, tuple(t.dims)) for t in initializers}
        data = _data_input(path, proto)
        self._input = data.name
        self._input_dtype = _INPUT_TYPES[data.type.tensor_type.elem_type]
        dims = data.type.tensor_type.shape.dim
        self._fixed_batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else 0
        declared = {i.name for i in graph.input}
        for tensor in initializers:
            if tensor.name not in declared:
                declared.add(tensor.name)
                graph.input.append(
                    helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
                )
        self._session = _session(path, proto)
        self._output = self._session.get_outputs()[0].name
        self._feeds: dict[str, Any] = {}
        self._keep: list[np.ndarray] = []  # OrtValues borrow these arrays' memory

    @classmethod
    def open(cls, path: Path) -> OnnxRunnable:
        """Load ``path`` (external data from its folder) and start a CPU session."""
        proto = load_proto(path)
        for tensor in proto.graph.initializer:
            if uses_external_data(tensor):
                try:
                    load_external_data_for_tensor(tensor, str(path.parent))
                except Exception as exc:  # missing file, path outside the folder, short file
                    reason = " ".join(str(exc).split())[:160]
                    raise InputError(f"initializer {tensor.name!r}: {reason}", path) from None
        return cls(path, proto)

    def reference(self) -> LoadedModel:
        return read_onnx(Path(self.path))

    def batch_size(self, inputs: np.ndarray) -> int:
        # A model exported for a fixed batch takes exactly that many; the last batch is padded.
        return self._fixed_batch or super().batch_size(inputs)

    @contextmanager
    def substituted(self, weights: Mapping[str, np.ndarray]) -> Iterator[None]:
        self.check_weights(weights)
        feeds, keep = {}, []
        for name, array in weights.items():
            data_type, dims = self._types[name]
            if tuple(array.shape) != dims:
                raise InputError(
                    f"tensor {name!r} has shape {list(array.shape)}, the model's {list(dims)}",
                    self.path,
                )
            value, held = _ort_value(np.asarray(array), data_type)
            feeds[name] = value
            keep.append(held)
        self._feeds, self._keep = feeds, keep
        try:
            yield
        finally:
            self._feeds, self._keep = {}, []

    def forward(self, batch: np.ndarray) -> np.ndarray:
        count = batch.shape[0]
        x = np.ascontiguousarray(batch, dtype=self._input_dtype)
        if self._fixed_batch and count < self._fixed_batch:
            pad = np.zeros((self._fixed_batch - count, *x.shape[1:]), dtype=x.dtype)
            x = np.concatenate([x, pad])
        feeds = {self._input: ort.OrtValue.ortvalue_from_numpy(x), **self._feeds}
        try:
            out = self._session.run_with_ort_values([self._output], feeds)[0].numpy()
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
            raise run_failed(self.path, batch.shape, " ".join(str(exc).split())[:200]) from None
        if out.ndim == 0 or out.shape[0] != x.shape[0]:
            raise cannot_run(self.path, f"its output has shape {list(out.shape)}, not [N, C]")
        return out[:count].astype(np.float32, copy=False).reshape(count, -1)


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
