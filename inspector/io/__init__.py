"""Model-file readers, writers and write-backs, chosen through a registry.

Importing this package is cheap: torch and safetensors load only when a file needs them.
"""

from __future__ import annotations

from inspector.io.kinds import ALL_KINDS, COMPRESSIBLE_KINDS, layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo, dtype_itemsize
from inspector.io.registry import (
    ReaderSpec,
    WriterSpec,
    can_write_back,
    read_model,
    reader,
    reader_formats,
    rewriter,
    rewriter_formats,
    write_back,
    write_back_runs_code,
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
    "can_write_back",
    "dtype_itemsize",
    "layer_kind",
    "read_model",
    "reader",
    "reader_formats",
    "rewriter",
    "rewriter_formats",
    "write_back",
    "write_back_runs_code",
    "write_weights",
    "writer",
    "writer_formats",
]
