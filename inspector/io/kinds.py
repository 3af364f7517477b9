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
_WEIGHT_LEAF = re.compile(r"(weight|kernel|filter)s?(_orig)?$|^w$", re.IGNORECASE)
# GPT-2 names its token/position tables wte/wpe; most others say "embed".
_EMBED_TOKEN = re.compile(r"embed|^wte$|^wpe$", re.IGNORECASE)
# "bn1", "ln_f", "ln_1", "LayerNorm", "norm2", "group_norm" ...
_NORM_TOKEN = re.compile(r"norm|^bn\d*$|^bn_|^ln\d*$|^ln_", re.IGNORECASE)
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
    return 1 <= t.ndim <= 2 and t.leaf.lower().endswith("bias")


def _is_norm(t: _Tensor) -> bool:
    # Keras names a norm layer's scale and shift gamma and beta, whatever the layer is called.
    named = t.leaf in ("gamma", "beta") or any(_NORM_TOKEN.search(p) for p in t.parts)
    return t.ndim == 1 and named


_RULES: tuple[tuple[str, Callable[[_Tensor], bool]], ...] = (
    ("buffer", _is_buffer),
    ("bias", _is_bias),
    ("embedding", _is_embedding),
    ("fc", _is_attention_projection),
    ("conv", _is_conv),
    ("fc", _is_fc),
    ("norm", _is_norm),
)


def layer_kind(name: str, shape: tuple[int, ...], dtype: str) -> str:
    """Classify a tensor as one of :data:`ALL_KINDS`.

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
    str
        ``"conv"``, ``"fc"``, ``"embedding"``, ``"norm"``, ``"bias"``, ``"buffer"`` or
        ``"other"``.
    """
    tensor = _Tensor(tuple(p for p in name.split(".") if p), tuple(shape), dtype.lower())
    for kind, matches in _RULES:
        if matches(tensor):
            return kind
    return "other"
