"""The constrained ITNet operator IS the specialised module: exact equivalences (fp32, max abs error <= 1e-5)."""

import pytest
import torch
from torch import nn

from modeling_itnet.special_cases_itnet import apply_conv, mixer_from_conv


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
    conv = nn.Conv2d(channels_in, channels_out, kernel_size, groups=channels_in if depthwise else 1, bias=not depthwise)
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
