"""ONNX models: the float initializers (weights) of the main graph.

Covered: initializers of the main graph with float element types, stored inline or as external
data next to the model (onnx checks that external paths stay inside the model's folder and
within the data file). Not covered yet: initializers of subgraphs (If/Loop bodies), weights held
in ``Constant`` nodes, and sparse initializers; integer initializers (shapes, indices) are not
weights and are skipped on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
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


def float_initializers(proto: Any) -> list[Any]:
    """The main graph's initializers of float element type, in file order."""
    return [t for t in proto.graph.initializer if t.data_type in FLOAT_TYPES]


def initializer_array(tensor: Any, path: Path) -> tuple[np.ndarray, str]:
    """An initializer as an array numpy can hold, and its dtype name.

    bfloat16 and float8 are widened to float32 (exact). External data is read from the
    model's folder.
    """
    from onnx import numpy_helper

    dtype = FLOAT_TYPES[tensor.data_type]
    try:
        array = numpy_helper.to_array(tensor, base_dir=str(path.parent))
    except Exception as exc:  # missing or short external file, bad raw_data size...
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"initializer {tensor.name!r}: {reason}", path) from None
    if dtype not in _NUMPY_FLOATS:
        array = array.astype(np.float32)
    return array, dtype


@reader(name="onnx", extensions=(".onnx",), sniff=sniff_onnx)
def read_onnx(path: Path) -> LoadedModel:
    """Read the float initializers of an ONNX model's main graph.

    Parameters
    ----------
    path : Path
        An ``.onnx`` file; external data must sit in the model's folder.

    Returns
    -------
    LoadedModel
        Initializers by their ONNX names, in file order (0-d ones stay 0-d); metadata holds
        the producer, IR version and opset.

    Raises
    ------
    InputError
        Not an ONNX model, unreadable initializer, or no float initializers.
    """
    proto = load_proto(path)
    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for tensor in float_initializers(proto):
        if tensor.name in tensors:
            raise InputError(f"initializer {tensor.name!r} appears twice", path)
        tensors[tensor.name], dtypes[tensor.name] = initializer_array(tensor, path)
    if not tensors:
        raise InputError("ONNX model has no float initializers (weights) in its main graph", path)
    return LoadedModel.build(str(path), "onnx", tensors, dtypes, _metadata(proto))


def _metadata(proto: Any) -> dict[str, str]:
    metadata = {"ir_version": str(proto.ir_version)}
    if proto.producer_name:
        metadata["producer"] = f"{proto.producer_name} {proto.producer_version}".strip()
    opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if opsets:
        metadata["opset"] = str(opsets[0])
    return metadata
