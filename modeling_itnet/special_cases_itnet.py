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

Inputs and outputs of the ITNet operator are `[B, N, C]` (`[B, H·W, C]` in raster order on a 2-D grid), the
transposes of the convolutions' `[B, C, N]` and `[B, C, H, W]`.
"""

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


__all__ = ["OPEN_GATE_BIAS", "apply_conv", "mixer_from_conv"]
