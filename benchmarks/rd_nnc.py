"""NNCodec (the MPEG NNC reference software, ISO/IEC 15938-17) on a dict of numpy tensors.

Its own API, unchanged: ``nncodec.nnc.compression.compress`` (a dict of float32 arrays ->
the NNR bitstream; uniform or dependent/trellis-coded quantization at a quantization
parameter QP, DeepCABAC entropy coding) and ``decompress`` (bitstream -> dict).

Installed with ``pip install --no-deps nncodec==2.1.3`` (an sdist; builds its C++ extension
with the system compiler, pybind11 is fetched for the build only). ``--no-deps`` because its
declared requirements cannot be met beside ours: ``numpy<2`` (we run numpy 2, numba needs
it) and ``torchvision``, whose PyPI wheel is built for CUDA torch and does not load with our
CPU torch (``operator torchvision::nms does not exist``). The tensor-dict path needs neither:
it uses only ``nncodec.nnc_core`` and the DeepCABAC extension, with numpy (checked: encodes and
decodes under numpy 2). But ``nncodec.nnc.compression`` imports ``nncodec.framework`` at the top
for its model-zoo glue (PyTorch/TensorFlow model wrappers, ImageNet/CIFAR loaders through
torchvision, cv2, pandas), which the dict path never calls; :func:`load` puts empty stand-ins
for exactly that package in ``sys.modules`` before importing, so nothing else of NNCodec is
replaced.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np

_FRAMEWORK = ("tensorflow_model", "pytorch_model", "use_case_init")
_MODULE: list[Any] = []


def load() -> Any | None:
    """``nncodec.nnc.compression``, or None when NNCodec is not installed."""
    if _MODULE:
        return _MODULE[0]
    try:
        importlib.import_module("nncodec.nnc_core")
    except ImportError:
        return None
    if "nncodec.framework" not in sys.modules:
        fw = types.ModuleType("nncodec.framework")
        fw.__doc__ = "stand-in: NNCodec's model-zoo glue, unused by the tensor-dict API"
        for sub in _FRAMEWORK:
            mod = types.ModuleType(f"nncodec.framework.{sub}")
            setattr(fw, sub, mod)
            sys.modules[mod.__name__] = mod
        sys.modules[fw.__name__] = fw
    _MODULE.append(importlib.import_module("nncodec.nnc.compression"))
    return _MODULE[0]


def version() -> str:
    from importlib.metadata import version as v

    return v("nncodec")


@dataclass(frozen=True, slots=True)
class Setting:
    """One encoder configuration: QP (step 2**(qp/4) at the default qp_density 2), the
    rate-distortion lambda scale of its quantizer (0: no RDOQ), and dependent (trellis)
    quantization."""

    qp: int
    lambda_scale: float = 0.0
    use_dq: bool = True

    @property
    def label(self) -> str:
        dq = "" if self.use_dq else " no-dq"
        return f"qp {self.qp} lambda {self.lambda_scale:g}{dq}"


def encode(tensors: dict[str, np.ndarray], s: Setting) -> bytes:
    """The NNR bitstream of ``tensors`` (float32 arrays; 1-D ones go at its non-weight QP)."""
    nnc = load()
    if nnc is None:
        raise RuntimeError("nncodec is not installed")
    model = {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}
    with contextlib.redirect_stdout(io.StringIO()):  # it prints progress even when quiet
        bs = nnc.compress(model, bitstream_path=None, qp=s.qp, lambda_scale=s.lambda_scale,
                          use_dq=s.use_dq, return_bitstream=True, verbose=False)
    return bytes(bs)


def decode(bitstream: bytes) -> dict[str, np.ndarray]:
    """The tensors ``bitstream`` decodes to, float32."""
    nnc = load()
    with contextlib.redirect_stdout(io.StringIO()):
        out = nnc.decompress(bytearray(bitstream))
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
