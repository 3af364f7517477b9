"""Command line: ``inspector sensitivity`` and ``inspector tune`` (accuracy-driven settings).

``sensitivity`` prunes and quantizes one layer at a time, measures the accuracy on labelled
data and saves the sweep with the settings; ``tune`` picks per-layer sparsity and bits for the
smallest file whose measured top-1 drop stays within ``--max-drop`` points, reusing a sweep
found in ``--config``. ``inspector.cli`` registers both with :func:`add_parsers`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

#: Exit code of ``tune`` when no setting it tried fits the budget (the file is still written).
EXIT_NO_FIT = 3
#: The commands this module adds.
COMMANDS = ("sensitivity", "tune")


def add_parsers(sub: Any) -> None:
    """Add the ``sensitivity`` and ``tune`` commands to ``sub`` (argparse subparsers)."""
    sens = sub.add_parser(
        "sensitivity", help="prune / quantize one layer at a time and measure the accuracy"
    )
    _common(sens)
    sens.add_argument("--layer", action="append", dest="layers", metavar="NAME",
                      help="layer to sweep (repeat; default: every compressible layer)")
    sens.add_argument("--fractions", type=_floats, metavar="F,F,...",
                      help="fractions pruned (default 0,0.1,...,0.9,0.95)")
    sens.add_argument("--bits", type=_ints, metavar="N,N,...",
                      help="cluster bits (default 1,...,8)")
    sens.set_defaults(func=cmd_sensitivity)

    tune = sub.add_parser(
        "tune", help="per-layer sparsity and bits for the smallest file within an accuracy budget",
        epilog=f"Exit code {EXIT_NO_FIT}: nothing tried fits the budget (the least compressed "
               "settings are written).",
    )
    _common(tune)
    tune.add_argument("--max-drop", type=float, required=True, metavar="POINTS",
                      help="largest measured top-1 drop allowed, in percentage points")
    tune.add_argument("--rounds", type=int, default=None, metavar="N",
                      help="most combined checks before falling back (default 12)")
    tune.set_defaults(func=cmd_tune)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="TorchScript archive or ONNX model")
    p.add_argument("--data", type=Path, required=True, metavar="EVAL",
                   help="evaluation data: .h5/.hdf5 or .npz with inputs and labels")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="SETTINGS.json",
                   help="settings file to write (with the sweep)")
    p.add_argument("--config", type=Path, metavar="START.json", help="settings to start from")
    p.add_argument("--allow-pickle", action="store_true",
                   help="allow a whole module saved with torch.save (runs code from the file)")
    p.add_argument("--allow-code", action="store_true",
                   help="allow loading a TorchScript archive, which runs the code it contains")
    p.add_argument("--json", action="store_true", help="print JSON")


def cmd_sensitivity(args: argparse.Namespace) -> int:
    """Run a sweep and save it with the settings."""
    from inspector.cli import _print_json, _run  # here: inspector.cli imports this module
    from inspector.model.sensitivity import PRUNE_FRACTIONS, SWEEP_BITS
    from inspector.model.settings import save_settings
    from inspector.tasks.sensitivity import sensitivity

    settings, codec, evaluator = _open(args)
    sweep = _run(
        sensitivity(codec, evaluator, settings, args.layers,
                    args.fractions or PRUNE_FRACTIONS, args.bits or SWEEP_BITS),
        _show(args),
    )
    save_settings(settings.with_sensitivity(sweep), args.output)
    if args.json:
        _print_json({"output": str(args.output), "sensitivity": sweep.to_json()})
        return 0
    print(format_sweep(sweep))
    print(f"wrote {args.output}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune per-layer settings (sweeping first unless ``--config`` holds a sweep) and save."""
    from inspector.cli import _print_json, _run
    from inspector.model.settings import save_settings
    from inspector.tasks import report
    from inspector.tasks.sensitivity import sensitivity
    from inspector.tasks.tune import MAX_ROUNDS, tune

    settings, codec, evaluator = _open(args)
    sweep = settings.sensitivity
    if sweep is None:
        sweep = _run(sensitivity(codec, evaluator, settings), _show(args))
    rounds = MAX_ROUNDS if args.rounds is None else args.rounds
    result = _run(tune(codec, evaluator, sweep, args.max_drop, settings, rounds), _show(args))
    save_settings(result.settings, args.output)
    code = 0 if result.fits else EXIT_NO_FIT
    acc = result.accuracy
    if args.json:
        _print_json({
            "output": str(args.output), "fits": result.fits, "note": result.note,
            "max_drop_points": result.max_drop_points, "accuracy": acc.to_json(),
            "file_nbytes": result.file_nbytes, "original_nbytes": result.original_nbytes,
            "ratio": result.ratio, "rounds": len(result.rounds),
            "layers": {n: {"value": f, "bits": b} for n, f, b in result.choices},
            "settings": result.settings.to_json(),
        })
        return code
    rows = report.rows_of_estimate(codec.estimate(result.settings))
    print(report.format_table(rows, report.totals(rows, result.file_nbytes)))
    print(f"top-1 {acc.top1:.2%} (baseline {acc.baseline_top1:.2%}, drop {acc.drop_points:.2f} "
          f"points, budget {result.max_drop_points:g}) on {acc.count:,} examples; "
          f"{result.file_nbytes:,} bytes, {result.ratio:.1f}x; {len(result.rounds)} check(s)")
    print(result.note)
    print(f"wrote {args.output}")
    if not result.fits:
        print(f"inspector: warning: {result.note}", file=sys.stderr)
    return code


def format_sweep(sweep: Any) -> str:
    """A sweep as text: per layer, top-1 (%) at each fraction pruned and at each bits."""
    lines = [f"baseline top-1 {sweep.baseline_top1:.2%} on {sweep.count:,} examples"]
    for la in sweep.layers:
        lines.append(f"{la.name} ({la.kind}, {la.size:,} weights)")
        lines.append("  pruned " + " ".join(f"{p.at:>6.0%}" for p in la.prune))
        lines.append("  top-1  " + " ".join(f"{p.top1:>6.1%}" for p in la.prune))
        lines.append("  bits   " + " ".join(f"{int(p.at):>6}" for p in la.bits))
        lines.append("  top-1  " + " ".join(f"{p.top1:>6.1%}" for p in la.bits))
    return "\n".join(lines)


def _open(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The starting settings, the codec of the runnable model's own tensors, its evaluator."""
    from inspector.model.settings import ModelSettings, load_settings
    from inspector.tasks.accuracy import open_evaluator
    from inspector.tasks.codec import ModelCodec

    settings = load_settings(args.config) if args.config else ModelSettings()
    evaluator = open_evaluator(
        args.model, args.data, allow_pickle=args.allow_pickle, allow_code=args.allow_code
    )
    return settings, ModelCodec(evaluator.reference), evaluator


def _show(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() and not args.json


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
