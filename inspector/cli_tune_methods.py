"""``inspector tune --methods``: per layer, the cheapest recipe of any method in the budget.

Its own module so that ``cli_tune`` stays small; it imports nothing of ``cli_tune`` (which
calls it), so the two do not import each other.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from inspector.cli_output import print_json, run_with_bar

#: Exit code when no recipe tried fits the budget (as ``inspector tune``'s).
EXIT_NO_FIT = 3


def run_methods_tune(
    args: argparse.Namespace, settings: Any, codec: Any, evaluator: Any, budget: float,
    show: bool,
) -> int:
    """Tune across methods, save the settings to ``args.output``, print what was found."""
    from inspector.model.settings import save_settings
    from inspector.tasks import report
    from inspector.tasks.accuracy import agreement_line
    from inspector.tasks.tune import MAX_ROUNDS
    from inspector.tasks.tune_methods import tune_methods

    rounds = MAX_ROUNDS if args.rounds is None else args.rounds
    result = run_with_bar(tune_methods(codec, evaluator, budget, settings,
                                       max_rounds=rounds), show)
    save_settings(result.settings, args.output)
    code = 0 if result.fits else EXIT_NO_FIT
    acc = result.accuracy
    if args.json:
        print_json({
            "output": str(args.output), "fits": result.fits, "note": result.note,
            "max_drop_points": result.max_drop_points, "accuracy": acc.to_json(),
            "file_nbytes": result.file_nbytes, "original_nbytes": result.original_nbytes,
            "ratio": result.ratio, "rounds": result.checks,
            "layers": {n: {"method": r.method, "recipe": r.label, **r.options}
                       for n, r in result.recipes},
            "settings": result.settings.to_json(),
        })
        return code
    rows = report.rows_of_estimate(codec.estimate(result.settings))
    print(report.format_table(rows, report.totals(rows, result.file_nbytes)))
    for name, recipe in result.recipes:
        print(f"{name}: {recipe.label}")
    print(f"drop {acc.drop_points:.2f} points (budget {result.max_drop_points:g}) on "
          f"{acc.inputs}; {result.file_nbytes:,} bytes, {result.ratio:.1f}x; "
          f"{result.checks} check(s)")
    print(agreement_line(acc))
    print(result.note)
    print(f"wrote {args.output}")
    if not result.fits:
        print(f"inspector: warning: {result.note}", file=sys.stderr)
    return code
