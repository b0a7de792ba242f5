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
r"""Exact special cases: build the ITNet operator (`ITNetMixer`) that computes the same function as a trained
specialised module.

The mixer computes `y = W_o Σ_f σ(g_f) ⊙ T_f(W_v u)`. Each constructor below constrains it to one kernel family,
opens the gate fully (`W_g = 0`, bias `+1e4`: `σ = 1` exactly in float32 and float64) and copies the module's
weights into the value projection `W_v`, the kernel and the output projection `W_o`:

| module | family | `W_v` | kernel | `W_o` |
|---|---|---|---|---|
| `nn.Conv1d`, depthwise | `local`, window `k` | identity | the taps, flipped: `k(δ) = w[left − δ]` | identity, + conv bias |
| `nn.Conv1d`, full `C_in → C_out` | `local`, window `k` | the `k` tap matrices stacked, `k·C_out` values | indicator of tap `m`'s offset on block `m` | sums the `k` blocks, + conv bias |
| `nn.Conv2d` (square `k x k`), depthwise or full | `local`, `k x k` window | as above, per 2-D tap | as above | as above |
| `nn.MultiheadAttention` | `softmax`, no relative bias | `in_proj` value rows | `q, k` = `in_proj` query and key rows, scale `1/√d` | `out_proj` |
| BERT self-attention + `BertSelfOutput.dense` | `softmax`, no relative bias | `value` | `q, k` = `query`, `key` | `dense` |
| S4D (diagonal SSM, ZOH) | `ssm` | identity | `Ā = exp(ΔA)`, `B̄`, `C ← 2C` (conjugate pairs), `D` at `δ = 0` | identity |
| Mamba-2 SSD (selective scan) | `recurrent` (Euler `Δ·B`) + `local` window 1 for `D` | `x` rows of `in_proj` | `C`, `B`, `Δ` rows of `in_proj` per head, `A_log`, `dt_bias` | `out_proj` |
| minGRU | `recurrent` (ZOH), one head per channel, `R = 1` | `W_h` | `C = B = 1`, `Δ = softplus(W_z u)`, `A = −1`: `a = 1 − z`, `B̄ = z` | identity |

What is NOT exact: `nn.GRU` and `nn.LSTM`. Their gates read the previous state (`z_t = σ(W_z x_t + U_z h_{t−1})`),
so the output is not linear in the inputs for fixed weights, and no kernel `K(x_i, x_j, u_i, u_j)` applied to
values reproduces it; `tests/test_special_cases.py` shows the non-linearity and `benchmarks/fit_gru.py` measures
how close a small ITNet gets by fitting. minGRU drops `h_{t−1}` from the gate, which is what makes it exact.

Inputs and outputs of the ITNet operator are `[B, N, C]` (`[B, H·W, C]` in raster order on a 2-D grid), the
transposes of the convolutions' `[B, C, N]` and `[B, C, H, W]`.
"""

import math

import torch
from torch import nn

from .layers_itnet import ITNetMixer

OPEN_GATE_BIAS = 1e4
"""Gate bias for which `sigmoid` is exactly 1 in float32 and float64: `exp(−1e4)` underflows to 0."""


def _open_gates(mixer: ITNetMixer):
    nn.init.zeros_(mixer.gate.weight)
    nn.init.constant_(mixer.gate.bias, OPEN_GATE_BIAS)


def _check_conv(conv: nn.Module, padding: str):
    if any(s != 1 for s in conv.stride) or any(d != 1 for d in conv.dilation):
        raise ValueError(f"Only stride 1 and dilation 1 are integral transforms on the same grid; got {conv}.")
    if conv.groups not in (1, conv.in_channels) or (conv.groups > 1 and conv.out_channels != conv.in_channels):
        raise ValueError(f"Supported: full (groups=1) or depthwise (groups=in=out channels) convolutions; got {conv}.")
    if padding not in ("same", "causal"):
        raise ValueError(f"`padding` must be 'same' or 'causal', got {padding!r}.")
    if len(set(conv.kernel_size)) != 1:
        raise ValueError(f"The local window is square; got kernel_size={conv.kernel_size}.")


def mixer_from_conv(conv: nn.Conv1d | nn.Conv2d, padding: str = "same") -> ITNetMixer:
    r"""The ITNet operator computing `conv` on `[B, N, C_in]` (1-D) or `[B, H·W, C_in]` (2-D, raster order).

    Args:
        conv: a trained `nn.Conv1d` or `nn.Conv2d` with stride 1, dilation 1, groups 1 or depthwise, square kernel.
        padding: how the convolution is applied: `"same"` (zero padding keeping the length, as
            `padding="same"`) or `"causal"` (1-D only: `k − 1` zeros on the left, as in Mamba's short
            convolution), whatever `conv.padding` holds.

    Returns:
        an `ITNetMixer` (family `"local"`) with `mixer(u, None, grid, scale)` equal to the convolution.
    """
    _check_conv(conv, padding)
    num_axes = 1 if isinstance(conv, nn.Conv1d) else 2
    if padding == "causal" and num_axes != 1:
        raise ValueError("Causal padding is supported for Conv1d; a 2-D causal kernel is raster-causal instead.")
    size = conv.kernel_size[0]
    c_in, c_out = conv.in_channels, conv.out_channels
    depthwise = conv.groups > 1
    values = c_in if depthwise else size**num_axes * c_out
    mixer = ITNetMixer(
        c_in, 1, ["local"], is_causal=padding == "causal", local_window=size, value_size=values, output_size=c_out
    )
    dtype = conv.weight.dtype
    mixer.to(dtype)
    _open_gates(mixer)
    branch = mixer.branches["local"]
    positions = size**num_axes
    with torch.no_grad():
        # the window entry for offset δ holds tap m = left − δ: the taps, flipped; [C_out, C_in/groups, *k]
        flipped = conv.weight.flip(tuple(range(2, 2 + num_axes)))
        nn.init.zeros_(mixer.value.bias)
        if depthwise:
            mixer.value.weight.copy_(torch.eye(c_in, dtype=dtype))
            window = flipped[:, 0].movedim(0, -1)  # [*k, C]
            mixer.output.weight.copy_(torch.eye(c_in, dtype=dtype))
        else:
            # value block p = the tap matrix at window position p; the kernel on block p is the indicator of p
            blocks = flipped.movedim(0, -1).movedim(0, -1).reshape(positions, c_out, c_in)
            mixer.value.weight.copy_(blocks.reshape(-1, c_in))
            window = torch.zeros(positions, positions, c_out, dtype=dtype)
            window[torch.arange(positions), torch.arange(positions)] = 1.0
            window = window.reshape(*(size,) * num_axes, values)
            mixer.output.weight.copy_(torch.eye(c_out, dtype=dtype).repeat(1, positions))
        if num_axes == 1:
            table = torch.zeros(size, size, values, dtype=dtype)
            table[-branch.lows(2)[0]] = window  # a sequence reads the row δ_h = 0
        else:
            table = window
        branch.table.copy_(table)
        if conv.bias is not None:
            mixer.output.bias.copy_(conv.bias)
        else:
            nn.init.zeros_(mixer.output.bias)
    return mixer


def apply_conv(conv: nn.Conv1d | nn.Conv2d, inputs: torch.Tensor, padding: str = "same") -> torch.Tensor:
    """Reference application of `conv` to `[B, N, C]` / `[B, H, W, C]` inputs, as `mixer_from_conv` reads it."""
    x = inputs.movedim(-1, 1)
    if padding == "causal":
        x = nn.functional.pad(x, (conv.kernel_size[0] - 1, 0))
        out = nn.functional.conv1d(x, conv.weight, conv.bias, groups=conv.groups)
    else:
        fn = nn.functional.conv1d if isinstance(conv, nn.Conv1d) else nn.functional.conv2d
        out = fn(x, conv.weight, conv.bias, padding="same", groups=conv.groups)
    return out.movedim(1, -1)


def _copy_linear(target: nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None):
    target.weight.copy_(weight)
    if bias is None:
        nn.init.zeros_(target.bias)
    else:
        target.bias.copy_(bias)


def _identity(layer: nn.Linear):
    layer.weight.copy_(torch.eye(layer.weight.shape[0], layer.weight.shape[1], dtype=layer.weight.dtype))
    nn.init.zeros_(layer.bias)


def mixer_from_multihead_attention(
    attention: nn.MultiheadAttention, causal: bool = False, window: int | None = None
) -> ITNetMixer:
    r"""The ITNet operator computing `attention(x, x, x)` (self-attention) on `[B, N, E]`: the `softmax` family, or
    with `window = W` the `window_softmax` family, which computes `attention(x, x, x, attn_mask=band)` with the
    banded mask of a sliding window (`band[i, j]` True, i.e. blocked, unless `0 ≤ i − j < W` causal, `|i − j| < W`).

    Padding: `mask = ~key_padding_mask`; causal: `is_causal`. `add_bias_kv`, `add_zero_attn` and separate key/value
    widths are not integral transforms of the sequence alone and are rejected.
    """
    if attention.bias_k is not None or attention.add_zero_attn or not attention._qkv_same_embed_dim:
        raise ValueError("Supported: self-attention without add_bias_kv/add_zero_attn, kdim = vdim = embed_dim.")
    if window is not None and window < 1:
        raise ValueError(f"`window` must be None (full attention) or at least 1, got {window}.")
    width = attention.embed_dim
    family = "softmax" if window is None else "window_softmax"
    mixer = ITNetMixer(
        width, attention.num_heads, [family], is_causal=causal, softmax_relative_bias=False,
        family_options={} if window is None else {"window_softmax_size": window},
    )  # fmt: skip
    mixer.to(attention.in_proj_weight.dtype)
    _open_gates(mixer)
    bias = attention.in_proj_bias
    with torch.no_grad():
        _copy_linear(
            mixer.branches[family].query_key,
            attention.in_proj_weight[: 2 * width],
            None if bias is None else bias[: 2 * width],
        )
        _copy_linear(mixer.value, attention.in_proj_weight[2 * width :], None if bias is None else bias[2 * width :])
        _copy_linear(mixer.output, attention.out_proj.weight, attention.out_proj.bias)
    return mixer


def mixer_from_bert_attention(self_attention: nn.Module, output_dense: nn.Linear, causal: bool = False) -> ITNetMixer:
    r"""The ITNet operator computing `output_dense(BertSelfAttention(x))`: BERT's `attention.self` and
    `attention.output.dense` (the residual and LayerNorm of `BertSelfOutput` sit outside the token mixer)."""
    width = self_attention.query.in_features
    mixer = ITNetMixer(
        width, self_attention.num_attention_heads, ["softmax"], is_causal=causal, softmax_relative_bias=False
    )
    mixer.to(self_attention.query.weight.dtype)
    _open_gates(mixer)
    with torch.no_grad():
        query_key = mixer.branches["softmax"].query_key
        _copy_linear(
            query_key,
            torch.cat([self_attention.query.weight, self_attention.key.weight]),
            torch.cat([self_attention.query.bias, self_attention.key.bias]),
        )
        _copy_linear(mixer.value, self_attention.value.weight, self_attention.value.bias)
        _copy_linear(mixer.output, output_dense.weight, output_dense.bias)
    return mixer


class S4D(nn.Module):
    r"""Reference S4D layer (Gu et al. 2022), diagonal SSM with zero-order hold, per channel `h`, written as its
    recurrence: `x_t = Ā x_{t−1} + B̄ u_t`, `y_t = 2 Re(C x_t) + D u_t`, `Ā = exp(ΔA)`, `B̄ = (Ā − 1)/A` (B = 1),
    over `state_size // 2` complex modes (the conjugate halves give the factor 2). Input and output `[B, N, H]`."""

    def __init__(self, channels: int, state_size: int = 16):
        super().__init__()
        modes = state_size // 2
        self.log_dt = nn.Parameter(torch.rand(channels) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.A_log = nn.Parameter(torch.log(0.5 * torch.ones(channels, modes)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(modes, dtype=torch.float32).repeat(channels, 1))
        self.C = nn.Parameter(torch.randn(channels, modes, 2) * 0.5**0.5)
        self.D = nn.Parameter(torch.randn(channels))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        A = torch.complex(-torch.exp(self.A_log), self.A_imag)
        dt_A = torch.exp(self.log_dt)[:, None] * A
        A_bar, B_bar = torch.exp(dt_A), torch.expm1(dt_A) / A
        C = torch.view_as_complex(self.C.contiguous())
        state = torch.zeros(inputs.shape[0], *A.shape, dtype=A.dtype)
        outputs = []
        for t in range(inputs.shape[1]):
            state = A_bar * state + B_bar * inputs[:, t, :, None]
            outputs.append(2 * (C * state).sum(-1).real + self.D * inputs[:, t])
        return torch.stack(outputs, dim=1)


def mixer_from_s4d(layer: S4D, causal: bool = True) -> ITNetMixer:
    """The ITNet operator (family `ssm`) computing `layer` on `[B, N, H]`."""
    channels, modes = layer.A_log.shape
    mixer = ITNetMixer(channels, 1, ["ssm"], is_causal=causal, state_size=2 * modes)
    _open_gates(mixer)
    branch = mixer.branches["ssm"]
    with torch.no_grad():
        _identity(mixer.value)
        _identity(mixer.output)
        branch.log_dt.copy_(layer.log_dt)
        branch.A_log.copy_(layer.A_log)
        branch.A_imag.copy_(layer.A_imag)
        branch.B.copy_(torch.stack([torch.ones_like(layer.A_log), torch.zeros_like(layer.A_log)], dim=-1))
        branch.C.copy_(2 * layer.C)
        branch.skip.copy_(layer.D)
    return mixer


class SSD(nn.Module):
    r"""Reference Mamba-2 SSD layer (Dao & Gu 2024) with one group (`B`, `C` shared by the heads), written as its
    recurrence per head `h`:

        h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t x_tᵀ,    y_t = C_tᵀ h_t + D x_t,    Δ_t = softplus(dt_t + dt_bias)

    with `x, B, C, dt = in_proj(u)`, `A = −exp(A_log)` and `out_proj` on the concatenated heads. `[B, N, D]`."""

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int, state_size: int):
        super().__init__()
        self.num_heads, self.head_dim, self.state_size = num_heads, head_dim, state_size
        self.in_proj = nn.Linear(hidden_size, num_heads * head_dim + 2 * state_size + num_heads)
        self.A_log = nn.Parameter(torch.log(torch.rand(num_heads) * 15 + 1))
        self.dt_bias = nn.Parameter(torch.rand(num_heads) - 3)
        self.D = nn.Parameter(torch.randn(num_heads))
        self.out_proj = nn.Linear(num_heads * head_dim, hidden_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch, length, _ = inputs.shape
        x, B, C, dt = self.in_proj(inputs).split(
            [self.num_heads * self.head_dim, self.state_size, self.state_size, self.num_heads], dim=-1
        )
        x = x.view(batch, length, self.num_heads, self.head_dim)
        delta = nn.functional.softplus(dt + self.dt_bias)  # [B, N, H]
        A = -torch.exp(self.A_log)
        state = inputs.new_zeros(batch, self.num_heads, self.state_size, self.head_dim)
        outputs = []
        for t in range(length):
            decay = torch.exp(delta[:, t] * A)[:, :, None, None]
            state = decay * state + (delta[:, t, :, None, None] * B[:, t, None, :, None]) * x[:, t, :, None, :]
            y = torch.einsum("bn,bhnp->bhp", C[:, t], state) + self.D[:, None] * x[:, t]
            outputs.append(y.reshape(batch, -1))
        return self.out_proj(torch.stack(outputs, dim=1))


def mixer_from_ssd(layer: SSD) -> ITNetMixer:
    """The ITNet operator (families `recurrent` + `local` window 1 for `D`) computing `layer` on `[B, N, D]`."""
    heads, head_dim, state = layer.num_heads, layer.head_dim, layer.state_size
    hidden = layer.in_proj.in_features
    mixer = ITNetMixer(
        hidden,
        heads,
        ["recurrent", "local"],
        is_causal=True,
        state_size=state,
        recurrent_discretization="euler",
        local_window=1,
        value_size=heads * head_dim,
        output_size=layer.out_proj.out_features,
    )
    _open_gates(mixer)
    weight, bias = layer.in_proj.weight, layer.in_proj.bias
    x_rows = slice(0, heads * head_dim)
    B_rows = slice(heads * head_dim, heads * head_dim + state)
    C_rows = slice(B_rows.stop, B_rows.stop + state)
    dt_rows = slice(C_rows.stop, C_rows.stop + heads)
    recurrent = mixer.branches["recurrent"]
    with torch.no_grad():
        _copy_linear(mixer.value, weight[x_rows], bias[x_rows])
        # per head: [C (R), B (R), dt (1)]; one group, so B and C are shared by the heads
        rows = torch.cat(
            [torch.cat([weight[C_rows], weight[B_rows], weight[dt_rows][h : h + 1]]) for h in range(heads)]
        )
        biases = torch.cat([torch.cat([bias[C_rows], bias[B_rows], bias[dt_rows][h : h + 1]]) for h in range(heads)])
        _copy_linear(recurrent.projection, rows, biases)
        recurrent.A_log.copy_(layer.A_log)
        recurrent.dt_bias.copy_(layer.dt_bias)
        mixer.branches["local"].table.copy_(layer.D.repeat_interleave(head_dim).view(1, 1, -1))
        _copy_linear(mixer.output, layer.out_proj.weight, layer.out_proj.bias)
    return mixer


class MinGRU(nn.Module):
    r"""Reference minGRU (Feng et al. 2024, "Were RNNs all we needed?"), sequential form:

    z_t = σ(W_z x_t),   h̃_t = W_h x_t,   h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t,   h_0 = 0.   `[B, N, D]`."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.gate = nn.Linear(input_size, hidden_size)
        self.candidate = nn.Linear(input_size, hidden_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        z, candidate = torch.sigmoid(self.gate(inputs)), self.candidate(inputs)
        state = inputs.new_zeros(inputs.shape[0], z.shape[-1])
        outputs = []
        for t in range(inputs.shape[1]):
            state = (1 - z[:, t]) * state + z[:, t] * candidate[:, t]
            outputs.append(state)
        return torch.stack(outputs, dim=1)


def mixer_from_mingru(layer: MinGRU) -> ITNetMixer:
    """The ITNet operator (family `recurrent`, ZOH, one head of rank 1 per channel) computing `layer`."""
    channels, inputs = layer.gate.out_features, layer.gate.in_features
    mixer = ITNetMixer(
        inputs,
        channels,
        ["recurrent"],
        is_causal=True,
        state_size=1,
        recurrent_discretization="zoh",
        value_size=channels,
        output_size=channels,
    )
    _open_gates(mixer)
    recurrent = mixer.branches["recurrent"]
    with torch.no_grad():
        _copy_linear(mixer.value, layer.candidate.weight, layer.candidate.bias)
        # per head (channel): C = 1, B = 1 (constant rows), dt = W_z u; A = −1, dt_bias = 0
        weight = torch.zeros(channels, 3, inputs)
        weight[:, 2] = layer.gate.weight
        bias = torch.ones(channels, 3)
        bias[:, 2] = layer.gate.bias
        _copy_linear(recurrent.projection, weight.reshape(-1, inputs), bias.reshape(-1))
        nn.init.zeros_(recurrent.A_log)
        nn.init.zeros_(recurrent.dt_bias)
        _identity(mixer.output)
    return mixer


__all__ = [
    "OPEN_GATE_BIAS",
    "S4D",
    "SSD",
    "MinGRU",
    "apply_conv",
    "mixer_from_bert_attention",
    "mixer_from_conv",
    "mixer_from_mingru",
    "mixer_from_multihead_attention",
    "mixer_from_s4d",
    "mixer_from_ssd",
]
