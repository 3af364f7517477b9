"""Where a file's bytes go (issue 15): an unpruned layer pays for its codes, not positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspector.format import container
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, ModelEstimate, compress


def loaded(path: Path, tensors: dict[str, np.ndarray]) -> LoadedModel:
    infos = tuple(TensorInfo(k, layer_kind(k, a.shape, a.dtype.name), a.shape, a.dtype.name)
                  for k, a in tensors.items())
    path.write_bytes(b"stands in for the source model")
    return LoadedModel(str(path), "numpy", tensors, infos, {})


def write(model: LoadedModel, settings: ModelSettings, out: Path) -> tuple[ModelEstimate, int]:
    gen = compress(ModelCodec(model), settings, out)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def test_unpruned_layer_file_is_its_codes_codebook_and_header(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    model = loaded(tmp_path / "m.npz",
                   {"fc.weight": rng.normal(0, 0.05, (256, 384)).astype(np.float32)})
    settings = ModelSettings(defaults={"policy": "sparsity", "value": 0.0, "bits": 6}, kinds={})
    est, nbytes = write(model, settings, tmp_path / "m.dcz")
    plan = est.layers[0].plan
    assert plan is not None and plan.survivors == plan.size
    need = plan.weights.nbytes + plan.codebook_nbytes + est.container_nbytes
    assert nbytes == est.file_nbytes == (tmp_path / "m.dcz").stat().st_size
    assert nbytes <= 1.01 * need, (nbytes, need)
    decoded = container.open_container(tmp_path / "m.dcz").read_all()["fc.weight"]
    assert np.count_nonzero(decoded) == np.count_nonzero(model.tensors["fc.weight"])
