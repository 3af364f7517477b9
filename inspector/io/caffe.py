"""Caffe ``.caffemodel`` files, parsed straight from the protobuf wire format.

A caffemodel is one serialized ``NetParameter`` message. Only the few fields that hold weights
are decoded (field numbers from BVLC ``src/caffe/proto/caffe.proto``); everything else is
skipped by its length:

* ``NetParameter``: ``name = 1``, ``layer = 100`` (LayerParameter), ``layers = 2``
  (V1LayerParameter, the pre-2015 format).
* ``LayerParameter``: ``name = 1``, ``type = 2`` (string), ``blobs = 7``.
* ``V1LayerParameter``: ``name = 4``, ``type = 5`` (enum), ``blobs = 6``; in V0 files (before
  2014, the original Deep Compression models) it only wraps ``layer = 1``, a
  ``V0LayerParameter``: ``name = 1``, ``type = 2`` (string such as ``"conv"``), ``blobs = 50``.
* ``BlobProto``: ``shape = 7`` (``BlobShape.dim = 1``, packed int64), ``data = 5`` (packed
  float), ``double_data = 8`` (packed double), legacy ``num, channels, height, width = 1..4``.

Tensors are named ``<layer>.weight`` and ``<layer>.bias`` (blobs 0 and 1), ``<layer>.blob<i>``
beyond; a BatchNorm layer's three blobs are ``running_mean``, ``running_var`` and
``scale_factor`` (Caffe divides the first two by the third).

The file is untrusted: every length is checked against the bytes left, the parser descends a
fixed five levels (net, layer, V0 layer, blob, shape), a blob's shape must match the values it
holds, and nothing is allocated beyond the values present in the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10
_MAX_NDIM = 32
# Packed runs shorter than this are copied into one buffer, so a hostile file of many tiny
# fields cannot make the parser hold an object per handful of bytes.
_SMALL_RUN = 256
# NetParameter fields and the wire type each must have, for sniffing.
_NET_FIELDS = {1: _LEN, 2: _LEN, 3: _LEN, 4: _VARINT, 5: _VARINT, 6: _LEN, 7: _VARINT, 8: _LEN}
_NEW_LAYER, _V1_LAYERS = 100, 2
_V1_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}
_V0_TYPES = {"conv": "Convolution", "innerproduct": "InnerProduct"}
_V0_LAYER = 1
_FORMATS = {_NEW_LAYER: "layer", _V1_LAYERS: "layers (V1)", _V0_LAYER: "layers (V0)"}
_BLOB_NAMES = {"BatchNorm": ("running_mean", "running_var", "scale_factor")}
_CONV_TYPES = frozenset({"Convolution", "Deconvolution"})


class CaffeError(ValueError):
    """The bytes are not a well-formed caffemodel; the message says where."""


@dataclass(slots=True)
class _Values:
    """The raw little-endian values of one repeated numeric field, not yet decoded."""

    itemsize: int
    parts: list[memoryview | bytearray] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(p) for p in self.parts) // self.itemsize

    def add(self, raw: memoryview) -> None:
        if len(raw) % self.itemsize:
            raise CaffeError(f"packed data of {len(raw)} bytes is not whole values")
        if len(raw) >= _SMALL_RUN:
            self.parts.append(raw)
        elif raw:
            if not self.parts or not isinstance(self.parts[-1], bytearray):
                self.parts.append(bytearray())
            self.parts[-1].extend(raw)

    def array(self, dtype: str) -> np.ndarray:
        out = np.empty(self.count, dtype=dtype)
        pos = 0
        for part in self.parts:
            chunk = np.frombuffer(part, dtype=f"<{dtype[0]}{self.itemsize}")
            out[pos : pos + chunk.size] = chunk
            pos += chunk.size
        return out


@dataclass(slots=True)
class _Blob:
    shape: tuple[int, ...] | None = None
    legacy: list[int] | None = None  # num, channels, height, width
    floats: _Values = field(default_factory=lambda: _Values(4))
    doubles: _Values = field(default_factory=lambda: _Values(8))


@dataclass(frozen=True, slots=True)
class CaffeLayer:
    """A layer of the net: its name, type, the raw blobs it holds, and how it was stored.

    ``format`` is ``"layer"``, ``"layers (V1)"`` or ``"layers (V0)"``.
    """

    name: str
    type: str
    blobs: tuple[_Blob, ...]
    format: str


# ---------------------------------------------------------------------------------- wire format


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(pos, min(end, pos + _MAX_VARINT_BYTES)):
        byte = buf[i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i + 1
        shift += 7
    raise CaffeError("truncated varint" if end - pos < _MAX_VARINT_BYTES else "overlong varint")


def _fields(buf: memoryview, pos: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """Yield ``(field, wire type, value, start, end)`` for every field in ``buf[pos:end]``.

    ``value`` is the integer of a varint field; the others give the byte range of their payload.
    """
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise CaffeError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos, pos
            continue
        if wire == _LEN:
            size, pos = _varint(buf, pos, end)
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
        else:
            raise CaffeError(f"field {number} uses unsupported wire type {wire}")
        if size > end - pos:
            raise CaffeError(f"field {number} claims {size} bytes but {end - pos} remain")
        yield number, wire, 0, pos, pos + size
        pos += size


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(buf: memoryview, start: int, end: int) -> str:
    try:
        return str(buf[start:end], "utf-8")
    except UnicodeDecodeError:
        raise CaffeError("a name is not valid UTF-8") from None


# ------------------------------------------------------------------------------------ messages


def parse_net(data: bytes | memoryview) -> tuple[str, list[CaffeLayer]]:
    """The net name and the layers (new ``layer`` and legacy ``layers``) of a NetParameter.

    Raises
    ------
    CaffeError
        Malformed wire format, or a blob whose shape and values disagree.
    """
    buf = memoryview(data)
    name, layers = "", []
    for number, wire, _, start, end in _fields(buf, 0, len(buf)):
        if wire != _LEN:
            continue
        if number == 1:
            name = _text(buf, start, end)
        elif number in (_NEW_LAYER, _V1_LAYERS):
            layers.append(_layer(buf, start, end, number == _V1_LAYERS))
    return name, layers


def _layer(buf: memoryview, start: int, end: int, v1: bool) -> CaffeLayer:
    name_field, type_field, blob_field = (4, 5, 6) if v1 else (1, 2, 7)
    name, kind, blobs = "", "", []
    v0: CaffeLayer | None = None
    for number, wire, value, a, b in _fields(buf, start, end):
        if v1 and number == _V0_LAYER and wire == _LEN:
            v0 = _layer_v0(buf, a, b)
        elif number == name_field and wire == _LEN:
            name = _text(buf, a, b)
        elif number == type_field and v1 and wire == _VARINT:
            kind = _V1_TYPES.get(value, f"V1LayerType{value}")
        elif number == type_field and wire == _LEN:
            kind = _text(buf, a, b)
        elif number == blob_field and wire == _LEN:
            blobs.append(_blob(buf, a, b))
    if v0 is not None and not blobs:
        # Caffe's own upgrade takes a V0 layer's name, type and blobs from the wrapped layer.
        return CaffeLayer(name or v0.name, kind or v0.type, v0.blobs, v0.format)
    return CaffeLayer(name, kind, tuple(blobs), _FORMATS[_V1_LAYERS if v1 else _NEW_LAYER])


def _layer_v0(buf: memoryview, start: int, end: int) -> CaffeLayer:
    """A V0LayerParameter: ``name = 1``, ``type = 2`` (``"conv"``, ``"innerproduct"``...),
    ``blobs = 50``."""
    name, kind, blobs = "", "", []
    for number, wire, _, a, b in _fields(buf, start, end):
        if wire != _LEN:
            continue
        if number == 1:
            name = _text(buf, a, b)
        elif number == 2:
            text = _text(buf, a, b)
            kind = _V0_TYPES.get(text, text)
        elif number == 50:
            blobs.append(_blob(buf, a, b))
    return CaffeLayer(name, kind, tuple(blobs), _FORMATS[_V0_LAYER])


def _blob(buf: memoryview, start: int, end: int) -> _Blob:
    blob = _Blob()
    for number, wire, value, a, b in _fields(buf, start, end):
        if number == 7 and wire == _LEN:
            blob.shape = _shape(buf, a, b)
        elif number == 5 and wire in (_LEN, _I32):
            blob.floats.add(buf[a:b])
        elif number == 8 and wire in (_LEN, _I64):
            blob.doubles.add(buf[a:b])
        elif 1 <= number <= 4 and wire == _VARINT:
            blob.legacy = blob.legacy or [0, 0, 0, 0]
            blob.legacy[number - 1] = _int64(value)
    return blob


def _shape(buf: memoryview, start: int, end: int) -> tuple[int, ...]:
    dims: list[int] = []
    for number, wire, value, a, b in _fields(buf, start, end):
        if number != 1:
            continue
        if wire == _VARINT:
            dims.append(_int64(value))
        elif wire == _LEN:
            pos = a
            while pos < b and len(dims) <= _MAX_NDIM:
                dim, pos = _varint(buf, pos, b)
                dims.append(_int64(dim))
        if len(dims) > _MAX_NDIM:
            raise CaffeError(f"a blob claims more than {_MAX_NDIM} dimensions")
    if any(d < 0 for d in dims):
        raise CaffeError(f"a blob has a negative dimension {dims}")
    return tuple(dims)


# --------------------------------------------------------------------------------- the tensors


def _tensor_shape(layer: CaffeLayer, index: int, blob: _Blob, count: int) -> tuple[int, ...]:
    """The blob's shape: its BlobShape, else its legacy 4-D dims made natural, else flat."""
    if blob.shape is not None:
        return blob.shape
    if blob.legacy is None:
        return (count,)
    if any(d < 0 for d in blob.legacy):
        raise CaffeError(f"layer {layer.name!r} has a negative dimension {blob.legacy}")
    dims = tuple(blob.legacy)
    if index == 0 and layer.type in _CONV_TYPES:
        return dims
    if index == 0 and layer.type == "InnerProduct" and dims[:2] == (1, 1):
        return dims[2:]  # legacy fc weights are 1 x 1 x out x in
    while len(dims) > 1 and dims[0] == 1:
        dims = dims[1:]
    return dims


def _tensor(layer: CaffeLayer, index: int, blob: _Blob) -> np.ndarray:
    values, dtype = (blob.doubles, "float64") if blob.doubles.count else (blob.floats, "float32")
    shape = _tensor_shape(layer, index, blob, values.count)
    # Python ints: a hostile shape cannot overflow, and nothing is allocated before this check.
    if math.prod(shape) != values.count:
        raise CaffeError(
            f"layer {layer.name!r} blob {index} claims shape {shape} "
            f"({math.prod(shape)} values) but holds {values.count}"
        )
    return values.array(dtype).reshape(shape)


def _leaf(layer: CaffeLayer, index: int) -> str:
    leaves = _BLOB_NAMES.get(layer.type, ("weight", "bias"))
    return leaves[index] if index < len(leaves) else f"blob{index}"


def _unique(name: str, used: set[str], last: dict[str, int]) -> str:
    """``name``, or ``name_2``, ``name_3``... if an earlier layer took it (Caffe allows that).

    ``last`` remembers the last suffix tried per name, so n layers sharing one name cost O(n),
    not O(n**2): a hostile net repeats one name for every layer.
    """
    unique, n = name, last.get(name, 1)
    if n > 1:
        unique = f"{name}_{n}"
    while unique in used:
        n += 1
        unique = f"{name}_{n}"
    last[name] = n
    used.add(unique)
    return unique


def sniff_caffe(head: bytes) -> bool:
    """True when ``head`` parses as the start of a NetParameter holding a layer.

    Protobuf has no magic number, so the check is strict: only NetParameter's own fields with
    their own wire types, a printable net name, and a layer that opens like a layer.
    """
    buf = memoryview(head)
    pos, seen_name = 0, False
    try:
        while pos < len(buf):
            key, pos = _varint(buf, pos, len(buf))
            number, wire = key >> 3, key & 7
            if number in (_NEW_LAYER, _V1_LAYERS) and wire == _LEN:
                size, start = _varint(buf, pos, len(buf))
                return _opens_like_layer(buf[start : start + min(size, 16)], number)
            if _NET_FIELDS.get(number) != wire or (number == 1 and seen_name):
                return False
            if wire == _VARINT:
                _, pos = _varint(buf, pos, len(buf))
                continue
            size, pos = _varint(buf, pos, len(buf))
            if number == 1:
                seen_name = True
                if size > len(buf) - pos or not _text(buf, pos, pos + size).isprintable():
                    return False
            pos += size
    except CaffeError:
        return False
    return False


def _opens_like_layer(buf: memoryview, number: int) -> bool:
    """A LayerParameter starts with its name (field 1); a V1 layer with fields 1 to 6."""
    try:
        key, _ = _varint(buf, 0, len(buf))
    except CaffeError:
        return False
    if number == _NEW_LAYER:
        return key == (1 << 3 | _LEN)
    return (key >> 3 in (1, 2, 3, 4, 6) and key & 7 == _LEN) or key == (5 << 3 | _VARINT)


@reader(name="caffe", extensions=(".caffemodel",), sniff=sniff_caffe)
def read_caffemodel(path: Path) -> LoadedModel:
    """Read every blob of a ``.caffemodel``, layer by layer (see :func:`caffemodel_from_bytes`)."""
    return caffemodel_from_bytes(path.read_bytes(), path)


def caffemodel_from_bytes(data: bytes, path: str | Path) -> LoadedModel:
    """The tensors of a serialized NetParameter; ``path`` names it in the model and in errors.

    Returns
    -------
    LoadedModel
        float32 tensors (float64 where the file used ``double_data``); ``metadata`` holds the
        net's ``name`` and ``caffe_layer_format`` (``"layer"``, ``"layers (V1)"``,
        ``"layers (V0)"``, or several joined by ``" + "``).

    Raises
    ------
    InputError
        Malformed or truncated file, a blob whose shape disagrees with its data, or no weights.
    """
    try:
        net_name, layers = parse_net(data)
        tensors: dict[str, np.ndarray] = {}
        used: set[str] = set()
        last: dict[str, int] = {}
        for position, layer in enumerate(layers):
            if layer.blobs:
                prefix = _unique(layer.name or f"layer{position}", used, last)
                for index, blob in enumerate(layer.blobs):
                    tensors[f"{prefix}.{_leaf(layer, index)}"] = _tensor(layer, index, blob)
    except CaffeError as exc:
        raise InputError(f"corrupt or truncated caffemodel ({exc})", path) from None
    if not tensors:
        raise InputError("caffemodel holds no weights (no layer has blobs)", path)
    formats = sorted({layer.format for layer in layers if layer.blobs})
    metadata = {"caffe_layer_format": " + ".join(formats)}
    if net_name:
        metadata["name"] = net_name
    return LoadedModel.build(str(path), "caffe", tensors, metadata=metadata)
