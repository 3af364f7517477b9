"""Write a trained torch network as a state dict, TorchScript and ONNX, and check each file.

Every file keeps the state-dict names (``ip1.weight``, ``bn1.running_mean``, ...), so a tool
can match a tensor across formats by name.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

ONNX_OPSET = 17
#: Buffers no exporter keeps: they do not take part in inference.
NOT_INFERENCE = ("num_batches_tracked",)


def state_of(net: nn.Module) -> dict[str, torch.Tensor]:
    """The net's state dict as detached, contiguous tensors (what ``torch.save`` should get)."""
    return {k: v.detach().contiguous() for k, v in net.state_dict().items()}


def save_torchscript(net: nn.Module, path: Path) -> None:
    """``torch.jit.script`` the net and save it; its ``state_dict()`` names are the net's."""
    scripted = torch.jit.script(net.eval())
    torch.jit.save(scripted, str(path))
    loaded = torch.jit.load(str(path))
    if list(loaded.state_dict()) != list(net.state_dict()):
        raise RuntimeError(f"{path}: TorchScript renamed tensors: {list(loaded.state_dict())}")


def save_onnx(net: nn.Module, path: Path, features: int) -> None:
    """Export with the TorchScript-based exporter, keeping every tensor as it is.

    ``do_constant_folding=False`` is what keeps batch norm a separate ``BatchNormalization``
    node with its own initializers: with folding, the exporter merges it into the conv
    weights, and the file would not hold the weights the state dict holds. The dynamo
    exporter (the default since torch 2.9) folds it too unless its optimizer is off, and then
    writes a graph full of shape arithmetic, so the TorchScript-based one is used.
    """
    net.eval()
    with warnings.catch_warnings():
        # "You are using the legacy TorchScript-based ONNX export": on purpose, see above.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            net,
            (torch.zeros(2, features),),
            str(path),
            dynamo=False,
            do_constant_folding=False,
            opset_version=ONNX_OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    expected = [k for k in net.state_dict() if not k.endswith(NOT_INFERENCE)]
    names = [t.name for t in onnx.load(str(path)).graph.initializer]
    if sorted(names) != sorted(expected):
        raise RuntimeError(f"{path}: initializers {names}, expected the state dict's {expected}")


def torchscript_logits(path: Path, inputs: np.ndarray) -> np.ndarray:
    """Logits of a saved TorchScript model."""
    module = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        return module(torch.from_numpy(inputs)).numpy()


def onnx_logits(path: Path, inputs: np.ndarray) -> np.ndarray:
    """Logits of a saved ONNX model, run by onnxruntime on one thread (deterministic)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": inputs})[0]
