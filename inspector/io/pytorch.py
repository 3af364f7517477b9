"""PyTorch checkpoints: zip (``torch.save`` default) and legacy pickle files.

A zip checkpoint is read by :mod:`inspector.io.torch_pickle`, without torch: an allowlisting
unpickler turns its records into tensor descriptions, each is checked against its storage
(offsets, strides, sparse indices), and numpy builds the arrays from the members, inflating
compressed ones. A legacy file goes through ``torch.load(weights_only=True)`` in a child process
(:mod:`inspector.io.isolated`), so a native crash on a hostile file is one line, not a dead app;
its sparse tensors are checked before torch makes them dense. Either way a pickle naming any
other Python global is refused as code, by name. The unpickled structure is untrusted too: it is
walked once per container (shared or cyclic containers cannot make the walk explode), at most
:data:`MAX_DEPTH` deep, and no tensor may claim more bytes than the file holds.
"""

from __future__ import annotations

import mmap
import pickle
import re
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import InputError
from inspector.io.budget import Budget
from inspector.io.isolated import read_isolated
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader, writer
from inspector.io.sniff import check_zip_members, zip_first_name
from inspector.io.torch_pickle import (
    NUMPY_DTYPES,
    BadRecord,
    CodeRefused,
    code_refusal,
    is_tensor_record,
    itemsize,
)
from inspector.io.torch_storage import open_records, read_array
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
#: Nesting of dicts and lists beyond which a checkpoint is refused.
MAX_DEPTH = 32
# A sparse tensor is made dense on reading; its dense form may be this many times the file.
_SPARSE_RATIO = 1024

_PROTOCOL_4 = (
    "saved with pickle protocol 4 or 5, which torch's safe (weights_only) loader cannot read; "
    "re-save it with torch.save's default protocol"
)
_NEW_DTYPE_LEGACY = (
    "a legacy (non-zip) file holding a dtype newer than that format (uint16/32/64, float8, "
    "complex32), which torch's safe loader cannot read; re-save it with torch.save's default "
    "zip format"
)
_REFUSED = (
    "needs arbitrary Python objects to load, and inspector refuses to run code from model "
    "files; re-save just the weights with torch.save(model.state_dict(), path)"
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
    if not re.search(r"(?i)unsupported global|not an allowed global|Unsupported class", text):
        return None
    found = re.search(r"GLOBAL ([\w.]+)|([\w.]+) was not an allowed global", text)
    name = next((g for g in found.groups() if g), None) if found else None
    if name and "." not in name:  # torch drops the module of a builtin: "exec"
        name = f"builtins.{name}"
    return code_refusal(name) if name else _REFUSED


def _corruption(exc: BaseException) -> str:
    """A short reason from torch's multi-paragraph errors."""
    text = str(exc)
    if "Unsupported operand 149" in text:  # FRAME: pickle protocol 4+, valid but unsupported
        return _PROTOCOL_4
    if "UntypedStorage' has no attribute 'dtype'" in text:  # torch's loader, not the file
        return _NEW_DTYPE_LEGACY
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    # torch's C++ checks open with their source location and can leave printf codes unfilled.
    text = re.sub(r"\[enforce fail at [^\]]*\][\s.]*", "", text)
    text = re.sub(r":? expected %ld got %ld\d*", "", text)
    paragraphs = [p for p in text.split("\n\n") if p.strip()] or ["unexpected end of file"]
    reason = " ".join(paragraphs[0].split()).split(". ", 1)[0]
    return f"corrupt or truncated PyTorch file ({reason[:160]})"


def _load_legacy(path: Path) -> Any:
    import torch

    try:
        # A legacy file is unpickled from a memory map of it: CPython's file.read(n) reserves
        # n bytes before reading, and a damaged pickle can claim a string of gigabytes, while
        # a map's read(n) never goes past the file's end. Storages are copied out of the map.
        # torch checks sparse tensors' invariants only when asked to.
        with (
            path.open("rb") as f,
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view,
            torch.sparse.check_sparse_tensor_invariants(True),
        ):
            return torch.load(view, map_location="cpu", weights_only=True)  # type: ignore[arg-type]
    except pickle.UnpicklingError as exc:
        raise InputError(_refusal(exc) or _corruption(exc), path) from None
    except RuntimeError as exc:  # the sparse invariants torch was asked to check
        if "indices" not in str(exc):
            raise InputError(_corruption(exc), path) from None
        reason = " ".join(str(exc).split())[:160]
        raise InputError(f"invalid sparse tensor ({reason})", path) from None
    except Exception as exc:  # torch reports a damaged file in many ways (EOFError, struct...)
        raise InputError(_corruption(exc), path) from None


def _is_tensor(obj: Any) -> bool:
    """A tensor record of a zip archive, or a torch tensor of a legacy file."""
    if is_tensor_record(obj):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _holds_tensor(obj: Any, depth: int = 0, seen: set[int] | None = None) -> bool:
    if _is_tensor(obj):
        return True
    if depth > 8 or not isinstance(obj, (Mapping, list, tuple)):
        return False
    # A pickle can nest one shared list in itself many times over: look inside each only once.
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return False
    seen.add(id(obj))
    values = obj.values() if isinstance(obj, Mapping) else obj
    return any(_holds_tensor(v, depth + 1, seen) for v in values)


def _locate_state_dict(obj: Any, metadata: dict[str, str]) -> tuple[Any, tuple[str, ...]]:
    """Descend through checkpoint wrappers like ``{"epoch": 9, "state_dict": {...}}``.

    Plain scalars of the wrappers (epoch, arch, ...) are added to ``metadata``.
    """
    trail: tuple[str, ...] = ()
    visited = {id(obj)}  # a pickle can hold a dict inside itself: never go round in circles
    while isinstance(obj, Mapping) and not any(_is_tensor(v) for v in obj.values()):
        for key, value in obj.items():
            if isinstance(value, (str, int, float, bool)):
                metadata[str(key)] = str(value)[:_MAX_METADATA_CHARS]
        for key in _STATE_DICT_KEYS:
            child = obj.get(key)
            if isinstance(child, Mapping) and id(child) not in visited and _holds_tensor(child):
                obj, trail = child, (*trail, key)
                visited.add(id(obj))
                break
        else:
            break
    return obj, trail


def _skipped(key: str, value: Any) -> bool:
    return isinstance(value, (Mapping, list, tuple)) and key.lower().startswith(_SKIP_PREFIXES)


def _flatten(
    obj: Any,
    prefix: str,
    tensors: dict[str, Any],
    metadata: dict[str, str],
    seen: set[int],
    depth: int = 0,
) -> None:
    """Collect tensors under dotted names, and plain scalars as metadata.

    A dict or list met a second time (shared, or inside itself) is not entered again: a few
    hundred bytes of pickle can otherwise name more tensors than there are atoms.
    """
    if _is_tensor(obj):
        tensors[prefix or "tensor"] = obj
        return
    if isinstance(obj, (str, int, float, bool)):
        if prefix:
            metadata[prefix] = str(obj)[:_MAX_METADATA_CHARS]
        return
    if not isinstance(obj, (Mapping, list, tuple)) or id(obj) in seen:
        return
    if depth >= MAX_DEPTH:
        raise ValueError(f"the checkpoint nests dicts and lists more than {MAX_DEPTH} deep")
    seen.add(id(obj))
    items = obj.items() if isinstance(obj, Mapping) else enumerate(obj)
    for key, value in items:
        if not _skipped(str(key), value):
            name = f"{prefix}.{key}" if prefix else str(key)
            _flatten(value, name, tensors, metadata, seen, depth + 1)


def _check_size(name: str, tensor: Any, file_nbytes: int, path: Path) -> None:
    """Refuse a tensor claiming more bytes than the file holds (a broadcast view, say).

    Its storage comes from the file, so only a view repeating elements (stride 0) or a sparse
    tensor can be larger; reading would make it dense, however large it claims to be.
    """
    if is_tensor_record(tensor):
        nbytes, strided = tensor.nbytes, tensor.dense
    else:
        nbytes = tensor.numel() * tensor.element_size()
        strided = tensor.layout == sys.modules["torch"].strided
    limit = file_nbytes * (1 if strided else _SPARSE_RATIO)
    if nbytes > limit:
        raise InputError(
            f"tensor {name!r} claims shape {tuple(tensor.shape)} ({nbytes} bytes), more than "
            f"the {file_nbytes}-byte file can hold",
            path,
        )


def _collect(path: Path, obj: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The checkpoint's tensors by dotted name, each checked against the file's size."""
    metadata: dict[str, str] = {}
    state, trail = _locate_state_dict(obj, metadata)
    raw: dict[str, Any] = {}
    try:
        _flatten(state, "", raw, metadata, set())
    except ValueError as exc:
        raise InputError(str(exc), path) from None
    if not raw:
        raise InputError("contains no tensors", path)
    if trail:
        metadata["state_dict_key"] = ".".join(trail)
    file_nbytes = path.stat().st_size
    for name, tensor in raw.items():
        _check_size(name, tensor, file_nbytes, path)
    return raw, metadata


def read_zip_records(path: Path) -> LoadedModel:
    """A zip checkpoint's tensors, from its records and members (no torch, no code)."""
    with zipfile.ZipFile(path) as archive:
        try:
            obj, storages = open_records(path, archive, "data.pkl")
        except CodeRefused as exc:
            raise InputError(code_refusal(exc.name), path) from None
        except BadRecord as exc:
            raise InputError(f"corrupt or truncated PyTorch file ({exc})", path) from None
        except RecursionError:
            raise InputError("corrupt PyTorch file (its pickle nests too deep)", path) from None
        except Exception as exc:  # a damaged pickle fails in many ways (EOFError, struct...)
            raise InputError(_corruption(exc), path) from None
        raw, metadata = _collect(path, obj)
        tensors: dict[str, np.ndarray] = {}
        dtypes: dict[str, str] = {}
        # views of one storage add up: a model-wide bound, charged before each is read
        budget = Budget(path, path.stat().st_size, ratio=2)
        for name, ref in raw.items():
            _charge(budget, name, ref)
            try:
                tensors[name], dtypes[name] = read_array(storages, ref)
            except BadRecord as exc:
                raise InputError(f"tensor {name!r}: {exc}", path) from None
    return LoadedModel.build(str(path), "pytorch", tensors, dtypes, metadata)


def _charge(budget: Budget, name: str, ref: Any) -> None:
    """Charge a tensor record to ``budget``: every distinct view of a storage as stored bytes
    (a tied weight once), a sparse tensor's dense form and a widened dtype as copies."""
    if not ref.dense:
        budget.take(name, 0, ref.numel * max(itemsize(ref.dtype), 4))
        return
    widened = ref.dtype not in NUMPY_DTYPES  # bfloat16 and float8 are read as float32
    key = (ref.storage.key, ref.offset, ref.shape, ref.stride, ref.dtype)
    budget.take(name, ref.nbytes, 4 * ref.numel if widened else 0, key)


def read_legacy_here(path: Path) -> LoadedModel:
    """A legacy (non-zip) checkpoint's tensors via torch's safe loader, in this process.

    Only for the child process of :func:`read_pytorch`: torch's native code parses the file.
    """
    from inspector.io._torch import check_tensor, tensor_to_numpy

    raw, metadata = _collect(path, _load_legacy(path))
    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    budget = Budget(path, path.stat().st_size, ratio=2)
    for name, tensor in raw.items():
        try:
            check_tensor(tensor)
            budget.take_torch(name, tensor)
            tensors[name], dtypes[name] = tensor_to_numpy(tensor)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise InputError(f"tensor {name!r}: {exc}", path) from None
    return LoadedModel.build(str(path), "pytorch", tensors, dtypes, metadata)


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
        A pickle naming code, damaged archive (every member's CRC-32 is checked), corrupt or
        truncated file, a tensor reaching outside its storage, sparse indices outside its
        shape, nesting deeper than :data:`MAX_DEPTH`, a tensor larger than the file, or no
        tensors.
    """
    if zipfile.is_zipfile(path):
        check_zip_members(path, "PyTorch")
        if is_torchscript_archive(path):
            # A TorchScript archive without tensor data starts like a checkpoint: hand it over.
            return read_torchscript(path)
        return read_zip_records(path)
    return read_isolated(read_legacy_here, path, "torch")


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
