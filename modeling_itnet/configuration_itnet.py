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
"""ITNet model configuration."""

import math
from typing import ClassVar, Literal

from huggingface_hub.errors import StrictDataclassError

from .compat_itnet import PreTrainedConfig, strict

KERNEL_FAMILIES = ("spectral", "local", "low_rank", "softmax", "recurrent", "ssm", "mlp", "window_softmax")
"""Kernel families an `ITNetConfig` may list in `kernel_families`."""

HIDDEN_ACTIVATIONS = ("gelu", "gelu_new", "relu", "silu", "swish", "tanh")

GATE_ACTIVATIONS = ("sigmoid", "silu", "linear")
"""Activations of the mixer's per-family gates: `sigmoid` (native ITNet), `silu` (Mamba's output gate), `linear`
(`W u + b`; a constant gate of exactly 1 or 0 is then representable, which converted models use)."""
POOLINGS = ("mean", "first", "max", "attention")
"""Readouts of `pooling` and `modality_pooling` (see `ITNetModel._pool`)."""
POOLING_MODALITIES = ("text", "image", "image_text", "points")
"""The keys of `modality_pooling`: text alone, images alone, image + text, point clouds."""
STEM_MODALITIES = ("image", "image_text")
"""The keys of a dict `image_stem_channels`: the image encoder of images alone, of image + text."""


@strict
class ITNetConfig(PreTrainedConfig):
    r"""
    Configuration of an ITNet model: a stack of Integral Transform Blocks whose token mixer is

        y_i = Σ_j w_j · K(x_i, x_j, u_i, u_j) · v_j

    with the kernel `K` built from the families listed in `kernel_families` and mixed by learned gates.

    Args:
        vocab_size (`int`, defaults to 8192): size of the token vocabulary (text inputs).
        hidden_size (`int`, defaults to 256): width `D` of the residual stream.
        num_hidden_layers (`int`, defaults to 4): number of Integral Transform Blocks.
        num_attention_heads (`int`, defaults to 4): heads of the low-rank content kernel; must divide
            `hidden_size`.
        intermediate_size (`int`, defaults to 1024): width of each block's feed-forward network; 0 builds blocks
            without one (a mixer-only block, as Mamba's).
        hidden_act (`str`, defaults to `"gelu"`): activation of the feed-forward network and kernel MLPs.
        hidden_dropout_prob (`float`, defaults to 0.0): dropout on each residual branch.
        max_position_embeddings (`int`, defaults to 2048): the longest text sequence the model accepts. It also
            sets the length scale of the 1-D spectral kernel: offsets are measured in units of
            `max_position_embeddings` before their Fourier features are taken, so a kernel learned at one
            length is the same function of the offset at any other.
        image_size (`int`, defaults to 32): side of the square images the model is configured for. Offsets on the
            2-D patch grid are measured in units of `image_size // patch_size` patches, so other image sizes
            (any multiple of `patch_size`) reuse the same continuous kernel.
        patch_size (`int`, defaults to 4): side of the square image patches.
        num_channels (`int`, defaults to 3): channels of `pixel_values`.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of the layer norms.
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal weight initialisation.
        feed_forward_initializer_range (`float`, *optional*): std of the feed-forward blocks' weights (`fc1`, `fc2`)
            alone; `None` (the default) draws them at `initializer_range` like every other weight.
        kernel_families (`list[str]`, defaults to `["spectral", "low_rank"]`): kernel families mixed in every
            block, from `"spectral"` (stationary `k(x_i - x_j)` from an MLP, global, by FFT), `"local"` (stationary
            kernel on a `local_window` window, one value per offset: a depthwise convolution), `"low_rank"`
            (normalised content kernel `φ(q_i)·ψ(k_j)`, linear in N), `"softmax"` (multi-head attention, fused
            SDPA), `"recurrent"` (selective state space: causal low-rank kernel with data-dependent decay),
            `"ssm"` (S4D: stationary causal kernel `Re(C Aᵗ B)`, by FFT) and `"mlp"` (the unconstrained kernel
            `MLP(γ(x_i − x_j), a(u_i), b(u_j))`, tiled or Monte Carlo) and `"window_softmax"` (attention within a
            sliding window of `window_softmax_size` tokens, O(N·W)). See `branches_itnet.FAMILIES`.
        is_causal (`bool`, defaults to `False`): restrict every kernel to `K(x_i, x_j) = 0` for `j > i`
            (raster order on the 2-D grid).
        kernel_num_frequencies (`int`, defaults to 16): Fourier frequencies per offset coordinate fed to the
            generated kernels: the `"spectral"` kernel MLP, the `"softmax"` relative-position bias and the `"mlp"`
            kernel. Saved as `spectral_num_frequencies` before; that name still loads (`attribute_map`).
        kernel_mlp_size (`int`, defaults to 64): hidden width of the same generated kernels' MLPs. Saved as
            `spectral_mlp_size` before; that name still loads.
        local_window (`int`, defaults to 3): side `W` of the `"local"` family's window of offsets (`W` taps on a
            sequence, `W x W` on the patch grid).
        window_softmax_size (`int`, defaults to 64): window `W` of the `"window_softmax"` family: token `i` attends
            to `j` with `0 ≤ i − j < W` (causal, as Mistral's `sliding_window`) or `|i − j| < W` (raster order).
        softmax_relative_bias (`bool`, defaults to `True`): add a learned relative-position bias `b(x_i − x_j)`
            (per head) to the `"softmax"` family's scores.
        softmax_bias_form (`str`, defaults to `"kernel_mlp"`): the form of that bias: `"kernel_mlp"`, a kernel MLP
            on Fourier features of the offset, added as an `[H, N, N]` table (SDPA off its fused path); or
            `"fourier"`, a learned Fourier series of the offset in `softmax_bias_frequencies` terms, folded into the
            queries and keys so attention stays fused (`kernels_itnet.softmax_fourier_transform`).
        softmax_bias_frequencies (`int`, *optional*): the number `R` of frequencies of that bias (either form);
            `None` takes `kernel_num_frequencies`. The fused form attends over `D + 2R` features per head of `D`:
            at `D = 64`, `R = 4` costs 1.04-1.06x plain SDPA and `R = 16` 1.25-1.33x (`benchmarks/softmax_bias.py`).
        state_size (`int`, defaults to 16): state size of the `"recurrent"` family (per head) and of the `"ssm"`
            family (per channel, `state_size // 2` complex modes).
        recurrent_discretization (`str`, defaults to `"euler"`): input coefficient of the `"recurrent"` family,
            `"euler"` (`Δ·B`, as Mamba) or `"zoh"` (`(1 − e^{ΔA})/(−A)·B`, exact zero-order hold).
        mlp_kernel_samples (`int`, defaults to 0): 0 evaluates the `"mlp"` family exactly by tiled kernel fusion;
            `M > 0` estimates it by importance-weighted Monte Carlo with `M` keys per query.
        mlp_kernel_tile_size (`int`, defaults to 128): tile side of the tiled `"mlp"` family.
        kernel_spectral_norm (`bool`, defaults to `False`): spectral normalisation of the kernel MLPs (the
            spectral, softmax-bias and mlp kernels); see the README on when to use it.
        tie_word_embeddings (`bool`, defaults to `True`): share one matrix between the token embedding and the
            language-modelling head's output projection (`ITNetForCausalLM`); `False` gives the head its own.
        max_num_images (`int`, defaults to 2): the most images one image+text input may hold (VQA: 1, NLVR2: 2).
            Models that read text and images together learn one modality embedding for the text and one per image
            slot, added to the tokens of the joint sequence.
        point_feature_size (`int`, defaults to 0): per-point features (e.g. normals, colours) that point-cloud
            models take beside the `[B, N, 3]` coordinates, as `point_features` `[B, N, point_feature_size]`.

    Architectural options (defaults: native ITNet; other values describe converted models, see `convert.py`):

        norm_position (`str`, defaults to `"pre"`): `"pre"`: `h + Sublayer(Norm(h))` and a final norm after the last
            block; `"post"` (BERT): `Norm(h + Sublayer(h))` and no final norm.
        norm_type (`str`, defaults to `"layer_norm"`): `"layer_norm"` or `"rms_norm"` (Mamba) for the block and
            final norms.
        position_embedding_type (`str`, defaults to `"relative"`): `"relative"`: positions enter only through the
            kernels' offsets; `"absolute"`: a learned position embedding is also added to the tokens
            (`max_position_embeddings` rows for text, one per patch of the `image_size` grid for images, plus one
            for the class token), and inputs accept `position_ids`.
        type_vocab_size (`int`, defaults to 0): token-type (segment) embeddings added to text tokens, read from
            `token_type_ids` (BERT: 2); 0 for none.
        embedding_norm (`bool`, defaults to `False`): a layer norm on the summed token embeddings (BERT).
        image_cls_token (`bool`, defaults to `False`): prepend a learned class token to each image's patches (ViT).
            It is a one-token segment of its own: the grid families act on the patches, the content families on all.
        point_cls_token (`bool`, defaults to `False`): prepend a learned readout token to each point cloud, placed at
            the centroid of its real points (with `pooling="first"`, the cloud's readout; the output still does not
            depend on the order of the points).
        image_stem_channels (`int` or `dict[str, int]`, defaults to 0): if > 0, a convolutional stem of two 3 x 3
            convolutions with this many channels (and GELU) runs on the pixels before the patch projection (see
            `ITNetPatchEmbeddings`); 0: the plain patch projection (ViT's). A dict sets one per image encoder, keys
            among `STEM_MODALITIES`: `"image"` for a model built for images alone, `"image_text"` for one built for
            text and images (its pure image inputs take it too); a key left out means 0 (e.g. `{"image": 16}`: the
            stem for image classification, the plain projection under VQA).
        point_stem_size (`int`, defaults to 0): if > 0, a per-point MLP stem (PointNet's shared MLP) of two layers
            of this width embeds `[x, y, z, features]`, in the form `point_stem_type` names (see
            `ITNetPointEmbeddings`); 0: the plain linear projection.
        point_stem_type (`str`, defaults to `"residual"`): the form of that stem: `"residual"` (GELU layers beside the
            linear projection, the last starting at zero) or `"pointnet"` (PointNet's `ReLU(BN(W x))` layers, batch
            norm over the batch's real points, in place of the projection). Needs `point_stem_size > 0`.
        point_radius_feature (`bool`, defaults to `False`): give the point embedding each point's squared distance
            from the centroid of its cloud's real points, `‖p_i − c‖²`, beside its coordinates: a feature that rotates
            and translates with nothing and that the blocks' per-point layer norm cannot scale away (of a linear
            embedding of the coordinates alone, it sees only each point's direction).
        point_norm_type (`str`, defaults to `"layer_norm"`): the norms of a point-cloud trunk: `"layer_norm"` (each
            point on its own, as every other trunk), or `"batch_norm"` (PointNet's: each channel over the batch's real
            points, running statistics in evaluation; `ITNetPointBatchNorm`), which keeps each point's scale against
            the others'. Other modalities' trunks always take `norm_type`.
        gate_bias_init (`float`, defaults to 0.0): initial bias of the mixer's per-family gates (0 with the sigmoid:
            every family starts half open; > 0 opens them, < 0 closes them).
        pooling (`str`, defaults to `"mean"`): `pooler_output` is the masked mean of the final states (`"mean"`),
            the first token's state (`"first"`: BERT's `[CLS]`, ViT's class token), their per-channel maximum over
            the real tokens (`"max"`, PointNet's readout) or a learned attention pooling `Σ_j softmax_j(a·h_j) h_j`
            over the real tokens (`"attention"`, a mean at initialisation).
        modality_pooling (`dict[str, str]`, optional): a pooling per input modality, overriding `pooling` for the
            modalities it names: keys among `"text"`, `"image"`, `"image_text"` and `"points"`, values as `pooling`
            (e.g. `{"image": "max", "points": "mean"}`: one trunk, each modality read out its own way).
        pooler_activation (`str`, optional): if set, `pooler_output` goes through a dense layer and this activation
            (BERT and ViT: `"tanh"`).
        gate_activation (`str`, defaults to `"sigmoid"`): activation of the mixer's per-family gates, one of
            `GATE_ACTIVATIONS`.
        value_size (`int`, optional): width `V` of the mixer's values (defaults to `hidden_size`; Mamba: its
            `intermediate_size`).
        short_conv_size (`int`, defaults to 0): if > 0, a depthwise convolution over this many positions (causal
            when `is_causal`, with a bias, followed by `hidden_act`) is applied to the values before the kernels,
            and the content kernels (`low_rank`, `softmax`, `recurrent`, `mlp`) read their features from the
            convolved values instead of the block input (Mamba's short convolution).
        recurrent_decay (`str`, defaults to `"head"`): the `"recurrent"` family's structure. `"head"`: a scalar
            decay per head with per-head `B`, `C` (Mamba-2); `"channel"`: one recurrence per value channel with a
            decay per channel and state, `B`, `C` shared by all channels and `Δ` through a rank-`recurrent_dt_rank`
            projection (Mamba's selective scan).
        recurrent_dt_rank (`int`, defaults to 0): rank of the `Δ` projection in `recurrent_decay="channel"`; 0 means
            `ceil(hidden_size / 16)` (Mamba's `"auto"`).

    Example:

    ```python
    >>> from modeling_itnet import ITNetConfig, ITNetModel
    >>> model = ITNetModel(ITNetConfig(hidden_size=64, num_hidden_layers=2))
    ```
    """

    model_type = "itnet"
    # the generated kernels' settings, under their names before they were shared by three families
    attribute_map: ClassVar[dict[str, str]] = {
        "spectral_num_frequencies": "kernel_num_frequencies",
        "spectral_mlp_size": "kernel_mlp_size",
    }

    vocab_size: int = 8192
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    max_position_embeddings: int = 2048
    image_size: int = 32
    patch_size: int = 4
    num_channels: int = 3
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    feed_forward_initializer_range: float | None = None
    kernel_families: list[str] | tuple[str, ...] = ("spectral", "low_rank")
    is_causal: bool = False
    kernel_num_frequencies: int = 16
    kernel_mlp_size: int = 64
    local_window: int = 3
    window_softmax_size: int = 64
    softmax_relative_bias: bool = True
    softmax_bias_form: Literal["kernel_mlp", "fourier"] = "kernel_mlp"
    softmax_bias_frequencies: int | None = None
    state_size: int = 16
    recurrent_discretization: Literal["euler", "zoh"] = "euler"
    mlp_kernel_samples: int = 0
    mlp_kernel_tile_size: int = 128
    kernel_spectral_norm: bool = False
    tie_word_embeddings: bool = True
    max_num_images: int = 2
    point_feature_size: int = 0
    norm_position: Literal["pre", "post"] = "pre"
    norm_type: Literal["layer_norm", "rms_norm"] = "layer_norm"
    position_embedding_type: Literal["relative", "absolute"] = "relative"
    type_vocab_size: int = 0
    embedding_norm: bool = False
    image_cls_token: bool = False
    image_stem_channels: int | dict[str, int] = 0
    point_cls_token: bool = False
    point_stem_size: int = 0
    point_stem_type: Literal["residual", "pointnet"] = "residual"
    point_radius_feature: bool = False
    point_norm_type: Literal["layer_norm", "batch_norm"] = "layer_norm"
    gate_bias_init: float | int = 0.0
    pooling: Literal[POOLINGS] = "mean"
    modality_pooling: dict[str, str] | None = None
    pooler_activation: str | None = None
    gate_activation: Literal[GATE_ACTIVATIONS] = "sigmoid"
    value_size: int | None = None
    short_conv_size: int = 0
    recurrent_decay: Literal["head", "channel"] = "head"
    recurrent_dt_rank: int = 0

    def __post_init__(self, **kwargs):
        self.kernel_families = list(self.kernel_families)
        super().__post_init__(**kwargs)
        # Raise the plain ValueError here; `@strict` re-runs the validator and would wrap it.
        self.validate_architecture()

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """`PreTrainedConfig.from_dict`; an invalid configuration (as read from a `config.json`) raises the
        `ValueError` of `validate_architecture` (or of a field's type, e.g. a `Literal` choice), naming the field and,
        when known, the checkpoint it came from."""
        try:
            return super().from_dict(config_dict, **kwargs)
        except (ValueError, StrictDataclassError) as error:
            source = kwargs.get("name_or_path") or config_dict.get("_name_or_path") or config_dict.get("name_or_path")
            where = f"{source}/config.json" if source else "config.json (or config dict)"
            raise ValueError(f"Invalid ITNet configuration in {where}: {error}") from error

    def validate_architecture(self):
        """Raise a `ValueError` naming the field when the configuration cannot describe a model."""
        positive = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "max_position_embeddings",
            "image_size",
            "patch_size",
            "num_channels",
            "kernel_num_frequencies",
            "kernel_mlp_size",
            "local_window",
            "window_softmax_size",
            "state_size",
            "mlp_kernel_tile_size",
            "max_num_images",
        )
        for name in positive:
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")
        for name in ("layer_norm_eps", "initializer_range"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}.")
        if self.feed_forward_initializer_range is not None and self.feed_forward_initializer_range <= 0:
            raise ValueError(
                "`feed_forward_initializer_range` must be positive or None (initializer_range), got "
                f"{self.feed_forward_initializer_range}."
            )
        non_negative = (
            "intermediate_size", "type_vocab_size", "short_conv_size", "recurrent_dt_rank", "point_stem_size",
        )  # fmt: skip
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0 (0: none), got {getattr(self, name)}.")
        if self.point_stem_type == "pointnet" and not self.point_stem_size:
            raise ValueError(
                "`point_stem_type='pointnet'` replaces the point projection by a stem of `point_stem_size` channels: "
                "set `point_stem_size` > 0."
            )
        if self.softmax_bias_frequencies is not None and self.softmax_bias_frequencies <= 0:
            raise ValueError(
                "`softmax_bias_frequencies` must be a positive integer or None (kernel_num_frequencies), got "
                f"{self.softmax_bias_frequencies}."
            )
        if self.value_size is not None and self.value_size <= 0:
            raise ValueError(f"`value_size` must be a positive integer or None (hidden_size), got {self.value_size}.")
        stems = self.image_stem_channels
        for modality, channels in stems.items() if isinstance(stems, dict) else [(None, stems)]:
            name = "image_stem_channels" if modality is None else f"image_stem_channels[{modality!r}]"
            if modality is not None and modality not in STEM_MODALITIES:
                raise ValueError(f"`image_stem_channels` keys must be among {STEM_MODALITIES}, got {modality!r}.")
            if isinstance(channels, bool) or not isinstance(channels, int) or channels < 0:
                raise ValueError(f"`{name}` must be an integer >= 0 (0: none), got {channels!r}.")
        for modality, pooling in (self.modality_pooling or {}).items():
            if modality not in POOLING_MODALITIES:
                raise ValueError(f"`modality_pooling` keys must be among {POOLING_MODALITIES}, got {modality!r}.")
            if pooling not in POOLINGS:
                raise ValueError(f"`modality_pooling[{modality!r}]` must be one of {POOLINGS}, got {pooling!r}.")
        if self.pooler_activation is not None and self.pooler_activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(
                f"`pooler_activation` must be None (no pooler layer) or one of {HIDDEN_ACTIVATIONS}, got "
                f"{self.pooler_activation!r}."
            )
        if self.point_feature_size < 0:
            raise ValueError(
                f"`point_feature_size` must be >= 0 (0: coordinates only), got {self.point_feature_size}."
            )
        if self.mlp_kernel_samples < 0:
            raise ValueError(
                f"`mlp_kernel_samples` must be >= 0 (0: exact tiled evaluation), got {self.mlp_kernel_samples}."
            )
        if not 0.0 <= self.hidden_dropout_prob < 1.0:
            raise ValueError(f"`hidden_dropout_prob` must be in [0, 1), got {self.hidden_dropout_prob}.")
        if self.mixer_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`value_size` (or `hidden_size`, {self.mixer_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"`image_size` ({self.image_size}) must be divisible by `patch_size` ({self.patch_size})."
            )
        if self.hidden_act not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"`hidden_act` must be one of {HIDDEN_ACTIVATIONS}, got {self.hidden_act!r}.")
        if not self.kernel_families:
            raise ValueError(f"`kernel_families` must name at least one of {KERNEL_FAMILIES}, got [].")
        for family in self.kernel_families:
            if family not in KERNEL_FAMILIES:
                raise ValueError(
                    f"`kernel_families` contains unknown family {family!r}; expected some of {KERNEL_FAMILIES}."
                )
        if len(set(self.kernel_families)) != len(self.kernel_families):
            raise ValueError(f"`kernel_families` lists a family twice: {self.kernel_families}.")

    @property
    def mixer_size(self) -> int:
        """Width `V` of the mixer's values: `value_size`, or `hidden_size` when None."""
        return self.value_size or self.hidden_size

    @property
    def dt_rank(self) -> int:
        """Rank of the `"channel"` recurrence's `Δ` projection (`recurrent_dt_rank`, 0: `ceil(hidden_size / 16)`)."""
        return self.recurrent_dt_rank or math.ceil(self.hidden_size / 16)

    @property
    def grid_size(self) -> int:
        """Patches per side of an `image_size` image."""
        return self.image_size // self.patch_size


__all__ = ["GATE_ACTIVATIONS", "KERNEL_FAMILIES", "POOLINGS", "POOLING_MODALITIES", "STEM_MODALITIES", "ITNetConfig"]
