r"""ITNet's modules: the kernel generators, the Integral Transform mixer and the modality encoders.

Modules here take explicit arguments (no config) so they can be used and tested on their own. The mixer computes

    y_i = W_o Σ_f g_f(u_i) ⊙ Σ_j w_j · K_f(x_i, x_j, u_i, u_j) · v_j,        v_j = W_v u_j

over the kernel families `f` it is built with, `g_f(u_i) = σ(W_g,f u_i)` a per-token, per-channel gate that
switches between the families (the paper's switch between local and global integration).
"""

import math

import torch
from torch import nn

from .compat_itnet import ACT2FN
from .kernels_itnet import (
    causal_kernel_layout,
    decay_low_rank_step,
    decay_low_rank_transform,
    decayed_kernel,
    elu_plus_one,
    fourier_features,
    grid_offsets,
    local_conv,
    low_rank_transform,
    mlp_kernel_transform,
    monte_carlo_transform,
    relative_position_bias,
    s4d_discretize,
    softmax_transform,
    spectral_conv,
    ssm_kernel,
)


def kernel_linear(layer: nn.Linear, inputs: torch.Tensor, spectral_norm: bool) -> torch.Tensor:
    """`layer(inputs)`, with the weight divided by its largest singular value when `spectral_norm` (the paper's
    stability measure for kernel MLPs: each layer is then 1-Lipschitz). Exact SVD of the small kernel weights, no
    power-iteration buffers.

    Without `spectral_norm` this is the module's own forward, so a wrapper around the layer (a PEFT LoRA
    `lora.Linear`) applies. With it, a wrapped layer is normalised as the affine map it computes: its weight and
    bias are read off its outputs at the origin and at the unit vectors (`W x + b` for any LoRA adapter in eval)."""
    if not spectral_norm:
        return layer(inputs)
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

    def forward(self, grid_shape: tuple[int, ...], length_scale: tuple[float, ...]) -> torch.Tensor:
        """Returns the kernel `[*(2g − 1), D]` for a grid of shape `grid_shape` (one or two axes)."""
        return self.at(grid_offsets(grid_shape, device=self.fc1.weight.device), length_scale)

    def at(
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


def _require_grid(family: str, grid_shape):
    if grid_shape is None:
        raise ValueError(
            f"The {family!r} kernel family needs a 1-D or 2-D grid (its order or its offsets); irregular positions "
            "(e.g. point clouds) use the content families 'low_rank', 'softmax' and 'mlp'."
        )


def _require_causal(family: str, is_causal: bool):
    if not is_causal:
        raise ValueError(
            f"The {family!r} branch keeps a generation state only with causal kernels; build it with `is_causal=True`."
        )


def _weighted(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`w_j v_j`: `values` `[B, N, V]` times the quadrature weights `mask` `[B, N]` (1 where None)."""
    return values if mask is None else values * mask.unsqueeze(-1).to(values.dtype)


class ITNetSpectralBranch(nn.Module):
    """Family `"spectral"`: `K = k_θ(x_i − x_j)` from `ITNetSpectralKernel`, applied by FFT (`spectral_conv`).

    Generation state (causal, 1-D): the weighted past values `w_s v_s` `[B, T, V]`; a step computes
    `y_t = Σ_{s≤t} k(t − s) w_s v_s` directly, `k` at the offsets `0 .. t` (O(t·V) per token).
    """

    def __init__(self, channels, num_frequencies, kernel_mlp_size, activation, is_causal, spectral_norm=False):
        super().__init__()
        self.is_causal = is_causal
        self.kernel = ITNetSpectralKernel(channels, num_frequencies, kernel_mlp_size, activation, spectral_norm)

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None, return_state=False):
        _require_grid("spectral", grid_shape)
        batch, length, channels = values.shape
        kernel = self.kernel(grid_shape, length_scale)
        grid_mask = None if mask is None else mask.view(batch, *grid_shape)
        out = spectral_conv(values.view(batch, *grid_shape, channels), kernel, grid_mask, self.is_causal)
        out = out.reshape(batch, length, channels)
        if not return_state:
            return out
        _require_causal("spectral", self.is_causal)
        return out, {"values": _weighted(values, mask)}

    def step(self, hidden_t, value_t, mask_t, state, length_scale):
        """One token: `hidden_t` `[B, D]`, `value_t` `[B, V]`, `mask_t` `[B]` → `(y_t [B, V], state)`."""
        past = torch.cat([state["values"], _weighted(value_t[:, None], mask_t[:, None])], dim=1)  # [B, t + 1, V]
        t = past.shape[1] - 1
        offsets = torch.arange(t, -1, -1, device=past.device, dtype=torch.float32)[:, None]  # t − s, s = 0 .. t
        kernel = self.kernel.at(offsets, length_scale)  # [t + 1, V]
        compute_dtype = torch.promote_types(torch.promote_types(past.dtype, kernel.dtype), torch.float32)
        out = torch.einsum("sd,bsd->bd", kernel.to(compute_dtype), past.to(compute_dtype))
        return out.to(value_t.dtype), {"values": past}


class ITNetLocalBranch(nn.Module):
    r"""Family `"local"`: a stationary kernel on a `W x W` window of offsets, one learned value per offset and channel
    (the paper's local projections; a depthwise convolution), evaluated directly by `local_conv`.

    Offsets `δ = x_i − x_j` span `[−(W // 2), (W − 1) // 2]` on each axis, the taps of a `padding="same"`
    convolution; causal, the row offsets (the only axis in 1-D) span `[0, W − 1]` and look-ahead offsets are
    zeroed. A 1-D sequence uses the table's
    row of offset `δ_h = 0`, so text and images share one table.

    Generation state (causal, 1-D): the weighted values `w_s v_s` of the last `W − 1` positions `[B, W − 1, V]`.
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

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None, return_state=False):
        _require_grid("local", grid_shape)
        batch, length, channels = values.shape
        lows = self.lows(len(grid_shape))
        table = self.table if len(grid_shape) == 2 else self.table[-self.lows(2)[0]]  # the row δ_h = 0
        grid_mask = None if mask is None else mask.view(batch, *grid_shape)
        out = local_conv(values.view(batch, *grid_shape, channels), table, lows, grid_mask, self.is_causal)
        out = out.reshape(batch, length, channels)
        if not return_state:
            return out
        _require_causal("local", self.is_causal)
        past = _weighted(values, mask)[:, max(0, length - (self.window - 1)) :]
        past = nn.functional.pad(past, (0, 0, self.window - 1 - past.shape[1], 0))  # zeros before the first token
        return out, {"window": past}

    def step(self, hidden_t, value_t, mask_t, state, length_scale):
        """One token: `y_t = Σ_{δ=0}^{W−1} k(δ) w_{t−δ} v_{t−δ}` from the window state; shapes as
        `ITNetSpectralBranch.step`."""
        window = torch.cat([state["window"], _weighted(value_t[:, None], mask_t[:, None])], dim=1)  # [B, W, V]
        taps = self.table[-self.lows(2)[0]]  # [W, V], tap δ at index δ (causal offsets 0 .. W − 1)
        out = torch.einsum("wd,bwd->bd", taps.flip(0).to(window.dtype), window)
        return out, {"window": window[:, 1:]}


class ITNetLowRankBranch(nn.Module):
    r"""Family `"low_rank"`: `K = φ(q_i)·ψ(k_j) / Σ_j' φ(q_i)·ψ(k_j')`, `φ = ψ = elu + 1`, per head
    (`low_rank_transform`); `q, k = W_qk u`.

    Generation state (causal): the sums `S = Σ_s w_s ψ(k_s) v_sᵀ` `[B, H, R, E]` and `z = Σ_s w_s ψ(k_s)`
    `[B, H, R]`; a step adds the new token and reads `y_t = φ(q_t)ᵀ S / φ(q_t)·z` (O(1) in the length).
    """

    eps = 1e-6  # the normaliser's floor, as in `low_rank_transform`

    def __init__(self, hidden_size: int, channels: int, num_heads: int, is_causal: bool):
        super().__init__()
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.query_key = nn.Linear(hidden_size, 2 * channels)

    def features(self, hidden_states):
        """`(φ(q), ψ(k))`, each `[B, H, N, R]`."""
        query, key = (_split_heads(t, self.num_heads) for t in self.query_key(hidden_states).chunk(2, dim=-1))
        return elu_plus_one(query), elu_plus_one(key)

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None, return_state=False):
        query, key = self.features(hidden_states)
        heads = _split_heads(values, self.num_heads)
        out = _merge_heads(low_rank_transform(query, key, heads, mask, self.is_causal, eps=self.eps))
        if not return_state:
            return out
        _require_causal("low_rank", self.is_causal)
        if mask is not None:
            key = key * mask[:, None, :, None].to(key.dtype)
        return out, {"state": torch.einsum("bhnr,bhne->bhre", key, heads), "normaliser": key.sum(dim=2)}

    def step(self, hidden_t, value_t, mask_t, state, length_scale):
        """One token; shapes as `ITNetSpectralBranch.step`."""
        query, key = (t[:, :, 0] for t in self.features(hidden_t[:, None]))  # [B, H, R]
        key = key * mask_t[:, None, None].to(key.dtype)
        heads = value_t.view(value_t.shape[0], self.num_heads, -1)  # [B, H, E]
        kv = state["state"] + key.unsqueeze(-1) * heads.unsqueeze(-2)
        normaliser = state["normaliser"] + key
        out = torch.einsum("bhr,bhre->bhe", query, kv) / torch.einsum("bhr,bhr->bh", query, normaliser).clamp_min(
            self.eps
        ).unsqueeze(-1)
        return out.reshape(value_t.shape), {"state": kv, "normaliser": normaliser}


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """`[B, N, H·E] → [B, H, N, E]`."""
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """`[B, H, N, E] → [B, N, H·E]`."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


class ITNetSoftmaxBranch(nn.Module):
    r"""Family `"softmax"`: `K = softmax_j(q_i·k_j / √d + b(x_i − x_j))`, multi-head attention through the fused
    `scaled_dot_product_attention` (`softmax_transform`). The optional relative-position bias `b` is a stationary
    kernel over offsets, one value per head, generated like the spectral kernel (so any grid size works, and
    3-D point offsets with `position_dims=3`).

    Generation state (causal, 1-D): the keys and values `[B, H, T, E]` and the quadrature weights `[B, T]` of the
    past tokens; a step scores the new query against them, with the bias row `b(t − s)`, `s = 0 .. t`.
    """

    def __init__(
        self, hidden_size, channels, num_heads, is_causal, relative_bias, num_frequencies, kernel_mlp_size, activation,
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

    def relative_bias(self, grid_shape, length_scale, positions, segments) -> torch.Tensor:
        """`b(x_i − x_j)`: `[H, N, N]` on a grid; block-diagonal `[H, N, N]` over `segments` (one grid per modality,
        0 between modalities: cross-modal pairs are scored by content alone); `[B, H, N, N]` at irregular
        `positions` `[B, N, P]` (offsets in coordinate units, Fourier features up to `num_frequencies` cycles)."""
        if grid_shape is not None:
            return relative_position_bias(self.bias_kernel(grid_shape, length_scale).movedim(-1, 0), grid_shape)
        if segments is not None:
            spans = segment_spans(segments)
            length = spans[-1][1]
            bias = self.bias_kernel.fc2.weight.new_zeros(self.num_heads, length, length)
            for start, end, grid, scale in spans:
                bias[:, start:end, start:end] = self.relative_bias(grid, scale, None, None)
            return bias
        offsets = (positions[:, :, None] - positions[:, None]).float()  # [B, N, N, P]
        table = self.bias_kernel.at(offsets, (1.0,) * offsets.shape[-1], max_frequency=float(self.num_frequencies))
        return table.permute(0, 3, 1, 2)

    def forward(
        self, hidden_states, values, mask, grid_shape, length_scale, positions=None, return_state=False, segments=None
    ):
        query, key = (_split_heads(t, self.num_heads) for t in self.query_key(hidden_states).chunk(2, dim=-1))
        heads = _split_heads(values, self.num_heads)
        bias = None
        if self.bias_kernel is not None:
            bias = self.relative_bias(grid_shape, length_scale, positions, segments).to(query.dtype)
        out = _merge_heads(softmax_transform(query, key, heads, mask, self.is_causal, bias))
        if not return_state:
            return out
        _require_causal("softmax", self.is_causal)
        weight = torch.ones(key.shape[0], key.shape[2], device=key.device) if mask is None else mask.float()
        return out, {"key": key, "value": heads, "weight": weight}

    def step(self, hidden_t, value_t, mask_t, state, length_scale):
        """One token: `y_t = Σ_s softmax_s(q_t·k_s/√E + b(t − s)) v_s` over the real past keys and itself (0 if it
        has none); shapes as `ITNetSpectralBranch.step`."""
        query, key = (t.view(t.shape[0], self.num_heads, 1, -1) for t in self.query_key(hidden_t).chunk(2, dim=-1))
        keys = torch.cat([state["key"], key], dim=2)  # [B, H, t + 1, E]
        heads = torch.cat([state["value"], value_t.view(value_t.shape[0], self.num_heads, 1, -1)], dim=2)
        weight = torch.cat([state["weight"], mask_t[:, None].float()], dim=1)  # [B, t + 1]
        scores = (query @ keys.transpose(-1, -2))[:, :, 0] * query.shape[-1] ** -0.5  # [B, H, t + 1]
        if self.bias_kernel is not None:
            t = keys.shape[2] - 1
            offsets = torch.arange(t, -1, -1, device=keys.device, dtype=torch.float32)[:, None]  # t − s
            scores = scores + self.bias_kernel.at(offsets, length_scale).T.to(scores.dtype)
        allowed = (weight != 0)[:, None, :]
        has_key = allowed.any(dim=-1, keepdim=True)  # no real key: every key opened, the output set to 0
        probs = scores.masked_fill(~(allowed | ~has_key), float("-inf")).softmax(dim=-1) * has_key.to(scores.dtype)
        out = torch.einsum("bhs,bhse->bhe", probs, heads)
        return out.reshape(value_t.shape), {"key": keys, "value": heads, "weight": weight}


def _require_discretization(discretization: str):
    if discretization not in ("euler", "zoh"):
        raise ValueError(f"`discretization` must be 'euler' or 'zoh', got {discretization!r}.")


class ITNetRecurrentBranch(nn.Module):
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

    chunk_size = 64  # tokens per chunk of `decay_low_rank_transform`

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

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None, return_state=False):
        _require_grid("recurrent", grid_shape)
        C, B, log_decay = self.coefficients(hidden_states)
        v = _split_heads(values, self.num_heads)
        out, final_state = decay_low_rank_transform(C, B, v, log_decay, mask, chunk_size=self.chunk_size)
        if return_state:
            _require_causal("recurrent", self.is_causal)
            return _merge_heads(out), {"state": final_state}
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

    def step(self, hidden_t, value_t, mask_t, state, length_scale):
        """One token; shapes as `ITNetSpectralBranch.step`."""
        C, B, log_decay = (t[:, :, 0] for t in self.coefficients(hidden_t[:, None]))
        heads = value_t.view(value_t.shape[0], self.num_heads, -1)
        out, new_state = decay_low_rank_step(C, B, heads, log_decay, state["state"], mask_t)
        return out.reshape(value_t.shape).to(value_t.dtype), {"state": new_state}


class ITNetSelectiveScanBranch(ITNetRecurrentBranch):
    r"""Family `"recurrent"` with `recurrent_decay="channel"`: Mamba's selective scan, one recurrence per value channel
    `c` with a decay per channel and state `n`,

        K_c(t, s) = Σ_n C_t[n] · exp(A_{c,n} Σ_{s<τ≤t} Δ_{c,τ}) · B̄_{c,s}[n],
        [ρ, B, C] = W_x u,    Δ_c = softplus(W_Δ ρ + b_Δ)_c,    A = −exp(A_log) `[V, R]`,

    `ρ` of rank `dt_rank`, `B`, `C` `[B, N, R]` shared by all channels, `B̄_c = Δ_c B` (`"euler"`, Mamba's own) or the
    zero-order hold. It is `ITNetRecurrentBranch`'s transform with one head per channel (head width 1) and the decay
    per state (`log_decay` `[B, V, N, R]`), so forward, the bidirectional form and `step` are inherited.
    """

    chunk_size = 16  # the per-state decay holds [C, C, R] per channel and chunk

    def __init__(self, hidden_size, channels, is_causal, state_size, dt_rank, discretization):
        nn.Module.__init__(self)
        _require_discretization(discretization)
        self.num_heads = channels
        self.state_size = state_size
        self.dt_rank = dt_rank
        self.is_causal = is_causal
        self.discretization = discretization
        self.x_proj = nn.Linear(hidden_size, dt_rank + 2 * state_size, bias=False)  # ρ, B, C
        self.dt_proj = nn.Linear(dt_rank, channels)  # its bias is b_Δ
        self.A_log = nn.Parameter(torch.zeros(channels, state_size))

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


class ITNetSSMBranch(nn.Module):
    r"""Family `"ssm"`: a diagonal linear time-invariant state space (S4D) per channel, a stationary causal kernel

        k(t) = Re(Σ_n C_n Ā_nᵗ B̄_n) + D·[t = 0],     Ā = exp(Δ A),  B̄ = (Ā − 1)/A · B   (zero-order hold)

    computed then applied by FFT (`ssm_kernel`, `spectral_conv`) along the raster order of the grid. Bidirectional,
    the kernel is mirrored: `k(|δ|)`. `S = state_size // 2` complex modes (conjugate pairs), S4D-Lin initialised.

    Generation state (causal): the complex state `x_t = Ā x_{t−1} + B̄ w_t v_t` `[B, V, S]`, whose read-out
    `y_t = Re(C x_t) + D w_t v_t` equals the FFT convolution with `k`. The prompt's final state is computed in
    closed form, `x_{N−1} = B̄ Σ_s Ā^{N−1−s} w_s v_s`. The kernel is stationary on the grid, so a padded step
    decays the state (`w_t = 0`) exactly as the convolution's offsets count it.
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

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None, return_state=False):
        _require_grid("ssm", grid_shape)
        batch, length, channels = values.shape
        kernel = self.kernel(length).to(values.dtype)
        if self.is_causal:
            full = causal_kernel_layout(kernel)
        else:
            full = torch.cat([kernel[1:].flip(0), kernel], dim=0)
        out = spectral_conv(values, full, mask, causal=self.is_causal)
        if not return_state:
            return out
        _require_causal("ssm", self.is_causal)
        A, B, _ = self.continuous()
        _, B_bar = s4d_discretize(self.log_dt.float(), A, B)
        ages = torch.arange(length - 1, -1, -1, device=values.device, dtype=torch.float32)  # N − 1 − s
        powers = torch.exp((torch.exp(self.log_dt.float()).unsqueeze(-1) * A).unsqueeze(-1) * ages)  # Ā^{N−1−s}
        inputs = _weighted(values, mask).float().to(powers.dtype)
        return out, {"state": B_bar * torch.einsum("vsn,bnv->bvs", powers, inputs)}

    def step(self, hidden_t, value_t, mask_t, state, length_scale):
        """One token; shapes as `ITNetSpectralBranch.step`."""
        A, B, C = self.continuous()
        A_bar, B_bar = s4d_discretize(self.log_dt.float(), A, B)
        inputs = _weighted(value_t[:, None], mask_t[:, None])[:, 0].float()  # [B, V]
        new_state = A_bar * state["state"] + B_bar * inputs.unsqueeze(-1)
        out = torch.einsum("vs,bvs->bv", C, new_state).real + self.skip.float() * inputs
        return out.to(value_t.dtype), {"state": new_state}


class ITNetMLPKernelBranch(nn.Module):
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

    def _require_exact(self):
        if self.num_samples > 0:
            raise ValueError(
                f"The Monte Carlo 'mlp' kernel (`mlp_kernel_samples={self.num_samples}`) draws new samples at every "
                "call, so cached generation cannot equal the full forward; generate with `mlp_kernel_samples=0` (the "
                "exact tiled kernel)."
            )

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None, return_state=False):
        if return_state:
            _require_causal("mlp", self.is_causal)
            self._require_exact()
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
        if not return_state:
            return _merge_heads(out)
        weight = v.new_ones(v.shape[0], v.shape[2]) if mask is None else mask.to(v.dtype)
        return _merge_heads(out), {"positions": positions, "right": right, "value": v, "weight": weight}

    def step(self, hidden_t, value_t, mask_t, state, length_scale):
        """One token: `y_t = Σ_{s≤t} w_s K(x_t − x_s, a(u_t), b(u_s)) v_s / Σ_{s≤t} w_s` at `x_t = t / length_scale`;
        shapes as `ITNetSpectralBranch.step`."""
        self._require_exact()
        t = state["positions"].shape[1]
        position = torch.arange(t, t + 1, device=hidden_t.device, dtype=torch.float32) / length_scale[0]
        position = nn.functional.pad(position.expand(hidden_t.shape[0], 1, 1), (0, self.POSITION_DIMS - 1))
        positions = torch.cat([state["positions"], position], dim=1)  # [B, t + 1, 3]
        right = torch.cat([state["right"], kernel_linear(self.right, hidden_t[:, None], self.spectral_norm)], dim=1)
        v = torch.cat([state["value"], value_t.view(value_t.shape[0], self.num_heads, 1, -1)], dim=2)
        weight = torch.cat([state["weight"], mask_t[:, None].to(v.dtype)], dim=1)  # [B, t + 1]
        left = kernel_linear(self.left, hidden_t[:, None, None], self.spectral_norm)  # [B, 1, 1, A]
        K = self.kernel_fn(position[:, :, None] - positions[:, None], left, right[:, None])[:, 0].to(v.dtype)
        out = torch.einsum("bsh,bhse->bhe", K * weight[..., None], v)
        Z = weight.sum(dim=1)
        out = out / torch.where(Z > 0, Z, torch.ones_like(Z))[:, None, None]
        return out.reshape(value_t.shape), {"positions": positions, "right": right, "value": v, "weight": weight}


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
    r"""A short convolution of the values before the kernels (Mamba's, and the short convolutions of GLA-style
    models): `x_i = act(Σ_{δ ∈ window} k(δ) w_{i−δ} v_{i−δ} + b)`, the `"local"` family's window (causal when
    `is_causal`) with a bias and an activation. Called like a branch; generation state: that of `ITNetLocalBranch`."""

    def __init__(self, channels: int, window: int, is_causal: bool, activation: str):
        super().__init__(channels, window, is_causal)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.act = ACT2FN[activation]

    def forward(self, hidden_states, values, mask, grid_shape, length_scale, positions=None, return_state=False):
        out = super().forward(hidden_states, values, mask, grid_shape, length_scale, positions, return_state)
        if return_state:
            out, state = out
            return self.act(out + self.bias), state
        return self.act(out + self.bias)

    def step(self, hidden_t, value_t, mask_t, state, length_scale):
        out, state = super().step(hidden_t, value_t, mask_t, state, length_scale)
        return self.act(out + self.bias), state


class ITNetGate(nn.Linear):
    """The mixer's gate projection `W_g u_i` `[B, N, D] → [B, N, F·V]` (one gate per family and value channel): a
    `Linear` of its own type so that `_init_weights` can give its bias `config.gate_bias_init`."""


class ITNetMixer(nn.Module):
    r"""The Integral Transform mixer: a gated sum of kernel families applied to the same values,

        y_i = W_o Σ_f g(W_g,f u_i) ⊙ T_f(v)_i,        v = W_v u    (v = act(conv(W_v u)) with a short convolution),

    `g` the gate activation (sigmoid by default),
    `T_f` the transform of family `f` (one `ITNet*Branch` each, in `self.branches`). Tokens sit on

    - one 1-D or 2-D grid (`grid_shape`, raster order): text, or an image's patches;
    - several grids in one sequence (`segments`: image + text, two images + text): the grid families
      (`GRID_FAMILIES`: `spectral`, `local`, `ssm`, `recurrent`) run within each segment, the content families
      (`low_rank`, `softmax`, `mlp`) over the whole sequence, so modalities mix through content; the softmax bias is
      block-diagonal and the mlp kernel sees `segment_positions`;
    - irregular `positions` `[B, N, P]` (point clouds): only the content families, which need no grid and no order.

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
        position_dims: coordinates of the positions the softmax bias takes (2: grids; 3: point clouds too).
        gate_activation: `g`, one of `"sigmoid"`, `"silu"`, `"linear"`.
        short_conv_size: window of an `ITNetShortConv` on the values (0: none); with one, the content families read
            their features (queries, keys, `B`, `C`, `Δ`) from the convolved values instead of `u`.
        recurrent_decay: `"head"` (`ITNetRecurrentBranch`) or `"channel"` (`ITNetSelectiveScanBranch`).
        dt_rank: rank of the `"channel"` recurrence's `Δ` projection.
    """

    GRID_FAMILIES = ("spectral", "local", "ssm", "recurrent")

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
    ):
        super().__init__()
        value_size = value_size or hidden_size
        self.kernel_families = list(kernel_families)
        self.is_causal = is_causal
        self.value = nn.Linear(hidden_size, value_size)
        self.short_conv = ITNetShortConv(value_size, short_conv_size, is_causal, activation) if short_conv_size else None
        features = value_size if short_conv_size else hidden_size  # the width the content families read
        recurrent = {
            "head": lambda: ITNetRecurrentBranch(
                features, value_size, num_heads, is_causal, state_size, recurrent_discretization
            ),
            "channel": lambda: ITNetSelectiveScanBranch(
                features, value_size, is_causal, state_size, dt_rank, recurrent_discretization
            ),
        }
        if recurrent_decay not in recurrent:
            raise ValueError(f"`recurrent_decay` must be 'head' or 'channel', got {recurrent_decay!r}.")
        builders = {
            "spectral": lambda: ITNetSpectralBranch(
                value_size, num_frequencies, kernel_mlp_size, activation, is_causal, kernel_spectral_norm
            ),
            "local": lambda: ITNetLocalBranch(value_size, local_window, is_causal),
            "low_rank": lambda: ITNetLowRankBranch(features, value_size, num_heads, is_causal),
            "softmax": lambda: ITNetSoftmaxBranch(
                features, value_size, num_heads, is_causal, softmax_relative_bias, num_frequencies, kernel_mlp_size,
                activation, position_dims,
            ),
            "recurrent": recurrent[recurrent_decay],
            "ssm": lambda: ITNetSSMBranch(value_size, state_size, is_causal),
            "mlp": lambda: ITNetMLPKernelBranch(
                features, num_heads, is_causal, num_frequencies, kernel_mlp_size, activation,
                mlp_kernel_samples, mlp_kernel_tile_size, kernel_spectral_norm,
            ),
        }
        unknown = [f for f in self.kernel_families if f not in builders]
        if unknown:
            raise ValueError(f"`kernel_families` contains unknown families {unknown}; expected some of {list(builders)}.")
        self.branches = nn.ModuleDict({family: builders[family]() for family in self.kernel_families})
        self.gate = ITNetGate(hidden_size, len(self.kernel_families) * value_size)
        self.gate_act = ACT2FN[gate_activation]
        self.output = nn.Linear(value_size, output_size or hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        grid_shape: tuple[int, ...] | None,
        length_scale: tuple[float, ...] | None,
        positions: torch.Tensor | None = None,
        return_state: bool = False,
        segments: list[tuple[tuple[int, ...], tuple[float, ...]]] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, dict[str, torch.Tensor]]]:
        """`hidden_states` `[B, N, D]`; `mask` `[B, N]` or None; one of: `grid_shape` with `N = prod(grid_shape)` in
        raster order (and its `length_scale`); `segments`, a list of `(grid_shape, length_scale)`, one per
        modality, in sequence order (`N` the sum of their sizes); irregular `positions` `[B, N, P]`.

        With `return_state` (causal, 1-D grid: the prompt pass of generation), also returns every branch's generation
        state after the last token, `{family: {name: tensor [B, ...]}}`, for `step`."""
        batch, length, _ = hidden_states.shape
        if segments is not None:
            if grid_shape is not None or positions is not None or return_state:
                raise ValueError("`segments` describes the whole layout: pass no `grid_shape`, `positions` or `return_state`.")
            if segment_spans(segments)[-1][1] != length:
                raise ValueError(f"`segments` {segments} do not add up to the sequence length {length}.")
            positions = segment_positions(segments, batch, hidden_states.device)
        values = self.value(hidden_states)
        states = {}
        if self.short_conv is not None:
            if segments is not None:
                values = self._per_segment(self.short_conv, hidden_states, values, mask, segments)
            elif grid_shape is None:
                raise ValueError("`short_conv_size` > 0 needs tokens on a grid (text or image patches), not points.")
            else:
                values = self.short_conv(hidden_states, values, mask, grid_shape, length_scale, return_state=return_state)
                if return_state:
                    values, states["short_conv"] = values
        features = hidden_states if self.short_conv is None else values
        gates = self.gate_act(self.gate(hidden_states)).view(batch, length, len(self.branches), -1)
        mixed = None
        for f, (family, branch) in enumerate(self.branches.items()):
            if segments is not None and family in self.GRID_FAMILIES:
                out = self._per_segment(branch, features, values, mask, segments)
            elif segments is not None and family == "softmax":
                out = branch(features, values, mask, None, None, positions, segments=segments)
            else:
                out = branch(features, values, mask, grid_shape, length_scale, positions, return_state=return_state)
            if return_state:
                out, states[family] = out
            mixed = gates[:, :, f] * out if mixed is None else torch.addcmul(mixed, gates[:, :, f], out)
        return (self.output(mixed), states) if return_state else self.output(mixed)

    @staticmethod
    def _per_segment(branch, hidden_states, values, mask, segments) -> torch.Tensor:
        """A grid family applied within each segment of the sequence, `[B, N, V]`."""
        outputs = []
        for start, end, grid, scale in segment_spans(segments):
            segment_mask = None if mask is None else mask[:, start:end]
            outputs.append(branch(hidden_states[:, start:end], values[:, start:end], segment_mask, grid, scale))
        return torch.cat(outputs, dim=1)

    def step(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        length_scale: tuple[float, ...],
        states: dict[str, dict[str, torch.Tensor]],
    ) -> tuple[torch.Tensor, dict[str, dict[str, torch.Tensor]]]:
        """Continue a causal 1-D sequence from `states` (from `forward(..., return_state=True)` or an earlier
        `step`) by `N` new tokens, one at a time: `hidden_states` `[B, N, D]`, `mask` `[B, N]` or None (all real).
        Returns the outputs `[B, N, D]`, equal to those of `forward` on the whole sequence, and the new states."""
        if not self.is_causal:
            raise ValueError("`ITNetMixer.step` continues a causal sequence; build the mixer with `is_causal=True`.")
        batch, length, _ = hidden_states.shape
        values = self.value(hidden_states)
        gates = self.gate_act(self.gate(hidden_states)).view(batch, length, len(self.branches), -1)
        weights = hidden_states.new_ones(batch, length) if mask is None else mask
        states = dict(states)
        mixed = []
        for n in range(length):
            token, value, features = 0, values[:, n], hidden_states[:, n]
            if self.short_conv is not None:
                value, states["short_conv"] = self.short_conv.step(
                    features, value, weights[:, n], states["short_conv"], length_scale
                )
                features = value
            for f, (family, branch) in enumerate(self.branches.items()):
                out, states[family] = branch.step(features, value, weights[:, n], states[family], length_scale)
                token = token + gates[:, n, f] * out
            mixed.append(token)
        return self.output(torch.stack(mixed, dim=1)), states


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
    """Token embeddings: `input_ids [B, N] → [B, N, D]`. Natively, positions enter through the relative kernels only;
    converted models (BERT, GPT-2) also add learned absolute positions (`max_positions > 0`) and token types
    (`type_vocab_size > 0`), and normalise the sum (`layer_norm_eps` given), in `add_positions_and_types`."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_positions: int = 0,
        type_vocab_size: int = 0,
        layer_norm_eps: float | None = None,
    ):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size)
        self.position_embeddings = nn.Embedding(max_positions, hidden_size) if max_positions else None
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size) if type_vocab_size else None
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps) if layer_norm_eps else None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)

    def add_positions_and_types(
        self, embeddings: torch.Tensor, position_ids: torch.Tensor | None, token_type_ids: torch.Tensor | None
    ) -> torch.Tensor:
        """`embeddings` `[B, N, D]` plus the position embeddings of `position_ids` `[B or 1, N]` and the token-type
        embeddings of `token_type_ids` `[B, N]` (each where this module has a table), then the norm if any."""
        if self.position_embeddings is not None:
            embeddings = embeddings + self.position_embeddings(position_ids)
        if self.token_type_embeddings is not None:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return embeddings if self.norm is None else self.norm(embeddings)


class ITNetPatchEmbeddings(nn.Module):
    """Non-overlapping patches: `pixel_values [B, C, H, W] → [B, H/p, W/p, D]` (a 2-D grid of tokens).

    With `stem_channels > 0`, a convolutional stem first: two 3 x 3 convolutions (`C → S → S`, padding 1, each
    followed by GELU) at full resolution, so that each patch token sees the pixels' local structure, then the same
    `p x p` patch projection from `S` channels. Converted models (ViT) also have a learned class token
    (`cls_token`) and absolute position embeddings for the `grid_size x grid_size` grid they were trained on
    (`grid_size > 0`), added by `tokens`."""

    def __init__(
        self,
        num_channels: int,
        hidden_size: int,
        patch_size: int,
        cls_token: bool = False,
        grid_size: int = 0,
        stem_channels: int = 0,
    ):
        super().__init__()
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.grid_size = grid_size
        self.stem = None
        if stem_channels:
            self.stem = nn.Sequential(
                nn.Conv2d(num_channels, stem_channels, kernel_size=3, padding=1),
                nn.GELU(),
                nn.Conv2d(stem_channels, stem_channels, kernel_size=3, padding=1),
                nn.GELU(),
            )
        self.projection = nn.Conv2d(
            stem_channels or num_channels, hidden_size, kernel_size=patch_size, stride=patch_size
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size)) if cls_token else None
        self.position_embeddings = (
            nn.Parameter(torch.zeros(1, int(cls_token) + grid_size**2, hidden_size)) if grid_size else None
        )

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
        if self.stem is not None:
            pixel_values = self.stem(pixel_values)
        return self.projection(pixel_values).permute(0, 2, 3, 1)

    def tokens(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> tuple:
        """`[B, C, H, W]` → `([B, (1 +) h·w, D], (h, w))`: the patches in raster order, after the class token if any,
        plus the position embeddings if any, and the patch grid."""
        grid = self(pixel_values)
        batch, height, width, channels = grid.shape
        tokens = grid.reshape(batch, height * width, channels)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)
        if self.position_embeddings is not None:
            tokens = tokens + self.positions(height, width, interpolate_pos_encoding).to(tokens.dtype)
        return tokens, (height, width)

    def positions(self, height: int, width: int, interpolate: bool) -> torch.Tensor:
        """Position embeddings `[1, (1 +) height·width, D]` for a `height x width` patch grid: the table itself on
        its own grid; otherwise, with `interpolate`, the patch part resized bicubically (as ViT's
        `interpolate_pos_encoding`), the class token's entry unchanged."""
        table = self.position_embeddings
        if (height, width) == (self.grid_size, self.grid_size):
            return table
        if not interpolate:
            raise ValueError(
                f"Images of {height}x{width} patches do not match the {self.grid_size}x{self.grid_size} patch grid of "
                "the position embeddings (`config.image_size`); resize them, or pass `interpolate_pos_encoding=True` "
                "to interpolate the position embeddings."
            )
        first = int(self.cls_token is not None)
        patches = table[:, first:].reshape(1, self.grid_size, self.grid_size, -1).permute(0, 3, 1, 2)
        patches = nn.functional.interpolate(patches, size=(height, width), mode="bicubic", align_corners=False)
        return torch.cat([table[:, :first], patches.permute(0, 2, 3, 1).reshape(1, height * width, -1)], dim=1)


class ITNetPointEmbeddings(nn.Module):
    """Point tokens: coordinates `points [B, N, 3]` and optional `point_features [B, N, F]` → `[B, N, D]`, a linear
    map of `[x, y, z, features]` (PointNet's first layer). Positions also enter the kernels as offsets. With
    `cls_token`, the model prepends this learned readout token (at the points' centroid) to every cloud."""

    def __init__(self, feature_size: int, hidden_size: int, cls_token: bool = False):
        super().__init__()
        self.feature_size = feature_size
        self.projection = nn.Linear(3 + feature_size, hidden_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size)) if cls_token else None

    def forward(self, points: torch.Tensor, point_features: torch.Tensor | None = None) -> torch.Tensor:
        if points.ndim != 3 or points.shape[-1] != 3 or not points.is_floating_point():
            raise ValueError(
                f"`points` must be a float tensor of shape [batch, num_points, 3], got {points.dtype} "
                f"{list(points.shape)}."
            )
        if points.shape[1] == 0:
            raise ValueError("`points` holds no points (num_points = 0).")
        if not torch.compiler.is_compiling() and not torch.isfinite(points).all():  # data-dependent: not traced
            raise ValueError("`points` contains NaN or infinite coordinates.")
        expected = [*points.shape[:2], self.feature_size]
        if self.feature_size == 0 and point_features is not None:
            raise ValueError("`point_features` given, but the model takes none (`config.point_feature_size` = 0).")
        if self.feature_size > 0:
            if point_features is None or list(point_features.shape) != expected:
                got = None if point_features is None else list(point_features.shape)
                raise ValueError(f"`point_features` must have shape {expected} (`config.point_feature_size`), got {got}.")
            points = torch.cat([points, point_features.to(points.dtype)], dim=-1)
        return self.projection(points.to(self.projection.weight.dtype))


__all__ = [
    "ITNetFeedForward",
    "ITNetLocalBranch",
    "ITNetLowRankBranch",
    "ITNetMLPKernelBranch",
    "ITNetMixer",
    "ITNetPatchEmbeddings",
    "ITNetPointEmbeddings",
    "ITNetRecurrentBranch",
    "ITNetSSMBranch",
    "ITNetSelectiveScanBranch",
    "ITNetShortConv",
    "ITNetSoftmaxBranch",
    "ITNetSpectralBranch",
    "ITNetSpectralKernel",
    "ITNetTextEmbeddings",
    "grid_positions",
    "kernel_linear",
    "segment_positions",
    "segment_spans",
]
