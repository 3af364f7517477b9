"""Kinds readers supply (with a reason) win over the name guess; constants are kept lossless."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from inspector.io.constants import constant_reason
from inspector.io.kinds import guess_kind
from inspector.io.model_file import LoadedModel, TensorInfo

RNG = np.random.default_rng(0)


def _learned(*shape: int) -> np.ndarray:
    return RNG.normal(0, 0.05, shape).astype(np.float32)


def test_reader_hints_win_over_names_and_carry_their_reason() -> None:
    tensors = {"123": _learned(8, 3, 3, 3), "onnx::MatMul_7": _learned(16, 8), "x": _learned(8)}
    kinds = {"123": ("conv", "feeds Conv 'conv1' as W"), "x": ("bias", "feeds Conv 'conv1' as B")}
    model = LoadedModel.build("m.onnx", "onnx", tensors, kinds=kinds)
    got = {i.name: (i.kind, i.reason) for i in model.infos}
    assert got["123"] == ("conv", "feeds Conv 'conv1' as W")
    assert got["x"] == ("bias", "feeds Conv 'conv1' as B")
    assert got["onnx::MatMul_7"] == ("fc", "2-D tensor")  # no hint: the name guess, with why


def test_an_unknown_kind_hint_falls_back_to_the_guess() -> None:
    hint = {"fc.weight": ("?", "")}
    model = LoadedModel.build("m", "x", {"fc.weight": _learned(4, 4)}, kinds=hint)
    assert model.infos[0].kind == "fc"


def test_every_guess_has_a_reason() -> None:
    assert guess_kind("features.0.weight", (8, 3, 3, 3), "float32") == (
        "conv", "name ends in weight, 4-D")
    assert guess_kind("bn.running_mean", (8,), "float32")[1].startswith("name ends in running_mean")
    assert guess_kind("ids", (8,), "int64") == ("buffer", "int64 values: not a learned weight")
    assert guess_kind("scale", (3,), "float32")[0] == "other"
    assert guess_kind("scale", (3,), "float32")[1]


def test_tensor_info_stays_compatible_with_four_fields() -> None:
    info = TensorInfo("w", "fc", (2, 2), "float32")
    assert (info.reason, info.lossy_ok) == ("", True)


def test_build_records_whether_values_allow_lossy_compression() -> None:
    tensors = {"a": _learned(4, 4), "b": np.arange(4, dtype=np.int64),
               "c": np.array([1.0, np.inf], np.float32)}
    model = LoadedModel.build("m", "x", tensors)
    assert [i.lossy_ok for i in model.infos] == [True, False, False]


def _dft_basis(n_fft: int, window: bool) -> np.ndarray:
    """Silero/torchaudio-style STFT conv weight: cos rows then sin rows, (2F, 1, n_fft)."""
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft) if window else np.ones(n_fft)
    phase = 2 * np.pi * k * n / n_fft
    basis = np.vstack([np.cos(phase) * w, -np.sin(phase) * w])
    return basis[:, None, :].astype(np.float32)


CONSTANTS = [
    ("dfl", np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1), "evenly spaced"),
    ("levels", RNG.choice(np.linspace(-1, 1, 16), (64, 32)).astype(np.float32), "16 distinct"),
    ("ints", RNG.integers(-5, 6, (32, 32)).astype(np.float32), "integers"),
    ("mask", (RNG.random((64, 64)) > 0.5).astype(np.float32), "2 distinct"),
    ("stft", _dft_basis(256, window=True), "DFT"),
    ("dft", _dft_basis(64, window=False)[:, 0, :].T.copy(), "DFT"),  # (n_fft, 2F), a MatMul's
]


@pytest.mark.parametrize(("name", "arr", "why"), CONSTANTS, ids=[c[0] for c in CONSTANTS])
def test_fixed_constants_shaped_like_weights_are_kept_lossless(
    name: str, arr: np.ndarray, why: str
) -> None:
    hint = {"w": ("conv", "feeds Conv 'c' as W")}
    info = LoadedModel.build("m", "x", {"w": arr}, kinds=hint).infos[0]
    assert info.kind == "other"
    assert info.reason.startswith("constant: ") and why in info.reason
    assert "conv" in info.reason  # says what it would have been


LEARNED = [
    _learned(64, 3, 7, 7), _learned(300, 784), _learned(16), _learned(1, 16, 1, 1),
    np.ones((4, 4), np.float32),  # too small to call: test fixtures and tiny layers
    (np.arange(12, dtype=np.float32).reshape(3, 4) - 6) / 8,
    RNG.normal(0, 1, (64, 64)).round(2).astype(np.float32),  # coarse, but hundreds of values
    np.cumsum(_learned(64, 128), axis=1),  # smooth random walks: low-pass, not sinusoids
]


@pytest.mark.parametrize("arr", LEARNED, ids=range(len(LEARNED)))
def test_learned_weights_are_not_called_constants(arr: np.ndarray) -> None:
    assert constant_reason(arr) is None


@pytest.mark.parametrize("shape", [(10_000_000,), (2000, 4000), (4000, 2000, 1, 1)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_constant_checks_are_cheap_on_a_big_layer(shape: tuple[int, ...], order: str) -> None:
    big = np.asarray(_learned(*shape), order=order)  # Fortran order: no copy either
    assert constant_reason(big) is None  # warm up

    def fastest(work: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return min(times)

    # against one pass over the weights, timed alike: the machine's load cancels out
    assert fastest(lambda: constant_reason(big)) < 0.5 * fastest(lambda: np.abs(big).max())


def test_a_big_few_valued_tensor_is_counted_in_full() -> None:
    big = np.zeros(2_000_000, np.float32)
    big[::3] = 0.5
    big[-1] = 0.25  # not in any sample: found by the full pass
    assert constant_reason(big) == "3 distinct values"
    big[-20:] = RNG.normal(size=20)  # now 20 values, so not few
    assert constant_reason(big) is None


def test_layers_a_file_says_are_learned_skip_the_constant_check() -> None:
    clustered = RNG.choice(np.float32([-0.3, -0.1, 0.0, 0.1, 0.3]), (64, 64))
    model = LoadedModel.build("m.dcz", "dcz", {"fc.weight": clustered}, learned={"fc.weight"})
    assert model.infos[0].kind == "fc"
    assert LoadedModel.build("m", "x", {"fc.weight": clustered}).infos[0].kind == "other"
