"""Fine-tuning: masked retraining keeps pruned weights at 0, trained quantization sums member
gradients into centroids, and compressing the result with its settings gives it back exactly."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from inspector import cli_finetune
from inspector.errors import InputError, SettingsError
from inspector.format.container import open_container
from inspector.io.model_file import LoadedModel
from inspector.model.settings import ModelSettings
from inspector.runtime.trainable import load_trainable, state_arrays
from inspector.tasks.codec import ModelCodec, Progress, compress
from inspector.tasks.drive import run_to_end
from inspector.tasks.finetune import (
    FineTuned,
    FineTuneRequest,
    centroid_grad,
    finetune,
    keep_mask,
    prune_schedule,
    reproduction_error,
)
from inspector.tasks.finetune_state import _Layer
from inspector.tasks.finetune_steps import _snap

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

BITS = 2  # K = 4: few enough that "at most K values" is a sharp check
SETTINGS = ModelSettings().with_kind("fc", policy="sparsity", value=0.6, bits=BITS, index_bits=2)
WEIGHTS = ("0.weight", "2.weight")


def make_module() -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    return torch.jit.script(nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 3)))


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 8-D: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(0, 2, (3, 8))
    labels = rng.integers(0, 3, n)
    return (centers[labels] + rng.normal(0, 1, (n, 8))).astype(np.float32), labels


@pytest.fixture(scope="module")
def request_() -> FineTuneRequest:
    x, y = blobs(384, 0)
    xv, yv = blobs(256, 1)
    return FineTuneRequest(
        make_module(), x, y, SETTINGS, xv, yv, prune_epochs=3, quant_epochs=2, prune_lr=0.05,
        quant_lr=1e-3, batch_size=32, threads=1,
    )


def run(gen) -> tuple[FineTuned, list[Progress]]:
    steps = []
    return run_to_end(gen, steps.append), steps


@pytest.fixture(scope="module")
def result(request_: FineTuneRequest) -> FineTuned:
    return run(finetune(request_))[0]


def test_centroid_gradient_is_the_sum_of_its_members_gradients():
    """For a real loss: dL/dc from autograd through the whole network equals the bincount of
    dL/dw over each centroid's members, and the helper returns exactly that (not the mean)."""
    torch.manual_seed(3)
    x, y = (torch.from_numpy(a) for a in blobs(64, 2))
    rng = np.random.default_rng(4)
    k = 4
    assignment = rng.integers(0, k, 24 * 8)
    keep = rng.random(24 * 8) < 0.7
    codebook = torch.tensor([-0.4, -0.1, 0.2, 0.5], requires_grad=True)
    a, m = torch.from_numpy(assignment), torch.from_numpy(keep).float()
    w = (codebook[a] * m).view(24, 8).detach().requires_grad_(True)
    head = torch.randn(3, 24)

    def loss_of(weight: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(torch.relu(x @ weight.T) @ head.T, y)

    (dw,) = torch.autograd.grad(loss_of(w), w)
    (dc_through_net,) = torch.autograd.grad(loss_of((codebook[a] * m).view(24, 8)), codebook)
    member_grads = dw.numpy().reshape(-1)
    expected = np.bincount(assignment[keep], weights=member_grads[keep], minlength=k)
    got = centroid_grad(codebook, a, m, dw.reshape(-1)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dc_through_net.numpy(), expected, rtol=1e-5, atol=1e-7)
    mean = expected / np.bincount(assignment[keep], minlength=k)
    assert not np.allclose(got, mean, rtol=1e-2)


def test_pruned_weights_stay_exactly_zero(request_: FineTuneRequest, result: FineTuned):
    """The zeros of the result are exactly the weights the compressor prunes in the original."""
    original = state_arrays(request_.module)
    codec = ModelCodec(LoadedModel.build("m", "torch", original))
    for name in WEIGHTS:
        plan = codec.codec(name).plan(SETTINGS.resolve(name, "fc"))
        keep = keep_mask(original[name], plan.mask).reshape(original[name].shape)
        assert keep.sum() == plan.survivors < keep.size
        np.testing.assert_array_equal(result.tensors[name] != 0, keep)
        assert not np.array_equal(result.tensors[name][keep], original[name][keep])  # trained


def test_at_most_k_distinct_values_per_layer(result: FineTuned):
    assert result.compressed == WEIGHTS
    for name in WEIGHTS:
        values = np.unique(result.tensors[name][result.tensors[name] != 0])
        assert 2 <= values.size <= 2**BITS


def test_recompressing_with_the_returned_settings_gives_the_weights_back(
    result: FineTuned, tmp_path: Path
):
    assert result.reproduction_error == 0.0
    codec = ModelCodec(LoadedModel.build("tuned", "torch", result.tensors))
    out = tmp_path / "tuned.dcz"
    run(compress(codec, result.settings, out))
    box = open_container(out)
    for i, record in enumerate(box.records):
        np.testing.assert_array_equal(box.read_layer(i), result.tensors[record.name])
    # Biases are stored losslessly and trained too (train_others defaults to True).
    assert {r.name for r in box.records} == set(result.tensors)


def test_training_learns(request_: FineTuneRequest, result: FineTuned):
    pruned = [h for h in result.history if h.stage == "pruned"]
    quantized = [h for h in result.history if h.stage == "quantized"]
    assert [h.epoch for h in pruned] == [0, 1, 2, 3] and [h.epoch for h in quantized] == [0, 1, 2]
    assert pruned[-1].loss < pruned[1].loss
    assert result.top1 is not None and result.top1 > 0.9
    assert result.top1 >= result.compressed_top1
    assert result.baseline_top1 is not None and result.top1 == quantized[-1].top1


def test_loss_decreases_from_scratch_on_a_learnable_problem():
    """An untrained network learns the blobs: both stages lower the loss."""
    torch.manual_seed(5)
    module = torch.jit.script(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)))
    x, y = blobs(256, 3)
    req = FineTuneRequest(module, x, y, SETTINGS, prune_epochs=4, quant_epochs=3,
                          prune_lr=0.05, quant_lr=1e-2, batch_size=32, threads=1)
    done, steps = run(finetune(req))
    losses = [h.loss for h in done.history if h.epoch > 0]
    assert losses[3] < losses[0] / 2
    assert losses[-1] < losses[4]  # centroid training alone lowers the loss
    assert done.top1 is None and done.baseline_top1 is None
    assert steps[-1].done == steps[-1].total == 7 * 8
    assert [s.done for s in steps[:-1]] == list(range(7 * 8))


def test_deterministic_and_leaves_the_request_module_alone(request_: FineTuneRequest,
                                                          result: FineTuned):
    before = state_arrays(request_.module)
    again = run(finetune(request_))[0]
    for name, array in result.tensors.items():
        np.testing.assert_array_equal(again.tensors[name], array)
        assert not np.array_equal(before[name], array)
    for name, array in state_arrays(request_.module).items():
        np.testing.assert_array_equal(array, before[name])


def test_cancel_writes_nothing_and_changes_nothing(request_: FineTuneRequest, tmp_path: Path):
    before = state_arrays(request_.module)
    threads = torch.get_num_threads()
    gen = finetune(replace(request_, threads=1 if threads != 1 else 2))
    for _ in range(5):
        next(gen)
    assert torch.get_num_threads() != threads  # the run's own setting, while it runs
    gen.close()
    assert list(tmp_path.iterdir()) == []
    assert torch.get_num_threads() == threads
    for name, array in state_arrays(request_.module).items():
        np.testing.assert_array_equal(array, before[name])


def test_frozen_others_and_gradual_pruning(request_: FineTuneRequest, result: FineTuned):
    original = state_arrays(request_.module)
    changed = replace(request_, train_others=False, prune_steps=3, optimizer="adam",
                      prune_lr=0.01, weight_decay=1e-3)
    done = run(finetune(changed))[0]
    for name in ("0.bias", "2.bias"):
        np.testing.assert_array_equal(done.tensors[name], original[name])
    for name in WEIGHTS:  # the same number pruned as the compressor's mask, chosen gradually
        assert np.count_nonzero(done.tensors[name]) == np.count_nonzero(result.tensors[name])
    assert done.reproduction_error == 0.0


def test_centroids_closer_than_the_codecs_grid_are_snapped_together():
    """Above 4096 survivors the codec clusters a 65,536-bin histogram: two centroids in one
    bin decode as one value. Snapping adopts the decoded values, so compression reproduces
    the result exactly."""
    module = torch.jit.script(nn.Sequential(nn.Linear(100, 50, bias=False)))
    codebook = torch.tensor([-1.0, 0.5, 0.5 + 1e-6, 1.0])
    assignment = torch.from_numpy(np.random.default_rng(0).permutation(5000) % 4)
    weight = dict(module.named_parameters())["0.weight"]
    layer = _Layer("0.weight", weight, torch.ones(5000), codebook, assignment)
    with torch.no_grad():
        weight.copy_(codebook[assignment].view(50, 100))
    settings = ModelSettings().with_kind("fc", policy="threshold", value=0.0, bits=2)
    assert reproduction_error(state_arrays(module), settings, ["0.weight"]) > 1e-7
    _snap(module, [layer], settings)
    tensors = state_arrays(module)
    assert reproduction_error(tensors, settings, ["0.weight"]) == 0.0
    assert np.unique(tensors["0.weight"]).size == 3


def test_prune_schedule():
    assert prune_schedule(10, 1) == {0: 1.0}
    schedule = prune_schedule(10, 5)
    assert list(schedule) == [0, 2, 4, 6, 8]
    assert list(schedule.values()) == sorted(schedule.values()) and schedule[8] == 1.0
    assert prune_schedule(2, 5) == prune_schedule(2, 2)
    assert prune_schedule(0, 3) == {0: 1.0}


def test_bad_requests_are_refused(request_: FineTuneRequest):
    x, y = request_.train_inputs, request_.train_labels
    with pytest.raises(InputError, match="labels"):
        FineTuneRequest(request_.module, x, y[:-1])
    with pytest.raises(InputError, match="integer"):
        FineTuneRequest(request_.module, x, y.astype(np.float32))
    with pytest.raises(SettingsError, match="prune_epochs"):
        replace(request_, prune_epochs=-1)
    with pytest.raises(SettingsError, match="prune_lr"):
        replace(request_, prune_lr=0.0)
    nothing = ModelSettings().with_kind("fc", excluded=True)
    with pytest.raises(SettingsError, match="nothing to train"):
        run(finetune(replace(request_, settings=nothing, train_others=False)))
    with pytest.raises(InputError, match="out of range"):
        run(finetune(replace(request_, train_labels=y + 5)))
    with pytest.raises(InputError, match="cannot run"):
        run(finetune(replace(request_, train_inputs=x[:, :5].copy())))


def cli_args(tmp_path: Path, **extra) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_finetune.add_parser(parser.add_subparsers())
    model = tmp_path / "model_scripted.pt"
    make_module().save(str(model))
    for name, seed in (("train", 0), ("val", 1)):
        x, y = blobs(256, seed)
        np.savez(tmp_path / f"{name}.npz", inputs=x, labels=y)
    (tmp_path / "settings.json").write_text(
        '{"kinds": {"fc": {"policy": "sparsity", "value": 0.6, "bits": 2, "index_bits": 2}}}'
    )
    argv = [
        "finetune", "--allow-code", str(model), "--train", str(tmp_path / "train.npz"),
        "--data", str(tmp_path / "val.npz"), "--config", str(tmp_path / "settings.json"),
        "-o", str(tmp_path / "tuned.pt"), "--prune-epochs", "2", "--quant-epochs", "1",
        "--lr", "0.05", *[str(a) for pair in extra.items() for a in pair],
    ]
    return parser.parse_args(argv)


def test_cli_writes_a_model_that_compresses_back_to_itself(tmp_path: Path, capsys):
    args = cli_args(tmp_path, **{"--save-config": tmp_path / "out.json",
                                 "--save-weights": tmp_path / "w.npz"})
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "fine-tuned" in printed and "within 0" in printed
    tuned = state_arrays(load_trainable(tmp_path / "tuned.pt", allow_code=True).module)
    saved = np.load(tmp_path / "w.npz")
    from inspector.model.settings import load_settings

    settings = load_settings(tmp_path / "out.json")
    codec = ModelCodec(LoadedModel.build("w", "npz", {k: saved[k] for k in saved.files}))
    for name in WEIGHTS:
        np.testing.assert_array_equal(saved[name], tuned[name])
        np.testing.assert_array_equal(codec.quantized(name, settings), tuned[name])


def test_cli_refuses_to_overwrite_an_input_before_training(tmp_path: Path):
    args = cli_args(tmp_path)
    args.output = args.train
    before = args.train.read_bytes()
    with pytest.raises(InputError, match="overwrite"):
        cli_finetune.cmd_finetune(args)
    assert args.train.read_bytes() == before
    assert not (tmp_path / "tuned.pt").exists()
    args = cli_args(tmp_path, **{"--save-weights": tmp_path / "w.docx"})
    with pytest.raises(InputError, match="file type"):
        cli_finetune.cmd_finetune(args)
    assert not (tmp_path / "tuned.pt").exists()


def test_the_cli_defaults_are_the_requests() -> None:
    """The app runs FineTuneRequest's defaults; `inspector finetune` must run the same."""
    import argparse
    import dataclasses

    from inspector import cli_finetune

    sub = argparse.ArgumentParser().add_subparsers()
    cli_finetune.add_parser(sub)
    args = sub.choices["finetune"].parse_args(
        ["m.pt", "--train", "t.h5", "--config", "s.json", "-o", "o.pt"]
    )
    defaults = {f.name: f.default for f in dataclasses.fields(FineTuneRequest)}
    assert (args.prune_epochs, args.quant_epochs, args.lr, args.quant_lr, args.optimizer) == (
        defaults["prune_epochs"], defaults["quant_epochs"], defaults["prune_lr"],
        defaults["quant_lr"], defaults["optimizer"],
    )


def test_divergence_is_one_clear_error() -> None:
    """A learning rate far too high ends with a message about divergence, not NaN weights."""
    torch = pytest.importorskip("torch")
    from inspector.errors import SettingsError
    from inspector.model.settings import ModelSettings

    torch.manual_seed(0)
    net = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 3)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    request = FineTuneRequest(net, x, y, ModelSettings().with_defaults(value=0.5),
                              prune_epochs=3, quant_epochs=1, prune_lr=1e12, batch_size=16)
    with pytest.raises(SettingsError, match="diverged"):
        run_to_end(finetune(request))
