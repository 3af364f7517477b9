"""Guess what role a tensor plays in a network from its name, shape and dtype.

The guess drives which tensors are offered for compression: Deep Compression prunes and
quantizes the big weight matrices (conv, fc, embedding) and leaves biases, norms and buffers alone.
The rules are a table, tried in order; the first that matches wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

#: Kinds whose tensors the compressor prunes and quantizes by default.
COMPRESSIBLE_KINDS: frozenset[str] = frozenset({"conv", "fc", "embedding"})

#: Every kind :func:`layer_kind` can return.
ALL_KINDS: tuple[str, ...] = ("conv", "fc", "embedding", "norm", "bias", "buffer", "other")

# Counters and running statistics live in the state dict but are not learned weights.
# (Keras calls BatchNorm's running statistics moving_mean / moving_variance.)
_BUFFER_LEAVES = frozenset(
    {"running_mean", "running_var", "num_batches_tracked", "moving_mean", "moving_variance"}
)
_INTEGER_PREFIXES = ("int", "uint", "bool", "qint", "quint")
# PyTorch's LSTM/GRU/RNN name their tensors weight_ih_l0, bias_hh_l1_reverse, weight_hr_l0
# (projections); LSTMCell/GRUCell drop the layer suffix: bias_ih, bias_hh.
_RNN_BIAS = re.compile(r"^bias_(ih|hh)(_l\d+)?(_reverse)?$")
_WEIGHT_LEAF = re.compile(r"(weight|kernel|filter)s?(_orig)?$|^w$", re.IGNORECASE)
# GPT-2 names its token/position tables wte/wpe; most others say "embed".
_EMBED_TOKEN = re.compile(r"embed|^wte$|^wpe$", re.IGNORECASE)
# "bn1", "ln_f", "ln_1", "LayerNorm", "norm2", "group_norm", EfficientNet's "_bn0" ...
_NORM_TOKEN = re.compile(r"norm|^_*bn\d*$|^_*bn_|^_*ln\d*$|^_*ln_", re.IGNORECASE)
# The projections Keras's MultiHeadAttention (and GroupedQueryAttention) builds as EinsumDense
# sub-layers under these fixed names: their kernels are dense matrices with the head axis split
# out, 3-D like a Conv1D kernel.
_ATTENTION_PROJECTIONS = frozenset({"query", "key", "value", "attention_output", "gate"})


class _Tensor(NamedTuple):
    parts: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str

    @property
    def leaf(self) -> str:
        return self.parts[-1] if self.parts else ""

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _is_buffer(t: _Tensor) -> bool:
    return t.dtype.startswith(_INTEGER_PREFIXES) or t.leaf in _BUFFER_LEAVES


def _is_embedding(t: _Tensor) -> bool:
    return t.ndim == 2 and any(_EMBED_TOKEN.search(p) for p in t.parts)


def _is_attention_projection(t: _Tensor) -> bool:
    # "mha.query.kernel": Keras names only; a PyTorch conv would end in "weight".
    return (
        t.ndim == 3 and t.leaf == "kernel" and len(t.parts) >= 3
        and t.parts[-2] in _ATTENTION_PROJECTIONS
    )  # fmt: skip


def _is_conv(t: _Tensor) -> bool:
    return 3 <= t.ndim <= 5 and bool(_WEIGHT_LEAF.search(t.leaf))


def _is_fc(t: _Tensor) -> bool:
    return t.ndim == 2


def _is_bias(t: _Tensor) -> bool:
    # Keras keeps some biases 2-D: a GRU's (2, 3 * units) with reset_after, an attention
    # projection's (heads, head_dim).
    leaf = t.leaf.lower()
    return 1 <= t.ndim <= 2 and (leaf.endswith("bias") or bool(_RNN_BIAS.match(leaf)))


def _is_norm(t: _Tensor) -> bool:
    # Keras names a norm layer's scale and shift gamma and beta, whatever the layer is called.
    named = t.leaf in ("gamma", "beta") or any(_NORM_TOKEN.search(p) for p in t.parts)
    return t.ndim == 1 and named


def _dims(t: _Tensor) -> str:
    return f"{t.ndim}-D" if t.ndim else "0-D"


def _why_buffer(t: _Tensor) -> str:
    if t.dtype.startswith(_INTEGER_PREFIXES):
        return f"{t.dtype} values: not a learned weight"
    return f"name ends in {t.leaf}: a running statistic or counter"


# Each rule: kind, test, and why it matched (for the app's tooltip and ``inspector info``).
_RULES: tuple[tuple[str, Callable[[_Tensor], bool], Callable[[_Tensor], str]], ...] = (
    ("buffer", _is_buffer, _why_buffer),
    ("bias", _is_bias, lambda t: f"name ends in {t.leaf}, {_dims(t)}"),
    ("embedding", _is_embedding, lambda t: "name says embed (or wte/wpe), 2-D"),
    ("fc", _is_attention_projection, lambda t: f"attention projection {t.parts[-2]}.kernel, 3-D"),
    ("conv", _is_conv, lambda t: f"name ends in {t.leaf}, {_dims(t)}"),
    ("fc", _is_fc, lambda t: "2-D tensor"),
    ("norm", _is_norm, lambda t: "1-D, named like a norm layer"),
)


def guess_kind(name: str, shape: tuple[int, ...], dtype: str) -> tuple[str, str]:
    """Classify a tensor from its name, shape and dtype, and say why.

    Parameters
    ----------
    name : str
        Dotted state-dict name, e.g. ``"features.0.weight"``.
    shape : tuple of int
        Tensor shape.
    dtype : str
        Original dtype name, e.g. ``"float32"``, ``"bfloat16"``, ``"int64"``.

    Returns
    -------
    tuple of str
        One of :data:`ALL_KINDS`, and a short reason such as ``"name ends in weight, 4-D"``.
    """
    tensor = _Tensor(tuple(p for p in name.split(".") if p), tuple(shape), dtype.lower())
    for kind, matches, why in _RULES:
        if matches(tensor):
            return kind, why(tensor)
    return "other", f"no name rule matches ({_dims(tensor)})"


def layer_kind(name: str, shape: tuple[int, ...], dtype: str) -> str:
    """Classify a tensor as one of :data:`ALL_KINDS` (:func:`guess_kind` without the reason).

    Returns
    -------
    str
        ``"conv"``, ``"fc"``, ``"embedding"``, ``"norm"``, ``"bias"``, ``"buffer"`` or
        ``"other"``.
    """
    return guess_kind(name, shape, dtype)[0]
