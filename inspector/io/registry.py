"""Registry of model-file readers and writers.

Formats register themselves with the :func:`reader`, :func:`writer` and :func:`rewriter`
decorators. Readers are chosen by sniffing the first bytes of the file, then by extension, so a
misnamed file still opens. A writer stores bare tensors; a rewriter writes a copy of a source
model in the source's own format with some tensors replaced (an ONNX graph that still runs).
The built-in format modules are imported on first use; they import their heavy libraries
(torch, safetensors, onnx) only inside the functions that need them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.atomic import atomic_path, check_output, same_file
from inspector.errors import CodeNotAllowed, InputError, OutputError
from inspector.io.model_file import LoadedModel

#: How many leading bytes a sniffer is shown.
SNIFF_BYTES = 1024

ReadFunc = Callable[[Path], LoadedModel]
# (path, tensors, dtypes, metadata) -> None; the path is a temporary file in the target folder.
WriteFunc = Callable[[Path, Mapping[str, np.ndarray], Mapping[str, str], Mapping[str, str]], None]
# (source, target, tensors) -> None; the target is a temporary file in the output's folder, the
# tensors are checked against the source's names and shapes and may be any numeric dtype.
RewriteFunc = Callable[[Path, Path, Mapping[str, np.ndarray]], None]


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """A registered reader."""

    name: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    read: ReadFunc


@dataclass(frozen=True, slots=True)
class WriterSpec:
    """A registered writer."""

    name: str
    extensions: tuple[str, ...]
    write: WriteFunc


# The one piece of module state: filled by decorators at import time, never mutated afterwards.
_READERS: dict[str, ReaderSpec] = {}
_WRITERS: dict[str, WriterSpec] = {}
_REWRITERS: dict[str, RewriteFunc] = {}
_REWRITERS_RUNNING_CODE: set[str] = set()  # rewriters that load the model as code
_LABELS = {"torchscript": "TorchScript"}
# Sniffed in this order: TorchScript archives are zips that the PyTorch sniffer would also claim.
_BUILTIN_MODULES = (
    "inspector.io.torchscript",
    "inspector.io.pytorch",
    "inspector.io.safetensors_file",
    "inspector.io.npz",
    "inspector.io.onnx_file",
    "inspector.io.dcz_file",
    "inspector.io.keras_file",
    "inspector.io.caffe",  # protobuf has no magic number: its sniffer goes last
    "inspector.io.onnx_writeback",
    "inspector.io.keras_writeback",
    "inspector.io.torchscript_writeback",
)


def _normalise_extensions(extensions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)


def reader(
    *, name: str, extensions: tuple[str, ...], sniff: Callable[[bytes], bool]
) -> Callable[[ReadFunc], ReadFunc]:
    """Register ``func(path) -> LoadedModel`` as the reader of a format.

    Parameters
    ----------
    name : str
        Format name shown to users, e.g. ``"pytorch"``.
    extensions : tuple of str
        File extensions including the dot, e.g. ``(".pt", ".pth")``.
    sniff : callable
        ``sniff(first_bytes) -> bool``; true when the leading bytes belong to this format.
        It must be cheap and must not claim other registered formats' files.
    """

    def register(func: ReadFunc) -> ReadFunc:
        _READERS[name] = ReaderSpec(name, _normalise_extensions(extensions), sniff, func)
        return func

    return register


def writer(*, name: str, extensions: tuple[str, ...]) -> Callable[[WriteFunc], WriteFunc]:
    """Register ``func(path, tensors, dtypes, metadata)`` as the writer of a format.

    The function writes to ``path`` (a temporary file) and may restore the original dtypes
    in ``dtypes`` where its format supports them.
    """

    def register(func: WriteFunc) -> WriteFunc:
        _WRITERS[name] = WriterSpec(name, _normalise_extensions(extensions), func)
        return func

    return register


def rewriter(*, format: str, runs_code: bool = False) -> Callable[[RewriteFunc], RewriteFunc]:
    """Register ``func(source, target, tensors)`` as the write-back of reader ``format``.

    The function writes to ``target`` a copy of ``source`` in which every tensor named in
    ``tensors`` (by the reader's names) holds the given values, cast to the dtype the source
    stores; every other part of the file (graph, code, configuration) is kept. ``runs_code``:
    the function loads the source as a program (TorchScript), so :func:`write_back` calls it only
    with ``allow_code``.
    """

    def register(func: RewriteFunc) -> RewriteFunc:
        _REWRITERS[format] = func
        if runs_code:
            _REWRITERS_RUNNING_CODE.add(format)
        return func

    return register


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def reader_formats() -> tuple[ReaderSpec, ...]:
    """All registered readers, built-in ones included."""
    _load_builtins()
    return tuple(_READERS.values())


def writer_formats() -> tuple[WriterSpec, ...]:
    """All registered writers, built-in ones included."""
    _load_builtins()
    return tuple(_WRITERS.values())


def rewriter_formats() -> tuple[str, ...]:
    """Names of the reader formats that can be written back into (``"onnx"``, ...)."""
    _load_builtins()
    return tuple(_REWRITERS)


def _describe(specs: tuple[ReaderSpec, ...] | tuple[WriterSpec, ...]) -> str:
    return ", ".join(f"{s.name} ({' '.join(s.extensions)})" for s in specs)


def _head(path: Path) -> bytes:
    """First bytes of ``path``, turning every way of not being a readable file into InputError."""
    try:
        if path.is_dir():
            raise InputError("is a directory, not a model file", path)
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    if not head:
        raise InputError("empty file", path)
    return head


def _choose_reader(path: Path, head: bytes) -> ReaderSpec:
    specs = reader_formats()
    for spec in specs:
        if spec.sniff(head):
            return spec
    suffix = path.suffix.lower()
    for spec in specs:
        if suffix in spec.extensions:
            return spec
    raise InputError(f"unrecognised model format; supported: {_describe(specs)}", path)


def read_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Read every tensor of a model file.

    Parameters
    ----------
    path : str or path-like
        The model file. Its format is sniffed from the content first, the extension second.

    Returns
    -------
    LoadedModel

    Raises
    ------
    InputError
        Missing, empty, truncated, corrupt, hostile or unsupported file; one line naming it.
    """
    path = Path(path)
    spec = _choose_reader(path, _head(path))
    try:
        model = spec.read(path)
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"not enough memory to read this {spec.name} file", path) from None
    except Exception as exc:  # a corrupt file can make a library fail in any way
        problem = f"corrupt or unreadable {spec.name} file ({_one_line(exc)})"
        raise InputError(problem, path) from exc
    if not model.tensors:  # an empty safetensors file, say: nothing to show or compress
        raise InputError(f"the {spec.name} file holds no tensors", path)
    return model


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _choose_writer(path: Path) -> WriterSpec:
    specs = writer_formats()
    suffix = path.suffix.lower()
    for spec in specs:
        if suffix in spec.extensions:
            return spec
    raise InputError(f"cannot write this file type; supported: {_describe(specs)}", path)


def _check_arrays(path: Path, tensors: Mapping[str, np.ndarray]) -> None:
    if not tensors:
        raise InputError("nothing to write: no tensors", path)
    for name, arr in tensors.items():
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biufc":
            kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
            raise InputError(f"tensor {name!r} is not a numeric array ({kind})", path)


def write_weights(
    path: str | os.PathLike[str],
    tensors: Mapping[str, np.ndarray],
    dtypes: Mapping[str, str] | None = None,
    *,
    protect: str | os.PathLike[str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write tensors to a model file atomically, in the format its extension names.

    Parameters
    ----------
    path : str or path-like
        Target; ``.pt``/``.pth``, ``.safetensors`` or ``.npz`` (plus any registered writer).
    tensors : mapping of str to ndarray
        Arrays to store, in the order to store them.
    dtypes : mapping of str to str, optional
        Original dtypes (e.g. ``"bfloat16"``) to restore where the format supports them.
    protect : str or path-like, optional
        A file that must never be overwritten, typically the source model.
    metadata : mapping of str to str, optional
        String metadata for formats that store it (safetensors).

    Raises
    ------
    InputError
        Unsupported extension, protected or unwritable target, or a dtype the format lacks.
    """
    path = Path(path)
    spec = _choose_writer(path)
    _check_arrays(path, tensors)
    if protect is not None and same_file(path, Path(protect)):
        raise InputError("refusing to overwrite the source model", path)
    check_output(path)  # a regular file or a new name; never a link, folder or device
    try:
        with atomic_path(path) as tmp:
            try:
                spec.write(tmp, tensors, dtypes or {}, metadata or {})
            except InputError as exc:
                # Writers may raise without a path; the user needs to know which file failed.
                raise exc if exc.path else InputError(exc.problem, path) from None
            except (OSError, MemoryError):
                raise
            except Exception as exc:  # safetensors reports a full disk as its own error type
                raise OutputError(f"cannot write ({_one_line(exc)})", path) from exc
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path) from None


def write_back_runs_code(path: str | os.PathLike[str]) -> bool:
    """Whether writing a copy of ``path`` loads it as a program (False if unreadable)."""
    path = Path(path)
    try:
        return _choose_reader(path, _head(path)).name in _REWRITERS_RUNNING_CODE
    except InputError:
        return False


def can_write_back(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`write_back` supports ``path``'s format (sniffed; False if unreadable)."""
    path = Path(path)
    try:
        return _choose_reader(path, _head(path)).name in rewriter_formats()
    except InputError:
        return False


def write_back(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    tensors: Mapping[str, np.ndarray],
    model: LoadedModel | None = None,
    *,
    allow_code: bool = False,
) -> None:
    """Write a copy of ``source`` in its own format with ``tensors`` replaced, atomically.

    Parameters
    ----------
    source : str or path-like
        The original model (ONNX, Keras, TorchScript, ...); it is never modified.
    output : str or path-like
        The copy; it must keep the source's extension, so it opens where the source did.
    tensors : mapping of str to ndarray
        New values by the source reader's tensor names; tensors not named keep their values.
    model : LoadedModel, optional
        ``source`` as already read, to check the names and shapes against without reading it
        again.
    allow_code : bool
        The user agreed to load ``source`` as a program, where its format's write-back does
        (TorchScript: loading runs the code it contains).

    Raises
    ------
    CodeNotAllowed
        The write-back would run the source's code and ``allow_code`` is false.
    InputError
        A format without write-back, an output over the source, another extension, a name the
        source lacks or a shape that differs; one line naming the file.
    """
    source, output = Path(source), Path(output)
    spec = _choose_reader(source, _head(source))
    rewrite = _REWRITERS.get(spec.name)
    if rewrite is None:
        writable = ", ".join(rewriter_formats())
        problem = (f"cannot write back into {spec.name} files (supported: {writable}); "
                   "write the weights as .pt, .safetensors or .npz instead")
        raise InputError(problem, source)
    if spec.name in _REWRITERS_RUNNING_CODE and not allow_code:
        raise CodeNotAllowed(
            f"is {_LABELS.get(spec.name, spec.name)}: writing a copy of it runs the code it "
            "contains; pass --allow-code to allow",
            source,
        )
    if same_file(output, source):
        raise InputError("refusing to overwrite the source model", output)
    if output.suffix.lower() != source.suffix.lower():
        problem = f"a copy of {source.name} must keep its extension {source.suffix or '(none)'}"
        raise InputError(problem, output)
    check_output(output)
    _check_replacements(model or read_model(source), output, tensors)
    try:
        with atomic_path(output) as tmp:
            try:
                rewrite(source, tmp, tensors)
            except InputError as exc:
                raise exc if exc.path else InputError(exc.problem, output) from None
            except MemoryError:
                raise InputError("not enough memory to write this file", output) from None
            except Exception as exc:  # a library failing on a file it read itself
                problem = f"cannot write a {spec.name} copy ({_one_line(exc)})"
                raise InputError(problem, output) from exc
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", output) from None


def _check_replacements(
    model: LoadedModel, output: Path, tensors: Mapping[str, np.ndarray]
) -> None:
    _check_arrays(output, tensors)
    for name, arr in tensors.items():
        if name not in model.tensors:
            raise InputError(f"the source model has no tensor {name!r}", output)
        expected = model.tensors[name].shape
        if arr.shape != expected:
            problem = f"tensor {name!r} has shape {arr.shape}, the source model {expected}"
            raise InputError(problem, output)
