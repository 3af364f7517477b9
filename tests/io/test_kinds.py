"""Tensor role guessing: one table row per naming convention we meet in the wild."""

from __future__ import annotations

import pytest

from inspector.io.kinds import ALL_KINDS, COMPRESSIBLE_KINDS, layer_kind

CASES = [
    # Caffe / LeNet
    ("ip1.weight", (300, 784), "float32", "fc"),
    ("ip1.bias", (300,), "float32", "bias"),
    # torchvision ResNet
    ("conv1.weight", (64, 3, 7, 7), "float32", "conv"),
    ("layer1.0.conv2.weight", (64, 64, 3, 3), "float16", "conv"),
    ("bn1.weight", (64,), "float32", "norm"),
    ("_blocks.0._bn1.weight", (32,), "float32", "norm"),  # EfficientNet (lukemelas)
    ("bn1.bias", (64,), "float32", "bias"),
    ("bn1.running_mean", (64,), "float32", "buffer"),
    ("bn1.running_var", (64,), "float32", "buffer"),
    ("batch_normalization.moving_variance", (64,), "float32", "buffer"),
    ("scaler.gamma", (64,), "float32", "norm"),
    ("scaler.beta", (64,), "float32", "norm"),
    ("bn1.num_batches_tracked", (), "int64", "buffer"),
    ("fc.weight", (1000, 512), "float32", "fc"),
    # 1-D and 3-D convolutions
    ("encoder.conv.weight", (16, 8, 5), "float32", "conv"),
    ("stem.conv3d.weight", (8, 1, 3, 3, 3), "bfloat16", "conv"),
    # transformers
    ("transformer.wte.weight", (50257, 768), "float32", "embedding"),
    ("transformer.wpe.weight", (1024, 768), "bfloat16", "embedding"),
    ("model.embed_tokens.weight", (32000, 4096), "bfloat16", "embedding"),
    ("bert.embeddings.word_embeddings.weight", (30522, 768), "float32", "embedding"),
    ("transformer.h.0.ln_1.weight", (768,), "float32", "norm"),
    ("transformer.ln_f.weight", (768,), "float32", "norm"),
    ("bert.encoder.layer.0.output.LayerNorm.weight", (768,), "float32", "norm"),
    ("model.layers.0.input_layernorm.weight", (4096,), "bfloat16", "norm"),
    ("model.layers.0.self_attn.q_proj.weight", (4096, 4096), "bfloat16", "fc"),
    ("attn.in_proj_weight", (2304, 768), "float32", "fc"),
    ("h.0.attn.c_attn.bias", (2304,), "float32", "bias"),
    ("lstm.weight_ih_l0", (128, 64), "float32", "fc"),
    # PyTorch RNN biases: bias_ih/bias_hh, with layer and direction suffixes
    ("lstm.bias_ih_l0", (128,), "float32", "bias"),
    ("rnn.bias_hh_l1_reverse", (96,), "float32", "bias"),
    ("cell.bias_ih", (128,), "float32", "bias"),
    ("lstm.weight_hh_l0_reverse", (128, 32), "float32", "fc"),
    ("lstm.weight_hr_l0", (16, 32), "float32", "fc"),
    # Keras (names from inspector.io.keras_layout)
    ("conv1d.kernel", (3, 8, 16), "float32", "conv"),  # [width, in, out]
    ("gru.gru_cell.bias", (2, 96), "float32", "bias"),  # reset_after: input and recurrent rows
    ("lstm.lstm_cell.bias", (128,), "float32", "bias"),
    ("mha.query.kernel", (64, 4, 16), "float32", "fc"),  # EinsumDense [d_model, heads, dim]
    ("mha.key.kernel", (64, 4, 16), "bfloat16", "fc"),
    ("encoder.block_0.attn.value.kernel", (64, 4, 16), "float32", "fc"),
    ("mha.attention_output.kernel", (4, 16, 64), "float32", "fc"),  # [heads, dim, d_model]
    ("gated.gate.kernel", (64, 4, 16), "float32", "fc"),
    ("mha.query.bias", (4, 16), "float32", "bias"),
    ("mha.attention_output.bias", (64,), "float32", "bias"),
    ("key.kernel", (3, 8, 16), "float32", "conv"),  # a top-level Conv1D someone named "key"
    ("attn.key.weight", (64, 64, 3), "float32", "conv"),  # PyTorch weights are never EinsumDense
    ("gemm.bias", (1, 10), "float32", "bias"),  # ONNX exporters sometimes keep a row vector
    ("h.0.attn.bias", (1, 1, 1024, 1024), "float32", "other"),  # GPT-2's causal mask
    # integer and boolean tensors are never weights
    ("h.0.attn.bias_mask", (1, 1, 1024, 1024), "bool", "buffer"),
    ("position_ids", (1, 512), "int64", "buffer"),
    ("quant.codes", (256, 256), "uint8", "buffer"),
    # odds and ends
    ("logit_scale", (), "float32", "other"),
    ("cls_token", (768,), "float32", "other"),
    ("vit.pos_embedding", (1, 197, 768), "float32", "other"),
    ("scale", (10,), "float32", "other"),
    ("weird.weight", (1, 2, 3, 4, 5, 6), "float32", "other"),
]


@pytest.mark.parametrize(("name", "shape", "dtype", "expected"), CASES)
def test_layer_kind(name: str, shape: tuple[int, ...], dtype: str, expected: str) -> None:
    assert layer_kind(name, shape, dtype) == expected


def test_every_kind_is_known() -> None:
    assert {expected for *_, expected in CASES} == set(ALL_KINDS)
    assert {"conv", "fc", "embedding"} == COMPRESSIBLE_KINDS
    assert set(ALL_KINDS) >= COMPRESSIBLE_KINDS


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint8", "bool", "int64"])
def test_integer_weights_are_buffers(dtype: str) -> None:
    assert layer_kind("conv1.weight", (8, 3, 3, 3), dtype) == "buffer"


def test_empty_name_does_not_crash() -> None:
    assert layer_kind("", (3, 3), "float32") == "fc"
    assert layer_kind("", (3,), "float32") == "other"


def test_weights_holding_infinities_or_nans_are_not_compressed_by_default() -> None:
    """A 2-D attention mask of -inf (an ONNX Constant, say) is shaped like an fc weight."""
    import numpy as np

    from inspector.io.model_file import LoadedModel

    mask = np.triu(np.full((64, 64), -np.inf, np.float32), 1)
    weight = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)  # learned-like
    nan = weight.copy()
    nan[-1, -1] = np.nan
    tensors = {"mask": mask, "fc.weight": weight, "x.weight": nan}
    model = LoadedModel.build("m.npz", "numpy", tensors)
    assert [i.kind for i in model.infos] == ["other", "fc", "other"]
