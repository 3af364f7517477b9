"""Model-file readers and writers (PyTorch, safetensors, NumPy), chosen through a registry.

Importing this package is cheap: torch and safetensors load only when a file needs them.
"""

from __future__ import annotations

from inspector.io.kinds import ALL_KINDS, COMPRESSIBLE_KINDS, layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo, dtype_itemsize
from inspector.io.registry import (
    ReaderSpec,
    WriterSpec,
    read_model,
    reader,
    reader_formats,
    write_weights,
    writer,
    writer_formats,
)

__all__ = [
    "ALL_KINDS",
    "COMPRESSIBLE_KINDS",
    "LoadedModel",
    "ReaderSpec",
    "TensorInfo",
    "WriterSpec",
    "dtype_itemsize",
    "layer_kind",
    "read_model",
    "reader",
    "reader_formats",
    "write_weights",
    "writer",
    "writer_formats",
]
