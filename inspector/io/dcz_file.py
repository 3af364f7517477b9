"""Our own compressed ``.dcz`` files, reopened as a model.

The tensors are the decoded (pruned and quantized) weights, so a ``.dcz`` opens in the app and
in ``inspector info`` like any model file. ``metadata`` records how every layer was compressed:
key ``"compression/<tensor name>"`` holds a JSON object (see :func:`describe_record`), and key
``"compression"`` a JSON summary of the whole file; the other keys are the source model's own
metadata, from the file's metadata block (:func:`source_metadata` tells them apart).

The container code (and numba with it) loads only when a ``.dcz`` is read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inspector.errors import InputError
from inspector.format.spec import MAGIC
from inspector.io.model_file import LoadedModel
from inspector.io.registry import reader

if TYPE_CHECKING:
    from inspector.format.container import Container
    from inspector.format.header import LayerRecord

#: Metadata key prefix of a layer's compression record; the tensor name follows.
LAYER_KEY_PREFIX = "compression/"
# The position codes P of docs/format.md (core.positions.NAMES; importing it would load numba).
_POSITIONS = ("gaps", "bitmap", "dense", "holes")
#: Metadata key of the whole file's summary.
SUMMARY_KEY = "compression"


def describe_record(record: LayerRecord) -> dict[str, Any]:
    """How one layer of a compressed file was stored, as a JSON-safe dict.

    Every layer has ``method`` (``"raw"`` or ``"deep"``), ``payload_nbytes`` and
    ``original_nbytes``. A deep layer adds ``settings`` (the full
    :class:`~inspector.core.settings.LayerSettings`, JSON form), the resolved prune
    ``threshold``, ``survivors`` of ``size`` weights, ``kept_percent``, cluster ``bits`` and
    ``clusters`` (codebook size K), ``index_bits``, whether each stream was Huffman-coded,
    the ``positions`` code (``"gaps"``, ``"bitmap"``, ``"dense"``, ``"holes"``) and the
    ``codebook_dtype``. A raw layer held at lower precision adds ``stored`` (its dtype). A
    layer of another registered method has its name as ``method`` and adds ``recipe``, what
    the method says of its record (``Method.describe``).
    """
    out: dict[str, Any] = {
        "method": record.method,
        "payload_nbytes": record.payload_nbytes,
        "original_nbytes": record.size * record.itemsize,
    }
    if record.coded is not None:
        from inspector.core.stages import registry  # loads with the container, like numba

        out["recipe"] = registry.method(record.coded.method).describe(record.coded.params)
        return out
    deep = record.deep
    if deep is None:
        if record.stored is not None:
            out["stored"] = record.stored
        return out
    size = record.size
    out.update(
        settings=deep.settings.to_json(),
        threshold=deep.mask.threshold if math.isfinite(deep.mask.threshold) else None,
        size=size,
        survivors=deep.survivors,
        kept_percent=100.0 * deep.survivors / size if size else 0.0,
        bits=deep.settings.bits,
        clusters=deep.layout.codebook_size,
        index_bits=deep.layout.index_bits,
        weight_huffman=deep.layout.weight_huffman,
        gap_huffman=deep.layout.gap_huffman,
        positions=_POSITIONS[deep.layout.positions],
        codebook_dtype="float16" if deep.layout.codebook_half else "float32",
    )
    return out


def layer_compression(model: LoadedModel, name: str) -> dict[str, Any] | None:
    """The :func:`describe_record` dict of tensor ``name``, or None if the model has none."""
    text = model.metadata.get(LAYER_KEY_PREFIX + name)
    return None if text is None else json.loads(text)


def source_metadata(model: LoadedModel) -> dict[str, str]:
    """The metadata a compressed file keeps of ``model``: all of it, except, for a ``.dcz``
    opened as a model, the compression records this reader adds (they describe that file,
    not the source)."""
    if model.format != "dcz":
        return dict(model.metadata)
    return {k: v for k, v in model.metadata.items()
            if k != SUMMARY_KEY and not k.startswith(LAYER_KEY_PREFIX)}  # fmt: skip


def sniff_dcz(head: bytes) -> bool:
    """True for a file starting with the container's magic bytes."""
    return head.startswith(MAGIC)


@reader(name="dcz", extensions=(".dcz",), sniff=sniff_dcz)
def read_dcz(path: Path) -> LoadedModel:
    """Decode every layer of a compressed file (checksums checked).

    Returns
    -------
    LoadedModel
        Tensors in file order with their stored dtypes (bfloat16 widened to float32), and the
        per-layer compression records in ``metadata``.

    Raises
    ------
    InputError
        Not a compressed file, an unsupported version, or a damaged or truncated file.
    """
    from inspector.format.container import open_container

    box = open_container(path)
    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    metadata = dict(box.metadata)  # the source's; our compression records win on a clash
    for index, record in enumerate(box.records):
        if record.name in tensors:
            raise InputError(f"two layers are named {record.name!r}", path)
        tensors[record.name] = _decode(box, index, path)
        if record.dtype == "bfloat16":
            dtypes[record.name] = "bfloat16"
        metadata[LAYER_KEY_PREFIX + record.name] = json.dumps(describe_record(record))
    metadata[SUMMARY_KEY] = json.dumps(_summary(box))
    learned = {r.name for r in box.records if r.lossy}  # coded: few values
    return LoadedModel.build(str(path), "dcz", tensors, dtypes, metadata, learned=learned)


def _decode(box: Container, index: int, path: Path) -> np.ndarray:
    record = box.records[index]
    try:
        arr = box.read_layer(index)
    except InputError:
        raise
    except Exception as exc:  # a payload that passes its checksum but still fails to decode
        raise InputError(f"layer {record.name!r} cannot be decoded ({exc})", path) from exc
    if record.dtype != "bfloat16" and arr.dtype != np.dtype(record.dtype):
        arr = arr.astype(record.dtype)  # deep layers decode to float32 (bool, int dtypes)
    return arr


def _summary(box: Container) -> dict[str, Any]:
    deep = [r for r in box.records if r.deep is not None]
    size = sum(r.size for r in deep)
    survivors = sum(r.deep.survivors for r in deep if r.deep is not None)
    original = sum(r.size * r.itemsize for r in box.records)
    return {
        "format_version": box.version,
        "file_nbytes": box.nbytes,
        "original_nbytes": original,
        "layers": len(box.records),
        "deep_layers": len(deep),
        "kept_percent": 100.0 * survivors / size if size else 100.0,
    }
