"""The torch mechanics of one fine-tuning step, behind :mod:`inspector.tasks.finetune`.

That module holds the request, the result and the run loop (what happens in which order);
this one holds what each step does to the tensors: the fixed masks and the pruning schedule,
which parameters train and the two stages' optimizers, stage 1's learning-rate decay, loss and
masked step, stage 2's re-planned codebooks, centroid gradients, centroid step and final snap,
and the validation top-1. Split off so each
module stays readable on its own (house rule: split past ~400 lines), and so the numerics can
be tested without reading the loop.

The run loop imports this module; the types both need (``FineTuneRequest``, ``_Run``,
``_Layer``) live in :mod:`inspector.tasks.finetune_state`, so neither imports the other's.
torch is imported inside the functions only (house rule: nothing in tasks imports it at
start-up).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from inspector.core import kernels
from inspector.core.layer import LayerCodec
from inspector.core.prune import Mask
from inspector.core.settings import LayerSettings
from inspector.errors import SettingsError
from inspector.io.model_file import LoadedModel
from inspector.io.module_state import named_tensors
from inspector.model.settings import ModelSettings
from inspector.runtime.trainable import state_arrays
from inspector.tasks.codec import ModelCodec
from inspector.tasks.finetune_methods import apply_masks, pass_gradients, write_decoded
from inspector.tasks.finetune_state import FineTuneRequest, _Layer, _Run

EVAL_BATCH = 1024


# ------------------------------------------------------------------------------ masks


def keep_mask(w: np.ndarray, mask: Mask) -> np.ndarray:
    """The boolean keep-array of a mask rule: ``|w| > t``, plus ties past the first ``ties``.

    Compares in float64 like the codec's kernels, so it keeps exactly the codec's survivors.
    """
    a = np.abs(np.asarray(w, dtype=np.float64).reshape(-1))
    keep = a > mask.threshold
    if mask.ties != kernels.TIES_ALL:
        keep[np.flatnonzero(a == mask.threshold)[mask.ties :]] = True
    return keep


def _masked_layers(
    module: Any, codec: ModelCodec, names: list[str], settings: ModelSettings
) -> list[_Layer]:
    import torch

    live = named_tensors(module)
    layers = []
    for name in names:
        info = codec.model.info(name)
        s = settings.resolve(name, info.kind)
        try:
            plan = codec.codec(name).plan(s)
        except SettingsError as exc:
            raise SettingsError(f"layer {name}: {exc.problem}") from exc
        keep = keep_mask(codec.model.tensors[name], plan.mask)
        if int(keep.sum()) != plan.survivors:  # the mask rule and the codec must agree
            raise SettingsError(f"layer {name}: internal error: mask disagrees with the codec")
        tensor = live[name]
        layers.append(_Layer(name, tensor, torch.from_numpy(keep).to(tensor.dtype)))
    return layers


def prune_schedule(epochs: int, steps: int) -> dict[int, float]:
    """Epoch (0-based) -> fraction of the final pruned count to reach before it.

    One step prunes everything at once, with the compressor's mask on the original weights.
    More steps prune gradually, on the retrained weights, along Zhu & Gupta's cubic schedule
    ``1 - (1 - j / steps) ** 3``, spread evenly over the epochs ([LW]: iterating pruning and
    retraining prunes further at the same accuracy).
    """
    steps = max(1, min(steps, epochs))
    return {(j * epochs) // steps: 1 - (1 - (j + 1) / steps) ** 3 for j in range(steps)}


def _tighten(layers: list[_Layer], final_pruned: list[int], fraction: float) -> None:
    """Prune each layer's smallest current weights up to ``fraction`` of its final count.

    Already pruned weights are 0, so they stay pruned; the mask is the codec's sparsity rule.
    """
    import torch

    for la, pruned in zip(layers, final_pruned, strict=True):
        w = la.tensor.detach().numpy().reshape(-1)
        count = round(fraction * pruned)
        rule = LayerCodec(w).mask(LayerSettings(policy="sparsity", value=count / max(w.size, 1)))
        la.keep = torch.from_numpy(keep_mask(w, rule)).to(la.tensor.dtype)
    _apply_masks(layers)


def _apply_masks(layers: list[_Layer]) -> None:
    import torch

    with torch.no_grad():
        for la in layers:
            la.tensor.mul_(la.keep.view_as(la.tensor))


# ------------------------------------------------------- what trains: parameters, optimizers


def _others(module: Any, names: list[str], train: bool) -> list[Any]:
    """The parameters that are not compressed: trained as usual, or frozen."""
    compressed = set(names)
    params = dict(module.named_parameters())
    others = [p for n, p in params.items() if n not in compressed and p.requires_grad]
    if not train:
        for p in others:
            p.requires_grad_(False)
        return []
    return others


def _stage1_optimizer(req: FineTuneRequest, params: list[Any]) -> Any:
    import torch

    params = [p for p in params if p.requires_grad]
    if req.optimizer == "adam":
        return torch.optim.Adam(params, lr=req.prune_lr)
    return torch.optim.SGD(params, lr=req.prune_lr, momentum=req.momentum)


def _stage2_optimizer(req: FineTuneRequest, layers: list[_Layer], trained: list[Any]) -> Any:
    """SGD, as in the paper, over the centroids and the other trained parameters."""
    import torch

    centroids = [la.codebook for la in layers]
    groups = [{"params": g} for g in (centroids, trained) if g]
    return torch.optim.SGD(groups, lr=req.quant_lr, momentum=req.momentum)


# ------------------------------------------------------------- stage 1: masked retraining


def _cosine(opt: Any, steps: int) -> Any:
    """Cosine decay of the learning rate to 0 over ``steps`` minibatches."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / max(steps, 1)))
    )


def _loss(module: Any, batch: tuple[Any, Any, Any], req: FineTuneRequest) -> Any:
    """Cross-entropy on the labels, blended with distillation from the original model."""
    import torch.nn.functional as F

    xb, yb, teacher = batch
    logits = module(xb)
    loss = F.cross_entropy(logits, yb)
    if teacher is None:
        return _finite(loss, req)
    t = req.temperature
    soft = F.kl_div(
        F.log_softmax(logits / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean",
        log_target=True,
    )
    return _finite((1 - req.distill) * loss + req.distill * t * t * soft, req)


def _finite(loss: Any, req: FineTuneRequest) -> Any:
    """``loss``, unless training has diverged: then say so, before NaN weights spread."""
    if not math.isfinite(float(loss.detach())):
        raise SettingsError(
            "training diverged (the loss is no longer a finite number); try a lower learning "
            f"rate than {req.prune_lr:g} (stage 1) / {req.quant_lr:g} (stage 2)"
        )
    return loss


def _masked_step(run: _Run, opt: Any, batch: tuple[Any, Any, Any]) -> float:
    import torch

    req, layers = run.req, run.layers
    write_decoded(run.methods, req.settings)  # STE: the forward uses the codec's weights
    opt.zero_grad(set_to_none=True)
    for la in run.methods:
        la.tensor.grad = None
    loss = _loss(run.module, batch, req)
    loss.backward()
    pass_gradients(run.methods, req.weight_decay)
    with torch.no_grad():
        for p in [la.tensor for la in layers] + run.trained:
            if p.grad is not None and req.weight_decay:
                p.grad.add_(p, alpha=req.weight_decay)
        for la in layers:
            if la.tensor.grad is not None:
                la.tensor.grad.mul_(la.keep.view_as(la.tensor))
    opt.step()
    _apply_masks(layers)  # momentum or Adam's state must never revive a pruned weight
    apply_masks(run.methods)
    return float(loss.detach())


# --------------------------------------------------------- stage 2: trained quantization


def _quantize_layers(module: Any, layers: list[_Layer], settings: ModelSettings) -> None:
    """Re-plan each layer on its retrained weights: codebook and per-weight centroid.

    ``settings`` keep exactly the nonzero weights (the fixed mask) with the user's bits and
    k-means init, so the starting codebook is the one the paper's pipeline would pick.
    """
    import torch

    tensors = state_arrays(module)  # clustered weights: few values by design, not constants
    codec = ModelCodec(LoadedModel.build("<retrained>", "torch", tensors, learned=tensors))
    for la in layers:
        s = settings.resolve(la.name, codec.model.info(la.name).kind)
        plan = codec.codec(la.name).plan(s)
        q = codec.codec(la.name).quantized(s).reshape(-1)
        # The codec's survivors: the nonzero weights, i.e. stage 1's mask (less any weight
        # that trained to exactly 0, which is pruned from here on).
        keep = keep_mask(codec.model.tensors[la.name], plan.mask)
        la.keep = torch.from_numpy(keep).to(la.tensor.dtype)
        codebook = np.asarray(plan.codebook, np.float32)
        assignment = np.zeros(q.size, np.int64)
        assignment[keep] = _labels(codebook, q[keep])
        la.codebook = torch.from_numpy(codebook.copy()).requires_grad_(True)
        la.assignment = torch.from_numpy(assignment)
    _write_quantized(layers)


def _labels(codebook: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The codebook entry of every decoded value (the first of equal entries)."""
    order = np.argsort(codebook, kind="stable")
    pos = np.searchsorted(codebook[order], values)
    labels = order[np.minimum(pos, codebook.size - 1)]
    if values.size and not np.array_equal(codebook[labels], values):
        raise SettingsError("internal error: decoded weights are not codebook values")
    return labels


def _write_quantized(layers: list[_Layer]) -> None:
    """Set every compressed weight to ``codebook[assignment] * keep``."""
    import torch

    with torch.no_grad():
        for la in layers:
            w = la.codebook[la.assignment] * la.keep.to(la.codebook.dtype)
            la.tensor.copy_(w.view(la.tensor.shape).to(la.tensor.dtype))


def centroid_grad(codebook: Any, assignment: Any, keep: Any, weight_grad: Any) -> Any:
    """The gradient of each centroid from the gradient of the weights it makes up.

    The weight is ``codebook[assignment] * keep``; autograd through that expression gives
    centroid k the **sum** of ``weight_grad`` over the unpruned weights assigned to k.

    Parameters
    ----------
    codebook : torch.Tensor
        ``[K]`` centroids.
    assignment : torch.Tensor
        ``[n]`` int64 centroid of every weight (any value where ``keep`` is 0).
    keep : torch.Tensor
        ``[n]`` 1.0 for kept weights, 0.0 for pruned ones.
    weight_grad : torch.Tensor
        ``[n]`` dL/dw of every weight.

    Returns
    -------
    torch.Tensor
        ``[K]`` dL/dc.
    """
    import torch

    c = codebook.detach().requires_grad_(True)
    with torch.enable_grad():
        w = c[assignment] * keep
        (grad,) = torch.autograd.grad(w, c, grad_outputs=weight_grad.reshape(w.shape))
    return grad


def _centroid_step(run: _Run, opt: Any, batch: tuple[Any, Any, Any]) -> float:
    import torch

    req, layers = run.req, run.layers
    _write_quantized(layers)
    write_decoded(run.methods, req.settings)
    opt.zero_grad(set_to_none=True)
    for la in layers + run.methods:
        la.tensor.grad = None
    loss = _loss(run.module, batch, req)
    loss.backward()
    pass_gradients(run.methods, req.weight_decay)
    with torch.no_grad():
        for p in run.trained:
            if p.grad is not None and req.weight_decay:
                p.grad.add_(p, alpha=req.weight_decay)
        for la in layers:
            g = la.tensor.grad
            g = torch.zeros_like(la.tensor) if g is None else g
            if req.weight_decay:
                g = g + req.weight_decay * la.tensor
            keep = la.keep.to(la.codebook.dtype)
            la.codebook.grad = centroid_grad(la.codebook, la.assignment, keep, g.reshape(-1))
    opt.step()
    apply_masks(run.methods)
    return float(loss.detach())


def _snap(module: Any, layers: list[_Layer], settings: ModelSettings) -> None:
    """Move each centroid onto the value the compressed file decodes its members to.

    Centroids closer than the codec's fine histogram bin (1/65536 of the layer's range) would
    decode as one value; adopting the decoded values makes the result a fixed point of
    compression. Usually nothing moves.
    """
    import torch

    _write_quantized(layers)
    tensors = state_arrays(module)
    codec = ModelCodec(LoadedModel.build("<snap>", "torch", tensors, learned=tensors))
    with torch.no_grad():
        for la in layers:
            decoded = codec.quantized(la.name, settings).reshape(-1).astype(np.float32)
            keep = la.keep.numpy().astype(bool)
            members = la.assignment.numpy()[keep]
            first = np.full(la.codebook.numel(), -1, np.int64)
            idx = np.flatnonzero(keep)
            first[members[::-1]] = idx[::-1]  # the first member of each centroid
            used = first >= 0
            new = la.codebook.detach().numpy().copy()
            new[used] = decoded[first[used]]
            la.codebook.copy_(torch.from_numpy(new))
    _write_quantized(layers)


# ------------------------------------------------------------------------------ evaluation


def _val_tensors(req: FineTuneRequest) -> tuple[Any, Any] | None:
    import torch

    if req.val_inputs is None or req.val_labels is None:
        return None
    x = torch.from_numpy(np.ascontiguousarray(req.val_inputs, np.float32))
    return x, torch.from_numpy(np.ascontiguousarray(req.val_labels, np.int64))


def _top1(module: Any, val: tuple[Any, Any] | None) -> float | None:
    """Validation top-1 in eval mode (dropout off, batch-norm statistics frozen)."""
    import torch

    if val is None:
        return None
    x, y = val
    module.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), EVAL_BATCH):
            correct += int((module(x[i : i + EVAL_BATCH]).argmax(1) == y[i : i + EVAL_BATCH]).sum())
    module.train()
    return correct / len(y)


def _logits(module: Any, x: Any) -> Any:
    """The model's outputs on all of ``x``, in eval mode."""
    import torch

    module.eval()
    with torch.no_grad():
        out = torch.cat([module(x[i : i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])
    module.train()
    return out
