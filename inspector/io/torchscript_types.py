"""What each TorchScript parameter is, from the module class the archive says holds it.

A TorchScript archive's ``data.pkl`` pickles the module tree: each module is an object of a
class such as ``__torch__.torch.nn.modules.conv.___torch_mangle_5.Conv2d`` whose state dict holds
its tensors and submodules, and ``code/`` declares each class's ``__parameters__`` and
``__buffers__``. Both are read without running anything: the pickle through an Unpickler whose
``find_class`` only ever returns inert stand-ins that record the class name, the code as text.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

_MAX_PICKLE = 256 << 20  # module trees are small; a bigger data.pkl is not one we describe
_MANGLE = re.compile(r"\.___torch_mangle_\d+")
_CLASS_DECL = re.compile(  # class Conv2d(Module):\n  __parameters__ = [...]\n  __buffers__ = [...]
    r"^class (\w+)\(Module\):\s*\n\s*__parameters__ = \[([^\]]*)\]"
    r"\s*\n\s*__buffers__ = \[([^\]]*)\]",
    re.MULTILINE,
)
_QUOTED = re.compile(r'"([^"]*)"')

_CONV = frozenset({"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
                   "ConvTranspose3d", "LazyConv1d", "LazyConv2d", "LazyConv3d"})
_LINEAR = frozenset({"Linear", "LazyLinear", "Bilinear", "NonDynamicallyQuantizableLinear"})
_RNN = frozenset({"LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"})
_EMBEDDING = frozenset({"Embedding", "EmbeddingBag"})
_NORM_BUFFERS = frozenset({"running_mean", "running_var", "num_batches_tracked"})


class _Tensor:
    """Stands for a tensor in the pickle (its data is read by the archive's loader)."""

    def __init__(self, *args: Any) -> None:
        del args


class _Module:
    """Stands for an object of a class the pickle names; records the name and its state."""

    qualname = ""

    def __init__(self, *args: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Unpickler(pickle.Unpickler):
    """Builds stand-ins only: no class, function or module of the archive is ever imported."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("torch._utils") and name.startswith("_rebuild"):
            return _Tensor
        qualname = f"{module}.{name}"
        if qualname not in self._classes:
            self._classes[qualname] = type(name, (_Module,), {"qualname": qualname})
        return self._classes[qualname]

    def persistent_load(self, pid: Any) -> Any:
        return None


def script_kinds(path: Path) -> dict[str, tuple[str, str]]:
    """Kind and reason of the state-dict tensors of a TorchScript archive, by module class.

    Returns
    -------
    dict of str to (kind, reason)
        Only tensors whose module class says something (torch.nn layers, and any module's
        registered buffers); an archive this cannot read gives an empty dict, since the kinds
        are only hints (the tensor loader reports a damaged archive).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            root, declared = _read(archive)
    except Exception:  # any failure only loses the hints, never the model
        return {}
    return _kinds(root, declared)


def _read(archive: zipfile.ZipFile) -> tuple[Any, dict[str, tuple[set[str], set[str]]]]:
    infos = [i for i in archive.infolist() if i.filename.count("/") == 1]
    data = next(i for i in infos if i.filename.endswith("/data.pkl"))
    if data.file_size > _MAX_PICKLE:
        raise ValueError("data.pkl too large")
    root = _Unpickler(archive.read(data)).load()
    prefix = data.filename.split("/")[0] + "/code/"
    declared: dict[str, tuple[set[str], set[str]]] = {}
    for info in archive.infolist():
        if info.filename.startswith(prefix) and info.filename.endswith(".py"):
            if info.file_size > _MAX_PICKLE:
                continue
            module = info.filename[len(prefix) : -3].replace("/", ".")
            text = archive.read(info).decode("utf-8", "replace")
            for name, params, buffers in _CLASS_DECL.findall(text):
                declared[f"{module}.{name}"] = (
                    set(_QUOTED.findall(params)), set(_QUOTED.findall(buffers)))
    return root, declared


def _kinds(
    root: Any, declared: dict[str, tuple[set[str], set[str]]]
) -> dict[str, tuple[str, str]]:
    kinds: dict[str, tuple[str, str]] = {}
    stack, seen = [("", root)], set()
    while stack:  # a stack, not recursion: the tree is as deep as the file makes it
        prefix, obj = stack.pop()
        if id(obj) in seen or not isinstance(obj, _Module) or not isinstance(obj.state, dict):
            continue
        seen.add(id(obj))
        _, buffers = declared.get(obj.qualname, (set(), set()))
        cls = _MANGLE.sub("", obj.qualname).rsplit(".", 1)[-1]
        where = f"{cls} '{prefix[:-1]}'" if prefix else cls
        for attr, value in obj.state.items():
            if not isinstance(attr, str):
                continue
            if isinstance(value, _Module):
                stack.append((f"{prefix}{attr}.", value))
            elif isinstance(value, _Tensor):
                hint = attribute_kind(cls, attr, attr in buffers)
                if hint is not None:
                    kinds[prefix + attr] = (hint[0], f"{hint[1]} of {where}")
    return kinds


def attribute_kind(cls: str, attr: str, buffer: bool) -> tuple[str, str] | None:
    """Kind of tensor ``attr`` of a module of class ``cls`` (e.g. "Conv2d", "weight").

    Returns
    -------
    (kind, what) or None
        ``what`` starts the reason (``"weight"``, ``"registered buffer running_mean"``); None
        when the class says nothing (a custom module's parameter: its name decides).
    """
    if "Norm" in cls:
        if attr in _NORM_BUFFERS:
            return "buffer", f"running statistic {attr}"
        if attr in ("weight", "bias"):
            return "norm", attr
    if buffer:
        # an STFT basis, a window, a mask: fixed by the code, never trained
        return "buffer", f"registered buffer {attr}"
    if cls in _CONV or cls in _LINEAR:
        if attr == "bias":
            return "bias", attr
        if attr == "weight":
            return ("conv" if cls in _CONV else "fc"), attr
    if cls in _RNN:
        if attr.startswith("weight_"):
            return "fc", attr
        if attr.startswith("bias_"):
            return "bias", attr
    if cls in _EMBEDDING and attr == "weight":
        return "embedding", attr
    if cls == "MultiheadAttention":
        if attr.endswith("_weight"):
            return "fc", attr
        if "bias" in attr:
            return "bias", attr
    return None
