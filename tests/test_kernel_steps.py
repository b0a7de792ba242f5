"""The single-token steps of `kernels_itnet.py` (the generation path of each family) against the `*_naive` full
transforms: stepping through a causal sequence, left padding and a padded step included, gives the naive outputs,
and the closed-form final states equal the stepped ones. Float64, odd lengths."""

import pytest
import torch

from modeling_itnet.kernels_itnet import (
    local_conv_step,
    local_window_kernel,
    low_rank_final_state,
    low_rank_step,
    low_rank_transform_naive,
    mlp_kernel_step,
    mlp_kernel_transform_naive,
    relative_position_bias,
    s4d_discretize,
    softmax_step,
    softmax_transform_naive,
    spectral_conv_naive,
    ssm_final_state,
    ssm_step,
    ssm_transform_naive,
    stationary_kernel_step,
    window_softmax_transform_naive,
)

LENGTHS = [1, 6, 13]


def _mask(length):
    mask = torch.ones(2, length, dtype=torch.float64)
    mask[1, : min(2, length - 1)] = 0  # left padding
    if length > 4:
        mask[0, 4] = 0  # a padded step
    return mask


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("length", LENGTHS)
def test_stationary_kernel_step_is_the_causal_spectral_conv(length):
    values, kernel, mask = _randn(2, length, 3), _randn(2 * length - 1, 3, seed=1), _mask(length)
    expected = spectral_conv_naive(values, kernel, mask, causal=True)
    past = values * mask[..., None]
    for t in range(length):
        row = kernel[length - 1 : length + t].flip(0)  # k(t − s), s = 0 .. t
        torch.testing.assert_close(stationary_kernel_step(row, past[:, : t + 1]), expected[:, t])


@pytest.mark.parametrize("length", LENGTHS)
def test_local_conv_step_is_the_causal_window_conv(length):
    window, values, mask = 3, _randn(2, length, 3), _mask(length)
    taps = _randn(window, 3, seed=1)
    expected = spectral_conv_naive(values, local_window_kernel(taps, (0,), (length,)), mask, causal=True)
    past = torch.nn.functional.pad(values * mask[..., None], (0, 0, window - 1, 0))
    for t in range(length):
        torch.testing.assert_close(local_conv_step(taps, past[:, t : t + window]), expected[:, t])


@pytest.mark.parametrize("length", LENGTHS)
def test_low_rank_steps_are_the_causal_transform(length):
    query, key = _randn(2, 2, length, 4).exp(), _randn(2, 2, length, 4, seed=1).exp()
    value, mask = _randn(2, 2, length, 5, seed=2), _mask(length)
    expected = low_rank_transform_naive(query, key, value, mask, causal=True)
    state, normaliser = torch.zeros(2, 2, 4, 5, dtype=torch.float64), torch.zeros(2, 2, 4, dtype=torch.float64)
    for t in range(length):
        out, state, normaliser = low_rank_step(
            query[:, :, t], key[:, :, t], value[:, :, t], state, normaliser, mask[:, t]
        )
        torch.testing.assert_close(out, expected[:, :, t])
    final = low_rank_final_state(key, value, mask)
    torch.testing.assert_close(state, final[0])
    torch.testing.assert_close(normaliser, final[1])


@pytest.mark.parametrize("bias", [False, True], ids=["plain", "relative-bias"])
@pytest.mark.parametrize("length", LENGTHS)
def test_softmax_steps_are_the_causal_transform(length, bias):
    query, key, value, mask = (
        _randn(2, 2, length, 4),
        _randn(2, 2, length, 4, seed=1),
        _randn(2, 2, length, 4, seed=2),
        _mask(length),
    )
    table = _randn(2, 2 * length - 1, seed=3)  # per head, b(δ) at δ + N − 1
    full_bias = relative_position_bias(table, (length,)) if bias else None
    expected = softmax_transform_naive(query, key, value, mask, causal=True, bias=full_bias)
    for t in range(length):
        row = table[:, length - 1 : length + t].flip(-1) if bias else None  # b(t − s), s = 0 .. t
        out = softmax_step(query[:, :, t : t + 1], key[:, :, : t + 1], value[:, :, : t + 1], mask[:, : t + 1], row)
        torch.testing.assert_close(out, expected[:, :, t])


@pytest.mark.parametrize("window", [1, 3, 20])
@pytest.mark.parametrize("length", LENGTHS)
def test_softmax_steps_over_the_window_are_the_window_transform(length, window):
    query, key, value, mask = (
        _randn(2, 2, length, 4),
        _randn(2, 2, length, 4, seed=1),
        _randn(2, 2, length, 4, seed=2),
        _mask(length),
    )
    expected = window_softmax_transform_naive(query, key, value, mask, causal=True, window=window)
    for t in range(length):
        start = max(0, t - window + 1)
        out = softmax_step(
            query[:, :, t : t + 1], key[:, :, start : t + 1], value[:, :, start : t + 1], mask[:, start : t + 1], None
        )
        torch.testing.assert_close(out, expected[:, :, t])


@pytest.mark.parametrize("length", LENGTHS)
def test_mlp_kernel_steps_are_the_causal_transform(length):
    positions = torch.arange(length, dtype=torch.float64)[None, :, None].expand(2, length, 3) / length
    left, right, value, mask = (
        _randn(2, length, 6),
        _randn(2, length, 6, seed=1),
        _randn(2, 2, length, 3, seed=2),
        _mask(length),
    )
    weight = _randn(6, 2, seed=3)

    def kernel_fn(offsets, left_i, right_j):  # [..., 3], [..., A] -> [..., H]
        return torch.tanh(offsets.sum(-1, keepdim=True) + left_i + right_j) @ weight

    expected = mlp_kernel_transform_naive(positions, left, right, value, kernel_fn, mask, causal=True)
    for t in range(length):
        K = kernel_fn(
            positions[:, t : t + 1, None] - positions[:, None, : t + 1],
            left[:, t : t + 1, None],
            right[:, None, : t + 1],
        )
        torch.testing.assert_close(mlp_kernel_step(K[:, 0], mask[:, : t + 1], value[:, :, : t + 1]), expected[:, :, t])


@pytest.mark.parametrize("length", LENGTHS)
def test_ssm_steps_are_the_causal_transform(length):
    channels, modes = 3, 2
    A = torch.complex(-_randn(channels, modes).exp(), _randn(channels, modes, seed=1))
    B = torch.complex(_randn(channels, modes, seed=2), _randn(channels, modes, seed=3))
    C = torch.complex(_randn(channels, modes, seed=4), _randn(channels, modes, seed=5))
    log_dt, skip = _randn(channels, seed=6) - 2, _randn(channels, seed=7)
    values, mask = _randn(2, length, channels, seed=8), _mask(length)
    expected = ssm_transform_naive(values, A, B, C, mask, skip, log_dt.exp())
    A_bar, B_bar = s4d_discretize(log_dt, A, B)
    state = torch.zeros(2, channels, modes, dtype=A_bar.dtype)
    inputs = values * mask[..., None]
    for t in range(length):
        out, state = ssm_step(A_bar, B_bar, C, skip, state, inputs[:, t])
        torch.testing.assert_close(out, expected[:, t])
    torch.testing.assert_close(ssm_final_state(log_dt.exp().unsqueeze(-1) * A, B_bar, inputs), state)
