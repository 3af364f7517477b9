"""Issue 11: reading weights never runs a model's code, and re-packed files read as they are.

* TorchScript archives are read from their records (never ``torch.jit.load``), with exactly
  the tensors, names, order and dtypes ``module.state_dict()`` has; buffers are told apart.
* Running one (eval, sensitivity, tune, finetune, a write-back copy) needs ``--allow-code``,
  and without it is one line that names the file; nothing of the archive runs.
* An ONNX model using custom operators reads, but is not run.
* The bundled samples re-zipped with deflate read bit for bit as the originals.
"""

from __future__ import annotations

import io
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from inspector.cli import main
from inspector.errors import CodeNotAllowed, InputError
from inspector.io import read_model, write_back
from inspector.io.torchscript import load_script, module_tensors, read_torchscript
from inspector.runtime.runnable_open import open_runnable
from inspector.runtime.trainable import load_trainable

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_models"
CORPUS = ROOT / "tests" / "corpus"
sys.path.insert(0, str(ROOT / "scripts"))
from corpus_code import TS_MARKER, rezip  # noqa: E402  (the corpus builders)

REFUSAL = "is TorchScript: {} runs the code it contains; pass --allow-code to allow"


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seq = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, bias=False),
                                       torch.nn.BatchNorm2d(2), torch.nn.ReLU())  # fmt: skip
        self.heads = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(2)])
        self.register_buffer("scratch", torch.ones(3), persistent=False)
        self.register_buffer("steps", torch.arange(3))
        self.plain = torch.zeros(2)  # an attribute, neither parameter nor buffer
        self.narrow = torch.nn.Linear(2, 2).to(torch.bfloat16)
        self.shared = self.heads[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


MODULES = {
    "scripted": lambda: torch.jit.script(_Net()),
    "traced": lambda: torch.jit.trace(_Net(), torch.zeros(1, 1, 5, 5)),
    "lstm": lambda: torch.jit.script(torch.nn.LSTM(3, 4)),
    "transformer": lambda: torch.jit.script(torch.nn.TransformerEncoderLayer(8, 2)),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", MODULES)
def test_torchscript_reads_as_its_state_dict_without_loading_it(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MODULES[kind]().save(str(path))
    expected, dtypes = module_tensors(load_script(path, allow_code=True), path)

    def no(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.jit.load ran while reading weights")

    monkeypatch.setattr(torch.jit, "load", no)
    model = read_torchscript(path)
    assert list(model.tensors) == list(expected) and model.dtypes == dtypes
    for name, arr in expected.items():
        assert model.tensors[name].dtype == arr.dtype
        assert model.tensors[name].tobytes() == arr.tobytes(), name
    if kind == "scripted":
        buffers = model.metadata["buffers"].split(",")
        # (a loaded TorchScript module lists its non-persistent buffers too, as torch does)
        assert buffers == ["scratch", "steps", "seq.1.running_mean", "seq.1.running_var",
                           "seq.1.num_batches_tracked"]  # fmt: skip


def test_setstate_code_is_refused_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = CORPUS / "code_ts_setstate.pt"
    with pytest.raises(InputError, match="restores its state with its own code"):
        read_model(path)
    assert main(["compress", str(path), "-o", "out.dcz"]) == 2
    data = tmp_path / "d.npz"
    np.savez(data, inputs=np.zeros((2, 3), np.float32), labels=np.zeros(2, np.int64))
    assert main(["eval", str(path), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert REFUSAL.format("evaluating it") in err.splitlines()[-1]
    assert not (tmp_path / TS_MARKER).exists() and not (tmp_path / "out.dcz").exists()
    # With the user's consent it is loaded, and its code does run: the gate is what stops it.
    open_runnable(path, allow_code=True)
    assert (tmp_path / TS_MARKER).exists()


def test_every_command_that_runs_torchscript_needs_allow_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "net.pt"
    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 3))).save(str(model))
    data = tmp_path / "d.npz"
    np.savez(data, inputs=np.zeros((4, 4), np.float32), labels=np.zeros(4, np.int64))
    assert main(["compress", str(model), "-o", str(tmp_path / "c.dcz")]) == 0
    capsys.readouterr()
    commands = {
        "evaluating it": ["eval", str(model), "--data", str(data)],
        "measuring": ["sensitivity", str(model), "--data", str(data), "-o", str(tmp_path / "s.j")],
        "training it": ["finetune", str(model), "--train", str(data), "--config",
                        str(tmp_path / "none.json"), "-o", str(tmp_path / "t.pt")],
        "writing a copy of it": ["decompress", str(tmp_path / "c.dcz"), "--into", str(model),
                                 "-o", str(tmp_path / "copy.pt")],
    }  # fmt: skip
    (tmp_path / "none.json").write_text("{}")
    for action, argv in commands.items():
        assert main(argv) == 2, argv
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"inspector: error: {model}: is "), lines
        assert "pass --allow-code to allow" in lines[0]
        if action != "measuring":
            assert action in lines[0]
    assert main(["decompress", str(tmp_path / "c.dcz"), "--into", str(model), "-o",
                 str(tmp_path / "copy.pt"), "--allow-code"]) == 0  # fmt: skip
    with pytest.raises(CodeNotAllowed):
        load_trainable(model)
    with pytest.raises(CodeNotAllowed):
        write_back(model, tmp_path / "again.pt", {})


def _onnx_with_custom_op(path: Path, local_function: bool) -> None:
    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    gemm = helper.make_node("Gemm", ["x", "w"], ["h"], transB=1)
    custom = helper.make_node("Scramble", ["h"], ["y"], domain="com.example.native")
    functions = []
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.example.native", 1)]
    if local_function:  # the same node calling a function the model defines: plain ONNX
        body = [helper.make_node("Relu", ["a"], ["b"])]
        functions = [helper.make_function("com.example.native", "Scramble", ["a"], ["b"], body,
                                          [helper.make_opsetid("", 13)])]  # fmt: skip
    graph = helper.make_graph([gemm, custom], "g", [x], [y], [w])
    save(helper.make_model(graph, opset_imports=opsets, functions=functions), str(path))


def test_onnx_custom_operators_read_but_never_run(tmp_path: Path) -> None:
    path = tmp_path / "custom.onnx"
    _onnx_with_custom_op(path, local_function=False)
    assert list(read_model(path).tensors) == ["w"]
    with pytest.raises(InputError, match=r"custom operators \(com.example.native.Scramble\)"):
        open_runnable(path)
    local = tmp_path / "local.onnx"
    _onnx_with_custom_op(local, local_function=True)
    runnable = open_runnable(local)
    assert runnable.run(np.ones((1, 4), np.float32), {}).shape == (1, 3)


SAMPLE_ARCHIVES = ["lenet300_100.pt", "lenet5_scripted.pt", "lenet5.keras", "digits_cnn.pt",
                   "digits_cnn_scripted.pt"]  # fmt: skip


@pytest.mark.parametrize("name", SAMPLE_ARCHIVES)
@pytest.mark.parametrize("members", ["all", "tensors only"])
def test_samples_rezipped_with_deflate_read_as_the_originals(
    tmp_path: Path, name: str, members: str
) -> None:
    source = SAMPLES / name
    pick = (lambda n: True) if members == "all" else (lambda n: "/data/" in n or n.endswith(".h5"))
    repacked = tmp_path / name
    repacked.write_bytes(rezip(source.read_bytes(), pick))
    assert any(i.compress_type == zipfile.ZIP_DEFLATED
               for i in zipfile.ZipFile(repacked).infolist())  # fmt: skip
    want, got = read_model(source), read_model(repacked)
    assert list(got.tensors) == list(want.tensors) and got.dtypes == want.dtypes
    for key, arr in want.tensors.items():
        assert got.tensors[key].tobytes() == arr.tobytes(), key


def test_a_legacy_checkpoint_is_parsed_in_a_child_process(tmp_path: Path) -> None:
    """torch's native parser of the legacy format runs in a child: a crash is one line."""
    from inspector.io import pytorch

    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    calls: list[str] = []
    real = pytorch.read_isolated
    try:
        pytorch.read_isolated = lambda read, p, lib: calls.append(lib) or real(read, p, lib)
        assert read_model(path).tensors["w"].tolist() == [1.0, 1.0]
    finally:
        pytorch.read_isolated = real
    assert calls == ["torch"]


def test_big_endian_archives_read_in_native_order(tmp_path: Path) -> None:
    stored = tmp_path / "le.pt"
    torch.save({"fc1.weight": torch.linspace(-1, 1, 12).view(4, 3)}, stored)
    data = stored.read_bytes()
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            body = source.read(info.filename)
            if info.filename.endswith("/byteorder"):
                body = b"big"
            elif "/data/" in info.filename and not info.filename.endswith("serialization_id"):
                body = np.frombuffer(body, np.float32).astype(">f4").tobytes()
            target.writestr(info, body)
    (tmp_path / "be.pt").write_bytes(out.getvalue())
    want, got = read_model(stored), read_model(tmp_path / "be.pt")
    np.testing.assert_array_equal(got.tensors["fc1.weight"], want.tensors["fc1.weight"])
    assert got.tensors["fc1.weight"].dtype.isnative
