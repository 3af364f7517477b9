"""``inspector compress --method NAME`` and one flag per declared option of the registered
methods, made from the registry (:mod:`inspector.core.stages.registry`): adding a method
adds its flags here without an edit.

An option two methods share (``--step`` of two uniform coders) is one flag, its help naming
both. An option named like a setting that already has its own flag (or like a
:class:`~inspector.core.settings.LayerSettings` field: the settings file could not tell the
two apart) gets no flag of its own. The flags set the settings' ``defaults`` like the other
global flags (:mod:`inspector.cli_flags`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from inspector.core.stages import registry
from inspector.core.stages.base import Option

_DEST_PREFIX = "method_option_"


def _declared() -> dict[str, tuple[Option, list[str]]]:
    """Each option name: its first declaration and the methods declaring it, by name. A word
    option's choices are the union of every declaration's (``--granularity group`` is
    uniform's even when int4, which has only tensor and channel, sorts first); each method
    still validates its own."""
    registry.method("deep")  # loads the registry
    out: dict[str, tuple[Option, list[str]]] = {}
    for m in sorted(registry.METHODS.values(), key=lambda m: m.name):
        for o in m.options:
            first, methods = out.setdefault(o.name, (o, []))
            methods.append(m.name)
            extra = tuple(c for c in o.choices if c not in first.choices)
            if extra:
                out[o.name] = (replace(first, choices=first.choices + extra), methods)
    return out


def _defaults(name: str, methods: list[str]) -> str:
    """``default X`` when the methods agree, else each method's."""
    values = {m: next(o.default for o in registry.METHODS[m].options if o.name == name)
              for m in methods}
    if len(set(map(repr, values.values()))) == 1:
        return f"default {next(iter(values.values()))!r}"
    return "defaults " + ", ".join(f"{m} {v!r}" for m, v in values.items())


def _nullable(kind: type) -> Any:
    def parse(text: str) -> Any:
        if text.lower() in ("none", "off"):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}: {text!r}") from None
    return parse


def add_method_flags(parser: argparse.ArgumentParser, taken: set[str]) -> None:
    """``--method`` and the option flags; ``taken`` holds the dests already in ``parser``."""
    from inspector.core.settings import FIELDS

    declared = _declared()  # loads the registry
    names = sorted(registry.METHODS)
    group = parser.add_argument_group("method (per-layer recipe; options of the methods)")
    group.add_argument("--method", choices=names,
                       help="the method of every compressible layer (default: deep)")
    for name, (o, methods) in sorted(declared.items()):
        if name in FIELDS or name in taken:
            continue
        flag = "--" + name.replace("_", "-")
        text = f"{o.help or o.label or name} [{', '.join(methods)}; {_defaults(name, methods)}]"
        dest = _DEST_PREFIX + name
        if o.kind is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                               default=None, help=text)
        elif o.kind is str:
            group.add_argument(flag, dest=dest, choices=o.choices or None, help=text)
        else:
            parse = _nullable(o.kind) if o.nullable else o.kind
            group.add_argument(flag, dest=dest, type=parse, metavar=name.upper(), help=text)


def method_changes(args: argparse.Namespace) -> dict[str, tuple[Any, str]]:
    """The settings ``--method`` and the option flags set, each with its flag."""
    changes: dict[str, tuple[Any, str]] = {}
    if getattr(args, "method", None):
        changes["method"] = (args.method, "--method")
    for key, value in vars(args).items():
        if key.startswith(_DEST_PREFIX) and value is not None:
            name = key[len(_DEST_PREFIX):]
            changes[name] = (value, "--" + name.replace("_", "-"))
    return changes
