"""Opening a model file to run it: which backend runs it, or why it cannot run.

:func:`open_runnable` picks ``runnable_torch`` or ``runnable_onnx`` by content (then by
extension) and imports only the backend a file needs, so torch or onnxruntime load only then;
:func:`run_refusal` says in one line why a model read as a weights-only format cannot run.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from inspector.errors import InputError
from inspector.io.onnx_file import sniff_onnx
from inspector.io.pytorch import sniff_pytorch
from inspector.io.registry import _head  # the registry's "every way of not being a file"
from inspector.io.torchscript import is_torchscript_archive, sniff_torchscript
from inspector.runtime.runnable import Runnable

_RUNNABLE = "only TorchScript archives (torch.jit.save) and ONNX models (.onnx) can run"


def open_runnable(
    path: str | os.PathLike[str], *, allow_pickle: bool = False, allow_code: bool = False
) -> Runnable:
    """Open a model file to run it.

    Parameters
    ----------
    path : str or path-like
        A TorchScript archive (``torch.jit.save``), an ONNX model, or, only with
        ``allow_pickle``, a whole module saved with ``torch.save(model, path)``.
    allow_pickle : bool
        Unpickle a saved module. Unpickling runs code from the file: only for trusted files.
    allow_code : bool
        Load a TorchScript archive, which runs the code it contains: only when the user agreed.

    Raises
    ------
    CodeNotAllowed
        A TorchScript archive without ``allow_code``.
    InputError
        ``"cannot run this file: ..."`` for anything else (a state dict holds only weights),
        and one line for a file the runtime cannot load.
    """
    path = Path(path)
    head = _head(path)
    if sniff_onnx(head) or path.suffix.lower() == ".onnx":
        from inspector.runtime.runnable_onnx import OnnxRunnable

        return OnnxRunnable.open(path)
    if sniff_torchscript(head) or (zipfile.is_zipfile(path) and is_torchscript_archive(path)):
        from inspector.runtime.runnable_torch import TorchRunnable

        return TorchRunnable.open_script(path, allow_code=allow_code)
    if sniff_pytorch(head):
        from inspector.runtime.runnable_torch import TorchRunnable

        return TorchRunnable.open_pickle(path, allow_pickle=allow_pickle)
    raise InputError(f"cannot run this file: {_RUNNABLE}", path)


#: Formats (reader names) whose files :func:`open_runnable` runs without running pickled code.
RUNNABLE_FORMATS = ("onnx", "torchscript")
_WEIGHTS_ONLY = {
    "safetensors": "safetensors holds weights only: nothing to run",
    "pytorch": "a torch.save file holds weights (or a pickled module inspector does not run "
               "here): nothing to run; save the network with torch.jit.script or export ONNX",
    "keras": "Keras files are read for their weights: inspector runs TorchScript and ONNX",
    "numpy": ".npz holds arrays only: nothing to run",
    "dcz": "a .dcz file holds compressed weights: open the original model to run it",
    "caffe": "Caffe models are read for their weights: inspector runs TorchScript and ONNX",
}


def run_refusal(format: str) -> str | None:
    """Why a model read as ``format`` cannot run (None when it can), in one line."""
    if format in RUNNABLE_FORMATS:
        return None
    return _WEIGHTS_ONLY.get(
        format, f"{format} files hold weights only here: inspector runs TorchScript and ONNX")
