r"""ITNet's modules: the kernel generators, the Integral Transform mixer and the modality encoders.

Modules here take explicit arguments (no config) so they can be used and tested on their own. The mixer computes

    y_i = W_o Σ_f g_f(u_i) ⊙ Σ_j w_j · K_f(x_i, x_j, u_i, u_j) · v_j,        v_j = W_v u_j

over the kernel families `f` it is built with, `g_f(u_i) = σ(W_g,f u_i)` a per-token, per-channel gate that
switches between the families (the paper's switch between local and global integration).
"""

import torch
from torch import nn
from transformers.activations import ACT2FN

from .kernels_itnet import fourier_features, grid_offsets, local_conv, low_rank_transform, spectral_conv


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
    """

    def __init__(self, channels: int, num_frequencies: int, hidden_size: int, activation: str = "gelu"):
        super().__init__()
        self.num_frequencies = num_frequencies
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
        kernel = self.fc2(self.act(self.fc1(features.to(self.fc1.weight.dtype))))
        window = torch.exp(-self.log_decay.exp() * offsets.norm(dim=-1, keepdim=True))
        return kernel * window.to(kernel.dtype)


class ITNetSpectralBranch(nn.Module):
    """Family `"spectral"`: `K = k_θ(x_i − x_j)` from `ITNetSpectralKernel`, applied by FFT (`spectral_conv`)."""

    def __init__(self, channels: int, num_frequencies: int, kernel_mlp_size: int, activation: str, is_causal: bool):
        super().__init__()
        self.is_causal = is_causal
        self.kernel = ITNetSpectralKernel(channels, num_frequencies, kernel_mlp_size, activation)

    def forward(self, hidden_states, values, mask, grid_shape, length_scale):
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

    def forward(self, hidden_states, values, mask, grid_shape, length_scale):
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

    def forward(self, hidden_states, values, mask, grid_shape, length_scale):
        batch, length, channels = values.shape
        query, key = self.query_key(hidden_states).chunk(2, dim=-1)
        query, key, heads = (t.view(batch, length, self.num_heads, -1).transpose(1, 2) for t in (query, key, values))
        query, key = nn.functional.elu(query) + 1, nn.functional.elu(key) + 1
        out = low_rank_transform(query, key, heads, mask, self.is_causal)
        return out.transpose(1, 2).reshape(batch, length, channels)


class ITNetMixer(nn.Module):
    r"""The Integral Transform mixer: a gated sum of kernel families applied to the same values,

        y_i = W_o Σ_f σ(W_g,f u_i) ⊙ T_f(v)_i,        v = W_v u,

    `T_f` the transform of family `f` (one `ITNet*Branch` each, in `self.branches`).

    Args:
        hidden_size: `D`, width of the input `u`.
        num_heads: heads of the content kernels (the value width divisible by it).
        kernel_families: the families to mix, from `"spectral"`, `"local"`, `"low_rank"`.
        is_causal: restrict every kernel to `j ≤ i` (raster order on a 2-D grid).
        num_frequencies, kernel_mlp_size, activation: see `ITNetSpectralKernel`.
        local_window: `W`, side of the `"local"` family's window.
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
        value_size: int | None = None,
        output_size: int | None = None,
    ):
        super().__init__()
        value_size = value_size or hidden_size
        self.kernel_families = list(kernel_families)
        self.is_causal = is_causal
        self.value = nn.Linear(hidden_size, value_size)
        branches = {}
        for family in self.kernel_families:
            if family == "spectral":
                branches[family] = ITNetSpectralBranch(value_size, num_frequencies, kernel_mlp_size, activation, is_causal)
            elif family == "local":
                branches[family] = ITNetLocalBranch(value_size, local_window, is_causal)
            elif family == "low_rank":
                branches[family] = ITNetLowRankBranch(hidden_size, value_size, num_heads, is_causal)
            else:
                raise ValueError(f"`kernel_families` contains unknown family {family!r}.")
        self.branches = nn.ModuleDict(branches)
        self.gate = nn.Linear(hidden_size, len(self.kernel_families) * value_size)
        self.output = nn.Linear(value_size, output_size or hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        grid_shape: tuple[int, ...],
        length_scale: tuple[float, ...],
    ) -> torch.Tensor:
        """`hidden_states` `[B, N, D]` with `N = prod(grid_shape)` in raster order; `mask` `[B, N]` or None."""
        batch, length, _ = hidden_states.shape
        values = self.value(hidden_states)
        gates = torch.sigmoid(self.gate(hidden_states)).view(batch, length, len(self.branches), -1)
        mixed = sum(
            gates[:, :, f] * branch(hidden_states, values, mask, grid_shape, length_scale)
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
    "ITNetMixer",
    "ITNetPatchEmbeddings",
    "ITNetSpectralBranch",
    "ITNetSpectralKernel",
    "ITNetTextEmbeddings",
]
