"""The live tensors of a torch module under their state-dict names, and assigning new values.

Its own module because both the TorchScript write-back (``io.torchscript_writeback``) and the
trainable models above io (``inspector.runtime.trainable``) need it: io must not import them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from inspector.errors import InputError


def named_tensors(module: Any) -> dict[str, Any]:
    """The live parameter and buffer tensors of ``module`` under their ``state_dict()`` names.

    ``state_dict()`` of a ScriptModule returns detached tensors; the parameters themselves
    (which collect gradients and which an optimizer updates) come from ``named_parameters``.
    """
    live = dict(module.named_parameters(remove_duplicate=False))
    live.update(module.named_buffers(remove_duplicate=False))
    return {name: live.get(name, tensor) for name, tensor in module.state_dict().items()}


def assign_state(module: Any, tensors: Mapping[str, np.ndarray]) -> None:
    """Copy ``tensors`` into ``module``'s parameters and buffers in place (same names, shapes).

    Raises
    ------
    InputError
        A name the module lacks, or a shape that differs.
    """
    import torch

    from inspector.io._torch import numpy_to_tensor

    live = named_tensors(module)
    with torch.no_grad():
        for name, array in tensors.items():
            if name not in live:
                raise InputError(f"the model has no tensor {name!r}")
            target = live[name]
            if tuple(target.shape) != tuple(np.shape(array)):
                raise InputError(
                    f"tensor {name!r} has shape {tuple(np.shape(array))}, the model "
                    f"{tuple(target.shape)}"
                )
            target.copy_(numpy_to_tensor(np.asarray(array)).to(target.dtype))
