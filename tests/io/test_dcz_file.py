"""Our compressed files reopened as models: decoded tensors plus how each layer was compressed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import InputError
from inspector.format import container
from inspector.format.header import LayerRecord
from inspector.io import LoadedModel, dcz_file, read_model
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, compress
from inspector.tasks.drive import run_to_end
from inspector.tasks.load import open_model


def small_model() -> LoadedModel:
    rng = np.random.default_rng(0)
    tensors = {
        "conv1.weight": rng.normal(size=(8, 1, 3, 3)).astype(np.float32),
        "conv1.bias": rng.normal(size=8).astype(np.float32),
        "bn1.num_batches_tracked": np.array(12, dtype=np.int64),
        "ip1.weight": rng.normal(size=(16, 72)).astype(np.float32),
        "ip2.weight": rng.normal(size=(4, 16)).astype(np.float32),
        "ip2.bias": np.zeros(4, np.float16),
    }
    # ip2.weight stands for a bfloat16 tensor (values widened to float32, as readers do).
    return LoadedModel.build("src.npz", "numpy", tensors, {"ip2.weight": "bfloat16"})


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelCodec, ModelSettings]:
    codec = ModelCodec(small_model())
    settings = ModelSettings().with_layer("ip1.weight", policy="std", value=0.5, bits=3)
    path = tmp_path_factory.mktemp("dcz") / "small.dcz"
    run_to_end(compress(codec, settings, path))
    return path, codec, settings


def test_decoded_tensors_and_dtypes(written: tuple[Path, ModelCodec, ModelSettings]) -> None:
    path, codec, settings = written
    model = read_model(path)
    source = codec.model
    assert model.format == "dcz"
    assert list(model.tensors) == list(source.tensors)
    assert model.dtypes == source.dtypes
    assert model.info("ip2.weight").nbytes == 4 * 16 * 2  # bfloat16 kept as the stored dtype
    for name in source.tensors:
        want = codec.quantized(name, settings)
        assert model.tensors[name].dtype == want.dtype, name
        np.testing.assert_array_equal(model.tensors[name], want, err_msg=name)
    assert [i.kind for i in model.infos] == [i.kind for i in source.infos]


def test_metadata_says_how_each_layer_was_compressed(
    written: tuple[Path, ModelCodec, ModelSettings],
) -> None:
    path, codec, settings = written
    model = read_model(path)
    estimate = codec.estimate(settings)
    for row in estimate.layers:
        info = dcz_file.layer_compression(model, row.info.name)
        assert info is not None
        assert info["payload_nbytes"] == row.record.payload_nbytes
        assert info["original_nbytes"] == row.record.size * row.record.itemsize
        if row.plan is None:
            assert info == {
                "method": "raw",
                "payload_nbytes": info["payload_nbytes"],
                "original_nbytes": info["original_nbytes"],
            }
            continue
        resolved = row.plan.settings  # what the file records: the floor resolved to pruning
        assert info["method"] == "deep"
        assert info["settings"] == resolved.to_json()
        assert info["bits"] == resolved.bits and info["index_bits"] == resolved.index_bits
        assert info["survivors"] == row.plan.survivors
        assert info["kept_percent"] == pytest.approx(100 * row.plan.survivors / row.info.size)
        assert info["clusters"] == row.plan.codebook.size
        # the survivors are exactly the nonzero weights of the decoded tensor
        assert np.count_nonzero(model.tensors[row.info.name]) == row.plan.survivors
    ip1 = dcz_file.layer_compression(model, "ip1.weight")
    assert ip1 is not None and ip1["settings"]["policy"] == "std" and ip1["bits"] == 3
    summary = json.loads(model.metadata[dcz_file.SUMMARY_KEY])
    assert summary["file_nbytes"] == path.stat().st_size
    assert summary["layers"] == len(estimate.layers)
    assert dcz_file.layer_compression(model, "absent") is None


def test_a_dcz_opens_in_the_app_and_compresses_again(
    written: tuple[Path, ModelCodec, ModelSettings], tmp_path: Path
) -> None:
    path, _, settings = written
    opened = run_to_end(open_model(path))
    assert opened.model.format == "dcz"
    assert "ip1.weight" in opened.stats
    again = tmp_path / "again.dcz"
    _, nbytes = run_to_end(compress(opened.codec, settings, again))
    assert nbytes == again.stat().st_size
    assert list(read_model(again).tensors) == list(opened.model.tensors)


def test_content_sniffed_under_any_name(
    written: tuple[Path, ModelCodec, ModelSettings], tmp_path: Path
) -> None:
    other = tmp_path / "compressed.bin"
    other.write_bytes(written[0].read_bytes())
    assert read_model(other).format == "dcz"


def _one_line_error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        read_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


def test_every_truncation_and_byte_flip_is_refused(
    written: tuple[Path, ModelCodec, ModelSettings], tmp_path: Path
) -> None:
    # Every byte is covered by a check (magic, version, flags, lengths, CRCs): no damage reads.
    data = written[0].read_bytes()
    header_end = container.open_container(written[0]).offsets[0]
    path = tmp_path / "damaged.dcz"
    for keep in range(0, len(data), 7):
        path.write_bytes(data[:keep] or b"\x00")
        _one_line_error(path)
    # every byte of prefix, header and header CRC; every third of the CRC-checked payloads
    for pos in [*range(header_end), *range(header_end, len(data), 3)]:
        damaged = bytearray(data)
        damaged[pos] ^= 0x5A
        path.write_bytes(bytes(damaged))
        _one_line_error(path)


def test_duplicate_layer_names_are_refused(tmp_path: Path) -> None:
    payload = np.ones(2, np.float32).tobytes()
    record = LayerRecord("w", "float32", (2,), len(payload), container.crc(payload))
    path = tmp_path / "dup.dcz"
    container.write(path, [record, record], [payload, payload])
    assert "two layers are named 'w'" in _one_line_error(path)


def test_importing_the_new_readers_is_cheap() -> None:
    # The registry imports every reader module on first use: none may drag in heavy libraries.
    code = (
        "import sys, inspector.io.dcz_file, inspector.io.keras_file, inspector.io.caffe; "
        "print(sorted(m for m in ('torch', 'h5py', 'numba', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_records_describe_their_version_2_coding() -> None:
    """Position code and codebook precision of each deep layer, as the format names them."""
    from inspector.core.positions import NAMES
    from inspector.format.container import open_container
    from inspector.io.dcz_file import describe_record

    golden = Path(__file__).resolve().parents[1] / "format" / "golden" / "v2" / "positions.dcz"
    box = open_container(golden)
    seen = set()
    for r in box.records:
        d = describe_record(r)
        if r.deep is not None:
            assert d["positions"] == NAMES[r.deep.layout.positions]
            assert d["codebook_dtype"] == ("float16" if r.deep.layout.codebook_half else "float32")
            seen.add(d["positions"])
    assert seen == set(NAMES.values())
