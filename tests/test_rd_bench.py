"""The rate-distortion benchmark's own pieces (benchmarks/rd_*.py), on small synthetic models:
the int-N + zstd baseline decodes what it encoded, the "ours" hook sweeps a method written to
the stage contract and skips when none is registered, the table picks the smallest point that
meets each level, and (when installed) NNCodec round-trips a tensor dict."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from inspector.core.stages import registry
from inspector.core.stages.base import Option, Options, Plan
from inspector.io.model_file import LoadedModel, TensorInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
rd_codecs = pytest.importorskip("rd_codecs")  # needs zstandard (the bench extra)
import rd_models  # noqa: E402
import rd_nnc  # noqa: E402
import rd_ours  # noqa: E402
import rd_table  # noqa: E402


def subject(measure=None) -> rd_models.Subject:
    rng = np.random.default_rng(0)
    tensors = {"fc.weight": rng.standard_normal((16, 40)).astype(np.float32) * 0.1,
               "fc.bias": rng.standard_normal(16).astype(np.float32),
               "conv.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32)}
    kinds = {"fc.weight": "fc", "fc.bias": "bias", "conv.weight": "conv"}
    infos = tuple(TensorInfo(k, kinds[k], v.shape, "float32") for k, v in tensors.items())
    model = LoadedModel("toy.pt", "torch", dict(tensors), infos, {})

    def sqnr(w: dict[str, np.ndarray]) -> rd_models.Score:
        err = sum(float(((w[k] - v) ** 2).sum()) for k, v in tensors.items())
        return rd_models.Score(1.0 - err / sum(float((v**2).sum()) for v in tensors.values()),
                               "")

    return rd_models.Subject("toy", model, tensors, measure or sqnr, "cosine", (0.999, 0.99),
                             0, "energy kept")


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
def test_intn_decodes_its_own_levels(bits: int) -> None:
    s = subject()
    lossy = rd_codecs.lossy(s)
    assert lossy == ["fc.weight", "conv.weight"]  # the bias stays float32
    frame = rd_codecs.intn_encode(s.tensors, lossy, bits)
    got = rd_codecs.intn_decode(frame)
    assert np.array_equal(got["fc.bias"], s.tensors["fc.bias"])
    for name in lossy:
        w = s.tensors[name].reshape(s.tensors[name].shape[0], -1)
        top = (1 << (bits - 1)) - 1
        scale = (np.abs(w).max(axis=1) / top).astype(np.float32)
        want = (np.rint(w / scale[:, None]) * scale[:, None]).astype(np.float32)
        assert np.allclose(got[name].reshape(w.shape), want, rtol=0, atol=1e-7)
        assert (got[name] < 0).any()  # negative levels survive the 4-bit packing


class Toy:
    """A uniform quantizer with a step, zlib-coded: just enough of the stage contract."""

    name: ClassVar[str] = "toy"
    code: ClassVar[int] = 250
    options: ClassVar[tuple[Option, ...]] = (Option("step", float, 0.01, lo=1e-4, hi=1.0),)

    def bind(self, weights, shape, importance=None):
        return _ToyLayer(np.asarray(weights, np.float32))

    def decode(self, params: bytes, payload: bytes, shape) -> np.ndarray:
        step = np.frombuffer(params, np.float32)[0]
        return np.frombuffer(zlib.decompress(payload), np.int16).astype(np.float32) * step


class _ToyLayer:
    def __init__(self, w: np.ndarray) -> None:
        self.w = w

    def encode(self, options: Options) -> tuple[Plan, bytes]:
        step = np.float32(options["step"])
        q = np.rint(self.w / step).astype(np.int16)
        payload = zlib.compress(q.tobytes(), 9)
        err = float(((q * step - self.w) ** 2).sum())
        plan = Plan("toy", options, step.tobytes(), len(payload), err,
                    float((self.w**2).sum()), int((q == 0).sum()))
        return plan, payload

    def plan(self, options: Options) -> Plan:
        return self.encode(options)[0]


def test_ours_hook_skips_without_methods_and_sweeps_a_registered_one(monkeypatch) -> None:
    monkeypatch.setattr(registry, "METHODS", {})
    assert rd_ours.methods() == []
    monkeypatch.setattr(registry, "METHODS", {"toy": Toy()})
    (m,) = rd_ours.methods()
    assert rd_ours.knob(m).name == "step"
    s = subject()
    pts = list(rd_codecs.measured("ours: toy", s, rd_ours.ours_points(s, m, 6, {})))
    assert 2 <= len(pts) <= 6
    sizes = [p.nbytes for p in pts]
    assert sizes == sorted(sizes)  # planned first, measured smallest to largest
    assert all(s.fp32_nbytes / n >= rd_ours.RATIOS[0] for n in sizes)
    assert pts[-1].score.value > pts[0].score.value  # finer steps keep more
    given = rd_ours.parse_override(["toy:step=0.001,0.1"])
    assert given == {"toy": {"step": [0.001, 0.1]}}
    labels = [lb for lb, _, _ in rd_ours.ours_points(s, m, 6, given["toy"])]
    assert labels == ["step 0.1", "step 0.001"]


def test_table_takes_the_smallest_point_that_meets_each_level() -> None:
    s = subject()
    pts = [rd_codecs.Point("NNCodec", "qp -30", 900, rd_models.Score(0.9995, "")),
           rd_codecs.Point("NNCodec", "qp -20", 500, rd_models.Score(0.995, "")),
           rd_codecs.Point("Deep Compression", "a", 700, rd_models.Score(0.9991, "")),
           rd_codecs.Point("Deep Compression", "b", 400, rd_models.Score(0.98, ""))]
    text = rd_table.markdown(s, pts)
    row999 = next(r for r in text.splitlines() if r.startswith("| cosine >= 0.999 "))
    row99 = next(r for r in text.splitlines() if r.startswith("| cosine >= 0.99 "))
    assert "(900 B)" in row999 and "(700 B)" in row999 and "1.29x (wins)" in row999
    assert "(500 B)" in row99 and "(700 B)" in row99 and "0.71x (loses)" in row99
    assert "cosine >= 0.99: NNCodec 500 B, our best (Deep Compression (sweep)) 700 B" in text
    rows = rd_table.summary([(s, pts)]).splitlines()
    assert any("cosine >= 0.99 " in r and "| NNCodec " in r and "0.71x (loses)" in r for r in rows)


@pytest.mark.skipif(rd_nnc.load() is None, reason="nncodec is not installed")
def test_nncodec_round_trips_a_tensor_dict() -> None:
    s = subject()
    bs = rd_nnc.encode(s.tensors, rd_nnc.Setting(-40))
    got = rd_nnc.decode(bs)
    assert set(got) == set(s.tensors)
    for k, v in s.tensors.items():
        assert got[k].size == v.size
        assert np.abs(got[k].reshape(v.shape) - v).max() < 0.01
