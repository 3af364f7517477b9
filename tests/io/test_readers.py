"""Readers and writers, exercised on files made by the real libraries.

Every broken input must end as a single-line InputError naming the file.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.torch import save_file

from inspector.errors import InputError
from inspector.io import LoadedModel, read_model, reader_formats, write_weights

FloatState = collections.OrderedDict[str, torch.Tensor]


def make_state() -> FloatState:
    """A small state dict with every dtype family the readers must handle."""
    gen = torch.Generator().manual_seed(0)
    return collections.OrderedDict(
        [
            ("conv1.weight", torch.randn(4, 1, 3, 3, generator=gen)),
            ("conv1.bias", torch.randn(4, generator=gen)),
            ("bn1.running_mean", torch.zeros(4)),
            ("bn1.num_batches_tracked", torch.tensor(7)),
            ("ip1.weight", torch.randn(10, 36, generator=gen).half()),
            ("ip2.weight", torch.randn(5, 10, generator=gen).to(torch.bfloat16)),
            ("ip3.weight", torch.randn(3, 5, generator=gen).double()),
            ("mask", torch.tensor([True, False, True])),
        ]
    )


ORIGINAL_DTYPES = {
    "conv1.weight": "float32",
    "conv1.bias": "float32",
    "bn1.running_mean": "float32",
    "bn1.num_batches_tracked": "int64",
    "ip1.weight": "float16",
    "ip2.weight": "bfloat16",
    "ip3.weight": "float64",
    "mask": "bool",
}


def assert_matches(model: LoadedModel, state: FloatState) -> None:
    assert list(model.tensors) == list(state)
    assert model.dtypes == ORIGINAL_DTYPES
    for name, tensor in state.items():
        expected = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        np.testing.assert_array_equal(model.tensors[name], expected)
    assert model.tensors["ip2.weight"].dtype == np.float32  # widened, exactly
    assert model.param_count == sum(t.numel() for t in state.values())
    assert model.nbytes == sum(t.numel() * t.element_size() for t in state.values())


def save_zip(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def save_legacy(path: Path, obj: object) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def save_safetensors(path: Path) -> Path:
    save_file(dict(make_state()), str(path), metadata={"source": "test", "epoch": "3"})
    return path


def save_npz(path: Path) -> Path:
    with path.open("wb") as f:  # a file object stops np.savez from appending ".npz"
        np.savez(f, **{"ip1.weight": np.ones((3, 4), np.float32), "ip1.bias": np.zeros(3)})
    return path


# ------------------------------------------------------------------------------------ pytorch


@pytest.mark.parametrize("save", [save_zip, save_legacy], ids=["zip", "legacy"])
def test_pytorch_state_dict(tmp_path: Path, save: Callable[[Path, object], Path]) -> None:
    state = make_state()
    model = read_model(save(tmp_path / "m.pt", state))
    assert model.format == "pytorch"
    assert model.path == str(tmp_path / "m.pt")
    assert_matches(model, state)
    assert model.info("conv1.weight").kind == "conv"
    assert model.info("ip1.weight").kind == "fc"
    assert model.info("bn1.num_batches_tracked").kind == "buffer"


def test_nested_checkpoint(tmp_path: Path) -> None:
    state = make_state()
    checkpoint = {
        "epoch": 12,
        "arch": "lenet",
        "model": {"state_dict": state},
        "optimizer": {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": []},
    }
    model = read_model(save_zip(tmp_path / "ckpt.pth", checkpoint))
    assert_matches(model, state)
    assert model.metadata["epoch"] == "12"
    assert model.metadata["arch"] == "lenet"
    assert model.metadata["state_dict_key"] == "model.state_dict"


def test_nested_modules_get_dotted_names(tmp_path: Path) -> None:
    obj = {"encoder": {"ip1": {"weight": torch.ones(2, 3)}}, "head": [torch.zeros(4)]}
    model = read_model(save_zip(tmp_path / "n.pt", obj))
    assert list(model.tensors) == ["encoder.ip1.weight", "head.0"]


class Hostile:
    """Unpickling this would create a marker file: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("save", [save_zip, save_legacy], ids=["zip", "legacy"])
def test_pickle_needing_code_is_refused(
    tmp_path: Path, save: Callable[[Path, object], Path]
) -> None:
    marker = tmp_path / "pwned"
    path = save(tmp_path / "evil.pt", {"w": torch.ones(2), "x": Hostile(marker)})
    with pytest.raises(InputError) as info:
        read_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "torch.save(model.state_dict()" in message
    assert "\n" not in message
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_reads_as_torchscript_not_as_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "script.pt"
    torch.jit.script(torch.nn.Linear(2, 3)).save(str(path))
    assert read_model(path).format == "torchscript"


def test_checkpoint_without_tensors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no tensors"):
        read_model(save_zip(tmp_path / "empty.pt", {"epoch": 3}))


# -------------------------------------------------------------------------------- safetensors


def test_safetensors_with_metadata(tmp_path: Path) -> None:
    model = read_model(save_safetensors(tmp_path / "m.safetensors"))
    assert model.format == "safetensors"
    assert model.metadata == {"source": "test", "epoch": "3"}
    state = make_state()
    assert set(model.tensors) == set(state)
    assert model.dtypes == ORIGINAL_DTYPES
    np.testing.assert_array_equal(model.tensors["ip2.weight"], state["ip2.weight"].float())
    assert model.nbytes == sum(t.numel() * t.element_size() for t in state.values())


def test_safetensors_without_torch_only_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"b": torch.ones(3), "a": torch.arange(4)}, str(path))
    model = read_model(path)
    assert model.dtypes == {"a": "int64", "b": "float32"}
    np.testing.assert_array_equal(model.tensors["a"], np.arange(4))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_content_wins_over_extension(tmp_path: Path) -> None:
    assert read_model(save_safetensors(tmp_path / "really_safetensors.pt")).format == "safetensors"
    assert read_model(save_zip(tmp_path / "really_torch.npz", make_state())).format == "pytorch"
    assert read_model(save_npz(tmp_path / "really_numpy.bin")).format == "numpy"
    for protocol in (2, 3):
        legacy = tmp_path / f"legacy_protocol_{protocol}"
        torch.save(
            make_state(), legacy, _use_new_zipfile_serialization=False, pickle_protocol=protocol
        )
        assert read_model(legacy).format == "pytorch"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_pickle_protocol_4_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "p4.pt"
    torch.save(make_state(), path, _use_new_zipfile_serialization=False, pickle_protocol=4)
    assert "pickle protocol 4" in str(_assert_one_line_error(path))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_zip_checkpoint_with_pickle_protocol_4_reads(tmp_path: Path) -> None:
    """Our own unpickler reads the zip's records whatever the protocol (torch's cannot)."""
    path = tmp_path / "p4.pt"
    state = make_state()
    torch.save(state, path, pickle_protocol=4)
    model = read_model(path)
    assert list(model.tensors) == list(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(model.tensors[name], tensor.float().numpy())


# -------------------------------------------------------------------------------------- npz


def test_npz(tmp_path: Path) -> None:
    model = read_model(save_npz(tmp_path / "w.npz"))
    assert model.format == "numpy"
    assert list(model.tensors) == ["ip1.weight", "ip1.bias"]
    assert model.dtypes == {"ip1.weight": "float32", "ip1.bias": "float64"}
    assert [i.kind for i in model.infos] == ["fc", "bias"]


def test_npz_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, w=np.ones(3), o=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="pickled"):
        read_model(path)


# -------------------------------------------------------------------------- damaged inputs


def _fixture_bytes(tmp_path: Path, kind: str) -> bytes:
    makers: dict[str, Callable[[Path], Path]] = {
        "zip.pt": lambda p: save_zip(p, make_state()),
        "legacy.pt": lambda p: save_legacy(p, make_state()),
        "m.safetensors": save_safetensors,
        "m.npz": save_npz,
    }
    return makers[kind](tmp_path / f"good_{kind}").read_bytes()


FORMATS = ["zip.pt", "legacy.pt", "m.safetensors", "m.npz"]


def _assert_one_line_error(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        read_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return info.value


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.1, 0.5, 0.9, 0.999])
def test_truncated(tmp_path: Path, kind: str, fraction: float) -> None:
    data = _fixture_bytes(tmp_path, kind)
    keep = max(1, int(len(data) * fraction)) if fraction else 1
    path = tmp_path / f"cut_{kind}"
    path.write_bytes(data[: min(keep, len(data) - 1)])
    assert "arbitrary Python objects" not in str(_assert_one_line_error(path))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors", ".npz", ".bin", ".xyz", ""])
def test_empty_and_random(tmp_path: Path, suffix: str) -> None:
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    assert "empty file" in str(_assert_one_line_error(empty))
    noise = tmp_path / f"noise{suffix}"
    noise.write_bytes(np.random.default_rng(1).bytes(4096))
    # Garbage is corruption, not a refused pickle: the re-save advice would mislead.
    assert "arbitrary Python objects" not in str(_assert_one_line_error(noise))


def test_unknown_format_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(100))
    message = str(_assert_one_line_error(path))
    for spec in reader_formats():
        assert spec.name in message
    assert ".safetensors" in message


def test_missing_and_directory(tmp_path: Path) -> None:
    assert "no such file" in str(_assert_one_line_error(tmp_path / "absent.pt"))
    folder = tmp_path / "folder.pt"
    folder.mkdir()
    assert "directory" in str(_assert_one_line_error(folder))


@pytest.mark.parametrize("claimed", [2**63, 2**40, 200_000_000, 10_000])
def test_huge_safetensors_header_length(tmp_path: Path, claimed: int) -> None:
    path = tmp_path / "huge.safetensors"
    path.write_bytes(claimed.to_bytes(8, "little") + b'{"a": {"dtype": "F32"' + bytes(64))
    assert "header claims" in str(_assert_one_line_error(path))


def test_safetensors_data_shorter_than_header_says(tmp_path: Path) -> None:
    data = save_safetensors(tmp_path / "m.safetensors").read_bytes()
    path = tmp_path / "short.safetensors"
    path.write_bytes(data[:-4])
    assert "truncated" in str(_assert_one_line_error(path))


def test_non_finite_values_are_read(tmp_path: Path) -> None:
    path = save_zip(tmp_path / "nan.pt", {"w": torch.tensor([float("nan"), float("inf"), 1.0])})
    assert np.isnan(read_model(path).tensors["w"][0])


def test_importing_io_does_not_import_torch() -> None:
    code = "import sys, inspector.io; print('torch' in sys.modules, 'safetensors' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------------- writers

WEIGHTS = {
    "ip1.weight": (np.arange(12, dtype=np.float32).reshape(3, 4) - 6) / 8,
    "ip1.bias": np.array([0.5, -0.25, 2.0], dtype=np.float32),
    "file": np.arange(3, dtype=np.int64),  # collides with np.savez's own argument name
}
DTYPES = {"ip1.weight": "bfloat16", "ip1.bias": "float16"}


@pytest.mark.parametrize(
    ("suffix", "restored"),
    [
        (".pt", {"ip1.weight": "bfloat16", "ip1.bias": "float16", "file": "int64"}),
        (".pth", {"ip1.weight": "bfloat16", "ip1.bias": "float16", "file": "int64"}),
        (".safetensors", {"ip1.weight": "bfloat16", "ip1.bias": "float16", "file": "int64"}),
        (".npz", {"ip1.weight": "float32", "ip1.bias": "float16", "file": "int64"}),
    ],
)
def test_write_round_trip(tmp_path: Path, suffix: str, restored: dict[str, str]) -> None:
    path = tmp_path / f"out{suffix}"
    write_weights(path, WEIGHTS, DTYPES)
    model = read_model(path)
    assert model.dtypes == restored
    for name, arr in WEIGHTS.items():
        # The test values are exact in bfloat16 and float16.
        np.testing.assert_array_equal(model.tensors[name], arr)
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind
    assert path.stat().st_mode & 0o044  # readable by others, unlike mkstemp's default


def test_written_pt_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    write_weights(path, WEIGHTS)
    state = torch.load(path, weights_only=True)
    assert list(state) == list(WEIGHTS)
    assert state["ip1.weight"].dtype == torch.float32


def test_safetensors_metadata_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    write_weights(path, WEIGHTS, metadata={"compressed_by": "inspector"})
    assert read_model(path).metadata == {"compressed_by": "inspector"}


def test_tied_weights_are_written(tmp_path: Path) -> None:
    shared = np.ones((2, 2), np.float32)
    write_weights(tmp_path / "tied.safetensors", {"a": shared, "b": shared})
    assert set(read_model(tmp_path / "tied.safetensors").tensors) == {"a", "b"}


def test_protect_refuses_source(tmp_path: Path) -> None:
    source = save_zip(tmp_path / "model.pt", make_state())
    before = source.read_bytes()
    for target in (source, tmp_path / "sub" / ".." / "model.pt"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(InputError, match="source model"):
            write_weights(target, WEIGHTS, protect=source)
    link = tmp_path / "link.pt"
    link.symlink_to(source)
    with pytest.raises(InputError, match="source model"):
        write_weights(link, WEIGHTS, protect=source)
    assert source.read_bytes() == before
    write_weights(tmp_path / "other.pt", WEIGHTS, protect=source)


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    write_weights(path, WEIGHTS)
    before = path.read_bytes()
    with pytest.raises(InputError, match="unknown dtype") as info:
        write_weights(path, WEIGHTS, {"ip1.weight": "float99"})
    assert str(info.value).startswith(f"{path}: ")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["w.pt"]


@pytest.mark.parametrize(
    ("name", "tensors", "match"),
    [
        ("w.onnx", WEIGHTS, "supported: .*pytorch"),
        ("missing/w.pt", WEIGHTS, "folder does not exist"),
        ("w.pt", {}, "no tensors"),
        ("w.npz", {"o": np.array([object()])}, "not a numeric array"),
        ("w.pt", {"l": [1.0, 2.0]}, "not a numeric array"),
    ],
)
def test_write_errors(tmp_path: Path, name: str, tensors: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        write_weights(tmp_path / name, tensors)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ properties

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", b"\x10\x00\x00\x00\x00\x00\x00\x00{"]),
    body=st.binary(max_size=600),
    suffix=st.sampled_from([".pt", ".safetensors", ".npz", ".bin", ""]),
)
def test_arbitrary_bytes_give_input_error(
    tmp_path: Path, prefix: bytes, body: bytes, suffix: str
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(prefix + body)
    try:
        read_model(path)
    except InputError as err:
        assert "\n" not in str(err)


@FUZZ
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float16, np.float64, np.int64, np.uint8, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    ),
    suffix=st.sampled_from([".pt", ".safetensors", ".npz"]),
)
def test_any_array_round_trips_exactly(tmp_path: Path, arr: np.ndarray, suffix: str) -> None:
    path = tmp_path / f"prop{suffix}"
    write_weights(path, {"w": arr})
    back = read_model(path).tensors["w"]
    assert back.dtype == arr.dtype
    np.testing.assert_array_equal(back, arr)


@FUZZ
@given(
    kind=st.sampled_from(FORMATS),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4),
)
def test_damaged_files_give_input_error(
    tmp_path: Path, kind: str, edits: list[tuple[float, int]]
) -> None:
    data = bytearray(_fixture_bytes(tmp_path, kind))
    for where, value in edits:
        data[int(where * len(data))] = value
    path = tmp_path / f"damaged_{kind}"
    path.write_bytes(bytes(data))
    try:
        read_model(path)
    except InputError as err:
        assert "\n" not in str(err)


def test_tensors_saved_on_a_gpu_are_read_on_the_cpu(tmp_path: Path) -> None:
    """A checkpoint written on a CUDA machine: its storages name location ``cuda:0``.

    There is no GPU here, so a CPU checkpoint's pickle is given the location torch writes on
    one; without ``map_location`` torch would refuse it ("CUDA is not available").
    """
    import zipfile

    state = make_state()
    cpu = save_zip(tmp_path / "cpu.pt", state)
    gpu = tmp_path / "gpu.pt"
    with zipfile.ZipFile(cpu) as src, zipfile.ZipFile(gpu, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("/data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data  # pickled once, then memoised
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            dst.writestr(item, data)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(gpu, weights_only=True)  # the file really asks for a GPU
    assert_matches(read_model(gpu), state)
