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
"""ITNet's modality encoders: token embeddings for text, patch embeddings (with an optional convolutional stem) for
images, a per-point projection for point clouds. Each maps its input to tokens `[B, N, D]` for the mixer."""

import itertools

import torch
from torch import nn


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


class ITNetStemLinear(nn.Linear):
    """A layer of the point stem: an `nn.Linear` that `ITNetPreTrainedModel._init_weights` initialises at PyTorch's
    default scale (`U(±1/√fan_in)`), not at `initializer_range`, so that raw coordinates keep their scale."""


class ITNetStemOutput(nn.Linear):
    """The last layer of the point stem, zero at initialisation: the stem starts as the plain linear embedding. (A
    shared per-point MLP that is not residual drowns the points' differences in its biases' common offset, which no
    per-token norm removes: the trunk then sees nearly the same token everywhere, and did not learn, see
    `benchmarks/results/ablate_unified_readout_points_stem.log`.)"""


class ITNetStemConv2d(nn.Conv2d):
    """A layer of the image stem: an `nn.Conv2d` initialised at PyTorch's default scale, as `ITNetStemLinear`."""


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
                ITNetStemConv2d(num_channels, stem_channels, kernel_size=3, padding=1),
                nn.GELU(),
                ITNetStemConv2d(stem_channels, stem_channels, kernel_size=3, padding=1),
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


def point_centroid(points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The centroid `[B, 1, 3]` of each cloud's real points (`points` `[B, N, 3]`, `mask` `[B, N]` weights)."""
    weights = torch.ones_like(points[..., :1]) if mask is None else mask.unsqueeze(-1).to(points.dtype)
    return (points * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1.0)


class ITNetPointBatchNorm(nn.BatchNorm1d):
    r"""Batch norm of point states `[B, N, D]` over the real points of the batch (PointNet's normalisation; a point
    trunk's norms when `config.point_norm_type = "batch_norm"`). Each channel `c`:

        training:   μ_c = Σ_bn w_bn h_bnc / Σ_bn w_bn,    σ²_c = Σ_bn w_bn (h_bnc − μ_c)² / Σ_bn w_bn,
                    and the running statistics updated as `nn.BatchNorm1d` updates them;
        evaluation: μ_c, σ²_c the running statistics;
        out_bnc = (h_bnc − μ_c) / √(σ²_c + ε) · γ_c + β_c,

    `w` the point mask `[B, N]` (1 real, 0 padding). Without a mask it is `nn.BatchNorm1d` on the `[B·N, D]` points;
    with one, the same on the real points alone (the padding normalised with their statistics, and read by nothing),
    written out as above so that shapes stay static (`torch.compile`). Unlike a layer norm, it keeps each point's
    scale against the others', which a cloud's shape lives in (`benchmarks/diagnose_points.py`)."""

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        flat = hidden_states.reshape(-1, hidden_states.shape[-1])  # [B·N, D]
        if mask is None or not self.training:  # evaluation normalises every point alike, with running statistics
            return super().forward(flat).view_as(hidden_states)
        # 1. the statistics of the real points
        weights = mask.reshape(-1, 1).to(flat.dtype)
        count = weights.sum()
        mean = (weights * flat).sum(0) / count
        variance = (weights * (flat - mean).square()).sum(0) / count
        # 2. the running statistics, as nn.BatchNorm1d updates them (unbiased variance)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum
                if momentum is None:  # a cumulative average, as nn.BatchNorm1d's (a tensor: no host sync)
                    momentum = (1.0 / self.num_batches_tracked).to(self.running_mean.dtype)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(variance.detach() * count / (count - 1).clamp_min(1.0), momentum)
        # 3. normalise, scale and shift
        return ((flat - mean) * torch.rsqrt(variance + self.eps) * self.weight + self.bias).view_as(hidden_states)


class ITNetPointEmbeddings(nn.Module):
    """Point tokens: coordinates `points [B, N, 3]` and optional `point_features [B, N, F]` → `[B, N, D]`, from
    `p_i = [x, y, z, features]` by one of (`stem_size`, `stem_type`):

    - no stem (`stem_size = 0`): `h_i = W p_i`, a linear map (PointNet's first layer without its norm);
    - `stem_type="residual"`: `h_i = W p_i + MLP(p_i)`, a shared per-point MLP (`3 + F → S → S → D`, GELU after the
      first two layers) as a residual branch whose last layer starts at zero: the linear map at initialisation;
    - `stem_type="pointnet"`: PointNet's shared MLP, `3 + F → S → S → D`, every layer `ReLU(BN(W x))` with the batch
      norm over the batch's real points (`ITNetPointBatchNorm`, `mask`), in place of the linear map.

    With `radius_feature`, `p_i` also holds `‖x_i − c‖²`, the squared distance from the centroid `c` of the cloud's
    real points (weights `mask`). Positions also enter the kernels as offsets. With `cls_token`, the model prepends
    this learned readout token (at the points' centroid) to every cloud."""

    def __init__(
        self, feature_size: int, hidden_size: int, cls_token: bool = False, stem_size: int = 0,
        radius_feature: bool = False, stem_type: str = "residual", eps: float = 1e-5,
    ):  # fmt: skip
        super().__init__()
        self.feature_size = feature_size
        self.radius_feature = radius_feature
        inputs = 3 + feature_size + int(radius_feature)
        self.stem = self.stem_norms = self.projection = None
        if stem_size and stem_type == "pointnet":
            sizes = [inputs, stem_size, stem_size, hidden_size]
            self.stem = nn.ModuleList(ITNetStemLinear(a, b) for a, b in itertools.pairwise(sizes))
            self.stem_norms = nn.ModuleList(ITNetPointBatchNorm(size, eps=eps) for size in sizes[1:])
        else:
            if stem_size:
                self.stem = nn.Sequential(
                    ITNetStemLinear(inputs, stem_size),
                    nn.GELU(),
                    ITNetStemLinear(stem_size, stem_size),
                    nn.GELU(),
                    ITNetStemOutput(stem_size, hidden_size),
                )
            self.projection = nn.Linear(inputs, hidden_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size)) if cls_token else None

    def check(self, points: torch.Tensor, point_features: torch.Tensor | None = None) -> torch.Tensor:
        """Raise a clear error for malformed `points` or `point_features`; returns `[x, y, z, features]`
        `[B, N, 3 + F]`."""
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
                raise ValueError(
                    f"`point_features` must have shape {expected} (`config.point_feature_size`), got {got}."
                )
            points = torch.cat([points, point_features.to(points.dtype)], dim=-1)
        return points

    def forward(
        self, points: torch.Tensor, point_features: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`points` `[B, N, 3]`, `point_features` `[B, N, F]`, `mask` `[B, N]` (1 real, 0 padding) → `[B, N, D]`."""
        return self.embed(self.check(points, point_features), mask)

    def embed(self, points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The tokens of inputs `check` has validated, `[x, y, z, features]` `[B, N, 3 + F]` → `[B, N, D]`."""
        if self.radius_feature:
            coords = points[..., :3]
            radius = (coords - point_centroid(coords, mask)).square().sum(-1, keepdim=True)
            points = torch.cat([points, radius], dim=-1)
        if self.stem_norms is not None:  # PointNet's shared MLP
            hidden_states = points.to(self.stem[0].weight.dtype)
            for linear, norm in zip(self.stem, self.stem_norms):
                hidden_states = nn.functional.relu(norm(linear(hidden_states), mask))
            return hidden_states
        points = points.to(self.projection.weight.dtype)
        if self.stem is None:
            return self.projection(points)
        return self.projection(points) + self.stem(points)


__all__ = [
    "ITNetPatchEmbeddings",
    "ITNetPointBatchNorm",
    "ITNetPointEmbeddings",
    "ITNetStemConv2d",
    "ITNetStemLinear",
    "ITNetStemOutput",
    "ITNetTextEmbeddings",
    "point_centroid",
]
