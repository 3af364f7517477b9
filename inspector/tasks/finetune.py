"""Deep Compression's retraining: masked retraining after pruning, then trained quantization.

Stage 1 (``"pruned"``) keeps the mask the compressor would use under the user's settings and
retrains the network with it fixed: gradients of pruned weights are zeroed before, and the mask
re-applied after, every optimizer step, so pruned weights stay exactly 0.

Stage 2 (``"quantized"``) re-plans every compressed layer on the retrained weights (the same
codec as the compressor, keeping exactly the nonzero weights), which gives a codebook and each
survivor's centroid. The weight is then ``codebook[assignment] * mask``: autograd through that
expression gives centroid k the **sum** of its members' gradients (the paper's rule; the mean is
a known bug of earlier ports), and the centroids are updated by SGD.

Biases and layers stored losslessly train normally with the compressed layers, or stay frozen
(``train_others=False``). The result's settings make ``inspector compress`` reproduce the
trained tensors: every layer keeps exactly its nonzero weights (threshold 0) and has at most K
distinct values, which exact k-means (``init="optimal"``) finds again as its codebook. Above
4096 survivors the codec clusters a fine histogram, where two centroids closer than one bin
would merge; the last step snaps centroids to the decoded values so the match is exact.

Layers of every other registered method train by that method's rule alongside, in both
stages (:mod:`inspector.tasks.finetune_methods`: straight-through quantization-aware training
for uniform, int-N, ternary, binary and fp16/bf16; summed gradients into pq's codebook and
hashed's buckets; float training and re-encoding for a method without a rule). Their settings
come back unchanged, and a straight-through layer's returned tensor is its latent weights,
which ``compress`` re-encodes to exactly the weights the last evaluation used.

Options beyond the paper, off by default: gradual pruning (``prune_steps``) and distillation
from the original model (``distill``), both of which help when the training set is small.

This module holds the result and the run loop with its two stages: what happens in which
order. What each step does to the tensors lives in :mod:`inspector.tasks.finetune_steps` (house
rule: split past ~400 lines), the request, its argument checks and the run's state that both
need in :mod:`inspector.tasks.finetune_state`; their public names are re-exported here, so
callers keep importing everything from ``inspector.tasks.finetune``.

torch is imported inside the functions only (house rule: nothing in tasks imports it at start-up).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspector.errors import InputError, SettingsError
from inspector.io.model_file import LoadedModel
from inspector.io.module_state import assign_state
from inspector.model.settings import ModelSettings
from inspector.runtime.trainable import clone_module, state_arrays
from inspector.tasks.codec import ModelCodec, Progress
from inspector.tasks.finetune_methods import (
    final_tensors,
    method_layers,
    share,
    trained_params,
    write_decoded,
)

# The request and the run's state, shared with finetune_steps; re-exported (callers import
# them here).
from inspector.tasks.finetune_state import EpochStats as EpochStats
from inspector.tasks.finetune_state import FineTuneRequest as FineTuneRequest
from inspector.tasks.finetune_state import Stage, _Run

# What the loop calls; ``x as x`` re-exports the public names that moved (callers import them here).
from inspector.tasks.finetune_steps import EVAL_BATCH as EVAL_BATCH
from inspector.tasks.finetune_steps import (
    _apply_masks,
    _centroid_step,
    _cosine,
    _logits,
    _masked_layers,
    _masked_step,
    _others,
    _quantize_layers,
    _snap,
    _stage1_optimizer,
    _stage2_optimizer,
    _tighten,
    _top1,
    _val_tensors,
    _write_quantized,
)
from inspector.tasks.finetune_steps import centroid_grad as centroid_grad
from inspector.tasks.finetune_steps import keep_mask as keep_mask
from inspector.tasks.finetune_steps import prune_schedule as prune_schedule

# Prunes |w| <= 0: keeps exactly the nonzero weights, i.e. the mask fixed by stage 1.
KEEP_NONZERO: dict[str, Any] = {"policy": "threshold", "value": 0.0}


@dataclass(frozen=True, slots=True)
class FineTuned:
    """The result of a fine-tuning run.

    Attributes
    ----------
    tensors : dict of str to ndarray
        Every tensor of the trained module's state dict.
    settings : ModelSettings
        Settings under which ``compress`` reproduces ``tensors`` (deep layers: threshold 0,
        optimal k-means; everything else as requested).
    compressed : tuple of str
        The layers that were pruned and quantized.
    history : tuple of EpochStats
        Per-epoch loss and validation accuracy of both stages.
    baseline_top1, compressed_top1 : float or None
        Validation top-1 of the original model, and of the requested settings applied to it
        without retraining (None without validation data).
    reproduction_error : float
        Largest ``|decode(compress(tensors, settings)) - w|`` over the compressed layers, ``w``
        the weights the last evaluation used (0.0 when the file gives them back exactly).
    """

    tensors: dict[str, np.ndarray]
    settings: ModelSettings
    compressed: tuple[str, ...]
    history: tuple[EpochStats, ...]
    baseline_top1: float | None
    compressed_top1: float | None
    reproduction_error: float

    @property
    def top1(self) -> float | None:
        """Validation top-1 of the final (quantized) weights."""
        return self.history[-1].top1 if self.history else None


def finetune(request: FineTuneRequest) -> Generator[Progress, None, FineTuned]:
    """Masked retraining, then trained quantization; yields progress per minibatch.

    Closing the generator stops the run: the request's module is never modified and nothing
    is written. Deterministic for a given seed and thread count.

    Raises
    ------
    InputError
        The model cannot run on the data, or its outputs are not ``[N, classes]`` logits.
    SettingsError
        Settings that cannot compress a layer (e.g. non-finite weights).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(request.threads)
    try:
        return (yield from _run(request))
    finally:
        torch.set_num_threads(threads)


def _record(run: _Run, stage: Stage, epoch: int, losses: list[float]) -> None:
    """Append an epoch's mean loss and validation top-1 to the run's history."""
    loss = float(np.mean(losses)) if losses else math.nan
    write_decoded(run.methods, run.req.settings)  # evaluate what the file will decode
    run.history.append(EpochStats(stage, epoch, loss, _top1(run.module, run.val)))


def _run(req: FineTuneRequest) -> Generator[Progress, None, FineTuned]:
    import torch

    torch.manual_seed(req.seed)
    module = clone_module(req.module)
    x = torch.from_numpy(np.ascontiguousarray(req.train_inputs, np.float32))
    y = torch.from_numpy(np.ascontiguousarray(req.train_labels, np.int64))
    _check_outputs(module, x, y)
    nbatches = math.ceil(len(y) / req.batch_size)
    run = _Run(
        req, module, x, y, _logits(module, x) if req.distill else None, _val_tensors(req),
        np.random.default_rng(req.seed), nbatches,
        (req.prune_epochs + req.quant_epochs) * nbatches,
    )
    original = state_arrays(module)
    codec = ModelCodec(LoadedModel.build("<fine-tuning>", "torch", original, learned=original))
    names = _compressed_names(codec.model, req.settings)
    deep = [n for n in names if _method(codec.model, req.settings, n) == "deep"]
    others = [n for n in names if n not in deep]
    run.layers = _masked_layers(module, codec, deep, req.settings)
    baseline = _top1(module, run.val)
    assign_state(module, {n: codec.quantized(n, req.settings) for n in names})
    compressed_top1 = _top1(module, run.val)
    assign_state(module, original)
    run.methods = method_layers(module, codec.model, others, req.settings, req.mask_zeros)
    run.trained = _others(module, names, req.train_others)
    if not names and not run.trained:
        raise SettingsError("nothing to train: no layer is compressed and the others are frozen")

    yield from _prune_stage(run)
    settings = _with_layers(req.settings, deep, **KEEP_NONZERO, init="optimal")
    yield from _quant_stage(run, _with_layers(req.settings, deep, **KEEP_NONZERO), settings)
    yield Progress(run.total, run.total, "checking the compressed weights")
    write_decoded(run.methods, req.settings)
    forward = state_arrays(module)  # the weights the last evaluation used
    tensors = final_tensors(run.methods, forward)
    return FineTuned(
        tensors=tensors,
        settings=settings,
        compressed=tuple(names),
        history=tuple(run.history),
        baseline_top1=baseline,
        compressed_top1=compressed_top1,
        reproduction_error=reproduction_error(tensors, settings, names, forward),
    )


def _method(model: LoadedModel, settings: ModelSettings, name: str) -> str:
    return settings.resolve(name, model.info(name).kind).method


def _prune_stage(run: _Run) -> Generator[Progress, None, None]:
    """Masked retraining: pruned weights stay exactly 0 after every step."""
    req = run.req
    schedule = prune_schedule(req.prune_epochs, req.prune_steps)
    final_pruned = [int(la.keep.numel() - la.keep.sum()) for la in run.layers]
    if len(schedule) > 1:
        _tighten(run.layers, final_pruned, schedule[0])
    else:
        _apply_masks(run.layers)  # the compressor's mask on the original weights
    _record(run, "pruned", 0, [])
    opt = _stage1_optimizer(
        req, [la.tensor for la in run.layers] + trained_params(run.methods) + run.trained
    )
    decay = _cosine(opt, req.prune_epochs * run.nbatches) if req.cosine else None
    for epoch in range(1, req.prune_epochs + 1):
        if epoch > 1 and epoch - 1 in schedule:
            _tighten(run.layers, final_pruned, schedule[epoch - 1])
        label = f"retraining pruned weights, epoch {epoch}/{req.prune_epochs}"
        losses = []
        for i, batch in run.batches():
            yield Progress((epoch - 1) * run.nbatches + i, run.total, label)
            losses.append(_masked_step(run, opt, batch))
            if decay is not None:
                decay.step()
        _record(run, "pruned", epoch, losses)


def _quant_stage(
    run: _Run, replan: ModelSettings, final: ModelSettings
) -> Generator[Progress, None, None]:
    """Trained quantization: fixed assignments, centroids updated by SGD on summed gradients."""
    req = run.req
    _quantize_layers(run.module, run.layers, replan)
    share(run.methods, state_arrays(run.module), req.settings)
    # after the codebooks and shared tables exist
    opt = _stage2_optimizer(req, run.layers, run.trained + trained_params(run.methods))
    if req.quant_epochs == 0:
        _snap(run.module, run.layers, final)
    _record(run, "quantized", 0, [])
    done = req.prune_epochs * run.nbatches
    for epoch in range(1, req.quant_epochs + 1):
        label = f"training centroids, epoch {epoch}/{req.quant_epochs}"
        losses = []
        for i, batch in run.batches():
            yield Progress(done + (epoch - 1) * run.nbatches + i, run.total, label)
            losses.append(_centroid_step(run, opt, batch))
        _write_quantized(run.layers)
        if epoch == req.quant_epochs:
            _snap(run.module, run.layers, final)
        _record(run, "quantized", epoch, losses)


def reproduction_error(
    tensors: dict[str, np.ndarray], settings: ModelSettings, names: list[str] | tuple[str, ...],
    targets: dict[str, np.ndarray] | None = None,
) -> float:
    """Largest ``|decode(compress(tensors)) - targets|`` over the layers ``names`` (``targets``
    default to ``tensors``; a straight-through layer's target is its trained forward weights,
    its tensor the latent weights the codec re-encodes to them)."""
    targets = tensors if targets is None else targets
    codec = ModelCodec(LoadedModel.build("<fine-tuned>", "torch", tensors, learned=tensors))
    err = 0.0
    for name in names:
        decoded = codec.quantized(name, settings).astype(np.float64)
        err = max(err, float(np.max(np.abs(decoded - targets[name]), initial=0.0)))
    return err


def _compressed_names(model: LoadedModel, settings: ModelSettings) -> list[str]:
    """Tensors the settings prune and quantize (``resolve`` marks every other kind excluded)."""
    names = [i.name for i in model.infos if not settings.resolve(i.name, i.kind).excluded]
    for name in names:
        if model.tensors[name].dtype.kind != "f":
            raise SettingsError(f"layer {name}: only floating-point tensors can be fine-tuned")
    return names


def _with_layers(settings: ModelSettings, names: list[str], **changes: Any) -> ModelSettings:
    for name in names:
        settings = settings.with_layer(name, **changes)
    return settings


def _check_outputs(module: Any, x: Any, y: Any) -> None:
    """The model must map a batch of inputs to ``[batch, classes]`` logits covering the labels."""
    import torch

    module.eval()
    try:
        with torch.no_grad():
            out = module(x[:2])
    except Exception as exc:  # TorchScript raises RuntimeError with a long trace
        text = " ".join(str(exc).split())[:160]
        raise InputError(f"the model cannot run on the training inputs ({text})") from None
    finally:
        module.train()
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != min(2, len(x)):
        raise InputError("the model's output is not a [batch, classes] tensor of logits")
    if int(y.max()) >= out.shape[1]:
        raise InputError(f"label {int(y.max())} is out of range for {out.shape[1]} classes")
