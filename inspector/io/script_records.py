"""The state dict of a TorchScript archive, from its records and the declarations in its code.

``torch.jit.load`` would compile the archive's code and run it (``__setstate__`` methods run
while loading), so reading weights never calls it. The module tree is in ``data.pkl`` as
:class:`~inspector.io.torch_pickle.ScriptObject` records; which attributes are parameters and
which are buffers is declared, as text, at the top of each class in ``code/``
(``__parameters__ = ["weight", "bias", ]``). That text is matched, never compiled. The names and
their order are those of ``module.state_dict()``: a module's parameters, then its buffers, then
each submodule's, in attribute order.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from typing import Any

from inspector.io.torch_pickle import BadRecord, ScriptObject, SparseRef, TensorRef

#: Submodules visited at most; a pickle can share one module object exponentially many ways.
MAX_MODULES = 100_000
_MAX_DEPTH = 64
_MAX_CODE_BYTES = 16 << 20
_CLASS = re.compile(r"^class (\w+)\((\w*)\):", re.MULTILINE)
_LIST = r"^  {name} = \[([^\]]*)\]"


@dataclass(frozen=True, slots=True)
class ClassDecl:
    """What a class's code declares, read as text."""

    parameters: tuple[str, ...]
    buffers: tuple[str, ...]
    module: bool
    setstate: bool


@dataclass(frozen=True, slots=True)
class Entry:
    """One state-dict tensor: its name, record, role and the type of the module holding it."""

    name: str
    ref: TensorRef | SparseRef
    role: str  # "parameter" or "buffer"
    owner: str


class CodeState(Exception):
    """A TorchScript object whose state only its own code can restore."""


def class_declarations(archive: zipfile.ZipFile, folder: str) -> dict[str, ClassDecl]:
    """Every class declared under ``<folder>code/``, by qualified name."""
    decls: dict[str, ClassDecl] = {}
    code = f"{folder}code/"
    for info in archive.infolist():
        name = info.filename
        if not (name.startswith(code) and name.endswith(".py")):
            continue
        with archive.open(info) as member:
            text = member.read(_MAX_CODE_BYTES).decode("utf-8", "replace")
        module = name[len(code) : -3].replace("/", ".")
        starts = list(_CLASS.finditer(text))
        for i, match in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            body = text[match.end() : end]
            decls[f"{module}.{match.group(1)}"] = ClassDecl(
                _names(body, "__parameters__"), _names(body, "__buffers__"),
                match.group(2) == "Module", "def __setstate__(" in body,
            )  # fmt: skip
    return decls


def _names(body: str, field: str) -> tuple[str, ...]:
    found = re.search(_LIST.format(name=field), body, re.MULTILINE)
    return tuple(re.findall(r'"([^"]*)"', found.group(1))) if found else ()


def state_entries(root: Any, decls: dict[str, ClassDecl]) -> list[Entry]:
    """The tensors ``root.state_dict()`` would hold, in its order, without running code.

    Raises
    ------
    CodeState
        A module restores its state with its own ``__setstate__``.
    BadRecord
        The root is not a module object, or the tree is cyclic, too deep or too large.
    """
    if not isinstance(root, ScriptObject):
        raise BadRecord("data.pkl does not hold a TorchScript module")
    entries: list[Entry] = []
    _walk(root, "", decls, entries, [0], set())
    return entries


def _walk(
    obj: ScriptObject, prefix: str, decls: dict[str, ClassDecl], out: list[Entry],
    count: list[int], path: set[int],
) -> None:  # fmt: skip
    count[0] += 1
    if count[0] > MAX_MODULES or len(path) > _MAX_DEPTH:
        raise BadRecord(f"its module tree is over {MAX_MODULES} modules or {_MAX_DEPTH} deep")
    if id(obj) in path:
        raise BadRecord("its module tree holds itself")
    decl = decls.get(obj.type_name)
    short = obj.type_name.removeprefix("__torch__.")
    if (decl is not None and decl.setstate) or not isinstance(obj.state, dict):
        raise CodeState(
            f"the TorchScript class {short[:80]} restores its state with its own code "
            "(__setstate__): its weights cannot be read without running that code, which "
            "inspector does not do to read weights"
        )
    state: dict[Any, Any] = obj.state
    tensors = [(k, v) for k, v in state.items() if isinstance(v, (TensorRef, SparseRef))]
    if decl is None:  # no code for the class: every tensor attribute counts as a parameter
        roles = [("parameter", {k for k, _ in tensors})]
    else:
        roles = [("parameter", set(decl.parameters)), ("buffer", set(decl.buffers))]
    for role, names in roles:
        out.extend(Entry(f"{prefix}{k}", v, role, short) for k, v in tensors if k in names)
    path.add(id(obj))
    for key, value in state.items():
        if isinstance(value, ScriptObject) and _is_module(value, decls):
            _walk(value, f"{prefix}{key}.", decls, out, count, path)
    path.discard(id(obj))


def _is_module(obj: ScriptObject, decls: dict[str, ClassDecl]) -> bool:
    decl = decls.get(obj.type_name)
    if decl is not None:
        return decl.module
    return isinstance(obj.state, dict) and "training" in obj.state
