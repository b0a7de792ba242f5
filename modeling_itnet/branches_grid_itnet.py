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
"""The kernel families that need a grid (a sequence or an image's patch grid): `spectral`, `local`, `recurrent`,
`ssm` and `window_softmax`, and the kernel generator `ITNetSpectralKernel` that the content families' position
terms share. The interface and the registry are in `branches_itnet.py`."""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .branches_itnet import (
    BranchState,
    ITNetBranch,
    ITNetMixerOptions,
    _merge_heads,
    _require_grid,
    _split_heads,
    _weighted,
    kernel_linear,
    register_family,
)
from .compat_itnet import ACT2FN, init
from .kernels_itnet import (
    decay_low_rank_step,
    decay_low_rank_transform,
    decayed_kernel,
    fourier_features,
    grid_offsets,
    local_conv,
    local_conv_step,
    s4d_discretize,
    softmax_step,
    spectral_conv,
    ssm_final_state,
    ssm_kernel,
    ssm_step,
    ssm_transform,
    stationary_kernel_step,
    window_softmax_transform,
)


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


@dataclass
class SpectralState(BranchState):
    values: torch.Tensor
    """The weighted past values `w_s v_s` `[B, T, V]`."""
    kernel: torch.Tensor
    """The kernel at the offsets seen so far, newest first, `kernel[:, s] = k(T − 1 − s)` `[B, T, V]` (the same in
    every row), aligned with `values`: each step prepends one offset instead of evaluating the kernel MLP at all
    `t + 1` again."""


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
        batch, length, channels = values.shape
        offsets = torch.arange(length - 1, -1, -1, device=values.device, dtype=torch.float32)[:, None]  # T − 1 − s
        kernel = self.kernel(offsets, layout.length_scale).expand(batch, length, channels)
        return self._transform(values, mask, layout), SpectralState(_weighted(values, mask), kernel)

    def step(self, hidden_t, value_t, mask_t, state, layout):
        past = torch.cat([state.values, _weighted(value_t[:, None], mask_t[:, None])], dim=1)  # [B, t + 1, V]
        t = past.shape[1] - 1
        offset = torch.full((1, 1), float(t), device=past.device)
        newest = self.kernel(offset, layout.length_scale).to(state.kernel.dtype)  # k(t) [1, V]
        kernel = torch.cat([newest.expand(len(past), 1, -1), state.kernel], dim=1)  # kernel[:, s] = k(t − s)
        out = stationary_kernel_step(kernel[0], past)
        return out.to(value_t.dtype), SpectralState(past, kernel)


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
    "ITNetDecayedRecurrence",
    "ITNetLocalBranch",
    "ITNetRecurrentBranch",
    "ITNetSSMBranch",
    "ITNetSelectiveScanBranch",
    "ITNetShortConv",
    "ITNetSpectralBranch",
    "ITNetSpectralKernel",
    "ITNetWindowSoftmaxBranch",
]
