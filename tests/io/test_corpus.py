"""Replay the committed damaged-file corpus (``tests/corpus/``, made by scripts/make_corpus.py).

Every damaged file must give one InputError line naming the file and saying what is wrong, from
``read_model`` and from ``inspector info`` (exit code 2, one line on stderr, no traceback);
files marked ``"reads"`` must open. Nothing may hang (per-file timeout), run code from the file,
or allocate anywhere near the sizes a hostile header claims. Every ``manifest*.json`` is replayed
(scripts/make_corpus.py writes ``manifest.json``, scripts/corpus_bounds.py
``manifest_bounds.json``, scripts/corpus_dcz.py ``manifest_dcz.json``); an entry with
``memory_nbytes`` runs as if the machine had that much.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import tomllib
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from inspector.cli import main
from inspector.errors import InputError
from inspector.format.container import open_container
from inspector.io import read_model

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
MANIFESTS = sorted(CORPUS.glob("manifest*.json"))
ENTRIES: list[dict[str, Any]] = [
    entry for m in MANIFESTS for entry in json.loads(m.read_text())["entries"]
]
# Whatever a hostile file claims, reading it may take no more than this.
MAX_TRACED_BYTES = 32 << 20
MAX_RSS_GROWTH_KB = 256 << 10
# Set by the hostile pickles' payload, were it ever run.
PWNED = "INSPECTOR_CORPUS_PWNED"
FIX_NOTE = "; once fixed, drop the note in scripts/make_corpus.py and rerun it"

pytestmark = [
    pytest.mark.timeout(30),  # a hang is a failure, not a stuck suite
    # Keras 3 with numpy 2 warns in the child process' imports; not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _params(cli: bool) -> list[Any]:
    params = []
    for entry in ENTRIES:
        bug = entry.get("known_bug") or (entry.get("known_cli_bug") if cli else None)
        marks = [pytest.mark.xfail(reason=bug + FIX_NOTE, strict=True)] if bug else []
        params.append(pytest.param(entry, id=entry["file"], marks=marks))
    return params


@pytest.fixture(autouse=True)
def _machine_memory(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry's ``memory_nbytes``: the memory every bound of this checkout sees."""
    callspec = getattr(request.node, "callspec", None)
    entry = callspec.params.get("entry", {}) if callspec is not None else {}
    memory = entry.get("memory_nbytes")
    if memory is None:
        return
    import inspector.format.container as container_module

    monkeypatch.setattr(container_module, "memory_nbytes", lambda: memory)
    try:
        import inspector.format.verify as verify_module
    except ImportError:  # a checkout without the summed bound: the per-layer one still applies
        return
    monkeypatch.setattr(verify_module, "memory_nbytes", lambda: memory)


@contextmanager
def _bounded_memory(entry: dict[str, Any]) -> Iterator[None]:
    """For files claiming huge sizes: Python and numpy allocations, and the process' peak
    RSS (torch allocates outside tracemalloc's sight), stay far below the claim."""
    if not entry.get("huge"):
        yield
        return
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_TRACED_BYTES, f"{entry['file']}: {peak} bytes allocated"
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown < MAX_RSS_GROWTH_KB, f"{entry['file']}: peak RSS grew by {grown} kB"


def _check_error(exc: InputError, path: Path, entry: dict[str, Any]) -> None:
    message = str(exc)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message and "Traceback" not in message, message
    assert entry["expect"] in exc.problem, f"expected {entry['expect']!r} in {message!r}"


@pytest.fixture(autouse=True)
def _in_scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case runs in an empty folder, where a payload that ran would leave its marker."""
    monkeypatch.chdir(tmp_path)


def _check_no_marker(entry: dict[str, Any]) -> None:
    marker = entry.get("marker")
    assert marker is None or not Path(marker).exists(), f"{entry['file']} ran its code"


@pytest.mark.parametrize("entry", _params(cli=False))
def test_read_model(entry: dict[str, Any]) -> None:
    path = CORPUS / entry["file"]
    with _bounded_memory(entry):
        if entry["expect"] == "reads":
            model = read_model(path)
            assert model.tensors
            assert model.param_count == sum(a.size for a in model.tensors.values())
        else:
            with pytest.raises(InputError) as info:
                read_model(path)
            _check_error(info.value, path, entry)
    assert PWNED not in os.environ
    _check_no_marker(entry)


@pytest.mark.parametrize("entry", [p for p in _params(cli=False) if "equals" in p.values[0]])
def test_repacked_file_reads_as_the_original(entry: dict[str, Any]) -> None:
    """A legal re-packing (deflated members) reads bit for bit as the file it was made from."""
    model, original = read_model(CORPUS / entry["file"]), read_model(CORPUS / entry["equals"])
    assert list(model.tensors) == list(original.tensors)
    assert model.dtypes == original.dtypes
    for name, arr in original.tensors.items():
        got = model.tensors[name]
        assert got.dtype == arr.dtype and got.shape == arr.shape, name
        assert got.tobytes() == arr.tobytes(), f"{entry['file']}: {name} differs"


@pytest.mark.parametrize("entry", [p for p in _params(cli=False) if "compress" in p.values[0]])
def test_compress_refuses(
    entry: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model ``compress`` cannot store faithfully (a complex dtype, no weights at all) is
    one line from it, and no file."""
    out = tmp_path / "out.dcz"
    code = main(["compress", str(CORPUS / entry["file"]), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert entry["compress"] in err and not out.exists(), err


@pytest.mark.parametrize(
    "entry", [p for p in _params(cli=False) if p.values[0]["format"] == "dcz"]
)
def test_open_container_and_every_layer(entry: dict[str, Any]) -> None:
    path = CORPUS / entry["file"]
    with _bounded_memory(entry), pytest.raises(InputError) as info:
        box = open_container(path)
        for index in range(len(box.records)):
            box.read_layer(index)
    _check_error(info.value, path, entry)


@pytest.mark.parametrize("entry", _params(cli=True))
def test_cli_info(entry: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / entry["file"]
    code = main(["info", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if entry["expect"] == "reads":
        assert (code, err) == (0, "")
        assert out.strip()  # a table of the layers
        return
    assert code == 2, out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"inspector: error: {path}: "), err
    assert entry["expect"] in lines[0]
    _check_no_marker(entry)


# ------------------------------------------------------------------------ the corpus itself


def test_manifest_accounts_for_every_file() -> None:
    listed = {m.name for m in MANIFESTS}
    for entry in ENTRIES:
        assert {"file", "format", "damage", "expect"} <= entry.keys(), entry
        assert entry["expect"], entry
        listed |= {entry["file"], *entry.get("companions", ())}
    present = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file()}
    folders = {f for f in listed if (CORPUS / f).is_dir()}
    assert folders == {"any_directory.pt"}
    inside = {f for f in present if f.split("/", 1)[0] in folders}
    assert present - inside == listed - folders
    assert len({e["file"] for e in ENTRIES}) == len(ENTRIES)


def test_every_reader_format_is_covered() -> None:
    covered = {e["format"] for e in ENTRIES}
    assert covered >= {"pt", "ts", "st", "npz", "onnx", "keras", "h5", "caffe", "dcz", "any"}
    assert sum(e["expect"] == "reads" for e in ENTRIES) >= 3
    assert sum(bool(e.get("huge")) for e in ENTRIES) >= 10


def test_corpus_is_small() -> None:
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    # four manifests: the damaged files, and issue 11's hostile files (code, bounds, .dcz v2)
    assert total < 400_000, f"the corpus holds {total} bytes"


def test_corpus_is_committed_not_shipped() -> None:
    """Not hidden by .gitignore, and outside every package a wheel ships."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert not any(p.split(".")[0] == "tests" for p in packages["packages"])
    assert not any("tests" in d for d in packages.get("package-dir", {}).values())
    files = [str(p.relative_to(ROOT)) for p in CORPUS.rglob("*") if p.is_file()]
    try:
        ignored = subprocess.run(
            ["git", "check-ignore", "--no-index", *files], cwd=ROOT, capture_output=True,
            text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("git is not available")
    if ignored.returncode not in (0, 1):  # 128: not a git checkout (an unpacked sdist, say)
        pytest.skip("not a git checkout")
    assert ignored.stdout == "", f"ignored by .gitignore: {ignored.stdout}"
