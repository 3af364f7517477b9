"""Write-back into TorchScript archives: the same compiled network with new parameter values.

The copy keeps the source's code, so it runs wherever the source ran (``torch.jit.load``, C++
libtorch, the mobile interpreter). Values are cast to each tensor's dtype in the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from inspector.io.module_state import assign_state
from inspector.io.registry import rewriter
from inspector.io.torchscript import load_script, torch_reason


@rewriter(format="torchscript", runs_code=True)
def write_torchscript(source: Path, target: Path, tensors: Mapping[str, np.ndarray]) -> None:
    """Write ``source`` to ``target`` with the named state-dict tensors replaced.

    Parameters
    ----------
    source : Path
        A ``torch.jit.save`` archive.
    target : Path
        Where to write the copy.
    tensors : mapping of str to ndarray
        New values by state-dict name (tied parameters take the value given last).
    """
    import torch

    # write_back has asked: a rewriter registered with runs_code runs only with allow_code.
    module = load_script(source, allow_code=True)
    assign_state(module, tensors)
    try:
        torch.jit.save(module, str(target))
    except RuntimeError as exc:  # torch reports a full disk or a vanished folder this way
        raise OSError(torch_reason(exc)) from None
