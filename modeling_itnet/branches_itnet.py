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

The families live in two sibling modules, imported by the mixer (`layers_itnet.py`), which registers them:
`branches_grid_itnet.py` (the families that need a grid: `spectral`, `local`, `recurrent`, `ssm`,
`window_softmax`) and `branches_content_itnet.py` (the content families, which also run on points: `low_rank`,
`softmax`, `mlp`).

To add a family: write its kernel and `*_naive` in `kernels_itnet.py`, subclass `ITNetBranch` in one of those
modules with `@register_family`, add its name to `configuration_itnet.KERNEL_FAMILIES` (and any config field it needs); see
CONTRIBUTING.md.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .configuration_itnet import KERNEL_FAMILIES


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
"""The registry: family name → its branch class, in the order of `configuration_itnet.KERNEL_FAMILIES` (then in
registration order for families it does not list)."""


def register_family(branch_class: type[ITNetBranch]) -> type[ITNetBranch]:
    """Class decorator: registers `branch_class` under its `family`."""
    if branch_class.family in FAMILIES:
        raise ValueError(f"The kernel family {branch_class.family!r} is already registered.")
    FAMILIES[branch_class.family] = branch_class
    rank = {name: i for i, name in enumerate(KERNEL_FAMILIES)}
    ordered = sorted(FAMILIES.items(), key=lambda item: rank.get(item[0], len(rank)))
    FAMILIES.clear()
    FAMILIES.update(ordered)
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


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """`[B, N, H·E] → [B, H, N, E]`."""
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """`[B, H, N, E] → [B, N, H·E]`."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


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


__all__ = [
    "FAMILIES",
    "BranchState",
    "ITNetBranch",
    "ITNetLayout",
    "ITNetMixerOptions",
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
