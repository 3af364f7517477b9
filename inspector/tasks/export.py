"""Export a model four ways: the compressed file, the weights it decodes to (as bare tensors or
written back into a copy of the model in its own format), or the settings.

Each export is a generator over plain arguments that yields ``Progress`` and returns an
``ExportResult``; the CLI drives it with a progress bar, the app in a ``SerialWorker``.

Every export writes to a hidden temporary name beside ``output``, reads the file back and
checks it, and only then renames it to ``output``. Verification is part of the job, so
closing the generator at any step (cancel) removes the temporary file and leaves ``output``
as it was: absent, or the old file untouched. A file that decodes differently from what the
app shows is still written, and the result lists the layers that differ.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.atomic import check_output, remove_stale, same_file, temporary_name
from inspector.errors import InputError, InspectorError
from inspector.format.container import Container, open_container
from inspector.io import read_model, write_back, write_weights, writer_formats
from inspector.io.model_file import LoadedModel
from inspector.model.settings import ModelSettings, load_settings, save_settings
from inspector.tasks.codec import ModelCodec, Progress, compress, stored_dtype
from inspector.tasks.export_lowrank import FACTORISED_FORMATS, lowrank_factors, write_factorised

COMPRESSED, DECOMPRESSED, SETTINGS = "compressed", "decompressed", "settings"
REWRITTEN = "rewritten"  # the decoded weights in a copy of the source model, in its format
KINDS = (COMPRESSED, DECOMPRESSED, REWRITTEN, SETTINGS)
COMPRESSED_SUFFIX = ".dcz"
SETTINGS_SUFFIX = ".json"

Export = Generator[Progress, None, "ExportResult"]


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote and whether the file reads back as intended.

    ``estimated_nbytes`` is the size predicted before writing (compressed exports only);
    ``mismatches`` has one line per layer that does not read back bit-exactly.
    """

    path: str
    nbytes: int
    estimated_nbytes: int | None = None
    verified: bool = False
    mismatches: tuple[str, ...] = ()


def weight_extensions() -> tuple[str, ...]:
    """Extensions a decompressed export can be written as (``.pt``, ``.safetensors``, ...)."""
    return tuple(e for s in writer_formats() for e in s.extensions)


def export_kind(path: str | Path, source: str | Path | None = None) -> str | None:
    """The kind of export a file name asks for, from its extension (None if unknown).

    ``source`` is the model, given only when its format can be written back into
    (:func:`inspector.io.can_write_back`): a name with its extension asks for a rewritten copy,
    so a TorchScript ``.pt`` source exports TorchScript, not a state dict.
    """
    suffix = Path(path).suffix.lower()
    if source is not None and suffix == Path(source).suffix.lower():
        return REWRITTEN
    if suffix == COMPRESSED_SUFFIX:
        return COMPRESSED
    if suffix == SETTINGS_SUFFIX:
        return SETTINGS
    return DECOMPRESSED if suffix in weight_extensions() else None


def export(
    kind: str,
    model: LoadedModel,
    settings: ModelSettings,
    output: str | Path,
    *,
    allow_code: bool = False,
) -> Export:
    """The export generator of ``kind`` (one of ``KINDS``).

    ``allow_code``: the user agreed that a rewritten copy may load the model as a program
    (:func:`inspector.io.write_back_runs_code`).
    """
    if kind == COMPRESSED:
        return export_compressed(model, settings, output)
    if kind == DECOMPRESSED:
        return export_decompressed(model, settings, output)
    if kind == REWRITTEN:
        return export_rewritten(model, settings, output, allow_code=allow_code)
    if kind == SETTINGS:
        return export_settings(settings, output, protect=model.path)
    raise ValueError(f"unknown export kind {kind!r}")


def export_compressed(model: LoadedModel, settings: ModelSettings, output: str | Path) -> Export:
    """Write the compressed file, then check every layer decodes to ``ModelCodec.quantized``.

    Uses its own ``ModelCodec``: the app's codec belongs to the estimating thread.
    """
    output = check_target(output, model.path)
    codec = ModelCodec(model)
    n = len(model.infos)
    total = 3 * n + 1  # compress: plan n, encode n, write 1; then verify n
    with _temporary(output) as tmp:
        inner = compress(codec, settings, tmp)
        try:
            while True:
                step = next(inner)
                if step.done < step.total:
                    yield Progress(step.done, total, step.label)
        except StopIteration as stop:
            estimate, nbytes = stop.value
        finally:
            inner.close()
        box = open_container(tmp)
        names = [r.name for r in box.records]
        mismatches = _missing(names, model)
        for i, name in enumerate(names):
            yield Progress(2 * n + 1 + i, total, f"verifying {name}")
            mismatches += _check_layer(box, i, codec, settings)
        os.replace(tmp, output)
    return ExportResult(str(output), nbytes, estimate.file_nbytes, not mismatches, mismatches)


def export_decompressed(
    model: LoadedModel, settings: ModelSettings, output: str | Path
) -> Export:
    """Write the weights the compressed file decodes to as ``.pt``/``.safetensors``/``.npz``.

    Each tensor keeps the dtype the compressed file stores: its own (bfloat16, float16, ...)
    wherever the container has it, float32 otherwise. The file is read back and compared.
    """
    output = check_target(output, model.path)
    total = 2 * len(model.infos) + 1
    tensors = yield from _decoded(model, settings, total)
    return (yield from write_decoded(model, tensors, output, total))


def decompress_file(compressed: str | Path, output: str | Path) -> Export:
    """Write the weights of a ``.dcz`` file as ``.pt``/``.safetensors``/``.npz``.

    The same writer as ``export_decompressed`` (dtypes, metadata, read-back check): the file
    is the one Export writes for the ``.dcz`` opened as a model, its compression records in
    the metadata of formats that keep metadata.
    """
    output = check_target(output, compressed)
    yield Progress(0, 1, f"decoding {Path(compressed).name}")
    model = read_model(compressed)
    total = 2 * len(model.infos) + 1
    return (yield from write_decoded(model, dict(model.tensors), output, total))


def write_decoded(
    model: LoadedModel, tensors: dict[str, np.ndarray], output: Path, total: int
) -> Export:
    """Write ``tensors`` (the decoded ``model``) with the model's dtypes and metadata to
    ``output``, read the file back and compare; the last ``len(model.infos) + 1`` steps."""
    n = len(model.infos)
    dtypes = {i.name: stored_dtype(i, model.path) for i in model.infos}
    with _temporary(output) as tmp:
        yield Progress(total - n - 1, total, "writing")
        write_weights(tmp, tensors, dtypes, protect=model.path, metadata=model.metadata)
        back = read_model(tmp).tensors
        mismatches = _missing(list(back), model)
        for i, name in enumerate(back):
            yield Progress(total - n + i, total, f"verifying {name}")
            mismatches += _mismatch(name, back[name], tensors.get(name))
        os.replace(tmp, output)
    return ExportResult(str(output), output.stat().st_size, None, not mismatches, mismatches)


def export_rewritten(
    model: LoadedModel, settings: ModelSettings, output: str | Path, *, allow_code: bool = False
) -> Export:
    """Write a copy of the source model, in its own format, holding the decoded weights.

    The copy runs where the source ran (onnxruntime, Keras, TorchScript). It is read back and
    each tensor compared with the decoded weights in the dtype the source stores. A TorchScript
    copy loads the source as a program: only with ``allow_code``.
    """
    output = check_target(output, model.path)
    n = len(model.infos)
    total = 2 * n + 1
    codec = ModelCodec(model)
    tensors = yield from _decoded(model, settings, total, codec)
    # low-rank layers of a runnable model become their two factors (smaller, faster)
    factors = lowrank_factors(codec, settings) if model.format in FACTORISED_FORMATS else {}
    with _temporary(output) as tmp:
        yield Progress(n, total, "writing")
        if factors:
            mismatches = yield from write_factorised(Path(model.path), tmp, model.format,
                                                     tensors, factors, n, total, allow_code)
        else:
            write_back(model.path, tmp, tensors, model, allow_code=allow_code)
            mismatches = yield from verify_rewritten(tmp, model, tensors, n + 1, total)
        os.replace(tmp, output)
    return ExportResult(str(output), output.stat().st_size, None, not mismatches, mismatches)


def verify_rewritten(
    path: Path, model: LoadedModel, tensors: dict[str, np.ndarray], done: int = 0, total: int = 0
) -> Generator[Progress, None, tuple[str, ...]]:
    """Mismatch lines between a rewritten copy at ``path`` and the ``tensors`` written into it.

    Each expected tensor is cast to the dtype the copy reads back in: a write-back stores the
    source's dtype, so a float16 layer decoded as float16 must read back bit for bit.
    """
    back = read_model(path).tensors
    mismatches = _missing(list(back), model)
    for i, name in enumerate(back):
        yield Progress(done + i, total or len(back), f"verifying {name}")
        expected = tensors.get(name)
        if expected is not None:
            expected = expected.astype(back[name].dtype)
        mismatches += _mismatch(name, back[name], expected)
    return mismatches


def _decoded(
    model: LoadedModel, settings: ModelSettings, total: int, codec: ModelCodec | None = None
) -> Generator[Progress, None, dict[str, np.ndarray]]:
    """Every tensor as the compressed file decodes it, one progress step per tensor."""
    # its own codec: the app's belongs to the estimating thread
    codec = codec if codec is not None else ModelCodec(model)
    tensors = {}
    for i, info in enumerate(model.infos):
        yield Progress(i, total, f"decoding {info.name}")
        tensors[info.name] = codec.quantized(info.name, settings)
    return tensors


def export_settings(
    settings: ModelSettings, output: str | Path, protect: str | Path | None = None
) -> Export:
    """Write SETTINGS.json (``save_settings``) and check it reads back equal."""
    output = check_target(output, protect)
    yield Progress(0, 1, "writing settings")
    with _os_errors(output):
        save_settings(settings, output)
    verified = load_settings(output) == settings
    mismatches = () if verified else ("settings: the file reads back differently",)
    return ExportResult(str(output), output.stat().st_size, None, verified, mismatches)


# ------------------------------------------------------------------------ files
def check_target(output: str | Path, protect: str | Path | None = None) -> Path:
    """``output`` as a Path, if it can be exported to: not ``protect``, a regular file or a new
    name in an existing folder; never a symlink, a folder or a device
    (:func:`inspector.atomic.check_output`).

    Raises
    ------
    InputError
        One line naming ``output``.
    """
    output = Path(output)
    if protect is not None and same_file(output, Path(protect)):
        raise InputError("refusing to overwrite the source model", output)
    return check_output(output)


@contextlib.contextmanager
def _temporary(output: Path) -> Iterator[Path]:
    """A fresh hidden name beside ``output`` (same extension), removed unless committed.

    Temporaries a killed export left in the folder are removed first (:func:`remove_stale`).
    """
    remove_stale(output.parent)
    tmp = temporary_name(output, output.suffix)
    try:
        with _os_errors(output):
            yield tmp
    finally:
        with contextlib.suppress(OSError):  # a read-only folder refuses even the clean-up
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _os_errors(path: Path) -> Iterator[None]:
    """OS failures (read-only folder, disk full) as one-line InputErrors naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path) from None


# ----------------------------------------------------------------- verification
def _missing(names: list[str], model: LoadedModel) -> tuple[str, ...]:
    """Layers of the model absent from the file, and tensors of the file absent from the model."""
    written, expected = set(names), set(model.tensors)
    lost = [f"{i.name}: missing from the file" for i in model.infos if i.name not in written]
    extra = [f"{n}: in the file but not in the model" for n in names if n not in expected]
    return tuple(lost + extra)


def _check_layer(
    box: Container, index: int, codec: ModelCodec, settings: ModelSettings
) -> tuple[str, ...]:
    """One line if layer ``index`` of ``box`` does not decode to what the app shows."""
    name = box.records[index].name
    if name not in codec.model.tensors:
        return ()
    try:
        got = box.read_layer(index)
    except InspectorError as exc:  # damaged payload: CRC or decode failure
        return (f"{name}: {exc.problem}",)
    return _mismatch(name, got, codec.quantized(name, settings))


def _mismatch(name: str, got: np.ndarray, expected: np.ndarray | None) -> tuple[str, ...]:
    """One line if ``got`` is not bit-for-bit ``expected`` (NaNs and -0.0 included)."""
    if expected is None:
        return ()
    if got.dtype != expected.dtype:
        return (f"{name}: reads back as {got.dtype}, expected {expected.dtype}",)
    if got.shape != expected.shape:
        return (f"{name}: reads back with shape {got.shape}, expected {expected.shape}",)
    a, b = _bits(got), _bits(expected)
    if np.array_equal(a, b):
        return ()
    differ = int(np.count_nonzero((a != b).reshape(got.size, -1).any(axis=1)))
    return (f"{name}: {differ:,} of {got.size:,} values differ",)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)
