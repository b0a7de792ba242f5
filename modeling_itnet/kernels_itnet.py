r"""The kernel families of the ITNet integral transform, as pure tensor functions.

Every function here evaluates one discretisation of

    T(f)(x_i) = ∫ K(x_i, y, u_i, u(y)) f(y) dy   ≈   y_i = Σ_j w_j · K(x_i, x_j, u_i, u_j) · v_j

where `x_i` are positions, `u_i` features, `v_j` values and `w_j ∈ {0, 1}` the quadrature weights, given as
`mask` (0 marks padding: a padded token contributes nothing to any sum). In causal mode `K(x_i, x_j) = 0`
whenever `x_j` comes after `x_i` (raster order on a 2-D grid).

Each fast path sits beside a `*_naive` reference that builds the kernel as an explicit `[N, N]` matrix and sums
`K · v` directly; tests compare the two forward and backward. Nothing here owns parameters: the kernels' values
or features come in as tensors, produced by the modules of `layers_itnet.py`.

Shapes: `B` batch, `N` tokens (`N = prod(grid)` on a grid), `D` channels, `H` heads, `R` feature rank,
`E` value width per head.
"""

import math

import torch


# --------------------------------------------------------------------------------------------------------------
# Positional features
# --------------------------------------------------------------------------------------------------------------


def fourier_features(coords: torch.Tensor, num_frequencies: int, max_frequency: float) -> torch.Tensor:
    r"""γ(t) = [sin(2π f_k t), cos(2π f_k t)] for each coordinate, `f_k` log-spaced from 1 to `max_frequency`.

    Args:
        coords: `[..., C]` real coordinates (offsets in units of the grid's length scale).
        num_frequencies: `F`, the number of frequencies per coordinate.
        max_frequency: the highest frequency `f_{F-1}` (at least 1).

    Returns:
        `[..., C * 2F]` features.
    """
    exponents = torch.linspace(0.0, 1.0, num_frequencies, device=coords.device, dtype=torch.float32)
    freqs = max(max_frequency, 1.0) ** exponents
    angles = 2 * math.pi * coords.float().unsqueeze(-1) * freqs  # [..., C, F]
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def grid_offsets(grid_shape: tuple[int, ...], device=None) -> torch.Tensor:
    r"""All offsets `δ = x_i − x_j` between two points of a grid, as a `[*(2g − 1), len(grid)]` tensor.

    Entry `[m_1, ..., m_n]` holds the offset `(m_1 − (g_1 − 1), ..., m_n − (g_n − 1))`.
    """
    axes = [torch.arange(-(g - 1), g, device=device, dtype=torch.float32) for g in grid_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


# --------------------------------------------------------------------------------------------------------------
# Spectral family: stationary kernels K(x_i, x_j) = k(x_i − x_j) on 1-D and 2-D grids
# --------------------------------------------------------------------------------------------------------------


def _check_spectral(values: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None) -> tuple[int, ...]:
    grid = tuple(values.shape[1:-1])
    expected = tuple(2 * g - 1 for g in grid) + (values.shape[-1],)
    if tuple(kernel.shape) != expected:
        raise ValueError(f"`kernel` must have shape {list(expected)} for values of shape {list(values.shape)}, got {list(kernel.shape)}.")
    if mask is not None and tuple(mask.shape) != tuple(values.shape[:-1]):
        raise ValueError(f"`mask` must have shape {list(values.shape[:-1])}, got {list(mask.shape)}.")
    return grid


def causal_offset_mask(grid_shape: tuple[int, ...], device=None) -> torch.Tensor:
    r"""`[*(2g − 1)]` boolean: True where the offset `δ = x_i − x_j` is lexicographically ≥ 0.

    On a 1-D grid that is `δ ≥ 0`; on a 2-D grid read in raster order it is `δ_h > 0 or (δ_h = 0 and δ_w ≥ 0)`,
    exactly the pairs with `flat(x_j) ≤ flat(x_i)`. Causality is therefore a property of the offset alone, and a
    causal stationary kernel is still stationary.
    """
    offsets = grid_offsets(grid_shape, device=device)
    allowed = torch.zeros(offsets.shape[:-1], dtype=torch.bool, device=device)
    decided = torch.zeros_like(allowed)
    for axis in range(len(grid_shape)):
        component = offsets[..., axis]
        allowed |= ~decided & (component > 0)
        decided |= component != 0
    return allowed | ~decided


def _circular_index(grid: tuple[int, ...], fft_shape: tuple[int, ...], device) -> tuple[torch.Tensor, ...]:
    """Index that puts the kernel entry for offset δ at position δ mod L on every axis."""
    return tuple(
        (torch.arange(-(g - 1), g, device=device) % n).view([-1 if a == i else 1 for a in range(len(grid))])
        for i, (g, n) in enumerate(zip(grid, fft_shape))
    )


def _fft_size(length: int) -> int:
    """Smallest power of two ≥ `length`: the FFT size that makes a circular convolution linear."""
    return 2 ** math.ceil(math.log2(length)) if length > 1 else 1


def spectral_conv(
    values: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False
) -> torch.Tensor:
    r"""Stationary integral transform on a grid by zero-padded FFT.

        y_i = Σ_j w_j · k(x_i − x_j) · v_j          (depthwise: one kernel per channel)

    Bidirectional, O(N log N):
        1. zero the padded values (`w_j v_j`);
        2. lay the kernel out circularly on an FFT grid of size `L_a ≥ 2 g_a − 1` per axis, so that circular
           convolution equals linear convolution (no wrap-around);
        3. multiply the spectra of values and kernel, transform back and crop to the input grid.

    Causal (`k(δ) = 0` for offsets that look ahead; raster order in 2-D), O(N log² N), see
    `_causal_spectral_conv`: no output ever reads a later input, so causality holds bit for bit, which a single
    global FFT (whose rounding mixes every position) cannot give.

    Computes in at least float32 (`torch.fft` rejects half precision on CPU) and returns the input dtype.

    Args:
        values: `[B, *grid, D]` with `grid` of one or two axes.
        kernel: `[*(2 g − 1), D]`, entry `δ + g − 1` holding `k(δ)`.
        mask: optional `[B, *grid]` quadrature weights (0 for padding).
        causal: keep only offsets `δ ≥ 0` (lexicographically, i.e. raster order in 2-D).

    Returns:
        `[B, *grid, D]`.
    """
    grid = _check_spectral(values, kernel, mask)
    dtype = values.dtype
    compute_dtype = torch.promote_types(torch.promote_types(dtype, kernel.dtype), torch.float32)
    # 1. quadrature weights
    v = values.to(compute_dtype)
    if mask is not None:
        v = v * mask.unsqueeze(-1).to(compute_dtype)
    k = kernel.to(compute_dtype)
    if causal:
        k = k * causal_offset_mask(grid, device=k.device).unsqueeze(-1)
        return _causal_spectral_conv(v, k).to(dtype)
    # 2. circular layout
    fft_shape = tuple(_fft_size(2 * g - 1) for g in grid)
    circular = k.new_zeros(*fft_shape, k.shape[-1])
    circular[_circular_index(grid, fft_shape, k.device)] = k
    # 3. product of spectra, inverse transform, crop
    dims = tuple(range(1, len(grid) + 1))
    spectrum = torch.fft.rfftn(v, s=fft_shape, dim=dims) * torch.fft.rfftn(circular, dim=tuple(range(len(grid))))
    out = torch.fft.irfftn(spectrum, s=fft_shape, dim=dims)
    return out[(slice(None),) + tuple(slice(0, g) for g in grid)].to(dtype)


def _causal_spectral_conv(values: torch.Tensor, kernel: torch.Tensor, block_tokens: int = 64) -> torch.Tensor:
    r"""Causal stationary transform by the online (relaxed) block decomposition of the lower-triangular kernel.

    The first grid axis (rows; the only axis in 1-D) is cut into blocks of `C` rows, `C·prod(rest) ≈
    block_tokens`, and padded at the end to `P = C·2^L` rows. Then

        1. diagonal blocks: within each block of `C` rows, `y_i = Σ_j k(x_i − x_j) v_j` as a `[C·R, C·R]` matrix
           product (the kernel is already zero where `x_j` comes after `x_i`);
        2. for `s = C, 2C, ..., P/2`: the rows are paired into blocks `[2ps, 2ps + s)` (inputs) and
           `[2ps + s, 2ps + 2s)` (outputs); every output row comes after every input row, so the whole kernel
           applies, and one FFT of size `2s` over the input block alone gives the block's contribution.

    Every square of the lower triangle is covered exactly once, and each output is computed from earlier inputs
    only. Cost O(N log N) per level, O(N log² N) in all.

    Args:
        values: `[B, G, *rest, D]`, already weighted by the mask.
        kernel: `[2G − 1, *(2r − 1), D]`, already zero at non-causal offsets.
    """
    batch, rows, *rest, channels = values.shape
    rest = tuple(rest)
    per_row = math.prod(rest)
    block = min(rows, max(1, block_tokens // per_row))
    padded_rows = block * 2 ** math.ceil(math.log2(math.ceil(rows / block)))
    v = torch.nn.functional.pad(values, (0, 0) * (len(rest) + 1) + (0, padded_rows - rows))
    # 1. diagonal blocks, each a [C·R, C·R] kernel matrix gathered from k
    axes = [torch.arange(g, device=v.device) for g in (block, *rest)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 1 + len(rest))
    offsets = points[:, None, :] - points[None, :, :]
    grid = (rows, *rest)
    local = kernel[tuple(offsets[..., a] + grid[a] - 1 for a in range(len(grid)))]  # [C·R, C·R, D]
    blocks = v.reshape(batch, padded_rows // block, block * per_row, channels)
    out = torch.einsum("ijd,bnjd->bnid", local, blocks).reshape(v.shape)
    # 2. off-diagonal squares, level by level; kernel rows for row offsets 0 .. P - 1 (zero past G - 1)
    ahead = torch.nn.functional.pad(kernel[rows - 1 :], (0, 0) * (len(rest) + 1) + (0, padded_rows - rows))
    fft_rest = tuple(_fft_size(2 * r - 1) for r in rest)
    rest_index = _circular_index(rest, fft_rest, v.device)
    dims = tuple(range(2, 3 + len(rest)))
    size = block
    while size < padded_rows:
        pairs = padded_rows // (2 * size)
        inputs = v.reshape(batch, pairs, 2, size, *rest, channels)[:, :, 0]
        circular = v.new_zeros(2 * size, *fft_rest, channels)
        circular[(slice(None),) + rest_index] = ahead[: 2 * size]
        spectrum = torch.fft.rfftn(inputs, s=(2 * size, *fft_rest), dim=dims) * torch.fft.rfftn(
            circular, dim=tuple(range(1 + len(rest)))
        )
        contribution = torch.fft.irfftn(spectrum, s=(2 * size, *fft_rest), dim=dims)
        contribution = contribution[(slice(None), slice(None), slice(size, 2 * size)) + tuple(slice(0, r) for r in rest)]
        update = torch.stack([torch.zeros_like(contribution), contribution], dim=2)
        out = out + update.reshape(v.shape)
        size *= 2
    return out[:, :rows]


def spectral_conv_naive(
    values: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False
) -> torch.Tensor:
    r"""Reference for `spectral_conv`: builds `K_ij = k(x_i − x_j)` for every pair of grid points and sums.

    Steps:
        1. list the grid points `x_i` in raster order;
        2. `K[i, j] = k(x_i − x_j)`, zeroed where `j > i` in raster order if causal;
        3. `y_i = Σ_j K[i, j] · w_j · v_j`.
    """
    grid = _check_spectral(values, kernel, mask)
    batch, channels = values.shape[0], values.shape[-1]
    # 1. grid points in raster order, [N, n_axes]
    axes = [torch.arange(g, device=values.device) for g in grid]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(grid))
    # 2. K[i, j] = k(x_i - x_j)
    offsets = points[:, None, :] - points[None, :, :]
    index = tuple(offsets[..., a] + grid[a] - 1 for a in range(len(grid)))
    K = kernel[index]  # [N, N, D]
    if causal:
        K = torch.tril(torch.ones(K.shape[:2], device=K.device)).unsqueeze(-1) * K
    # 3. weighted sum over j
    v = values.reshape(batch, -1, channels)
    if mask is not None:
        v = v * mask.reshape(batch, -1, 1).to(v.dtype)
    out = torch.einsum("ijd,bjd->bid", K.to(v.dtype), v)
    return out.reshape(values.shape)


# --------------------------------------------------------------------------------------------------------------
# Low-rank family: content kernels K(u_i, u_j) = φ(q_i)·ψ(k_j) / Σ_j' φ(q_i)·ψ(k_j')
# --------------------------------------------------------------------------------------------------------------


def _check_low_rank(query, key, value, mask):
    if query.shape != key.shape:
        raise ValueError(f"`query` and `key` must have the same shape [B, H, N, R], got {list(query.shape)} and {list(key.shape)}.")
    if value.shape[:3] != query.shape[:3]:
        raise ValueError(f"`value` must have shape [B, H, N, E] matching `query` {list(query.shape[:3])}, got {list(value.shape)}.")
    if mask is not None and tuple(mask.shape) != (query.shape[0], query.shape[2]):
        raise ValueError(f"`mask` must have shape [B, N] = {[query.shape[0], query.shape[2]]}, got {list(mask.shape)}.")


def _exclusive_cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """`out[c] = Σ_{c' < c} x[c']`, by shifting (not by subtracting, which would let x[c] leak into out[c] through
    rounding)."""
    shifted = torch.narrow(torch.cumsum(x, dim=dim), dim, 0, x.shape[dim] - 1)
    return torch.cat([torch.zeros_like(torch.narrow(x, dim, 0, 1)), shifted], dim=dim)


def low_rank_transform(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    chunk_size: int = 64,
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""Normalised low-rank content kernel in O(N·R·E): linear attention as an integral transform.

        y_i = Σ_j w_j (φ_i · ψ_j) v_j / Σ_j w_j (φ_i · ψ_j)

    `query = φ(q)` and `key = ψ(k)` are non-negative feature maps, so the normaliser is positive wherever at least
    one real token is in reach; where none is (a causal position before the first real token) the output is 0.

    Bidirectional: the sums over j factor through `S = Σ_j w_j ψ_j v_jᵀ` (`[R, E]`) and `z = Σ_j w_j ψ_j`.
    Causal, chunked (chunks of `C` tokens):
        1. intra-chunk: the `[C, C]` lower-triangular kernel `φ_i·ψ_j` applied directly;
        2. inter-chunk: states `S_c`, `z_c` summed over all earlier chunks (exclusive cumulative sum);
        3. numerator and normaliser add both parts.
    Memory is O(N·C + (N/C)·R·E) per head, never O(N²).

    Args:
        query, key: `[B, H, N, R]`, non-negative.
        value: `[B, H, N, E]`.
        mask: optional `[B, N]` quadrature weights (0 for padding).
        causal: restrict to `j ≤ i`.

    Returns:
        `[B, H, N, E]`.
    """
    _check_low_rank(query, key, value, mask)
    if mask is not None:
        key = key * mask[:, None, :, None].to(key.dtype)
    if not causal:
        state = torch.einsum("bhnr,bhne->bhre", key, value)
        numerator = torch.einsum("bhnr,bhre->bhne", query, state)
        normaliser = torch.einsum("bhnr,bhr->bhn", query, key.sum(dim=2))
        return numerator / normaliser.clamp_min(eps).unsqueeze(-1)

    batch, heads, length, rank = query.shape
    pad = (-length) % chunk_size
    q, k, v = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (query, key, value))
    chunks = (length + pad) // chunk_size
    q, k, v = (t.reshape(batch, heads, chunks, chunk_size, t.shape[-1]) for t in (q, k, v))
    # 1. intra-chunk
    scores = torch.einsum("bhcir,bhcjr->bhcij", q, k)
    scores = scores * torch.tril(torch.ones(chunk_size, chunk_size, device=q.device, dtype=scores.dtype))
    numerator = torch.einsum("bhcij,bhcje->bhcie", scores, v)
    normaliser = scores.sum(dim=-1)
    # 2. inter-chunk states over earlier chunks only
    chunk_state = torch.einsum("bhcnr,bhcne->bhcre", k, v)
    chunk_norm = k.sum(dim=3)
    state = _exclusive_cumsum(chunk_state, dim=2)
    norm_state = _exclusive_cumsum(chunk_norm, dim=2)
    # 3. combine
    numerator = numerator + torch.einsum("bhcir,bhcre->bhcie", q, state)
    normaliser = normaliser + torch.einsum("bhcir,bhcr->bhci", q, norm_state)
    out = numerator / normaliser.clamp_min(eps).unsqueeze(-1)
    return out.reshape(batch, heads, chunks * chunk_size, -1)[:, :, :length]


def low_rank_transform_naive(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""Reference for `low_rank_transform`: the explicit `[N, N]` kernel.

    Steps:
        1. `K[i, j] = φ_i · ψ_j · w_j`, zeroed for `j > i` if causal;
        2. normalise each row: `K[i, j] / Σ_j K[i, j]`;
        3. `y_i = Σ_j K[i, j] v_j`.
    """
    _check_low_rank(query, key, value, mask)
    K = torch.einsum("bhir,bhjr->bhij", query, key)
    if mask is not None:
        K = K * mask[:, None, None, :].to(K.dtype)
    if causal:
        K = torch.tril(K)
    K = K / K.sum(dim=-1, keepdim=True).clamp_min(eps)
    return K @ value


__all__ = [
    "causal_offset_mask",
    "fourier_features",
    "grid_offsets",
    "low_rank_transform",
    "low_rank_transform_naive",
    "spectral_conv",
    "spectral_conv_naive",
]
