r"""ITNet's modules: the kernel generators, the Integral Transform mixer and the modality encoders.

Modules here take explicit arguments (no config) so they can be used and tested on their own. The mixer computes

    y_i = W_o Σ_f g_f(u_i) ⊙ Σ_j w_j · K_f(x_i, x_j, u_i, u_j) · v_j,        v_j = W_v u_j

over the kernel families `f` it is built with, `g_f(u_i) = σ(W_g,f u_i)` a per-token, per-channel gate that
switches between the families (the paper's switch between local and global integration).
"""

import torch
from torch import nn
from transformers.activations import ACT2FN

from .kernels_itnet import (
    causal_kernel_layout,
    decay_low_rank_transform,
    fourier_features,
    grid_offsets,
    local_conv,
    low_rank_transform,
    mlp_kernel_transform,
    monte_carlo_transform,
    relative_position_bias,
    softmax_transform,
    spectral_conv,
    ssm_kernel,
)


def kernel_linear(layer: nn.Linear, inputs: torch.Tensor, spectral_norm: bool) -> torch.Tensor:
    """`layer(inputs)`, with the weight divided by its largest singular value when `spectral_norm` (the paper's
    stability measure for kernel MLPs: each layer is then 1-Lipschitz). Exact SVD of the small kernel weights, no
    power-iteration buffers."""
    weight = layer.weight
    if spectral_norm:
        weight = weight / torch.linalg.matrix_norm(weight.float(), ord=2).to(weight.dtype)
    return nn.functional.linear(inputs, weight, layer.bias)


class ITNetSpectralKernel(nn.Module):
    r"""Generates a stationary kernel on a grid: one value per channel `d` for every offset `δ`,

        k_θ(δ)_d = MLP_θ(γ(δ / s))_d · exp(−r_d ‖δ‖),     r_d = exp(log_decay_d) > 0,

    `γ` the Fourier features of the offset in units of the length scale `s`. The learnable decay `r_d` makes a
    channel local (large `r_d`, a short window like a convolution) or global (small `r_d`). One MLP serves 1-D and
    2-D grids: a 1-D offset `δ` is the 2-D offset `(0, δ)`.

    Args:
        channels: `D`, kernels produced (depthwise).
        num_frequencies: Fourier frequencies per coordinate.
        hidden_size: width of the kernel MLP.
        activation: name of the MLP's activation in `transformers.activations.ACT2FN`.
        spectral_norm: divide each MLP weight by its largest singular value (see `kernel_linear`).
    """

    def __init__(
        self, channels: int, num_frequencies: int, hidden_size: int, activation: str = "gelu", spectral_norm: bool = False
    ):
        super().__init__()
        self.num_frequencies = num_frequencies
        self.spectral_norm = spectral_norm
        self.fc1 = nn.Linear(2 * 2 * num_frequencies, hidden_size)
        self.act = ACT2FN[activation]
        self.fc2 = nn.Linear(hidden_size, channels)
        self.log_decay = nn.Parameter(torch.zeros(channels))

    def forward(self, grid_shape: tuple[int, ...], length_scale: tuple[float, ...]) -> torch.Tensor:
        """Returns the kernel `[*(2g − 1), D]` for a grid of shape `grid_shape` (one or two axes)."""
        offsets = grid_offsets(grid_shape, device=self.fc1.weight.device)  # [*(2g-1), n]
        coords = offsets / offsets.new_tensor(length_scale)
        if len(grid_shape) == 1:
            coords = torch.cat([torch.zeros_like(coords), coords], dim=-1)
        features = fourier_features(coords, self.num_frequencies, max_frequency=max(length_scale) / 2)
        hidden = self.act(kernel_linear(self.fc1, features.to(self.fc1.weight.dtype), self.spectral_norm))
        kernel = kernel_linear(self.fc2, hidden, self.spectral_norm)
        window = torch.exp(-self.log_decay.exp() * offsets.norm(dim=-1, keepdim=True))
        return kernel * window.to(kernel.dtype)


def _require_grid(family: str, grid_shape):
    if grid_shape is None:
        raise ValueError(
            f"The {family!r} kernel family needs a 1-D or 2-D grid; irregular positions (e.g. point clouds) use the "
            "'low_rank', 'softmax', 'mlp' or 'recurrent' families."
        )


class ITNetSpectralBranch(nn.Module):
    """Family `"spectral"`: `K = k_θ(x_i − x_j)` from `ITNetSpectralKernel`, applied by FFT (`spectral_conv`)."""

    def __init__(self, channels, num_frequencies, kernel_mlp_size, activation, is_causal, spectral_norm=False):
        super().__init__()
        self.is_causal = is_causal
        self.kernel = ITNetSpectralKernel(channels, num_frequencies, kernel_mlp_size, activation, spectral_norm)

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None):
        _require_grid("spectral", grid_shape)
        batch, length, channels = values.shape
        kernel = self.kernel(grid_shape, length_scale)
        grid_mask = None if mask is None else mask.view(batch, *grid_shape)
        out = spectral_conv(values.view(batch, *grid_shape, channels), kernel, grid_mask, self.is_causal)
        return out.reshape(batch, length, channels)


class ITNetLocalBranch(nn.Module):
    r"""Family `"local"`: a stationary kernel on a `W x W` window of offsets, one learned value per offset and channel
    (the paper's local projections; a depthwise convolution), evaluated directly by `local_conv`.

    Offsets `δ = x_i − x_j` span `[−(W // 2), (W − 1) // 2]` on each axis, the taps of a `padding="same"`
    convolution; causal, the row offsets (the only axis in 1-D) span `[0, W − 1]` and look-ahead offsets are
    zeroed. A 1-D sequence uses the table's
    row of offset `δ_h = 0`, so text and images share one table.
    """

    def __init__(self, channels: int, window: int, is_causal: bool):
        super().__init__()
        self.is_causal = is_causal
        self.window = window
        self.table = nn.Parameter(torch.zeros(window, window, channels))

    def lows(self, num_axes: int) -> tuple[int, ...]:
        """Smallest offset of the window on each axis."""
        same = -(self.window // 2)
        return (0 if self.is_causal else same,) + (same,) * (num_axes - 1)

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None):
        _require_grid("local", grid_shape)
        batch, length, channels = values.shape
        lows = self.lows(len(grid_shape))
        table = self.table if len(grid_shape) == 2 else self.table[-self.lows(2)[0]]  # the row δ_h = 0
        grid_mask = None if mask is None else mask.view(batch, *grid_shape)
        out = local_conv(values.view(batch, *grid_shape, channels), table, lows, grid_mask, self.is_causal)
        return out.reshape(batch, length, channels)


class ITNetLowRankBranch(nn.Module):
    r"""Family `"low_rank"`: `K = φ(q_i)·ψ(k_j) / Σ_j' φ(q_i)·ψ(k_j')`, `φ = ψ = elu + 1`, per head
    (`low_rank_transform`); `q, k = W_qk u`."""

    def __init__(self, hidden_size: int, channels: int, num_heads: int, is_causal: bool):
        super().__init__()
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.query_key = nn.Linear(hidden_size, 2 * channels)

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None):
        batch, length, channels = values.shape
        query, key = self.query_key(hidden_states).chunk(2, dim=-1)
        query, key, heads = (t.view(batch, length, self.num_heads, -1).transpose(1, 2) for t in (query, key, values))
        query, key = nn.functional.elu(query) + 1, nn.functional.elu(key) + 1
        out = low_rank_transform(query, key, heads, mask, self.is_causal)
        return out.transpose(1, 2).reshape(batch, length, channels)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """`[B, N, H·E] → [B, H, N, E]`."""
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """`[B, H, N, E] → [B, N, H·E]`."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


class ITNetSoftmaxBranch(nn.Module):
    r"""Family `"softmax"`: `K = softmax_j(q_i·k_j / √d + b(x_i − x_j))`, multi-head attention through the fused
    `scaled_dot_product_attention` (`softmax_transform`). The optional relative-position bias `b` is a stationary
    kernel over grid offsets, one value per head, generated like the spectral kernel (so any grid size works).
    """

    def __init__(self, hidden_size, channels, num_heads, is_causal, relative_bias, num_frequencies, kernel_mlp_size, activation):
        super().__init__()
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.query_key = nn.Linear(hidden_size, 2 * channels)
        self.bias_kernel = (
            ITNetSpectralKernel(num_heads, num_frequencies, kernel_mlp_size, activation) if relative_bias else None
        )

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None):
        query, key = (_split_heads(t, self.num_heads) for t in self.query_key(hidden_states).chunk(2, dim=-1))
        bias = None
        if self.bias_kernel is not None:
            if grid_shape is None:
                raise ValueError("The softmax family's relative-position bias needs a grid; set `softmax_relative_bias=False` for irregular positions.")
            table = self.bias_kernel(grid_shape, length_scale)  # [*(2g-1), H]
            bias = relative_position_bias(table.movedim(-1, 0), grid_shape)
        out = softmax_transform(query, key, _split_heads(values, self.num_heads), mask, self.is_causal, bias)
        return _merge_heads(out)


class ITNetRecurrentBranch(nn.Module):
    r"""Family `"recurrent"`: a selective state space (Mamba-2 style) as a causal kernel with data-dependent decay,

        K(t, s) = C_tᵀ (Π_{s<τ≤t} a_τ) B̄_s,     a_τ = exp(Δ_τ A),     Δ = softplus(W_Δ u + b_Δ),  A = −exp(A_log)

    per head (scalar decay, state size `R`), `B̄_s = Δ_s B_s` (`discretization="euler"`, as Mamba) or
    `(1 − a_s)/(−A) · B_s` (`"zoh"`, exact zero-order hold), evaluated chunked (`decay_low_rank_transform`).
    Bidirectional, the grid is scanned in raster order forwards and backwards and the two transforms are added
    (the `s = t` term counted once).
    """

    def __init__(self, hidden_size, channels, num_heads, is_causal, state_size, discretization):
        super().__init__()
        if discretization not in ("euler", "zoh"):
            raise ValueError(f"`discretization` must be 'euler' or 'zoh', got {discretization!r}.")
        self.num_heads = num_heads
        self.state_size = state_size
        self.is_causal = is_causal
        self.discretization = discretization
        self.projection = nn.Linear(hidden_size, num_heads * (2 * state_size + 1))  # C, B, Δ per head
        self.A_log = nn.Parameter(torch.zeros(num_heads))
        self.dt_bias = nn.Parameter(torch.zeros(num_heads))

    def coefficients(self, hidden_states):
        """`(C, B̄, log a)`: `[B, H, N, R]`, `[B, H, N, R]`, `[B, H, N]`."""
        batch, length, _ = hidden_states.shape
        projected = self.projection(hidden_states).view(batch, length, self.num_heads, -1).transpose(1, 2)
        C, B, dt = projected.split([self.state_size, self.state_size, 1], dim=-1)
        delta = nn.functional.softplus(dt[..., 0] + self.dt_bias[:, None])
        A = -torch.exp(self.A_log)[:, None]
        log_decay = delta * A
        if self.discretization == "euler":
            B = delta.unsqueeze(-1) * B
        else:
            B = (-torch.expm1(log_decay) / -A).unsqueeze(-1) * B
        return C, B, log_decay

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None):
        C, B, log_decay = self.coefficients(hidden_states)
        v = _split_heads(values, self.num_heads)
        out, _ = decay_low_rank_transform(C, B, v, log_decay, mask)
        if not self.is_causal:
            flip = lambda t: t.flip(2)  # noqa: E731
            backward, _ = decay_low_rank_transform(flip(C), flip(B), flip(v), flip(log_decay), None if mask is None else mask.flip(1))
            diagonal = (C * B).sum(-1, keepdim=True) * v
            if mask is not None:
                diagonal = diagonal * mask[:, None, :, None].to(diagonal.dtype)
            out = out + flip(backward) - diagonal
        return _merge_heads(out)


class ITNetSSMBranch(nn.Module):
    r"""Family `"ssm"`: a diagonal linear time-invariant state space (S4D) per channel, a stationary causal kernel

        k(t) = Re(Σ_n C_n Ā_nᵗ B̄_n) + D·[t = 0],     Ā = exp(Δ A),  B̄ = (Ā − 1)/A · B   (zero-order hold)

    computed then applied by FFT (`ssm_kernel`, `spectral_conv`) along the raster order of the grid. Bidirectional,
    the kernel is mirrored: `k(|δ|)`. `S = state_size // 2` complex modes (conjugate pairs), S4D-Lin initialised.
    """

    def __init__(self, channels, state_size, is_causal):
        super().__init__()
        self.is_causal = is_causal
        modes = max(1, state_size // 2)
        self.log_dt = nn.Parameter(torch.zeros(channels))
        self.A_log = nn.Parameter(torch.zeros(channels, modes))  # Re A = −exp(A_log)
        self.A_imag = nn.Parameter(torch.zeros(channels, modes))
        self.B = nn.Parameter(torch.zeros(channels, modes, 2))  # real and imaginary parts
        self.C = nn.Parameter(torch.zeros(channels, modes, 2))
        self.skip = nn.Parameter(torch.zeros(channels))

    def kernel(self, length: int) -> torch.Tensor:
        """`[length, V]`: `k(t)` for `t = 0 .. length − 1`, the skip `D` at `t = 0`."""
        A = torch.complex(-torch.exp(self.A_log.float()), self.A_imag.float())
        B = torch.view_as_complex(self.B.float().contiguous())
        C = torch.view_as_complex(self.C.float().contiguous())
        kernel = ssm_kernel(A, B, C, length, step=torch.exp(self.log_dt.float()))
        return torch.cat([kernel[:1] + self.skip.float(), kernel[1:]], dim=0)

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None):
        _require_grid("ssm", grid_shape)
        batch, length, channels = values.shape
        kernel = self.kernel(length).to(values.dtype)
        if self.is_causal:
            full = causal_kernel_layout(kernel)
        else:
            full = torch.cat([kernel[1:].flip(0), kernel], dim=0)
        return spectral_conv(values, full, mask, causal=self.is_causal)


class ITNetMLPKernelBranch(nn.Module):
    r"""Family `"mlp"`: the unconstrained operator, `K_h = MLP_θ([γ(x_i − x_j), a(u_i), b(u_j)])_h` per head,

        y_i = (1/Z_i) Σ_j w_j K(x_i, x_j, u_i, u_j) v_j,     Z_i = Σ_j w_j,

    evaluated by tiled kernel fusion (`mlp_kernel_transform`, exact, O(N²·h) time, O(N·tile·h) memory) or, with
    `num_samples = M > 0`, by importance-weighted Monte Carlo (`monte_carlo_transform`, O(N·M·h), unbiased) from
    a learned proposal `q(j) ∝ exp(s(u_j))`. In eval mode the Monte Carlo draws come from a generator seeded with
    `seed`, so the same inputs give the same outputs; in training they come from torch's global generator
    (reproducible with `set_seed`). Positions are any real coordinates (3-D points too): offsets are padded to
    three coordinates before their Fourier features.
    """

    POSITION_DIMS = 3

    def __init__(self, hidden_size, num_heads, is_causal, num_frequencies, kernel_mlp_size, activation, num_samples, tile_size, spectral_norm, seed=0):
        super().__init__()
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.num_frequencies = num_frequencies
        self.num_samples = num_samples
        self.tile_size = tile_size
        self.spectral_norm = spectral_norm
        self.seed = seed
        self.position = nn.Linear(self.POSITION_DIMS * 2 * num_frequencies, kernel_mlp_size)
        self.left = nn.Linear(hidden_size, kernel_mlp_size)
        self.right = nn.Linear(hidden_size, kernel_mlp_size)
        self.act = ACT2FN[activation]
        self.out = nn.Linear(kernel_mlp_size, num_heads)
        self.proposal = nn.Linear(hidden_size, 1) if num_samples > 0 else None

    def kernel_fn(self, offsets, left_i, right_j):
        features = fourier_features(offsets, self.num_frequencies, max_frequency=float(self.num_frequencies))
        hidden = kernel_linear(self.position, features.to(left_i.dtype), self.spectral_norm) + left_i + right_j
        return kernel_linear(self.out, self.act(hidden), self.spectral_norm)

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None):
        if positions is None:
            positions = grid_positions(grid_shape, length_scale, hidden_states.shape[0], hidden_states.device)
        positions = nn.functional.pad(positions.float(), (0, self.POSITION_DIMS - positions.shape[-1]))
        left = kernel_linear(self.left, hidden_states, self.spectral_norm)
        right = kernel_linear(self.right, hidden_states, self.spectral_norm)
        v = _split_heads(values, self.num_heads)
        if self.num_samples == 0:
            out = mlp_kernel_transform(positions, left, right, v, self.kernel_fn, mask, self.is_causal, self.tile_size)
        else:
            generator = None
            if not self.training:
                generator = torch.Generator(device=hidden_states.device).manual_seed(self.seed)
            log_proposal = self.proposal(hidden_states)[..., 0]
            out = monte_carlo_transform(
                positions, left, right, v, self.kernel_fn, log_proposal, self.num_samples, mask, self.is_causal, generator
            )
        return _merge_heads(out)


def grid_positions(grid_shape, length_scale, batch: int, device) -> torch.Tensor:
    """Coordinates of a grid's points in raster order, in units of the length scale: `[B, N, len(grid)]`."""
    axes = [torch.arange(g, device=device, dtype=torch.float32) / s for g, s in zip(grid_shape, length_scale)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(1, -1, len(grid_shape))
    return points.expand(batch, -1, -1)


class ITNetMixer(nn.Module):
    r"""The Integral Transform mixer: a gated sum of kernel families applied to the same values,

        y_i = W_o Σ_f σ(W_g,f u_i) ⊙ T_f(v)_i,        v = W_v u,

    `T_f` the transform of family `f` (one `ITNet*Branch` each, in `self.branches`). Tokens sit on a 1-D or 2-D
    grid (`grid_shape`, raster order) or at irregular `positions` (then only the families that need no grid:
    `low_rank`, `softmax` without relative bias, `mlp`, `recurrent`).

    Args:
        hidden_size: `D`, width of the input `u`.
        num_heads: heads of the content kernels (`value_size` divisible by it).
        kernel_families: the families to mix: `spectral`, `local`, `low_rank`, `softmax`, `recurrent`, `ssm`, `mlp`.
        is_causal: restrict every kernel to `j ≤ i` (raster order on a 2-D grid).
        num_frequencies, kernel_mlp_size, activation: Fourier features and MLP of the generated kernels.
        local_window: side of the `local` family's window.
        softmax_relative_bias: learn a relative-position bias for the `softmax` family.
        state_size: state size of the `recurrent` (per head) and `ssm` (per channel) families.
        recurrent_discretization: `"euler"` (Mamba) or `"zoh"` for the `recurrent` family's input coefficient.
        mlp_kernel_samples: 0 for the exact tiled `mlp` family, `M > 0` for its Monte Carlo estimate.
        mlp_kernel_tile_size: tile side of the tiled `mlp` family.
        kernel_spectral_norm: spectral normalisation of the kernel MLPs.
        value_size: width `V` of the values (default `D`).
        output_size: width of the output (default `D`).
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        kernel_families: list[str],
        is_causal: bool,
        num_frequencies: int = 16,
        kernel_mlp_size: int = 64,
        activation: str = "gelu",
        local_window: int = 3,
        softmax_relative_bias: bool = True,
        state_size: int = 16,
        recurrent_discretization: str = "euler",
        mlp_kernel_samples: int = 0,
        mlp_kernel_tile_size: int = 128,
        kernel_spectral_norm: bool = False,
        value_size: int | None = None,
        output_size: int | None = None,
    ):
        super().__init__()
        value_size = value_size or hidden_size
        self.kernel_families = list(kernel_families)
        self.is_causal = is_causal
        self.value = nn.Linear(hidden_size, value_size)
        builders = {
            "spectral": lambda: ITNetSpectralBranch(
                value_size, num_frequencies, kernel_mlp_size, activation, is_causal, kernel_spectral_norm
            ),
            "local": lambda: ITNetLocalBranch(value_size, local_window, is_causal),
            "low_rank": lambda: ITNetLowRankBranch(hidden_size, value_size, num_heads, is_causal),
            "softmax": lambda: ITNetSoftmaxBranch(
                hidden_size, value_size, num_heads, is_causal, softmax_relative_bias, num_frequencies, kernel_mlp_size, activation
            ),
            "recurrent": lambda: ITNetRecurrentBranch(
                hidden_size, value_size, num_heads, is_causal, state_size, recurrent_discretization
            ),
            "ssm": lambda: ITNetSSMBranch(value_size, state_size, is_causal),
            "mlp": lambda: ITNetMLPKernelBranch(
                hidden_size, num_heads, is_causal, num_frequencies, kernel_mlp_size, activation,
                mlp_kernel_samples, mlp_kernel_tile_size, kernel_spectral_norm,
            ),
        }
        unknown = [f for f in self.kernel_families if f not in builders]
        if unknown:
            raise ValueError(f"`kernel_families` contains unknown families {unknown}; expected some of {list(builders)}.")
        self.branches = nn.ModuleDict({family: builders[family]() for family in self.kernel_families})
        self.gate = nn.Linear(hidden_size, len(self.kernel_families) * value_size)
        self.output = nn.Linear(value_size, output_size or hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        grid_shape: tuple[int, ...] | None,
        length_scale: tuple[float, ...] | None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`hidden_states` `[B, N, D]`; `mask` `[B, N]` or None; either `grid_shape` with `N = prod(grid_shape)` in
        raster order (and its `length_scale`), or irregular `positions` `[B, N, P]`."""
        batch, length, _ = hidden_states.shape
        values = self.value(hidden_states)
        gates = torch.sigmoid(self.gate(hidden_states)).view(batch, length, len(self.branches), -1)
        mixed = sum(
            gates[:, :, f] * branch(hidden_states, values, mask, grid_shape, length_scale, positions)
            for f, branch in enumerate(self.branches.values())
        )
        return self.output(mixed)


class ITNetFeedForward(nn.Module):
    """Position-wise feed-forward network `W_2 act(W_1 u)`: `[B, N, D] → [B, N, D]`."""

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str = "gelu"):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.act = ACT2FN[activation]
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class ITNetTextEmbeddings(nn.Module):
    """Token embeddings: `input_ids [B, N] → [B, N, D]`. Positions enter through the relative kernels only."""

    def __init__(self, vocab_size: int, hidden_size: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)


class ITNetPatchEmbeddings(nn.Module):
    """Non-overlapping patches: `pixel_values [B, C, H, W] → [B, H/p, W/p, D]` (a 2-D grid of tokens)."""

    def __init__(self, num_channels: int, hidden_size: int, patch_size: int):
        super().__init__()
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.projection = nn.Conv2d(num_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.num_channels:
            raise ValueError(
                f"`pixel_values` must have shape [batch, {self.num_channels}, height, width], "
                f"got {list(pixel_values.shape)}."
            )
        height, width = pixel_values.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"`pixel_values` height and width must be multiples of patch_size={self.patch_size}, "
                f"got {height}x{width}."
            )
        return self.projection(pixel_values).permute(0, 2, 3, 1)


__all__ = [
    "ITNetFeedForward",
    "ITNetLocalBranch",
    "ITNetLowRankBranch",
    "ITNetMLPKernelBranch",
    "ITNetMixer",
    "ITNetPatchEmbeddings",
    "ITNetRecurrentBranch",
    "ITNetSSMBranch",
    "ITNetSoftmaxBranch",
    "ITNetSpectralBranch",
    "ITNetSpectralKernel",
    "ITNetTextEmbeddings",
    "grid_positions",
    "kernel_linear",
]
