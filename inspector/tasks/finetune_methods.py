"""How fine-tuning trains a layer coded by a registered method other than deep (issue 13.7).

Deep's layers keep their own two stages (:mod:`inspector.tasks.finetune_steps`). Every other
method has one of three rules, :data:`RULES`:

``"ste"`` (uniform, int8, int4, ternary, binary, fp16, bf16): quantization-aware training with
    a straight-through estimator through the method's **own** quantizer. Latent float weights
    train; before every forward pass the layer's parameter is set to exactly what the codec
    (``ModelCodec.quantized``: same options, floor and raw fallback as ``compress``) decodes
    from the latent weights, and the parameter's gradient is passed to the latent weights
    unchanged. So uniform's steps follow each unit's max|w| and its RDOQ levels are re-chosen
    each step (the grid of the file, not an approximation of it), and ternary/binary scales
    and thresholds are re-estimated each step. With ``mask_zeros`` the weights the first
    encoding sets to 0 (RDOQ's zero cell, ternary's dead zone) are held at 0 as a mask, and
    the codec decodes a latent 0 to 0 under every one of these methods, so they stay zero in
    the file. The written file is the codec applied to the latent weights: it decodes to
    exactly the last forward pass's weights (``reproduction_error`` 0).
``"shared"`` (pq, hashed): the method is fitted, the sharing fixed (pq: every sub-vector's
    code; hashed: every weight's bucket and sign) and the shared values (codebook entries,
    buckets) train by the **sum** of their members' gradients, deep's rule for centroids.
    hashed shares from the start (HashedNets trains its buckets; hashing retrained float
    weights would throw the retraining away); pq, like deep, trains the float weights in stage
    1 and shares from stage 2 (a codebook entry has thousands of members: stage 1's rate would
    throw it far). Re-fitting at the end finds hashed's buckets again exactly (the mean of
    equal members); pq's k-means re-fit on the trained sub-vectors need not (its
    ``reproduction_error`` says by how much).
``"float"`` (any other method): no natural training rule; the float weights train and are
    re-encoded by ``compress`` at the end.

Every rule trains in both stages of the run, with each stage's optimizer and rate (stage 2 is
SGD at ``quant_lr``, deep's centroid rate: a straight-through layer barely moves there, so its
training is stage 1's ``prune_epochs``).

torch is imported inside the functions only (house rule: nothing in tasks imports it at start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from inspector.core.stages.hashed import positions
from inspector.core.stages.pq import geometry
from inspector.io.model_file import LoadedModel
from inspector.io.module_state import named_tensors
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec

Rule = Literal["ste", "shared", "float"]

EARLY = frozenset({"hashed"})  # shared from the start of stage 1

RULES: dict[str, Rule] = {
    "uniform": "ste", "int8": "ste", "int4": "ste", "ternary": "ste", "binary": "ste",
    "fp16": "ste", "bf16": "ste", "pq": "shared", "hashed": "shared",
    # Not yet its own rule (issue 13.7 asks to train the factors): the float weights train and
    # the layer is factorised again at the end.
    "lowrank": "float",
}


def rule_of(method: str) -> Rule:
    """The fine-tuning rule of ``method`` (``"float"`` for a method without one)."""
    return RULES.get(method, "float")


@dataclass(slots=True)
class MethodLayer:
    """One layer of a registered method during training.

    ``tensor`` is the module's parameter (what the forward pass uses). ``ste``: ``latent`` the
    trained float weights and ``keep`` the 0/1 mask of held zeros (or None). ``shared`` (stage
    2): ``table`` the shared values, ``index`` each weight's entry and ``sign`` its +-1.
    """

    name: str
    method: str
    rule: Rule
    tensor: Any
    latent: Any = None
    keep: Any = None
    table: Any = None
    index: Any = None
    sign: Any = None


def method_layers(module: Any, model: LoadedModel, names: list[str], settings: ModelSettings,
                  mask_zeros: bool) -> list[MethodLayer]:
    """The layers ``names`` (none of them deep) ready to train; STE layers' parameters are set
    to their first encoding."""
    import torch

    live = named_tensors(module)
    codec = ModelCodec(model)
    out = []
    for name in names:
        method = settings.resolve(name, model.info(name).kind).method
        la = MethodLayer(name, method, rule_of(method), live[name])
        if la.rule == "ste":
            w0 = torch.from_numpy(np.ascontiguousarray(model.tensors[name], np.float32))
            la.latent = w0.reshape(-1).clone()
            if mask_zeros:
                first = codec.quantized(name, settings).reshape(-1)
                la.keep = torch.from_numpy((first != 0).astype(np.float32))
                la.latent.mul_(la.keep)
            la.latent.requires_grad_(True)
        out.append(la)
    share([la for la in out if la.method in EARLY], model.tensors, settings)
    write_decoded(out, settings)
    return out


def trained_params(layers: list[MethodLayer]) -> list[Any]:
    """What the optimizer updates for these layers: latent weights, shared tables, or the
    float weights themselves."""
    params = []
    for la in layers:
        if la.rule == "ste":
            params.append(la.latent)
        elif la.table is not None:
            params.append(la.table)
        else:
            params.append(la.tensor)
    return params


def write_decoded(layers: list[MethodLayer], settings: ModelSettings) -> None:
    """Set every STE layer's parameter to the codec's decoding of its latent weights, and
    every shared layer's (stage 2) to ``table[index] * sign``."""
    import torch

    ste = [la for la in layers if la.rule == "ste"]
    if ste:
        latents = {la.name: la.latent.detach().numpy().reshape(la.tensor.shape) for la in ste}
        codec = ModelCodec(LoadedModel.build("<ste>", "torch", latents, learned=latents))
        with torch.no_grad():
            for la in ste:
                q = codec.quantized(la.name, settings)
                la.tensor.copy_(torch.from_numpy(np.ascontiguousarray(q, np.float32))
                                .view_as(la.tensor))
    with torch.no_grad():
        for la in layers:
            if la.rule == "shared" and la.table is not None:
                la.tensor.copy_((la.table[la.index] * la.sign).view_as(la.tensor))


def pass_gradients(layers: list[MethodLayer], weight_decay: float) -> None:
    """After ``backward``: the parameter's gradient goes straight through to the latent
    weights (masked), or is summed into each shared value over its members."""
    import torch

    with torch.no_grad():
        for la in layers:
            g = la.tensor.grad
            if la.rule == "ste":
                g = torch.zeros_like(la.latent) if g is None else g.reshape(-1).clone()
                if weight_decay:
                    g.add_(la.latent, alpha=weight_decay)
                la.latent.grad = g if la.keep is None else g * la.keep
            elif la.rule == "shared" and la.table is not None:
                g = torch.zeros(la.index.shape) if g is None else g.reshape(-1)
                if weight_decay:
                    g = g + weight_decay * la.tensor.reshape(-1)
                summed = torch.zeros_like(la.table)
                summed.index_add_(0, la.index, g * la.sign)
                la.table.grad = summed
            elif weight_decay and g is not None:
                g.add_(la.tensor, alpha=weight_decay)


def apply_masks(layers: list[MethodLayer]) -> None:
    """Held zeros stay exactly 0 after an optimizer step (momentum must not revive them)."""
    import torch

    with torch.no_grad():
        for la in layers:
            if la.rule == "ste" and la.keep is not None:
                la.latent.mul_(la.keep)


def share(layers: list[MethodLayer], module_tensors: dict[str, np.ndarray],
          settings: ModelSettings) -> None:
    """Stage 2's start for shared layers: fit the method on the (retrained) weights and fix
    each weight's shared value and sign; the values become the trained table."""
    import torch

    shared = [la for la in layers if la.rule == "shared" and la.table is None]
    if not shared:
        return
    wanted = {la.name: module_tensors[la.name] for la in shared}
    codec = ModelCodec(LoadedModel.build("<share>", "torch", wanted, learned=wanted))
    for la in shared:
        est = codec.layer(codec.model.info(la.name), settings)
        if est.coded is None:  # stored raw (the method would not save a byte): train floats
            la.rule = "float"
            continue
        decoded = codec.quantized(la.name, settings).reshape(-1).astype(np.float64)
        index, sign = _sharing(la.method, est.coded, est.record.coded.params,
                               tuple(wanted[la.name].shape))
        size = int(index.max()) + 1 if index.size else 0
        table = np.zeros(size)
        table[index[::-1]] = (decoded * sign)[::-1]  # any member: they all decode alike
        la.index = torch.from_numpy(index)
        la.sign = torch.from_numpy(sign.astype(np.float32))
        la.table = torch.from_numpy(table.astype(np.float32)).requires_grad_(True)
    write_decoded(layers, settings)


def _sharing(method: str, plan: Any, params: bytes, shape: tuple[int, ...]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Each weight's shared-value index (int64) and sign (+-1) under a pq or hashed plan."""
    n = int(np.prod(shape))
    if method == "hashed":
        # params: u8 flags (bit 1: sign hash), u32 seed, uvarint B (see hashed's docstring)
        from inspector.core.bitpack import read_uvarint

        signed = bool(params[0] & 2)
        seed = int.from_bytes(params[1:5], "little")
        b, _ = read_uvarint(params, 5, n)
        buckets, negative = positions(n, seed, b)
        return buckets, np.where(signed & negative, -1.0, 1.0)
    # pq: entry (code, k) of the flattened (K, d) codebook for weight k of each sub-vector
    from inspector.core.stages.fitted import codes_of

    fit, _ = plan.state
    d = int(fit.params[0])  # the fit's params: u8 d, u8 flags, uvarint K
    rows, rowlen, spr = geometry(shape, d)
    codes = codes_of(fit.symbols).reshape(rows, spr)
    j = np.arange(rowlen)
    index = codes[:, j // d] * d + (j % d)
    return index.reshape(-1).astype(np.int64), np.ones(n)


def final_tensors(layers: list[MethodLayer], tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    """The tensors to compress: STE layers' latent weights (the codec re-encodes them to the
    trained forward's weights), everything else as trained."""
    out = dict(tensors)
    for la in layers:
        if la.rule == "ste":
            out[la.name] = la.latent.detach().numpy().reshape(tensors[la.name].shape).astype(
                tensors[la.name].dtype)
    return out
