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
r"""ITNet's kernel families: one `ITNetBranch` per family, registered with `register_family`.

A branch computes one family's transform of the values, `T_f(v)_i = Σ_j w_j · K_f(x_i, x_j, u_i, u_j) · v_j`, from
the mixer's input `u` (`hidden_states` `[B, N, D]`, the content families' features), the values `v` `[B, N, V]`, the
quadrature weights `w` (`mask` `[B, N]`, None for all ones) and the layout of the tokens (`ITNetLayout`: one grid,
several grids, or irregular positions). Its math is in `kernels_itnet.py`, each fast op beside its `*_naive`.

Every branch has one interface:

    forward(hidden_states, values, mask, layout) -> out [B, N, V]
    prefill(hidden_states, values, mask, layout) -> (out, state)      causal, 1-D: the prompt pass of generation
    step(hidden_t, value_t, mask_t, state, layout) -> (out_t [B, V], state)

and declares what it can do as class attributes (`needs_grid`, `on_points`, `cacheable`, `relaxable`, the cost of a
generated token). `FAMILIES`, the registry, is what the mixer builds from and what the model, the converter, the
cache, the tests and the README's family table read.

To add a family: write its kernel and `*_naive` in `kernels_itnet.py`, subclass `ITNetBranch` here with
`@register_family`, add its name to `configuration_itnet.KERNEL_FAMILIES` (and any config field it needs); see
CONTRIBUTING.md.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .compat_itnet import ACT2FN, init
from .kernels_itnet import (
    decay_low_rank_step,
    decay_low_rank_transform,
    decayed_kernel,
    elu_plus_one,
    fourier_features,
    grid_offsets,
    local_conv,
    local_conv_step,
    low_rank_final_state,
    low_rank_step,
    low_rank_transform,
    mlp_kernel_step,
    mlp_kernel_transform,
    monte_carlo_transform,
    relative_position_bias,
    s4d_discretize,
    softmax_step,
    softmax_transform,
    spectral_conv,
    ssm_final_state,
    ssm_kernel,
    ssm_step,
    ssm_transform,
    stationary_kernel_step,
    window_softmax_transform,
)


@dataclass(frozen=True)
class ITNetLayout:
    """Where the tokens of a sequence sit; exactly one of:

    - `grid_shape` (1-D or 2-D, raster order, `N = prod(grid_shape)`) with its `length_scale` (the grid size at
      which the generated kernels were trained; offsets are measured in its units): text, an image's patches;
    - `segments`, a list of `(grid_shape, length_scale)`, one grid per modality in sequence order (image + text),
      with `positions` the `segment_positions` of the tokens;
    - irregular `positions` `[B, N, P]` (point clouds).
    """

    grid_shape: tuple[int, ...] | None = None
    length_scale: tuple[float, ...] | None = None
    positions: torch.Tensor | None = None
    segments: list[tuple[tuple[int, ...], tuple[float, ...]]] | None = None

    @classmethod
    def of_segments(cls, segments, batch: int, device) -> "ITNetLayout":
        return cls(positions=segment_positions(segments, batch, device), segments=segments)


@dataclass
class BranchState:
    """A branch's generation state after the tokens seen so far; every tensor has the batch first."""

    def tensors(self) -> dict[str, torch.Tensor]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def index_select(self, index: torch.Tensor) -> "BranchState":
        """The state of the batch rows `index` (beam search)."""
        return dataclasses.replace(
            self, **{k: t.index_select(0, index.to(t.device)) for k, t in self.tensors().items()}
        )


@dataclass
class ITNetMixerOptions:
    """The settings the branches of one mixer are built from (`ITNetBranch.from_options`); `ITNetMixer`'s
    arguments, documented there."""

    hidden_size: int
    value_size: int
    num_heads: int
    is_causal: bool
    num_frequencies: int = 16
    kernel_mlp_size: int = 64
    activation: str = "gelu"
    local_window: int = 3
    softmax_relative_bias: bool = True
    state_size: int = 16
    recurrent_discretization: str = "euler"
    mlp_kernel_samples: int = 0
    mlp_kernel_tile_size: int = 128
    kernel_spectral_norm: bool = False
    position_dims: int = 2
    recurrent_decay: str = "head"
    dt_rank: int = 1
    family_options: dict = dataclasses.field(default_factory=dict)
    """The config fields a family reads beyond these (`ITNetBranch.config_fields`), by name."""


class ITNetBranch(nn.Module):
    """One kernel family's transform (see the module docstring). Subclasses set the capabilities below, implement
    `from_options` and `forward`, and, where `cacheable`, `prefill` and `step`; `init_weights` gives their own
    parameters their initial values (called by `ITNetPreTrainedModel._init_weights`)."""

    family: ClassVar[str]
    needs_grid: ClassVar[bool] = False
    """The kernel needs an order or grid offsets: on several grids it runs within each; never on points."""
    on_points: ClassVar[bool] = False
    """Works at irregular positions (point clouds)."""
    cacheable: ClassVar[bool] = True
    """Has a generation state (`prefill`, `step`) whose steps equal the full causal forward."""
    relaxable: ClassVar[bool] = True
    """`convert_to_itnet(..., relax=True)` may add it with a closed gate (not the quadratic-cost families)."""
    kernel_formula: ClassVar[str] = ""
    """`K(x_i, x_j, u_i, u_j)` in words, for the README's table (`family_table`)."""
    evaluated_by: ClassVar[str] = ""
    """The algorithm of its fast path."""
    cost: ClassVar[str] = ""
    """Its time (and memory) in the sequence length `N`."""
    state: ClassVar[str] = ""
    """The generation state per layer, for `ITNetCache`'s table."""
    token_cost: ClassVar[str] = ""
    """The cost of one generated token in the length `t` seen so far."""
    config_fields: ClassVar[dict[str, object]] = {}
    """The `ITNetConfig` fields of this family alone, with their defaults: `ITNetMixer.from_config` passes them in
    `ITNetMixerOptions.family_options`."""

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetBranch":
        raise NotImplementedError

    def forward(self, hidden_states, values, mask, layout: ITNetLayout) -> torch.Tensor:
        raise NotImplementedError

    def prefill(self, hidden_states, values, mask, layout: ITNetLayout) -> tuple[torch.Tensor, BranchState]:
        raise NotImplementedError(f"The {self.family!r} family has no generation state.")

    def step(self, hidden_t, value_t, mask_t, state: BranchState, layout: ITNetLayout):
        """One token: `hidden_t` `[B, D]`, `value_t` `[B, V]`, `mask_t` `[B]` → `(y_t [B, V], state)`."""
        raise NotImplementedError(f"The {self.family!r} family has no generation state.")

    def init_weights(self, config) -> None:
        """Initial values of the branch's own parameters (`config` an `ITNetConfig`); its sub-modules have theirs."""

    def _require_prefill(self, layout: ITNetLayout):
        if not self.is_causal:
            raise ValueError(
                f"The {self.family!r} branch keeps a generation state only with causal kernels; build it with "
                "`is_causal=True`."
            )
        if layout.grid_shape is None or len(layout.grid_shape) != 1:
            raise ValueError(f"The {self.family!r} branch keeps a generation state on a 1-D sequence only.")


FAMILIES: dict[str, type[ITNetBranch]] = {}
"""The registry: family name → its branch class, in registration order."""


def register_family(branch_class: type[ITNetBranch]) -> type[ITNetBranch]:
    """Class decorator: registers `branch_class` under its `family`."""
    if branch_class.family in FAMILIES:
        raise ValueError(f"The kernel family {branch_class.family!r} is already registered.")
    FAMILIES[branch_class.family] = branch_class
    return branch_class


def grid_families() -> tuple[str, ...]:
    """The families that need a grid (run within each segment of a multimodal sequence)."""
    return tuple(name for name, branch in FAMILIES.items() if branch.needs_grid)


def point_families() -> tuple[str, ...]:
    """The families that work at irregular positions (point clouds)."""
    return tuple(name for name, branch in FAMILIES.items() if branch.on_points)


def cacheable_families() -> tuple[str, ...]:
    return tuple(name for name, branch in FAMILIES.items() if branch.cacheable)


def relaxable_families() -> tuple[str, ...]:
    return tuple(name for name, branch in FAMILIES.items() if branch.relaxable)


def family_table() -> str:
    """The README's table of the registered families (between `<!-- families -->` markers; a test keeps it equal)."""
    rows = [
        "| family | K(x_i, x_j, u_i, u_j) | evaluated by | cost | points | generation state (cost per token) |",
        "|---|---|---|---|---|---|",
    ]
    for name, branch in FAMILIES.items():
        points = "yes" if branch.on_points else "no: needs a grid"
        state = f"{branch.state} ({branch.token_cost})" if branch.cacheable else "none"
        rows.append(
            f"| `{name}` | {branch.kernel_formula} | {branch.evaluated_by} | {branch.cost} | {points} | {state} |"
        )
    return "\n".join(rows)


def with_weights(module: nn.Module, method, *tensors):
    """`method(*tensors)`, a method of `module` other than `forward` that reads the module's own weights, run inside
    the module's accelerate hook when it has one: with `device_map` offloading (weights on disk or the CPU, on the
    meta device between calls), accelerate loads a module's weights around `forward` only. Branches' `prefill` and
    `step` and the spectral-normalised kernel layers go through here; without a hook it is `method(*tensors)`."""
    hook = getattr(module, "_hf_hook", None)
    if hook is None:
        return method(*tensors)
    tensors, _ = hook.pre_forward(module, *tensors)
    return hook.post_forward(module, method(*tensors))


def kernel_linear(layer: nn.Linear, inputs: torch.Tensor, spectral_norm: bool) -> torch.Tensor:
    """`layer(inputs)`, with the weight divided by its largest singular value when `spectral_norm` (the paper's
    stability measure for kernel MLPs: each layer is then 1-Lipschitz). Exact SVD of the small kernel weights, no
    power-iteration buffers.

    Without `spectral_norm` this is the module's own forward, so a wrapper around the layer (a PEFT LoRA
    `lora.Linear`) applies. With it, a wrapped layer is normalised as the affine map it computes: its weight and
    bias are read off its outputs at the origin and at the unit vectors (`W x + b` for any LoRA adapter in eval)."""
    if not spectral_norm:
        return layer(inputs)
    return with_weights(layer, lambda x: _normalised_linear(layer, x), inputs)


def _normalised_linear(layer: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
    weight, bias = layer.weight, layer.bias
    if type(layer) is not nn.Linear:  # e.g. peft's lora.Linear: its effective (merged) affine map
        eye = torch.eye(weight.shape[1], dtype=weight.dtype, device=weight.device)
        probes = torch.cat([torch.zeros_like(eye[:1]), eye])
        outputs = layer(probes)
        bias, weight = outputs[0], (outputs[1:] - outputs[0]).T
    weight = weight / torch.linalg.matrix_norm(weight.float(), ord=2).to(weight.dtype)
    return nn.functional.linear(inputs, weight, bias)


class ITNetSpectralKernel(nn.Module):
    r"""Generates a stationary kernel on a grid: one value per channel `d` for every offset `δ`,

        k_θ(δ)_d = MLP_θ(γ(δ / s))_d · exp(−r_d ‖δ‖),     r_d = exp(log_decay_d) > 0,

    `γ` the Fourier features of the offset in units of the length scale `s`. The learnable decay `r_d` makes a
    channel local (large `r_d`, a short window like a convolution) or global (small `r_d`). One MLP serves 1-D and
    2-D grids: a 1-D offset `δ` is the 2-D offset `(0, δ)`; with `num_axes=3` it also takes 3-D point offsets.

    Args:
        channels: `D`, kernels produced (depthwise).
        num_frequencies: Fourier frequencies per coordinate.
        hidden_size: width of the kernel MLP.
        activation: name of the MLP's activation in `transformers.activations.ACT2FN`.
        spectral_norm: divide each MLP weight by its largest singular value (see `kernel_linear`).
        num_axes: coordinates of the offsets it takes (2: grids; 3: grids and point clouds).

    The window's exponent is floored at `min_exponent` (see `decayed_kernel`).
    """

    min_exponent = -40.0

    def __init__(
        self,
        channels: int,
        num_frequencies: int,
        hidden_size: int,
        activation: str = "gelu",
        spectral_norm: bool = False,
        num_axes: int = 2,
    ):
        super().__init__()
        self.num_frequencies = num_frequencies
        self.spectral_norm = spectral_norm
        self.num_axes = num_axes
        self.fc1 = nn.Linear(num_axes * 2 * num_frequencies, hidden_size)
        self.act = ACT2FN[activation]
        self.fc2 = nn.Linear(hidden_size, channels)
        self.log_decay = nn.Parameter(torch.zeros(channels))

    def on_grid(self, grid_shape: tuple[int, ...], length_scale: tuple[float, ...], device) -> torch.Tensor:
        """The kernel `[*(2g − 1), D]` for a grid of shape `grid_shape` (one or two axes), on `device`."""
        return self(grid_offsets(grid_shape, device=device), length_scale)

    def forward(
        self, offsets: torch.Tensor, length_scale: tuple[float, ...], max_frequency: float | None = None
    ) -> torch.Tensor:
        """`k_θ(δ)` `[..., D]` at the offsets `δ` `[..., n]` (float32, `n ≤ num_axes`, in grid steps; fewer axes are
        the leading ones zero): the same function of the offset whatever the grid size, since the length scale is
        fixed. The Fourier features reach `max_frequency` cycles per length scale, by default the grid's Nyquist
        frequency `max(length_scale) / 2`; irregular positions (point coordinates, length scale 1) pass their own."""
        if offsets.shape[-1] > self.num_axes:
            raise ValueError(
                f"This kernel takes offsets with at most {self.num_axes} coordinates, got {offsets.shape[-1]}."
            )
        coords = offsets / offsets.new_tensor(length_scale)
        coords = nn.functional.pad(coords, (self.num_axes - coords.shape[-1], 0))
        if max_frequency is None:
            max_frequency = max(length_scale) / 2
        features = fourier_features(coords, self.num_frequencies, max_frequency=max_frequency)
        hidden = self.act(kernel_linear(self.fc1, features.to(self.fc1.weight.dtype), self.spectral_norm))
        kernel = kernel_linear(self.fc2, hidden, self.spectral_norm)
        return decayed_kernel(kernel, offsets.norm(dim=-1), self.log_decay, self.min_exponent)


def _require_grid(family: str, layout: ITNetLayout) -> tuple[int, ...]:
    """The layout's grid shape; a clear error for points or several grids."""
    if layout.grid_shape is None:
        raise ValueError(
            f"The {family!r} kernel family needs a 1-D or 2-D grid (its order or its offsets); irregular positions "
            f"(e.g. point clouds) use the content families {list(point_families())}."
        )
    return layout.grid_shape


def _weighted(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`w_j v_j`: `values` `[B, N, V]` times the quadrature weights `mask` `[B, N]` (1 where None)."""
    return values if mask is None else values * mask.unsqueeze(-1).to(values.dtype)


@dataclass
class SpectralState(BranchState):
    values: torch.Tensor
    """The weighted past values `w_s v_s` `[B, T, V]`."""


@register_family
class ITNetSpectralBranch(ITNetBranch):
    """Family `"spectral"`: `K = k_θ(x_i − x_j)` from `ITNetSpectralKernel`, applied by FFT (`spectral_conv`).

    Generation state (causal, 1-D): the weighted past values `w_s v_s` `[B, T, V]`; a step computes
    `y_t = Σ_{s≤t} k(t − s) w_s v_s` directly, `k` at the offsets `0 .. t` (O(t·V) per token).
    """

    family = "spectral"
    needs_grid = True
    kernel_formula = (
        "`k_θ(x_i − x_j)` per channel: an MLP on Fourier features of the offset times a learnable decay "
        "`exp(−r_d ‖δ‖)` (local when `r_d` is large, global when small; its exponent floored at −40, a window of "
        "4e−18, to keep denormals out)"
    )
    evaluated_by = (
        "zero-padded FFT (linear, not circular) on the 1-D token grid or the 2-D patch grid, with a hand-written "
        "backward (three real FFTs each way)"
    )
    cost = "O(N log N); causal O(N log² N)"
    state = "the past values; `k(0 .. t)` from the kernel MLP"
    token_cost = "O(t)"

    def __init__(self, channels, num_frequencies, kernel_mlp_size, activation, is_causal, spectral_norm=False):
        super().__init__()
        self.is_causal = is_causal
        self.kernel = ITNetSpectralKernel(channels, num_frequencies, kernel_mlp_size, activation, spectral_norm)

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetSpectralBranch":
        return cls(
            options.value_size, options.num_frequencies, options.kernel_mlp_size, options.activation,
            options.is_causal, options.kernel_spectral_norm,
        )  # fmt: skip

    def forward(self, hidden_states, values, mask, layout):
        return self._transform(values, mask, layout)

    def _transform(self, values, mask, layout):
        grid_shape = _require_grid("spectral", layout)
        batch, length, channels = values.shape
        kernel = self.kernel.on_grid(grid_shape, layout.length_scale, values.device)
        grid_mask = None if mask is None else mask.view(batch, *grid_shape)
        out = spectral_conv(values.view(batch, *grid_shape, channels), kernel, grid_mask, self.is_causal)
        return out.reshape(batch, length, channels)

    def prefill(self, hidden_states, values, mask, layout):
        self._require_prefill(layout)
        return self._transform(values, mask, layout), SpectralState(_weighted(values, mask))

    def step(self, hidden_t, value_t, mask_t, state, layout):
        past = torch.cat([state.values, _weighted(value_t[:, None], mask_t[:, None])], dim=1)  # [B, t + 1, V]
        t = past.shape[1] - 1
        offsets = torch.arange(t, -1, -1, device=past.device, dtype=torch.float32)[:, None]  # t − s, s = 0 .. t
        kernel = self.kernel(offsets, layout.length_scale)  # [t + 1, V]
        return stationary_kernel_step(kernel, past).to(value_t.dtype), SpectralState(past)


@dataclass
class LocalState(BranchState):
    window: torch.Tensor
    """The weighted values `w_s v_s` of the last `W − 1` positions `[B, W − 1, V]` (zeros before the first)."""


@register_family
class ITNetLocalBranch(ITNetBranch):
    r"""Family `"local"`: a stationary kernel on a `W x W` window of offsets, one learned value per offset and channel
    (the paper's local projections; a depthwise convolution), evaluated directly by `local_conv`.

    Offsets `δ = x_i − x_j` span `[−(W // 2), (W − 1) // 2]` on each axis, the taps of a `padding="same"`
    convolution; causal, the row offsets (the only axis in 1-D) span `[0, W − 1]` and look-ahead offsets are
    zeroed. A 1-D sequence uses the table's
    row of offset `δ_h = 0`, so text and images share one table.

    Generation state (causal, 1-D): the weighted values `w_s v_s` of the last `W − 1` positions `[B, W − 1, V]`.
    """

    family = "local"
    needs_grid = True
    kernel_formula = (
        "`k(x_i − x_j)` on a `W × W` window, one learned value per offset and channel (the paper's local projections)"
    )
    evaluated_by = "direct depthwise convolution"
    cost = "O(N·W)"
    state = "the last `W − 1` values"
    token_cost = "O(W)"

    def __init__(self, channels: int, window: int, is_causal: bool):
        super().__init__()
        self.is_causal = is_causal
        self.window = window
        self.table = nn.Parameter(torch.zeros(window, window, channels))

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetLocalBranch":
        return cls(options.value_size, options.local_window, options.is_causal)

    def init_weights(self, config) -> None:
        init.normal_(self.table, std=1.0 / self.window)

    def lows(self, num_axes: int) -> tuple[int, ...]:
        """Smallest offset of the window on each axis."""
        same = -(self.window // 2)
        return (0 if self.is_causal else same,) + (same,) * (num_axes - 1)

    def forward(self, hidden_states, values, mask, layout):
        return self._transform(values, mask, layout)

    def _transform(self, values, mask, layout):
        grid_shape = _require_grid("local", layout)
        batch, length, channels = values.shape
        lows = self.lows(len(grid_shape))
        table = self.table if len(grid_shape) == 2 else self.table[-self.lows(2)[0]]  # the row δ_h = 0
        grid_mask = None if mask is None else mask.view(batch, *grid_shape)
        out = local_conv(values.view(batch, *grid_shape, channels), table, lows, grid_mask, self.is_causal)
        return out.reshape(batch, length, channels)

    def prefill(self, hidden_states, values, mask, layout):
        self._require_prefill(layout)
        length = values.shape[1]
        past = _weighted(values, mask)[:, max(0, length - (self.window - 1)) :]
        past = nn.functional.pad(past, (0, 0, self.window - 1 - past.shape[1], 0))  # zeros before the first token
        return self._transform(values, mask, layout), LocalState(past)

    def step(self, hidden_t, value_t, mask_t, state, layout):
        """One token: `y_t = Σ_{δ=0}^{W−1} k(δ) w_{t−δ} v_{t−δ}` from the window state."""
        window = torch.cat([state.window, _weighted(value_t[:, None], mask_t[:, None])], dim=1)  # [B, W, V]
        taps = self.table[-self.lows(2)[0]]  # [W, V], tap δ at index δ (causal offsets 0 .. W − 1)
        return local_conv_step(taps, window), LocalState(window[:, 1:])


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


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """`[B, N, H·E] → [B, H, N, E]`."""
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """`[B, H, N, E] → [B, N, H·E]`."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


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
    kernel over offsets, one value per head, generated like the spectral kernel (so any grid size works, and
    3-D point offsets with `position_dims=3`).

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
    ):
        super().__init__()
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.num_frequencies = num_frequencies
        self.query_key = nn.Linear(hidden_size, 2 * channels)
        self.bias_kernel = (
            ITNetSpectralKernel(num_heads, num_frequencies, kernel_mlp_size, activation, num_axes=position_dims)
            if relative_bias
            else None
        )

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetSoftmaxBranch":
        return cls(
            options.hidden_size, options.value_size, options.num_heads, options.is_causal,
            options.softmax_relative_bias, options.num_frequencies, options.kernel_mlp_size, options.activation,
            options.position_dims,
        )  # fmt: skip

    def relative_bias(self, grid_shape, length_scale, positions, segments, device) -> torch.Tensor:
        """`b(x_i − x_j)` on `device`: `[H, N, N]` on a grid; block-diagonal `[H, N, N]` over `segments` (one grid per
        modality, 0 between modalities: cross-modal pairs are scored by content alone); `[B, H, N, N]` at irregular
        `positions` `[B, N, P]` (offsets in coordinate units, Fourier features up to `num_frequencies` cycles)."""
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
        table = self.bias_kernel(offsets, (1.0,) * offsets.shape[-1], max_frequency=float(self.num_frequencies))
        return table.permute(0, 3, 1, 2)

    def _transform(self, hidden_states, values, mask, layout):
        """`(out [B, N, V], k [B, H, N, E], v [B, H, N, E])`."""
        query, key = (_split_heads(t, self.num_heads) for t in self.query_key(hidden_states).chunk(2, dim=-1))
        heads = _split_heads(values, self.num_heads)
        bias = None
        if self.bias_kernel is not None:
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
        if self.bias_kernel is not None:
            t = keys.shape[2] - 1
            offsets = torch.arange(t, -1, -1, device=keys.device, dtype=torch.float32)[:, None]  # t − s
            bias = self.bias_kernel(offsets, layout.length_scale).T  # [H, t + 1]
        out = softmax_step(query, keys, heads, weight, bias)
        return out.reshape(value_t.shape), SoftmaxState(keys, heads, weight)


def _require_discretization(discretization: str):
    if discretization not in ("euler", "zoh"):
        raise ValueError(f"`discretization` must be 'euler' or 'zoh', got {discretization!r}.")


@dataclass
class RecurrentState(BranchState):
    state: torch.Tensor
    """`S_t = Σ_{s≤t} (Π_{s<τ≤t} a_τ) B̄_s v_sᵀ` `[B, H, R, E]` (per channel `[B, V, R, 1]`)."""


class ITNetDecayedRecurrence(ITNetBranch):
    """The `"recurrent"` family's transform from its coefficients `(C, B̄, log a)` (`coefficients`, per subclass):
    `y_t = Σ_{s≤t} C_tᵀ (Π_{s<τ≤t} a_τ) B̄_s v_s` by `decay_low_rank_transform`, scanned both ways when bidirectional;
    `step` is `decay_low_rank_step` (a padded step neither writes nor decays)."""

    family = "recurrent"
    needs_grid = True
    kernel_formula = "`C_tᵀ (Π_{s<τ≤t} a_τ) B̄_s` causal, `a = exp(ΔA)`, `Δ = softplus(W_Δ u)`: a selective state space"
    evaluated_by = "chunked scan (bidirectional: forward + backward scans)"
    cost = "O(N·C·R + N·R·E)"
    state = "`S = Σ_s (Π a) B̄_s v_sᵀ` `[B, H, R, E]`"
    token_cost = "O(1)"
    chunk_size = 64  # tokens per chunk of `decay_low_rank_transform`

    def coefficients(self, hidden_states):
        raise NotImplementedError

    def _scan(self, hidden_states, values, mask):
        C, B, log_decay = self.coefficients(hidden_states)
        v = _split_heads(values, self.num_heads)
        out, final_state = decay_low_rank_transform(C, B, v, log_decay, mask, chunk_size=self.chunk_size)
        return C, B, log_decay, v, out, final_state

    def forward(self, hidden_states, values, mask, layout):
        _require_grid("recurrent", layout)
        C, B, log_decay, v, out, _ = self._scan(hidden_states, values, mask)
        if not self.is_causal:
            # the same scan over the reversed sequence, flipped back; the s = t term is in both scans
            reversed_mask = None if mask is None else mask.flip(1)
            backward, _ = decay_low_rank_transform(
                C.flip(2), B.flip(2), v.flip(2), log_decay.flip(2), reversed_mask, chunk_size=self.chunk_size
            )
            diagonal = (C * B).sum(-1, keepdim=True) * v
            if mask is not None:
                diagonal = diagonal * mask[:, None, :, None].to(diagonal.dtype)
            out = out + backward.flip(2) - diagonal
        return _merge_heads(out)

    def prefill(self, hidden_states, values, mask, layout):
        self._require_prefill(layout)
        *_, out, final_state = self._scan(hidden_states, values, mask)
        return _merge_heads(out), RecurrentState(final_state)

    def step(self, hidden_t, value_t, mask_t, state, layout):
        C, B, log_decay = (t[:, :, 0] for t in self.coefficients(hidden_t[:, None]))
        heads = value_t.view(value_t.shape[0], self.num_heads, -1)
        out, new_state = decay_low_rank_step(C, B, heads, log_decay, state.state, mask_t)
        return out.reshape(value_t.shape).to(value_t.dtype), RecurrentState(new_state)


@register_family
class ITNetRecurrentBranch(ITNetDecayedRecurrence):
    r"""Family `"recurrent"`: a selective state space (Mamba-2 style) as a causal kernel with data-dependent decay,

        K(t, s) = C_tᵀ (Π_{s<τ≤t} a_τ) B̄_s,     a_τ = exp(Δ_τ A),     Δ = softplus(W_Δ u + b_Δ),  A = −exp(A_log)

    per head (scalar decay, state size `R`), `B̄_s = Δ_s B_s` (`discretization="euler"`, as Mamba) or
    `(1 − a_s)/(−A) · B_s` (`"zoh"`, exact zero-order hold), evaluated chunked (`decay_low_rank_transform`).
    Bidirectional, the grid is scanned in raster order forwards and backwards and the two transforms are added
    (the `s = t` term counted once).

    Generation state (causal): `S_t = Σ_{s≤t} (Π_{s<τ≤t} a_τ) B̄_s v_sᵀ` `[B, H, R, E]`, the final state of the
    transform; a step is `decay_low_rank_step` (a padded step neither writes nor decays).
    """

    def __init__(self, hidden_size, channels, num_heads, is_causal, state_size, discretization):
        super().__init__()
        _require_discretization(discretization)
        self.num_heads = num_heads
        self.state_size = state_size
        self.is_causal = is_causal
        self.discretization = discretization
        self.projection = nn.Linear(hidden_size, num_heads * (2 * state_size + 1))  # C, B, Δ per head
        self.A_log = nn.Parameter(torch.zeros(num_heads))
        self.dt_bias = nn.Parameter(torch.zeros(num_heads))

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetDecayedRecurrence":
        """A scalar decay per head (`recurrent_decay="head"`), or per channel: `ITNetSelectiveScanBranch`."""
        if options.recurrent_decay == "channel":
            return ITNetSelectiveScanBranch(
                options.hidden_size, options.value_size, options.is_causal, options.state_size, options.dt_rank,
                options.recurrent_discretization,
            )  # fmt: skip
        return cls(
            options.hidden_size, options.value_size, options.num_heads, options.is_causal, options.state_size,
            options.recurrent_discretization,
        )  # fmt: skip

    def init_weights(self, config) -> None:
        # Mamba-2: A uniform in [1, 16], Δ = softplus(dt_bias) log-uniform in [1e-3, 1e-1]
        heads = self.A_log.numel()
        init.copy_(self.A_log, torch.log(torch.linspace(1.0, 16.0, heads)))
        dt = torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), heads))
        init.copy_(self.dt_bias, dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)

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


class ITNetSelectiveScanBranch(ITNetDecayedRecurrence):
    r"""Family `"recurrent"` with `recurrent_decay="channel"`: Mamba's selective scan, one recurrence per value channel
    `c` with a decay per channel and state `n`,

        K_c(t, s) = Σ_n C_t[n] · exp(A_{c,n} Σ_{s<τ≤t} Δ_{c,τ}) · B̄_{c,s}[n],
        [ρ, B, C] = W_x u,    Δ_c = softplus(W_Δ ρ + b_Δ)_c,    A = −exp(A_log) `[V, R]`,

    `ρ` of rank `dt_rank`, `B`, `C` `[B, N, R]` shared by all channels, `B̄_c = Δ_c B` (`"euler"`, Mamba's own) or the
    zero-order hold. It is `ITNetRecurrentBranch`'s transform with one head per channel (head width 1) and the decay
    per state (`log_decay` `[B, V, N, R]`), so forward, the bidirectional form and `step` are
    `ITNetDecayedRecurrence`'s. Built by `ITNetRecurrentBranch.from_options`.
    """

    chunk_size = 16  # the per-state decay holds [C, C, R] per channel and chunk

    def __init__(self, hidden_size, channels, is_causal, state_size, dt_rank, discretization):
        super().__init__()
        _require_discretization(discretization)
        self.num_heads = channels
        self.state_size = state_size
        self.dt_rank = dt_rank
        self.is_causal = is_causal
        self.discretization = discretization
        self.x_proj = nn.Linear(hidden_size, dt_rank + 2 * state_size, bias=False)  # ρ, B, C
        self.dt_proj = nn.Linear(dt_rank, channels)  # its bias is b_Δ
        self.A_log = nn.Parameter(torch.zeros(channels, state_size))

    def init_weights(self, config) -> None:
        # Mamba: A_n = n (n = 1 .. R) in every channel, Δ = softplus(b_Δ) log-uniform in [1e-3, 1e-1]
        channels, states = self.A_log.shape
        init.copy_(self.A_log, torch.log(torch.arange(1, states + 1, dtype=torch.float32)).expand(channels, states))
        dt = torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), channels))
        init.copy_(self.dt_proj.bias, dt + torch.log(-torch.expm1(-dt)))

    def coefficients(self, hidden_states):
        """`(C, B̄, log a)`, each `[B, V, N, R]`."""
        rho, B, C = self.x_proj(hidden_states).split([self.dt_rank, self.state_size, self.state_size], dim=-1)
        delta = nn.functional.softplus(self.dt_proj(rho)).transpose(1, 2)  # [B, V, N]
        A = -torch.exp(self.A_log.float())[:, None, :]  # [V, 1, R]
        log_decay = delta.unsqueeze(-1) * A
        if self.discretization == "euler":
            B = delta.unsqueeze(-1) * B[:, None]
        else:
            B = (-torch.expm1(log_decay) / -A) * B[:, None]
        return C[:, None].expand_as(B), B, log_decay


@dataclass
class SSMState(BranchState):
    state: torch.Tensor
    """The complex state `x_t` `[B, V, S]`."""


@register_family
class ITNetSSMBranch(ITNetBranch):
    r"""Family `"ssm"`: a diagonal linear time-invariant state space (S4D) per channel, a stationary causal kernel

        k(t) = Re(Σ_n C_n Ā_nᵗ B̄_n) + D·[t = 0],     Ā = exp(Δ A),  B̄ = (Ā − 1)/A · B   (zero-order hold)

    computed then applied by FFT (`ssm_kernel`, `spectral_conv`) along the raster order of the grid. Bidirectional,
    the kernel is mirrored: `k(|δ|)`. `S = state_size // 2` complex modes (conjugate pairs), S4D-Lin initialised.

    Generation state (causal): the complex state `x_t = Ā x_{t−1} + B̄ w_t v_t` `[B, V, S]`, whose read-out
    `y_t = Re(C x_t) + D w_t v_t` equals the FFT convolution with `k`. The prompt's final state is computed in
    closed form, `x_{N−1} = B̄ Σ_s Ā^{N−1−s} w_s v_s`. The kernel is stationary on the grid, so a padded step
    decays the state (`w_t = 0`) exactly as the convolution's offsets count it.
    """

    family = "ssm"
    needs_grid = True
    kernel_formula = "`Re(C Āᵗ B̄) + D·[t = 0]` (S4D, zero-order hold), stationary causal (mirrored when bidirectional)"
    evaluated_by = "kernel computed, then FFT"
    cost = "O(N log N)"
    state = "complex state `x_t = Ā x_{t−1} + B̄ v_t` `[B, V, S]`"
    token_cost = "O(1)"

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

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetSSMBranch":
        return cls(options.value_size, options.state_size, options.is_causal)

    def init_weights(self, config) -> None:
        # S4D-Lin: A_n = −1/2 + iπn, B = 1, C ~ N(0, 1/2) complex, Δ log-uniform in [1e-3, 1e-1], D = 1
        channels, modes = self.A_log.shape
        init.constant_(self.A_log, math.log(0.5))
        init.copy_(self.A_imag, math.pi * torch.arange(modes, dtype=torch.float32).expand(channels, modes))
        init.copy_(self.B, torch.stack([torch.ones(channels, modes), torch.zeros(channels, modes)], dim=-1))
        init.normal_(self.C, std=0.5**0.5)
        init.copy_(self.log_dt, torch.linspace(math.log(1e-3), math.log(1e-1), channels))
        init.ones_(self.skip)

    def continuous(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(A, B, C)`, each `[V, S]` complex64: the continuous-time parameters."""
        A = torch.complex(-torch.exp(self.A_log.float()), self.A_imag.float())
        B = torch.view_as_complex(self.B.float().contiguous())
        C = torch.view_as_complex(self.C.float().contiguous())
        return A, B, C

    def kernel(self, length: int) -> torch.Tensor:
        """`[length, V]`: `k(t)` for `t = 0 .. length − 1`, the skip `D` at `t = 0`."""
        A, B, C = self.continuous()
        kernel = ssm_kernel(A, B, C, length, step=torch.exp(self.log_dt.float()))
        return torch.cat([kernel[:1] + self.skip.float(), kernel[1:]], dim=0)

    def forward(self, hidden_states, values, mask, layout):
        return self._transform(values, mask, layout)

    def _transform(self, values, mask, layout):
        _require_grid("ssm", layout)
        A, B, C = self.continuous()
        step = torch.exp(self.log_dt.float())
        return ssm_transform(values, A, B, C, mask, self.skip.float(), step, causal=self.is_causal)

    def prefill(self, hidden_states, values, mask, layout):
        self._require_prefill(layout)
        out = self._transform(values, mask, layout)
        A, B, _ = self.continuous()
        _, B_bar = s4d_discretize(self.log_dt.float(), A, B)
        log_A_bar = torch.exp(self.log_dt.float()).unsqueeze(-1) * A
        return out, SSMState(ssm_final_state(log_A_bar, B_bar, _weighted(values, mask).float()))

    def step(self, hidden_t, value_t, mask_t, state, layout):
        A, B, C = self.continuous()
        A_bar, B_bar = s4d_discretize(self.log_dt.float(), A, B)
        inputs = _weighted(value_t[:, None], mask_t[:, None])[:, 0].float()  # [B, V]
        out, new_state = ssm_step(A_bar, B_bar, C, self.skip.float(), state.state, inputs)
        return out.to(value_t.dtype), SSMState(new_state)


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


@dataclass
class WindowSoftmaxState(BranchState):
    key: torch.Tensor
    """The keys of the last `W − 1` positions `[B, H, W − 1, E]` (zeros, of weight 0, before the first token)."""
    value: torch.Tensor
    """Their values `[B, H, W − 1, E]`."""
    weight: torch.Tensor
    """Their quadrature weights `[B, W − 1]`."""


@register_family
class ITNetWindowSoftmaxBranch(ITNetBranch):
    r"""Family `"window_softmax"`: softmax attention within a sliding window of `W` positions in raster order (Longformer,
    Mistral), `K = softmax_{j ∈ W(i)}(q_i·k_j / √d)` (`window_softmax_transform`, by blocks of `W` queries).

    Generation state (causal): the keys, values and weights of the last `W − 1` positions; a step attends to them and
    itself, O(W) per token whatever the length.
    """

    family = "window_softmax"
    needs_grid = True
    kernel_formula = "`softmax_j(q_i·k_j/√d)` over a sliding window `0 ≤ i − j < W` (causal) or `|i − j| < W`"
    evaluated_by = "fused `scaled_dot_product_attention` on blocks of `W` queries and their neighbouring keys"
    cost = "O(N·W)"
    state = "the last `W − 1` keys and values"
    token_cost = "O(W)"
    config_fields: ClassVar[dict[str, object]] = {"window_softmax_size": 64}

    def __init__(self, hidden_size: int, channels: int, num_heads: int, is_causal: bool, window: int):
        super().__init__()
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.window = window
        self.query_key = nn.Linear(hidden_size, 2 * channels)

    @classmethod
    def from_options(cls, options: ITNetMixerOptions) -> "ITNetWindowSoftmaxBranch":
        window = options.family_options.get("window_softmax_size", cls.config_fields["window_softmax_size"])
        return cls(options.hidden_size, options.value_size, options.num_heads, options.is_causal, window)

    def _transform(self, hidden_states, values, mask, layout):
        _require_grid(self.family, layout)
        query, key = (_split_heads(t, self.num_heads) for t in self.query_key(hidden_states).chunk(2, dim=-1))
        heads = _split_heads(values, self.num_heads)
        out = window_softmax_transform(query, key, heads, mask, self.is_causal, self.window)
        return _merge_heads(out), key, heads

    def forward(self, hidden_states, values, mask, layout):
        return self._transform(hidden_states, values, mask, layout)[0]

    def prefill(self, hidden_states, values, mask, layout):
        self._require_prefill(layout)
        out, key, heads = self._transform(hidden_states, values, mask, layout)
        weight = key.new_ones(key.shape[0], key.shape[2]) if mask is None else mask.to(key.dtype)
        keep, missing = min(self.window - 1, key.shape[2]), max(0, self.window - 1 - key.shape[2])
        key, heads = (nn.functional.pad(t[:, :, t.shape[2] - keep :], (0, 0, missing, 0)) for t in (key, heads))
        weight = nn.functional.pad(weight[:, weight.shape[1] - keep :], (missing, 0))
        return out, WindowSoftmaxState(key, heads, weight)

    def step(self, hidden_t, value_t, mask_t, state, layout):
        query, key = (t.view(t.shape[0], self.num_heads, 1, -1) for t in self.query_key(hidden_t).chunk(2, dim=-1))
        keys = torch.cat([state.key, key], dim=2)  # [B, H, W, E]
        heads = torch.cat([state.value, value_t.view(value_t.shape[0], self.num_heads, 1, -1)], dim=2)
        weight = torch.cat([state.weight, mask_t[:, None].to(state.weight.dtype)], dim=1)  # [B, W]
        out = softmax_step(query, keys, heads, weight, None)
        state = WindowSoftmaxState(keys[:, :, 1:], heads[:, :, 1:], weight[:, 1:])
        return out.reshape(value_t.shape), state


def grid_positions(grid_shape, length_scale, batch: int, device) -> torch.Tensor:
    """Coordinates of a grid's points in raster order, in units of the length scale: `[B, N, len(grid)]`."""
    axes = [torch.arange(g, device=device, dtype=torch.float32) / s for g, s in zip(grid_shape, length_scale)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(1, -1, len(grid_shape))
    return points.expand(batch, -1, -1)


def segment_spans(segments) -> list[tuple[int, int, tuple[int, ...], tuple[float, ...]]]:
    """`(start, end, grid_shape, length_scale)` of each segment of a sequence of several grids, in order."""
    spans, start = [], 0
    for grid, scale in segments:
        spans.append((start, start + math.prod(grid), grid, scale))
        start += math.prod(grid)
    return spans


def segment_positions(segments, batch: int, device) -> torch.Tensor:
    """Coordinates `[B, N, 3]` of the tokens of several grids in one sequence (image + text): each grid's
    `grid_positions` (padded to two coordinates) and, third, the index of its segment."""
    points = []
    for index, (grid, scale) in enumerate(segments):
        grid_points = grid_positions(grid, scale, batch, device)
        grid_points = nn.functional.pad(grid_points, (0, 2 - grid_points.shape[-1]))
        points.append(nn.functional.pad(grid_points, (0, 1), value=float(index)))
    return torch.cat(points, dim=1)


class ITNetShortConv(ITNetLocalBranch):
    r"""Not a family (not registered): a short convolution of the values before the kernels (Mamba's, and the short convolutions of GLA-style
    models): `x_i = act(Σ_{δ ∈ window} k(δ) w_{i−δ} v_{i−δ} + b)`, the `"local"` family's window (causal when
    `is_causal`) with a bias and an activation. Called like a branch; generation state: that of `ITNetLocalBranch`."""

    def __init__(self, channels: int, window: int, is_causal: bool, activation: str):
        super().__init__(channels, window, is_causal)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.act = ACT2FN[activation]

    def _transform(self, values, mask, layout):
        return self.act(super()._transform(values, mask, layout) + self.bias)

    def step(self, hidden_t, value_t, mask_t, state, layout):
        out, state = super().step(hidden_t, value_t, mask_t, state, layout)
        return self.act(out + self.bias), state


__all__ = [
    "FAMILIES",
    "BranchState",
    "ITNetBranch",
    "ITNetDecayedRecurrence",
    "ITNetLayout",
    "ITNetLocalBranch",
    "ITNetLowRankBranch",
    "ITNetMLPKernelBranch",
    "ITNetMixerOptions",
    "ITNetRecurrentBranch",
    "ITNetSSMBranch",
    "ITNetSelectiveScanBranch",
    "ITNetShortConv",
    "ITNetSoftmaxBranch",
    "ITNetSpectralBranch",
    "ITNetSpectralKernel",
    "ITNetWindowSoftmaxBranch",
    "cacheable_families",
    "family_table",
    "grid_families",
    "grid_positions",
    "kernel_linear",
    "point_families",
    "register_family",
    "relaxable_families",
    "segment_positions",
    "segment_spans",
    "with_weights",
]
