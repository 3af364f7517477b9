"""scripts/paper_results.py on a tiny slice: its sizes and accuracies come from the written files.

The full run takes minutes and is not part of the suite; this runs LeNet-300-100 fine-tuned for
one epoch on 200 digits and checks every figure the script reports against the file on disk and
an independent ``inspector eval --compressed`` of it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from inspector import cli
from inspector.format.container import open_container
from inspector.tasks.report import rows_of_container

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "paper_results.py"
SAMPLES = ROOT / "sample_models"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paper_results", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _script()


@pytest.fixture(scope="module")
def result(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> object:
    folder = tmp_path_factory.mktemp("paper_results")
    options = {"prune_epochs": 1, "quant_epochs": 1, "prune_steps": 1, "distill": 0.0}
    return script.run_model("lenet300_100", folder, seeds=(0,), train_limit=200, options=options)


def _cli_eval(capsys: pytest.CaptureFixture[str], dcz: Path) -> dict:
    capsys.readouterr()
    code = cli.main([
        "eval", "--allow-code", str(SAMPLES / "lenet300_100_scripted.pt"), "--compressed", str(dcz),
        "--data", str(SAMPLES / "mnist_test.h5"), "--json",
    ])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_sizes_and_accuracy_are_those_of_the_written_files(
    result: object, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [result.plain, result.tuned[0][1]]
    assert result.tuned[0][0] == 0
    for m in runs:
        assert m.path.is_file()
        assert m.file_nbytes == m.path.stat().st_size
        assert m.original_nbytes == 266_610 * 4
        assert m.ratio == pytest.approx(1_066_440 / m.path.stat().st_size)
        box = open_container(m.path)
        assert [r.compressed_nbytes for r in m.rows] == [
            r.compressed_nbytes for r in rows_of_container(box)
        ]
        measured = _cli_eval(capsys, m.path)
        assert measured["count"] == m.count == 1000
        assert measured["top1"] == pytest.approx(m.top1, abs=1e-12)
        assert measured["baseline_top1"] == pytest.approx(result.baseline_top1, abs=1e-12)
    # The paper's settings without retraining lose accuracy; one epoch of fine-tuning is a
    # different model: the two files must not be confused.
    assert runs[0].file_nbytes != runs[1].file_nbytes
    assert result.baseline_correct == 975


def test_report_shows_the_measured_figures(script: ModuleType, result: object) -> None:
    text = script.render([result], 1.0, "test machine")
    tuned = result.tuned[0][1]
    assert f"{tuned.file_nbytes:,} B" in text
    assert f"{tuned.ratio:.2f}x" in text
    assert f"({tuned.correct}/1000)" in text
    assert f"{result.plain.ratio:.2f}x" in text
    met = tuned.ratio >= 40 and result.baseline_correct - tuned.correct <= 3
    assert ("**met**" in script.verdict(result, tuned)) == met
