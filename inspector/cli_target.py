"""``inspector compress --target-ratio R | --target-bytes N | --target-sqnr DB`` and
``--lambda L``: one model-wide knob (:mod:`inspector.tasks.target`) instead of per-layer
settings. Without ``--method`` (or a method in the settings file's defaults) a target uses
the best coder built (:data:`inspector.tasks.target.BEST_METHOD`), not the paper's recipe.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from inspector.errors import SettingsError

if TYPE_CHECKING:  # the CLI imports settings only when a command runs
    from inspector.model.settings import ModelSettings
    from inspector.tasks.codec import ModelCodec
    from inspector.tasks.target import TargetResult


def add_target_flags(parser: argparse.ArgumentParser) -> None:
    from inspector.cli_tune import add_input_options

    add_input_options(parser)  # what --target-max-drop measures on
    group = parser.add_argument_group("model-wide target (one rate knob for every layer)")
    one = group.add_mutually_exclusive_group()
    one.add_argument("--target-ratio", type=float, metavar="R",
                     help="a file R times smaller than the fp32 bytes of its tensors (within 1%%)")
    one.add_argument("--target-bytes", type=int, metavar="N", help="a file of at most N bytes")
    one.add_argument("--target-sqnr", type=float, metavar="DB",
                     help="the smallest file whose model-wide weight SQNR is at least DB")
    one.add_argument("--target-max-drop", type=float, metavar="POINTS",
                     help="the smallest file whose measured drop (top-1 with labels, else "
                          "agreement with the original; see --data, --synthetic, --metric) "
                          "is at most POINTS")
    group.add_argument("--lambda", dest="lambda_", type=float, metavar="L",
                       help="the rate-distortion lambda of every layer (uniform's lam)")
    group.add_argument("--allow-code", action="store_true",
                       help="with --target-max-drop: let a TorchScript MODEL's code run")
    group.add_argument("--allow-pickle", action="store_true",
                       help="with --target-max-drop: allow a whole pickled module")
    group.add_argument("--knob", metavar="OPTION",
                       help="the option a target solves (default: rel_step for uniform; "
                            "also step, lam)")


def target_of(args: argparse.Namespace) -> Any:
    """The :class:`~inspector.tasks.target.Target` the flags ask for, or None."""
    from inspector.tasks.target import Target

    for kind, value in (("ratio", args.target_ratio), ("bytes", args.target_bytes),
                        ("sqnr", args.target_sqnr)):
        if value is not None:
            return Target(kind, float(value))
    if args.target_max_drop is not None:
        if args.target_max_drop < 0:
            raise SettingsError(f"--target-max-drop must be >= 0, got {args.target_max_drop}")
        return Target("floor", -float(args.target_max_drop))  # measure: minus the drop
    return None


def apply_target(codec: ModelCodec, settings: ModelSettings, args: argparse.Namespace,
                 show: bool) -> tuple[ModelSettings, TargetResult | None]:
    """The settings the target flags make (solved when a target is given) and the result."""
    from inspector.cli_output import run_with_bar
    from inspector.tasks.target import solve, with_best_method

    target = target_of(args)
    if target is None and args.lambda_ is None:
        if args.knob:
            raise SettingsError("--knob needs a target (--target-ratio, --target-bytes or "
                                "--target-sqnr)")
        return settings, None
    settings = with_best_method(settings)
    if args.lambda_ is not None:
        if args.lambda_ < 0:
            raise SettingsError(f"--lambda must be >= 0, got {args.lambda_}")
        settings = settings.with_defaults(lam=args.lambda_)
    if target is None:
        return settings, None
    measure = None
    if target.kind == "floor":
        codec, measure = _drop_measure(args)
    result = run_with_bar(solve(codec, settings, target, args.knob, measure), show)
    return result.settings, result


def _drop_measure(args: argparse.Namespace) -> tuple[ModelCodec, Any]:
    """A codec of the runnable model's own tensors and minus the drop its settings cost."""
    from inspector.cli_tune import open_evaluator_of
    from inspector.tasks.codec import ModelCodec
    from inspector.tasks.drive import run_to_end

    evaluator = open_evaluator_of(args)
    codec = ModelCodec(evaluator.reference)
    return codec, lambda s: -run_to_end(evaluator.evaluate_settings(codec, s)).drop_points


def result_json(result: TargetResult) -> dict[str, Any]:
    return {"method": result.method, "knob": result.knob, "value": result.value,
            "lam": result.settings.defaults.get("lam"), "file_nbytes": result.file_nbytes,
            "fp32_nbytes": result.fp32_nbytes, "ratio": result.ratio,
            "sqnr_db": result.sqnr_db, "min_layer_sqnr_db": result.min_layer_sqnr_db,
            "met": result.met, "evaluations": result.evaluations,
            **({"drop_points": -result.measured} if result.measured is not None else {})}
