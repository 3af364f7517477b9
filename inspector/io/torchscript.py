"""TorchScript archives (``torch.jit.save``): the weights of a compiled, runnable network.

A TorchScript archive is a zip like a ``torch.save`` checkpoint, but it also holds the network's
code. Loading it with ``torch.jit.load`` compiles that TorchScript code; it does not unpickle
arbitrary Python objects, so unlike a pickled module it cannot run Python code from the file.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import InputError
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader
from inspector.io.sniff import check_zip_members, zip_first_name
from inspector.io.torchscript_types import script_kinds

# torch.jit.save writes the tensor data first ("<archive>/data/0"), torch.save writes its pickle
# first ("<archive>/data.pkl"); code and constants exist only in TorchScript archives.
_SCRIPT_MEMBER = re.compile(r"^[^/]+/(data/\d+|code/|constants\.pkl$|bytecode\.pkl$)")


def sniff_torchscript(head: bytes) -> bool:
    """True when the first member of a zip archive is one only TorchScript archives have.

    An archive without tensors starts with ``data.pkl`` like a checkpoint; the PyTorch reader
    hands such files over after looking at the whole member list.
    """
    name = zip_first_name(head)
    return name is not None and _SCRIPT_MEMBER.match(name) is not None


def is_torchscript_archive(path: Path) -> bool:
    """True for a zip archive holding TorchScript code or constants (reads its member list)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_script(path: Path) -> Any:
    """``torch.jit.load`` on the CPU, with torch's failures as one-line InputErrors.

    The archive's checksums are checked first: torch never does, so a flipped byte in a tensor
    would load as a wrong weight.
    """
    import torch

    check_zip_members(path, "TorchScript")

    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch reports a damaged archive as RuntimeError, ValueError...
        problem = f"corrupt or unreadable TorchScript archive ({torch_reason(exc)})"
        raise InputError(problem, path) from None


def torch_reason(exc: BaseException, limit: int = 200) -> str:
    """The one line that matters in torch's multi-line errors (TorchScript tracebacks)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    text = re.sub(r"^(RuntimeError|ValueError|TypeError):\s*", "", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def module_tensors(module: Any, path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Copies of a module's ``state_dict()`` (parameters and persistent buffers), in order.

    Copies, because a runnable writes substituted weights into the module's own tensors.
    """
    from inspector.io._torch import tensor_to_numpy

    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for name, tensor in module.state_dict().items():
        try:
            array, dtypes[name] = tensor_to_numpy(tensor)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise InputError(f"tensor {name!r}: {exc}", path) from None
        tensors[name] = array.copy()
    return tensors, dtypes


@reader(name="torchscript", extensions=(".torchscript", ".ptl"), sniff=sniff_torchscript)
def read_torchscript(path: Path) -> LoadedModel:
    """Read the parameters and buffers of a TorchScript archive.

    Parameters
    ----------
    path : Path
        A ``torch.jit.save`` archive (scripted or traced module).

    Returns
    -------
    LoadedModel
        The module's ``state_dict()`` tensors in its order, format ``"torchscript"``.

    Raises
    ------
    InputError
        Corrupt archive, or no tensors (a frozen module keeps its weights as constants).
    """
    tensors, dtypes = module_tensors(load_script(path), path)
    if not tensors:
        raise InputError(
            "TorchScript archive holds no parameters or buffers (a frozen module inlines them)",
            path,
        )
    kinds = script_kinds(path)  # module classes from data.pkl, read without running code
    return LoadedModel.build(str(path), "torchscript", tensors, dtypes, kinds=kinds)
