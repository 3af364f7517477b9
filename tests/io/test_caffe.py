"""Caffe caffemodels, serialized by the real protobuf library from caffe.proto's own field numbers.

The message classes are built at test time from a subset of BVLC caffe.proto
(``src/caffe/proto/caffe.proto``), so the bytes are what protobuf (and Caffe) would write.
"""

from __future__ import annotations

import functools
import json
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import descriptor_pb2, message_factory

from inspector.errors import InputError
from inspector.io import caffe, read_model

FIELD = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = FIELD.LABEL_OPTIONAL, FIELD.LABEL_REPEATED


def _message(proto: Any, name: str, fields: list[tuple[Any, ...]]) -> Any:
    message = proto.message_type.add(name=name)
    for field_name, number, kind, label, *rest in fields:
        f = message.field.add(name=field_name, number=number, type=kind, label=label)
        for option in rest:
            if option == "packed":
                f.options.packed = True
            elif option == "unpacked":
                f.options.packed = False
            else:
                f.type_name = option
    return message


@functools.cache
def caffe_classes(packed: bool) -> dict[str, Any]:
    """NetParameter and friends as in caffe.proto; ``packed=False`` writes repeated numbers one
    field each (legal protobuf that a parser must accept, though Caffe itself packs)."""
    pack = "packed" if packed else "unpacked"
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"caffe_subset_{pack}.proto", package=f"caffe_{pack}", syntax="proto2"
    )
    pkg = f".caffe_{pack}"
    _message(proto, "BlobShape", [("dim", 1, FIELD.TYPE_INT64, REPEATED, pack)])
    _message(proto, "BlobProto", [
        ("num", 1, FIELD.TYPE_INT64, OPTIONAL),
        ("channels", 2, FIELD.TYPE_INT64, OPTIONAL),
        ("height", 3, FIELD.TYPE_INT64, OPTIONAL),
        ("width", 4, FIELD.TYPE_INT64, OPTIONAL),
        ("data", 5, FIELD.TYPE_FLOAT, REPEATED, pack),
        ("diff", 6, FIELD.TYPE_FLOAT, REPEATED, pack),
        ("shape", 7, FIELD.TYPE_MESSAGE, OPTIONAL, f"{pkg}.BlobShape"),
        ("double_data", 8, FIELD.TYPE_DOUBLE, REPEATED, pack),
    ])  # fmt: skip
    _message(proto, "ParamSpec", [
        ("name", 1, FIELD.TYPE_STRING, OPTIONAL), ("lr_mult", 3, FIELD.TYPE_FLOAT, OPTIONAL),
    ])  # fmt: skip
    _message(proto, "LayerParameter", [
        ("name", 1, FIELD.TYPE_STRING, OPTIONAL),
        ("type", 2, FIELD.TYPE_STRING, OPTIONAL),
        ("bottom", 3, FIELD.TYPE_STRING, REPEATED),
        ("top", 4, FIELD.TYPE_STRING, REPEATED),
        ("param", 6, FIELD.TYPE_MESSAGE, REPEATED, f"{pkg}.ParamSpec"),
        ("blobs", 7, FIELD.TYPE_MESSAGE, REPEATED, f"{pkg}.BlobProto"),
    ])  # fmt: skip
    _message(proto, "V0LayerParameter", [
        ("name", 1, FIELD.TYPE_STRING, OPTIONAL),
        ("type", 2, FIELD.TYPE_STRING, OPTIONAL),
        ("num_output", 3, FIELD.TYPE_UINT32, OPTIONAL),
        ("biasterm", 4, FIELD.TYPE_BOOL, OPTIONAL),
        ("kernelsize", 8, FIELD.TYPE_UINT32, OPTIONAL),
        ("dropout_ratio", 12, FIELD.TYPE_FLOAT, OPTIONAL),
        ("source", 16, FIELD.TYPE_STRING, OPTIONAL),
        ("blobs", 50, FIELD.TYPE_MESSAGE, REPEATED, f"{pkg}.BlobProto"),
        ("blobs_lr", 51, FIELD.TYPE_FLOAT, REPEATED),
        ("weight_decay", 52, FIELD.TYPE_FLOAT, REPEATED),
    ])  # fmt: skip
    v1 = _message(proto, "V1LayerParameter", [
        ("layer", 1, FIELD.TYPE_MESSAGE, OPTIONAL, f"{pkg}.V0LayerParameter"),
        ("bottom", 2, FIELD.TYPE_STRING, REPEATED),
        ("top", 3, FIELD.TYPE_STRING, REPEATED),
        ("name", 4, FIELD.TYPE_STRING, OPTIONAL),
        ("type", 5, FIELD.TYPE_ENUM, OPTIONAL, f"{pkg}.V1LayerParameter.LayerType"),
        ("blobs", 6, FIELD.TYPE_MESSAGE, REPEATED, f"{pkg}.BlobProto"),
        ("blobs_lr", 7, FIELD.TYPE_FLOAT, REPEATED),
    ])  # fmt: skip
    layer_type = v1.enum_type.add(name="LayerType")
    for name, number in [("NONE", 0), ("CONVOLUTION", 4), ("INNER_PRODUCT", 14), ("RELU", 18)]:
        layer_type.value.add(name=name, number=number)
    _message(proto, "NetParameter", [
        ("name", 1, FIELD.TYPE_STRING, OPTIONAL),
        ("layers", 2, FIELD.TYPE_MESSAGE, REPEATED, f"{pkg}.V1LayerParameter"),
        ("input", 3, FIELD.TYPE_STRING, REPEATED),
        ("input_dim", 4, FIELD.TYPE_INT64, REPEATED),
        ("layer", 100, FIELD.TYPE_MESSAGE, REPEATED, f"{pkg}.LayerParameter"),
    ])  # fmt: skip
    classes = message_factory.GetMessages([proto])
    return {name.rsplit(".", 1)[1]: cls for name, cls in classes.items()}


def _blob(layer: Any, arr: np.ndarray, legacy: tuple[int, ...] | None = None) -> None:
    blob = layer.blobs.add()
    if legacy is not None:
        blob.num, blob.channels, blob.height, blob.width = legacy
    else:
        blob.shape.SetInParent()  # present even with no dims: a scalar
        blob.shape.dim.extend(arr.shape)
    if arr.dtype == np.float64:
        blob.double_data.extend(arr.ravel().tolist())
    else:
        blob.data.extend(arr.ravel().tolist())


def make_net(packed: bool = True) -> tuple[bytes, dict[str, np.ndarray]]:
    """A LeNet-like net, new and legacy layers, and the tensors a reader must find in order."""
    classes = caffe_classes(packed)
    rng = np.random.default_rng(0)
    net = classes["NetParameter"](name="LeNet", input=["data"], input_dim=[1, 1, 12, 12])
    want: dict[str, np.ndarray] = {}
    # V1 layers (field 2) come first in the bytes: protobuf writes fields in number order.
    old_ip = net.layers.add(name="ip0", type=14, bottom=["data"], top=["ip0"], blobs_lr=[1, 2])
    want["ip0.weight"] = rng.normal(size=(6, 24)).astype(np.float32)
    want["ip0.bias"] = rng.normal(size=6).astype(np.float32)
    _blob(old_ip, want["ip0.weight"], legacy=(1, 1, 6, 24))
    _blob(old_ip, want["ip0.bias"], legacy=(1, 1, 1, 6))
    old_conv = net.layers.add(name="conv0", type=4)
    want["conv0.weight"] = rng.normal(size=(1, 1, 3, 3)).astype(np.float32)  # 1 filter: stays 4-D
    want["conv0.bias"] = rng.normal(size=1).astype(np.float32)
    _blob(old_conv, want["conv0.weight"], legacy=(1, 1, 3, 3))
    _blob(old_conv, want["conv0.bias"], legacy=(1, 1, 1, 1))
    net.layers.add(name="relu0", type=18)
    conv = net.layer.add(name="conv1", type="Convolution", bottom=["data"], top=["conv1"])
    conv.param.add(name="shared_w", lr_mult=1.0)  # a nested message the reader must skip
    want["conv1.weight"] = rng.normal(size=(8, 1, 3, 3)).astype(np.float32)
    want["conv1.bias"] = rng.normal(size=8).astype(np.float32)
    _blob(conv, want["conv1.weight"])
    _blob(conv, want["conv1.bias"])
    net.layer.add(name="pool1", type="Pooling")
    bn = net.layer.add(name="bn1", type="BatchNorm")
    want["bn1.running_mean"] = rng.normal(size=8)
    want["bn1.running_var"] = rng.uniform(0.5, 2, size=8)
    want["bn1.scale_factor"] = np.array([999.0])
    for key in ("running_mean", "running_var", "scale_factor"):
        _blob(bn, want[f"bn1.{key}"])
    ip = net.layer.add(name="ip1", type="InnerProduct")
    want["ip1.weight"] = rng.normal(size=(10, 20)).astype(np.float32)
    want["ip1.bias"] = np.zeros(0, np.float32)  # odd but legal: an empty blob
    want["ip1.blob2"] = np.array(7.5, np.float32)  # a scalar: BlobShape with no dims
    for key in ("weight", "bias", "blob2"):
        _blob(ip, want[f"ip1.{key}"])
    return net.SerializeToString(), want


@pytest.fixture(scope="module")
def net_bytes() -> bytes:
    return make_net()[0]


def _write(tmp_path: Path, data: bytes, name: str = "net.caffemodel") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _one_line_error(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        read_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return info.value


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
def test_reads_new_and_legacy_layers(tmp_path: Path, packed: bool) -> None:
    data, want = make_net(packed)
    model = read_model(_write(tmp_path, data))
    assert model.format == "caffe"
    assert model.metadata == {"name": "LeNet", "caffe_layer_format": "layer + layers (V1)"}
    assert list(model.tensors) == list(want)
    for name, arr in want.items():
        assert model.tensors[name].shape == arr.shape, name
        assert model.tensors[name].dtype == arr.dtype, name
        np.testing.assert_array_equal(model.tensors[name], arr)
    kinds = {i.name: i.kind for i in model.infos}
    assert kinds["ip0.weight"] == kinds["ip1.weight"] == "fc"  # legacy 1x1xoutxin became 2-D
    assert kinds["conv0.weight"] == kinds["conv1.weight"] == "conv"
    assert kinds["conv1.bias"] == kinds["ip0.bias"] == "bias"
    assert kinds["bn1.running_mean"] == kinds["bn1.running_var"] == "buffer"
    assert kinds["bn1.scale_factor"] == "norm"


def make_v0_net(packed: bool = True) -> tuple[bytes, dict[str, np.ndarray]]:
    """A pre-2014 (V0) net as the original Deep Compression LeNets were stored: every layer a
    V1LayerParameter wrapping a V0LayerParameter, blobs with legacy 4-D num/channels/height/width.
    """
    classes = caffe_classes(packed)
    rng = np.random.default_rng(1)
    net = classes["NetParameter"](name="lenet_v0", input=["data"], input_dim=[64, 1, 28, 28])
    want: dict[str, np.ndarray] = {}
    conn = net.layers.add(bottom=["data"], top=["conv1"])
    conv = conn.layer
    conv.name, conv.type, conv.num_output, conv.kernelsize = "conv1", "conv", 4, 5
    conv.blobs_lr.extend([1.0, 2.0])
    want["conv1.weight"] = rng.normal(size=(4, 1, 5, 5)).astype(np.float32)
    want["conv1.bias"] = rng.normal(size=4).astype(np.float32)
    _blob(conv, want["conv1.weight"], legacy=(4, 1, 5, 5))
    _blob(conv, want["conv1.bias"], legacy=(1, 1, 1, 4))
    pool = net.layers.add(bottom=["conv1"], top=["pool1"]).layer
    pool.name, pool.type = "pool1", "pool"
    drop = net.layers.add().layer
    drop.name, drop.type, drop.dropout_ratio = "drop1", "dropout", 0.5  # a 32-bit field to skip
    ip = net.layers.add(bottom=["pool1"], top=["ip1"]).layer
    ip.name, ip.type, ip.num_output, ip.biasterm = "ip1", "innerproduct", 10, True
    ip.weight_decay.extend([1.0, 0.0])
    want["ip1.weight"] = rng.normal(size=(10, 16)).astype(np.float32)
    want["ip1.bias"] = rng.normal(size=10).astype(np.float32)
    _blob(ip, want["ip1.weight"], legacy=(1, 1, 10, 16))  # V0 fc weights: 1 x 1 x out x in
    _blob(ip, want["ip1.bias"], legacy=(1, 1, 1, 10))
    other = net.layers.add().layer  # a type this reader does not know keeps its V0 name
    other.name, other.type, other.source = "feat", "custom", "lmdb"
    want["feat.weight"] = rng.normal(size=(2, 3)).astype(np.float32)
    _blob(other, want["feat.weight"], legacy=(1, 1, 2, 3))
    return net.SerializeToString(), want


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
def test_reads_v0_layers(tmp_path: Path, packed: bool) -> None:
    data, want = make_v0_net(packed)
    assert caffe.sniff_caffe(data[:1024])
    model = read_model(_write(tmp_path, data, "lenet_v0.bin"))  # sniffed, not by extension
    assert model.format == "caffe"
    assert model.metadata == {"name": "lenet_v0", "caffe_layer_format": "layers (V0)"}
    assert list(model.tensors) == list(want)
    for name, arr in want.items():
        assert model.tensors[name].dtype == np.float32, name
        np.testing.assert_array_equal(model.tensors[name], arr, err_msg=name)
    kinds = {i.name: i.kind for i in model.infos}
    assert kinds["conv1.weight"] == "conv"
    assert kinds["ip1.weight"] == "fc"
    assert kinds["conv1.bias"] == kinds["ip1.bias"] == "bias"
    _, layers = caffe.parse_net(data)
    assert [(la.name, la.type) for la in layers] == [
        ("conv1", "Convolution"), ("pool1", "pool"), ("drop1", "dropout"),
        ("ip1", "InnerProduct"), ("feat", "custom"),
    ]  # fmt: skip


def test_v0_next_to_newer_layers(tmp_path: Path) -> None:
    v0, want_v0 = make_v0_net()
    new, want_new = make_net()
    # NetParameter fields may repeat and concatenate: a net whose layers mix all three formats.
    model = read_model(_write(tmp_path, v0 + new))
    assert model.metadata["caffe_layer_format"] == "layer + layers (V0) + layers (V1)"
    assert model.metadata["name"] == "LeNet"  # a repeated optional field: the last one wins
    # File order; names both nets use get a suffix in the second.
    assert list(model.tensors)[: len(want_v0)] == list(want_v0)
    assert len(model.tensors) == len(want_v0) + len(want_new)
    np.testing.assert_array_equal(model.tensors["ip1.weight"], want_v0["ip1.weight"])
    np.testing.assert_array_equal(model.tensors["ip1_2.weight"], want_new["ip1.weight"])
    np.testing.assert_array_equal(model.tensors["conv1_2.bias"], want_new["conv1.bias"])


def test_v0_blob_size_mismatch_is_refused(tmp_path: Path) -> None:
    net = caffe_classes(True)["NetParameter"]()
    layer = net.layers.add().layer
    layer.name, layer.type = "ip", "innerproduct"
    _blob(layer, np.ones(12, np.float32), legacy=(1, 1, 3, 5))
    message = str(_one_line_error(_write(tmp_path, net.SerializeToString())))
    assert "layer 'ip' blob 0 claims shape (3, 5) (15 values) but holds 12" in message


def test_v0_truncations_and_flips_are_refused_or_read(tmp_path: Path) -> None:
    data, want = make_v0_net()
    for keep in range(len(data)):
        try:
            model = caffe.caffemodel_from_bytes(data[:keep], "cut.caffemodel")
        except InputError as exc:
            assert str(exc).startswith("cut.caffemodel: ") and "\n" not in str(exc)
            continue
        for name, arr in model.tensors.items():  # cut between layers: exact values only
            np.testing.assert_array_equal(arr, want[name])
    rng = np.random.default_rng(2)
    for pos in rng.choice(len(data), size=300, replace=False):
        damaged = bytearray(data)
        damaged[pos] ^= int(rng.integers(1, 256))
        try:
            caffe.caffemodel_from_bytes(bytes(damaged), "flip.caffemodel")
        except InputError as exc:
            assert str(exc).startswith("flip.caffemodel: ") and "\n" not in str(exc)


def test_content_sniffed_under_any_name(tmp_path: Path, net_bytes: bytes) -> None:
    assert read_model(_write(tmp_path, net_bytes, "weights.bin")).format == "caffe"
    assert caffe.sniff_caffe(net_bytes[:1024])


@pytest.mark.parametrize(
    "head",
    [
        b"\x08\x07\x12\x07pytorch" + bytes(100),  # ONNX ModelProto: field 1 is a varint there
        b"\x89HDF\r\n\x1a\n" + bytes(100),
        b"PK\x03\x04" + bytes(100),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{}",
        b"\x0a\x05Le\x01et\xa2\x06\x02\x0a\x00",  # a net name with a control character
        b"\x0a\x01a\x0a\x01b\xa2\x06\x02\x0a\x00",  # two net names: a repeated field, not ours
        b"\xa2\x06\x02\x12\x00",  # a layer that does not open with its name
        b"",
    ],
)
def test_sniff_rejects_others(head: bytes) -> None:
    assert not caffe.sniff_caffe(head)
    assert not caffe.sniff_caffe(np.random.default_rng(len(head)).bytes(1024))


def test_duplicate_and_missing_layer_names(tmp_path: Path) -> None:
    net = caffe_classes(True)["NetParameter"]()
    for name in ("conv", "conv", ""):
        _blob(net.layer.add(name=name, type="Convolution"), np.ones((2, 1, 1, 1), np.float32))
    model = read_model(_write(tmp_path, net.SerializeToString()))
    assert list(model.tensors) == ["conv.weight", "conv_2.weight", "layer2.weight"]


def test_no_weights(tmp_path: Path) -> None:
    net = caffe_classes(True)["NetParameter"](name="empty")
    net.layer.add(name="relu", type="ReLU")
    assert "no weights" in str(_one_line_error(_write(tmp_path, net.SerializeToString())))


# ------------------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(
    ("dims", "legacy"),
    [([1 << 40, 1 << 40], None), ([1 << 62], None), ([], (1 << 30, 1 << 30, 1 << 30, 1 << 30))],
)
def test_huge_shape_is_refused_without_allocating(
    tmp_path: Path, dims: list[int], legacy: tuple[int, ...] | None
) -> None:
    net = caffe_classes(True)["NetParameter"]()
    blob = net.layer.add(name="ip", type="InnerProduct").blobs.add(data=[1.0, 2.0, 3.0, 4.0])
    if legacy:
        blob.num, blob.channels, blob.height, blob.width = legacy
    else:
        blob.shape.dim.extend(dims)
    path = _write(tmp_path, net.SerializeToString())
    tracemalloc.start()
    try:
        message = str(_one_line_error(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "but holds 4" in message
    assert peak < 1 << 20


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xa2\x06\xff\xff\xff\xff\x0f", "claims 4294967295 bytes but 0 remain"),
        (b"\xa2\x06" + b"\xff" * 11, "overlong varint"),
        (b"\xa2\x06\x80", "truncated varint"),
        (b"\x0b\x0c", "unsupported wire type 3"),  # protobuf groups: Caffe never writes them
        (b"\x00\x00", "field number 0"),
        # a blob whose packed floats are not a whole number of values
        (b"\xa2\x06\x07\x3a\x05\x2a\x03\x00\x00\x00", "not whole values"),
        # a BlobShape with 40 packed dims
        (b"\xa2\x06\x2e\x3a\x2c\x3a\x2a\x0a\x28" + b"\x01" * 40, "more than 32 dimensions"),
        # a dim of -1 (a 10-byte varint)
        (b"\xa2\x06\x0f\x3a\x0d\x3a\x0b\x0a\x09" + b"\xff" * 8 + b"\x7f", "but holds 0"),
        (b"\xa2\x06\x10\x3a\x0e\x3a\x0c\x0a\x0a" + b"\xff" * 9 + b"\x01", "negative dimension"),
        (b"\xa2\x06\x03\x0a\x01\xff", "not valid UTF-8"),
    ],
)
def test_malformed_wire_format(tmp_path: Path, data: bytes, problem: str) -> None:
    message = str(_one_line_error(_write(tmp_path, data)))
    assert "corrupt or truncated caffemodel" in message
    assert problem in message


def test_every_truncation_is_refused_or_an_exact_prefix(tmp_path: Path) -> None:
    data, want = make_net()
    for keep in (0, 1, len(data) // 2, len(data) - 1):  # the whole path, file included
        _one_line_error(_write(tmp_path, data[:keep], f"cut{keep}.caffemodel"))
    outcomes = {"error": 0, "prefix": 0}
    for keep in range(len(data)):
        try:
            model = caffe.caffemodel_from_bytes(data[:keep], "cut.caffemodel")
        except InputError as exc:
            assert str(exc).startswith("cut.caffemodel: ") and "\n" not in str(exc)
            outcomes["error"] += 1
            continue
        # Cut exactly between two layers: a valid, shorter net. Never a wrong value.
        assert list(model.tensors) == list(want)[: len(model.tensors)]
        for name, arr in model.tensors.items():
            np.testing.assert_array_equal(arr, want[name])
        outcomes["prefix"] += 1
    assert outcomes["error"] > 0.99 * len(data)


def test_byte_flips_read_or_raise_input_error(net_bytes: bytes) -> None:
    rng = np.random.default_rng(5)
    refused = 0
    for pos in rng.choice(len(net_bytes), size=800, replace=False):
        damaged = bytearray(net_bytes)
        damaged[pos] ^= int(rng.integers(1, 256))
        try:
            caffe.caffemodel_from_bytes(bytes(damaged), "flip.caffemodel")
        except InputError as exc:
            assert str(exc).startswith("flip.caffemodel: ") and "\n" not in str(exc)
            refused += 1
    assert refused > 0  # flips in the float data are undetectable; flips in the structure are


def test_round_trip_through_the_command_line(tmp_path: Path, capsys) -> None:
    """info, compress, decompress on a caffemodel (new, V1 and V0 layers)."""
    from inspector.cli import main
    from inspector.format.container import open_container

    for name, (data, want) in {"net": make_net(), "v0": make_v0_net()}.items():
        source = _write(tmp_path, data, f"{name}.caffemodel")
        assert main(["info", str(source), "--json"]) == 0
        listed = [layer["name"] for layer in json.loads(capsys.readouterr().out)["layers"]]
        assert listed == list(want)
        dcz, npz = tmp_path / f"{name}.dcz", tmp_path / f"{name}.npz"
        assert main(["compress", str(source), "-o", str(dcz), "--sparsity", "0.5"]) == 0
        assert main(["decompress", str(dcz), "-o", str(npz)]) == 0
        capsys.readouterr()
        box, restored = open_container(dcz), read_model(npz)
        assert list(restored.tensors) == list(want)
        for i, record in enumerate(box.records):
            assert restored.tensors[record.name].tobytes() == box.read_layer(i).tobytes()
        kept = read_model(source)
        for info in kept.infos:  # what is not compressed comes back exactly
            if info.kind not in ("conv", "fc"):
                assert np.array_equal(restored.tensors[info.name], kept.tensors[info.name])
