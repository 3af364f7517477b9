"""Where the weights sit in a Keras HDF5 file, and what to call them.

Two layouts:

* legacy HDF5 (``model.save("m.h5")``, tf.keras ``save_weights("w.h5")``): the layers are listed
  in the ``layer_names`` attribute of ``model_weights`` (or of the root), each layer's variables
  in its ``weight_names`` attribute (``"sequential/conv/kernel"``, ``"conv/kernel:0"``).
  ``optimizer_weights`` is never read.
* Keras 3 (``model.weights.h5`` in a ``.keras`` archive, or ``.weights.h5``): each object's
  variables at ``<path>/vars/0, 1, ...``, layers of a Sequential or Functional model under
  ``layers/<key>`` where the key comes from the class (``conv2d_1``) and ``vars`` carries the
  layer's name as an attribute. ``optimizer`` is never read.

Tensor names are ``<layer>.<variable>``: the layer's name as ``model.summary()`` shows it, then
the variable's (``kernel``, ``bias``, ``gamma``, ``moving_mean``...), dotted like a PyTorch state
dict so :func:`~inspector.io.kinds.layer_kind` sees layer and variable apart. Nested layers add
levels: ``inner.dense.kernel``, ``bidi.forward_lstm.lstm_cell.kernel``. Both layouts give a model
the same names. Keras 3 stores variables by position only, so their names come from the layer's
class (``config.json``, else the group key) and options (``use_bias``, ``scale``, ``center``);
a variable of an unknown class, or one the options cannot explain, is called ``var0``, ``var1``...
An attention layer's projections are its children ``query``, ``key``, ``value`` (and ``gate``),
``attention_output``, in that order in both layouts: ``mha.query.kernel``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from inspector.errors import InputError

_MAX_DEPTH = 32  # no real model nests this deep
_TOP_LEVEL_GROUP = "top_level_model_weights"  # Keras 3 legacy files: the model's own variables
_TRAILING_INDEX = re.compile(r":\d+$")  # TF variable names end in ":0"


@dataclass(frozen=True, slots=True)
class WeightEntry:
    """Where one tensor lives: its inspector name and its dataset path in the HDF5 file."""

    name: str
    dataset: str


def is_keras3(f: Any) -> bool:
    """Whether an open Keras HDF5 file has the Keras 3 layout (``layers/<key>/vars``)."""
    return "model_weights" not in f and "layer_names" not in f.attrs and "layers" in f


def weight_entries(f: Any, config: Any = None) -> list[WeightEntry]:
    """Name every weight dataset of an open Keras HDF5 file, in model order.

    Parameters
    ----------
    f : h5py.File
        Legacy HDF5 or Keras 3 weights.
    config : dict, optional
        The model config (``config.json`` or the ``model_config`` attribute), used to name
        Keras 3 variables and to order layers.

    Raises
    ------
    InputError
        The file has neither layout, or lists weights it does not hold.
    """
    if "model_weights" in f:
        entries = _legacy_entries(f, f["model_weights"])
    elif _string_attr(f, "layer_names") is not None:
        entries = _legacy_entries(f, f)
    elif "layers" in f or "vars" in f:
        entries = []
        _visit_v3(f, (), config, entries, set(), root=True)
    else:
        raise InputError("HDF5 file holds no Keras weights (no model_weights or layers)")
    return _unique(entries)


def _string_attr(group: Any, key: str) -> list[str] | None:
    """A list-of-strings attribute, joined from ``key0, key1...`` when Keras split it (>64 KB)."""
    if key in group.attrs:
        chunks = [group.attrs[key]]
    else:
        chunks = []
        while f"{key}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{key}{len(chunks)}"])
        if not chunks:
            return None
    values = [v for c in chunks for v in np.asarray(c).ravel().tolist()]
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _legacy_entries(f: Any, root: Any) -> list[WeightEntry]:
    layers = _string_attr(root, "layer_names") or []
    if _TOP_LEVEL_GROUP in root and _TOP_LEVEL_GROUP not in layers:
        layers.append(_TOP_LEVEL_GROUP)
    entries = []
    for layer in layers:
        group = root.get(layer)
        if group is None:
            raise InputError(f"Keras layer {layer!r} is listed but missing")
        for weight in _string_attr(group, "weight_names") or []:
            prefix = () if layer == _TOP_LEVEL_GROUP else (layer,)
            entries.append(WeightEntry(_legacy_name(prefix, weight), f"{group.name}/{weight}"))
    return entries


def _legacy_name(prefix: tuple[str, ...], weight: str) -> str:
    """``("conv",)`` + ``"sequential/conv/kernel:0"`` -> ``"conv.kernel"``."""
    parts = [p for p in weight.split("/") if p]
    parts[-1:] = [_TRAILING_INDEX.sub("", parts[-1])] if parts else ["weight"]
    if prefix and prefix[0] in parts[:-1]:
        last = len(parts) - 2 - parts[-2::-1].index(prefix[0])
        parts = parts[last + 1 :]
    return ".".join([*prefix, *parts])


def _visit_v3(
    group: Any,
    names: tuple[str, ...],
    node: Any,
    out: list[WeightEntry],
    seen: set[Any],
    root: bool,
) -> None:
    """Collect ``vars`` datasets of ``group`` and its children, children in model order.

    Each group is visited once (HDF5 hard links can make cycles, or share one group many
    times, as Keras shares a layer); nesting is bounded for the recursion's sake.
    """
    import h5py

    if group.id in seen:
        return
    seen.add(group.id)
    if len(names) > _MAX_DEPTH:
        raise InputError("Keras weights nest implausibly deep")
    own = group.get("vars")
    if isinstance(own, h5py.Group):
        keys = sorted(own, key=_natural)
        leaves = _variable_names(node, len(keys)) if all(k.isdigit() for k in keys) else keys
        for key, leaf in zip(keys, leaves, strict=True):
            out.append(WeightEntry(".".join([*names, leaf]), f"{own.name}/{key}"))
    for key in sorted(group, key=_child_order(node)):
        child = group[key]
        if key == "vars" or not isinstance(child, h5py.Group) or (root and key == "optimizer"):
            continue
        if key == "layers":  # the layer list of a Sequential or Functional: no name level
            for sub_key in _in_config_order(child, node):
                sub = child[sub_key]
                if isinstance(sub, h5py.Group):
                    label = _label(sub, sub_key)
                    sub_node = _layer_config(node, label) or _node_of_key(sub_key)
                    _visit_v3(sub, (*names, label), sub_node, out, seen, root=False)
        else:
            child_node = _attribute_config(node, key) or _node_of_key(key)
            _visit_v3(child, (*names, _label(child, key)), child_node, out, seen, root=False)


def _child_order(node: Any) -> Callable[[str], tuple[Any, ...]]:
    """Sort key of a layer's attribute groups: the order its weights have in a legacy file."""
    built = _BUILD_ORDER.get(_class(node), ())
    return lambda k: (
        k == "backward_layer",
        built.index(k.lstrip("_")) if k.lstrip("_") in built else len(built),
        _natural(k),
    )


def _label(group: Any, key: str) -> str:
    """The name Keras gave the object saved in ``group`` (the group key is only its class)."""
    import h5py

    own = group.get("vars") if isinstance(group, h5py.Group) else None
    name = own.attrs.get("name") if own is not None else None
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return name if isinstance(name, str) and name else key


def _natural(key: str) -> tuple[Any, ...]:
    """Sort ``dense_2`` before ``dense_10`` and ``vars/2`` before ``vars/10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))


def _unique(entries: list[WeightEntry]) -> list[WeightEntry]:
    seen: set[str] = set()
    datasets: set[str] = set()
    out = []
    for e in entries:
        if e.dataset in datasets:  # one dataset listed twice would be read (and held) twice
            raise InputError(f"Keras weight {e.dataset!r} is listed twice")
        datasets.add(e.dataset)
        name = e.name
        if name in seen:  # e.g. two custom sub-objects that Keras labels alike
            name = e.dataset.strip("/").replace("/", ".")
        # dataset paths are unique, so this loop ends at once but for names made to collide
        # with other dataset paths; a counter keeps that linear too
        base, n = name, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        out.append(WeightEntry(name, e.dataset))
    return out


# ------------------------------------------------------------------ names from the model config


def _config(node: Any) -> dict[str, Any]:
    cfg = node.get("config") if isinstance(node, dict) else None
    return cfg if isinstance(cfg, dict) else {}


def _class(node: Any) -> str:
    name = node.get("class_name") if isinstance(node, dict) else None
    return name if isinstance(name, str) else ""


def _config_layers(node: Any) -> list[Any]:
    layers = _config(node).get("layers")
    return layers if isinstance(layers, list) else []


def _layer_name(node: Any) -> str | None:
    name = _config(node).get("name", node.get("name") if isinstance(node, dict) else None)
    return name if isinstance(name, str) else None


def _layer_config(node: Any, label: str) -> Any:
    return next((n for n in _config_layers(node) if _layer_name(n) == label), None)


def _in_config_order(layers: Any, node: Any) -> list[str]:
    """Keys of a ``layers`` group ordered as the config lists the layers (keys are class names)."""
    order = {name: i for i, n in enumerate(_config_layers(node)) if (name := _layer_name(n))}
    keys = sorted(layers, key=_natural)
    return sorted(keys, key=lambda k: order.get(_label(layers[k], k), len(order)))


_RNN_CELLS = {"LSTM": "LSTMCell", "GRU": "GRUCell", "SimpleRNN": "SimpleRNNCell"}
_WRAPPED = {"forward_layer": "layer", "backward_layer": "backward_layer", "layer": "layer"}
# Attention layers keep their projections (EinsumDense layers named query, key, ...) in these
# attributes, built in this order; the gate exists only with use_gate. Keras saves an attribute
# under its name, with the leading underscore where no public property hides it ("_gate_dense").
# Grouped-query attention is exported as GroupQueryAttention; its group key comes from the class.
_ATTENTION = ("MultiHeadAttention", "GroupQueryAttention", "GroupedQueryAttention")
_PROJECTIONS = ("query_dense", "key_dense", "gate_dense", "value_dense", "output_dense")
_BUILD_ORDER = dict.fromkeys(_ATTENTION, _PROJECTIONS)


def _attribute_config(node: Any, key: str) -> Any:
    """The config of the object a layer keeps in attribute ``key`` (an RNN's cell, a wrapper's
    layer), or None."""
    cfg = _config(node)
    if key == "cell" and _class(node) in _RNN_CELLS:
        return {"class_name": _RNN_CELLS[_class(node)], "config": cfg}
    if key.lstrip("_") in _PROJECTIONS and _class(node) in _ATTENTION:
        if not cfg:  # no config: the variable count tells whether there is a bias
            return {"class_name": "EinsumDense"}
        bias_axes = "on" if cfg.get("use_bias", True) else None
        return {"class_name": "EinsumDense",
                "config": {"bias_axes": bias_axes, "dtype": cfg.get("dtype")}}
    if key in _WRAPPED:
        wrapped = cfg.get(_WRAPPED[key]) or cfg.get("layer")
        return wrapped if isinstance(wrapped, dict) else None
    return None


_KERNEL_BIAS = (("kernel", None), ("bias", "use_bias"))
_GAMMA_BETA = (("gamma", "scale"), ("beta", "center"))
# The variables each layer class saves, in order; a variable with an option is saved only when
# the layer's config turns that option on.
_VARIABLES: dict[str, tuple[tuple[str, str | None], ...]] = {
    **dict.fromkeys(
        ("Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
         "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D"),
        _KERNEL_BIAS,
    ),
    **dict.fromkeys(
        ("SeparableConv1D", "SeparableConv2D"),
        (("depthwise_kernel", None), ("pointwise_kernel", None), ("bias", "use_bias")),
    ),
    "BatchNormalization": (*_GAMMA_BETA, ("moving_mean", None), ("moving_variance", None)),
    "LayerNormalization": _GAMMA_BETA,
    "GroupNormalization": _GAMMA_BETA,
    **dict.fromkeys(
        _RNN_CELLS.values(), (("kernel", None), ("recurrent_kernel", None), ("bias", "use_bias"))
    ),
    "EinsumDense": (("kernel", None), ("bias", "bias_axes")),
    "Embedding": (("embeddings", None),),
    "PReLU": (("alpha", None),),
    "RMSNormalization": (("scale", None),),
}  # fmt: skip
_OFF_BY_DEFAULT = frozenset({"bias_axes"})
_OFF = (False, None)


def _snake(name: str) -> str:
    """Keras's ``to_snake_case``: the group key Keras 3 gives a layer of class ``name``."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


_CLASS_OF_KEY = {_snake(c): c for c in (*_VARIABLES, *_RNN_CELLS, *_ATTENTION)}


def _node_of_key(key: str) -> dict[str, str] | None:
    """A config-less stand-in for a layer saved under ``key`` (``conv2d_1`` -> Conv2D)."""
    cls = _CLASS_OF_KEY.get(re.sub(r"_\d+$", "", key))
    return {"class_name": cls} if cls else None


def _variable_names(node: Any, count: int) -> list[str]:
    """Names of the ``count`` variables Keras 3 saved for a layer, in their saved order.

    Keras saves trainable then non-trainable variables in creation order, which for the
    classes of :data:`_VARIABLES` the config fixes. Without a config, the options are those
    that explain ``count``, if only one combination does. An unknown class, a quantized layer
    or a count nothing explains gets positional names rather than a wrong guess.
    """
    spec, cfg = _VARIABLES.get(_class(node)), _config(node)
    positional = [f"var{i}" for i in range(count)]
    if spec is None or "Quantized" in _class(cfg.get("dtype")):
        return positional
    options = sorted({opt for _, opt in spec if opt})
    if cfg:
        # Options absent from the config have Keras's defaults: on, except bias_axes.
        choices = [{o for o in options if cfg.get(o, o not in _OFF_BY_DEFAULT) not in _OFF}]
    else:
        choices = [set(c) for r in range(len(options) + 1) for c in combinations(options, r)]
    fits = {tuple(n for n, o in spec if o is None or o in on) for on in choices}
    fits = {names for names in fits if len(names) == count}
    return list(fits.pop()) if len(fits) == 1 else positional
