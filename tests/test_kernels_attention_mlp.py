"""Softmax, general-MLP (tiled) and Monte Carlo kernels against their `*_naive` references, forward and backward:
odd lengths, causal and bidirectional, padded and not; softmax against `torch.nn.MultiheadAttention`; the tiled
MLP kernel's saved-for-backward memory; the Monte Carlo estimator's unbiasedness, variance and determinism."""

import functools
import math

import pytest
import torch

from modeling_itnet.kernels_itnet import (
    fourier_bias,
    mlp_kernel_transform,
    mlp_kernel_transform_naive,
    monte_carlo_sample,
    monte_carlo_transform,
    relative_position_bias,
    softmax_fourier_transform,
    softmax_fourier_transform_naive,
    softmax_transform,
    softmax_transform_naive,
)

LENGTHS = [1, 17, 63, 65]
GRIDS_2D = {1: (1, 1), 17: (1, 17), 63: (7, 9), 65: (5, 13)}


def _random_mask(shape, generator, dtype=torch.float64):
    mask = (torch.rand(shape, generator=generator) > 0.3).to(dtype)
    mask[:, 0] = 1.0  # every row keeps a real token
    return mask


def _grads(fn, *tensors, params=()):
    """Output and gradients of a random projection of `fn(*tensors)` w.r.t. `tensors` and `params`."""
    tensors = [t.detach().clone().requires_grad_(True) for t in tensors]
    for p in params:
        p.grad = None
    out = fn(*tensors)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * weights).sum().backward()
    grads = [t.grad for t in tensors] + [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return out.detach(), grads


def _assert_all_close(fast, ref, atol, rtol=0.0):
    (out_a, grads_a), (out_b, grads_b) = fast, ref
    torch.testing.assert_close(out_a, out_b, atol=atol, rtol=rtol)
    assert len(grads_a) == len(grads_b)
    for a, b in zip(grads_a, grads_b):
        assert a is not None and torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


# --------------------------------------------------------------------------------------------------------------
# softmax
# --------------------------------------------------------------------------------------------------------------


def _bias(kind, length, heads, generator, dtype=torch.float64):
    if kind is None:
        return None
    grid = (length,) if kind == "1d" else GRIDS_2D[length]
    table = torch.randn(heads, *[2 * g - 1 for g in grid], generator=generator, dtype=dtype)
    return relative_position_bias(table, grid)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("bias_kind", [None, "1d", "2d"])
def test_softmax_transform_matches_naive_forward_and_backward(length, causal, padded, bias_kind):
    gen = torch.Generator().manual_seed(0)
    batch, heads, dim, width = 2, 3, 4, 5
    query = torch.randn(batch, heads, length, dim, generator=gen, dtype=torch.float64)
    key = torch.randn(batch, heads, length, dim, generator=gen, dtype=torch.float64)
    value = torch.randn(batch, heads, length, width, generator=gen, dtype=torch.float64)
    mask = _random_mask((batch, length), gen) if padded else None
    tensors = (query, key, value)
    bias = _bias(bias_kind, length, heads, gen)
    if bias is not None:
        tensors += (bias,)

    def run(fn):
        return lambda q, k, v, b=None: fn(q, k, v, mask, causal, bias=b)

    _assert_all_close(_grads(run(softmax_transform), *tensors), _grads(run(softmax_transform_naive), *tensors), 1e-10)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("layout", ["1d", "2d", "points"])
@pytest.mark.parametrize("width", [3, 20])  # values narrower and wider than the augmented queries (4 + 2 * 6)
def test_softmax_fourier_transform_matches_naive_forward_and_backward(length, causal, padded, layout, width):
    gen = torch.Generator().manual_seed(0)
    batch, heads, dim, rank = 2, 3, 4, 6
    query, key = (torch.randn(batch, heads, length, dim, generator=gen, dtype=torch.float64) for _ in range(2))
    value = torch.randn(batch, heads, length, width, generator=gen, dtype=torch.float64)
    mask = _random_mask((batch, length), gen) if padded else None
    if layout == "points":
        positions, dims = torch.randn(batch, length, 3, generator=gen, dtype=torch.float64), 3
    else:
        grid = (length,) if layout == "1d" else GRIDS_2D[length]
        axes = torch.meshgrid(*[torch.arange(g, dtype=torch.float64) for g in grid], indexing="ij")
        positions, dims = torch.stack(axes, -1).reshape(length, len(grid)), len(grid)
    frequencies = torch.randn(rank, dims, generator=gen, dtype=torch.float64)
    cos_weight, sin_weight = (torch.randn(heads, rank, generator=gen, dtype=torch.float64) for _ in range(2))
    tensors = (query, key, value, frequencies, cos_weight, sin_weight)

    def run(fn):
        return lambda q, k, v, f, a, c: fn(q, k, v, positions, f, a, c, mask, causal)

    fast, ref = (
        _grads(run(softmax_fourier_transform), *tensors),
        _grads(run(softmax_fourier_transform_naive), *tensors),
    )
    _assert_all_close(fast, ref, 1e-10)


def test_fourier_bias_is_stationary_and_matches_its_series():
    gen = torch.Generator().manual_seed(0)
    frequencies = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    a, c = torch.randn(3, 5, generator=gen, dtype=torch.float64), torch.randn(3, 5, generator=gen, dtype=torch.float64)
    offset = torch.tensor([1.5, -2.0], dtype=torch.float64)
    angles = frequencies @ offset
    expected = (a * angles.cos()).sum(-1) + (c * angles.sin()).sum(-1)
    torch.testing.assert_close(fourier_bias(offset, frequencies, a, c), expected)
    # b(x_i - x_j) depends on the offset alone: shifting every position leaves the attention unchanged
    query, key, value = (torch.randn(1, 3, 7, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    positions = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    out = softmax_fourier_transform(query, key, value, positions, frequencies, a, c)
    shifted = softmax_fourier_transform(query, key, value, positions + 10.0, frequencies, a, c)
    torch.testing.assert_close(out, shifted)


def test_softmax_fourier_transform_rejects_bad_shapes():
    query = torch.randn(1, 2, 5, 4)
    frequencies, weight = torch.randn(3, 2), torch.randn(2, 3)
    with pytest.raises(ValueError, match="`positions` must have shape"):
        softmax_fourier_transform(query, query, query, torch.randn(4, 2), frequencies, weight, weight)
    with pytest.raises(ValueError, match="`cos_weight` must have shape"):
        softmax_fourier_transform(query, query, query, torch.randn(5, 2), frequencies, torch.randn(3, 3), weight)
    with pytest.raises(ValueError, match="`frequencies` must have shape"):
        softmax_fourier_transform(query, query, query, torch.randn(5, 2), torch.randn(3), weight, weight)


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_transform_float32_batch_bias_and_scale(causal):
    gen = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 4, 33, 8, generator=gen) for _ in range(3))
    mask = _random_mask((2, 33), gen, torch.float32)
    bias = torch.randn(2, 1, 33, 33, generator=gen)  # [B, 1, N, N] broadcasts over heads
    tensors = (query, key, value, bias)
    fast = _grads(lambda q, k, v, b: softmax_transform(q, k, v, mask, causal, b, scale=0.3), *tensors)
    ref = _grads(lambda q, k, v, b: softmax_transform_naive(q, k, v, mask, causal, b, scale=0.3), *tensors)
    assert fast[0].dtype == torch.float32
    _assert_all_close(fast, ref, 1e-5)


@pytest.mark.parametrize("with_bias", [False, True])
def test_softmax_causal_row_with_no_real_key_is_zero_not_nan(with_bias):
    """Left padding under causality: rows before the first real token see no key; output 0, gradients finite."""
    gen = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 2, 6, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0, 1.0], [1.0] * 6], dtype=torch.float64)
    bias = torch.randn(2, 6, 6, generator=gen, dtype=torch.float64) if with_bias else None
    tensors = (query, key, value) + ((bias,) if with_bias else ())
    fast = _grads(lambda q, k, v, b=None: softmax_transform(q, k, v, mask, True, b), *tensors)
    ref = _grads(lambda q, k, v, b=None: softmax_transform_naive(q, k, v, mask, True, b), *tensors)
    assert torch.equal(fast[0][0, :, :2], torch.zeros(2, 2, 3, dtype=torch.float64))
    _assert_all_close(fast, ref, 1e-10)
    # a padded key contributes nothing: changing its key and value leaves the output unchanged
    key2, value2 = key.clone(), value.clone()
    key2[0, :, 4], value2[0, :, 4] = 100.0, 100.0
    torch.testing.assert_close(softmax_transform(query, key2, value2, mask, True, bias), fast[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_softmax_transform_reproduces_torch_multihead_attention(masked, causal):
    """MHA(x) = out_proj(softmax_transform(in_proj(x))), with key_padding_mask and a causal attn_mask; and the same
    parameter gradients."""
    torch.manual_seed(0)
    batch, length, embed, heads = 3, 19, 24, 4
    mha = torch.nn.MultiheadAttention(embed, heads, dropout=0.0, batch_first=True)
    mha.train()  # no fast path: its nested-tensor route zeroes padded query rows
    x = torch.randn(batch, length, embed)
    padding = torch.zeros(batch, length, dtype=torch.bool)
    if masked:
        padding[1, 13:] = True  # right padding: no row is fully masked, which MHA would turn into NaN
        padding[2, 5:9] = True
    attn_mask = torch.ones(length, length, dtype=torch.bool).triu(1) if causal else None

    reference, _ = mha(x, x, x, key_padding_mask=padding if masked else None, attn_mask=attn_mask, need_weights=False)
    reference_grads = torch.autograd.grad(reference.square().sum(), [mha.in_proj_weight, mha.out_proj.weight])

    q, k, v = torch.nn.functional.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, length, heads, embed // heads).transpose(1, 2) for t in (q, k, v))
    mask = (~padding).float() if masked else None
    y = softmax_transform(q, k, v, mask=mask, causal=causal)
    ours = mha.out_proj(y.transpose(1, 2).reshape(batch, length, embed))
    ours_grads = torch.autograd.grad(ours.square().sum(), [mha.in_proj_weight, mha.out_proj.weight])

    assert (ours - reference).abs().max() <= 1e-5
    for a, b in zip(ours_grads, reference_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("grid", [(1,), (5,), (1, 1), (3, 4), (4, 1)])
def test_relative_position_bias_is_table_at_offset(grid):
    heads = 2
    table = torch.randn(heads, *[2 * g - 1 for g in grid])
    bias = relative_position_bias(table, grid)
    points = list(torch.cartesian_prod(*[torch.arange(g) for g in grid]).reshape(-1, len(grid)).tolist())
    assert bias.shape == (heads, len(points), len(points))
    for i, xi in enumerate(points):
        for j, xj in enumerate(points):
            index = tuple(a - b + g - 1 for a, b, g in zip(xi, xj, grid))
            assert torch.equal(bias[:, i, j], table[(slice(None),) + index])


def test_softmax_rejects_bad_shapes():
    q = torch.randn(1, 2, 4, 3)
    with pytest.raises(ValueError, match="`query` and `key`"):
        softmax_transform(q, torch.randn(1, 2, 4, 2), q)
    with pytest.raises(ValueError, match="`value` must have shape"):
        softmax_transform(q, q, torch.randn(1, 2, 5, 3))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        softmax_transform(q, q, q, mask=torch.ones(1, 5))
    with pytest.raises(ValueError, match="`bias` must have shape"):
        softmax_transform(q, q, q, bias=torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="`table` must have shape"):
        relative_position_bias(torch.randn(2, 6), (4,))


# --------------------------------------------------------------------------------------------------------------
# general MLP kernel, tiled
# --------------------------------------------------------------------------------------------------------------


class PairMLP(torch.nn.Module):
    """`K(δ, a_i, b_j) = MLP([δ, a_i, b_j])`, an `nn.Sequential`, as the kernel a layer would own."""

    def __init__(self, pos_dim, feat_dim, heads, hidden=16, record=None):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(pos_dim + 2 * feat_dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, heads)
        )
        self.record = record

    def forward(self, offsets, left_i, right_j):
        if self.record is not None:
            self.record.append(offsets.shape[:-1].numel())
        return self.net(torch.cat([offsets, left_i, right_j], dim=-1))


def _mlp_problem(batch, heads, length, pos_dim=1, feat_dim=3, width=4, seed=0, irregular=False, padded=False):
    gen = torch.Generator().manual_seed(seed)
    if irregular:
        positions = torch.rand(batch, length, pos_dim, generator=gen, dtype=torch.float64) * 4
    else:
        positions = torch.arange(length, dtype=torch.float64).view(1, length, 1).expand(batch, length, pos_dim) / 8
    left = torch.randn(batch, length, feat_dim, generator=gen, dtype=torch.float64)
    right = torch.randn(batch, length, feat_dim, generator=gen, dtype=torch.float64)
    value = torch.randn(batch, heads, length, width, generator=gen, dtype=torch.float64)
    mask = _random_mask((batch, length), gen) if padded else None
    torch.manual_seed(seed)
    kernel = PairMLP(pos_dim, feat_dim, heads).double()
    return positions, left, right, value, mask, kernel


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("tile_size", [7, 16, 128])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_mlp_kernel_transform_matches_naive_forward_and_backward(length, tile_size, causal, padded):
    positions, left, right, value, mask, kernel = _mlp_problem(2, 3, length, padded=padded)
    params = list(kernel.parameters())
    tensors = (positions, left, right, value)
    fast = _grads(
        lambda x, a, b, v: mlp_kernel_transform(x, a, b, v, kernel, mask, causal, tile_size), *tensors, params=params
    )
    ref = _grads(
        lambda x, a, b, v: mlp_kernel_transform_naive(x, a, b, v, kernel, mask, causal), *tensors, params=params
    )
    _assert_all_close(fast, ref, 1e-10, 1e-10)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_mlp_kernel_transform_irregular_3d_points(causal, padded):
    positions, left, right, value, mask, kernel = _mlp_problem(2, 2, 50, pos_dim=3, irregular=True, padded=padded)
    params = list(kernel.parameters())
    tensors = (positions, left, right, value)
    fast = _grads(
        lambda x, a, b, v: mlp_kernel_transform(x, a, b, v, kernel, mask, causal, 13), *tensors, params=params
    )
    ref = _grads(
        lambda x, a, b, v: mlp_kernel_transform_naive(x, a, b, v, kernel, mask, causal), *tensors, params=params
    )
    _assert_all_close(fast, ref, 1e-10, 1e-10)
    # without autograd (no checkpointing) the result is the same
    with torch.no_grad():
        torch.testing.assert_close(
            mlp_kernel_transform(*tensors, kernel, mask, causal, 13), fast[0], atol=1e-12, rtol=0
        )


def test_mlp_kernel_normalises_by_real_keys_and_empty_rows_are_zero():
    positions, left, right, value, _, kernel = _mlp_problem(1, 2, 6)
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    out = mlp_kernel_transform(positions, left, right, value, kernel, mask, causal=True, tile_size=4)
    assert torch.equal(out[0, :, :2], torch.zeros(2, 2, 4, dtype=torch.float64))
    # row 5 averages K·v over its 3 real keys (2, 3, 5)
    offsets = positions[0, 5] - positions[0, [2, 3, 5]]
    K = kernel(offsets, left[0, 5].expand(3, -1), right[0, [2, 3, 5]])  # [3, H]
    expected = torch.einsum("jh,hje->he", K, value[0][:, [2, 3, 5]]) / 3
    torch.testing.assert_close(out[0, :, 5], expected, atol=1e-12, rtol=0)


def test_mlp_kernel_never_evaluates_more_than_one_tile_forward_or_backward():
    record = []
    positions, left, right, value, mask, _ = _mlp_problem(2, 2, 70, padded=True)
    kernel = PairMLP(1, 3, 2, record=record).double()
    value.requires_grad_(True)
    out = mlp_kernel_transform(positions, left, right, value, kernel, mask, causal=True, tile_size=16)
    forward_calls = len(record)
    out.square().sum().backward()
    assert len(record) == 2 * forward_calls  # every tile recomputed once in backward
    assert max(record) <= 2 * 16 * 16  # B · T · T pairs at most, never B · N · N


def _saved_elements(fn):
    """Elements of the tensors autograd saves for backward while `fn()` runs (views of one storage counted once)."""
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes() // t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    out.sum().backward()  # the graph is usable
    return sum(seen.values())


def test_mlp_kernel_saved_for_backward_grows_linearly_tiled_quadratically_naive():
    """Memory, not timing: what autograd keeps for backward. The tiled path keeps O(N) elements (its tiles are
    recomputed under checkpoint); the naive path keeps the [B, N, N, hidden] activations."""
    tiled, naive = {}, {}
    for length in (64, 128, 256):
        positions, left, right, value, mask, kernel = _mlp_problem(1, 2, length, padded=True)
        value.requires_grad_(True)
        problem = (positions, left, right, value, kernel, mask)
        tiled[length] = _saved_elements(functools.partial(mlp_kernel_transform, *problem, causal=True, tile_size=32))
        naive[length] = _saved_elements(functools.partial(mlp_kernel_transform_naive, *problem, causal=True))
    for small, large in ((64, 128), (128, 256)):
        assert tiled[large] <= 2.2 * tiled[small], tiled  # linear: x2 per doubling
        assert naive[large] >= 3.6 * naive[small], naive  # quadratic: x4 per doubling
    assert tiled[256] < 256 * 64  # a few numbers per token, far below one [N, N] plane (65,536)
    assert naive[256] >= 256 * 256 * 16  # at least the [N, N, hidden] activations


def test_mlp_kernel_rejects_bad_shapes():
    positions, left, right, value, _mask, kernel = _mlp_problem(1, 2, 5)
    with pytest.raises(ValueError, match="`positions` must have shape"):
        mlp_kernel_transform(positions[0], left, right, value, kernel)
    with pytest.raises(ValueError, match="`right` must have shape"):
        mlp_kernel_transform(positions, left, right[:, :4], value, kernel)
    with pytest.raises(ValueError, match="`value` must have shape"):
        mlp_kernel_transform(positions, left, right, value[:, :, :4], kernel)
    with pytest.raises(ValueError, match="`mask` must have shape"):
        mlp_kernel_transform(positions, left, right, value, kernel, mask=torch.ones(1, 4))
    with pytest.raises(ValueError, match="`kernel_fn` must return shape"):
        mlp_kernel_transform(positions, left, right, value[:, :1], kernel)


# --------------------------------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------------------------------


def _replicate(copies, *tensors):
    """Stack `copies` copies of each tensor along the batch axis (the draws of each copy are independent)."""
    return [None if t is None else t.repeat(copies, *([1] * (t.dim() - 1))) for t in tensors]


def _draws(copies, num_samples, positions, left, right, value, kernel, log_proposal, mask, causal, seed=0):
    """`copies` independent Monte Carlo estimates, `[copies, B, H, N, E]`."""
    batch = positions.shape[0]
    x, a, b, v, s, w = _replicate(copies, positions, left, right, value, log_proposal, mask)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = monte_carlo_transform(x, a, b, v, kernel, s, num_samples, w, causal, generator=gen)
    return out.reshape(copies, batch, *out.shape[1:])


def _mc_problem(length=13, padded=False, causal=False, seed=0):
    positions, left, right, value, mask, kernel = _mlp_problem(
        2, 2, length, pos_dim=2, irregular=True, padded=padded, seed=seed
    )
    if padded and causal:
        mask[0, :3] = 0.0  # left padding: rows 0..2 of batch 0 have no allowed key
    log_proposal = torch.randn(2, length, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return positions, left, right, value, kernel, log_proposal, mask


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_monte_carlo_is_unbiased(causal, padded):
    """2000 independent draws of M = 8: every element of the mean lies within 5 standard errors of the exact
    transform (observed: at most 3.3 SE), and the largest deviation is at most 0.05 (observed: 0.018; the exact
    values have mean magnitude about 0.06, largest 0.7)."""
    positions, left, right, value, kernel, log_proposal, mask = _mc_problem(padded=padded, causal=causal)
    exact = mlp_kernel_transform(positions, left, right, value, kernel, mask, causal).detach()
    draws = _draws(2000, 8, positions, left, right, value, kernel, log_proposal, mask, causal)
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])
    assert ((mean - exact).abs() <= 5 * se + 1e-12).all(), ((mean - exact).abs() / se).max()
    assert (mean - exact).abs().max() <= 0.05
    assert (mean - exact).abs().mean() <= 1.5 * se.mean()  # E|N(0, SE)| = 0.8 SE: no systematic offset
    if padded and causal:
        assert torch.equal(draws[:, 0, :, :3], torch.zeros_like(draws[:, 0, :, :3]))


@pytest.mark.parametrize("causal", [False, True])
def test_monte_carlo_more_samples_than_keys_is_still_unbiased(causal):
    """M = 12 samples (with replacement) among at most 5 real keys."""
    positions, left, right, value, kernel, log_proposal, mask = _mc_problem(length=7, padded=True, causal=causal)
    exact = mlp_kernel_transform(positions, left, right, value, kernel, mask, causal).detach()
    draws = _draws(2000, 12, positions, left, right, value, kernel, log_proposal, mask, causal)
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])
    assert ((mean - exact).abs() <= 5 * se + 1e-12).all()
    assert (mean - exact).abs().max() <= 0.05


def test_monte_carlo_variance_decreases_as_one_over_m():
    """Variance over 2000 draws at M = 4, 16, 64: each 4x more samples divides it by 4 (within 25%)."""
    positions, left, right, value, kernel, log_proposal, mask = _mc_problem(padded=True)
    variance = {}
    for num_samples in (4, 16, 64):
        draws = _draws(2000, num_samples, positions, left, right, value, kernel, log_proposal, mask, False)
        variance[num_samples] = draws.var(0).mean().item()
    assert 3.0 <= variance[4] / variance[16] <= 5.0, variance
    assert 3.0 <= variance[16] / variance[64] <= 5.0, variance


def test_monte_carlo_gradient_is_unbiased():
    """Gradients w.r.t. value and the kernel's parameters: mean over 20 groups of 100 draws (M = 8) within 5
    standard errors of the exact gradient."""
    positions, left, right, value, kernel, log_proposal, mask = _mc_problem(padded=True, causal=True)
    weights = torch.randn(value.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    params = list(kernel.parameters())

    def gradient(fn):
        v = value.detach().clone().requires_grad_(True)
        return torch.cat([g.flatten() for g in torch.autograd.grad((fn(v) * weights).sum(), [v, *params])])

    exact = gradient(lambda v: mlp_kernel_transform(positions, left, right, v, kernel, mask, True))
    groups = []
    for group in range(20):

        def estimate(v, group=group):
            x, a, b, vv, s, w = _replicate(100, positions, left, right, v, log_proposal, mask)
            gen = torch.Generator().manual_seed(group)
            out = monte_carlo_transform(x, a, b, vv, kernel, s, 8, w, True, generator=gen)
            return out.reshape(100, *value.shape).mean(0)

        groups.append(gradient(estimate))
    groups = torch.stack(groups)
    mean, se = groups.mean(0), groups.std(0) / math.sqrt(groups.shape[0])
    assert ((mean - exact).abs() <= 5 * se + 1e-10).all()


@pytest.mark.parametrize("causal", [False, True])
def test_monte_carlo_matches_explicit_estimator_forward_and_backward(causal):
    """With the same seeded generator, the transform equals the estimator written out from the full kernel at the
    indices `monte_carlo_sample` draws: (1/M) Σ_m w_j K_ij v_j / q_i(j), q_i = softmax of the allowed scores."""
    positions, left, right, value, kernel, log_proposal, mask = _mc_problem(length=11, padded=True, causal=causal)
    params = list(kernel.parameters())
    M = 5

    def explicit(x, a, b, v):
        index, _, has_key = monte_carlo_sample(log_proposal, M, mask, causal, torch.Generator().manual_seed(7))
        K = kernel(x[:, :, None] - x[:, None], a[:, :, None].expand(-1, -1, 11, -1), b[:, None].expand(-1, 11, -1, -1))
        allowed = (mask != 0)[:, None, :].expand(-1, 11, -1)
        if causal:
            allowed = allowed & torch.ones(11, 11, dtype=torch.bool).tril()
        q = log_proposal[:, None, :].masked_fill(~allowed, float("-inf")).softmax(-1).nan_to_num(0.0)  # [B, N, N]
        Z = (mask[:, None, :] * allowed).sum(-1)  # [B, N]
        out = torch.zeros_like(v)
        for bb in range(2):
            for i in range(11):
                if not has_key[bb, i]:
                    continue
                for j in index[bb, i].tolist():
                    out[bb, :, i] += mask[bb, j] * K[bb, i, j][:, None] * v[bb, :, j] / q[bb, i, j] / M / Z[bb, i]
        return out

    fast = _grads(
        lambda x, a, b, v: monte_carlo_transform(
            x, a, b, v, kernel, log_proposal, M, mask, causal, torch.Generator().manual_seed(7)
        ),
        positions, left, right, value, params=params,
    )  # fmt: skip
    ref = _grads(explicit, positions, left, right, value, params=params)
    _assert_all_close(fast, ref, 1e-10, 1e-10)


def test_monte_carlo_is_deterministic_with_a_seeded_generator():
    positions, left, right, value, kernel, log_proposal, mask = _mc_problem(padded=True)
    args = (positions, left, right, value, kernel, log_proposal, 8, mask, False)
    first = monte_carlo_transform(*args, generator=torch.Generator().manual_seed(123))
    again = monte_carlo_transform(*args, generator=torch.Generator().manual_seed(123))
    other = monte_carlo_transform(*args, generator=torch.Generator().manual_seed(124))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("causal", [False, True])
def test_monte_carlo_never_samples_disallowed_keys(causal):
    gen = torch.Generator().manual_seed(0)
    batch, length, M = 4, 40, 64
    log_proposal = torch.randn(batch, length, generator=gen) * 5  # peaked proposals, extreme weights
    log_proposal[1, 10:] += 200.0  # a huge range of scores: no underflow of the early rows
    mask = _random_mask((batch, length), gen)
    mask[2, :7] = 0.0  # left padding
    mask[3] = 0.0
    mask[3, 25] = 1.0  # a single real key
    index, inverse_q, has_key = monte_carlo_sample(log_proposal, M, mask, causal, gen)
    allowed = (mask != 0)[:, None, :].expand(-1, length, -1)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool).tril()
    assert torch.equal(has_key, allowed.any(-1))
    picked = allowed.gather(2, index)  # [B, N, M]: was each sample allowed for its row?
    assert picked[has_key].all()
    assert (inverse_q[~has_key] == 0).all()
    assert (inverse_q[has_key] >= 1.0 - 1e-12).all()  # 1/q ≥ 1
    if causal:
        assert (index[has_key] <= torch.arange(length).expand(batch, length)[has_key][:, None]).all()
    assert (index[3][has_key[3]] == 25).all()
    assert torch.allclose(inverse_q[3][has_key[3]], torch.ones(()).double())


def test_monte_carlo_sample_frequencies_match_proposal():
    """Inverse-CDF sampling draws j with probability q_i(j) = softmax of the allowed scores (within 5 SE)."""
    gen = torch.Generator().manual_seed(0)
    log_proposal = torch.randn(1, 6, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    M = 50_000
    for causal in (False, True):
        index, inverse_q, _ = monte_carlo_sample(log_proposal, M, mask, causal, gen)
        for i in (0, 3, 5):
            allowed = (mask[0] != 0) & ((torch.arange(6) <= i) if causal else True)
            q = log_proposal[0].masked_fill(~allowed, float("-inf")).softmax(-1)
            freq = torch.bincount(index[0, i], minlength=6).double() / M
            se = (q * (1 - q) / M).sqrt()
            assert ((freq - q).abs() <= 5 * se + 1e-12).all(), (causal, i, freq, q)
            torch.testing.assert_close(inverse_q[0, i], 1 / q[index[0, i]], atol=1e-9, rtol=1e-9)


def test_monte_carlo_cost_is_n_times_m_pairs():
    record = []
    positions, left, right, value, _, log_proposal, mask = _mc_problem(length=300, padded=True)
    kernel = PairMLP(2, 3, 2, record=record).double()
    monte_carlo_transform(positions, left, right, value, kernel, log_proposal, 8, mask)
    assert record == [2 * 300 * 8]  # B · N · M kernel evaluations, never B · N · N


def test_monte_carlo_rejects_bad_shapes():
    positions, left, right, value, kernel, log_proposal, _mask = _mc_problem(length=5)
    with pytest.raises(ValueError, match="`log_proposal` must have shape"):
        monte_carlo_transform(positions, left, right, value, kernel, log_proposal[:, :4], 4)
    with pytest.raises(ValueError, match="`num_samples` must be at least 1"):
        monte_carlo_transform(positions, left, right, value, kernel, log_proposal, 0)
    with pytest.raises(ValueError, match="`mask` must have shape"):
        monte_carlo_transform(positions, left, right, value, kernel, log_proposal, 4, mask=torch.ones(2, 4))
