"""The factorised write-back of low-rank layers (runnable ONNX): what export_rewritten calls
when some layer's recipe is ``lowrank``.

Each such layer becomes two nodes holding the decoded factors
(:mod:`inspector.io.onnx_factorised`), so the copy is smaller and faster than one holding
the product; the copy is read back, every tensor it still shares with the source compared
bit for bit with the decoded weights, and each factor with the factor the ``.dcz`` decodes.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import numpy as np

from inspector.core.stages import registry
from inspector.core.stages.lowrank import Factors
from inspector.io import read_model
from inspector.io.onnx_factorised import factorised_onnx
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, Progress

#: Formats whose rewritten copy can hold a low-rank layer as its two factors.
FACTORISED_FORMATS = ("onnx",)


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


def write_factorised(source: Path, target: Path, tensors: dict[str, np.ndarray],
                     factors: dict[str, Factors], done: int, total: int
                     ) -> Generator[Progress, None, tuple[str, ...]]:
    """Write the factorised copy to ``target`` and check it; the mismatch lines."""
    yield Progress(done, total, "writing (low-rank layers as two nodes)")
    new = factorised_onnx(source, target, tensors, factors)
    split = {name for name in factors if f"{name}.factor0" in new}
    expected = {n: t for n, t in tensors.items() if n not in split} | new
    back = read_model(target).tensors
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
