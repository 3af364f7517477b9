"""One model-wide rate knob (inspector.tasks.target): the file written meets a ratio target
within 1% on the bundled LeNets and a synthetic model, a per-layer override keeps its own
value, a fidelity target is met by the coarsest knob, and closing the task stops it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.errors import SettingsError
from inspector.io import read_model
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, Progress, compress
from inspector.tasks.drive import run_to_end
from inspector.tasks.target import Target, fp32_nbytes, solve, with_best_method

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"


def synthetic(path: Path) -> LoadedModel:
    rng = np.random.default_rng(3)
    tensors = {
        "conv.weight": (rng.standard_normal((16, 3, 3, 3)) * 0.2).astype(np.float32),
        "conv.bias": rng.standard_normal(16).astype(np.float32),
        "fc1.weight": (rng.laplace(size=(200, 144)) * 0.05).astype(np.float32),
        "fc2.weight": (rng.standard_normal((10, 200)) * np.linspace(0.01, 1, 200)
                       ).astype(np.float32),
    }
    infos = tuple(TensorInfo(n, layer_kind(n, a.shape, a.dtype.name), a.shape, a.dtype.name)
                  for n, a in tensors.items())
    path.write_bytes(b"stands in for the source model")
    return LoadedModel(str(path), "numpy", tensors, infos, {})


def _written_ratio(codec: ModelCodec, settings: ModelSettings, out: Path) -> float:
    _, nbytes = run_to_end(compress(codec, settings, out))
    assert out.stat().st_size == nbytes
    return fp32_nbytes(codec) / nbytes


@pytest.mark.parametrize("name", ["lenet300_100.pt", "lenet5.pt", "synthetic"])
@pytest.mark.parametrize("ratio", [9.0, 21.0])
def test_ratio_of_the_file_written_is_within_one_percent(tmp_path, name, ratio):
    model = synthetic(tmp_path / "m.npz") if name == "synthetic" else read_model(SAMPLES / name)
    codec = ModelCodec(model)
    result = run_to_end(solve(codec, with_best_method(ModelSettings()), Target("ratio", ratio)))
    assert result.met and result.knob == "rel_step"
    written = _written_ratio(codec, result.settings, tmp_path / "out.dcz")
    assert ratio <= written <= ratio * 1.01, written
    assert written == pytest.approx(result.ratio)
    assert result.settings.defaults["rel_step"] == result.value


def test_a_per_layer_override_survives_and_bytes_are_a_budget(tmp_path):
    codec = ModelCodec(synthetic(tmp_path / "m.npz"))
    base = with_best_method(ModelSettings()).with_layer("fc2.weight", rel_step=0.01)
    budget = fp32_nbytes(codec) // 12
    result = run_to_end(solve(codec, base, Target("bytes", budget)))
    assert result.met and result.file_nbytes <= budget
    assert result.settings.layers == {"fc2.weight": {"rel_step": 0.01}}
    info = {i.name: i for i in codec.model.infos}
    fc2 = result.settings.resolve("fc2.weight", info["fc2.weight"].kind)
    fc1 = result.settings.resolve("fc1.weight", info["fc1.weight"].kind)
    assert fc2.options["rel_step"] == 0.01
    assert fc1.options["rel_step"] == result.value != 0.01
    assert _written_ratio(codec, result.settings, tmp_path / "o.dcz") >= 12


def test_a_fidelity_floor_gets_the_coarsest_knob_meeting_it(tmp_path):
    codec = ModelCodec(synthetic(tmp_path / "m.npz"))
    base = with_best_method(ModelSettings())
    result = run_to_end(solve(codec, base, Target("layer_sqnr", 30.0)))
    assert result.met and result.min_layer_sqnr_db >= 30.0
    coarser = run_to_end(solve(codec, base, Target("bytes", result.file_nbytes - 200)))
    assert coarser.min_layer_sqnr_db < 30.0  # a smaller file misses the floor
    wide = run_to_end(solve(codec, base, Target("sqnr", 30.0)))
    assert wide.sqnr_db >= 30.0 and wide.file_nbytes <= result.file_nbytes


def test_an_unreachable_target_says_so(tmp_path):
    codec = ModelCodec(synthetic(tmp_path / "m.npz"))
    result = run_to_end(solve(codec, with_best_method(ModelSettings()), Target("bytes", 50)))
    assert not result.met and result.file_nbytes > 50


def test_lambda_knob_and_deep_refused(tmp_path):
    codec = ModelCodec(synthetic(tmp_path / "m.npz"))
    base = with_best_method(ModelSettings()).with_defaults(rel_step=1 / 64)
    plain = codec.estimate(base).file_nbytes
    result = run_to_end(solve(codec, base, Target("bytes", int(plain * 0.97)), knob="lam"))
    assert result.met and result.knob == "lam" and result.value > 0
    with pytest.raises(SettingsError, match="rate knob"):
        run_to_end(solve(codec, ModelSettings(), Target("ratio", 10)))


def test_closing_the_task_stops_it_between_estimates(tmp_path):
    codec = ModelCodec(synthetic(tmp_path / "m.npz"))
    calls = []
    real = codec.estimate
    codec.estimate = lambda s, progress=None: calls.append(s) or real(s)  # type: ignore
    steps: list[Progress] = []
    out = run_to_end(solve(codec, with_best_method(ModelSettings()), Target("ratio", 10)),
                     steps.append, should_stop=lambda: len(steps) >= 3)
    assert out is None and len(calls) == 2  # the third step was yielded before its estimate
    assert all(isinstance(s, Progress) for s in steps)


def test_check_stops_an_estimate_between_layers(tmp_path):
    codec = ModelCodec(synthetic(tmp_path / "m.npz"))
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 6:  # inside the second estimate (4 tensors each)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_end(solve(codec, with_best_method(ModelSettings()), Target("ratio", 10),
                         check=check))
    assert len(calls) == 6
