"""The sample networks in Keras 3 (torch backend), with the torch weights in Keras's layout.

Keras layers carry the torch module names (``ip1``, ``conv1``, ``bn1``). Each model takes the
same flattened ``[N, F]`` input as the torch net and reshapes it to channels-last images;
before flattening for the first Dense layer it permutes back to channels-first, so the
flattened order, and with it the Dense kernel, is the torch one (transposed).

Import this module only after training: importing Keras loads parts of torch (dynamo) that
training does not need.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"  # Keras reads it once, on import

import keras
import numpy as np

BN_EPSILON = 1e-5  # torch's default; Keras's own is 1e-3


def lenet300() -> keras.Model:
    """784-300-100-10 with ReLU."""
    x = keras.Input(shape=(784,), name="input")
    h = keras.layers.Dense(300, activation="relu", name="ip1")(x)
    h = keras.layers.Dense(100, activation="relu", name="ip2")(h)
    return keras.Model(x, keras.layers.Dense(10, name="ip3")(h), name="lenet300_100")


def lenet5() -> keras.Model:
    """Caffe's LeNet: conv1 20@5x5, pool, conv2 50@5x5, pool, ip1 500 + ReLU, ip2 10."""
    x = keras.Input(shape=(784,), name="input")
    h = keras.layers.Reshape((28, 28, 1))(x)
    h = keras.layers.Conv2D(20, 5, name="conv1")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(50, 5, name="conv2")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(keras.layers.Permute((3, 1, 2))(h))
    h = keras.layers.Dense(500, activation="relu", name="ip1")(h)
    return keras.Model(x, keras.layers.Dense(10, name="ip2")(h), name="lenet5")


def digits_cnn() -> keras.Model:
    """Three conv (no bias) + BatchNorm + ReLU blocks, two 2x2 pools, fc1 64 + ReLU, fc2 10."""
    x = keras.Input(shape=(64,), name="input")
    h = keras.layers.Reshape((8, 8, 1))(x)
    for i, filters in enumerate((16, 32, 64), start=1):
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(h)
        h = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"bn{i}")(h)
        h = keras.layers.ReLU()(h)
        if i > 1:
            h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(keras.layers.Permute((3, 1, 2))(h))
    h = keras.layers.Dense(64, activation="relu", name="fc1")(h)
    return keras.Model(x, keras.layers.Dense(10, name="fc2")(h), name="digits_cnn")


BUILDERS = {"lenet300_100": lenet300, "lenet5": lenet5, "digits_cnn": digits_cnn}


def keras_layout(layer: keras.layers.Layer, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The torch tensors of ``layer`` (looked up by its name) in Keras's order and layout.

    Dense kernels are ``[in, out]`` (torch: ``[out, in]``); Conv2D kernels are HWIO (torch:
    OIHW); BatchNormalization holds gamma, beta, moving mean, moving variance.
    """
    name = layer.name
    if isinstance(layer, keras.layers.Dense):
        return [state[f"{name}.weight"].T, state[f"{name}.bias"]]
    if isinstance(layer, keras.layers.Conv2D):
        kernel = state[f"{name}.weight"].transpose(2, 3, 1, 0)
        return [kernel, state[f"{name}.bias"]] if layer.use_bias else [kernel]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [state[f"{name}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    return []


def keras_model(name: str, state: dict[str, np.ndarray]) -> keras.Model:
    """The Keras twin of sample ``name`` holding the torch ``state`` (numpy arrays)."""
    model = BUILDERS[name]()
    used = set()
    for layer in model.layers:
        weights = keras_layout(layer, state)
        if weights:
            layer.set_weights([np.ascontiguousarray(w, dtype=np.float32) for w in weights])
            used.update(k for k in state if k.startswith(f"{layer.name}."))
    missing = sorted(k for k in set(state) - used if not k.endswith("num_batches_tracked"))
    if missing:
        raise RuntimeError(f"{name}: torch tensors without a Keras layer: {missing}")
    return model


def keras_logits(model: keras.Model, inputs: np.ndarray) -> np.ndarray:
    """Logits of a Keras model, as numpy."""
    return np.asarray(model.predict(inputs, batch_size=500, verbose=0))


def load_keras(path: Path) -> keras.Model:
    """A saved Keras model (``.keras`` archive or legacy ``.h5``), as Keras reads it."""
    return keras.saving.load_model(str(path), compile=False)
