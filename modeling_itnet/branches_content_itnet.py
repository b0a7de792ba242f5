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
"""The content kernel families, which also run at irregular positions (point clouds): `low_rank`, `softmax` and
`mlp`. The interface and the registry are in `branches_itnet.py`."""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .branches_grid_itnet import ITNetSpectralKernel
from .branches_itnet import (
    BranchState,
    ITNetBranch,
    ITNetMixerOptions,
    _merge_heads,
    _split_heads,
    grid_positions,
    kernel_linear,
    register_family,
    segment_spans,
)
from .compat_itnet import ACT2FN
from .kernels_itnet import (
    elu_plus_one,
    fourier_bias,
    fourier_features,
    low_rank_final_state,
    low_rank_step,
    low_rank_transform,
    mlp_kernel_step,
    mlp_kernel_transform,
    monte_carlo_transform,
    relative_position_bias,
    softmax_fourier_transform,
    softmax_step,
    softmax_transform,
)


@dataclass
class LowRankState(BranchState):
    state: torch.Tensor
    """`S = Σ_s w_s ψ(k_s) v_sᵀ` `[B, H, R, E]`."""
    normaliser: torch.Tensor
    """`z = Σ_s w_s ψ(k_s)` `[B, H, R]`."""


@register_family
class ITNetLowRankBranch(ITNetBranch):
    r"""Family `"low_rank"`: `K = φ(q_i)·ψ(k_j) / Σ_j' φ(q_i)·ψ(k_j')`, `φ = ψ = elu + 1`, per head
    (`low_rank_transform`); `q, k = W_qk u`.

    Generation state (causal): the sums `S = Σ_s w_s ψ(k_s) v_sᵀ` `[B, H, R, E]` and `z = Σ_s w_s ψ(k_s)`
    `[B, H, R]`; a step adds the new token and reads `y_t = φ(q_t)ᵀ S / φ(q_t)·z` (O(1) in the length).
    """

    family = "low_rank"
    on_points = True
    kernel_formula = "`φ(q_i)·ψ(k_j) / Σ_j' φ(q_i)·ψ(k_j')`, `φ = ψ = elu + 1`, multi-head"
    evaluated_by = "factorised sums; chunked when causal"
    cost = "O(N·R·E)"
    state = "`S = Σ_s ψ(k_s) v_sᵀ`, `z = Σ_s ψ(k_s)`"
    token_cost = "O(1)"
    eps = 1e-6  # the normaliser's floor, as in `low_rank_transform`

    def __init__(self, hidden_size: int, channels: int, num_heads: int, is_causal: bool):
        super().__init__()
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.query_key = nn.Linear(hidden_size, 2 * channels)

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetLowRankBranch":
        return cls(options.hidden_size, options.value_size, options.num_heads, options.is_causal)

    def features(self, hidden_states):
        """`(φ(q), ψ(k))`, each `[B, H, N, R]`."""
        query, key = (_split_heads(t, self.num_heads) for t in self.query_key(hidden_states).chunk(2, dim=-1))
        return elu_plus_one(query), elu_plus_one(key)

    def _transform(self, hidden_states, values, mask):
        """`(out [B, N, V], ψ(k) [B, H, N, R], v [B, H, N, E])`."""
        query, key = self.features(hidden_states)
        heads = _split_heads(values, self.num_heads)
        return _merge_heads(low_rank_transform(query, key, heads, mask, self.is_causal, eps=self.eps)), key, heads

    def forward(self, hidden_states, values, mask, layout):
        return self._transform(hidden_states, values, mask)[0]

    def prefill(self, hidden_states, values, mask, layout):
        self._require_prefill(layout)
        out, key, heads = self._transform(hidden_states, values, mask)
        return out, LowRankState(*low_rank_final_state(key, heads, mask))

    def step(self, hidden_t, value_t, mask_t, state, layout):
        query, key = (t[:, :, 0] for t in self.features(hidden_t[:, None]))  # [B, H, R]
        heads = value_t.view(value_t.shape[0], self.num_heads, -1)  # [B, H, E]
        out, kv, normaliser = low_rank_step(query, key, heads, state.state, state.normaliser, mask_t, self.eps)
        return out.reshape(value_t.shape), LowRankState(kv, normaliser)


class ITNetFourierBias(nn.Module):
    r"""The softmax family's relative-position bias as a learned Fourier series of the offset (`fourier_bias`),

        b_h(δ) = Σ_r a_hr cos(ω_r·δ) + c_hr sin(ω_r·δ),     r = 1 .. R,

    a bias of rank `2R` that `softmax_fourier_transform` folds into the queries and keys, so attention stays on SDPA's
    fused path (the `"kernel_mlp"` form builds an `[H, N, N]` table instead). Offsets are in grid steps on a grid
    (as T5 and ALiBi measure them; a 1-D offset `δ` is `(0, δ)`) and in coordinate units at irregular positions.

    Initialisation: `a = c = 0` (attention by content alone), the frequency vectors `ω_r` spread over directions
    (half a turn in 2-D, a spiral over the sphere in 3-D) with log-spaced magnitudes: periods of 2 to `max_period`
    grid steps; with `position_dims=3` (point clouds), 1 to `R` cycles per unit as the kernel MLP's Fourier features.

    Args:
        num_heads: `H`.
        num_frequencies: `R`.
        position_dims: `P`, coordinates of the offsets (2: grids; 3: point clouds).
    """

    max_period = 1024.0

    def __init__(self, num_heads: int, num_frequencies: int, position_dims: int = 2):
        super().__init__()
        if position_dims not in (2, 3):
            raise ValueError(f"`position_dims` must be 2 (grids) or 3 (point clouds), got {position_dims}.")
        self.frequencies = nn.Parameter(torch.empty(num_frequencies, position_dims))
        self.cos_weight = nn.Parameter(torch.zeros(num_heads, num_frequencies))
        self.sin_weight = nn.Parameter(torch.zeros(num_heads, num_frequencies))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        count, dims = self.frequencies.shape
        r = torch.arange(count, dtype=torch.float32) + 0.5
        if dims == 3:  # point clouds: 1 .. R cycles per unit, directions on a golden spiral
            magnitudes = 2 * math.pi * torch.logspace(0.0, math.log10(max(count, 1)), count)
            z = 1 - 2 * r / count
            azimuth = r * math.pi * (3 - math.sqrt(5))
            directions = torch.stack([(1 - z**2).sqrt() * azimuth.cos(), (1 - z**2).sqrt() * azimuth.sin(), z], -1)
        else:  # grids: periods 2 .. max_period steps, directions over half a turn (none orthogonal to a 1-D axis)
            magnitudes = 2 * math.pi / torch.logspace(math.log10(2.0), math.log10(self.max_period), count)
            angle = math.pi * r / count
            directions = torch.stack([angle.cos(), angle.sin()], -1)
        self.frequencies.copy_(magnitudes[:, None] * directions)
        self.cos_weight.zero_()
        self.sin_weight.zero_()

    def forward(self, offsets: torch.Tensor) -> torch.Tensor:
        """`b(δ)` `[..., H]` at the offsets `δ` `[..., n]` (`n ≤ P`; fewer axes are the leading ones zero)."""
        offsets = nn.functional.pad(offsets, (self.frequencies.shape[1] - offsets.shape[-1], 0))
        return fourier_bias(offsets, self.frequencies, self.cos_weight, self.sin_weight)

    def positions(self, grid_shape, device) -> torch.Tensor:
        """The grid's points in raster order, in steps, padded to `P` coordinates: `[N, P]`."""
        points = grid_positions(grid_shape, (1.0,) * len(grid_shape), 1, device)[0]
        return nn.functional.pad(points, (self.frequencies.shape[1] - points.shape[-1], 0))


@dataclass
class SoftmaxState(BranchState):
    key: torch.Tensor
    """The past keys `[B, H, T, E]`."""
    value: torch.Tensor
    """The past values `[B, H, T, E]`."""
    weight: torch.Tensor
    """The past quadrature weights `[B, T]`."""


@register_family
class ITNetSoftmaxBranch(ITNetBranch):
    r"""Family `"softmax"`: `K = softmax_j(q_i·k_j / √d + b(x_i − x_j))`, multi-head attention through the fused
    `scaled_dot_product_attention` (`softmax_transform`). The optional relative-position bias `b` is a stationary
    kernel over offsets, one value per head: with `bias_form="kernel_mlp"` generated like the spectral kernel (so any
    grid size works, and 3-D point offsets with `position_dims=3`) and added to the scores as an `[H, N, N]` table;
    with `bias_form="fourier"` a learned Fourier series of the offset (`ITNetFourierBias`), folded into the queries
    and keys so that attention stays fused (`softmax_fourier_transform`; within each modality's grid when there are
    several, as the table form: there it is built as a block-diagonal table). Either form has `R = bias_frequencies`
    frequencies (`kernel_num_frequencies` when None); the fused form costs attention over `D + 2R` features per head.

    Generation state (causal, 1-D): the keys and values `[B, H, T, E]` and the quadrature weights `[B, T]` of the
    past tokens; a step scores the new query against them, with the bias row `b(t − s)`, `s = 0 .. t`.
    """

    family = "softmax"
    on_points = True
    kernel_formula = "`softmax_j(q_i·k_j/√d + b(x_i − x_j))`, optional relative-position bias `b` from a kernel MLP"
    evaluated_by = "fused `scaled_dot_product_attention`"
    cost = "O(N²) time"
    state = "past keys and values (and the bias row `b(t − s)`)"
    token_cost = "O(t)"
    config_fields: ClassVar[dict[str, object]] = {"softmax_bias_form": "kernel_mlp", "softmax_bias_frequencies": None}

    def __init__(
        self,
        hidden_size,
        channels,
        num_heads,
        is_causal,
        relative_bias,
        num_frequencies,
        kernel_mlp_size,
        activation,
        position_dims=2,
        bias_form="kernel_mlp",
        bias_frequencies=None,
    ):
        super().__init__()
        if bias_form not in ("kernel_mlp", "fourier"):
            raise ValueError(f"`bias_form` must be 'kernel_mlp' or 'fourier', got {bias_form!r}.")
        if bias_frequencies is not None and (not isinstance(bias_frequencies, int) or bias_frequencies <= 0):
            raise ValueError(f"`bias_frequencies` must be a positive integer or None, got {bias_frequencies!r}.")
        self.num_heads = num_heads
        self.is_causal = is_causal
        num_frequencies = num_frequencies if bias_frequencies is None else bias_frequencies
        self.num_frequencies = num_frequencies
        self.query_key = nn.Linear(hidden_size, 2 * channels)
        self.bias_kernel = self.fourier_bias = None
        if relative_bias and bias_form == "kernel_mlp":
            self.bias_kernel = ITNetSpectralKernel(
                num_heads, num_frequencies, kernel_mlp_size, activation, num_axes=position_dims
            )
        elif relative_bias:
            self.fourier_bias = ITNetFourierBias(num_heads, num_frequencies, position_dims)

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetSoftmaxBranch":
        return cls(
            options.hidden_size, options.value_size, options.num_heads, options.is_causal,
            options.softmax_relative_bias, options.num_frequencies, options.kernel_mlp_size, options.activation,
            options.position_dims,
            options.family_options.get("softmax_bias_form", cls.config_fields["softmax_bias_form"]),
            options.family_options.get("softmax_bias_frequencies", cls.config_fields["softmax_bias_frequencies"]),
        )  # fmt: skip

    def relative_bias(self, grid_shape, length_scale, positions, segments, device) -> torch.Tensor:
        """`b(x_i − x_j)` on `device`: `[H, N, N]` on a grid; block-diagonal `[H, N, N]` over `segments` (one grid per
        modality, 0 between modalities: cross-modal pairs are scored by content alone); `[B, H, N, N]` at irregular
        `positions` `[B, N, P]` (offsets in coordinate units, Fourier features up to `num_frequencies` cycles)."""
        if grid_shape is not None and self.fourier_bias is not None:
            positions = self.fourier_bias.positions(grid_shape, device)
            return self.fourier_bias(positions[:, None] - positions[None]).movedim(-1, 0)
        if grid_shape is not None:
            table = self.bias_kernel.on_grid(grid_shape, length_scale, device)
            return relative_position_bias(table.movedim(-1, 0), grid_shape)
        if segments is not None:
            spans = segment_spans(segments)
            length = spans[-1][1]
            blocks = [self.relative_bias(grid, scale, None, None, device) for _, _, grid, scale in spans]
            bias = blocks[0].new_zeros(self.num_heads, length, length)
            for (start, end, _, _), block in zip(spans, blocks):
                bias[:, start:end, start:end] = block
            return bias
        offsets = (positions[:, :, None] - positions[:, None]).float()  # [B, N, N, P]
        if self.fourier_bias is not None:
            return self.fourier_bias(offsets).permute(0, 3, 1, 2)
        table = self.bias_kernel(offsets, (1.0,) * offsets.shape[-1], max_frequency=float(self.num_frequencies))
        return table.permute(0, 3, 1, 2)

    def _transform(self, hidden_states, values, mask, layout):
        """`(out [B, N, V], k [B, H, N, E], v [B, H, N, E])`."""
        query, key = (_split_heads(t, self.num_heads) for t in self.query_key(hidden_states).chunk(2, dim=-1))
        heads = _split_heads(values, self.num_heads)
        if self.fourier_bias is not None and layout.segments is None:  # fused: the bias folded into q and k
            bias = self.fourier_bias
            positions = bias.positions(layout.grid_shape, query.device) if layout.grid_shape else layout.positions
            out = softmax_fourier_transform(
                query, key, heads, positions, bias.frequencies, bias.cos_weight, bias.sin_weight, mask, self.is_causal
            )
            return _merge_heads(out), key, heads
        bias = None
        if self.bias_kernel is not None or self.fourier_bias is not None:
            bias = self.relative_bias(
                layout.grid_shape, layout.length_scale, layout.positions, layout.segments, query.device
            )
            bias = bias.to(query.dtype)
        return _merge_heads(softmax_transform(query, key, heads, mask, self.is_causal, bias)), key, heads

    def forward(self, hidden_states, values, mask, layout):
        return self._transform(hidden_states, values, mask, layout)[0]

    def prefill(self, hidden_states, values, mask, layout):
        self._require_prefill(layout)
        out, key, heads = self._transform(hidden_states, values, mask, layout)
        weight = torch.ones(key.shape[0], key.shape[2], device=key.device) if mask is None else mask.float()
        return out, SoftmaxState(key, heads, weight)

    def step(self, hidden_t, value_t, mask_t, state, layout):
        """One token: `y_t = Σ_s softmax_s(q_t·k_s/√E + b(t − s)) v_s` over the real past keys and itself (0 if it
        has none)."""
        query, key = (t.view(t.shape[0], self.num_heads, 1, -1) for t in self.query_key(hidden_t).chunk(2, dim=-1))
        keys = torch.cat([state.key, key], dim=2)  # [B, H, t + 1, E]
        heads = torch.cat([state.value, value_t.view(value_t.shape[0], self.num_heads, 1, -1)], dim=2)
        weight = torch.cat([state.weight, mask_t[:, None].float()], dim=1)  # [B, t + 1]
        bias = None
        if self.bias_kernel is not None or self.fourier_bias is not None:
            t = keys.shape[2] - 1
            offsets = torch.arange(t, -1, -1, device=keys.device, dtype=torch.float32)[:, None]  # t − s
            if self.fourier_bias is not None:
                bias = self.fourier_bias(offsets).T  # [H, t + 1]
            else:
                bias = self.bias_kernel(offsets, layout.length_scale).T
        out = softmax_step(query, keys, heads, weight, bias)
        return out.reshape(value_t.shape), SoftmaxState(keys, heads, weight)


@dataclass
class MLPKernelState(BranchState):
    positions: torch.Tensor
    """The past positions `[B, T, 3]`."""
    right: torch.Tensor
    """The past key-side features `b(u_s)` `[B, T, A]`."""
    value: torch.Tensor
    """The past values `[B, H, T, E]`."""
    weight: torch.Tensor
    """The past quadrature weights `[B, T]`."""


@register_family
class ITNetMLPKernelBranch(ITNetBranch):
    r"""Family `"mlp"`: the unconstrained operator, `K_h = MLP_θ([γ(x_i − x_j), a(u_i), b(u_j)])_h` per head,

        y_i = (1/Z_i) Σ_j w_j K(x_i, x_j, u_i, u_j) v_j,     Z_i = Σ_j w_j,

    evaluated by tiled kernel fusion (`mlp_kernel_transform`, exact, O(N²·h) time, O(N·tile·h) memory) or, with
    `num_samples = M > 0`, by importance-weighted Monte Carlo (`monte_carlo_transform`, O(N·M·h), unbiased) from
    a learned proposal `q(j) ∝ exp(s(u_j))`. In eval mode the Monte Carlo draws come from a generator seeded with
    `seed`, so the same inputs give the same outputs; in training they come from torch's global generator
    (reproducible with `set_seed`). Positions are any real coordinates (3-D points too): offsets are padded to
    three coordinates before their Fourier features.

    Generation state (causal, exact kernel only): the past tokens' positions `[B, T, 3]`, key-side features
    `b(u_s)` `[B, T, A]`, values `[B, H, T, E]` and quadrature weights `[B, T]`; a step evaluates `K` between the
    new query and every cached key, O(T·h). The Monte Carlo estimate draws a new sample set for every call, so it
    has no cached form that equals the full forward: it raises.
    """

    family = "mlp"
    on_points = True
    relaxable = False
    kernel_formula = "`MLP_θ([γ(x_i − x_j), a(u_i), b(u_j)])_h`, the unconstrained operator, normalised by `Σ_j w_j`"
    evaluated_by = "tiled kernel fusion (tiles recomputed in backward), or importance-weighted Monte Carlo with `mlp_kernel_samples = M`"
    cost = "O(N²·h) time, O(N·tile·h) memory; O(N·M·h)"
    state = "past positions, key-side features and values (exact kernel only)"
    token_cost = "O(t·h)"
    POSITION_DIMS = 3

    def __init__(
        self,
        hidden_size,
        num_heads,
        is_causal,
        num_frequencies,
        kernel_mlp_size,
        activation,
        num_samples,
        tile_size,
        spectral_norm,
        seed=0,
    ):
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

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetMLPKernelBranch":
        return cls(
            options.hidden_size, options.num_heads, options.is_causal, options.num_frequencies,
            options.kernel_mlp_size, options.activation, options.mlp_kernel_samples, options.mlp_kernel_tile_size,
            options.kernel_spectral_norm,
        )  # fmt: skip

    def kernel_fn(self, offsets, left_i, right_j):
        features = fourier_features(offsets, self.num_frequencies, max_frequency=float(self.num_frequencies))
        hidden = kernel_linear(self.position, features.to(left_i.dtype), self.spectral_norm) + left_i + right_j
        return kernel_linear(self.out, self.act(hidden), self.spectral_norm)

    def _require_exact(self):
        if self.num_samples > 0:
            raise ValueError(
                f"The Monte Carlo 'mlp' kernel (`mlp_kernel_samples={self.num_samples}`) draws new samples at every "
                "call, so cached generation cannot equal the full forward; generate with `mlp_kernel_samples=0` (the "
                "exact tiled kernel)."
            )

    def _transform(self, hidden_states, values, mask, layout):
        """`(out [B, N, V], positions [B, N, 3], b(u) [B, N, A], v [B, H, N, E])`."""
        positions = layout.positions
        if positions is None:
            positions = grid_positions(
                layout.grid_shape, layout.length_scale, hidden_states.shape[0], hidden_states.device
            )
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
                positions,
                left,
                right,
                v,
                self.kernel_fn,
                log_proposal,
                self.num_samples,
                mask,
                self.is_causal,
                generator,
            )
        return _merge_heads(out), positions, right, v

    def forward(self, hidden_states, values, mask, layout):
        return self._transform(hidden_states, values, mask, layout)[0]

    def prefill(self, hidden_states, values, mask, layout):
        self._require_prefill(layout)
        self._require_exact()
        out, positions, right, v = self._transform(hidden_states, values, mask, layout)
        weight = v.new_ones(v.shape[0], v.shape[2]) if mask is None else mask.to(v.dtype)
        return out, MLPKernelState(positions, right, v, weight)

    def step(self, hidden_t, value_t, mask_t, state, layout):
        """One token: `y_t = Σ_{s≤t} w_s K(x_t − x_s, a(u_t), b(u_s)) v_s / Σ_{s≤t} w_s` at `x_t = t / length_scale`."""
        self._require_exact()
        t = state.positions.shape[1]
        position = torch.arange(t, t + 1, device=hidden_t.device, dtype=torch.float32) / layout.length_scale[0]
        position = nn.functional.pad(position.expand(hidden_t.shape[0], 1, 1), (0, self.POSITION_DIMS - 1))
        positions = torch.cat([state.positions, position], dim=1)  # [B, t + 1, 3]
        right = torch.cat([state.right, kernel_linear(self.right, hidden_t[:, None], self.spectral_norm)], dim=1)
        v = torch.cat([state.value, value_t.view(value_t.shape[0], self.num_heads, 1, -1)], dim=2)
        weight = torch.cat([state.weight, mask_t[:, None].to(v.dtype)], dim=1)  # [B, t + 1]
        left = kernel_linear(self.left, hidden_t[:, None, None], self.spectral_norm)  # [B, 1, 1, A]
        K = self.kernel_fn(position[:, :, None] - positions[:, None], left, right[:, None])[:, 0].to(v.dtype)
        out = mlp_kernel_step(K, weight, v)
        return out.reshape(value_t.shape), MLPKernelState(positions, right, v, weight)


__all__ = ["ITNetFourierBias", "ITNetLowRankBranch", "ITNetMLPKernelBranch", "ITNetSoftmaxBranch"]
