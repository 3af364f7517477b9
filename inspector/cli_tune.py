"""Command line: ``inspector sensitivity`` and ``inspector tune`` (accuracy-driven settings).

``sensitivity`` prunes and quantizes one layer at a time, measures the accuracy and saves the
sweep with the settings; ``tune`` picks per-layer sparsity and bits for the smallest file whose
measured drop stays within ``--max-drop`` points (or whose output cosine stays above
``--min-cosine``), reusing a sweep found in ``--config``. ``inspector.cli`` registers both with
:func:`add_parsers`.

What is measured: top-1 accuracy on labelled data (``--data`` with labels); without labels
(``--data`` with inputs only, or ``--synthetic N`` inputs made from the model's input shape)
the agreement with the original model: top-1 agreement for outputs with classes, else the
output cosine. ``--metric`` chooses; the sweep saved records which.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inspector.cli_output import print_json, run_with_bar

#: Exit code of ``tune`` when no setting it tried fits the budget (the file is still written).
EXIT_NO_FIT = 3
#: The commands this module adds.
COMMANDS = ("sensitivity", "tune")
# inspector.runtime.eval_inputs' DEFAULT_COUNT and DISTRIBUTIONS (a test checks), repeated so that
# building the parser does not import numpy.
SYNTHETIC_COUNT = 256
SYNTHETIC_DISTRIBUTIONS = ("normal", "uniform")


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
    budget = tune.add_mutually_exclusive_group(required=True)
    budget.add_argument("--max-drop", type=float, metavar="POINTS",
                        help="largest measured drop allowed, in percentage points of the metric "
                             "(top-1, agreement, or cosine x 100)")
    budget.add_argument("--min-cosine", type=float, metavar="C",
                        help="smallest output cosine with the original allowed (e.g. 0.99); "
                             "implies --metric cosine")
    tune.add_argument("--rounds", type=int, default=None, metavar="N",
                      help="most combined checks before falling back (default 12)")
    tune.add_argument("--methods", action="store_true",
                      help="search every registered method per layer (deep, uniform, int8, "
                           "pq, hashed, ...) for the cheapest recipe within the budget, not "
                           "only deep's sparsity and bits")
    tune.set_defaults(func=cmd_tune)


def add_input_options(p: argparse.ArgumentParser) -> None:
    """What the model runs on: ``--data`` or ``--synthetic`` inputs, and the metric."""
    from inspector.model.accuracy import METRICS

    given = p.add_mutually_exclusive_group()
    given.add_argument("--data", type=Path, metavar="EVAL",
                       help="inputs: .h5/.hdf5 or .npz with 'inputs' (and 'labels' for top-1 "
                            "accuracy), or a .npy array of inputs")
    given.add_argument("--synthetic", type=int, metavar="N",
                       help=f"run on N seeded random inputs made from the model's input shape "
                            f"(the default without --data, N={SYNTHETIC_COUNT})")
    p.add_argument("--input-shape", metavar="1x3xHxW",
                   help="input shape for synthetic inputs, batch first (needed for TorchScript; "
                        "overrides an ONNX model's, whose open dimensions default to 160)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic inputs")
    p.add_argument("--distribution", choices=SYNTHETIC_DISTRIBUTIONS, default="normal",
                   help="of the synthetic inputs: normal (0, 1) or uniform [0, 1)")
    p.add_argument("--metric", choices=METRICS,
                   help="what drops are measured in: top1 (needs labels), agreement (top-1 "
                        "agreement with the original) or cosine (of the outputs); default top1 "
                        "with labels, else agreement for outputs with classes, else cosine")


def open_evaluator_of(args: argparse.Namespace) -> Any:
    """The evaluator that the input options of ``args`` describe."""
    from inspector.runtime.eval_inputs import parse_shape
    from inspector.tasks.accuracy import open_evaluator

    if args.data is not None and args.input_shape is not None:
        from inspector.errors import InputError

        raise InputError("--input-shape is for synthetic inputs; --data has its own shape")
    shape = None if args.input_shape is None else parse_shape(args.input_shape)
    metric = "cosine" if getattr(args, "min_cosine", None) is not None else args.metric
    return open_evaluator(args.model, args.data, allow_pickle=args.allow_pickle,
                          allow_code=args.allow_code, synthetic=args.synthetic,
                          input_shape=shape, seed=args.seed, distribution=args.distribution,
                          metric=metric)


def agreement_line(acc: Any) -> str:
    """See :func:`inspector.tasks.accuracy.agreement_line`."""
    from inspector.tasks.accuracy import agreement_line

    return agreement_line(acc)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="TorchScript archive or ONNX model")
    add_input_options(p)
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
    from inspector.model.sensitivity import PRUNE_FRACTIONS, SWEEP_BITS
    from inspector.model.settings import save_settings
    from inspector.tasks.sensitivity import sensitivity

    settings, codec, evaluator = _open(args)
    sweep = run_with_bar(
        sensitivity(codec, evaluator, settings, args.layers,
                    args.fractions or PRUNE_FRACTIONS, args.bits or SWEEP_BITS),
        _show(args),
    )
    save_settings(settings.with_sensitivity(sweep), args.output)
    if args.json:
        print_json({"output": str(args.output), "sensitivity": sweep.to_json()})
        return 0
    print(format_sweep(sweep))
    print(f"wrote {args.output}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune per-layer settings (sweeping first unless ``--config`` holds a sweep) and save."""
    from inspector.model.accuracy import metric_name
    from inspector.model.settings import save_settings
    from inspector.tasks import report
    from inspector.tasks.sensitivity import sensitivity, sweep_matches
    from inspector.tasks.tune import MAX_ROUNDS, tune

    settings, codec, evaluator = _open(args)
    if getattr(args, "methods", False):
        from inspector.cli_tune_methods import run_methods_tune

        budget = args.max_drop if args.min_cosine is None else _cosine_budget(args.min_cosine)
        return run_methods_tune(args, settings, codec, evaluator, budget, _show(args))
    sweep = settings.sensitivity
    if sweep is not None and sweep.metric != evaluator.metric:
        print(f"inspector: note: the sweep in {args.config} measured {sweep.metric}, these "
              f"inputs measure {evaluator.metric}: sweeping again", file=sys.stderr)
        sweep = None
    if sweep is not None and not sweep_matches(codec, sweep, settings):
        print(f"inspector: note: the sweep in {args.config} was measured for other methods "
              "than the layers have now: sweeping again", file=sys.stderr)
        sweep = None
    if sweep is None:
        sweep = run_with_bar(sensitivity(codec, evaluator, settings), _show(args))
    rounds = MAX_ROUNDS if args.rounds is None else args.rounds
    budget = args.max_drop
    if args.min_cosine is not None:
        budget = _cosine_budget(args.min_cosine)
    result = run_with_bar(tune(codec, evaluator, sweep, budget, settings, rounds), _show(args))
    save_settings(result.settings, args.output)
    code = 0 if result.fits else EXIT_NO_FIT
    acc = result.accuracy
    if args.json:
        print_json({
            "output": str(args.output), "fits": result.fits, "note": result.note,
            "max_drop_points": result.max_drop_points, "accuracy": acc.to_json(),
            "file_nbytes": result.file_nbytes, "original_nbytes": result.original_nbytes,
            "ratio": result.ratio, "rounds": len(result.rounds),
            "layers": {n: {"value": f, "bits": b} if b else {_knob(result, n): f}
                       for n, f, b in result.choices},
            "settings": result.settings.to_json(),
        })
        return code
    rows = report.rows_of_estimate(codec.estimate(result.settings))
    print(report.format_table(rows, report.totals(rows, result.file_nbytes)))
    if acc.metric == "top1":
        measured = (f"top-1 {acc.top1:.2%} (baseline {acc.baseline_top1:.2%}, drop "
                    f"{acc.drop_points:.2f} points, budget {result.max_drop_points:g}) on "
                    f"{acc.count:,} examples")
    else:
        measured = (f"{metric_name(acc.metric)} {acc.score:.4g} (drop {acc.drop_points:.2f} "
                    f"points, budget {result.max_drop_points:g})")
    print(f"{measured}; {result.file_nbytes:,} bytes, {result.ratio:.1f}x; "
          f"{len(result.rounds)} check(s)")
    print(agreement_line(acc))
    print(result.note)
    print(f"wrote {args.output}")
    if not result.fits:
        print(f"inspector: warning: {result.note}", file=sys.stderr)
    return code


def format_sweep(sweep: Any) -> str:
    """A sweep as text: per layer, its metric (%) at each fraction pruned and at each bits."""
    from inspector.model.accuracy import metric_name

    short = {"top1": "top-1", "agreement": "agrees", "cosine": "cosine"}[sweep.metric]
    if sweep.metric == "top1":
        lines = [f"baseline top-1 {sweep.baseline_top1:.2%} on {sweep.count:,} examples"]
    else:
        lines = [f"measured: {metric_name(sweep.metric)} (the original: 100%) on "
                 f"{sweep.count:,} inputs"]
    for la in sweep.layers:
        lines.append(f"{la.name} ({la.kind}, {la.size:,} weights)")
        if la.knob:  # a uniform layer: swept along its knob
            lines.append(f"  {la.knob_name} " + " ".join(f"{p.at:>7.4g}" for p in la.knob))
            lines.append(f"  {short:<{len(la.knob_name)}} "
                         + " ".join(f"{p.top1:>7.1%}" for p in la.knob))
            continue
        lines.append("  pruned " + " ".join(f"{p.at:>6.0%}" for p in la.prune))
        lines.append(f"  {short:<6} " + " ".join(f"{p.top1:>6.1%}" for p in la.prune))
        lines.append("  bits   " + " ".join(f"{int(p.at):>6}" for p in la.bits))
        lines.append(f"  {short:<6} " + " ".join(f"{p.top1:>6.1%}" for p in la.bits))
    return "\n".join(lines)


def _knob(result: Any, name: str) -> str:
    """The knob a tuned knob layer's choice is a value of (from its sweep)."""
    sweep = result.settings.sensitivity
    layer = sweep.layer(name) if sweep is not None else None
    return layer.knob_name if layer is not None and layer.knob_name else "knob"


def _cosine_budget(min_cosine: float) -> float:
    """``--min-cosine C`` as a budget of points of cosine: 0.99 allows a drop of 1 point."""
    if not -1.0 <= min_cosine <= 1.0:
        from inspector.errors import SettingsError

        raise SettingsError(f"--min-cosine must be in [-1, 1], got {min_cosine:g}")
    return (1.0 - min_cosine) * 100.0


def _open(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The starting settings, the codec of the runnable model's own tensors, its evaluator."""
    from inspector.cli_guard import check_outputs
    from inspector.model.settings import ModelSettings, load_settings
    from inspector.tasks.codec import ModelCodec

    # before the sweep: an -o naming the model or the data would replace it with settings
    check_outputs({"the model": args.model, "the evaluation data": args.data}, args.output)
    settings = load_settings(args.config) if args.config else ModelSettings()
    evaluator = open_evaluator_of(args)
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
