"""Outputs and the environment (issue 11, classes 7 and 8): the command line never replaces a
file it must not touch, and a full disk, a read-only folder, odd targets, deep nesting, an
empty model, library warnings and SIGTERM all end in one line (or a clean exit), never an
"internal error" or a temporary file left behind.

The model is a real one shipped in ``sample_models/`` (lenet300_100.safetensors). Device nodes
are stood in for by a FIFO: a test must never name ``/dev/null`` (a reader without these checks,
run as root, would replace it).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inspector import atomic
from inspector.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "sample_models" / "lenet300_100.safetensors"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("inspector: error: "), err
    assert "internal error" not in err and "Traceback" not in err
    for word in words:
        assert word in err, err


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "src" / MODEL.name
    path.parent.mkdir()
    path.write_bytes(MODEL.read_bytes())
    return path


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dcz") / "lenet.dcz"
    assert main(["compress", str(MODEL), "-o", str(out), "--sparsity", "0.9"]) == 0
    return out


# ---------------------------------------------------------- 7. files it must not touch


def test_save_config_over_the_source_model_is_refused(capsys, model, tmp_path) -> None:
    before = model.read_bytes()
    code, _, err = cli(capsys, "compress", model, "-o", tmp_path / "m.dcz", "--save-config",
                       model)  # fmt: skip
    one_line(code, err, "refusing to overwrite the input model")
    assert model.read_bytes() == before and not (tmp_path / "m.dcz").exists()


def test_save_config_over_the_output_is_refused(capsys, model, tmp_path) -> None:
    out = tmp_path / "m.dcz"
    code, _, err = cli(capsys, "compress", model, "-o", out, "--save-config", out)
    one_line(code, err, "another output of this command")
    assert not out.exists()


def test_tuning_output_over_the_model_or_data_is_refused(capsys, tmp_path) -> None:
    """``sensitivity``/``tune -o`` write settings: never over the model or the data, and before
    the sweep runs."""
    model = tmp_path / "digits_cnn.onnx"
    data = tmp_path / "digits8_test.h5"
    for path in (model, data):
        path.write_bytes((ROOT / "sample_models" / path.name).read_bytes())
    for target, what in ((model, "the model"), (data, "the evaluation data")):
        before = target.read_bytes()
        code, _, err = cli(capsys, "sensitivity", model, "--data", data, "-o", target)
        one_line(code, err, f"refusing to overwrite {what}")
        assert target.read_bytes() == before


def test_a_symlinked_output_is_refused_and_its_target_kept(capsys, model, tmp_path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    for name, args in (("m.dcz", ()), ("w.npz", None), ("s.json", ("--save-config",))):
        link = tmp_path / f"link-{name}"
        link.symlink_to(target)
        if args is None:  # decompress to a symlink
            dcz = tmp_path / "ok.dcz"
            assert main(["compress", str(model), "-o", str(dcz)]) == 0
            capsys.readouterr()
            code, _, err = cli(capsys, "decompress", dcz, "-o", link)
        elif args:
            code, _, err = cli(capsys, "compress", model, "-o", tmp_path / "x.dcz", *args, link)
        else:
            code, _, err = cli(capsys, "compress", model, "-o", link)
        one_line(code, err, "symbolic link")
        assert link.is_symlink() and target.read_text() == "keep me"


def test_an_onnx_copy_never_replaces_a_symlinked_data_file(capsys, tmp_path, monkeypatch):
    """A copy too large to inline writes ``<name>.data`` beside it: a second output, checked
    like the first."""
    from inspector.io import onnx_writeback

    monkeypatch.setattr(onnx_writeback, "INLINE_LIMIT", 0)  # as if the model were > 2 GiB
    source = tmp_path / "digits_cnn.onnx"
    source.write_bytes((ROOT / "sample_models" / source.name).read_bytes())
    dcz = tmp_path / "d.dcz"
    assert main(["compress", str(source), "-o", str(dcz)]) == 0
    target = tmp_path / "precious.bin"
    target.write_bytes(b"keep me")
    out = tmp_path / "copy.onnx"
    (tmp_path / "copy.onnx.data").symlink_to(target)
    capsys.readouterr()
    code, _, err = cli(capsys, "decompress", dcz, "--into", source, "-o", out)
    one_line(code, err, "symbolic link")
    assert target.read_bytes() == b"keep me" and not out.exists()


def test_a_special_file_output_is_refused(capsys, model, tmp_path) -> None:
    fifo = tmp_path / "pipe.dcz"
    os.mkfifo(fifo)
    code, _, err = cli(capsys, "compress", model, "-o", fifo)
    one_line(code, err, "not a regular file")
    assert fifo.is_fifo()


def test_a_folder_output_is_one_line(capsys, model, tmp_path, compressed) -> None:
    for args in (("compress", model, "-o", tmp_path), ("decompress", compressed, "-o", tmp_path),
                 ("compress", model, "-o", tmp_path / "m.dcz", "--save-config", tmp_path)):
        code, _, err = cli(capsys, *args)
        one_line(code, err, "is a folder")


def test_decompress_over_the_compressed_file_is_refused(capsys, compressed, tmp_path) -> None:
    copy = tmp_path / "c.dcz"
    copy.write_bytes(compressed.read_bytes())
    link = tmp_path / "other.npz"
    os.link(copy, link)  # a hard link: another name, the same file
    code, _, err = cli(capsys, "decompress", copy, "-o", link)
    one_line(code, err, "refusing to overwrite")
    assert copy.read_bytes() == compressed.read_bytes()


# ---------------------------------------------------------------- 8. the environment


def test_a_full_disk_is_one_line_and_leaves_nothing(capsys, model, tmp_path, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, _, err = cli(capsys, "compress", model, "-o", tmp_path / "m.dcz")
    one_line(code, err, "No space left on device", "m.dcz")
    assert not (tmp_path / "m.dcz").exists() and hidden(tmp_path) == []


def test_a_full_disk_on_the_data_path_is_one_line(capsys, compressed, tmp_path, monkeypatch):
    """safetensors reports ENOSPC as its own exception type, torch as a RuntimeError."""
    import safetensors.torch

    def full(*args: object, **kwargs: object) -> None:
        raise safetensors.SafetensorError("I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    code, _, err = cli(capsys, "decompress", compressed, "-o", tmp_path / "w.safetensors")
    one_line(code, err, "No space left on device")
    assert hidden(tmp_path) == []


@pytest.fixture
def read_only(tmp_path: Path) -> Path:
    """A folder nobody may write: a read-only tmpfs as root (who ignores modes), else 0555."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("root without permission to mount a read-only folder")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_read_only_folder_is_one_line(capsys, model, compressed, read_only) -> None:
    for args in (("compress", model, "-o", read_only / "m.dcz"),
                 ("decompress", compressed, "-o", read_only / "w.npz"),
                 ("decompress", compressed, "-o", read_only / "w.safetensors")):  # fmt: skip
        code, _, err = cli(capsys, *args)
        one_line(code, err, "cannot write")


def test_a_deeply_nested_config_is_one_line(capsys, model, tmp_path) -> None:
    config = tmp_path / "deep.json"
    config.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = cli(capsys, "compress", model, "-o", tmp_path / "m.dcz", "--config", config)
    one_line(code, err, "deep.json", "nest too deeply")


def test_an_empty_model_writes_nothing(capsys, tmp_path) -> None:
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    code, _, err = cli(capsys, "compress", empty, "-o", tmp_path / "e.dcz")
    one_line(code, err, "holds no tensors")
    assert not (tmp_path / "e.dcz").exists()


def _run(script: str, *args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)  # fmt: skip


def test_library_warnings_do_not_reach_the_terminal(tmp_path) -> None:
    """A reader whose library warns (as torch and numpy do) still prints only the table."""
    script = (
        "import sys, warnings, inspector.io as io\n"
        "original = io.read_model\n"
        "def noisy(path):\n"
        "    warnings.warn('a library talking', UserWarning)\n"
        "    return original(path)\n"
        "io.read_model = noisy\n"
        "from inspector.cli import main\n"
        "sys.exit(main(['info', sys.argv[1]]))\n"
    )
    done = _run(script, MODEL)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "ip1.weight" in done.stdout or "ip1" in done.stdout


def test_sigterm_cleans_up_like_ctrl_c(tmp_path, compressed) -> None:
    """SIGTERM in the middle of writing: exit 143, one line, no hidden temporary left."""
    script = (
        "import os, signal, sys, time, numpy as np\n"
        "real = np.lib.format.write_array\n"
        "def slow(*args, **kwargs):\n"
        "    real(*args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "np.lib.format.write_array = slow\n"
        "from inspector.cli import main\n"
        "sys.exit(main(['decompress', sys.argv[1], '-o', sys.argv[2]]))\n"
    )
    done = _run(script, compressed, tmp_path / "w.npz", timeout=60)
    assert done.returncode == 128 + signal.SIGTERM, (done.returncode, done.stderr)
    assert done.stderr == "inspector: terminated\n"
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_are_removed_at_the_next_write(capsys, model, tmp_path) -> None:
    """What a killed writer left (its process gone, the file old) goes; a live one's stays."""
    old = time.time() - 2 * getattr(atomic, "STALE_SECONDS", 600)
    dead, alive = _dead_pid(), os.getppid()
    stale = [tmp_path / f".m.dcz.{dead}-0123456789ab.tmp",
             tmp_path / f".m.{dead}-0123456789ab.partial.npz"]  # fmt: skip
    kept = [tmp_path / f".m.dcz.{alive}-0123456789ab.tmp",  # its writer still runs
            tmp_path / ".notes.txt"]  # not ours  # fmt: skip
    young = tmp_path / f".w.dcz.{dead}-ba9876543210.tmp"  # too recent to judge
    for path in (*stale, *kept, young):
        path.write_bytes(b"partial")
        if path is not young:
            os.utime(path, (old, old))
    code, _, err = cli(capsys, "compress", model, "-o", tmp_path / "m.dcz")
    assert code == 0, err
    assert hidden(tmp_path) == sorted(p.name for p in (*kept, young))
