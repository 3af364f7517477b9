"""Keras files written by Keras 3 itself (torch backend), read back without Keras.

Importing Keras takes seconds, so one module-scoped fixture builds and saves every model.
Most checks call the in-process reader; the files' trip through the child process that
``read_model`` uses is checked on the main layouts and on damaged files.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from inspector.errors import InputError
from inspector.io import LoadedModel, isolated, keras_file, read_model

# Keras 3 with numpy 2 warns on every get_weights(); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SEQ_NAMES = [
    "conv.kernel", "conv.bias",
    "bn.gamma", "bn.beta", "bn.moving_mean", "bn.moving_variance",
    "fc1.kernel", "fc1.bias",
    "fc2.kernel",
]  # fmt: skip
FUNC_NAMES = [
    *(f"bidi.{d}_lstm.lstm_cell.{v}" for d in ("forward", "backward")
      for v in ("kernel", "recurrent_kernel", "bias")),
    "inner.a.kernel", "inner.a.bias", "inner.b.kernel", "inner.b.bias",
    "head.kernel", "head.bias",
]  # fmt: skip
PROJECTIONS = ("query", "key", "value", "attention_output")
ATT_NAMES = [
    "gru.gru_cell.kernel", "gru.gru_cell.recurrent_kernel", "gru.gru_cell.bias",
    *(f"mha.{p}.{v}" for p in PROJECTIONS for v in ("kernel", "bias")),
    # No biases; the gate projection is built after the key, before the value.
    *(f"gated.{p}.kernel" for p in ("query", "key", "gate", "value", "attention_output")),
    *(f"gqa.{p}.{v}" for p in PROJECTIONS for v in ("kernel", "bias")),
]  # fmt: skip


@dataclass(frozen=True)
class Saved:
    folder: Path
    seq: dict[str, np.ndarray]  # expected tensors of the Sequential model, in order
    func: dict[str, np.ndarray]  # and of the Functional one
    att: dict[str, np.ndarray]  # and of the one with a GRU and attention layers


def _expected(model: object, names: list[str]) -> dict[str, np.ndarray]:
    values = [np.asarray(v) for layer in model.layers for v in layer.get_weights()]
    assert len(values) == len(names)
    return dict(zip(names, values, strict=True))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_BACKEND", "torch")  # read once, when keras is first imported
        keras = pytest.importorskip("keras")
        from keras.src.legacy.saving import legacy_h5_format
    layers = keras.layers
    rng = np.random.default_rng(0)
    seq = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            layers.Conv2D(3, 3, name="conv"),
            layers.BatchNormalization(name="bn"),
            layers.Flatten(name="flat"),
            layers.Dense(4, name="fc1"),
            layers.Dense(2, use_bias=False, name="fc2", dtype="bfloat16"),
        ],
        name="lenet",
    )
    inp = keras.Input((5, 2))
    inner = keras.Sequential([layers.Dense(4, name="a"), layers.Dense(3, name="b")], name="inner")
    x = inner(layers.Bidirectional(layers.LSTM(3), name="bidi")(inp))
    func = keras.Model(inp, layers.Dense(2, name="head")(x), name="func")
    inp = keras.Input((5, 4))
    x = layers.GRU(3, return_sequences=True, name="gru")(inp)  # bias (2, 9): reset_after
    x = layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(x, x)
    x = layers.MultiHeadAttention(
        num_heads=2, key_dim=2, use_bias=False, use_gate=True, name="gated"
    )(x, x)
    gqa = layers.GroupQueryAttention(
        head_dim=2, num_query_heads=2, num_key_value_heads=1, name="gqa"
    )
    att = keras.Model(inp, gqa(x, x), name="att")
    for model in (seq, func, att):
        for layer in model.layers:
            # Distinct values everywhere (BN's moving statistics included); variances positive.
            layer.set_weights([np.abs(rng.normal(size=w.shape)) + 0.1 for w in layer.weights])
        model.compile(optimizer="adam", loss="mse")
        model.optimizer.build(model.trainable_variables)  # so the files hold optimizer state
    folder = tmp_path_factory.mktemp("keras")
    seq.save(folder / "seq.keras")
    seq.save(folder / "seq.h5")
    seq.save_weights(folder / "seq.weights.h5")
    with h5py.File(folder / "seq_root.h5", "w") as f:  # tf.keras save_weights("w.h5") layout
        legacy_h5_format.save_weights_to_hdf5_group(f, seq)
    func.save(folder / "func.keras")
    func.save(folder / "func.h5")
    att.save(folder / "att.keras")
    att.save(folder / "att.h5")
    att.save_weights(folder / "att.weights.h5")
    return Saved(
        folder, _expected(seq, SEQ_NAMES), _expected(func, FUNC_NAMES), _expected(att, ATT_NAMES)
    )


def assert_model(model: LoadedModel, expected: dict[str, np.ndarray], ordered: bool = True) -> None:
    assert model.format == "keras"
    names = list(model.tensors)
    assert (names if ordered else sorted(names)) == (
        list(expected) if ordered else sorted(expected)
    )
    for name, want in expected.items():
        got = model.tensors[name]
        assert got.shape == want.shape, name
        if want.dtype.name == "bfloat16":  # ml_dtypes' type: widened exactly on reading
            assert got.dtype == np.float32 and model.info(name).dtype == "bfloat16"
            want = want.astype(np.float32)
        np.testing.assert_array_equal(got, want, err_msg=name)


def _seq_kinds(model: LoadedModel) -> None:
    kinds = {i.name: i.kind for i in model.infos}
    assert kinds["conv.kernel"] == "conv"  # HWIO, 4-D
    assert kinds["fc1.kernel"] == kinds["fc2.kernel"] == "fc"  # [in, out]
    assert kinds["conv.bias"] == kinds["fc1.bias"] == "bias"
    # BatchNorm: scale and shift are norm weights, the moving statistics are buffers.
    assert {kinds[f"bn.{v}"] for v in ("gamma", "beta")} == {"norm"}
    assert {kinds[f"bn.{v}"] for v in ("moving_mean", "moving_variance")} == {"buffer"}


@pytest.mark.parametrize("name", ["seq.keras", "seq.h5"])
def test_read_model_through_the_child(saved: Saved, name: str) -> None:
    model = read_model(saved.folder / name)
    assert_model(model, saved.seq)
    _seq_kinds(model)
    assert model.metadata["model_class"] == "Sequential"
    assert model.metadata["keras_version"].startswith("3.")
    layout = "keras3" if name.endswith(".keras") else "legacy_h5"
    assert model.metadata["keras_layout"] == layout


def test_legacy_h5_skips_optimizer_weights(saved: Saved) -> None:
    with h5py.File(saved.folder / "seq.h5") as f:
        assert "optimizer_weights" in f and "model_weights" in f  # the test means something
    model = keras_file.read_keras_here(saved.folder / "seq.h5")
    assert not any("adam" in n or "optimizer" in n for n in model.tensors)


def test_tf_keras_save_weights_layout(saved: Saved) -> None:
    with h5py.File(saved.folder / "seq_root.h5") as f:
        assert "layer_names" in f.attrs and "model_weights" not in f
    assert_model(keras_file.read_keras_here(saved.folder / "seq_root.h5"), saved.seq)


def test_keras3_weights_file_without_config(saved: Saved) -> None:
    # No config: groups come in key order and classes are read off the keys (conv2d, dense_1).
    model = keras_file.read_keras_here(saved.folder / "seq.weights.h5")
    assert_model(model, saved.seq, ordered=False)
    _seq_kinds(model)


@pytest.mark.parametrize("name", ["func.keras", "func.h5"])
def test_nested_and_wrapped_layers(saved: Saved, name: str) -> None:
    model = keras_file.read_keras_here(saved.folder / name)
    assert_model(model, saved.func)
    assert model.info("inner.a.kernel").kind == "fc"
    assert model.info("bidi.forward_lstm.lstm_cell.recurrent_kernel").kind == "fc"


@pytest.mark.parametrize("name", ["att.keras", "att.h5", "att.weights.h5"])
def test_gru_and_attention_layers(saved: Saved, name: str) -> None:
    # Keras 3 saves the projections under attribute keys (query_dense, _gate_dense) in no
    # useful order; they get the legacy file's names and, given a config, its order.
    model = keras_file.read_keras_here(saved.folder / name)
    assert_model(model, saved.att, ordered=not name.endswith(".weights.h5"))
    kinds = {i.name: i.kind for i in model.infos}
    assert kinds["gru.gru_cell.bias"] == "bias"  # 2-D, yet no matrix to compress
    for layer in ("mha", "gated", "gqa"):
        for p in PROJECTIONS:
            assert kinds[f"{layer}.{p}.kernel"] == "fc"  # 3-D: heads split out, not a conv
    assert kinds["gated.gate.kernel"] == "fc"
    assert {kinds[n] for n in kinds if n.endswith(".bias")} == {"bias"}  # 1-D and 2-D


def test_weight_entries_name_the_datasets(saved: Saved) -> None:
    entries = keras_file.read_weight_entries(saved.folder / "seq.h5")
    assert [e.name for e in entries] == SEQ_NAMES
    with h5py.File(saved.folder / "seq.h5") as f:
        for entry in entries:
            want = saved.seq[entry.name]
            assert f[entry.dataset].shape == want.shape


def test_sniffing(saved: Saved, tmp_path: Path) -> None:
    for name in ("seq.keras", "seq.h5", "seq.weights.h5", "seq_root.h5", "func.h5"):
        head = (saved.folder / name).read_bytes()[:1024]
        assert keras_file.sniff_keras(head), name
    data = tmp_path / "mnist_test.h5"  # evaluation data: HDF5 too, but not ours
    with h5py.File(data, "w") as f:
        f["x"] = np.zeros((4, 28, 28), np.uint8)
        f["y"] = np.arange(4)
    assert not keras_file.sniff_keras(data.read_bytes()[:1024])
    assert "no Keras weights" in str(_one_line_error(data))  # chosen by extension only


def _one_line_error(path: Path, read: Callable[[Path], object] = read_model) -> InputError:
    with pytest.raises(InputError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return info.value


# ---------------------------------------------------------------------------- hostile files


def _keras3_file(path: Path, fill: Callable[[h5py.Group], None]) -> Path:
    with h5py.File(path, "w") as f:
        vars_ = f.create_group("layers/dense/vars")
        vars_.attrs["name"] = "dense"
        fill(vars_)
    return path


def test_huge_claimed_shape_is_refused(tmp_path: Path) -> None:
    path = _keras3_file(
        tmp_path / "huge.weights.h5",
        lambda g: g.create_dataset("0", shape=(1 << 20, 1 << 20), dtype="f4"),  # never written
    )
    assert "more than the file holds" in str(_one_line_error(path, keras_file.read_keras_here))


def test_links_to_other_files_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "other.h5"
    with h5py.File(secret, "w") as f:
        f["data"] = np.arange(6, dtype=np.float32).reshape(2, 3)

    def link(g: h5py.Group) -> None:
        g["0"] = h5py.ExternalLink(str(secret), "/data")

    path = _keras3_file(tmp_path / "link.weights.h5", link)
    message = str(_one_line_error(path, keras_file.read_keras_here))
    assert "outside the file" in message


def test_string_weights_are_refused(tmp_path: Path) -> None:
    path = _keras3_file(tmp_path / "s.weights.h5", lambda g: g.create_dataset("0", data=[b"x"]))
    assert "unsupported dtype" in str(_one_line_error(path, keras_file.read_keras_here))


def _damaged(saved: Saved, tmp_path: Path) -> list[Path]:
    """Truncations and byte flips of both layouts; flip positions fixed by a seed."""
    rng = np.random.default_rng(7)
    paths = []
    for name in ("seq.keras", "seq.h5"):
        data = (saved.folder / name).read_bytes()
        for fraction in (0.02, 0.5, 0.999):
            cut = tmp_path / f"cut{fraction}_{name}"
            cut.write_bytes(data[: int(len(data) * fraction)])
            paths.append(cut)
        for pos in rng.integers(0, min(len(data), 4096), size=3):  # the metadata-dense start
            flipped = bytearray(data)
            flipped[pos] ^= 0xFF
            path = tmp_path / f"flip{pos}_{name}"
            path.write_bytes(bytes(flipped))
            paths.append(path)
    return paths


def test_damaged_files_give_one_input_error(saved: Saved, tmp_path: Path) -> None:
    def outcome(path: Path) -> str:
        try:
            read_model(path)
        except InputError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message, message
            return "refused"
        return "read"  # a flip inside weight values or unused bytes is undetectable

    paths = _damaged(saved, tmp_path)
    with ThreadPoolExecutor(4) as pool:  # each read is a child process; overlap their start-up
        outcomes = dict(zip(paths, pool.map(outcome, paths), strict=True))
    assert all(outcomes[p] == "refused" for p in paths if p.name.startswith("cut"))


# runpy.run_path stands in for a reader: the child runs the "model file" as a script, so the
# script decides how the reader misbehaves.
@pytest.mark.parametrize(
    ("script", "timeout", "problem"),
    [
        ("import faulthandler\nfaulthandler._sigsegv()\n", None, "HDF5 crashed reading it"),
        ("import time\ntime.sleep(60)\n", 0.5, "took over"),
        ("import os, sys\nos.write(1, b'12345678')\nos._exit(0)\n", None, "broke off"),
    ],
    ids=["crash", "hang", "garbage"],
)
def test_a_misbehaving_reader_is_contained(
    tmp_path: Path, script: str, timeout: float | None, problem: str
) -> None:
    path = tmp_path / "model.h5"
    path.write_text(script)

    def read(p: Path) -> LoadedModel:
        return isolated.read_isolated(runpy.run_path, p, "HDF5", timeout=timeout)

    assert problem in str(_one_line_error(path, read))
