"""Every fast kernel against its `*_naive` reference, forward and backward: odd lengths, 1-D and 2-D grids,
causal and bidirectional, padded and not."""

import pytest
import torch

from modeling_itnet import kernels_itnet
from modeling_itnet.kernels_itnet import (
    causal_offset_mask,
    decayed_kernel,
    decayed_kernel_naive,
    elu_plus_one,
    fourier_features,
    grid_offsets,
    local_conv,
    local_window_kernel,
    low_rank_transform,
    low_rank_transform_naive,
    spectral_conv,
    spectral_conv_naive,
)

GRIDS = [(1,), (2,), (63,), (64,), (65,), (300,), (1, 1), (7, 5), (1, 9), (6, 1), (8, 8), (33, 5)]


def _random_mask(shape, generator):
    mask = (torch.rand(shape, generator=generator) > 0.3).to(torch.float64)
    mask.view(shape[0], -1)[:, 0] = 1.0  # every row keeps a real token
    return mask


def _grads(fn, *tensors):
    tensors = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*tensors)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * weights).sum().backward()
    return out.detach(), [t.grad for t in tensors]


@pytest.fixture(params=["fft", "dense"])
def spectral_path(request, monkeypatch):
    """Runs a test through each of `spectral_conv`'s paths at every grid: the FFT line, or the kernel matrix that
    small grids take (`_dense_is_cheaper`)."""
    monkeypatch.setattr(kernels_itnet, "_dense_is_cheaper", lambda grid: request.param == "dense")
    return request.param


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_spectral_conv_matches_naive_forward_and_backward(grid, causal, padded, spectral_path):
    gen = torch.Generator().manual_seed(0)
    batch, channels = 2, 3
    values = torch.randn(batch, *grid, channels, generator=gen, dtype=torch.float64)
    kernel = torch.randn(*[2 * g - 1 for g in grid], channels, generator=gen, dtype=torch.float64)
    mask = _random_mask((batch, *grid), gen) if padded else None

    fast, fast_grads = _grads(lambda v, k: spectral_conv(v, k, mask, causal), values, kernel)
    ref, ref_grads = _grads(lambda v, k: spectral_conv_naive(v, k, mask, causal), values, kernel)
    torch.testing.assert_close(fast, ref, atol=1e-10, rtol=1e-10)
    for a, b in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_spectral_conv_takes_the_kernel_matrix_on_small_grids_only():
    """The dispatch of `_dense_is_cheaper`: the comparison's 7 x 7 and 8 x 8 image grids take the kernel matrix; 64
    tokens, 16 x 16 patches and anything longer take the FFT."""
    assert kernels_itnet._dense_is_cheaper((7, 7)) and kernels_itnet._dense_is_cheaper((8, 8))
    assert not any(kernels_itnet._dense_is_cheaper(g) for g in [(64,), (300,), (16, 16), (33, 5), (4096,)])


def test_spectral_conv_kernel_matrix_keeps_float32_under_autocast():
    """The small-grid product runs in float32 under bf16 autocast, as the FFT line does."""
    gen = torch.Generator().manual_seed(0)
    values, kernel = torch.randn(2, 7, 7, 4, generator=gen), torch.randn(13, 13, 4, generator=gen)
    assert kernels_itnet._dense_is_cheaper((7, 7))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = spectral_conv(values, kernel)
    assert autocast.dtype == torch.float32
    assert torch.equal(autocast, spectral_conv(values, kernel))


@pytest.mark.parametrize("causal", [False, True])
def test_spectral_conv_first_derivatives_only(causal, monkeypatch):
    """The FFT convolutions' hand-written backward passes are first order: a second derivative raises instead of
    returning a wrong one."""
    monkeypatch.setattr(kernels_itnet, "_dense_is_cheaper", lambda grid: False)
    values = torch.randn(1, 9, 2, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(17, 2, dtype=torch.float64, requires_grad=True)
    out = spectral_conv(values, kernel, causal=causal)
    (grad,) = torch.autograd.grad(out.pow(2).sum(), values, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(1,), (63,), (7, 5)])
def test_decayed_kernel_matches_naive_forward_and_backward(dtype, shape):
    """The fused window `k(δ)·exp(max(−r‖δ‖, m))`: equal to the plain expression, forward and backward, with part of
    the offsets past the floor (whose rate gradient is then 0 in both)."""
    gen = torch.Generator().manual_seed(0)
    kernel = torch.randn(*shape, 6, generator=gen, dtype=dtype)
    distance = torch.rand(shape, generator=gen, dtype=dtype) * 30
    log_decay = torch.randn(6, generator=gen, dtype=dtype)
    fast, fast_grads = _grads(lambda k, r: decayed_kernel(k, distance, r, min_exponent=-20.0), kernel, log_decay)
    ref, ref_grads = _grads(lambda k, r: decayed_kernel_naive(k, distance, r, min_exponent=-20.0), kernel, log_decay)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(fast, ref, atol=tolerance, rtol=tolerance)
    for a, b in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance)
    with pytest.raises(ValueError, match="`log_decay` \\[D\\]"):
        decayed_kernel(kernel, distance, log_decay[:5])


def test_elu_plus_one_matches_autograd():
    x = torch.cat([torch.linspace(-30, 30, 601, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    fast, (fast_grad,) = _grads(elu_plus_one, x)
    ref, (ref_grad,) = _grads(lambda t: torch.nn.functional.elu(t) + 1, x)
    torch.testing.assert_close(fast, ref, atol=1e-15, rtol=1e-12)
    torch.testing.assert_close(fast_grad, ref_grad, atol=1e-15, rtol=1e-12)
    assert (fast > 0).all()


@pytest.mark.parametrize("grid", [(63,), (7, 5)])
def test_spectral_conv_float32_and_bfloat16(grid):
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(2, *grid, 4, generator=gen)
    kernel = torch.randn(*[2 * g - 1 for g in grid], 4, generator=gen) / 8
    ref = spectral_conv_naive(values.double(), kernel.double()).float()
    torch.testing.assert_close(spectral_conv(values, kernel), ref, atol=1e-5, rtol=1e-5)
    # half precision goes through the FFT in float32 and comes back in the input dtype
    out = spectral_conv(values.bfloat16(), kernel.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)


@pytest.mark.parametrize("grid", [(300,), (33, 5)])
def test_causal_spectral_conv_does_not_leak_bit_for_bit(grid, spectral_path):
    """Changing inputs after position t leaves every output at positions <= t bit-for-bit unchanged."""
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(2, *grid, 4, generator=gen)
    kernel = torch.randn(*[2 * g - 1 for g in grid], 4, generator=gen)
    before = spectral_conv(values, kernel, causal=True).reshape(2, -1, 4)
    for t in (0, 63, 64, 100, values[0, ..., 0].numel() - 2):
        changed = values.reshape(2, -1, 4).clone()
        changed[:, t + 1 :] = torch.randn(changed[:, t + 1 :].shape, generator=gen) * 1e3
        after = spectral_conv(changed.reshape(values.shape), kernel, causal=True).reshape(2, -1, 4)
        assert torch.equal(before[:, : t + 1], after[:, : t + 1]), f"output at <= {t} changed"
        assert not torch.equal(before[:, t + 1 :], after[:, t + 1 :])


def test_spectral_conv_is_linear_not_circular():
    """A kernel supported only at offset +1 shifts the signal by one; nothing wraps around from the end."""
    values = torch.arange(1.0, 6.0).view(1, 5, 1)
    kernel = torch.zeros(9, 1)
    kernel[4 + 1] = 1.0  # k(δ = +1) = 1: y_i = v_{i-1}
    out = spectral_conv(values, kernel).flatten()
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]), atol=1e-6, rtol=0)


def test_causal_offset_mask_is_raster_order():
    height, width = 3, 4
    allowed = causal_offset_mask((height, width))
    offsets = grid_offsets((height, width)).long()
    flat = offsets[..., 0] * width + offsets[..., 1]
    assert torch.equal(allowed, flat >= 0)


def test_spectral_conv_rejects_mismatched_kernel():
    with pytest.raises(ValueError, match="`kernel` must have shape"):
        spectral_conv(torch.randn(1, 5, 2), torch.randn(8, 2))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        spectral_conv(torch.randn(1, 5, 2), torch.randn(9, 2), mask=torch.ones(1, 4))


@pytest.mark.parametrize("length", [1, 2, 17, 63, 64, 65, 130])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_low_rank_transform_matches_naive_forward_and_backward(length, causal, padded):
    gen = torch.Generator().manual_seed(0)
    batch, heads, rank, width = 2, 3, 4, 5
    query = torch.rand(batch, heads, length, rank, generator=gen, dtype=torch.float64)
    key = torch.rand(batch, heads, length, rank, generator=gen, dtype=torch.float64)
    value = torch.randn(batch, heads, length, width, generator=gen, dtype=torch.float64)
    mask = _random_mask((batch, length), gen) if padded else None

    fast, fast_grads = _grads(
        lambda q, k, v: low_rank_transform(q, k, v, mask, causal, chunk_size=16), query, key, value
    )
    ref, ref_grads = _grads(lambda q, k, v: low_rank_transform_naive(q, k, v, mask, causal), query, key, value)
    torch.testing.assert_close(fast, ref, atol=1e-10, rtol=1e-10)
    for a, b in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_causal_low_rank_does_not_leak_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    query, key = torch.rand(2, 2, 200, 4, generator=gen), torch.rand(2, 2, 200, 4, generator=gen)
    value = torch.randn(2, 2, 200, 3, generator=gen)
    before = low_rank_transform(query, key, value, causal=True)
    for t in (0, 63, 64, 100, 198):
        q, k, v = query.clone(), key.clone(), value.clone()
        for x in (q, k, v):
            x[:, :, t + 1 :] = torch.rand(x[:, :, t + 1 :].shape, generator=gen) * 10
        after = low_rank_transform(q, k, v, causal=True)
        assert torch.equal(before[:, :, : t + 1], after[:, :, : t + 1]), f"output at <= {t} changed"


def test_low_rank_causal_position_with_no_real_token_is_zero():
    """Left padding under causality: a position before the first real token sees nothing and returns 0, not NaN."""
    query = torch.rand(1, 1, 6, 2)
    key = torch.rand(1, 1, 6, 2)
    value = torch.randn(1, 1, 6, 3)
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]])
    out = low_rank_transform(query, key, value, mask, causal=True, chunk_size=4)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, 0, :2], torch.zeros(2, 3))


def test_low_rank_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="`query` and `key`"):
        low_rank_transform(torch.rand(1, 1, 4, 2), torch.rand(1, 1, 4, 3), torch.rand(1, 1, 4, 2))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        low_rank_transform(torch.rand(1, 1, 4, 2), torch.rand(1, 1, 4, 2), torch.rand(1, 1, 4, 2), torch.ones(1, 3))


def test_fourier_features_shape_and_range():
    coords = torch.randn(5, 7, 2)
    feats = fourier_features(coords, num_frequencies=6, max_frequency=32.0)
    assert feats.shape == (5, 7, 2 * 2 * 6)
    assert feats.abs().max() <= 1.0
    # sin² + cos² = 1 for each (coordinate, frequency)
    sin, cos = fourier_features(coords[..., :1], 6, 32.0).chunk(2, dim=-1)
    torch.testing.assert_close(sin**2 + cos**2, torch.ones_like(sin))


@pytest.mark.parametrize(
    "grid, window, lows",
    [
        ((13,), (3,), (-1,)),
        ((13,), (4,), (-1,)),
        ((13,), (3,), (0,)),
        ((2,), (5,), (-2,)),
        ((5, 7), (3, 3), (-1, -1)),
        ((5, 7), (3, 3), (0, -1)),
        ((1, 1), (3, 3), (-1, -1)),
    ],
)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_local_conv_matches_naive_forward_and_backward(grid, window, lows, causal, padded):
    """The window kernel, evaluated directly, equals the dense stationary kernel it embeds."""
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(2, *grid, 3, generator=gen, dtype=torch.float64)
    table = torch.randn(*window, 3, generator=gen, dtype=torch.float64)
    mask = _random_mask((2, *grid), gen) if padded else None
    fast, fast_grads = _grads(lambda v, t: local_conv(v, t, lows, mask, causal), values, table)
    ref, ref_grads = _grads(
        lambda v, t: spectral_conv_naive(v, local_window_kernel(t, lows, grid), mask, causal), values, table
    )
    torch.testing.assert_close(fast, ref, atol=1e-12, rtol=1e-12)
    for a, b in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
