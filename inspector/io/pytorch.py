"""PyTorch checkpoints: zip (``torch.save`` default) and legacy pickle files.

Only ``torch.load(weights_only=True)`` is used: a file that needs arbitrary Python objects is
refused, because unpickling them would run code from the file.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader, writer
from inspector.io.sniff import zip_first_name
from inspector.io.torchscript import is_torchscript_archive, read_torchscript, sniff_torchscript

# A legacy (non-zip) torch.save file opens with its magic number, pickled as a 10-byte long;
# protocols 4 and 5 put a 9-byte frame header before it.
_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."

# Training checkpoints nest the weights under one of these keys, tried in this order.
_STATE_DICT_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "network",
    "weights",
    "params",
    "module",
)
# Checkpoint entries that hold tensors but are not model weights.
_SKIP_PREFIXES = ("optimizer", "optim", "scheduler", "lr_scheduler", "scaler", "grad_scaler")
_MAX_METADATA_CHARS = 200

_PROTOCOL_4 = (
    "saved with pickle protocol 4 or 5, which torch's safe (weights_only) loader cannot read; "
    "re-save it with torch.save's default protocol"
)
_REFUSED = (
    "needs arbitrary Python objects to load{detail}, and inspector refuses to run code from "
    "model files; re-save just the weights with torch.save(model.state_dict(), path)"
)


def sniff_pytorch(head: bytes) -> bool:
    """True for a torch.save zip archive (first member ``<archive>/...``) or a legacy file.

    Archives that start like TorchScript are left to the TorchScript reader.
    """
    if head[:1] == b"\x80" and _LEGACY_MAGIC in head[:32]:
        return True
    name = zip_first_name(head)
    return (
        name is not None and "/" in name and not name.endswith(".npy")
        and not sniff_torchscript(head)
    )


def _refusal(exc: pickle.UnpicklingError) -> str | None:
    """The message for a pickle refused for naming Python globals, else None (plain corruption)."""
    text = str(exc)
    if not re.search(r"Unsupported global|not an allowed global|Unsupported class", text):
        return None
    found = re.search(r"GLOBAL ([\w.]+)|([\w.]+) was not an allowed global", text)
    name = next((g for g in found.groups() if g), None) if found else None
    return _REFUSED.format(detail=f" ({name})" if name else "")


def _corruption(exc: BaseException) -> str:
    """A short reason from torch's multi-paragraph errors."""
    text = str(exc)
    if "Unsupported operand 149" in text:  # FRAME: pickle protocol 4+, valid but unsupported
        return _PROTOCOL_4
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    paragraphs = [p for p in text.split("\n\n") if p.strip()] or ["unexpected end of file"]
    reason = " ".join(paragraphs[0].split()).split(". ", 1)[0]
    return f"corrupt or truncated PyTorch file ({reason[:160]})"


def _load(path: Path) -> Any:
    import torch

    is_zip = zipfile.is_zipfile(path)
    try:
        # mmap keeps large checkpoints out of RAM until touched; legacy files cannot be mapped.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        raise InputError(_refusal(exc) or _corruption(exc), path) from None
    except Exception as exc:  # torch reports a damaged file in many ways (EOFError, struct...)
        raise InputError(_corruption(exc), path) from None


def _holds_tensor(obj: Any, depth: int = 0) -> bool:
    import torch

    if isinstance(obj, torch.Tensor):
        return True
    if depth > 8:
        return False
    if isinstance(obj, Mapping):
        return any(_holds_tensor(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_holds_tensor(v, depth + 1) for v in obj)
    return False


def _locate_state_dict(obj: Any, metadata: dict[str, str]) -> tuple[Any, tuple[str, ...]]:
    """Descend through checkpoint wrappers like ``{"epoch": 9, "state_dict": {...}}``.

    Plain scalars of the wrappers (epoch, arch, ...) are added to ``metadata``.
    """
    import torch

    trail: tuple[str, ...] = ()
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key, value in obj.items():
            if isinstance(value, (str, int, float, bool)):
                metadata[str(key)] = str(value)[:_MAX_METADATA_CHARS]
        for key in _STATE_DICT_KEYS:
            child = obj.get(key)
            if isinstance(child, Mapping) and _holds_tensor(child):
                obj, trail = child, (*trail, key)
                break
        else:
            break
    return obj, trail


def _skipped(key: str, value: Any) -> bool:
    return isinstance(value, (Mapping, list, tuple)) and key.lower().startswith(_SKIP_PREFIXES)


def _flatten(obj: Any, prefix: str, tensors: dict[str, Any], metadata: dict[str, str]) -> None:
    """Collect tensors under dotted names, and plain scalars as metadata."""
    import torch

    if isinstance(obj, torch.Tensor):
        tensors[prefix or "tensor"] = obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            if not _skipped(str(key), value):
                _flatten(value, f"{prefix}.{key}" if prefix else str(key), tensors, metadata)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), tensors, metadata)
    elif isinstance(obj, (str, int, float, bool)) and prefix:
        metadata[prefix] = str(obj)[:_MAX_METADATA_CHARS]


@reader(name="pytorch", extensions=(".pt", ".pth", ".bin", ".ckpt"), sniff=sniff_pytorch)
def read_pytorch(path: Path) -> LoadedModel:
    """Read the weights of a PyTorch state dict or training checkpoint.

    Parameters
    ----------
    path : Path
        A ``torch.save`` file (zip or legacy). Checkpoint wrappers (``"state_dict"``,
        ``"model"``, ...) are unwrapped; nested dicts and lists give dotted names.

    Returns
    -------
    LoadedModel
        Tensors in file order; scalar checkpoint entries (epoch, arch...) as metadata, plus
        ``"state_dict_key"`` when the weights were nested.

    Raises
    ------
    InputError
        Refused pickle, corrupt or truncated file, or no tensors.
    """
    from inspector.io._torch import tensor_to_numpy

    if zipfile.is_zipfile(path) and is_torchscript_archive(path):
        # A TorchScript archive without tensor data starts like a checkpoint: hand it over.
        return read_torchscript(path)
    metadata: dict[str, str] = {}
    state, trail = _locate_state_dict(_load(path), metadata)
    raw: dict[str, Any] = {}
    _flatten(state, "", raw, metadata)
    if not raw:
        raise InputError("contains no tensors", path)
    if trail:
        metadata["state_dict_key"] = ".".join(trail)
    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for name, tensor in raw.items():
        try:
            tensors[name], dtypes[name] = tensor_to_numpy(tensor)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise InputError(f"tensor {name!r}: {exc}", path) from None
    return LoadedModel.build(str(path), "pytorch", tensors, dtypes, metadata)


@writer(name="pytorch", extensions=(".pt", ".pth"))
def write_pytorch(
    path: Path,
    tensors: Mapping[str, np.ndarray],
    dtypes: Mapping[str, str],
    metadata: Mapping[str, str],
) -> None:
    """Save ``tensors`` as a plain state dict (loadable with ``weights_only=True``).

    ``metadata`` is not stored: a state dict holds tensors only.
    """
    import torch

    from inspector.io._torch import numpy_to_tensor

    state = {name: numpy_to_tensor(arr, dtypes.get(name)) for name, arr in tensors.items()}
    torch.save(state, path)
