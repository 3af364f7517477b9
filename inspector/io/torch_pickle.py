"""The tensor records of torch's zip archives, read without torch and without running code.

``torch.save`` checkpoints and ``torch.jit.save`` archives share one layout: a pickle
(``data.pkl``, and ``constants.pkl`` in TorchScript) that names each tensor's storage by key,
dtype, offset, shape and strides, and one zip member per storage (``data/<key>``). This module
unpickles those records with an allowlist: the rebuild functions, storage and dtype names, plain
containers. Anything else a pickle asks for (``os.system``, ``builtins.exec``, a class's
``__reduce__``) is refused as code, by name, before it is looked up. TorchScript module objects
(``__torch__.*``) become inert :class:`ScriptObject` records of their attributes: their code is
never compiled or run, so a ``__setstate__`` in the archive does nothing here.

:mod:`inspector.io.torch_storage` checks each record against its storage and reads it.
"""

from __future__ import annotations

import _compat_pickle
import math
import pickle
import struct
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: dtypes numpy holds as they are, by torch's name.
NUMPY_DTYPES = frozenset({
    "float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool",
    "complex128", "complex64", "uint16", "uint32", "uint64",
})  # fmt: skip
# dtypes numpy lacks, widened exactly on reading (bfloat16 and float8 to float32, complex32 to
# complex64); the original name is kept with the array.
_WIDENED_ITEMSIZE = {
    "bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1, "complex32": 4,
}  # fmt: skip
# torch's legacy typed-storage classes, as ``torch.save`` names them in a pickle.
_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "BFloat16Storage": "bfloat16", "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64", "QInt8Storage": "qint8", "QInt32Storage": "qint32",
    "QUInt8Storage": "quint8", "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
    # TorchScript's names for the dtypes torch.save keeps in untyped storages
    "UInt16Storage": "uint16", "UInt32Storage": "uint32", "UInt64Storage": "uint64",
    "ComplexHalfStorage": "complex32", "Float8_e4m3fnStorage": "float8_e4m3fn",
    "Float8_e5m2Storage": "float8_e5m2", "Float8_e4m3fnuzStorage": "float8_e4m3fnuz",
    "Float8_e5m2fnuzStorage": "float8_e5m2fnuz", "Float8_e8m0fnuStorage": "float8_e8m0fnu",
}  # fmt: skip
_QUANTIZED = frozenset({"qint8", "qint32", "quint8", "quint4x2", "quint2x4"})
_SPARSE_LAYOUTS = frozenset({"sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc"})


class CodeRefused(Exception):
    """A pickle asked for a Python global that is not tensor data (it would run code)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


_TORCH_ADVICE = "re-save just the weights with torch.save(model.state_dict(), path)"


def code_refusal(name: str, advice: str = _TORCH_ADVICE) -> str:
    """The one line for a pickle refused as code: what it names, and the fix."""
    return f"refers to {name}: not loaded (unpickling it would run code from the file; {advice})"


class BadRecord(ValueError):
    """A tensor record that contradicts itself or its storage."""


def itemsize(dtype: str) -> int:
    """Bytes per element of a torch dtype name this module reads."""
    if dtype in _WIDENED_ITEMSIZE:
        return _WIDENED_ITEMSIZE[dtype]
    if dtype in NUMPY_DTYPES:
        return int(np.dtype(dtype).itemsize)
    if dtype in _QUANTIZED:
        raise BadRecord(f"quantized tensors ({dtype}) are not supported")
    raise BadRecord(f"tensors of dtype {dtype} are not supported")


@dataclass(frozen=True, slots=True)
class StorageRef:
    """A storage the pickle names: zip member ``data/<key>``, ``nbytes`` long."""

    key: str
    nbytes: int
    dtype: str | None  # a typed storage's dtype; None for an untyped one


class _Sized:
    """``numel`` and ``nbytes`` of a tensor record with a ``shape`` and a ``dtype``."""

    __slots__ = ()
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * itemsize(self.dtype)


@dataclass(slots=True)
class TensorRef(_Sized):
    """A strided tensor: a view of a storage, not yet read."""

    storage: StorageRef
    dtype: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    parameter: bool = False

    @property
    def dense(self) -> bool:
        return True


@dataclass(slots=True)
class SparseRef(_Sized):
    """A sparse tensor (COO, CSR or CSC): its index and value tensors and its dense shape."""

    layout: str
    parts: tuple[TensorRef, ...]
    shape: tuple[int, ...]
    parameter: bool = False

    @property
    def dtype(self) -> str:  # type: ignore[override]  # the values' dtype
        return self.parts[-1].dtype

    @property
    def dense(self) -> bool:
        return False


@dataclass(slots=True)
class ScriptObject:
    """A TorchScript object (``__torch__.<qualified name>``): its type and pickled state."""

    type_name: str
    state: Any = None
    args: tuple[Any, ...] = field(default_factory=tuple)


def is_tensor_record(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`TensorRef` or :class:`SparseRef`."""
    return isinstance(obj, (TensorRef, SparseRef))


# ------------------------------------------------------------------ what a pickle may name


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRecord(f"{what} is {type(value).__name__}, not an integer")
    return value


def _dims(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > 64:
        raise BadRecord(f"{what} is not a list of at most 64 integers")
    return tuple(_count(v, what) for v in value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: str | None) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise BadRecord("a tensor's storage is not a storage record")
    dtype = dtype or storage.dtype
    if dtype is None:
        raise BadRecord("a tensor of an untyped storage names no dtype")
    itemsize(dtype)  # refuses dtypes we do not read, before anything else
    shape, strides = _dims(size, "a tensor's shape"), _dims(stride, "a tensor's strides")
    if len(shape) != len(strides):
        raise BadRecord(f"shape {list(shape)} and strides {list(strides)} differ in length")
    return TensorRef(storage, dtype, _count(offset, "a storage offset"), shape, strides)


def _rebuild_v2(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> TensorRef:
    return _tensor(storage, offset, size, stride, None)


def _rebuild_v3(
    storage: Any, offset: Any, size: Any, stride: Any, grad: Any, hooks: Any, dtype: Any, *_: Any
) -> TensorRef:
    if not isinstance(dtype, _Dtype):
        raise BadRecord("a tensor's dtype is not a torch dtype")
    return _tensor(storage, offset, size, stride, dtype.name)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    if is_tensor_record(data):
        data.parameter = True
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any = None) -> Any:
    if not callable(func) or not isinstance(args, tuple):
        raise BadRecord("a tensor subclass record is malformed")
    return func(*args)


def _rebuild_sparse(layout: Any, data: Any) -> SparseRef:
    if not isinstance(layout, _Layout) or not isinstance(data, tuple):
        raise BadRecord("a sparse tensor record is malformed")
    if layout.name not in ("sparse_coo", "sparse_csr", "sparse_csc"):
        raise BadRecord(f"{layout.name} tensors are not supported; save them with .to_dense()")
    parts = data[:2] if layout.name == "sparse_coo" else data[:3]
    shape = data[2] if layout.name == "sparse_coo" else data[3]
    if not all(isinstance(p, TensorRef) for p in parts):
        raise BadRecord("a sparse tensor's indices or values are not tensors")
    return SparseRef(layout.name, tuple(parts), _dims(shape, "a sparse tensor's shape"))


@dataclass(frozen=True, slots=True)
class _Dtype:
    name: str


@dataclass(frozen=True, slots=True)
class _Layout:
    name: str


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: str | None


def _get_layout(name: Any) -> _Layout:
    if not isinstance(name, str) or name.removeprefix("torch.") not in _SPARSE_LAYOUTS | {
        "strided"
    }:
        raise BadRecord(f"unknown tensor layout {str(name)[:40]!r}")
    return _Layout(name.removeprefix("torch."))


def _identity(value: Any, *_: Any) -> Any:
    return value


def _size(value: Any = ()) -> tuple[Any, ...]:
    return tuple(value)


def _device(*args: Any) -> str:
    return ":".join(str(a) for a in args)


def _encode(text: Any, encoding: Any = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise BadRecord("malformed bytes record")
    return text.encode("latin1")


_GLOBALS: dict[str, Any] = {
    "collections.OrderedDict": OrderedDict,
    "collections.Counter": Counter,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.bytearray": lambda data=b"", *_: bytearray(data if isinstance(data, bytes) else b""),
    "builtins.complex": complex,
    "_codecs.encode": _encode,
    "torch.Size": _size,
    "torch.device": _device,
    "torch._utils._rebuild_tensor": lambda s, o, size, stride: _rebuild_v2(s, o, size, stride),
    "torch._utils._rebuild_tensor_v2": _rebuild_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._utils._rebuild_sparse_tensor": _rebuild_sparse,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
    "torch.serialization._get_layout": _get_layout,
    "torch.nn.parameter.Parameter": _Dtype("parameter"),  # a type tag, never called
    "torch.Tensor": _Dtype("tensor"),
    # TorchScript's typed containers: the value itself.
    "torch.jit._pickle.restore_type_tag": _identity,
    "torch.jit._pickle.build_intlist": _identity,
    "torch.jit._pickle.build_doublelist": _identity,
    "torch.jit._pickle.build_boollist": _identity,
    "torch.jit._pickle.build_tensorlist": _identity,
}


class _Unpickler(pickle.Unpickler):
    """Allowlisted globals only; persistent ids are storage records."""

    def __init__(self, file: Any) -> None:
        super().__init__(file, encoding="utf-8")
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 (torch's) names Python 2 modules: "__builtin__.exec" is builtins.exec.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if full in _GLOBALS:
            return _GLOBALS[full]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if full in ("torch.storage.UntypedStorage", "torch.UntypedStorage"):
            return _StorageType(None)
        if module == "torch" and (name in NUMPY_DTYPES or name in _WIDENED_ITEMSIZE):
            return _Dtype(name)
        if module == "torch" and name in _SPARSE_LAYOUTS:
            return _Layout(name)
        if module == "__torch__" or module.startswith("__torch__."):
            return self._script_class(full)
        raise CodeRefused(full)

    def _script_class(self, full: str) -> type:
        """An inert stand-in class: pickle's NEWOBJ/BUILD fill a :class:`ScriptObject`."""
        if full not in self._classes:

            def new(cls: type, *args: Any) -> ScriptObject:
                return ScriptObject(full, None, args)

            self._classes[full] = type("ScriptClass", (), {"__new__": new})
        return self._classes[full]

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise BadRecord("unknown persistent record")
        kind, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(kind, _StorageType) or not isinstance(key, str):
            raise BadRecord("malformed storage record")
        numel = _count(numel, "a storage size")
        nbytes = numel * (itemsize(kind.dtype) if kind.dtype else 1)
        return StorageRef(key, nbytes, kind.dtype)


def _set_state(obj: Any, state: Any) -> None:
    obj.state = state


# BUILD on a ScriptObject stores its state (the pickle's dict of attributes) and runs nothing.
ScriptObject.__setstate__ = _set_state  # type: ignore[attr-defined]


def pickle_global(data: bytes, ignore: tuple[str, ...] = ()) -> str | None:
    """The first Python global a pickle names (``"posix.system"``), read without running it.

    Globals named in ``ignore`` are passed over (numpy's own reconstructors, say). None when
    it names no other, or when its opcodes break off (a damaged pickle).
    """
    import pickletools

    recent: list[str | None] = []  # what the last opcodes pushed: a string, or None
    memo: dict[int, str | None] = {}
    try:
        for opcode, arg, _ in pickletools.genops(data):
            found = None
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                found = _compat_name(*str(arg).split(" ", 1))
            elif name == "STACK_GLOBAL" and len(recent) >= 2 and None not in recent[-2:]:
                found = _compat_name(str(recent[-2]), str(recent[-1]))
            if found is not None and found not in ignore:
                return found
            if name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = recent[-1] if recent else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                recent.append(memo.get(int(arg)))
            elif name not in ("PROTO", "FRAME"):
                recent.append(arg if isinstance(arg, str) and "UNICODE" in name else None)
    except (ValueError, EOFError, struct.error, UnicodeDecodeError):
        return None
    return None


def _compat_name(module: str, name: str) -> str:
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def unpickle(data: bytes) -> Any:
    """Unpickle tensor records from ``data``.

    Raises
    ------
    CodeRefused
        The pickle names a global outside the allowlist.
    BadRecord, pickle.UnpicklingError, ...
        Malformed records (the caller reports them as corruption).
    """
    import io

    return _Unpickler(io.BytesIO(data)).load()
