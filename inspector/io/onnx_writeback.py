"""Write-back into ONNX models: a copy of the source with some float tensors replaced.

The copy is the source's ``ModelProto`` with the named tensors' data swapped in place (main-graph
and subgraph initializers, ``Constant`` nodes), each in the element type the source stores
(float16, bfloat16, float64... keep their type; values are rounded to it). Everything else —
graph, opset, IR version, metadata, names, doc strings — is the source's.

External data: the copy never points to the source's data file. It is one self-contained file
whenever it fits in protobuf's 2 GiB limit (external tensors of the source are read in). A larger
model gets its own data file beside the output, named after it (``out.onnx`` ->
``out.onnx.data``), which holds every initializer of 1 KiB or more; a data file of that name that
belongs to the source is refused rather than overwritten.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from inspector.atomic import check_output, new_file_mode, same_file
from inspector.errors import InputError
from inspector.io.onnx_file import Weight, load_external, load_proto, node_holders, weights_of
from inspector.io.registry import rewriter

#: Above this many bytes (data included) the copy stores its initializers in a data file.
INLINE_LIMIT = 2**31 - 2**26  # protobuf's 2 GiB, less a margin for the graph around the data
#: In a data file, the smallest initializer moved there (onnx's own default threshold).
EXTERNAL_THRESHOLD = 1024
_ALIGN = 4096  # data-file offsets on page boundaries, so runtimes can map tensors directly
# TensorProto fields that hold (or locate) the elements.
_DATA_FIELDS = (
    "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data",
    "raw_data", "external_data", "data_location",
)
# atomic_path's temporary name for "out.onnx": ".out.onnx.<random>.tmp"
_TEMPORARY = re.compile(r"\.(.+)\.[^.]+\.tmp")


def replace_weight(weight: Weight, array: np.ndarray) -> None:
    """Store ``array`` in the proto field ``weight`` points to, in the element type stored there.

    Parameters
    ----------
    weight : Weight
        From :func:`inspector.io.onnx_file.weights_of`; its holder is changed in place.
    array : ndarray
        Values of ``weight``'s shape, any numeric dtype.
    """
    from onnx import helper, numpy_helper

    values = np.asarray(array)
    if weight.attribute == "value_float":
        weight.holder.f = float(values.astype(np.float32))
        return
    if weight.attribute == "value_floats":
        del weight.holder.floats[:]
        weight.holder.floats.extend(values.astype(np.float32).ravel().tolist())
        return
    tensor = weight.holder
    stored = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    # from_array writes little-endian raw_data for every float type, ml_dtypes ones included
    new = numpy_helper.from_array(values.astype(stored).reshape(tuple(tensor.dims)))
    for field in _DATA_FIELDS:
        tensor.ClearField(field)
    tensor.raw_data = new.raw_data


@rewriter(format="onnx")
def rewrite_onnx(source: Path, target: Path, tensors: Mapping[str, np.ndarray]) -> None:
    """Write ``target``: the ONNX model ``source`` with ``tensors`` (reader names) replaced.

    Parameters
    ----------
    source : Path
        The ONNX model; its external data is read from its folder.
    target : Path
        The file to write (the registry's temporary file beside the output).
    tensors : mapping of str to ndarray
        New values by reader name; names and shapes are checked by the registry.
    """
    proto = load_proto(source)
    weights = {w.name: w for w in weights_of(proto, source)}
    tensors_in_file = _initializers(proto) + _attribute_tensors(proto)
    size = proto.ByteSize() + sum(_external_nbytes(t) for t in tensors_in_file)
    for name, array in tensors.items():
        replace_weight(weights[name], array)
    if size < INLINE_LIMIT:
        load_external(proto, source)
        target.write_bytes(proto.SerializeToString())
    else:
        _save_with_data_file(proto, source, target)


def _initializers(proto: Any) -> list[Any]:
    owners = node_holders(proto, functions=True)  # functions have no initializers
    return [t for owner in owners for t in getattr(owner, "initializer", ())]


def _attribute_tensors(proto: Any) -> list[Any]:
    tensors = []
    for owner in node_holders(proto, functions=True):
        for node in owner.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    tensors.append(attr.t)
                tensors.extend(attr.tensors)
    return tensors


def _external_nbytes(tensor: Any) -> int:
    """Bytes an external tensor will take once read in; 0 for an inline one."""
    from onnx import helper
    from onnx.external_data_helper import uses_external_data

    if not uses_external_data(tensor):
        return 0
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except Exception:  # strings or an unknown type: count a wide element
        itemsize = 16
    return math.prod(tensor.dims) * itemsize


def _save_with_data_file(proto: Any, source: Path, target: Path) -> None:
    """Write ``target`` with its initializers in ``<output name>.data`` beside it."""
    from onnx.external_data_helper import (
        load_external_data_for_tensor,
        set_external_data,
        uses_external_data,
    )

    match = _TEMPORARY.fullmatch(target.name)
    location = f"{match.group(1) if match else target.name}.data"
    _refuse_source_files(proto, source, target.parent / location)
    check_output(target.parent / location)  # a second output: never a link, folder or device
    # Constants (and other attribute tensors) stay inline: read their external data now.
    for tensor in _attribute_tensors(proto):
        if uses_external_data(tensor):
            load_external_data_for_tensor(tensor, str(source.parent))
    fd, name = tempfile.mkstemp(prefix=f".{location}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as data:
            for tensor in _initializers(proto):
                if uses_external_data(tensor):  # one source tensor in memory at a time
                    load_external_data_for_tensor(tensor, str(source.parent))
                if len(tensor.raw_data) >= EXTERNAL_THRESHOLD:
                    offset, length = _append(data, tensor.raw_data)
                    set_external_data(tensor, location, offset, length)
                    tensor.ClearField("raw_data")
            data.flush()
            os.fsync(data.fileno())
        target.write_bytes(proto.SerializeToString())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, target.parent / location)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _refuse_source_files(proto: Any, source: Path, data_path: Path) -> None:
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    tensors = _initializers(proto) + _attribute_tensors(proto)
    locations = {ExternalDataInfo(t).location for t in tensors if uses_external_data(t)}
    for path in (source, *(source.parent / location for location in locations)):
        if same_file(data_path, path):
            raise InputError(f"its data file {data_path.name} would overwrite the source's files")


def _append(data: IO[bytes], raw: bytes) -> tuple[int, int]:
    """Write ``raw`` at the next aligned offset of ``data``; its offset and length."""
    end = data.tell()
    offset = -(-end // _ALIGN) * _ALIGN
    data.write(b"\0" * (offset - end))
    data.write(raw)
    return offset, len(raw)
