"""``inspector compress --explain LAYER``: each of a layer's settings and where it came from."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from inspector.errors import InputError
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec


def explain(
    codec: ModelCodec, settings: ModelSettings, name: str, flagged: dict[str, str],
    config: Path | None,
) -> str:
    """The text ``--explain`` prints for tensor ``name``.

    Parameters
    ----------
    codec
        The model's codec (the layer is planned, so the floor's result is shown too).
    settings
        The settings in force: the file's with the command line's flags applied.
    name
        The tensor to explain.
    flagged
        ``"level:field"`` -> the flag that set it (``"defaults:bits"`` -> ``"--bits"``).
    config
        The settings file, if any (its levels are labelled "settings file: ...").
    """
    info = next((i for i in codec.model.infos if i.name == name), None)
    if info is None:
        names = [i.name for i in codec.model.infos]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `inspector info`"
        raise InputError(f"no tensor named {name!r} ({len(names)} tensors){hint}",
                         codec.model.path)
    shape = "x".join(map(str, info.shape)) or "scalar"
    lines = [f"{name} ({info.kind}, {shape}, {info.size:,} weights)"]
    for field, (value, source) in settings.explain(name, info.kind).items():
        label = _label(source.level, field, flagged, config)
        note = f"; {source.note}" if source.note else ""
        lines.append(f"  {field:<11} = {_show(field, value):<10} ({label}{note})")
    lines.append(_outcome(codec, settings, info))
    return "\n".join(lines)


def _label(level: str, field: str, flagged: dict[str, str], config: Path | None) -> str:
    if level.startswith("built-in"):
        return level
    if f"{level}:{field}" in flagged:
        return flagged[f"{level}:{field}"]
    return f"settings file: {level}" if config is not None else f"settings: {level}"


def _show(field: str, value: Any) -> str:
    if value is None:
        return "off" if field == "min_sqnr" else "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _outcome(codec: ModelCodec, settings: ModelSettings, info: Any) -> str:
    est = codec.layer(info, settings)
    if est.coded is not None:
        sqnr = est.coded.sqnr_db
        shown = f"{sqnr:.1f} dB" if sqnr != float("inf") else "exact"
        return (f"  -> {est.coded.method}, SQNR {shown}, "
                f"{est.record.payload_nbytes:,} bytes")
    if est.plan is None:
        why = f" ({est.note})" if est.note else ""
        return f"  -> stored losslessly: {est.record.payload_nbytes:,} bytes{why}"
    plan = est.plan
    pruned = 1.0 - plan.survivors / plan.size if plan.size else 0.0
    how, bits = "", f"{plan.settings.bits} bits"
    asked = plan.requested
    if asked is not None and asked.min_sqnr is not None:
        how = f" (the floor of {asked.min_sqnr:g} dB: target sparsity {plan.settings.value:g})"
        if plan.settings.bits != asked.bits:
            bits += f" (raised from {asked.bits} by the floor)"
    return (f"  -> prunes {100 * pruned:.2f}%{how}, {bits}, SQNR {plan.sqnr_db:.1f} dB, "
            f"{plan.payload_nbytes:,} bytes")
