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
r"""ITNet's Integral Transform mixer and feed-forward network.

Modules here take explicit arguments (no config) so they can be used and tested on their own. The mixer computes

    y_i = W_o Σ_f g_f(u_i) ⊙ Σ_j w_j · K_f(x_i, x_j, u_i, u_j) · v_j,        v_j = W_v u_j

over the kernel families `f` it is built with (`branches_itnet.FAMILIES`), `g_f(u_i) = σ(W_g,f u_i)` a per-token,
per-channel gate that switches between the families (the paper's switch between local and global integration).
"""

import torch
from torch import nn

# importing the branch modules registers their families (and remote code copies the files it imports this way)
from .branches_content_itnet import ITNetLowRankBranch, ITNetMLPKernelBranch, ITNetSoftmaxBranch  # noqa: F401
from .branches_grid_itnet import ITNetShortConv
from .branches_itnet import FAMILIES, BranchState, ITNetLayout, ITNetMixerOptions, segment_spans, with_weights
from .compat_itnet import ACT2FN


class ITNetGate(nn.Linear):
    """The mixer's gate projection `W_g u_i` `[B, N, D] → [B, N, F·V]` (one gate per family and value channel): a
    `Linear` of its own type so that `_init_weights` can give its bias `config.gate_bias_init`."""


class ITNetMixer(nn.Module):
    r"""The Integral Transform mixer: a gated sum of kernel families applied to the same values,

        y_i = W_o Σ_f g(W_g,f u_i) ⊙ T_f(v)_i,        v = W_v u    (v = act(conv(W_v u)) with a short convolution),

    `g` the gate activation (sigmoid by default),
    `T_f` the transform of family `f` (one `ITNet*Branch` each, in `self.branches`). Tokens sit on

    - one 1-D or 2-D grid (`grid_shape`, raster order): text, or an image's patches;
    - several grids in one sequence (`segments`: image + text, two images + text): the families that need a grid
      (`ITNetBranch.needs_grid`: `spectral`, `local`, `ssm`, `recurrent`) run within each segment, the content
      families (`low_rank`, `softmax`, `mlp`) over the whole sequence, so modalities mix through content; the softmax
      bias is block-diagonal and the mlp kernel sees `segment_positions`;
    - irregular `positions` `[B, N, P]` (point clouds): only the content families, which need no grid and no order.

    Args:
        hidden_size: `D`, width of the input `u`.
        num_heads: heads of the content kernels (`value_size` divisible by it).
        kernel_families: the families to mix, names of the registry `branches_itnet.FAMILIES`.
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
        position_dims: coordinates of the positions the softmax bias takes (2: grids; 3: point clouds too).
        gate_activation: `g`, one of `"sigmoid"`, `"silu"`, `"linear"`.
        short_conv_size: window of an `ITNetShortConv` on the values (0: none); with one, the content families read
            their features (queries, keys, `B`, `C`, `Δ`) from the convolved values instead of `u`.
        recurrent_decay: `"head"` (`ITNetRecurrentBranch`) or `"channel"` (`ITNetSelectiveScanBranch`).
        dt_rank: rank of the `"channel"` recurrence's `Δ` projection.
        family_options: the settings of single families (`ITNetBranch.config_fields`), by config field name (for
            example `{"window_softmax_size": 64}`); a family's own default where absent.
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
        position_dims: int = 2,
        gate_activation: str = "sigmoid",
        short_conv_size: int = 0,
        recurrent_decay: str = "head",
        dt_rank: int = 1,
        family_options: dict | None = None,
    ):
        super().__init__()
        value_size = value_size or hidden_size
        self.kernel_families = list(kernel_families)
        self.is_causal = is_causal
        self.value = nn.Linear(hidden_size, value_size)
        self.short_conv = (
            ITNetShortConv(value_size, short_conv_size, is_causal, activation) if short_conv_size else None
        )
        if recurrent_decay not in ("head", "channel"):
            raise ValueError(f"`recurrent_decay` must be 'head' or 'channel', got {recurrent_decay!r}.")
        unknown = [f for f in self.kernel_families if f not in FAMILIES]
        if unknown:
            raise ValueError(
                f"`kernel_families` contains unknown families {unknown}; expected some of {list(FAMILIES)}."
            )
        options = ITNetMixerOptions(
            hidden_size=value_size if short_conv_size else hidden_size,  # the width the content families read
            value_size=value_size,
            num_heads=num_heads,
            is_causal=is_causal,
            num_frequencies=num_frequencies,
            kernel_mlp_size=kernel_mlp_size,
            activation=activation,
            local_window=local_window,
            softmax_relative_bias=softmax_relative_bias,
            state_size=state_size,
            recurrent_discretization=recurrent_discretization,
            mlp_kernel_samples=mlp_kernel_samples,
            mlp_kernel_tile_size=mlp_kernel_tile_size,
            kernel_spectral_norm=kernel_spectral_norm,
            position_dims=position_dims,
            recurrent_decay=recurrent_decay,
            dt_rank=dt_rank,
            family_options=dict(family_options or {}),
        )
        self.branches = nn.ModuleDict({f: FAMILIES[f].from_options(options) for f in self.kernel_families})
        self.gate = ITNetGate(hidden_size, len(self.kernel_families) * value_size)
        self.gate_act = ACT2FN[gate_activation]
        self.output = nn.Linear(value_size, output_size or hidden_size)

    @classmethod
    def from_config(cls, config, kernel_families: list[str] | None = None, position_dims: int = 2) -> "ITNetMixer":
        """The mixer of an `ITNetConfig` (`kernel_families` default `config.kernel_families`; point-cloud trunks pass
        their content families and `position_dims=3`)."""
        return cls(
            hidden_size=config.hidden_size,
            num_heads=config.num_attention_heads,
            kernel_families=kernel_families or config.kernel_families,
            is_causal=config.is_causal,
            num_frequencies=config.kernel_num_frequencies,
            kernel_mlp_size=config.kernel_mlp_size,
            activation=config.hidden_act,
            local_window=config.local_window,
            softmax_relative_bias=config.softmax_relative_bias,
            state_size=config.state_size,
            recurrent_discretization=config.recurrent_discretization,
            mlp_kernel_samples=config.mlp_kernel_samples,
            mlp_kernel_tile_size=config.mlp_kernel_tile_size,
            kernel_spectral_norm=config.kernel_spectral_norm,
            value_size=config.mixer_size,
            position_dims=position_dims,
            gate_activation=config.gate_activation,
            short_conv_size=config.short_conv_size,
            recurrent_decay=config.recurrent_decay,
            dt_rank=config.dt_rank,
            family_options={name: getattr(config, name) for b in FAMILIES.values() for name in b.config_fields},
        )

    def layout(self, hidden_states, grid_shape=None, length_scale=None, positions=None, segments=None) -> ITNetLayout:
        """The `ITNetLayout` of `hidden_states` `[B, N, D]` from one of: `grid_shape` with `N = prod(grid_shape)` in
        raster order (and its `length_scale`); `segments`, a list of `(grid_shape, length_scale)`, one per modality,
        in sequence order (`N` the sum of their sizes); irregular `positions` `[B, N, P]`."""
        if segments is None:
            return ITNetLayout(grid_shape, length_scale, positions)
        if grid_shape is not None or positions is not None:
            raise ValueError("`segments` describes the whole layout: pass no `grid_shape` or `positions`.")
        batch, length, _ = hidden_states.shape
        if segment_spans(segments)[-1][1] != length:
            raise ValueError(f"`segments` {segments} do not add up to the sequence length {length}.")
        return ITNetLayout.of_segments(segments, batch, hidden_states.device)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        grid_shape: tuple[int, ...] | None = None,
        length_scale: tuple[float, ...] | None = None,
        positions: torch.Tensor | None = None,
        segments: list[tuple[tuple[int, ...], tuple[float, ...]]] | None = None,
    ) -> torch.Tensor:
        """`hidden_states` `[B, N, D]` → `[B, N, D]`; `mask` `[B, N]` or None; the layout as in `layout`."""
        return self._mix(
            hidden_states, mask, self.layout(hidden_states, grid_shape, length_scale, positions, segments)
        )

    def prefill(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        grid_shape: tuple[int],
        length_scale: tuple[float],
    ) -> tuple[torch.Tensor, dict[str, BranchState]]:
        """The prompt pass of generation (causal, 1-D grid): `forward`'s output and every branch's generation state
        after the last token, `{family: state}` (and `"short_conv"`), for `step`."""
        states = {}
        return self._mix(hidden_states, mask, ITNetLayout(grid_shape, length_scale), states), states

    def _mix(self, hidden_states, mask, layout: ITNetLayout, states: dict | None = None) -> torch.Tensor:
        """The gated sum over the branches; with `states` (a dict), prefills every branch into it."""
        batch, length, _ = hidden_states.shape
        values = self.value(hidden_states)
        if self.short_conv is not None:
            if layout.segments is not None:
                values = self._per_segment(self.short_conv, hidden_states, values, mask, layout.segments)
            elif layout.grid_shape is None:
                raise ValueError("`short_conv_size` > 0 needs tokens on a grid (text or image patches), not points.")
            elif states is not None:
                values, states["short_conv"] = with_weights(
                    self.short_conv, self.short_conv.prefill, hidden_states, values, mask, layout
                )
            else:
                values = self.short_conv(hidden_states, values, mask, layout)
        features = hidden_states if self.short_conv is None else values
        # one gate tensor per family (`unbind`: its backward stacks, where indexing would zero-fill all F per family)
        gates = self.gate_act(self.gate(hidden_states)).view(batch, length, len(self.branches), -1).unbind(2)
        mixed = None
        for f, (family, branch) in enumerate(self.branches.items()):
            if layout.segments is not None and branch.needs_grid:
                out = self._per_segment(branch, features, values, mask, layout.segments)
            elif states is not None:
                out, states[family] = with_weights(branch, branch.prefill, features, values, mask, layout)
            else:
                out = branch(features, values, mask, layout)
            mixed = gates[f] * out if mixed is None else torch.addcmul(mixed, gates[f], out)
        return self.output(mixed)

    @staticmethod
    def _per_segment(branch, hidden_states, values, mask, segments) -> torch.Tensor:
        """A grid family applied within each segment of the sequence, `[B, N, V]`."""
        outputs = []
        for start, end, grid, scale in segment_spans(segments):
            segment_mask = None if mask is None else mask[:, start:end]
            layout = ITNetLayout(grid, scale)
            outputs.append(branch(hidden_states[:, start:end], values[:, start:end], segment_mask, layout))
        return torch.cat(outputs, dim=1)

    def step(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        length_scale: tuple[float, ...],
        states: dict[str, BranchState],
    ) -> tuple[torch.Tensor, dict[str, BranchState]]:
        """Continue a causal 1-D sequence from `states` (from `prefill` or an earlier `step`) by `N` new tokens, one
        at a time: `hidden_states` `[B, N, D]`, `mask` `[B, N]` or None (all real). Returns the outputs `[B, N, D]`,
        equal to those of `forward` on the whole sequence, and the new states."""
        if not self.is_causal:
            raise ValueError("`ITNetMixer.step` continues a causal sequence; build the mixer with `is_causal=True`.")
        batch, length, _ = hidden_states.shape
        layout = ITNetLayout(length_scale=length_scale)
        values = self.value(hidden_states)
        gates = self.gate_act(self.gate(hidden_states)).view(batch, length, len(self.branches), -1)
        weights = hidden_states.new_ones(batch, length) if mask is None else mask
        states = dict(states)
        mixed = []
        for n in range(length):
            token, value, features = 0, values[:, n], hidden_states[:, n]
            if self.short_conv is not None:
                value, states["short_conv"] = with_weights(
                    self.short_conv, self.short_conv.step, features, value, weights[:, n], states["short_conv"], layout
                )
                features = value
            for f, (family, branch) in enumerate(self.branches.items()):
                out, states[family] = with_weights(
                    branch, branch.step, features, value, weights[:, n], states[family], layout
                )
                token = token + gates[:, n, f] * out
            mixed.append(token)
        return self.output(torch.stack(mixed, dim=1)), states


class ITNetFeedForwardLinear(nn.Linear):
    """A layer of `ITNetFeedForward`: an `nn.Linear` whose weight `ITNetPreTrainedModel._init_weights` draws at
    `config.feed_forward_initializer_range` where that is set (at `initializer_range` otherwise)."""


class ITNetFeedForward(nn.Module):
    """Position-wise feed-forward network `W_2 act(W_1 u)`: `[B, N, D] → [B, N, D]`."""

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str = "gelu"):
        super().__init__()
        self.fc1 = ITNetFeedForwardLinear(hidden_size, intermediate_size)
        self.act = ACT2FN[activation]
        self.fc2 = ITNetFeedForwardLinear(intermediate_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


__all__ = ["ITNetFeedForward", "ITNetFeedForwardLinear", "ITNetGate", "ITNetMixer"]
