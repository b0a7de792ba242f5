# Copyright 2026 The modeling_itnet Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
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


def decayed_kernel(
    kernel: torch.Tensor, distance: torch.Tensor, log_decay: torch.Tensor, min_exponent: float = -40.0
) -> torch.Tensor:
    r"""The spectral family's window applied to a generated kernel,

        k(δ)_d · exp(max(−r_d ‖δ‖, m)),        r_d = exp(log_decay_d),  m = `min_exponent`,

    the exponent floored at `m` (e^−40 ≈ 4e−18, beneath float32's resolution of any sum the kernel enters): the far
    tail would otherwise underflow into denormal numbers, on which `exp` and every product run 10–100× slower on
    CPU. Fused by hand, forward and backward, so that only the window and the output (and two gradients) are
    materialised at `[O, D]`, the size of the kernel at every offset. `decayed_kernel_naive` is the plain expression.

    Args:
        kernel: `[..., D]`, the kernel MLP's output at the offsets.
        distance: `[...]`, `‖δ‖` of each offset.
        log_decay: `[D]`.

    Returns:
        `[..., D]`.
    """
    if kernel.shape[:-1] != distance.shape or kernel.shape[-1:] != log_decay.shape:
        raise ValueError(
            f"`kernel` [..., D], `distance` [...] and `log_decay` [D] must agree, got {list(kernel.shape)}, "
            f"{list(distance.shape)} and {list(log_decay.shape)}."
        )
    flat = _DecayedKernel.apply(kernel.reshape(-1, kernel.shape[-1]), distance.reshape(-1), log_decay, min_exponent)
    return flat.view(kernel.shape)


class _DecayedKernel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel, distance, log_decay, min_exponent):
        rate = log_decay.exp()
        window = _DecayedKernel.exponent(distance, rate).clamp_min_(min_exponent).exp_()  # [O, D]
        ctx.save_for_backward(kernel, distance, rate, window)
        ctx.min_exponent = min_exponent
        return kernel * window.to(kernel.dtype)

    @staticmethod
    def exponent(distance, rate):
        """`−r_d ‖δ‖` `[O, D]`, computed the same way forward and backward."""
        return torch.outer(distance.to(rate.dtype), -rate)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        kernel, distance, rate, window = ctx.saved_tensors
        grad = grad.contiguous()  # the FFT's gradient arrives channels first; mixed layouts make every product slow
        grad_kernel = grad * window.to(grad.dtype) if ctx.needs_input_grad[0] else None
        grad_log_decay = None
        if ctx.needs_input_grad[2]:
            # ∂/∂log_decay_d = Σ_δ g k w · (−r_d ‖δ‖), zero where the floor holds (as clamp's: exponent ≥ m passes)
            unclamped = _DecayedKernel.exponent(distance, rate) >= ctx.min_exponent
            product = (grad * kernel).to(window.dtype).mul_(window).mul_(unclamped)
            grad_log_decay = -rate * (distance.to(window.dtype) @ product)
        return grad_kernel, None, grad_log_decay, None


def decayed_kernel_naive(
    kernel: torch.Tensor, distance: torch.Tensor, log_decay: torch.Tensor, min_exponent: float = -40.0
) -> torch.Tensor:
    """Reference for `decayed_kernel`: the expression as written, through autograd."""
    exponent = -log_decay.exp() * distance.unsqueeze(-1)
    return kernel * torch.exp(exponent.clamp_min(min_exponent)).to(kernel.dtype)


def _check_spectral(values: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None) -> tuple[int, ...]:
    grid = tuple(values.shape[1:-1])
    expected = tuple(2 * g - 1 for g in grid) + (values.shape[-1],)
    if tuple(kernel.shape) != expected:
        raise ValueError(
            f"`kernel` must have shape {list(expected)} for values of shape {list(values.shape)}, got {list(kernel.shape)}."
        )
    if mask is not None and tuple(mask.shape) != tuple(values.shape[:-1]):
        raise ValueError(f"`mask` must have shape {list(values.shape[:-1])}, got {list(mask.shape)}.")
    return grid


def _lexicographically_nonnegative(offsets: torch.Tensor) -> torch.Tensor:
    """`[..., n_axes]` offsets → `[...]` boolean: the first non-zero component is positive (or all are zero)."""
    allowed = torch.zeros(offsets.shape[:-1], dtype=torch.bool, device=offsets.device)
    decided = torch.zeros_like(allowed)
    for axis in range(offsets.shape[-1]):
        component = offsets[..., axis]
        allowed |= ~decided & (component > 0)
        decided |= component != 0
    return allowed | ~decided


def causal_offset_mask(grid_shape: tuple[int, ...], device=None) -> torch.Tensor:
    r"""`[*(2g − 1)]` boolean: True where the offset `δ = x_i − x_j` is lexicographically ≥ 0.

    On a 1-D grid that is `δ ≥ 0`; on a 2-D grid read in raster order it is `δ_h > 0 or (δ_h = 0 and δ_w ≥ 0)`,
    exactly the pairs with `flat(x_j) ≤ flat(x_i)`. Causality is therefore a property of the offset alone, and a
    causal stationary kernel is still stationary.
    """
    return _lexicographically_nonnegative(grid_offsets(grid_shape, device=device))


def _pair_index(points_grid: tuple[int, ...], grid: tuple[int, ...], device) -> tuple[torch.Tensor, ...]:
    """Index into a `[*(2g − 1), ...]` offset table giving, for every pair of points of `points_grid` (raster
    order, `P = prod(points_grid)`), the entry of their offset `x_i − x_j`: a tuple of `[P, P]` tensors."""
    axes = [torch.arange(g, device=device) for g in points_grid]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(points_grid))
    offsets = points[:, None, :] - points[None, :, :]
    return tuple(offsets[..., a] + grid[a] - 1 for a in range(len(grid)))


def _circular_layout(kernel: torch.Tensor, axes: tuple[int, ...], sizes: tuple[int, ...]) -> torch.Tensor:
    """Lays a kernel in the offset layout (entry `δ + g − 1` holds `k(δ)`, `2g − 1` entries on each of `axes`) out
    circularly on FFT axes of `sizes` (`≥ 2g − 1`): zero-padded, then rolled so that offset δ sits at `δ mod L`."""
    padded = _zero_pad(kernel, axes, sizes)
    for a in axes:  # offset 0 (entry g − 1) to index 0
        padded = _rotate_left(padded, (kernel.shape[a] - 1) // 2, a)
    return padded


def _rotate_left(x: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """`x.roll(-shift, dim)` for `0 ≤ shift ≤ x.shape[dim]`, as two slices: under `torch.compile` with dynamic
    lengths, `roll`'s modular index fails to compile on CPU (inductor's `div_mod` of mixed integer types)."""
    return torch.cat([x.narrow(dim, shift, x.shape[dim] - shift), x.narrow(dim, 0, shift)], dim=dim)


def _fft_size(length: int) -> int:
    """Smallest power of two ≥ `length`: the FFT size that makes a circular convolution linear."""
    return 2 ** math.ceil(math.log2(length)) if length > 1 else 1


def _dense_is_cheaper(grid: tuple[int, ...]) -> bool:
    """Whether the `[N, N]` kernel matrix product (`N²` multiply-adds per channel) beats the FFT line of `grid`
    (about `2 L log₂ L` for the forward and inverse transforms of size `L`). Measured on CPU
    (`benchmarks/small_grid_conv.py`): the product wins 2.8x at 7 x 7 and loses at 64 points in 1-D and at 16 x 16."""
    points = math.prod(grid)
    size = _fft_size(2 * _line_length(grid) - 1)
    return points * points <= 2 * size * math.log2(max(size, 2))


def _line_length(grid: tuple[int, ...]) -> int:
    """`G`, the points of `grid`'s FFT line: `N` in 1-D, `(H − 1)(2W − 1) + W` for a 2-D grid (`_raster_line`)."""
    return grid[0] if len(grid) == 1 else (grid[0] - 1) * (2 * grid[1] - 1) + grid[1]


def spectral_conv(
    values: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False
) -> torch.Tensor:
    r"""Stationary integral transform on a grid by zero-padded FFT.

        y_i = Σ_j w_j · k(x_i − x_j) · v_j          (depthwise: one kernel per channel)

    Bidirectional, O(N log N):
        1. zero the padded values (`w_j v_j`);
        2. a 2-D grid `[H, W]` becomes one line (`_raster_line`): its rows laid end to end with a stride of
           `S = 2W − 1`, so that every 2-D offset `(δ_h, δ_w)` is the distinct 1-D offset `δ_h S + δ_w` and the
           2-D convolution is a 1-D one (one contiguous FFT per channel, not a strided one per axis);
        3. lay the kernel out circularly on an FFT grid of size `L ≥ 2g − 1`, so that circular convolution equals
           linear convolution (no wrap-around);
        4. multiply the spectra of values and kernel, transform back and crop to the input grid.

    Small grids (`_dense_is_cheaper`: `N² ≤ 2 L log₂ L`, `L` the FFT size, below about 50 points in 2-D) skip the
    FFT: `y = K v` with the `[D, N, N]` kernel matrix `K_ij = k(x_i − x_j)` gathered from the offset table, the
    reference's own product, which is faster there.

    Causal (`k(δ) = 0` for offsets that look ahead; raster order in 2-D, which the line keeps): the forward pass is
    O(N log² N), see `_causal_spectral_conv`: no output ever reads a later input, so causality holds bit for bit,
    which a single global FFT (whose rounding mixes every position) cannot give. The backward pass has no causality
    to keep and is the bidirectional one, O(N log N) (`_CausalFFTConvolution`).

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
    # 1. quadrature weights; channels first, so that every FFT runs along contiguous memory
    v = values.to(compute_dtype)
    if mask is not None:
        v = v * mask.unsqueeze(-1).to(compute_dtype)
    v = v.movedim(-1, 1)  # [B, D, *grid]
    k = kernel.to(compute_dtype).movedim(-1, 0)  # [D, *(2g − 1)]
    if causal:
        k = k * causal_offset_mask(grid, device=k.device)
    if _dense_is_cheaper(grid):  # small grids: the [D, N, N] kernel matrix (its zeros keep causality exact)
        matrix = k[(slice(None), *_pair_index(grid, grid, k.device))]
        with torch.autocast(v.device.type, enabled=False):  # in `compute_dtype`, as the FFT line
            out = torch.einsum("dij,bdj->bdi", matrix, v.flatten(2)).unflatten(2, grid)
        return out.movedim(1, -1).to(dtype)
    # 2. one line: [B, D, G], [D, 2G − 1]
    if len(grid) == 2:
        v, k = _raster_line(v, k)
    if causal:
        out = _CausalFFTConvolution.apply(v, k)
    else:
        # 3. circular layout: offset δ at entry δ mod L of an FFT line of L ≥ 2G − 1
        circular = _circular_layout(k, (1,), (_fft_size(2 * v.shape[-1] - 1),))
        # 4. product of spectra, inverse transform, crop
        out = _FFTConvolution.apply(v, circular)
    if len(grid) == 2:
        out = _from_raster_line(out, grid)
    return out.movedim(1, -1).to(dtype)


def _raster_line(values: torch.Tensor, kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A 2-D stationary transform as a 1-D one: `values` `[B, D, H, W]` → `[B, D, G]` and `kernel`
    `[D, 2H − 1, 2W − 1]` → `[D, 2G − 1]`, with rows of stride `S = 2W − 1` and `G = (H − 1) S + W`.

    Point `(h, w)` goes to `h S + w` (the `W − 1` entries after each row are zeros) and offset `(δ_h, δ_w)` to
    `δ_h S + δ_w`; as `|δ_w| ≤ W − 1 < S/2`, distinct 2-D offsets stay distinct, and the offset table laid out row
    after row with stride `S` is exactly the 1-D offset table of a line of `G` points (its centre
    `(H − 1) S + W − 1 = G − 1`): the reshape is the whole change of layout. Raster order is kept."""
    batch, channels, height, width = values.shape
    stride = 2 * width - 1
    line = torch.nn.functional.pad(values, (0, width - 1)).reshape(batch, channels, height * stride)
    return line[..., : _line_length((height, width))], kernel.reshape(channels, (2 * height - 1) * stride)


def _from_raster_line(line: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """`_raster_line`'s inverse on the values: `[B, D, G]` → `[B, D, H, W]`."""
    (height, width), stride = grid, 2 * grid[1] - 1
    line = torch.nn.functional.pad(line, (0, height * stride - line.shape[-1]))
    return line.reshape(*line.shape[:2], height, stride)[..., :width]


class _FFTConvolution(torch.autograd.Function):
    r"""`y = crop_G(irfft(rfft(v, n=L) · rfft(c)))`: the linear convolution of `v` `[B, D, G]` with the circularly
    laid-out kernel `c` `[D, L]` (`L ≥ 2G − 1`), returning `[B, D, G]`.

    The backward pass is the adjoint written out, two correlations through the same real transforms:

        ∂v = crop_G(irfft(Γ · conj(C))),      ∂c = irfft(Σ_b Γ · conj(V)),      Γ = rfft(∂y, n=L),

    three real FFTs forward and three backward, where autograd through `rfft` runs two full complex transforms
    of the padded gradient. First derivatives only (a second one raises)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        size = c.shape[-1]
        spectrum_v = torch.fft.rfftn(_zero_pad(v, (2,), (size,)), dim=(2,))
        spectrum_c = torch.fft.rfftn(c, dim=(1,))
        ctx.save_for_backward(spectrum_v, spectrum_c)
        ctx.size = size
        out = torch.fft.irfftn(spectrum_v * spectrum_c, s=(size,), dim=(2,))
        return out[..., : v.shape[-1]]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        spectrum_v, spectrum_c = ctx.saved_tensors
        return _fft_convolution_backward(grad, spectrum_v, spectrum_c, ctx.size, ctx.needs_input_grad)


def _fft_convolution_backward(grad, spectrum_v, spectrum_c, size: int, needs: tuple[bool, bool]):
    """`(∂v, ∂c)` of `_FFTConvolution` from the spectra of its inputs on an FFT line of `size` (`None` where not
    needed; `spectrum_v` is read only for `∂c`)."""
    spectrum_g = torch.fft.rfftn(_zero_pad(grad, (2,), (size,)), dim=(2,))
    grad_v = grad_c = None
    if needs[0]:
        grad_v = torch.fft.irfftn(spectrum_g * spectrum_c.conj(), s=(size,), dim=(2,))[..., : grad.shape[-1]]
    if needs[1]:
        product = spectrum_g * spectrum_v.conj()
        product = product[0] if product.shape[0] == 1 else product.sum(0)  # a sum of one would copy
        grad_c = torch.fft.irfftn(product, s=(size,), dim=(1,))
    return grad_v, grad_c


class _CausalFFTConvolution(torch.autograd.Function):
    r"""`_causal_spectral_conv(v, k)` (bit-exact causal, O(N log² N)) with the backward pass of the linear
    convolution it computes, through one zero-padded FFT as `_FFTConvolution`'s (O(N log N)):

        ∂v = crop_G(irfft(Γ · conj(C))),      ∂k = uncirc(irfft(Σ_b Γ · conj(V))),      Γ = rfft(∂y, n=L),

    `C` the spectrum of the (already causal) kernel laid out circularly and `uncirc` the adjoint of that layout.
    Gradients have no causality to keep bit for bit; they equal the adjoint of the forward up to float rounding.
    `v` `[B, D, G]`, `k` `[D, 2G − 1]`. First derivatives only."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(v, k)
        with torch.autocast(v.device.type, enabled=False):  # in the inputs' (at least float32) precision
            return _causal_spectral_conv(v, k)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        v, k = ctx.saved_tensors
        grad = grad.to(v.dtype)
        size = _fft_size(2 * v.shape[-1] - 1)
        spectrum_c = torch.fft.rfftn(_circular_layout(k, (1,), (size,)), dim=(1,))
        spectrum_v = torch.fft.rfftn(_zero_pad(v, (2,), (size,)), dim=(2,)) if ctx.needs_input_grad[1] else None
        grad_v, grad_c = _fft_convolution_backward(grad, spectrum_v, spectrum_c, size, ctx.needs_input_grad)
        if grad_c is not None:  # the adjoint of `_circular_layout`: roll back, crop to the offset table
            grad_c = _rotate_left(grad_c, size - (v.shape[-1] - 1), 1)[:, : k.shape[1]]
        return grad_v, grad_c


def _zero_pad(x: torch.Tensor, axes: tuple[int, ...], sizes: tuple[int, ...]) -> torch.Tensor:
    """`x` zero-padded at the end of each of `axes` to `sizes`, contiguous: a real FFT over contiguous, already
    padded memory is faster than one given the size `s` (which pads a strided copy)."""
    padding = [0, 0] * x.dim()
    for axis, size in zip(axes, sizes):
        padding[2 * (x.dim() - 1 - axis) + 1] = size - x.shape[axis]
    return torch.nn.functional.pad(x, padding).contiguous()


def _causal_spectral_conv(values: torch.Tensor, kernel: torch.Tensor, block_tokens: int = 64) -> torch.Tensor:
    r"""Causal stationary transform on a line by the online (relaxed) block decomposition of the lower-triangular
    kernel.

    The line is cut into blocks of `C = min(G, block_tokens)` points and padded at the end to `P = C·2^L`. Then

        1. diagonal blocks: within each block, `y_i = Σ_j k(x_i − x_j) v_j` as a `[C, C]` matrix product (the
           kernel is already zero where `x_j` comes after `x_i`);
        2. for `s = C, 2C, ..., P/2`: the points are paired into blocks `[2ps, 2ps + s)` (inputs) and
           `[2ps + s, 2ps + 2s)` (outputs); every output comes after every input, so the whole kernel applies,
           and one FFT of size `2s` over the input block alone gives the block's contribution.

    Every square of the lower triangle is covered exactly once, and each output is computed from earlier inputs
    only. Cost O(N log N) per level, O(N log² N) in all. Runs without autograd (`_CausalFFTConvolution`).

    Args:
        values: `[B, D, G]` (channels first), already weighted by the mask.
        kernel: `[D, 2G − 1]`, already zero at non-causal offsets.

    Returns:
        `[B, D, G]`.
    """
    batch, channels, length = values.shape
    block = min(length, block_tokens)
    padded = block * 2 ** math.ceil(math.log2(math.ceil(length / block)))
    v = _zero_pad(values, (2,), (padded,))  # contiguous: each level below reads it along the line
    # 1. diagonal blocks, each a [C, C] kernel matrix gathered from k
    local = kernel[:, _pair_index((block,), (length,), v.device)[0]]  # [D, C, C]
    blocks = v.reshape(batch, channels, padded // block, block)
    out = torch.einsum("dij,bdnj->bdni", local, blocks).reshape(v.shape).contiguous()
    # 2. off-diagonal squares, level by level; the kernel at offsets 0 .. P − 1 (zero past G − 1); one buffer holds
    #    every level's zero-padded input blocks
    ahead = _zero_pad(kernel[:, length - 1 :], (1,), (padded,))
    work = torch.empty_like(v)
    size = block
    while size < padded:
        pairs = padded // (2 * size)
        padded_inputs = work.view(batch, channels, pairs, 2, size)
        padded_inputs[:, :, :, 0] = v.view(batch, channels, pairs, 2, size)[:, :, :, 0]
        padded_inputs[:, :, :, 1] = 0
        spectrum = torch.fft.rfft(work.view(batch, channels, pairs, 2 * size), dim=-1)
        spectrum.mul_(torch.fft.rfft(ahead[:, : 2 * size], dim=-1).unsqueeze(1))
        contribution = torch.fft.irfft(spectrum, n=2 * size, dim=-1)[..., size:]
        out.view(batch, channels, pairs, 2, size)[:, :, :, 1] += contribution  # the later block of each pair
        size *= 2
    return out[:, :, :length]


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
    # 1., 2. K[i, j] = k(x_i - x_j) for the grid points in raster order
    K = kernel[_pair_index(grid, grid, values.device)]  # [N, N, D]
    if causal:
        K = torch.tril(torch.ones(K.shape[:2], device=K.device)).unsqueeze(-1) * K
    # 3. weighted sum over j
    v = values.reshape(batch, -1, channels)
    if mask is not None:
        v = v * mask.reshape(batch, -1, 1).to(v.dtype)
    out = torch.einsum("ijd,bjd->bid", K.to(v.dtype), v)
    return out.reshape(values.shape)


def stationary_kernel_step(kernel: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
    r"""One causal step of a stationary kernel (the `spectral` family's generation path):

        y_t = Σ_{s≤t} k(t − s) ⊙ w_s v_s

    Steps:
        1. the compute dtype: at least float32;
        2. the sum over the past, `kernel[s]` holding `k(t − s)`.

    Args:
        kernel: `[T, V]`, `k(t − s)` for `s = 0 .. t` (`T = t + 1`).
        past: `[B, T, V]`, the weighted values `w_s v_s` up to and including this step.

    Returns:
        `[B, V]` in `past`'s dtype.
    """
    # 1. dtype
    compute_dtype = torch.promote_types(torch.promote_types(past.dtype, kernel.dtype), torch.float32)
    # 2. sum
    return torch.einsum("sd,bsd->bd", kernel.to(compute_dtype), past.to(compute_dtype)).to(past.dtype)


def local_window_kernel(table: torch.Tensor, lows: tuple[int, ...], grid_shape: tuple[int, ...]) -> torch.Tensor:
    r"""Embed a window kernel into the full `[*(2g − 1), D]` offset layout of `spectral_conv`.

    `table[m]` holds `k(δ)` for `δ = m + low` on each axis; offsets outside the window (or the grid) get 0.
    """
    full = table.new_zeros(*[2 * g - 1 for g in grid_shape], table.shape[-1])
    src, dst = [], []
    for size, low, g in zip(table.shape[:-1], lows, grid_shape):
        offsets = torch.arange(size, device=table.device) + low
        keep = offsets.abs() <= g - 1
        src.append(torch.arange(size, device=table.device)[keep])
        dst.append(offsets[keep] + g - 1)
    src_index = torch.meshgrid(*src, indexing="ij")
    dst_index = torch.meshgrid(*dst, indexing="ij")
    full[dst_index] = table[src_index]
    return full


def local_conv(
    values: torch.Tensor,
    table: torch.Tensor,
    lows: tuple[int, ...],
    mask: torch.Tensor | None = None,
    causal: bool = False,
) -> torch.Tensor:
    r"""Stationary kernel supported on a small window, evaluated directly: O(N·W) (the paper's local projections).

        y_i = Σ_{δ ∈ window} k(δ) · w_{i−δ} · v_{i−δ},     k(δ) = table[δ − low]  (per channel)

    Steps:
        1. zero the padded values and, if causal, the window entries at offsets that look ahead (raster order);
        2. a depthwise cross-correlation with the flipped table, padded by `high = low + W − 1` before and by
           `−low` after on each axis, so that output `i` reads exactly the inputs `i − δ` of the window (a causal
           window, `low ≥ 0`, never reads a later input).

    Args:
        values: `[B, *grid, D]`, one or two grid axes.
        table: `[*W, D]` kernel values on the window, one entry per offset.
        lows: the smallest offset `δ` of the window on each axis (e.g. `−(W − 1) // 2` for 'same', 0 for causal
            1-D).
        mask: optional `[B, *grid]` quadrature weights.
        causal: zero the window entries with lexicographically negative offsets.

    Returns:
        `[B, *grid, D]`.
    """
    grid = tuple(values.shape[1:-1])
    if table.ndim != len(grid) + 1 or table.shape[-1] != values.shape[-1] or len(lows) != len(grid):
        raise ValueError(
            f"`table` must have shape [*window, {values.shape[-1]}] with {len(grid)} window axes and `lows` one "
            f"entry per axis; got table {list(table.shape)} and lows {lows}."
        )
    if mask is not None and tuple(mask.shape) != tuple(values.shape[:-1]):
        raise ValueError(f"`mask` must have shape {list(values.shape[:-1])}, got {list(mask.shape)}.")
    # 1. weights and causal support
    v = values if mask is None else values * mask.unsqueeze(-1).to(values.dtype)
    if causal:
        axes = [torch.arange(size, device=table.device) + low for size, low in zip(table.shape[:-1], lows)]
        offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
        table = table * _lexicographically_nonnegative(offsets).unsqueeze(-1).to(table.dtype)
    # 2. depthwise cross-correlation with the flipped table
    channels = values.shape[-1]
    weight = table.flip(tuple(range(len(grid)))).movedim(-1, 0).unsqueeze(1).to(v.dtype)  # [D, 1, *W]
    padding = []  # F.pad order: last axis first, (before, after)
    for size, low in reversed(list(zip(table.shape[:-1], lows))):
        padding += [low + size - 1, -low]
    x = torch.nn.functional.pad(v.movedim(-1, 1), padding)
    conv = torch.nn.functional.conv1d if len(grid) == 1 else torch.nn.functional.conv2d
    return conv(x, weight, groups=channels).movedim(1, -1)


# --------------------------------------------------------------------------------------------------------------
# Low-rank family: content kernels K(u_i, u_j) = φ(q_i)·ψ(k_j) / Σ_j' φ(q_i)·ψ(k_j')
# --------------------------------------------------------------------------------------------------------------


class _EluPlusOne(torch.autograd.Function):
    r"""`φ(x) = elu(x) + 1 > 0`, with its derivative read off the output: `φ'(x) = min(φ(x), 1)` (1 where `x > 0`,
    there `φ = x + 1 > 1`; `eˣ = φ(x)` where `x ≤ 0`). The backward pass saves `φ` alone and is one product, about
    half the time of autograd's `elu_backward` on CPU."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.elu(x).add_(1)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad * out.clamp(max=1)


def local_conv_step(taps: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    r"""One causal step of the `local` family on a sequence: `y_t = Σ_{δ=0}^{W−1} k(δ) w_{t−δ} v_{t−δ}`.

    Args:
        taps: `[W, V]`, tap `δ` at index `δ`.
        window: `[B, W, V]`, the weighted values of positions `t − W + 1 .. t` (oldest first).

    Returns:
        `[B, V]`.
    """
    return torch.einsum("wd,bwd->bd", taps.flip(0).to(window.dtype), window)


def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """The positive feature map `φ(x) = elu(x) + 1` of the low-rank family (any shape)."""
    return _EluPlusOne.apply(x)


def _check_low_rank(query, key, value, mask):
    if query.shape != key.shape:
        raise ValueError(
            f"`query` and `key` must have the same shape [B, H, N, R], got {list(query.shape)} and {list(key.shape)}."
        )
    if value.shape[:3] != query.shape[:3]:
        raise ValueError(
            f"`value` must have shape [B, H, N, E] matching `query` {list(query.shape[:3])}, got {list(value.shape)}."
        )
    if mask is not None and tuple(mask.shape) != (query.shape[0], query.shape[2]):
        raise ValueError(
            f"`mask` must have shape [B, N] = {[query.shape[0], query.shape[2]]}, got {list(mask.shape)}."
        )


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

    The normaliser is the numerator of a value column of ones, so both are one product: with `v'_j = [v_j, 1]`,
    `[numerator_i, Z_i] = Σ_j w_j (φ_i·ψ_j) v'_j`.

    Bidirectional: the sums over j factor through `S = Σ_j w_j ψ_j v'_jᵀ` (`[R, E + 1]`): `[numerator, Z] = φ S`.
    Causal, chunked (chunks of `C` tokens):
        1. intra-chunk: the `[C, C]` lower-triangular kernel `φ_i·ψ_j` applied directly;
        2. inter-chunk: states `S_c` summed over all earlier chunks (exclusive cumulative sum);
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
    value = torch.cat([value, value.new_ones(()).expand(*value.shape[:-1], 1)], dim=-1)  # v' = [v, 1]
    if not causal:
        numerator = query @ (key.transpose(-1, -2) @ value)  # [B, H, N, E + 1]
        return numerator[..., :-1] / numerator[..., -1:].clamp_min(eps)

    batch, heads, length, _rank = query.shape
    pad = (-length) % chunk_size
    q, k, v = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (query, key, value))
    chunks = (length + pad) // chunk_size
    q, k, v = (t.reshape(batch, heads, chunks, chunk_size, t.shape[-1]) for t in (q, k, v))
    # 1. intra-chunk
    scores = (q @ k.transpose(-1, -2)).tril()  # [B, H, chunks, C, C]
    numerator = scores @ v
    # 2. inter-chunk states over earlier chunks only
    state = _exclusive_cumsum(k.transpose(-1, -2) @ v, dim=2)  # [B, H, chunks, R, E + 1]
    # 3. combine
    numerator = numerator + q @ state
    out = numerator[..., :-1] / numerator[..., -1:].clamp_min(eps)
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


# --------------------------------------------------------------------------------------------------------------
# Softmax and general MLP families: softmax_j(q_i·k_j + b_ij); MLP(x_i − x_j, u_i, u_j), tiled or Monte Carlo
# --------------------------------------------------------------------------------------------------------------


def low_rank_step(
    query_t: torch.Tensor,
    key_t: torch.Tensor,
    value_t: torch.Tensor,
    state: torch.Tensor,
    normaliser: torch.Tensor,
    mask_t: torch.Tensor,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""One causal step of `low_rank_transform` (its generation path):

        S_t = S_{t−1} + w_t ψ(k_t) v_tᵀ,   z_t = z_{t−1} + w_t ψ(k_t),   y_t = φ(q_t)ᵀ S_t / max(φ(q_t)·z_t, eps)

    Steps:
        1. weight the key by `w_t`;
        2. add the outer product to the state and the key to the normaliser;
        3. read out.

    Args:
        query_t, key_t: `[B, H, R]`, the features `φ(q_t)`, `ψ(k_t)`.
        value_t: `[B, H, E]`.
        state: `[B, H, R, E]`, `S_{t−1}`; normaliser: `[B, H, R]`, `z_{t−1}`.
        mask_t: `[B]` quadrature weights.

    Returns:
        `(y_t [B, H, E], S_t, z_t)`.
    """
    # 1. weight
    key_t = key_t * mask_t[:, None, None].to(key_t.dtype)
    # 2. accumulate
    state = state + key_t.unsqueeze(-1) * value_t.unsqueeze(-2)
    normaliser = normaliser + key_t
    # 3. read
    denominator = torch.einsum("bhr,bhr->bh", query_t, normaliser).clamp_min(eps).unsqueeze(-1)
    return torch.einsum("bhr,bhre->bhe", query_t, state) / denominator, state, normaliser


def low_rank_final_state(
    key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The state of `low_rank_step` after a whole sequence: `S = Σ_s w_s ψ(k_s) v_sᵀ` `[B, H, R, E]` and
    `z = Σ_s w_s ψ(k_s)` `[B, H, R]`, from `key` `[B, H, N, R]`, `value` `[B, H, N, E]`, `mask` `[B, N]`."""
    if mask is not None:
        key = key * mask[:, None, :, None].to(key.dtype)
    return torch.einsum("bhnr,bhne->bhre", key, value), key.sum(dim=2)


def _check_softmax(query, key, value, mask, bias):
    if query.dim() != 4 or query.shape != key.shape:
        raise ValueError(
            f"`query` and `key` must have the same shape [B, H, N, D], got {list(query.shape)} and {list(key.shape)}."
        )
    if value.dim() != 4 or value.shape[:3] != query.shape[:3]:
        raise ValueError(
            f"`value` must have shape [B, H, N, E] matching `query` {list(query.shape[:3])}, got {list(value.shape)}."
        )
    batch, heads, length = query.shape[:3]
    if mask is not None and tuple(mask.shape) != (batch, length):
        raise ValueError(f"`mask` must have shape [B, N] = {[batch, length]}, got {list(mask.shape)}.")
    if bias is not None:
        ok = bias.dim() in (3, 4) and tuple(bias.shape[-2:]) == (length, length)
        if ok:
            try:
                full = (batch, heads, length, length)
                ok = torch.broadcast_shapes(tuple(bias.shape), full) == full
            except RuntimeError:
                ok = False
        if not ok:
            raise ValueError(
                f"`bias` must have shape [H, N, N] = {[heads, length, length]} or broadcast to [B, H, N, N] = "
                f"{[batch, heads, length, length]}, got {list(bias.shape)}."
            )


def _allowed_keys(mask: torch.Tensor | None, causal: bool, length: int, device) -> torch.Tensor | None:
    """`[B or 1, 1, N, N]` boolean: True where key `j` is allowed for query `i` (`w_j ≠ 0`, and `j ≤ i` if causal);
    None when every pair is allowed."""
    allowed = None
    if mask is not None:
        allowed = (mask != 0)[:, None, None, :]
    if causal:
        tril = torch.ones(length, length, dtype=torch.bool, device=device).tril()[None, None]
        allowed = tril if allowed is None else allowed & tril
    return allowed


def relative_position_bias(table: torch.Tensor, grid_shape: tuple[int, ...]) -> torch.Tensor:
    r"""Expand a per-head table over grid offsets into the additive bias `b_ij = b(x_i − x_j)` of every pair.

    Steps:
        1. list the grid points `x_i` in raster order (`N = prod(grid_shape)`);
        2. offsets `δ_ij = x_i − x_j`, shifted by `g − 1` per axis into table indices;
        3. gather `table[h, δ_ij + g − 1]` for every head.

    Args:
        table: `[H, *(2 g − 1)]` for a 1-D or 2-D grid `g`, entry `δ + g − 1` holding `b(δ)`.
        grid_shape: the grid `g` (one or two axes).

    Returns:
        `[H, N, N]`, ready as the `bias` of `softmax_transform`.
    """
    grid = tuple(int(g) for g in grid_shape)
    expected = tuple(2 * g - 1 for g in grid)
    if len(grid) not in (1, 2) or table.dim() != len(grid) + 1 or tuple(table.shape[1:]) != expected:
        raise ValueError(
            f"`table` must have shape [H, *(2g - 1)] = [H, {', '.join(map(str, expected))}] for grid {list(grid)}, "
            f"got {list(table.shape)}."
        )
    # 1., 2. table index of every pair's offset, 3. gathered per head
    return table[(slice(None),) + _pair_index(grid, grid, table.device)]


def softmax_transform(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Softmax content kernel through the fused `scaled_dot_product_attention`: multi-head attention.

        y_i = Σ_j K_ij v_j,    K_ij = w_j exp(s_ij) / Σ_j' w_j' exp(s_ij'),    s_ij = q_i·k_j·scale + b_ij

    over the allowed keys (`w_j = 1`, and `j ≤ i` if causal). A query with no allowed key (causal with left
    padding) returns exactly 0.

    Steps:
        1. allowed pairs `[B, 1, N, N]` from the mask and causality; rows with no allowed key are opened up to every
           key (so the fused softmax never sees an all `−∞` row, which gives NaN on some backends, forward or
           backward) and remembered;
        2. SDPA with the boolean mask, or with the additive mask `b_ij` (`−∞` where not allowed) when a bias is
           given, or with `is_causal` / no mask when nothing else is needed;
        3. rows with no allowed key are set to 0.

    Computes in the input dtype.

    Args:
        query, key: `[B, H, N, D]`.
        value: `[B, H, N, E]`.
        mask: optional `[B, N]` quadrature weights (0 for padding; a padded key contributes nothing).
        causal: restrict to `j ≤ i`.
        bias: optional additive `[H, N, N]` (or broadcastable to `[B, H, N, N]`) scores `b_ij`, e.g. from
            `relative_position_bias`.
        scale: multiplies `q_i·k_j`; default `1/√D`.

    Returns:
        `[B, H, N, E]`.
    """
    _check_softmax(query, key, value, mask, bias)
    length = query.shape[2]
    # 1. allowed pairs; empty rows opened up, remembered in `has_key`
    allowed = _allowed_keys(mask, causal, length, query.device)
    has_key = None
    if mask is not None:  # (without a mask every row has a key: j = i at least)
        has_key = allowed.any(dim=-1, keepdim=True)  # [B, 1, N, 1]
        allowed = allowed | ~has_key
    # 2. fused attention
    if bias is not None:
        attn_mask = bias.to(query.dtype)
        if allowed is not None:
            attn_mask = attn_mask.masked_fill(~allowed, float("-inf"))
        out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, scale=scale)
    elif mask is None:
        out = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=causal, scale=scale)
    else:
        out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=allowed, scale=scale)
    # 3. rows with no allowed key
    if has_key is not None:
        out = out * has_key.to(out.dtype)
    return out


def softmax_transform_naive(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Reference for `softmax_transform`: the explicit `[N, N]` kernel.

    Steps:
        1. scores `s_ij = q_i·k_j·scale + b_ij`;
        2. `−∞` where `w_j = 0` or (causal) `j > i`;
        3. `K_ij = softmax_j(s_ij)`, rows with no allowed key set to 0;
        4. `y_i = Σ_j K_ij v_j`.
    """
    _check_softmax(query, key, value, mask, bias)
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    # 1. scores
    scores = (query @ key.transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias.to(scores.dtype)
    # 2. disallowed pairs
    allowed = _allowed_keys(mask, causal, query.shape[2], query.device)
    if allowed is None:
        return scores.softmax(dim=-1) @ value
    scores = scores.masked_fill(~allowed, float("-inf"))
    # 3. softmax, empty rows zeroed
    K = scores.softmax(dim=-1).masked_fill(~allowed.any(dim=-1, keepdim=True), 0.0)
    # 4. weighted sum
    return K @ value


def softmax_step(
    query_t: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    r"""One causal step of `softmax_transform` (and of the sliding window): the new query against the cached keys,

        y_t = Σ_s softmax_s(q_t·k_s / √E + b_s) v_s    over the real keys (`w_s ≠ 0`), 0 if there is none.

    Steps:
        1. scores `q_t·k_s / √E` (+ the bias row);
        2. `−∞` where `w_s = 0`; a query with no real key is opened up, then its output set to 0;
        3. the weighted sum of the values.

    Args:
        query_t: `[B, H, 1, E]`.
        keys, values: `[B, H, T, E]`, the cached positions and this one.
        weight: `[B, T]` their quadrature weights.
        bias: optional `[H, T]` scores `b(t − s)`.

    Returns:
        `[B, H, E]`.
    """
    # 1. scores
    scores = (query_t @ keys.transpose(-1, -2))[:, :, 0] * query_t.shape[-1] ** -0.5  # [B, H, T]
    if bias is not None:
        scores = scores + bias.to(scores.dtype)
    # 2. real keys
    allowed = (weight != 0)[:, None, :]
    has_key = allowed.any(dim=-1, keepdim=True)
    probs = scores.masked_fill(~(allowed | ~has_key), float("-inf")).softmax(dim=-1) * has_key.to(scores.dtype)
    # 3. sum
    return torch.einsum("bhs,bhse->bhe", probs, values)


def fourier_bias(
    offsets: torch.Tensor, frequencies: torch.Tensor, cos_weight: torch.Tensor, sin_weight: torch.Tensor
) -> torch.Tensor:
    r"""A stationary bias per head as a learned Fourier series of the offset,

        b_h(δ) = Σ_r a_hr cos(ω_r·δ) + c_hr sin(ω_r·δ),

    Args:
        offsets: `[..., P]` offsets `δ = x_i − x_j`.
        frequencies: `[R, P]`, the frequency vectors `ω_r`.
        cos_weight, sin_weight: `[H, R]`, the coefficients `a` and `c`.

    Returns:
        `[..., H]`.
    """
    angles = offsets.to(frequencies.dtype) @ frequencies.T  # [..., R]
    return angles.cos() @ cos_weight.T + angles.sin() @ sin_weight.T


def _check_fourier_bias(query, positions, frequencies, cos_weight, sin_weight):
    batch, heads, length = query.shape[:3]
    if frequencies.dim() != 2:
        raise ValueError(f"`frequencies` must have shape [R, P], got {list(frequencies.shape)}.")
    rank, dims = frequencies.shape
    if positions.shape[-2:] != (length, dims) or positions.dim() not in (2, 3):
        raise ValueError(
            f"`positions` must have shape [N, P] or [B, N, P] = [{batch}, {length}, {dims}], got {list(positions.shape)}."
        )
    for name, weight in (("cos_weight", cos_weight), ("sin_weight", sin_weight)):
        if tuple(weight.shape) != (heads, rank):
            raise ValueError(f"`{name}` must have shape [H, R] = {[heads, rank]}, got {list(weight.shape)}.")


def softmax_fourier_transform(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    positions: torch.Tensor,
    frequencies: torch.Tensor,
    cos_weight: torch.Tensor,
    sin_weight: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    r"""`softmax_transform` with the relative-position bias `b_ij = fourier_bias(x_i − x_j)`, on SDPA's fused path.

    The bias has rank `2R`: with `cos_i = cos(Ω x_i)` and `sin_i = sin(Ω x_i)` (`[R]` each),

        b_h(x_i − x_j) = (a_h ⊙ cos_i + c_h ⊙ sin_i)·cos_j + (a_h ⊙ sin_i − c_h ⊙ cos_i)·sin_j,

    so the scores `q_i·k_j·scale + b_ij` are one dot product of augmented features and no `[H, N, N]` bias is ever
    built:

        q'_i = [q_i·scale, a_h ⊙ cos_i + c_h ⊙ sin_i, a_h ⊙ sin_i − c_h ⊙ cos_i],    k'_j = [k_j, cos_j, sin_j].

    Steps:
        1. `cos_i`, `sin_i` of every position `[B or 1, 1, N, R]`;
        2. the augmented queries and keys `[B, H, N, D + 2R]`;
        3. zero columns so that queries, keys and values have one width (SDPA's fused CPU kernels need it; a zero
           column of `q'`/`k'` adds 0 to every score, a zero column of `v` is cut off the output);
        4. `softmax_transform` of the augmented features with `scale = 1`, the output cut back to `E` columns.

    Args:
        query, key: `[B, H, N, D]`.
        value: `[B, H, N, E]`.
        positions: `[N, P]` (one layout for the batch, e.g. a grid) or `[B, N, P]` coordinates `x_i`.
        frequencies, cos_weight, sin_weight: the bias, as in `fourier_bias`.
        mask, causal, scale: as in `softmax_transform`.

    Returns:
        `[B, H, N, E]`.
    """
    _check_softmax(query, key, value, mask, None)
    _check_fourier_bias(query, positions, frequencies, cos_weight, sin_weight)
    dtype, width = query.dtype, value.shape[-1]
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    # 1. the Fourier features of the positions
    angles = (positions.to(frequencies.dtype) @ frequencies.T).to(dtype)  # [(B,) N, R]
    if angles.dim() == 2:
        angles = angles[None]
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]  # [B or 1, 1, N, R]
    a, c = cos_weight.to(dtype)[None, :, None], sin_weight.to(dtype)[None, :, None]  # [1, H, 1, R]
    # 2. augmented queries and keys
    shape = (*query.shape[:3], cos.shape[-1])
    query = torch.cat([query * scale, (a * cos + c * sin).expand(shape), (a * sin - c * cos).expand(shape)], dim=-1)
    key = torch.cat([key, cos.expand(shape), sin.expand(shape)], dim=-1)
    # 3. one width
    size = max(query.shape[-1], width)
    if size > query.shape[-1]:
        query, key = (torch.nn.functional.pad(t, (0, size - t.shape[-1])) for t in (query, key))
    if size > width:
        value = torch.nn.functional.pad(value, (0, size - width))
    # 4. fused attention
    return softmax_transform(query, key, value, mask, causal, scale=1.0)[..., :width]


def softmax_fourier_transform_naive(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    positions: torch.Tensor,
    frequencies: torch.Tensor,
    cos_weight: torch.Tensor,
    sin_weight: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Reference for `softmax_fourier_transform`: the bias as an explicit `[H, N, N]` table of every pair.

    Steps:
        1. offsets `x_i − x_j` of every pair `[(B,) N, N, P]`;
        2. `b_ij = fourier_bias(x_i − x_j)`, heads first `[(B,) H, N, N]`;
        3. `softmax_transform_naive` with that bias.
    """
    _check_fourier_bias(query, positions, frequencies, cos_weight, sin_weight)
    # 1. offsets
    offsets = positions[..., :, None, :] - positions[..., None, :, :]
    # 2. the bias table
    bias = fourier_bias(offsets, frequencies, cos_weight, sin_weight).movedim(-1, -3)
    # 3. attention with it
    return softmax_transform_naive(query, key, value, mask, causal, bias.to(query.dtype), scale)


def _check_mlp_kernel(positions, left, right, value, mask):
    if positions.dim() != 3:
        raise ValueError(f"`positions` must have shape [B, N, P], got {list(positions.shape)}.")
    batch, length = positions.shape[:2]
    if left.dim() != 3 or tuple(left.shape[:2]) != (batch, length):
        raise ValueError(f"`left` must have shape [B, N, A] with [B, N] = {[batch, length]}, got {list(left.shape)}.")
    if right.dim() != 3 or tuple(right.shape[:2]) != (batch, length):
        raise ValueError(
            f"`right` must have shape [B, N, A] with [B, N] = {[batch, length]}, got {list(right.shape)}."
        )
    if value.dim() != 4 or value.shape[0] != batch or value.shape[2] != length:
        raise ValueError(
            f"`value` must have shape [B, H, N, E] with B = {batch}, N = {length}, got {list(value.shape)}."
        )
    if mask is not None and tuple(mask.shape) != (batch, length):
        raise ValueError(f"`mask` must have shape [B, N] = {[batch, length]}, got {list(mask.shape)}.")


def _evaluate_kernel(kernel_fn, offsets, left_i, right_j, heads: int, dtype) -> torch.Tensor:
    """`kernel_fn` on broadcast pair tensors, checked to return `[..., H]`."""
    shape = offsets.shape[:-1]
    left_i = left_i.expand(*shape, left_i.shape[-1])
    right_j = right_j.expand(*shape, right_j.shape[-1])
    K = kernel_fn(offsets, left_i, right_j)
    if tuple(K.shape) != (*shape, heads):
        raise ValueError(
            f"`kernel_fn` must return shape {[*shape, heads]} ([..., H] with H = value heads), got {list(K.shape)}."
        )
    return K.to(dtype)


def _quadrature_normaliser(mask, causal: bool, batch: int, length: int, device, dtype) -> torch.Tensor:
    """`Z_i = Σ_j w_j` over the allowed keys of row `i`, `[B, N]`."""
    w = torch.ones(batch, length, device=device, dtype=dtype) if mask is None else mask.to(dtype)
    if causal:
        return w.cumsum(dim=1)
    return w.sum(dim=1, keepdim=True).expand(batch, length)


def _mlp_kernel_tile(kernel_fn, heads, q_start, k_start, causal, pos_i, pos_j, left_i, right_j, value_j, w_j):
    """`Σ_{j ∈ tile} w_j K_ij v_j` for one (query tile, key tile): `[B, H, T_i, E]`."""
    offsets = pos_i[:, :, None, :] - pos_j[:, None, :, :]  # [B, Ti, Tj, P]
    K = _evaluate_kernel(kernel_fn, offsets, left_i[:, :, None, :], right_j[:, None, :, :], heads, value_j.dtype)
    weight = None if w_j is None else w_j[:, None, :].to(K.dtype)  # [B, 1, Tj]
    if causal:
        rows = torch.arange(q_start, q_start + pos_i.shape[1], device=K.device)
        cols = torch.arange(k_start, k_start + pos_j.shape[1], device=K.device)
        lower = (cols[None, :] <= rows[:, None]).to(K.dtype)[None]  # [1, Ti, Tj]
        weight = lower if weight is None else weight * lower
    if weight is not None:
        K = K * weight[..., None]
    return torch.einsum("bijh,bhje->bhie", K, value_j)


def mlp_kernel_transform(
    positions: torch.Tensor,
    left: torch.Tensor,
    right: torch.Tensor,
    value: torch.Tensor,
    kernel_fn,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    tile_size: int = 128,
) -> torch.Tensor:
    r"""General (unconstrained) kernel by tiled kernel fusion: the N×N×H kernel is never materialised.

        y_i = (1/Z_i) Σ_j w_j K_ij v_j,    K_ij = kernel_fn(x_i − x_j, a(u_i), b(u_j)) ∈ R^H,    Z_i = Σ_j w_j

    with the sums over the allowed keys (`j ≤ i` if causal). `Z_i` is the quadrature normaliser, so the output is
    the mean of `K·v` over the real keys (a Monte Carlo–compatible normalisation, see `monte_carlo_transform`);
    where `Z_i = 0` the output is 0. Positions are arbitrary real coordinates of any dimension (irregular allowed).

    Steps:
        1. cut queries and keys into tiles of `T = tile_size` tokens; in causal mode skip key tiles entirely after
           the query tile;
        2. for each (query tile, key tile): evaluate `K` on the `[B, T, T, H]` tile, weight by `w_j` (and the causal
           triangle), contract with `v_j` at once into the `[B, H, T, E]` accumulator and discard the tile. With
           autograd recording, each tile runs under `torch.utils.checkpoint` (non-reentrant): it keeps only views
           of its inputs and recomputes the tile in backward, so the saved state is O(N·(P + A + H·E)) plus
           O(1) per tile, and the peak is O(B·T²·hidden) for one tile — forward and backward, never O(N²·H);
        3. divide by `Z_i` (0 where `Z_i = 0`).

    Time O(N²·cost(kernel_fn)). The output has the dtype of `value`.

    Args:
        positions: `[B, N, P]` coordinates `x_i`.
        left: `[B, N, A]` query-side features `a(u_i)`.
        right: `[B, N, A']` key-side features `b(u_j)`.
        value: `[B, H, N, E]`.
        kernel_fn: callable `(offsets [..., P], left_i [..., A], right_j [..., A']) -> [..., H]`, applied on
            broadcast pair tensors (e.g. an MLP module owned by the caller; its parameters get gradients).
        mask: optional `[B, N]` quadrature weights (0 for padding).
        causal: restrict to `j ≤ i`.
        tile_size: `T`, tokens per query/key tile.

    Returns:
        `[B, H, N, E]`.
    """
    _check_mlp_kernel(positions, left, right, value, mask)
    if tile_size < 1:
        raise ValueError(f"`tile_size` must be at least 1, got {tile_size}.")
    batch, heads, length, width = value.shape
    from torch.utils.checkpoint import checkpoint

    checkpointing = torch.is_grad_enabled()
    rows = []
    # 1. query tiles
    for q_start in range(0, length, tile_size):
        q_end = min(q_start + tile_size, length)
        acc = value.new_zeros(batch, heads, q_end - q_start, width)
        for k_start in range(0, q_end if causal else length, tile_size):
            k_end = min(k_start + tile_size, length)
            tile_causal = causal and k_end - 1 > q_start  # only tiles crossing the diagonal need the triangle
            args = (
                kernel_fn, heads, q_start, k_start, tile_causal,
                positions[:, q_start:q_end], positions[:, k_start:k_end],
                left[:, q_start:q_end], right[:, k_start:k_end],
                value[:, :, k_start:k_end], None if mask is None else mask[:, k_start:k_end],
            )  # fmt: skip
            # 2. evaluate, contract, discard (recomputed in backward)
            if checkpointing:
                tile = checkpoint(_mlp_kernel_tile, *args, use_reentrant=False)
            else:
                tile = _mlp_kernel_tile(*args)
            acc = acc + tile
        rows.append(acc)
    out = torch.cat(rows, dim=2)
    # 3. quadrature normaliser
    Z = _quadrature_normaliser(mask, causal, batch, length, value.device, value.dtype)
    return out / torch.where(Z > 0, Z, torch.ones_like(Z))[:, None, :, None]


def mlp_kernel_transform_naive(
    positions: torch.Tensor,
    left: torch.Tensor,
    right: torch.Tensor,
    value: torch.Tensor,
    kernel_fn,
    mask: torch.Tensor | None = None,
    causal: bool = False,
) -> torch.Tensor:
    r"""Reference for `mlp_kernel_transform`: the full `[B, N, N, H]` kernel.

    Steps:
        1. offsets `x_i − x_j` for every pair, `K = kernel_fn(x_i − x_j, a(u_i), b(u_j))`, `[B, N, N, H]`;
        2. `K_ij · w_j`, zeroed for `j > i` if causal;
        3. `y_i = Σ_j K_ij v_j / Z_i` with `Z_i = Σ_j w_j` over the allowed keys (0 where `Z_i = 0`).
    """
    _check_mlp_kernel(positions, left, right, value, mask)
    batch, heads, length, _ = value.shape
    # 1. the full kernel
    offsets = positions[:, :, None, :] - positions[:, None, :, :]
    K = _evaluate_kernel(kernel_fn, offsets, left[:, :, None, :], right[:, None, :, :], heads, value.dtype)
    # 2. quadrature weights, causality
    if mask is not None:
        K = K * mask[:, None, :, None].to(K.dtype)
    if causal:
        K = K * torch.ones(length, length, device=K.device, dtype=K.dtype).tril()[None, :, :, None]
    # 3. weighted sum, normalised
    out = torch.einsum("bijh,bhje->bhie", K, value)
    Z = _quadrature_normaliser(mask, causal, batch, length, value.device, value.dtype)
    return out / torch.where(Z > 0, Z, torch.ones_like(Z))[:, None, :, None]


def mlp_kernel_step(kernel: torch.Tensor, weight: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    r"""One causal step of `mlp_kernel_transform`: `y_t = Σ_{s≤t} w_s K(t, s) v_s / Σ_{s≤t} w_s` (0 with no weight).

    Args:
        kernel: `[B, T, H]`, `K(x_t, x_s, u_t, u_s)` for the cached positions and this one.
        weight: `[B, T]` their quadrature weights.
        values: `[B, H, T, E]`.

    Returns:
        `[B, H, E]`.
    """
    out = torch.einsum("bsh,bhse->bhe", kernel * weight[..., None], values)
    Z = weight.sum(dim=1)
    return out / torch.where(Z > 0, Z, torch.ones_like(Z))[:, None, None]


def monte_carlo_sample(
    log_proposal: torch.Tensor,
    num_samples: int,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Draw `M` keys per query from `q_i(j) ∝ exp(s_j)` over the allowed keys of row `i`, with replacement.

        q_i(j) = exp(s_j) / Σ_{j' ∈ A_i} exp(s_j')  for j ∈ A_i = {j : w_j ≠ 0, and j ≤ i if causal},  else 0

    Steps (inverse-CDF sampling in O(N·M·log N), never an `[N, N]` table, in float64 and without gradient):
        1. masked scores (`−∞` where `w_j = 0`) and their running log-normaliser `c_j = log Σ_{j' ≤ j} exp(s_j')`;
           the row normaliser is `L_i = c_i` if causal, else `c_{N−1}`;
        2. `u ~ U(0, 1)` from `generator`; `j` = the first key with `c_j > log u + L_i`, which has probability
           exactly `q_i(j)` (keys with no mass never are), clamped to the last allowed key of row `i` against
           rounding;
        3. importance weights `1/q_i(j) = exp(L_i − s_j)`.

    Args:
        log_proposal: `[B, N]` scores `s_j` (finite at the allowed keys; detached).
        num_samples: `M ≥ 1`.
        mask: optional `[B, N]` quadrature weights.
        causal: restrict row `i` to `j ≤ i`.
        generator: source of randomness; the same seeded generator gives the same samples.

    Returns:
        `index` `[B, N, M]` (long), `inverse_q` `[B, N, M]` float64 (`1/q_i(j)`; 0 on rows with no allowed key,
        whose index is a placeholder 0), `has_key` `[B, N]` bool.
    """
    if log_proposal.dim() != 2:
        raise ValueError(f"`log_proposal` must have shape [B, N], got {list(log_proposal.shape)}.")
    if mask is not None and mask.shape != log_proposal.shape:
        raise ValueError(f"`mask` must have shape [B, N] = {list(log_proposal.shape)}, got {list(mask.shape)}.")
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be at least 1, got {num_samples}.")
    batch, length = log_proposal.shape
    device = log_proposal.device
    with torch.no_grad():
        # 1. masked scores and running log-normaliser
        scores = log_proposal.detach().to(torch.float64)
        allowed = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask != 0
        scores = scores.masked_fill(~allowed, float("-inf"))
        log_cdf = torch.logcumsumexp(scores, dim=1)  # [B, N]
        row_log_norm = log_cdf if causal else log_cdf[:, -1:].expand(batch, length)  # L_i
        has_key = torch.isfinite(row_log_norm)
        positions = torch.arange(length, device=device).expand(batch, length)
        last_allowed = torch.where(allowed, positions, torch.full_like(positions, -1))
        last_allowed = last_allowed.cummax(dim=1).values if causal else last_allowed.max(dim=1, keepdim=True).values
        last_allowed = last_allowed.expand(batch, length)
        # 2. inverse CDF
        uniform = torch.rand(batch, length, num_samples, generator=generator, device=device, dtype=torch.float64)
        target = uniform.log() + row_log_norm.unsqueeze(-1)
        index = torch.searchsorted(log_cdf.contiguous(), target.reshape(batch, -1), right=True).reshape(target.shape)
        index = torch.minimum(index, last_allowed.unsqueeze(-1))
        index = torch.where(has_key.unsqueeze(-1), index, torch.zeros_like(index))
        # 3. importance weights
        sampled_scores = scores.gather(1, index.reshape(batch, -1)).reshape(index.shape)
        inverse_q = torch.exp(row_log_norm.unsqueeze(-1) - sampled_scores)
        inverse_q = torch.where(has_key.unsqueeze(-1), inverse_q, torch.zeros_like(inverse_q))
    return index, inverse_q, has_key


def monte_carlo_transform(
    positions: torch.Tensor,
    left: torch.Tensor,
    right: torch.Tensor,
    value: torch.Tensor,
    kernel_fn,
    log_proposal: torch.Tensor,
    num_samples: int,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Importance-weighted Monte Carlo estimate of `mlp_kernel_transform`, O(N·M·H) instead of O(N²·H).

        Ŝ_i = (1/M) Σ_m w_{j_m} K_{i j_m} v_{j_m} / q_i(j_m),    j_m ~ q_i i.i.d.,    y_i = Ŝ_i / Z_i

    `q_i` is the learned proposal `softmax(log_proposal)` restricted to the allowed keys of row `i` (see
    `monte_carlo_sample`). Since every allowed key has `q_i(j) > 0`, `E[Ŝ_i] = Σ_j w_j K_ij v_j = S_i` exactly
    (unbiased for any proposal; the proposal only changes the variance, which is `Var_q[w K v / q] / M`).
    `Z_i = Σ_j w_j` is known exactly, so `E[y_i]` equals `mlp_kernel_transform` exactly; rows with no allowed
    key return 0.

    Steps:
        1. draw `index` `[B, N, M]` and `1/q` from `monte_carlo_sample`;
        2. gather `x_j`, `b(u_j)`, `v_j`, `w_j` at the sampled keys and evaluate `K` on the `[B, N, M]` pairs;
        3. average `w_j K_ij v_j / q_i(j)` over the `M` samples and divide by `Z_i`.

    Determinism: the samples come from `generator` (the global RNG if None). In eval mode the caller passes a
    generator seeded with a fixed seed (e.g. `torch.Generator(device).manual_seed(0)` made afresh per call), so
    the same inputs give the same output.

    Gradients flow to `value`, `left`, `right` and `kernel_fn`'s parameters through the sampled terms (the
    gradient of the estimate is an unbiased estimate of the exact gradient, since the sampling does not depend on
    them). The sample indices are not differentiated and `log_proposal` gets NO gradient: the score-function
    (REINFORCE) term that would train the proposal, e.g. to reduce variance, is not included; train it with a
    separate objective if needed.

    Args:
        positions, left, right, value, kernel_fn, mask, causal: as in `mlp_kernel_transform`.
        log_proposal: `[B, N]` proposal scores `s_j` per key.
        num_samples: `M`, samples per query (with replacement; `M` may exceed the number of allowed keys).
        generator: `torch.Generator` for the samples.

    Returns:
        `[B, H, N, E]` in the dtype of `value`.
    """
    _check_mlp_kernel(positions, left, right, value, mask)
    if tuple(log_proposal.shape) != tuple(positions.shape[:2]):
        raise ValueError(
            f"`log_proposal` must have shape [B, N] = {list(positions.shape[:2])}, got {list(log_proposal.shape)}."
        )
    batch, heads, length, _ = value.shape
    # 1. samples and importance weights
    index, inverse_q, has_key = monte_carlo_sample(log_proposal, num_samples, mask, causal, generator)
    flat = index.reshape(batch, -1)  # [B, N·M]
    batch_index = torch.arange(batch, device=value.device)[:, None]
    # 2. gather the sampled keys and evaluate K on [B, N, M] pairs
    pos_j = positions[batch_index, flat].reshape(batch, length, num_samples, -1)
    right_j = right[batch_index, flat].reshape(batch, length, num_samples, -1)
    value_j = value.transpose(1, 2)[batch_index, flat].reshape(batch, length, num_samples, heads, -1)
    offsets = positions[:, :, None, :] - pos_j
    K = _evaluate_kernel(kernel_fn, offsets, left[:, :, None, :], right_j, heads, value.dtype)  # [B, N, M, H]
    weight = inverse_q.to(value.dtype)
    if mask is not None:
        weight = weight * mask.to(value.dtype)[batch_index, flat].reshape(index.shape)
    # 3. importance-weighted mean, normalised
    estimate = torch.einsum("bnmh,bnmhe->bhne", K * weight[..., None], value_j) / num_samples
    Z = _quadrature_normaliser(mask, causal, batch, length, value.device, value.dtype)
    out = estimate / torch.where(Z > 0, Z, torch.ones_like(Z))[:, None, :, None]
    return torch.where(has_key[:, None, :, None], out, torch.zeros_like(out))


# --------------------------------------------------------------------------------------------------------------
# Recurrence family: causal kernels with sequential structure (selective state spaces, gated linear RNNs, S4/LTI)
# --------------------------------------------------------------------------------------------------------------


def _check_decay(query, key, value, log_decay, mask, initial_state):
    _check_low_rank(query, key, value, mask)
    batch, heads, length, rank = query.shape
    if tuple(log_decay.shape) not in ((batch, heads, length), (batch, heads, length, rank)):
        raise ValueError(
            f"`log_decay` must have shape [B, H, N] = {[batch, heads, length]} or [B, H, N, R] = "
            f"{[batch, heads, length, rank]}, got {list(log_decay.shape)}."
        )
    if initial_state is not None and tuple(initial_state.shape) != (batch, heads, rank, value.shape[-1]):
        raise ValueError(
            f"`initial_state` must have shape [B, H, R, E] = {[batch, heads, rank, value.shape[-1]]}, "
            f"got {list(initial_state.shape)}."
        )


def _prepare_decay(key, log_decay, mask):
    """Quadrature weights on the keys; a padded step keeps the state as it is (log-decay 0, no input).

    Returns the weighted key and the log-decay as `[B, H, N, R']` (`R' = 1` for a scalar decay per step) in at least
    float32.
    """
    log_decay = log_decay.to(torch.promote_types(log_decay.dtype, torch.float32))
    if log_decay.dim() == 3:
        log_decay = log_decay.unsqueeze(-1)
    if mask is not None:
        key = key * mask[:, None, :, None].to(key.dtype)
        log_decay = torch.where(mask[:, None, :, None] != 0, log_decay, torch.zeros_like(log_decay))
    return key, log_decay


def decay_low_rank_transform(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    log_decay: torch.Tensor,
    mask: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Causal low-rank kernel with data-dependent decay, chunked: GLA, RetNet and Mamba-2 (SSD) as a transform.

        K(t, s) = q_tᵀ diag(Π_{s<τ≤t} a_τ) k_s   for s ≤ t,   0 otherwise
        y_t     = Σ_s w_s K(t, s) v_s  +  q_tᵀ diag(Π_{τ≤t} a_τ) S_0                    (unnormalised)

    equivalently the linear recurrence `S_t = diag(a_t) S_{t−1} + w_t k_t v_tᵀ`, `y_t = q_tᵀ S_t` (see
    `decay_low_rank_recurrent_naive`). The decay `a_τ = exp(log_decay_τ) ∈ (0, 1]` is one scalar per head and step
    (RetNet, Mamba-2) or one per feature `r` (GLA). A padded step (`w_τ = 0`) neither adds its `k_τ v_τᵀ` nor
    decays the state, so a left- or right-padded batch gives exactly each sequence's own outputs and final state.

    Chunked parallel form (chunks of `C` tokens), O(N·C·R + N·R·E) time, O(N·C·R + (N/C)·R·E) memory:
        1. per chunk, log-decay sums without any subtraction (every exponent is a sum of non-positive numbers, so
           nothing overflows however strong the decay and no later value enters an earlier sum):
           `seg[i, j] = Σ_{j<τ≤i} log a_τ` (masked cumulative sum, `-inf` above the diagonal),
           `pre[i] = Σ_{τ≤i} log a_τ`, `suf[j] = Σ_{j<τ<C} log a_τ`, `tot = Σ_τ log a_τ`;
        2. intra-chunk: `y_i += Σ_{j≤i} (q_i ⊙ exp(seg[i, j]))·k_j v_j` through the `[C, C]` decayed score matrix;
        3. chunk summaries `U_c = Σ_j (k_j ⊙ exp(suf[j])) v_jᵀ` (`[R, E]`);
        4. state passing over chunks, `S_c = diag(exp(tot_c)) S_{c−1} + U_c` from `S_{−1} = initial_state`
           (a loop over the N/C chunks on `[R, E]` states);
        5. inter-chunk: `y_i += (q_i ⊙ exp(pre[i]))ᵀ S_{c−1}`.
    Causality is exact bit for bit: outputs at `t` are computed from inputs at `≤ t` only (masked entries are
    exact zeros, cumulative sums never subtract).

    Args:
        query, key: `[B, H, N, R]` (`C_t` and `Δ_t B_t` in Mamba-2 terms).
        value: `[B, H, N, E]` (`x_t`).
        log_decay: `[B, H, N]` (scalar decay per head and step) or `[B, H, N, R]` (per feature); finite, `≤ 0`.
        mask: optional `[B, N]` quadrature weights (0 for padding).
        initial_state: optional `[B, H, R, E]` state `S_{−1}` before the first step (0 if omitted).
        chunk_size: `C`, tokens per chunk (any value ≥ 1; need not divide N).

    Returns:
        `(output [B, H, N, E], final_state [B, H, R, E])`, in the promoted dtype of query, key and value.
    """
    _check_decay(query, key, value, log_decay, mask, initial_state)
    dtype = torch.promote_types(torch.promote_types(query.dtype, key.dtype), value.dtype)
    query, key, value = query.to(dtype), key.to(dtype), value.to(dtype)
    key, log_decay = _prepare_decay(key, log_decay, mask)
    batch, heads, length, rank = query.shape
    width = value.shape[-1]
    chunk = max(1, min(chunk_size, length))
    pad = (-length) % chunk
    chunks = (length + pad) // chunk
    # padding at the end: zero inputs and log-decay 0 leave the state unchanged
    q, k, v, g = (
        torch.nn.functional.pad(t, (0, 0, 0, pad)).reshape(batch, heads, chunks, chunk, t.shape[-1])
        for t in (query, key, value, log_decay)
    )
    # 1. log-decay sums inside each chunk, [B, H, nc, C, R'] and [B, H, nc, C, C, R']
    strictly_lower = torch.tril(torch.ones(chunk, chunk, dtype=torch.bool, device=g.device), diagonal=-1)
    spread = torch.where(strictly_lower[:, :, None], g.unsqueeze(-2), torch.zeros((), dtype=g.dtype, device=g.device))
    seg = torch.cumsum(spread, dim=-3)  # seg[i, j] = Σ_{j<τ≤i} g_τ: rows τ > j of column j, summed up to row i
    lower = torch.tril(torch.ones(chunk, chunk, dtype=torch.bool, device=g.device))
    seg = seg.masked_fill(~lower[:, :, None], float("-inf"))
    prefix = torch.cumsum(g, dim=-2)  # Σ_{τ≤i}
    suffix = torch.flip(_exclusive_cumsum(torch.flip(g, dims=(-2,)), dim=-2), dims=(-2,))  # Σ_{i<τ<C}
    total = g.sum(dim=-2)  # [B, H, nc, R']
    # 2. intra-chunk
    decay = seg.exp().to(dtype)
    if g.shape[-1] == 1:
        scores = torch.einsum("bhcir,bhcjr->bhcij", q, k) * decay[..., 0]
    else:
        scores = torch.einsum("bhcir,bhcijr,bhcjr->bhcij", q, decay, k)
    out = torch.einsum("bhcij,bhcje->bhcie", scores, v)
    # 3. chunk summaries
    summaries = torch.einsum("bhcjr,bhcje->bhcre", k * suffix.exp().to(dtype), v)
    # 4. state passing over chunks
    state = initial_state.to(dtype) if initial_state is not None else query.new_zeros(batch, heads, rank, width)
    chunk_decay = total.exp().to(dtype).unsqueeze(-1)  # [B, H, nc, R', 1]
    previous = []
    for c in range(chunks):
        previous.append(state)
        state = chunk_decay[:, :, c] * state + summaries[:, :, c]
    previous = torch.stack(previous, dim=2)  # [B, H, nc, R, E]: the state before each chunk
    # 5. inter-chunk
    out = out + torch.einsum("bhcir,bhcre->bhcie", q * prefix.exp().to(dtype), previous)
    return out.reshape(batch, heads, chunks * chunk, width)[:, :, :length], state


def decay_low_rank_step(
    query_t: torch.Tensor,
    key_t: torch.Tensor,
    value_t: torch.Tensor,
    log_decay_t: torch.Tensor,
    state: torch.Tensor | None = None,
    mask_t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One step of the decayed low-rank recurrence (the generation path with a recurrent-state cache).

        S_t = diag(a_t) S_{t−1} + w_t k_t v_tᵀ,        y_t = q_tᵀ S_t,        a_t = exp(log_decay_t)

    Steps:
        1. a padded step (`w_t = 0`) keeps the state: log-decay 0, no input;
        2. decay the state and add the weighted outer product `w_t k_t v_tᵀ`;
        3. read out `y_t = q_tᵀ S_t`.

    Args:
        query_t, key_t: `[B, H, R]`.
        value_t: `[B, H, E]`.
        log_decay_t: `[B, H]` or `[B, H, R]`, `≤ 0`.
        state: `[B, H, R, E]`, or None for a zero state.
        mask_t: optional `[B]` quadrature weights of this step.

    Returns:
        `(y_t [B, H, E], state [B, H, R, E])`.
    """
    dtype = torch.promote_types(torch.promote_types(query_t.dtype, key_t.dtype), value_t.dtype)
    log_decay_t = log_decay_t.to(torch.promote_types(log_decay_t.dtype, torch.float32))
    if log_decay_t.dim() == 2:
        log_decay_t = log_decay_t.unsqueeze(-1)
    # 1. padding
    if mask_t is not None:
        key_t = key_t * mask_t[:, None, None].to(key_t.dtype)
        log_decay_t = torch.where(mask_t[:, None, None] != 0, log_decay_t, torch.zeros_like(log_decay_t))
    if state is None:
        state = query_t.new_zeros(*query_t.shape, value_t.shape[-1], dtype=dtype)
    # 2. decay and write
    state = log_decay_t.exp().to(dtype).unsqueeze(-1) * state.to(dtype) + key_t.to(dtype).unsqueeze(-1) * value_t.to(
        dtype
    ).unsqueeze(-2)
    # 3. read
    return torch.einsum("bhr,bhre->bhe", query_t.to(dtype), state), state


def decay_low_rank_recurrent_naive(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    log_decay: torch.Tensor,
    mask: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Recurrent form of `decay_low_rank_transform`: `decay_low_rank_step` applied for t = 0 .. N−1.

        S_t = diag(a_t) S_{t−1} + w_t k_t v_tᵀ,        y_t = q_tᵀ S_t,        S_{−1} = initial_state (or 0)

    Steps:
        1. start from `initial_state`;
        2. for each t, one step (padded steps keep the state);
        3. stack the outputs.

    Args and returns as `decay_low_rank_transform`; O(N·R·E) time, O(R·E) state, N sequential steps.
    """
    _check_decay(query, key, value, log_decay, mask, initial_state)
    # 1. initial state
    state = initial_state
    outputs = []
    # 2. one step per token
    for t in range(query.shape[2]):
        y, state = decay_low_rank_step(
            query[:, :, t],
            key[:, :, t],
            value[:, :, t],
            log_decay[:, :, t],
            state,
            None if mask is None else mask[:, t],
        )
        outputs.append(y)
    # 3. stack
    return torch.stack(outputs, dim=2), state


def decay_low_rank_transform_naive(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    log_decay: torch.Tensor,
    mask: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Reference for `decay_low_rank_transform`: the explicit `[N, N]` kernel from products of decays.

    Steps:
        1. `a_τ = exp(log a_τ)` (1 at padded steps); `P[t, s] = Π_{s<τ≤t} a_τ` built row by row by multiplication
           (`P[t, s] = P[t−1, s] · a_t`, `P[t, t] = 1`, 0 for `s > t`), and `P₀[t] = Π_{τ≤t} a_τ` for the initial
           state;
        2. `K[t, s] = Σ_r q_t[r] P[t, s, r] k_s[r] · w_s`;
        3. `y_t = Σ_s K[t, s] v_s + q_tᵀ diag(P₀[t]) S_0`;
           `S_N = Σ_s diag(P[N−1, s]) w_s k_s v_sᵀ + diag(P₀[N−1]) S_0`.
    """
    _check_decay(query, key, value, log_decay, mask, initial_state)
    dtype = torch.promote_types(torch.promote_types(query.dtype, key.dtype), value.dtype)
    query, key, value = query.to(dtype), key.to(dtype), value.to(dtype)
    key, log_decay = _prepare_decay(key, log_decay, mask)
    batch, heads, length, rank = query.shape
    # 1. products of decays, row by row
    a = log_decay.exp().to(dtype)  # [B, H, N, R']
    rows, row = [], a.new_zeros(batch, heads, 0, a.shape[-1])
    from_start, running = [], torch.ones_like(a[:, :, 0])
    for t in range(length):
        row = torch.cat([row * a[:, :, t, None], torch.ones_like(a[:, :, t, None])], dim=2)  # s = 0 .. t
        rows.append(torch.nn.functional.pad(row, (0, 0, 0, length - t - 1)))
        running = running * a[:, :, t]
        from_start.append(running)
    P = torch.stack(rows, dim=2)  # [B, H, N(t), N(s), R']
    P0 = torch.stack(from_start, dim=2)  # [B, H, N, R']
    # 2. explicit kernel
    K = torch.einsum("bhtr,bhtsr,bhsr->bhts", query, P.expand(-1, -1, -1, -1, rank), key)
    # 3. sums
    out = K @ value
    final = torch.einsum("bhsr,bhse->bhre", P[:, :, -1] * key, value)
    if initial_state is not None:
        state0 = initial_state.to(dtype)
        out = out + torch.einsum("bhtr,bhre->bhte", query * P0, state0)
        final = final + P0[:, :, -1].unsqueeze(-1) * state0
    return out, final


def s4d_discretize(
    log_dt: torch.Tensor, A_continuous: torch.Tensor, B_continuous: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Zero-order-hold discretisation of a diagonal continuous-time SSM `x'(t) = A x(t) + B u(t)`, as in S4D.

        Ā = exp(Δ A),        B̄ = (Ā − 1) / A · B   (= (ΔA)⁻¹ (exp(ΔA) − I) · ΔB)

    Steps:
        1. `Δ = exp(log_dt)` per channel;
        2. `Ā = exp(Δ A)`;
        3. `B̄ = expm1(Δ A) / A · B` (`expm1` is `exp − 1` without cancellation for small `Δ A`).

    Args:
        log_dt: `[D]` real, log step sizes.
        A_continuous: `[D, S]` complex, `Re A < 0` for a stable system.
        B_continuous: `[D, S]` complex (or real).

    Returns:
        `(A_bar [D, S], B_bar [D, S])` complex.
    """
    # 1. step sizes
    return _zoh(torch.exp(log_dt), A_continuous, B_continuous)


def _zoh(step: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 2 and 3 of `s4d_discretize` for step sizes `Δ` `[D]`: `(exp(Δ A), expm1(Δ A) / A · B)`."""
    dt_A = step.unsqueeze(-1) * A
    return torch.exp(dt_A), torch.expm1(dt_A) / A * B


def ssm_kernel(
    A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, length: int, step: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Impulse response of a diagonal linear time-invariant SSM (S4D): the stationary causal kernel

        k(t) = Re(Σ_n C_n A_n^t B_n),   t = 0 .. length − 1,   one kernel per channel

    of `x_t = A x_{t−1} + B u_t`, `y_t = Re(C x_t)` (S4D's `2·Re` over conjugate pairs is `C ← 2 C`).

    Steps:
        1. if `step` (Δ) is given, `A` and `B` are continuous-time and discretised by ZOH (`s4d_discretize`), with
           `log Ā = Δ A` exactly; otherwise they are discrete and `log Ā = log A` (principal branch);
        2. Vandermonde matrix `Ā^t = exp(t · log Ā)`, `[D, S, length]`, all powers at once;
        3. `k(t) = Re(Σ_n (C_n B̄_n) Ā_n^t)`.

    Args:
        A: `[D, S]` complex, `|A| < 1` (discrete) or `Re A < 0` (continuous, with `step`).
        B, C: `[D, S]` complex (or real).
        length: number of offsets `t ≥ 0`.
        step: optional `[D]` positive step sizes Δ.

    Returns:
        `[length, D]` real, entry `t` holding `k(t)`. Apply it with `ssm_transform` or
        `spectral_conv(v, causal_kernel_layout(k), mask, causal=True)`.
    """
    # 1. discretisation
    if step is not None:
        _, B = _zoh(step, A, B)
        log_A = step.unsqueeze(-1) * A
    else:
        log_A = torch.log(A)
    # 2. Vandermonde
    powers = torch.exp(log_A.unsqueeze(-1) * torch.arange(length, device=log_A.device, dtype=log_A.real.dtype))
    # 3. contract the state
    return torch.einsum("ds,dst->td", C * B, powers).real


def causal_kernel_layout(kernel: torch.Tensor) -> torch.Tensor:
    r"""`[N, D]` causal kernel `k(t)`, `t ≥ 0` → the `[2N − 1, D]` offset layout of `spectral_conv` (entry
    `δ + N − 1` holds `k(δ)`, zeros at `δ < 0`)."""
    return torch.cat([kernel.new_zeros(kernel.shape[0] - 1, *kernel.shape[1:]), kernel], dim=0)


def ssm_transform(
    values: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    mask: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
    step: torch.Tensor | None = None,
    causal: bool = True,
) -> torch.Tensor:
    r"""Diagonal LTI SSM (S4/S4D) as a stationary integral transform, applied by FFT.

        y_t = Σ_{s≤t} w_s k(t − s) v_s,      k(δ) = Re(Σ_n C_n Ā_n^δ B̄_n) + D · [δ = 0]

    causal; bidirectional, the kernel is mirrored: `y_t = Σ_s w_s k(|t − s|) v_s`.

    Steps:
        1. `k = ssm_kernel(A, B, C, N, step)`; the skip `D` folds into `k(0)`; cast to the values' dtype;
        2. lay `k` out at offsets `δ ≥ 0` of the `[2N − 1, D]` layout (`causal_kernel_layout`), or mirrored;
        3. `spectral_conv(values, kernel, mask, causal)`, bit-exact causal in O(N log² N).

    Args:
        values: `[B, N, D]`.
        A, B, C: `[D, S]` as in `ssm_kernel`.
        mask: optional `[B, N]` quadrature weights (0 for padding).
        skip: optional `[D]` feed-through `D`.
        step: optional `[D]` step sizes Δ (then A, B are continuous-time).
        causal: `k(t − s)` for `s ≤ t` only; else `k(|t − s|)`.

    Returns:
        `[B, N, D]`.
    """
    # 1. kernel with skip
    kernel = ssm_kernel(A, B, C, values.shape[1], step)
    if skip is not None:
        kernel = torch.cat([kernel[:1] + skip, kernel[1:]], dim=0)
    kernel = kernel.to(values.dtype)
    # 2. layout
    full = causal_kernel_layout(kernel) if causal else torch.cat([kernel[1:].flip(0), kernel], dim=0)
    # 3. FFT
    return spectral_conv(values, full, mask, causal=causal)


def ssm_transform_naive(
    values: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    mask: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
    step: torch.Tensor | None = None,
    causal: bool = True,
) -> torch.Tensor:
    r"""Reference for `ssm_transform`: the explicit `[N, N]` Toeplitz kernel from repeated multiplication by Ā.

    Steps:
        1. discretise if `step` is given (`s4d_discretize`);
        2. powers `Ā^m` for m = 0 .. N−1 by repeated multiplication, `k(m) = Re(Σ_n C_n Ā_n^m B̄_n)`, plus `D` at 0;
        3. `K[t, s] = k(t − s)` for `s ≤ t`, 0 otherwise (bidirectional: `k(|t − s|)`);
        4. `y_t = Σ_s K[t, s] w_s v_s`.
    """
    length = values.shape[1]
    # 1. discretisation
    if step is not None:
        A, B = _zoh(step, A, B)
    # 2. powers by repeated multiplication
    powers, power = [], torch.ones_like(A)
    for _ in range(length):
        powers.append(power)
        power = power * A
    kernel = torch.einsum("ds,mds->md", C * B, torch.stack(powers)).real  # [N, D]
    if skip is not None:
        kernel = torch.cat([kernel[:1] + skip, kernel[1:]], dim=0)
    # 3. Toeplitz, causal
    index = torch.arange(length, device=values.device)
    offsets = index[:, None] - index[None, :]
    if causal:
        K = kernel[offsets.clamp_min(0)] * (offsets >= 0).unsqueeze(-1)  # [N, N, D]
    else:
        K = kernel[offsets.abs()]
    # 4. weighted sum
    v = values if mask is None else values * mask.unsqueeze(-1).to(values.dtype)
    return torch.einsum("tsd,bsd->btd", K.to(v.dtype), v)


def ssm_step(
    A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, skip: torch.Tensor, state: torch.Tensor, inputs
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One causal step of the diagonal SSM of `ssm_transform`: `x_t = Ā x_{t−1} + B̄ w_t v_t`,
    `y_t = Re(C x_t) + D w_t v_t`.

    Args:
        A_bar, B_bar, C: `[V, S]` complex (discrete time).
        skip: `[V]`, the feed-through `D`.
        state: `[B, V, S]` complex, `x_{t−1}`.
        inputs: `[B, V]` float, `w_t v_t`.

    Returns:
        `(y_t [B, V] float, x_t)`.
    """
    state = A_bar * state + B_bar * inputs.unsqueeze(-1)
    return torch.einsum("vs,bvs->bv", C, state).real + skip * inputs, state


def ssm_final_state(log_A_bar: torch.Tensor, B_bar: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    r"""The state of `ssm_step` after a whole sequence, in closed form: `x_{N−1} = B̄ Σ_s Ā^{N−1−s} w_s v_s`.

    Args:
        log_A_bar: `[V, S]` complex, `log Ā = Δ A` (the powers are `exp(log Ā · age)`).
        B_bar: `[V, S]` complex.
        inputs: `[B, N, V]` float, `w_s v_s`.

    Returns:
        `[B, V, S]` complex.
    """
    length = inputs.shape[1]
    ages = torch.arange(length - 1, -1, -1, device=inputs.device, dtype=torch.float32)  # N − 1 − s
    powers = torch.exp(log_A_bar.unsqueeze(-1) * ages)  # Ā^{N−1−s} [V, S, N]
    return B_bar * torch.einsum("vsn,bnv->bvs", powers, inputs.to(powers.dtype))


def window_softmax_transform(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    window: int,
) -> torch.Tensor:
    r"""Sliding-window softmax attention (Longformer, Mistral): the softmax kernel restricted to a band,

        y_i = Σ_{j ∈ W(i)} K_ij v_j,    K_ij = exp(q_i·k_j/√D) / Σ_{j' ∈ W(i)} exp(q_i·k_j'/√D),
        W(i) = {j : 0 ≤ i − j < W} (causal) or {j : |i − j| < W},   real keys only (`w_j ≠ 0`),

    in O(N·W) time and memory, by blocks of `W` queries. A query with no allowed key returns exactly 0.

    Steps:
        1. pad the sequence to a multiple of `W` and cut it into `nb` blocks of `W` queries;
        2. the keys of block `b` are blocks `b − 1, b` (causal) or `b − 1, b, b + 1`: every `j` with `|i − j| < W`;
        3. the allowed pairs of each block, `[B, nb, W, 2W or 3W]`, from the offsets `i − j`, the window and the mask;
           rows with no allowed key opened up (the fused softmax never sees an all `−∞` row) and remembered;
        4. SDPA per block, rows with no allowed key set to 0, the padding cut.

    Args:
        query, key: `[B, H, N, D]`.
        value: `[B, H, N, E]`.
        mask: optional `[B, N]` quadrature weights (0 for padding).
        causal: restrict to `j ≤ i`.
        window: `W ≥ 1`.

    Returns:
        `[B, H, N, E]`.
    """
    batch, heads, length, _ = query.shape
    if window < 1:
        raise ValueError(f"`window` must be at least 1, got {window}.")
    # 1. blocks of W queries
    blocks = -(-length // window)
    pad = blocks * window - length
    q, k, v = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (query, key, value))
    q = q.view(batch, heads, blocks, window, -1)
    # 2. keys of the neighbouring blocks
    sides = (1, 0) if causal else (1, 1)
    k, v = (torch.nn.functional.pad(t, (0, 0, window * sides[0], window * sides[1])) for t in (k, v))
    span = window * (1 + sum(sides))
    k, v = (t.unfold(2, span, window).transpose(-1, -2) for t in (k, v))  # [B, H, nb, span, ·]
    # 3. allowed pairs by offset
    query_index = torch.arange(blocks * window, device=query.device).view(blocks, window, 1)
    key_index = query_index[:, :1] - window * sides[0] + torch.arange(span, device=query.device).view(1, 1, span)
    weights = torch.ones(batch, length, device=query.device) if mask is None else mask
    real = torch.nn.functional.pad(weights != 0, (window * sides[0], pad + window * sides[1]))
    real = real.unfold(1, span, window)  # [B, nb, span]
    offset = query_index - key_index  # [nb, W, span]
    allowed = (offset >= 0) & (offset < window) if causal else offset.abs() < window
    allowed = allowed[None] & real[:, :, None, :]  # [B, nb, W, span]
    has_key = allowed.any(dim=-1, keepdim=True)
    allowed = allowed | ~has_key
    # 4. attention per block
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])
    out = out * has_key[:, None].to(out.dtype)
    return out.reshape(batch, heads, blocks * window, -1)[:, :, :length]


def window_softmax_transform_naive(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    window: int,
) -> torch.Tensor:
    r"""Reference for `window_softmax_transform`: the explicit `[N, N]` banded kernel.

    Steps:
        1. scores `s_ij = q_i·k_j / √D`;
        2. `−∞` outside the window (`0 ≤ i − j < W` causal, `|i − j| < W`) and where `w_j = 0`;
        3. `K_ij = softmax_j(s_ij)`, rows with no allowed key set to 0;
        4. `y_i = Σ_j K_ij v_j`.
    """
    length = query.shape[2]
    # 1. scores
    scores = (query @ key.transpose(-1, -2)) * query.shape[-1] ** -0.5
    # 2. the band and the padding
    offset = torch.arange(length, device=query.device)[:, None] - torch.arange(length, device=query.device)[None]
    allowed = ((offset >= 0) & (offset < window) if causal else offset.abs() < window)[None, None]
    if mask is not None:
        allowed = allowed & (mask != 0)[:, None, None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    # 3. kernel, empty rows 0
    kernel = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)
    # 4. transform
    return kernel @ value


__all__ = [
    "causal_kernel_layout",
    "causal_offset_mask",
    "decay_low_rank_recurrent_naive",
    "decay_low_rank_step",
    "decay_low_rank_transform",
    "decay_low_rank_transform_naive",
    "decayed_kernel",
    "decayed_kernel_naive",
    "elu_plus_one",
    "fourier_bias",
    "fourier_features",
    "grid_offsets",
    "local_conv",
    "local_conv_step",
    "local_window_kernel",
    "low_rank_final_state",
    "low_rank_step",
    "low_rank_transform",
    "low_rank_transform_naive",
    "mlp_kernel_step",
    "mlp_kernel_transform",
    "mlp_kernel_transform_naive",
    "monte_carlo_sample",
    "monte_carlo_transform",
    "relative_position_bias",
    "s4d_discretize",
    "softmax_fourier_transform",
    "softmax_fourier_transform_naive",
    "softmax_step",
    "softmax_transform",
    "softmax_transform_naive",
    "spectral_conv",
    "spectral_conv_naive",
    "ssm_final_state",
    "ssm_kernel",
    "ssm_step",
    "ssm_transform",
    "ssm_transform_naive",
    "stationary_kernel_step",
    "window_softmax_transform",
    "window_softmax_transform_naive",
]
