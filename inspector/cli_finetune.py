"""``inspector finetune``: retrain a runnable model for its compression settings, from the shell.

Deep layers: masked retraining after pruning, then trained quantization. Layers of another
registered method train by that method's rule (:mod:`inspector.tasks.finetune_methods`:
quantization-aware training through uniform / int-N / ternary / binary / fp16 with a
straight-through estimator, summed gradients into pq codebooks and hashed buckets). Writes the
fine-tuned model as TorchScript and the settings under which ``inspector compress`` gives
back the weights it was last evaluated with. Registered by ``inspector.cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from inspector.atomic import same_file
from inspector.cli_output import run_with_bar
from inspector.errors import InputError


def add_parser(sub: Any) -> None:
    """Add the ``finetune`` command to the ``add_subparsers()`` object ``sub``."""
    p = sub.add_parser(
        "finetune",
        help="retrain a runnable model for its compression settings (every method)",
        description=(
            "Deep layers: retrain with the pruning mask fixed, then train the shared centroids "
            "(trained quantization). uniform, int8/int4, ternary, binary, fp16/bf16 layers: "
            "quantization-aware training through the method's own quantizer (straight-through "
            "estimator); pq and hashed: the shared values train on their members' summed "
            "gradients. Writes the model as TorchScript and, with --save-config, the settings "
            "under which `inspector compress` gives back the trained weights (for a "
            "straight-through layer the written tensors are the latent weights the codec "
            "re-encodes to them)."
        ),
    )
    p.add_argument("model", type=Path, help="TorchScript archive (torch.jit.save)")
    p.add_argument("--train", type=Path, required=True, metavar="TRAIN.h5",
                   help="training data (.h5/.npz: inputs [N, ...], labels [N])")
    p.add_argument("--data", type=Path, metavar="EVAL.h5",
                   help="validation data: top-1 accuracy before, after and per epoch")
    p.add_argument("--config", type=Path, required=True, metavar="SETTINGS.json",
                   help="compression settings to train for")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.pt",
                   help="fine-tuned model (TorchScript)")
    p.add_argument("--save-config", type=Path, metavar="OUT.json",
                   help="settings that reproduce the fine-tuned weights when compressing")
    p.add_argument("--save-weights", type=Path, metavar="WEIGHTS.pt",
                   help="also write the weights as a state dict (.pt, .safetensors, .npz) "
                        "for `inspector compress`")
    p.add_argument("--prune-epochs", type=int, default=10, metavar="N",
                   help="epochs of retraining with the mask fixed (default 10)")
    p.add_argument("--quant-epochs", type=int, default=3, metavar="N",
                   help="epochs of centroid training (default 3)")
    p.add_argument("--lr", type=float, default=0.05, metavar="X",
                   help="learning rate of masked retraining, decayed along a cosine "
                        "(default 0.05)")
    p.add_argument("--quant-lr", type=float, default=1e-4, metavar="X",
                   help="learning rate of the centroids' SGD (default 1e-4)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="optimizer of masked retraining (default sgd, momentum 0.9)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N")
    p.add_argument("--weight-decay", type=float, default=0.0, metavar="X")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--prune-steps", type=int, default=1, metavar="N",
                   help="prune gradually in N steps on the retrained weights (default 1: the "
                        "compressor's mask, fixed from the start)")
    p.add_argument("--distill", type=float, default=0.0, metavar="W",
                   help="weight (0..1) of distillation from the original model's outputs")
    p.add_argument("--free-zeros", action="store_true",
                   help="straight-through layers: let the zeros of the first encoding move "
                        "(default: held at 0 as a mask)")
    p.add_argument("--freeze-others", action="store_true",
                   help="keep biases and uncompressed layers as they are")
    p.add_argument("--allow-pickle", action="store_true",
                   help="accept a whole module saved with torch.save(model) (runs its code)")
    p.add_argument("--allow-code", action="store_true",
                   help="allow loading a TorchScript archive, which runs the code it contains")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    """Run ``inspector finetune``; returns the exit code (errors raise InspectorError)."""
    from inspector.io import write_weights
    from inspector.model.settings import load_settings, save_settings
    from inspector.runtime.trainable import load_trainable, save_trainable
    from inspector.tasks.finetune import FineTuneRequest, finetune

    inputs = [p for p in (args.model, args.train, args.data, args.config) if p is not None]
    _check_outputs(args, inputs)
    settings = load_settings(args.config)
    train = _read_data(args.train)
    val = _read_data(args.data) if args.data else None
    trainable = load_trainable(
        args.model, allow_pickle=args.allow_pickle, allow_code=args.allow_code
    )
    request = FineTuneRequest(
        trainable.module, train[0], train[1], settings,
        val[0] if val else None, val[1] if val else None,
        prune_epochs=args.prune_epochs, quant_epochs=args.quant_epochs, prune_lr=args.lr,
        quant_lr=args.quant_lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
        batch_size=args.batch_size, seed=args.seed, train_others=not args.freeze_others,
        prune_steps=args.prune_steps, distill=args.distill, mask_zeros=not args.free_zeros,
    )
    start = time.perf_counter()
    result = run_with_bar(finetune(request), sys.stderr.isatty() and not args.json)
    seconds = time.perf_counter() - start
    example = None if trainable.scripted else _example(train[0])
    save_trainable(trainable.module, args.output, result.tensors, protect=inputs, example=example)
    if args.save_config:
        save_settings(result.settings, args.save_config)
    if args.save_weights:
        write_weights(args.save_weights, result.tensors, protect=args.model)
    if args.json:
        json.dump(_summary(args, result, seconds), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_format(args, result, seconds))
    return 0


def _check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse an output that would overwrite an input, or two outputs that collide, before
    training rather than after it."""
    outputs = [p for p in (args.output, args.save_config, args.save_weights) if p is not None]
    for i, out in enumerate(outputs):
        if any(same_file(out, src) for src in inputs):
            raise InputError("refusing to overwrite an input file", out)
        if any(same_file(out, other) for other in outputs[:i]):
            raise InputError("given as two different outputs", out)
        if not out.resolve().parent.is_dir():
            raise InputError("folder does not exist", out)
    if args.save_weights is not None:
        from inspector.io import writer_formats

        suffixes = sorted({e for spec in writer_formats() for e in spec.extensions})
        if args.save_weights.suffix.lower() not in suffixes:
            problem = f"cannot write this file type; use one of {', '.join(suffixes)}"
            raise InputError(problem, args.save_weights)


def _read_data(path: Path) -> tuple[Any, Any]:
    from inspector.runtime.eval_data import read_eval_data

    data = read_eval_data(path)
    return data.inputs, data.labels


def _example(inputs: Any) -> Any:
    """One input, to trace a pickled module that TorchScript cannot compile."""
    import torch

    return torch.from_numpy(inputs[:1].copy())


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _format(args: argparse.Namespace, result: Any, seconds: float) -> str:
    lines = [f"{'stage':<10} {'epoch':>5} {'loss':>8} {'top-1':>8}"]
    for row in result.history:
        loss = "-" if row.loss != row.loss else f"{row.loss:.4f}"  # nan: the stage's start
        lines.append(f"{row.stage:<10} {row.epoch:>5} {loss:>8} {_pct(row.top1):>8}")
    if result.baseline_top1 is not None:
        lines.append(
            f"top-1: original {_pct(result.baseline_top1)}, compressed without retraining "
            f"{_pct(result.compressed_top1)}, fine-tuned {_pct(result.top1)}"
        )
    lines.append(
        f"{len(result.compressed)} layers trained for their compression in {seconds:.1f} s; "
        f"recompressing reproduces them within {result.reproduction_error:.3g}"
    )
    lines.append(f"wrote {args.output}")
    lines += [f"wrote {p}" for p in (args.save_config, args.save_weights) if p is not None]
    return "\n".join(lines)


def _summary(args: argparse.Namespace, result: Any, seconds: float) -> dict[str, Any]:
    return {
        "model": str(args.model),
        "output": str(args.output),
        "save_config": None if args.save_config is None else str(args.save_config),
        "save_weights": None if args.save_weights is None else str(args.save_weights),
        "seconds": seconds,
        "compressed": list(result.compressed),
        "baseline_top1": result.baseline_top1,
        "compressed_top1": result.compressed_top1,
        "top1": result.top1,
        "reproduction_error": result.reproduction_error,
        "settings": result.settings.to_json(),
        "history": [
            {"stage": r.stage, "epoch": r.epoch,
             "loss": None if r.loss != r.loss else r.loss, "top1": r.top1}
            for r in result.history
        ],
    }
