"""Models that can run and be trained: TorchScript archives (or, when allowed, pickled modules).

A state dict holds weights but no forward pass, so fine-tuning needs the module itself. A
TorchScript archive carries its code in a form that does not run arbitrary Python on loading;
a pickled ``nn.Module`` does run code from the file, so it is read only when the caller says so.
Tensors are named as in the module's ``state_dict()``; the result is always written back as
TorchScript, atomically, and never over the source.
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspector.atomic import atomic_path, same_file
from inspector.errors import InputError
from inspector.io.module_state import assign_state
from inspector.io.torchscript import is_torchscript_archive, load_script, torch_reason

_NOT_SCRIPTED = (
    "is not a TorchScript archive; export the model with torch.jit.script(model).save(path), "
    "or pass allow_pickle=True (--allow-pickle) for a module saved with torch.save(model) "
    "(loading it runs code from the file)"
)


@dataclass(frozen=True, slots=True)
class Trainable:
    """A runnable, trainable model and where it came from.

    Attributes
    ----------
    path : str
        The source file.
    module : torch.nn.Module
        A ``torch.jit.ScriptModule`` or, from a pickle, a plain ``nn.Module``.
    scripted : bool
        Whether ``module`` is TorchScript.
    """

    path: str
    module: Any
    scripted: bool


def load_trainable(
    path: str | os.PathLike[str], allow_pickle: bool = False, *, allow_code: bool = False
) -> Trainable:
    """Load a model that can be run and trained, on the CPU.

    Parameters
    ----------
    path : str or path-like
        A TorchScript archive (``torch.jit.save``), or a whole pickled module
        (``torch.save(model)``) when ``allow_pickle`` is true.
    allow_pickle : bool
        Allow ``torch.load(weights_only=False)``, which runs code from the file: only for
        files the user trusts.
    allow_code : bool
        Allow loading a TorchScript archive, which runs the code it contains (the user agreed:
        ``--allow-code`` or the app's confirmation).

    Raises
    ------
    CodeNotAllowed
        A TorchScript archive without ``allow_code``.
    InputError
        Missing or unreadable file, a pickle without ``allow_pickle``, a state dict or any
        other object that is not a module; one line naming the file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    if is_torchscript_archive(path):
        module = load_script(path, allow_code=allow_code, action="training it")
        return Trainable(str(path), module, True)
    if not allow_pickle:
        raise InputError(_NOT_SCRIPTED, path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a missing class, a truncated file...
        raise InputError(f"cannot load the pickled model ({torch_reason(exc)})", path) from None
    if not isinstance(obj, torch.nn.Module):
        what = "a state dict (weights only)" if isinstance(obj, Mapping) else type(obj).__name__
        raise InputError(f"holds {what}, not a runnable module", path)
    return Trainable(str(path), obj, isinstance(obj, torch.jit.ScriptModule))


def clone_module(module: Any) -> Any:
    """An independent copy whose parameters are leaf tensors that collect gradients.

    ``copy.deepcopy`` of a ScriptModule gives parameters that no longer collect ``.grad``
    (torch 2.13), so TorchScript is copied through an in-memory archive instead.
    """
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        buffer.seek(0)
        return torch.jit.load(buffer, map_location="cpu")
    return copy.deepcopy(module)


def state_arrays(module: Any) -> dict[str, np.ndarray]:
    """Copies of every tensor of ``module``'s state dict as numpy arrays, in its order."""
    from inspector.io._torch import tensor_to_numpy

    return {name: tensor_to_numpy(t)[0].copy() for name, t in module.state_dict().items()}


def save_trainable(
    module: Any,
    path: str | os.PathLike[str],
    tensors: Mapping[str, np.ndarray] | None = None,
    *,
    protect: Iterable[str | os.PathLike[str]] = (),
    example: Any = None,
) -> None:
    """Write ``module`` as a TorchScript archive, with ``tensors`` copied in, atomically.

    Parameters
    ----------
    module : torch.nn.Module
        The model; it is not modified (the weights go into a copy).
    path : str or path-like
        The archive to write.
    tensors : mapping of str to ndarray, optional
        New values of some or all state-dict tensors.
    protect : iterable of path-like
        Files that must never be overwritten (the source model).
    example : torch.Tensor, optional
        An input batch, used to trace a plain module that ``torch.jit.script`` cannot compile.

    Raises
    ------
    InputError
        A protected or unwritable target, tensors that do not fit, or a plain module that can
        be neither scripted nor traced.
    """
    import torch

    path = Path(path)
    for source in protect:
        if same_file(path, source):
            raise InputError("refusing to overwrite the source model", path)
    if not path.parent.is_dir():
        raise InputError("folder does not exist", path)
    model = clone_module(module)
    if tensors:
        try:
            assign_state(model, tensors)
        except InputError as exc:
            raise InputError(exc.problem, path) from None
    scripted = _scripted(model, example, path)
    try:
        with atomic_path(path) as tmp:
            torch.jit.save(scripted, str(tmp))
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path) from None


def _scripted(model: Any, example: Any, path: Path) -> Any:
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        return model
    model.eval()
    try:
        return torch.jit.script(model)
    except Exception as exc:  # compilation fails in many ways on dynamic Python
        if example is None:
            problem = f"cannot convert the module to TorchScript ({torch_reason(exc)})"
            raise InputError(problem, path) from None
    try:
        return torch.jit.trace(model, example)
    except Exception as exc:
        raise InputError(f"cannot trace the module ({torch_reason(exc)})", path) from None
