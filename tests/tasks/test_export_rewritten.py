"""Exporting a copy of the model in its own format with the decoded weights: verified against
what the compressed file decodes to, cancellable at any step, never over the source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inspector.errors import InputError
from inspector.io import read_model
from inspector.io.model_file import LoadedModel
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec
from inspector.tasks.drive import run_to_end
from inspector.tasks.export import REWRITTEN, export, export_rewritten

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.(script|trace|trace_method|save|load)` is deprecated:DeprecationWarning"
)
SETTINGS_USED = ModelSettings().with_defaults(policy="sparsity", value=0.8)


@pytest.fixture
def model(tmp_path: Path) -> LoadedModel:
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 4))
    net[2].double()
    path = tmp_path / "src" / "net.pt"
    path.parent.mkdir()
    torch.jit.script(net.eval()).save(str(path))
    return read_model(path)


def run(gen):
    steps = []
    return run_to_end(gen, steps.append), steps


def test_the_copy_holds_what_the_compressed_file_decodes_to(model, tmp_path) -> None:
    out = tmp_path / "copy.pt"
    result, steps = run(export(REWRITTEN, model, SETTINGS_USED, out, allow_code=True))
    assert result.verified and result.mismatches == ()
    assert result.path == str(out) and result.nbytes == out.stat().st_size
    assert [s.done for s in steps] == list(range(steps[0].total))
    copy, codec = read_model(out), ModelCodec(model)
    assert copy.format == "torchscript" and copy.dtypes == model.dtypes
    for name, array in copy.tensors.items():
        expected = codec.quantized(name, SETTINGS_USED).astype(array.dtype)
        assert array.tobytes() == expected.tobytes(), name
    assert np.count_nonzero(copy.tensors["0.weight"]) == pytest.approx(0.2 * 1200, abs=2)


def test_closing_at_any_step_leaves_no_file(model, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _, steps = run(export_rewritten(model, SETTINGS_USED, tmp_path / "count.pt", allow_code=True))
    for stop_after in range(1, len(steps) + 1):
        gen = export_rewritten(model, SETTINGS_USED, out / "m.pt", allow_code=True)
        for _ in range(stop_after):
            next(gen)
        gen.close()
        assert list(out.iterdir()) == [], f"left a file after closing at step {stop_after}"


def test_a_copy_that_reads_back_differently_is_reported(model, tmp_path, monkeypatch) -> None:
    from inspector.io import write_back

    def wrong_bias(source, output, tensors, model=None, allow_code=False) -> None:
        wrong = {**tensors, "2.bias": tensors["2.bias"] + 1}
        write_back(source, output, wrong, model, allow_code=allow_code)

    monkeypatch.setattr("inspector.tasks.export.write_back", wrong_bias)
    result, _ = run(export_rewritten(model, SETTINGS_USED, tmp_path / "b.pt", allow_code=True))
    assert result.mismatches == ("2.bias: 4 of 4 values differ",)
    assert not result.verified and (tmp_path / "b.pt").exists()


def test_the_source_is_never_overwritten(model) -> None:
    source = Path(model.path)
    before = source.read_bytes()
    with pytest.raises(InputError, match="refusing to overwrite the source model"):
        run(export_rewritten(model, SETTINGS_USED, source, allow_code=True))
    assert source.read_bytes() == before
    assert [p.name for p in source.parent.iterdir()] == [source.name]
