"""The factorised write-back of low-rank layers (runnable ONNX and TorchScript): what
export_rewritten calls when some layer's recipe is ``lowrank``.

Each such layer becomes two nodes/ops holding the decoded factors
(:mod:`inspector.io.onnx_factorised`, :mod:`inspector.io.torchscript_factorised`), so the
copy is smaller and faster than one holding the product; the copy is read back, every tensor
it still shares with the source compared bit for bit with the decoded weights, and each
factor with the factor the ``.dcz`` decodes. A TorchScript split layer's ``weight`` reads
back empty (see that module: a compiled module's parameter cannot be removed).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import numpy as np

from inspector.core.stages import registry
from inspector.core.stages.lowrank import Factors
from inspector.errors import CodeNotAllowed
from inspector.io import read_model
from inspector.io.onnx_factorised import factorised_onnx
from inspector.io.torchscript_factorised import factorised_torchscript, read_factors
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, Progress

#: Formats whose rewritten copy can hold a low-rank layer as its two factors.
FACTORISED_FORMATS = ("onnx", "torchscript")


def lowrank_factors(codec: ModelCodec, settings: ModelSettings) -> dict[str, Factors]:
    """The decoded factors of every layer ``settings`` codes with ``lowrank`` (by name)."""
    out: dict[str, Factors] = {}
    method = registry.method("lowrank")
    for info in codec.model.infos:
        est = codec.layer(info, settings)
        if est.coded is not None and est.coded.method == method.name:
            payload = codec.payload(est)
            out[info.name] = method.factors(est.coded.params, payload, tuple(info.shape))
    return out


def write_factorised(source: Path, target: Path, fmt: str, tensors: dict[str, np.ndarray],
                     factors: dict[str, Factors], done: int, total: int,
                     allow_code: bool = False) -> Generator[Progress, None, tuple[str, ...]]:
    """Write the factorised copy (``fmt``: one of :data:`FACTORISED_FORMATS`) to ``target``
    and check it; the mismatch lines. TorchScript needs ``allow_code`` (loading runs it)."""
    yield Progress(done, total, "writing (low-rank layers as two ops)")
    if fmt == "torchscript":
        if not allow_code:
            raise CodeNotAllowed("is a TorchScript archive: writing a copy of it runs the code "
                                 "it contains; pass --allow-code to allow", source)
        new = factorised_torchscript(source, target, tensors, factors)
        split = {n for n in factors if f"{n.rpartition('.')[0]}.factor0" in new}
        back = read_model(target).tensors | read_factors(target, list(new))
        empty = {n: np.zeros(0, tensors[n].dtype) for n in split}
    else:
        new = factorised_onnx(source, target, tensors, factors)
        split = {n for n in factors if f"{n}.factor0" in new}
        back = read_model(target).tensors
        empty = {}
    expected = {n: t for n, t in tensors.items() if n not in split} | empty | new
    lines = [f"{n}: missing from the file" for n in expected if n not in back]
    lines += [f"{n}: in the file but not expected" for n in back if n not in expected]
    for i, (name, values) in enumerate(back.items()):
        yield Progress(min(done + 1 + i, total - 1), total, f"verifying {name}")
        want = expected.get(name)
        if want is None:
            continue
        want = np.asarray(want).astype(values.dtype)
        if want.shape != values.shape or want.tobytes() != values.tobytes():
            lines.append(f"{name}: does not read back as written")
    return tuple(lines)
