"""Write-back into Keras files made by Keras 3 itself (torch backend), checked by loading them.

Importing Keras takes seconds, so one module-scoped fixture builds and saves every model and
keeps the Keras module for the checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from inspector import cli
from inspector.errors import InputError
from inspector.format.container import open_container
from inspector.io import keras_writeback, read_model, write_back

# Keras 3 with numpy 2 warns on every get_weights(); not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning",
    "ignore:You are saving your model as an HDF5 file",
)

# Every file the fixture saves, and how Keras loads it back.
FILES = ["cnn.keras", "cnn.h5", "cnn.weights.h5", "rnn.keras", "rnn.h5", "half.keras"]


@dataclass(frozen=True)
class Saved:
    folder: Path
    keras: Any  # the keras module, imported once with the torch backend
    inputs: dict[str, np.ndarray]  # an input batch per model


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_BACKEND", "torch")  # read once, when keras is first imported
        keras = pytest.importorskip("keras")
    layers = keras.layers
    rng = np.random.default_rng(0)
    cnn = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            layers.Conv2D(3, 3, name="conv"),
            layers.BatchNormalization(name="bn"),
            layers.Flatten(name="flat"),
            layers.Dense(4, name="fc1"),
            layers.Dense(2, use_bias=False, name="fc2"),
        ],
        name="cnn",
    )
    inp = keras.Input((5, 4))
    seq = layers.GRU(3, return_sequences=True, name="gru")(inp)
    att = layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(seq, seq)
    inner = keras.Sequential([layers.Dense(4, name="a"), layers.Dense(3, name="b")], name="inner")
    rnn = keras.Model(inp, inner(att), name="rnn")
    # Keras cannot load its own legacy .h5 of a bfloat16 layer, so this one is .keras only.
    half = keras.Sequential([keras.Input((3,)), layers.Dense(2, name="d", dtype="bfloat16")])
    for model in (cnn, rnn, half):
        # Distinct values everywhere; BatchNorm's variance positive.
        model.set_weights([np.abs(rng.normal(size=w.shape)) + 0.1 for w in model.weights])
    for model in (cnn, rnn):
        model.compile(optimizer="adam", loss="mse")
        model.optimizer.build(model.trainable_variables)  # so the files hold optimizer state
    folder = tmp_path_factory.mktemp("keras_wb")
    cnn.save(folder / "cnn.keras")
    cnn.save(folder / "cnn.h5")
    cnn.save_weights(folder / "cnn.weights.h5")
    rnn.save(folder / "rnn.keras")
    rnn.save(folder / "rnn.h5")
    half.save(folder / "half.keras")
    inputs = {
        "cnn": rng.normal(size=(3, 6, 6, 2)).astype(np.float32),
        "rnn": rng.normal(size=(3, 5, 4)).astype(np.float32),
        "half": rng.normal(size=(3, 3)).astype(np.float32),
    }
    return Saved(folder, keras, inputs)


def _load(saved: Saved, path: Path) -> Any:
    """The Keras model in ``path``; a weights-only file goes into a fresh load of its model."""
    if path.name.endswith(".weights.h5"):
        model = saved.keras.saving.load_model(saved.folder / "cnn.keras", compile=False)
        model.load_weights(path)
        return model
    # Not compiled: Keras 3 fails to restore the "mse" loss of its own legacy .h5.
    return saved.keras.saving.load_model(path, compile=False)


def _predict(saved: Saved, model: Any, name: str) -> np.ndarray:
    out = model.predict(saved.inputs[name.split(".")[0]], verbose=0)
    return np.asarray(out, dtype=np.float32)


def _with_weights(saved: Saved, source: Path, names: list[str], values: dict[str, Any]) -> Any:
    """The source model loaded by Keras, ``values`` set through ``set_weights``.

    A reader name and its Keras variable's path end alike: ``inner.a.kernel`` is ``a/kernel``
    in one model and ``cnn/conv/kernel`` is ``conv.kernel`` in another.
    """
    model = _load(saved, source)
    order = []
    for w in model.weights:
        path = w.path.replace("/", ".")
        order += [n for n in names if f".{n}".endswith(f".{path}") or f".{path}".endswith(f".{n}")]
    assert sorted(order) == sorted(names)  # one name per variable
    model.set_weights([values[n] for n in order])
    return model


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _as_stored(value: np.ndarray, dtype: str) -> np.ndarray:
    """What a file storing ``dtype`` holds for ``value``, widened as the reader widens it."""
    if dtype == "bfloat16":
        import ml_dtypes  # Keras's own bfloat16, as an independent check of the rounding

        # Through float32, as the writer (and torch) round float64 into bfloat16.
        return value.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
    return value.astype(dtype)


def _changed(model_tensors: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """New values for every tensor, in float64 so the writer must cast; variances positive."""
    rng = np.random.default_rng(seed)
    return {
        n: np.abs(rng.normal(size=a.shape)) + 0.5 if "variance" in n else rng.normal(size=a.shape)
        for n, a in model_tensors.items()
    }


# ------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", FILES)
def test_round_trip_loads_and_predicts_in_keras(saved: Saved, tmp_path: Path, name: str) -> None:
    source = saved.folder / name
    before = _digest(source)
    model = read_model(source)
    new = _changed(model.tensors, seed=len(name))
    out = tmp_path / f"copy_{name}"
    write_back(source, out, new)

    assert _digest(source) == before  # the source is never touched
    back = read_model(out)
    assert list(back.tensors) == list(model.tensors)
    assert back.dtypes == model.dtypes
    for n, value in new.items():
        want = _as_stored(value, model.info(n).dtype)
        assert back.tensors[n].tobytes() == want.tobytes(), n  # bitwise, dtype kept

    names = list(model.tensors)
    expected = _predict(saved, _with_weights(saved, source, names, new), name)
    got = _predict(saved, _load(saved, out), name)
    np.testing.assert_array_equal(got, expected)
    assert not np.allclose(got, _predict(saved, _load(saved, source), name))


def test_kinds_of_gru_and_attention(saved: Saved) -> None:
    for name in ("rnn.keras", "rnn.h5"):  # both layouts: the same names, order and kinds
        kinds = {i.name: i.kind for i in read_model(saved.folder / name).infos}
        assert list(kinds) == [
            "gru.gru_cell.kernel", "gru.gru_cell.recurrent_kernel", "gru.gru_cell.bias",
            *(f"mha.{p}.{v}" for p in ("query", "key", "value", "attention_output")
              for v in ("kernel", "bias")),
            "inner.a.kernel", "inner.a.bias", "inner.b.kernel", "inner.b.bias",
        ]  # fmt: skip
        assert kinds["gru.gru_cell.bias"] == "bias"  # (2, 9): reset_after keeps two rows
        for p in ("query", "key", "value", "attention_output"):
            assert kinds[f"mha.{p}.kernel"] == "fc"  # 3-D, heads split out
            assert kinds[f"mha.{p}.bias"] == "bias"


def test_tensors_not_named_keep_every_byte(saved: Saved, tmp_path: Path) -> None:
    source = saved.folder / "rnn.keras"
    model = read_model(source)
    kernel = model.tensors["mha.query.kernel"]
    out = tmp_path / "one.keras"
    write_back(source, out, {"mha.query.kernel": -kernel})

    back = read_model(out)
    np.testing.assert_array_equal(back.tensors["mha.query.kernel"], -kernel)
    for n, value in model.tensors.items():
        if n != "mha.query.kernel":
            assert back.tensors[n].tobytes() == value.tobytes(), n
    with zipfile.ZipFile(source) as a, zipfile.ZipFile(out) as b:
        assert a.namelist() == b.namelist()  # metadata.json first: the sniffer needs it
        for info in a.infolist():
            other = b.getinfo(info.filename)
            assert (other.compress_type, other.date_time) == (info.compress_type, info.date_time)
            if info.filename != "model.weights.h5":
                assert a.read(info) == b.read(other), info.filename
        # Attributes, optimizer state and all other datasets of the weights are kept too.
        old, new = (h5py.File(io.BytesIO(z.read("model.weights.h5"))) for z in (a, b))
        with old, new:
            assert "optimizer" in old  # the comparison covers optimizer state
            skip = "query_dense/vars/0"
            assert _h5_items(old, skip) == _h5_items(new, skip)


def test_archive_extras_are_copied(saved: Saved, tmp_path: Path) -> None:
    # Assets (a folder, a deflated file) and an archive comment, as another writer might add.
    source = tmp_path / "extra.keras"
    with zipfile.ZipFile(saved.folder / "cnn.keras") as a, zipfile.ZipFile(source, "w") as b:
        for info in a.infolist():
            b.writestr(info, a.read(info))
        b.writestr("assets/", b"")
        b.writestr("assets/vocab.txt", b"cat\ndog\n" * 50, zipfile.ZIP_DEFLATED)
        b.comment = b"made by hand"
    out = tmp_path / "extra_copy.keras"
    write_back(source, out, {"fc1.bias": np.ones(4)})
    with zipfile.ZipFile(source) as a, zipfile.ZipFile(out) as b:
        assert b.comment == b"made by hand"
        kept = [(i.filename, i.compress_type, i.is_dir()) for i in a.infolist()]
        assert [(i.filename, i.compress_type, i.is_dir()) for i in b.infolist()] == kept
        assert b.read("assets/vocab.txt") == a.read("assets/vocab.txt")
        assert b.testzip() is None
    np.testing.assert_array_equal(read_model(out).tensors["fc1.bias"], np.ones(4))


def test_legacy_h5_keeps_everything_else(saved: Saved, tmp_path: Path) -> None:
    source = saved.folder / "cnn.h5"
    model = read_model(source)
    out = tmp_path / "one.h5"
    write_back(source, out, {"fc1.kernel": np.zeros_like(model.tensors["fc1.kernel"])})
    assert not read_model(out).tensors["fc1.kernel"].any()
    with h5py.File(source) as old, h5py.File(out) as new:
        assert "optimizer_weights" in old and "model_config" in old.attrs
        assert _h5_items(old, skip="fc1/kernel") == _h5_items(new, skip="fc1/kernel")


def _h5_items(f: h5py.File, skip: str) -> dict[str, Any]:
    """Every object's attributes and every dataset's dtype, shape and bytes, but ``skip``'s."""
    out: dict[str, Any] = {"/": sorted((k, repr(v)) for k, v in f.attrs.items())}

    def visit(name: str, obj: Any) -> None:
        attrs = sorted((k, repr(v)) for k, v in obj.attrs.items())
        if isinstance(obj, h5py.Dataset) and skip not in name:
            out[name] = (attrs, obj.dtype.str, obj.shape, obj[()].tobytes())
        else:
            out[name] = attrs

    f.visititems(visit)
    return out


def test_compressed_weights_go_back_into_keras(
    saved: Saved, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = saved.folder / "rnn.keras"
    assert cli.main(["info", str(source), "--json"]) == 0
    kinds = {la["name"]: la["kind"] for la in json.loads(capsys.readouterr().out)["layers"]}
    assert kinds["mha.value.kernel"] == "fc" and kinds["gru.gru_cell.bias"] == "bias"
    dcz = tmp_path / "rnn.dcz"
    # The paper's pruning: the safe default may keep a tiny kernel exact, and this test
    # checks that quantized weights go back.
    assert cli.main(["compress", str(source), "-o", str(dcz), "--sparsity", "0.5"]) == 0
    box = open_container(dcz)
    decoded = {r.name: box.read_layer(i) for i, r in enumerate(box.records)}
    # Kernels (the attention ones too) compressed, biases kept exactly.
    coded = {r.name for r in box.records if r.deep is not None}
    assert {"mha.query.kernel", "mha.attention_output.kernel", "gru.gru_cell.kernel"} <= coded
    assert not any(n.endswith("bias") for n in coded)
    out = tmp_path / "rnn_compressed.keras"
    write_back(source, out, decoded)

    model = read_model(source)
    names = list(model.tensors)
    values = {n: decoded.get(n, model.tensors[n]) for n in names}
    expected = _predict(saved, _with_weights(saved, source, names, values), "rnn")
    np.testing.assert_array_equal(_predict(saved, _load(saved, out), "rnn"), expected)
    back = read_model(out)
    for n in coded:
        np.testing.assert_array_equal(back.tensors[n], decoded[n], err_msg=n)
        assert not np.array_equal(back.tensors[n], model.tensors[n]), n  # it did quantize


# ------------------------------------------------------------------------------------ refusals


def _one_line(exc: pytest.ExceptionInfo[InputError], path: Path | None) -> str:
    message = str(exc.value)
    assert "\n" not in message
    if path is not None:
        assert message.startswith(f"{path}: "), message
    return message


def test_a_shape_or_name_the_source_lacks_is_refused(saved: Saved, tmp_path: Path) -> None:
    source = saved.folder / "cnn.keras"
    out = tmp_path / "bad.keras"
    with pytest.raises(InputError) as exc:
        write_back(source, out, {"conv.kernel": np.zeros((1, 2, 3))})
    assert "shape" in _one_line(exc, out)
    with pytest.raises(InputError) as exc:
        write_back(source, out, {"conv.nothing": np.zeros(3)})
    assert "no tensor" in _one_line(exc, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no scratch files left


def test_the_child_reports_problems_in_one_line(saved: Saved, tmp_path: Path) -> None:
    # Straight to the rewriter, past write_back's checks: the child itself must refuse.
    target = tmp_path / "t.h5"
    with pytest.raises(InputError) as exc:
        keras_writeback.rewrite_keras(saved.folder / "cnn.h5", target, {"nope": np.zeros(2)})
    message = _one_line(exc, None)
    assert "cnn.h5" in message and "no weight 'nope'" in message
    with pytest.raises(InputError) as exc:
        keras_writeback.rewrite_keras(saved.folder / "cnn.h5", target, {"fc2.kernel": np.zeros(2)})
    assert "shape" in _one_line(exc, None)
    with pytest.raises(InputError) as exc:
        keras_writeback.rewrite_keras(
            saved.folder / "cnn.h5", target, {"fc2.kernel": np.zeros((4, 2), complex)}
        )
    assert "complex" in _one_line(exc, None)


def test_a_source_damaged_since_reading_is_refused(saved: Saved, tmp_path: Path) -> None:
    for name in ("cnn.keras", "cnn.h5"):
        data = (saved.folder / name).read_bytes()
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(data[: len(data) // 2])
        target = tmp_path / f"t_{name}"
        with pytest.raises(InputError) as exc:
            keras_writeback.rewrite_keras(cut, target, {"fc1.bias": np.zeros(4)})
        assert f"cut_{name}" in _one_line(exc, None)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # scratch removed


def test_links_out_of_the_file_are_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.h5"
    with h5py.File(victim, "w") as f:
        f["data"] = np.arange(2, dtype=np.float32)
    source = tmp_path / "link.weights.h5"
    with h5py.File(source, "w") as f:
        group = f.create_group("layers/dense/vars")
        group.attrs["name"] = "dense"
        group["0"] = h5py.ExternalLink(str(victim), "/data")
    before = _digest(victim)
    with pytest.raises(InputError) as exc:
        keras_writeback.rewrite_keras_here(source, tmp_path / "t.h5", {"dense.kernel": np.ones(2)})
    assert "outside the file" in str(exc.value)
    assert _digest(victim) == before
