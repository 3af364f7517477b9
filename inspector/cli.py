"""Command line: ``inspector info|compress|decompress|eval``; the app calls the same tasks.

Errors are one line on stderr and exit code 2 (bad input or settings, or an output that cannot
be written); never a traceback. Warnings libraries print are not shown: they would break that
promise. SIGTERM stops a command as Ctrl-C does, removing its temporary files (exit code 143).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from inspector import __version__, cli_finetune, cli_tune
from inspector.cli_flags import UNSET, apply_flags, flag_sources, floor_arg
from inspector.cli_guard import (
    EXIT_TERMINATED,
    Terminated,
    check_outputs,
    quiet_libraries,
    terminate_as_interrupt,
)
from inspector.cli_method import add_method_flags
from inspector.cli_output import print_json, run_with_bar
from inspector.cli_target import add_target_flags, apply_target, result_json
from inspector.errors import InspectorError

EXIT_BAD_INPUT = 2
COMMANDS = ("info", "compress", "decompress", "eval", "gui", "finetune", *cli_tune.COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inspector`` console script."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and not argv[0].startswith("-")):
        argv = ["gui", *argv]  # `inspector` and `inspector MODEL` open the app
    args = parser.parse_args(argv)
    try:
        # The app's event loop runs no Python signal handler: SIGTERM keeps its default there.
        terminating = terminate_as_interrupt() if args.func is not _cmd_gui else nullcontext()
        with terminating, quiet_libraries(args.func is not _cmd_gui):
            return int(args.func(args) or 0)
    except InspectorError as exc:
        print(f"inspector: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Terminated:
        print("inspector: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("inspector: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the environment, not a bug: a full disk, a vanished folder
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"inspector: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RecursionError:
        print("inspector: error: input nests too deeply to be read", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug: still one line for the user, never a traceback
        print(f"inspector: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inspector",
        description="Deep Compression of trained networks: prune, quantize, Huffman-code.",
    )
    p.add_argument("--version", action="version", version=f"inspector {__version__}")
    sub = p.add_subparsers(title="commands")

    info = sub.add_parser("info", help="list a model's layers, or a compressed file's table")
    info.add_argument("model", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)

    comp = sub.add_parser("compress", help="compress a model into a .dcz file")
    comp.add_argument("model", type=Path)
    comp.add_argument("-o", "--output", type=Path, help="the .dcz to write (not with --explain)")
    prune = comp.add_mutually_exclusive_group()
    prune.add_argument("--sparsity", type=float, metavar="F", help="prune this fraction")
    prune.add_argument("--std-q", type=float, metavar="Q", help="prune |w| <= Q x std")
    prune.add_argument("--threshold", type=float, metavar="T", help="prune |w| <= T")
    comp.add_argument("--bits", type=int, metavar="N", help="cluster bits, all layers")
    comp.add_argument("--conv-bits", type=int, metavar="N", help="cluster bits of conv layers")
    comp.add_argument("--fc-bits", type=int, metavar="N", help="cluster bits of fc layers")
    comp.add_argument("--index-bits", type=int, metavar="N", help="relative-index bits")
    comp.add_argument("--init", choices=("optimal", "linear", "density", "random"))
    comp.add_argument("--no-huffman", action="store_true", help="fixed-width codes only")
    comp.add_argument("--min-sqnr", type=floor_arg, default=UNSET, metavar="DB|off",
                      help="fidelity floor: prune each layer less until its SQNR is at least "
                           "DB (default: the safe floor, unless pruning is set); off: none")
    comp.add_argument("--explain", metavar="LAYER",
                      help="print LAYER's settings and where each came from; write nothing")
    comp.add_argument("--store", choices=("native", "fp16", "bf16"),
                      help="precision of float layers stored losslessly (biases, norms)")
    comp.add_argument("--config", type=Path, metavar="SETTINGS.json")
    comp.add_argument("--save-config", type=Path, metavar="SETTINGS.json",
                      help="also write the settings used")
    comp.add_argument("--json", action="store_true", help="print JSON")
    add_target_flags(comp)
    add_method_flags(comp, {a.dest for a in comp._actions})
    comp.set_defaults(func=_cmd_compress)

    gui = sub.add_parser("gui", help="open the desktop app (the default with no command)")
    gui.add_argument("model", nargs="?", help="model to open")
    gui.add_argument("--config", metavar="SETTINGS.json", help="settings to start from")
    gui.add_argument("--data", metavar="EVAL",
                     help="evaluation file (.h5/.npz) to measure accuracy on (runnable models)")
    gui.add_argument("--screenshot", metavar="OUT.png",
                     help="render the window offscreen after loading, save it and exit")
    gui.add_argument("--select", metavar="LAYER", help="layer to show (with --screenshot)")
    gui.add_argument("--allow-code", action="store_true",
                     help="let MODEL's code run (TorchScript) to measure it, without asking")
    gui.add_argument("--input-shape", metavar="1x1x28x28",
                     help="MODEL's input, batch first, for synthetic inputs without --data "
                          "(TorchScript records none; in the app: Tune > Input Shape)")
    gui.add_argument("--target-ratio", type=float, metavar="R",
                     help="once loaded, solve the model-wide target ratio R (as the target "
                          "control's Solve does)")
    gui.set_defaults(func=_cmd_gui)

    dec = sub.add_parser(
        "decompress",
        help="decode a .dcz file to .pt, .safetensors or .npz, or into a copy of the model",
    )
    dec.add_argument("compressed", type=Path)
    dec.add_argument("-o", "--output", type=Path, required=True)
    dec.add_argument("--into", type=Path, metavar="MODEL",
                     help="write the weights into a copy of this model in its own format "
                          "(ONNX, Keras .keras/.h5, TorchScript): OUTPUT runs where MODEL ran")
    dec.add_argument("--allow-code", action="store_true",
                     help="allow loading a TorchScript MODEL, which runs the code it contains")
    dec.set_defaults(func=_cmd_decompress)

    ev = sub.add_parser(
        "eval", help="measure a runnable model's accuracy on labelled data, or its agreement "
                     "with the original on inputs alone (a file or synthetic inputs)")
    ev.add_argument("model", type=Path, help="TorchScript archive or ONNX model")
    weights = ev.add_mutually_exclusive_group()
    weights.add_argument("--compressed", type=Path, metavar="FILE.dcz",
                         help="run with the weights decoded from this compressed file")
    weights.add_argument("--config", type=Path, metavar="SETTINGS.json",
                         help="run with the weights these settings would decode to")
    cli_tune.add_input_options(ev)
    ev.add_argument("--allow-pickle", action="store_true",
                    help="allow a whole module saved with torch.save (runs code from the file)")
    ev.add_argument("--allow-code", action="store_true",
                    help="allow loading a TorchScript archive, which runs the code it contains")
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.set_defaults(func=_cmd_eval)
    cli_tune.add_parsers(sub)
    cli_finetune.add_parser(sub)
    return p


def _cmd_info(args: argparse.Namespace) -> int:
    from inspector.format import container

    if _is_container(args.model):
        from inspector.tasks import report

        box = container.open_container(args.model)
        rows = _decode_errors(args.model, lambda: report.rows_of_container(box))
        return _print_table(rows, box.nbytes, args.json, box.metadata)
    from inspector.io import read_model

    model = read_model(args.model)
    layers = [
        {"name": i.name, "kind": i.kind, "reason": i.reason, "shape": list(i.shape),
         "dtype": i.dtype, "params": i.size, "bytes": i.nbytes}
        for i in model.infos
    ]
    if args.json:
        print_json({"path": str(args.model), "format": model.format, "layers": layers,
                    "params": model.param_count, "bytes": model.nbytes})
        return 0
    print(f"{args.model} ({model.format}): {len(layers)} tensors, "
          f"{model.param_count:,} parameters, {model.nbytes:,} bytes")
    shapes = ["x".join(map(str, la["shape"])) or "scalar" for la in layers]
    # Full names, however long: two tensors cut to the same prefix would print alike.
    nw = max([4, *(len(la["name"]) for la in layers)])
    sw = max([5, *map(len, shapes)])
    print(f"{'name':<{nw}} {'kind':<9} {'shape':<{sw}} {'dtype':<9} {'params':>12} {'bytes':>12}"
          "  why")
    for la, shape in zip(layers, shapes, strict=True):
        print(f"{la['name']:<{nw}} {la['kind']:<9} {shape:<{sw}} {la['dtype']:<9} "
              f"{la['params']:>12,} {la['bytes']:>12,}  {la['reason']}")
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    from inspector.io import read_model
    from inspector.model.settings import ModelSettings, load_settings, save_settings
    from inspector.tasks import report
    from inspector.tasks.codec import ModelCodec, compress

    check_outputs({"the input model": args.model}, args.output, args.save_config)
    settings = load_settings(args.config) if args.config else ModelSettings()
    flagged = flag_sources(settings, args)
    settings = apply_flags(settings, args)
    model = read_model(args.model)
    codec = ModelCodec(model)
    if args.explain is not None:
        from inspector.cli_explain import explain

        print(explain(codec, settings, args.explain, flagged, args.config))
        return 0
    if args.output is None:
        raise InspectorError("compress needs -o OUTPUT.dcz (or --explain LAYER)", args.model)
    show = sys.stderr.isatty() and not args.json
    settings, solved = apply_target(codec, settings, args, show)
    estimate, nbytes = run_with_bar(compress(codec, settings, args.output), show)
    if args.save_config:
        save_settings(settings, args.save_config)
    rows = report.rows_of_estimate(estimate, recipes=True)
    if args.json:
        total = report.totals(rows, nbytes)
        print_json({
            "input": str(args.model), "output": str(args.output),
            "original_nbytes": estimate.original_nbytes, "file_nbytes": nbytes,
            "estimated_nbytes": estimate.file_nbytes, "container_nbytes": estimate.container_nbytes,
            "ratio": total["ratio"], "totals": total, "settings": settings.to_json(),
            "layers": [r.to_json() for r in rows],
            **({"target": result_json(solved)} if solved is not None else {}),
        })
        return 0
    print(report.format_table(rows, report.totals(rows, nbytes)))
    if solved is not None:
        print(f"target: {solved.describe()}")
    print(f"wrote {args.output}")
    return 0


def _cmd_gui(args: argparse.Namespace) -> int:
    from inspector.errors import InputError
    from inspector.gui.app import run
    from inspector.runtime.eval_inputs import parse_shape

    shape = None if args.input_shape is None else parse_shape(args.input_shape)
    if shape is not None and args.model is None:
        raise InputError("--input-shape is MODEL's: give the model too")
    return run(args.model, args.config, args.screenshot, args.select, args.data, args.allow_code,
               shape, args.target_ratio)


def _cmd_decompress(args: argparse.Namespace) -> int:
    from inspector.format import container
    from inspector.tasks.export import decompress_file

    check_outputs({"the compressed file": args.compressed, "the source model": args.into},
                   args.output)
    box = container.open_container(args.compressed)
    if args.into is not None:
        tensors = {r.name: box.read_layer(i) for i, r in enumerate(box.records)}
        return _write_into(args, tensors)
    _needs_into(args.output)
    # The app's Export of the .dcz opened as a model: same dtypes, metadata and check.
    result = run_with_bar(decompress_file(args.compressed, args.output), show=False)
    if not result.verified:
        sys.stderr.write(f"{args.output}: not verified: {'; '.join(result.mismatches)}\n")
        return 1
    print(f"wrote {args.output}: {len(box.records)} tensors")
    return 0


def _needs_into(output: Path) -> None:
    """Refuse, with the fix, a model format that only a write-back can produce."""
    from inspector.errors import InputError
    from inspector.io import reader_formats, rewriter_formats, writer_formats

    suffix = output.suffix.lower()
    if any(suffix in w.extensions for w in writer_formats()):
        return
    rewritable = [r for r in reader_formats() if r.name in rewriter_formats()]
    if any(suffix in r.extensions for r in rewritable):
        problem = (f"a {suffix} file is a copy of a model: name the original with "
                   f"--into MODEL{suffix}")
        raise InputError(problem, output)


def _write_into(args: argparse.Namespace, tensors: dict[str, Any]) -> int:
    from inspector.atomic import same_file
    from inspector.errors import InputError
    from inspector.io import read_model, write_back
    from inspector.tasks.export import verify_rewritten

    if same_file(args.output, args.compressed):
        raise InputError("refusing to overwrite the compressed file", args.output)
    model = read_model(args.into)
    write_back(args.into, args.output, tensors, model, allow_code=args.allow_code)
    mismatches = run_with_bar(verify_rewritten(args.output, model, tensors), show=False)
    kept = len(model.tensors) - len(set(tensors) & set(model.tensors))
    note = f", {kept} kept from {args.into.name}" if kept else ""
    print(f"wrote {args.output}: {model.format} copy of {args.into.name}, "
          f"{len(tensors)} tensors replaced{note}")
    for line in mismatches:
        print(f"inspector: warning: {line}", file=sys.stderr)
    return 1 if mismatches else 0


def _cmd_eval(args: argparse.Namespace) -> int:

    evaluator = cli_tune.open_evaluator_of(args)
    show = sys.stderr.isatty() and not args.json
    if args.compressed:
        from inspector.format import container

        box = container.open_container(args.compressed)
        tensors = {r.name: box.read_layer(i) for i, r in enumerate(box.records)}
        evaluator.baseline  # noqa: B018 - the original's outputs first, then the compressed
        accuracy = evaluator.evaluate(tensors)
        weights = "compressed"
    elif args.config:
        from inspector.model.settings import load_settings
        from inspector.tasks.codec import ModelCodec

        settings = load_settings(args.config)
        codec = ModelCodec(evaluator.reference)
        accuracy = run_with_bar(evaluator.evaluate_settings(codec, settings), show)
        weights = "config"
    else:
        accuracy, weights = evaluator.baseline, "original"
    assert accuracy is not None  # evaluate() returns None only when asked to stop
    source = args.compressed or args.config
    if args.json:
        print_json({"model": str(args.model),
                    "data": None if args.data is None else str(args.data),
                    "synthetic": args.data is None, "weights": weights,
                    "weights_from": None if source is None else str(source),
                    **accuracy.to_json()})
        return 0
    print(f"{args.model}, {weights} weights" + (f" ({source})" if source is not None else ""))
    if accuracy.labelled:
        print(f"top-1            {accuracy.top1:8.2%}")
        print(f"baseline top-1   {accuracy.baseline_top1:8.2%}")
    if accuracy.metric == "top1":
        print(f"drop             {accuracy.drop_points:8.2f} points")
    print(cli_tune.agreement_line(accuracy))
    print(f"examples         {accuracy.count:8,}")
    return 0


def _is_container(path: Path) -> bool:
    from inspector.format import container

    try:
        with open(path, "rb") as f:
            return container.sniff(f.read(8))
    except OSError:
        return False


def _decode_errors(path: Path, func: Any) -> Any:
    try:
        return func()
    except ValueError as exc:
        raise InspectorError(f"cannot decode: {exc}", path) from exc


def _print_table(
    rows: list[Any], nbytes: int, as_json: bool, metadata: dict[str, str] | None = None
) -> int:
    """The per-layer table and totals; ``metadata``: a compressed file's source metadata,
    listed after them (a line per key, the value JSON-quoted so it stays on one line)."""
    from inspector.tasks import report

    total = report.totals(rows, nbytes)
    if as_json:
        doc = {"totals": total, "layers": [r.to_json() for r in rows]}
        print_json(doc if metadata is None else {**doc, "metadata": metadata})
        return 0
    print(report.format_table(rows, total))
    if metadata:
        print(f"source metadata ({len(metadata)} {'key' if len(metadata) == 1 else 'keys'}):")
        for key, value in metadata.items():
            print(f"  {json.dumps(key)}: {json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
