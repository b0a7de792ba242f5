"""The constrained ITNet operator IS the specialised module: exact equivalences (fp32, max abs error <= 1e-5)."""

import pytest
import torch
from torch import nn

from modeling_itnet.branches_itnet import ITNetLayout
from modeling_itnet.special_cases_itnet import (
    S4D,
    SSD,
    MinGRU,
    apply_conv,
    mixer_from_bert_attention,
    mixer_from_conv,
    mixer_from_mingru,
    mixer_from_multihead_attention,
    mixer_from_s4d,
    mixer_from_ssd,
)


def _run(mixer, inputs):
    grid = tuple(inputs.shape[1:-1])
    scale = tuple(float(g) for g in grid)
    flat = inputs.reshape(inputs.shape[0], -1, inputs.shape[-1])
    return mixer(flat, None, grid, scale).reshape(*inputs.shape[:-1], -1)


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("depthwise", [True, False])
@pytest.mark.parametrize("padding", ["same", "causal"])
@pytest.mark.parametrize("length", [1, 5, 63])
def test_conv1d(kernel_size, depthwise, padding, length):
    torch.manual_seed(kernel_size + length)
    channels_in, channels_out = 6, 6 if depthwise else 5
    conv = nn.Conv1d(channels_in, channels_out, kernel_size, groups=channels_in if depthwise else 1)
    inputs = torch.randn(2, length, channels_in)
    mixer = mixer_from_conv(conv, padding)
    with torch.no_grad():
        error = (_run(mixer, inputs) - apply_conv(conv, inputs, padding)).abs().max().item()
    assert error <= 1e-5, error


@pytest.mark.parametrize("kernel_size", [1, 3, 4, 5])
@pytest.mark.parametrize("depthwise", [True, False])
@pytest.mark.parametrize("grid", [(7, 5), (1, 1), (8, 8)])
def test_conv2d(kernel_size, depthwise, grid):
    torch.manual_seed(kernel_size)
    channels_in, channels_out = 4, 4 if depthwise else 3
    conv = nn.Conv2d(
        channels_in, channels_out, kernel_size, groups=channels_in if depthwise else 1, bias=not depthwise
    )
    inputs = torch.randn(2, *grid, channels_in)
    mixer = mixer_from_conv(conv)
    with torch.no_grad():
        error = (_run(mixer, inputs) - apply_conv(conv, inputs)).abs().max().item()
    assert error <= 1e-5, error


def test_conv_rejects_what_is_not_an_integral_transform():
    with pytest.raises(ValueError, match="stride 1"):
        mixer_from_conv(nn.Conv1d(2, 2, 3, stride=2))
    with pytest.raises(ValueError, match="depthwise"):
        mixer_from_conv(nn.Conv1d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match="square"):
        mixer_from_conv(nn.Conv2d(2, 2, (3, 1)))
    with pytest.raises(ValueError, match="padding"):
        mixer_from_conv(nn.Conv1d(2, 2, 3), padding="valid")


def _sequence(mixer, inputs, mask=None):
    return mixer(inputs, mask, (inputs.shape[1],), (float(inputs.shape[1]),))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_multihead_attention(causal, padded, bias):
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(16, 4, bias=bias, batch_first=True).train()  # train: no fast path
    inputs = torch.randn(3, 11, 16)
    key_padding = torch.zeros(3, 11, dtype=torch.bool)
    if padded:
        key_padding[1, 7:] = True
        key_padding[2, :3] = True
    causal_mask = torch.triu(torch.ones(11, 11, dtype=torch.bool), 1) if causal else None
    mixer = mixer_from_multihead_attention(attention, causal=causal)
    with torch.no_grad():
        reference, _ = attention(
            inputs,
            inputs,
            inputs,
            key_padding_mask=key_padding if padded else None,
            attn_mask=causal_mask,
            need_weights=False,
        )
        out = _sequence(mixer, inputs, (~key_padding).float() if padded else None)
    error = (out - reference).abs().max().item()
    assert error <= 1e-5, error


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("window", [1, 3, 4, 20])
def test_sliding_window_multihead_attention(causal, padded, window):
    """`window_softmax` is exactly `nn.MultiheadAttention` with a banded mask (Longformer's and Mistral's window)."""
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(16, 4, batch_first=True).train()  # train: no fast path
    inputs = torch.randn(3, 11, 16)
    key_padding = torch.zeros(3, 11, dtype=torch.bool)
    if padded:
        key_padding[1, 7:] = True
        key_padding[2, :3] = True
    offset = torch.arange(11)[:, None] - torch.arange(11)[None]
    band = ~((offset >= 0) & (offset < window)) if causal else ~(offset.abs() < window)
    mixer = mixer_from_multihead_attention(attention, causal=causal, window=window)
    with torch.no_grad():
        reference, _ = attention(
            inputs,
            inputs,
            inputs,
            key_padding_mask=key_padding if padded else None,
            attn_mask=band,
            need_weights=False,
        )
        out = _sequence(mixer, inputs, (~key_padding).float() if padded else None)
    real = ~(band[None] | key_padding[:, None, :]).all(-1)  # queries with a key: MHA gives NaN for the others
    error = (out - reference)[real].abs().max().item()
    assert error <= 1e-5, error


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_bert_self_attention(causal, padded):
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertAttention

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_attention_heads=4, attention_probs_dropout_prob=0.0)
    config._attn_implementation = "eager"
    attention = BertAttention(config, is_causal=causal).eval()
    inputs = torch.randn(2, 9, 32)
    mask = torch.ones(2, 9)
    if padded:
        mask[1, 6:] = 0
    allowed = mask[:, None, None, :].bool()
    if causal:
        allowed = allowed & torch.tril(torch.ones(9, 9, dtype=torch.bool))
    additive = torch.zeros(2, 1, 9, 9).masked_fill(~allowed, torch.finfo(torch.float32).min)
    mixer = mixer_from_bert_attention(attention.self, attention.output.dense, causal=causal)
    with torch.no_grad():
        reference = attention.output.dense(attention.self(inputs, attention_mask=additive)[0])
        out = _sequence(mixer, inputs, mask if padded else None)
    error = (out - reference).abs().max().item()
    assert error <= 1e-5, error


@pytest.mark.parametrize("length", [1, 40, 130])
def test_s4d(length):
    torch.manual_seed(length)
    layer = S4D(channels=6, state_size=8)
    inputs = torch.randn(2, length, 6)
    mixer = mixer_from_s4d(layer)
    with torch.no_grad():
        error = (_sequence(mixer, inputs) - layer(inputs)).abs().max().item()
    assert error <= 1e-5, error


@pytest.mark.parametrize("length", [1, 40, 130])
def test_mamba2_ssd(length):
    torch.manual_seed(length)
    layer = SSD(hidden_size=12, num_heads=3, head_dim=4, state_size=5)
    inputs = torch.randn(2, length, 12)
    mixer = mixer_from_ssd(layer)
    with torch.no_grad():
        error = (_sequence(mixer, inputs) - layer(inputs)).abs().max().item()
    assert error <= 1e-5, error


@pytest.mark.parametrize("length", [1, 40, 130])
def test_mingru(length):
    torch.manual_seed(length)
    layer = MinGRU(input_size=5, hidden_size=7)
    inputs = torch.randn(2, length, 5)
    mixer = mixer_from_mingru(layer)
    with torch.no_grad():
        error = (_sequence(mixer, inputs) - layer(inputs)).abs().max().item()
    assert error <= 1e-5, error


def test_gru_is_not_an_integral_transform_but_every_itnet_operator_is_linear_in_its_values():
    """GRU's gates read its state, so its output is not additive in the inputs; an ITNet operator with frozen
    kernel inputs (the `u` that builds K) is linear in the values it integrates."""
    torch.manual_seed(0)
    gru = nn.GRU(4, 4, batch_first=True)
    x1, x2 = torch.randn(1, 12, 4), torch.randn(1, 12, 4)
    with torch.no_grad():
        zero = gru(torch.zeros_like(x1))[0]
        defect = (gru(x1 + x2)[0] - gru(x1)[0] - gru(x2)[0] + zero).abs().max().item()
    assert defect > 1e-2, defect
    mixer = mixer_from_mingru(MinGRU(4, 4))  # exact recurrence; its kernel depends on u, its output is linear in v
    u = torch.randn(1, 12, 4)
    with torch.no_grad():
        branch = mixer.branches["recurrent"]
        v1, v2 = torch.randn(1, 12, 4), torch.randn(1, 12, 4)
        run = lambda v: branch(u, v, None, ITNetLayout((12,), (12.0,)))
        assert torch.allclose(run(v1 + v2), run(v1) + run(v2), atol=1e-6)
