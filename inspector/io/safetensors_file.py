"""safetensors files: an 8-byte header length, a JSON header, then raw tensor data.

The header is checked against the file size before the library parses it, so a hostile
header length cannot trigger a huge allocation; every entry's dtype, shape and offsets are
checked against each other and the data bytes, so a hostile shape is refused in plain words.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader, writer

# The safetensors library refuses headers above 100 MB; so do we, before reading them.
MAX_HEADER_BYTES = 100_000_000
# Dtypes the library can hand over as numpy arrays; others (BF16, F8_*) go through torch.
_NUMPY_DTYPES = frozenset(
    {"BOOL", "U8", "I8", "I16", "U16", "F16", "I32", "U32", "F32", "F64", "I64", "U64"}
)
# Bits per element of every dtype the safetensors format defines (library 0.8).
_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip
_MAX_NDIM = 64  # numpy's limit
# Defined by the format but not weights inspector can hold exactly: E8M0 is an exponent-only
# scale (its 0xFF is NaN), F4 and F6 pack several values per byte.
_UNSUPPORTED = {
    "F8_E8M0": "an exponent-only scale format, not weights",
    "F4": "packs two values per byte",
    "F6_E2M3": "packs values across bytes",
    "F6_E3M2": "packs values across bytes",
}


def sniff_safetensors(head: bytes) -> bool:
    """True when byte 8 opens the JSON header, as in every safetensors file."""
    return len(head) > 8 and head[8:9] == b"{"


def read_header(path: Path) -> dict[str, Any]:
    """Parse and sanity-check the JSON header of a safetensors file.

    Raises
    ------
    InputError
        Claimed header longer than the file or than :data:`MAX_HEADER_BYTES`, malformed JSON,
        an unknown dtype, a shape that disagrees with its data size, or tensor data running
        past the end of the file.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise InputError("truncated safetensors file (no header length)", path)
        length = int.from_bytes(prefix, "little")
        if length > size - 8 or length > MAX_HEADER_BYTES:
            raise InputError(
                f"safetensors header claims {length} bytes but the file holds {size - 8} after "
                "the length field; truncated or not a safetensors file",
                path,
            )
        raw = f.read(length)
    try:
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise InputError(f"malformed safetensors header (it names {exc} twice)", path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"malformed safetensors header ({exc})", path) from None
    except RecursionError:
        raise InputError("malformed safetensors header (JSON nested too deep)", path) from None
    if not isinstance(header, dict):
        raise InputError("malformed safetensors header (not a JSON object)", path)
    _check_entries(path, header, size - 8 - length)
    return header


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (``json`` would silently keep the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(_short(key))
        out[key] = value
    return out


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a hostile header can hold megabyte names."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_entries(path: Path, header: dict[str, Any], data_bytes: int) -> None:
    """Every tensor's dtype known, shape and offsets whole numbers that agree, data in the file.

    Python ints: a hostile shape cannot overflow, and nothing is allocated.
    """
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensor = f"tensor {_short(name)}"
        if not isinstance(entry, dict):
            raise InputError(f"malformed safetensors header entry {_short(name)}", path)
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
            raise InputError(f"{tensor} has malformed data_offsets {_short(offsets)}", path)
        if not (isinstance(shape, list) and len(shape) <= _MAX_NDIM and all(map(_is_count, shape))):
            raise InputError(f"{tensor} has an invalid shape {_short(shape)}", path)
        if dtype not in _DTYPE_BITS:
            raise InputError(f"{tensor} has an unknown dtype {_short(dtype)}", path)
        if dtype in _UNSUPPORTED:
            raise InputError(f"{tensor} has dtype {dtype}, which inspector does not read "
                             f"({_UNSUPPORTED[dtype]})", path)  # fmt: skip
        begin, end = offsets
        if begin > end or end > data_bytes:
            raise InputError(
                f"truncated safetensors file: {tensor} spans bytes {begin} to {end} of "
                f"{data_bytes} data bytes",
                path,
            )
        nbits = math.prod(shape) * _DTYPE_BITS[dtype]
        if nbits != 8 * (end - begin):
            size = f"{nbits // 8} bytes" if nbits % 8 == 0 else f"{nbits} bits"
            raise InputError(
                f"{tensor} claims shape {_short(tuple(shape))} of {dtype} ({size}) but its "
                f"data_offsets hold {end - begin} bytes",
                path,
            )


@reader(name="safetensors", extensions=(".safetensors",), sniff=sniff_safetensors)
def read_safetensors(path: Path) -> LoadedModel:
    """Read every tensor of a safetensors file, in data order, with its ``__metadata__``.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    LoadedModel
        bfloat16/float8 tensors are widened to float32 with their original dtype recorded.
    """
    from safetensors import safe_open

    header = read_header(path)
    entries = sorted(
        (item for item in header.items() if item[0] != "__metadata__"),
        key=lambda item: item[1]["data_offsets"][0],
    )
    names = [name for name, _ in entries]
    if not names:
        raise InputError("holds no tensors", path)
    # Only load torch when numpy cannot represent a dtype in the file.
    framework = "numpy" if all(e.get("dtype") in _NUMPY_DTYPES for _, e in entries) else "pt"
    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    with safe_open(str(path), framework=framework) as f:
        metadata = dict(f.metadata() or {})
        for name in names:
            value = f.get_tensor(name)
            if framework == "pt":
                from inspector.io._torch import tensor_to_numpy

                tensors[name], dtypes[name] = tensor_to_numpy(value)
            else:
                tensors[name] = value
    return LoadedModel.build(str(path), "safetensors", tensors, dtypes, metadata)


@writer(name="safetensors", extensions=(".safetensors",))
def write_safetensors(
    path: Path,
    tensors: Mapping[str, np.ndarray],
    dtypes: Mapping[str, str],
    metadata: Mapping[str, str],
) -> None:
    """Write ``tensors`` with their original dtypes restored and ``metadata`` as strings."""
    from safetensors.torch import save_file

    from inspector.io._torch import numpy_to_tensor

    state = {}
    seen: set[int] = set()
    for name, arr in tensors.items():
        tensor = numpy_to_tensor(arr, dtypes.get(name))
        # safetensors refuses tensors sharing memory (tied weights): store a copy instead.
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(ptr)
        state[name] = tensor
    save_file(state, str(path), metadata={str(k): str(v) for k, v in metadata.items()} or None)
