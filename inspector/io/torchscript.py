"""TorchScript archives (``torch.jit.save``): the weights of a compiled, runnable network.

A TorchScript archive is a zip like a ``torch.save`` checkpoint, but it also holds the network's
code, and ``torch.jit.load`` runs some of it while loading (a class's ``__setstate__``, which can
loop, read and create files). So reading the weights (``info``, ``compress``, the app) never calls
it: :func:`read_torchscript` takes the tensors from the archive's records
(:mod:`inspector.io.torch_pickle`, :mod:`inspector.io.script_records`). Only running the model
(evaluation, tuning, fine-tuning, a write-back copy) loads it, through :func:`load_script`, and
only when the caller passes ``allow_code=True`` because the user agreed (``--allow-code``, or the
app's confirmation).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from inspector.errors import CodeNotAllowed, InputError
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader
from inspector.io.script_records import CodeState, Entry, class_declarations, state_entries
from inspector.io.sniff import check_zip_members, zip_first_name
from inspector.io.torch_pickle import BadRecord, CodeRefused, code_refusal
from inspector.io.torch_storage import archive_folder, open_records, read_array
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


def code_not_allowed(path: Path, action: str = "evaluating it") -> CodeNotAllowed:
    """The one line for a TorchScript archive the user has not allowed to run."""
    return CodeNotAllowed(
        f"is TorchScript: {action} runs the code it contains; pass --allow-code to allow", path
    )


def load_script(path: Path, *, allow_code: bool, action: str = "evaluating it") -> Any:
    """``torch.jit.load`` on the CPU, with torch's failures as one-line InputErrors.

    Loading runs code from the archive, so it happens only with ``allow_code`` (the user
    agreed); ``action`` names what needs it, for the refusal. The archive's checksums are
    checked first: torch never does, so a flipped byte in a tensor would load as a wrong weight.

    Raises
    ------
    CodeNotAllowed
        ``allow_code`` is false.
    InputError
        A damaged archive, or torch cannot load it.
    """
    import torch

    if not allow_code:
        raise code_not_allowed(path, action)
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
    """Read the parameters and buffers of a TorchScript archive, without running its code.

    Parameters
    ----------
    path : Path
        A ``torch.jit.save`` archive (scripted or traced module).

    Returns
    -------
    LoadedModel
        The tensors ``module.state_dict()`` would hold, in its order, format ``"torchscript"``;
        metadata ``"buffers"`` lists the buffers' names (the rest are parameters).

    Raises
    ------
    InputError
        Corrupt archive, a pickle naming code, a module restoring its state with its own code,
        a tensor outside its storage, or no tensors (a frozen module keeps its weights as
        constants).
    """
    entries, arrays = script_tensors(path)
    if not entries:
        raise InputError(
            "TorchScript archive holds no parameters or buffers (a frozen module inlines them)",
            path,
        )
    tensors = {e.name: arrays[e.name][0] for e in entries}
    dtypes = {e.name: arrays[e.name][1] for e in entries}
    buffers = [e.name for e in entries if e.role == "buffer"]
    metadata = {"buffers": ",".join(buffers)} if buffers else {}
    kinds = script_kinds(path)  # module classes from data.pkl, read without running code
    return LoadedModel.build(str(path), "torchscript", tensors, dtypes, metadata, kinds)


def script_tensors(path: Path) -> tuple[list[Entry], dict[str, tuple[np.ndarray, str]]]:
    """The archive's state-dict entries and their arrays, read from its records only."""
    check_zip_members(path, "TorchScript")
    with zipfile.ZipFile(path) as archive:
        try:
            records, storages = open_records(path, archive, "data.pkl")
            decls = class_declarations(archive, archive_folder(archive))
            if f"{archive_folder(archive)}constants.pkl" in archive.namelist():
                open_records(path, archive, "constants.pkl")  # refuses code there too
            entries = state_entries(records, decls)
            arrays: dict[str, tuple[np.ndarray, str]] = {}
            for entry in entries:
                try:
                    arrays[entry.name] = read_array(storages, entry.ref)
                except BadRecord as exc:
                    raise InputError(f"tensor {entry.name!r}: {exc}", path) from None
        except CodeRefused as exc:
            raise InputError(code_refusal(exc.name), path) from None
        except CodeState as exc:
            raise InputError(str(exc), path) from None
        except BadRecord as exc:
            raise InputError(f"corrupt or unreadable TorchScript archive ({exc})", path) from None
        except InputError:
            raise
        except RecursionError:
            problem = "corrupt or unreadable TorchScript archive (its pickle nests too deep)"
            raise InputError(problem, path) from None
        except Exception as exc:  # a damaged pickle fails in many ways (EOFError, struct...)
            problem = f"corrupt or unreadable TorchScript archive ({torch_reason(exc)})"
            raise InputError(problem, path) from None
    return entries, arrays


def runs_code(path: Path) -> bool:
    """Whether running ``path`` as a model would load it as TorchScript (and run its code).

    The same test :func:`inspector.runtime.runnable_open.open_runnable` applies; False if
    unreadable.
    """
    try:
        with path.open("rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return sniff_torchscript(head) or (zipfile.is_zipfile(path) and is_torchscript_archive(path))
