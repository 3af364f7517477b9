"""``inspector compress`` flags on top of a settings file, and which flag set what.

Global flags (``--sparsity``/``--std-q``/``--threshold``, ``--bits``, ``--index-bits``,
``--init``, ``--no-huffman``, ``--min-sqnr``) replace the file's defaults and any kind entry
naming the same setting; ``--conv-bits``/``--fc-bits`` then replace a kind's bits; the file's
per-layer entries still win.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports settings only when a command runs
    from inspector.model.settings import ModelSettings

UNSET: Any = object()  # --min-sqnr not given (None means "off")


def floor_arg(text: str) -> float | None:
    """``--min-sqnr``: a number of dB, or ``off``."""
    if text.lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of dB or 'off': {text!r}") from None


def _global_changes(args: argparse.Namespace) -> dict[str, tuple[Any, str]]:
    """The settings the global flags set, each with its flag."""
    changes: dict[str, tuple[Any, str]] = {}
    for flag, policy in (("sparsity", "sparsity"), ("std_q", "std"), ("threshold", "threshold")):
        if getattr(args, flag) is not None:
            name = "--" + flag.replace("_", "-")
            changes.update(policy=(policy, name), value=(getattr(args, flag), name))
    if args.init:
        changes["init"] = (args.init, "--init")
    if args.no_huffman:
        changes["huffman"] = (False, "--no-huffman")
    if getattr(args, "store", None):
        changes["store"] = (args.store, "--store")
    if args.index_bits is not None:
        changes["index_bits"] = (args.index_bits, "--index-bits")
    if args.bits is not None:
        changes["bits"] = (args.bits, "--bits")
    if args.min_sqnr is not UNSET:
        changes["min_sqnr"] = (args.min_sqnr, "--min-sqnr")
    from inspector.cli_method import method_changes

    changes.update(method_changes(args))  # --method and the methods' option flags
    return changes


def _kind_changes(args: argparse.Namespace) -> dict[str, dict[str, tuple[Any, str]]]:
    return {kind: {"bits": (value, f"--{kind}-bits")}
            for kind, value in (("conv", args.conv_bits), ("fc", args.fc_bits))
            if value is not None}


def flag_sources(settings: ModelSettings, args: argparse.Namespace) -> dict[str, str]:
    """Which flag set each ``level:field`` of the settings ``apply_flags`` makes."""
    out = {}
    for field_, (_, flag) in _global_changes(args).items():
        out[f"defaults:{field_}"] = flag
        for kind, entry in settings.kinds.items():
            if field_ in entry:
                out[f"kinds.{kind}:{field_}"] = flag
    for kind, changes in _kind_changes(args).items():
        for field_, (_, flag) in changes.items():
            out[f"kinds.{kind}:{field_}"] = flag
    return out


def apply_flags(settings: ModelSettings, args: argparse.Namespace) -> ModelSettings:
    """The command line on top of a settings file: global flags replace the file's defaults
    and any kind entry naming the same setting, ``--conv-bits``/``--fc-bits`` replace a kind's
    bits, and the file's per-layer entries still win."""
    changes = {k: v for k, (v, _) in _global_changes(args).items()}
    if changes:
        settings = settings.with_defaults(**changes)
        for kind in list(settings.kinds):  # flags beat the per-kind defaults they name
            overridden = {k: v for k, v in changes.items() if k in settings.kinds[kind]}
            if overridden:
                settings = settings.with_kind(kind, **overridden)
    for kind, kind_changes in _kind_changes(args).items():
        settings = settings.with_kind(kind, **{k: v for k, (v, _) in kind_changes.items()})
    return settings
