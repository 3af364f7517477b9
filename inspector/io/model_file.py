"""What a model reader returns: the tensors of one file plus a description of each."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from inspector.io.constants import constant_reason
from inspector.io.kinds import ALL_KINDS, COMPRESSIBLE_KINDS, guess_kind

# Bytes per element of dtypes numpy cannot hold; they are widened on reading, but sizes are
# reported for the dtype stored in the file.
_EXTRA_ITEMSIZE: dict[str, int] = {
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2": 1,
    "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1,
    "complex32": 4,
}


def dtype_itemsize(dtype: str) -> int:
    """Bytes per element of a dtype name such as ``"float32"`` or ``"bfloat16"``.

    Raises
    ------
    TypeError
        If neither numpy nor the extra table knows the name.
    """
    if dtype in _EXTRA_ITEMSIZE:
        return _EXTRA_ITEMSIZE[dtype]
    return int(np.dtype(dtype).itemsize)


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """Name, role and original storage type of one tensor.

    ``reason`` says why it has its kind (``"feeds Conv 'conv1' as W"``, ``"name ends in
    weight, 4-D"``, ``"constant: 16 distinct values"``); ``lossy_ok`` whether its values allow
    lossy compression at all (finite floats), so a user may force even an "other" tensor.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: str
    reason: str = ""
    lossy_ok: bool = True

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)  # python ints: exact, and cheap for the app's table

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes in its original dtype."""
        return self.size * dtype_itemsize(self.dtype)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """All tensors of one model file.

    ``tensors`` keeps the file's order. Arrays whose dtype numpy lacks (bfloat16, float8) are
    widened to float32; ``infos[i].dtype`` keeps the dtype stored in the file.
    """

    path: str
    format: str
    tensors: dict[str, np.ndarray]
    infos: tuple[TensorInfo, ...]
    metadata: dict[str, str]

    @property
    def nbytes(self) -> int:
        """Size of all tensors in their original dtypes (bfloat16 counts 2 bytes)."""
        return sum(info.nbytes for info in self.infos)

    @property
    def param_count(self) -> int:
        """Total number of elements over all tensors."""
        return sum(info.size for info in self.infos)

    @property
    def dtypes(self) -> dict[str, str]:
        """Original dtype name of every tensor, e.g. for :func:`write_weights`."""
        return {info.name: info.dtype for info in self.infos}

    def info(self, name: str) -> TensorInfo:
        """The :class:`TensorInfo` of tensor ``name`` (``KeyError`` if absent)."""
        for info in self.infos:
            if info.name == name:
                return info
        raise KeyError(name)

    @classmethod
    def build(
        cls,
        path: str,
        format: str,
        tensors: dict[str, np.ndarray],
        dtypes: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        kinds: Mapping[str, tuple[str, str]] | None = None,
        learned: Collection[str] = (),
    ) -> LoadedModel:
        """Describe ``tensors`` and wrap them.

        Parameters
        ----------
        path, format : str
            Source file and reader name.
        tensors : dict of str to ndarray
            Arrays in file order.
        dtypes : mapping of str to str, optional
            Original dtype of tensors that were widened on reading; others use ``arr.dtype``.
        metadata : mapping of str to str, optional
            Free-form string metadata from the file.
        kinds : mapping of str to (kind, reason), optional
            What the file itself says a tensor is (the op an ONNX initializer feeds, the module
            type of a TorchScript parameter); these win over the guess from names. Either way a
            compressible tensor whose values are not finite, or look like a fixed constant,
            becomes "other".
        learned : collection of str, optional
            Tensors the file says are learned weights, spared the constant check (a compressed
            file's clustered layers hold a few distinct values by design).
        """
        dtypes, kinds = dtypes or {}, kinds or {}
        infos = []
        for name, arr in tensors.items():
            dtype = dtypes.get(name, arr.dtype.name)
            shape = tuple(int(n) for n in arr.shape)
            kind, reason = _hint(kinds.get(name)) or guess_kind(name, shape, dtype)
            lossy_ok = arr.dtype.kind == "f" and _all_finite(arr)
            if kind in COMPRESSIBLE_KINDS:
                kind, reason = _checked(arr, kind, reason, lossy_ok, name not in learned)
            infos.append(TensorInfo(name, kind, shape, dtype, reason, lossy_ok))
        return cls(str(path), format, tensors, tuple(infos), dict(metadata or {}))


def _hint(hint: tuple[str, str] | None) -> tuple[str, str] | None:
    """A reader's (kind, reason), if it names a known kind."""
    if hint is None or hint[0] not in ALL_KINDS:
        return None
    return hint[0], str(hint[1])


def _checked(
    arr: np.ndarray, kind: str, reason: str, lossy_ok: bool, constants: bool
) -> tuple[str, str]:
    """``kind`` unless the values say the tensor is not a learned weight after all."""
    if arr.dtype.kind != "f":
        return "other", f"{arr.dtype.name} values: only float tensors are compressed"
    if not lossy_ok:
        # an attention mask of -inf, say: pruning or clustering it makes no sense
        return "other", "holds NaN or infinite values"
    constant = constant_reason(arr) if constants else None
    if constant is not None:
        # a fixed projection or filterbank shaped like a weight: pruning it breaks the model
        return "other", f"constant: {constant} (else {kind}: {reason})"
    return kind, reason


_CHUNK = 1 << 20  # elements checked at a time: bounded scratch memory on huge tensors


def _all_finite(arr: np.ndarray) -> bool:
    """Whether every value is finite (no NaN, no infinity)."""
    if arr.dtype.kind != "f":
        return True
    flat = arr.reshape(-1)
    return all(np.isfinite(flat[i : i + _CHUNK]).all() for i in range(0, flat.size, _CHUNK))
