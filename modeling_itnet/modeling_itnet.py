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
r"""PyTorch ITNet: a stack of Integral Transform Blocks over text tokens (a 1-D grid) or image patches (a 2-D grid).

Each block is pre-norm (natively):

    h = h + Dropout(Mixer(Norm(h)))          the integral transform, `layers_itnet.ITNetMixer`
    h = h + Dropout(FeedForward(Norm(h)))

or post-norm (`config.norm_position="post"`, as BERT): `h = Norm(h + Dropout(Mixer(h)))`, then the same for the
feed-forward network; `config.intermediate_size=0` leaves it out (Mamba's blocks).

Natively, positions enter only through the relative (stationary) kernels, so padding is exact: padded tokens get
quadrature weight 0, no sum sees them, and the real tokens' outputs equal those of the unpadded sequence. Converted
models with absolute position embeddings (`config.position_embedding_type="absolute"`) take `position_ids` as BERT
and GPT-2 do (right padding is exact; left-padded inputs need the `position_ids` that `generate` computes).

Inputs are validated before any block runs. The checks of tensor values (token ids in range, 0/1 masks, rows with a
real token, label ranges, finite points) are skipped while `torch.compile` or `torch.export` traces
(`torch.compiler.is_compiling()`): they are data-dependent and would break the graph or the export. Shapes and
dtypes are checked always.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .branches_content_itnet import ITNetFourierBias
from .branches_grid_itnet import ITNetSpectralKernel
from .branches_itnet import BranchState, ITNetBranch, point_families
from .compat_itnet import (
    ACT2FN,
    BaseModelOutputWithPoolingAndCrossAttentions,
    GradientCheckpointingLayer,
    PreTrainedModel,
    TransformersKwargs,
    Unpack,
    cache_output,
    capture_outputs,
    custom_object_save,
    init,
    legacy_cache_argument,
    logging,
    merge_with_config_defaults,
)
from .configuration_itnet import ITNetConfig
from .embeddings_itnet import (
    ITNetPatchEmbeddings,
    ITNetPointBatchNorm,
    ITNetPointEmbeddings,
    ITNetStemConv2d,
    ITNetStemLinear,
    ITNetStemOutput,
    ITNetTextEmbeddings,
    point_centroid,
)
from .layers_itnet import ITNetFeedForward, ITNetFeedForwardLinear, ITNetGate, ITNetMixer
from .validation_itnet import (
    check_attention_mask,
    check_index_tensor,
    check_some_real_token,
    describe_mismatch,
    quadrature_mask,
    safetensors_files,
)

MODALITIES = ("text", "image")

logger = logging.get_logger(__name__)


def module_and_name(cls: type) -> str:
    """`"heads_itnet.ITNetForCausalLM"`: a class as an `auto_map` entry names it (its file, then its name)."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def make_norm(config: ITNetConfig, norm_type: str | None = None) -> nn.Module:
    """The normalisation `norm_type` (default `config.norm_type`) names, over `hidden_size`."""
    norm_type = norm_type or config.norm_type
    # CODEPATH: rms_norm: converted Mamba checkpoints; layer_norm: native ITNet presets, converted BERT, ViT, GPT-2;
    # batch_norm: point trunks with `point_norm_type="batch_norm"`.
    if norm_type == "rms_norm":
        return nn.RMSNorm(config.hidden_size, eps=config.layer_norm_eps)
    if norm_type == "batch_norm":
        return ITNetPointBatchNorm(config.hidden_size, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


def apply_norm(norm: nn.Module, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`norm(hidden_states)`; a batch norm also takes the point `mask` (its statistics are over real points)."""
    return norm(hidden_states, mask) if isinstance(norm, ITNetPointBatchNorm) else norm(hidden_states)


class ITNetCache:
    r"""Generation state of a causal ITNet text model: for every layer, the state of each kernel branch after the
    tokens seen so far, a typed `BranchState` per family (`ITNetBranch.state` and `token_cost` say what it holds and
    what a new token costs; `branches_itnet.family_table()` lists them all).

    How it plugs into `generate()`: `ITNetForCausalLM` opts out of transformers' default `DynamicCache`
    (`_supports_default_dynamic_cache()` is False), so the prompt pass runs with `use_cache=True` and no cache; the
    model creates an `ITNetCache`, fills it from the normal full forward and returns it as the output's `cache`.
    `generate` hands it back with only the new token and the whole 2-D `attention_mask` (the model reads the new
    tokens' part), and beam search reorders it with `reorder_cache`. Every state tensor has the batch first.

    Attributes:
        states: per layer, None before the prompt pass, then `{family: BranchState}`.
        seen_tokens: positions processed so far, padding included (the length of the 1-D grid).
    """

    is_compileable = False  # read by `generate` (no static shapes: the states of some families grow)
    is_croppable = False

    def __init__(self, config: ITNetConfig):
        self.states: list[dict[str, BranchState] | None] = [None] * config.num_hidden_layers
        self.seen_tokens = 0

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Tokens seen so far (the same in every layer)."""
        return self.seen_tokens

    @property
    def is_linear(self) -> list[bool]:
        """Per layer, whether it is a state without a sequence length (transformers >= 5.24 reads it): never here,
        `get_seq_length` counts the tokens seen, so `generate` can resume from a returned cache with the full
        sequence and pass only the new tokens."""
        return [False] * len(self.states)

    def reorder_cache(self, beam_idx: torch.LongTensor):
        """Keep the batch rows `beam_idx` (beam search), in place."""
        for layer in self.states:
            for family, state in (layer or {}).items():
                layer[family] = state.index_select(beam_idx)


@dataclass
class ITNetModelOutput(BaseModelOutputWithPoolingAndCrossAttentions):
    r"""
    `last_hidden_state` `[B, N, D]`, `pooler_output` `[B, D]`, `hidden_states` and the generation state: `cache`
    (`ITNetCache`, returned with `use_cache=True` or when a cache was passed), the state after these tokens, to
    continue the sequence from. The field is transformers' own, so it is named as the installed version names it
    (`cache` from 5.24, `past_key_values` on 5.23; `compat_itnet.cache_of(output)` reads either). ITNet has no
    attention weights to return: `attentions` and `cross_attentions` stay None.
    """


class ITNetLayer(GradientCheckpointingLayer):
    """One Integral Transform Block: `[B, N, D] → [B, N, D]`; `layer_idx` is its slot in an `ITNetCache`.

    `kernel_families` (default `config.kernel_families`), `position_dims` and `norm_type` (default
    `config.norm_type`) let point-cloud models build the content families only, with 3-D offsets and their own norm
    (see `ITNetModel`)."""

    def __init__(
        self,
        config: ITNetConfig,
        layer_idx: int = 0,
        kernel_families: list[str] | None = None,
        position_dims: int = 2,
        norm_type: str | None = None,
    ):
        super().__init__()
        self.layer_idx = layer_idx
        self.post_norm = config.norm_position == "post"
        self.mixer_norm = make_norm(config, norm_type)
        self.mixer = ITNetMixer.from_config(config, kernel_families, position_dims)
        # CODEPATH: intermediate_size 0: converted Mamba (no feed-forward block); > 0: every other checkpoint.
        self.ffn_norm = make_norm(config, norm_type) if config.intermediate_size else None
        self.ffn = (
            # CODEPATH: as the feed-forward norm above.
            ITNetFeedForward(config.hidden_size, config.intermediate_size, config.hidden_act)
            if config.intermediate_size
            else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None = None,
        grid_shape: tuple[int, ...] | None = None,
        length_scale: tuple[float, ...] | None = None,
        positions: torch.Tensor | None = None,
        segments: list[tuple[tuple[int, ...], tuple[float, ...]]] | None = None,
        cache: ITNetCache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        """The token layout is a grid (`grid_shape`, `length_scale`), `segments` or `positions`: see `ITNetMixer`."""
        normed = hidden_states if self.post_norm else apply_norm(self.mixer_norm, hidden_states, mask)
        if cache is None:
            mixed = self.mixer(normed, mask, grid_shape, length_scale, positions, segments=segments)
        elif cache.states[self.layer_idx] is None:  # the prompt: the full forward, keeping the states
            mixed, cache.states[self.layer_idx] = self.mixer.prefill(normed, mask, grid_shape, length_scale)
        else:
            mixed, cache.states[self.layer_idx] = self.mixer.step(
                normed, mask, length_scale, cache.states[self.layer_idx]
            )
        hidden_states = hidden_states + self.dropout(mixed)
        if self.post_norm:
            hidden_states = apply_norm(self.mixer_norm, hidden_states, mask)
        if self.ffn is None:
            return hidden_states
        if self.post_norm:
            return apply_norm(self.ffn_norm, hidden_states + self.dropout(self.ffn(hidden_states)), mask)
        return hidden_states + self.dropout(self.ffn(apply_norm(self.ffn_norm, hidden_states, mask)))


class ITNetPreTrainedModel(PreTrainedModel):
    config: ITNetConfig
    base_model_prefix = "itnet"
    main_input_name = "input_ids"
    input_modalities = ("text", "image")
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["ITNetLayer"]
    _can_record_outputs: ClassVar[dict] = {"hidden_states": ITNetLayer}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, with clear errors for damaged checkpoints (nothing is returned then):

        - an unreadable (truncated, corrupted) `*.safetensors` file: `OSError` naming the file;
        - tensors whose shapes do not match the config (without `ignore_mismatched_sizes=True`): `RuntimeError`
          naming the file, the first tensors, both shapes and the config fields;
        - weights holding NaN or infinite values after loading: `ValueError` naming the tensors.

        An invalid `config.json` (unknown kernel family, impossible sizes) raises `ValueError` from `ITNetConfig`,
        naming the field and the file.
        """
        from safetensors import SafetensorError

        try:
            model = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except SafetensorError as error:
            files = safetensors_files(pretrained_model_name_or_path) or ["model.safetensors"]
            raise OSError(
                f"Cannot read the weights of {str(pretrained_model_name_or_path)!r}: {', '.join(files)} is truncated "
                f"or corrupted ({error}). Re-download or re-save the checkpoint."
            ) from error
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error):
                raise
            raise RuntimeError(
                f"The checkpoint {str(pretrained_model_name_or_path)!r} does not match its config: "
                f"{describe_mismatch(cls, pretrained_model_name_or_path, kwargs.get('config'))} Fix `config.json` "
                "(`hidden_size`, `intermediate_size`, `vocab_size`, `num_labels`, ...) to the checkpoint's, or pass "
                "`ignore_mismatched_sizes=True` to re-initialise the mismatched tensors."
            ) from error
        loaded = model[0] if isinstance(model, tuple) else model
        bad = [
            name
            for name, parameter in loaded.named_parameters()
            if parameter.device.type != "meta" and not torch.isfinite(parameter).all()
        ]
        if bad:
            raise ValueError(
                f"The weights loaded from {str(pretrained_model_name_or_path)!r} hold NaN or infinite values in "
                f"{len(bad)} tensors ({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}): the checkpoint is "
                "corrupted or was saved after training diverged."
            )
        return model

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; the folder also holds the module files and a `config.json` whose
        `auto_map` names the config and the head of every Auto class in `AUTO_CLASSES`, whichever head is saved, so
        that any of them loads with `trust_remote_code=True` where `modeling_itnet` is not installed. It does so
        whether or not the classes were registered for remote code, and leaves `self.config` as it was."""
        from .heads_itnet import AUTO_CLASSES  # the heads build on this class

        auto_map = {
            "AutoConfig": f"configuration_itnet.{type(self.config).__name__}",
            **{auto_class: module_and_name(head) for auto_class, head in AUTO_CLASSES.items()},
        }
        before = self.config.__dict__.get("auto_map")
        self.config.auto_map = auto_map
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
            if self._auto_class is None and kwargs.get("is_main_process", True):
                custom_object_save(self, save_directory)  # upstream copies the code only of registered classes
        finally:
            if before is None:
                self.config.__dict__.pop("auto_map", None)
            else:
                self.config.auto_map = before

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, ITNetFourierBias):
            module.reset_parameters()
        elif isinstance(module, ITNetSpectralKernel):
            # decay rates log-spaced from 1 (a window of about one token) to 1 / max_position_embeddings (global)
            rates = torch.linspace(0.0, -math.log(self.config.max_position_embeddings), module.log_decay.numel())
            init.copy_(module.log_decay, rates)
        elif isinstance(module, ITNetBranch):
            module.init_weights(self.config)
        elif isinstance(module, ITNetGate):
            init.constant_(module.bias, self.config.gate_bias_init)
        # CODEPATH: feed_forward_initializer_range None: every preset and conversion (initializer_range throughout);
        # a float: the ablations of benchmarks/ablate_unified.py and benchmarks/diagnose_points.py (hypothesis 15).
        elif isinstance(module, ITNetFeedForwardLinear) and self.config.feed_forward_initializer_range is not None:
            init.trunc_normal_(module.weight, std=self.config.feed_forward_initializer_range)
        elif isinstance(module, (ITNetPatchEmbeddings, ITNetPointEmbeddings)):
            for parameter in (module.cls_token, getattr(module, "position_embeddings", None)):
                if parameter is not None:
                    init.trunc_normal_(parameter, std=self.config.initializer_range)
        elif isinstance(module, (ITNetStemLinear, ITNetStemConv2d)):  # PyTorch's default: inputs keep their scale
            fan_in = module.weight[0].numel()
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            init.uniform_(module.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        elif isinstance(module, ITNetStemOutput):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.RMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, ITNetPointBatchNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)


class ITNetModel(ITNetPreTrainedModel):
    r"""The bare ITNet trunk: modality encoders, Integral Transform Blocks, a final layer norm.

    One trunk reads every modality; the encoders turn inputs into tokens and a layout the kernels see:

    - text (`input_ids` or `inputs_embeds` `[B, N]`): a 1-D grid;
    - images (`pixel_values` `[B, C, H, W]`): the 2-D grid of patches;
    - image + text (`input_ids` with `pixel_values` `[B, C, H, W]`, or `[B, K, C, H, W]` for `K` images as in
      NLVR2): one sequence, the text first then each image's patches, each with its modality embedding; the grid
      kernels run within each modality and the content kernels across them (`ITNetMixer` `segments`);
    - point clouds (`points` `[B, N, 3]`, optional `point_features`): irregular positions. The kernels that need
      a grid (`ITNetBranch.needs_grid`) do not apply; a point-cloud trunk builds the content families of
      `config.kernel_families` only (`low_rank`, `softmax`, `mlp`), the softmax bias over 3-D offsets.

    `pooler_output` pools the final hidden states over the real (unmasked) tokens by `config.pooling` (the mean,
    the first token, the per-channel max or a learned attention pooling; see `_pool`), through a dense layer and
    `config.pooler_activation` if set (BERT's pooler).

    Args:
        config: the model configuration.
        modalities: the encoders to build, among `"text"`, `"image"` (both: image + text inputs too) or `"points"`
            alone. Task heads build only the encoders they use, so every parameter they hold is trained.
    """

    def __init__(self, config: ITNetConfig, modalities: tuple[str, ...] = MODALITIES):
        super().__init__(config)
        modalities = tuple(modalities)
        if (
            not modalities
            or set(modalities) - {"text", "image", "points"}
            or ("points" in modalities and len(modalities) > 1)
        ):
            raise ValueError(
                f"`modalities` must be a non-empty subset of ('text', 'image'), or ('points',); got {modalities}."
            )
        self.modalities = modalities
        absolute = config.position_embedding_type == "absolute"
        self.text_embeddings = (
            ITNetTextEmbeddings(
                config.vocab_size,
                config.hidden_size,
                max_positions=config.max_position_embeddings if absolute else 0,
                type_vocab_size=config.type_vocab_size,
                # CODEPATH: embedding_norm: converted BERT; native ITNet and the other conversions: none.
                layer_norm_eps=config.layer_norm_eps if config.embedding_norm else None,
            )
            if "text" in modalities
            else None
        )
        stem_channels = config.image_stem_channels
        if isinstance(stem_channels, dict):
            stem_channels = stem_channels.get("image_text" if "text" in modalities else "image", 0)
        self.image_embeddings = (
            ITNetPatchEmbeddings(
                config.num_channels,
                config.hidden_size,
                config.patch_size,
                cls_token=config.image_cls_token,
                grid_size=config.grid_size if absolute else 0,
                stem_channels=stem_channels,
            )
            if "image" in modalities
            else None
        )
        # text, then one slot per image of a joint image + text sequence
        self.modality_embeddings = (
            nn.Embedding(1 + config.max_num_images, config.hidden_size)
            if {"text", "image"} <= set(modalities)
            else None
        )
        families, position_dims, norm_type = config.kernel_families, 2, config.norm_type
        self.point_embeddings = None
        if modalities == ("points",):
            families = [family for family in config.kernel_families if family in point_families()]
            if not families:
                raise ValueError(
                    f"Point clouds need a content kernel family in `kernel_families` ({list(point_families())}); "
                    f"got {config.kernel_families}, whose families all need a grid."
                )
            if config.short_conv_size:
                raise ValueError("Point clouds have no grid for the short convolution: set `short_conv_size=0`.")
            position_dims, norm_type = 3, config.point_norm_type
            self.point_embeddings = ITNetPointEmbeddings(
                config.point_feature_size,
                config.hidden_size,
                cls_token=config.point_cls_token,
                stem_size=config.point_stem_size,
                radius_feature=config.point_radius_feature,
                stem_type=config.point_stem_type,
                eps=config.layer_norm_eps,
            )
        self.layers = nn.ModuleList(
            [
                ITNetLayer(config, layer_idx, families, position_dims, norm_type)
                for layer_idx in range(config.num_hidden_layers)
            ]
        )
        # post-norm blocks end normalised: no final norm
        # CODEPATH: norm_position "pre": native ITNet, converted ViT, GPT-2, Mamba; "post": converted BERT.
        self.norm = make_norm(config, norm_type) if config.norm_position == "pre" else nn.Identity()
        # CODEPATH: pooling "attention": the ablations of benchmarks/ablate_unified.py; mean/first/max: the presets.
        poolings = {config.pooling, *(config.modality_pooling or {}).values()}
        self.attention_pool = nn.Linear(config.hidden_size, 1) if "attention" in poolings else None
        # CODEPATH: pooler_activation "tanh": converted BERT (its pooler); None: native ITNet.
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if config.pooler_activation else None
        # CODEPATH: as the pooler above.
        self.pooler_act = ACT2FN[config.pooler_activation] if config.pooler_activation else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        if self.text_embeddings is not None:
            return self.text_embeddings.word_embeddings
        if self.image_embeddings is not None:
            return self.image_embeddings.projection
        points = self.point_embeddings
        return points.stem[0] if points.projection is None else points.projection  # PointNet's stem: its first layer

    def set_input_embeddings(self, value: nn.Module):
        if self.text_embeddings is None:
            raise ValueError("This ITNetModel has no text encoder; build it with `modalities` including 'text'.")
        self.text_embeddings.word_embeddings = value

    def _require(self, modality: str, argument: str):
        if getattr(self, f"{modality}_embeddings") is None:
            raise ValueError(
                f"`{argument}` given, but this model has no {modality} encoder (modalities={self.modalities})."
            )

    def _embed(
        self, input_ids, attention_mask, inputs_embeds, pixel_values, points, point_features, text_extras, interpolate
    ) -> tuple:
        """Returns `hidden_states [B, N, D]`, the quadrature mask `[B, N]` or None, and the layout (the keyword
        arguments of `ITNetLayer`: `grid_shape` and `length_scale`, or `segments`, or `positions`). `text_extras`:
        `(position_ids, token_type_ids, past)` of the text tokens; `interpolate`: `interpolate_pos_encoding`."""
        if points is not None and any(x is not None for x in text_extras[:2]):
            raise ValueError("`position_ids` and `token_type_ids` describe text tokens; points take none.")
        if input_ids is not None and inputs_embeds is not None:
            raise ValueError("Pass either `input_ids` or `inputs_embeds`, not both.")
        text = input_ids is not None or inputs_embeds is not None
        if points is not None:
            if text or pixel_values is not None:
                raise ValueError(
                    "`points` are a modality of their own; pass no `input_ids`, `inputs_embeds` or `pixel_values` with them."
                )
            return self._embed_points(points, point_features, attention_mask)
        if point_features is not None:
            raise ValueError("`point_features` describe `points`; pass `points` too.")
        if not text and pixel_values is None:
            raise ValueError("Pass `input_ids` or `inputs_embeds` (text), `pixel_values` (images), both, or `points`.")
        if pixel_values is None:
            hidden_states, mask, grid, scale = self._embed_text(input_ids, attention_mask, inputs_embeds, *text_extras)
            return hidden_states, mask, {"grid_shape": grid, "length_scale": scale}
        if not text:
            if attention_mask is not None:
                raise ValueError("`attention_mask` applies to text inputs; images are never padded, pass None.")
            if pixel_values.ndim == 5:
                raise ValueError(
                    "`pixel_values` of shape [batch, num_images, channels, height, width] go with text (image + text "
                    "inputs); a batch of images alone is [batch, channels, height, width]."
                )
            if any(x is not None for x in text_extras[:2]):
                raise ValueError(
                    "`position_ids` and `token_type_ids` describe text tokens; pass none with images alone."
                )
            hidden_states, segments = self._embed_image(pixel_values, interpolate)
            if len(segments) > 1:  # the class token, then the patch grid
                return hidden_states, None, {"segments": segments}
            return hidden_states, None, {"grid_shape": segments[0][0], "length_scale": segments[0][1]}
        return self._embed_image_text(input_ids, attention_mask, inputs_embeds, pixel_values, text_extras, interpolate)

    def _embed_text(self, input_ids, attention_mask, inputs_embeds, position_ids=None, token_type_ids=None, past=0):
        self._require("text", "input_ids" if input_ids is not None else "inputs_embeds")
        if input_ids is not None:
            if not isinstance(input_ids, torch.Tensor):
                raise TypeError(f"`input_ids` must be a torch.Tensor of token ids, got {type(input_ids).__name__}.")
            if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
                raise TypeError(
                    f"`input_ids` must be an integer tensor of token ids (torch.long), got {input_ids.dtype}."
                )
            if input_ids.ndim != 2:
                raise ValueError(f"`input_ids` must have shape [batch, sequence_length], got {list(input_ids.shape)}.")
            if input_ids.shape[1] == 0:
                raise ValueError("`input_ids` holds empty sequences (sequence_length = 0); pass at least one token.")
            vocab = self.text_embeddings.word_embeddings.num_embeddings
            if (
                input_ids.numel()
                and not torch.compiler.is_compiling()
                and (input_ids.min() < 0 or input_ids.max() >= vocab)
            ):
                low, high = input_ids.min().item(), input_ids.max().item()
                raise ValueError(
                    f"`input_ids` must be token ids in [0, vocab_size={vocab}), got values in [{low}, {high}]."
                )
            hidden_states = self.text_embeddings(input_ids)
        else:
            if not isinstance(inputs_embeds, torch.Tensor) or not inputs_embeds.is_floating_point():
                got = inputs_embeds.dtype if isinstance(inputs_embeds, torch.Tensor) else type(inputs_embeds).__name__
                raise TypeError(f"`inputs_embeds` must be a float tensor, got {got}.")
            if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
                raise ValueError(
                    f"`inputs_embeds` must have shape [batch, sequence_length, {self.config.hidden_size}], "
                    f"got {list(inputs_embeds.shape)}."
                )
            if inputs_embeds.shape[1] == 0:
                raise ValueError(
                    "`inputs_embeds` holds empty sequences (sequence_length = 0); pass at least one token."
                )
            hidden_states = inputs_embeds
        batch, length = hidden_states.shape[:2]
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"Sequence length {length} exceeds `max_position_embeddings` ({self.config.max_position_embeddings})."
            )
        hidden_states = self._add_positions_and_types(hidden_states, position_ids, token_type_ids, past)
        mask = None
        if attention_mask is not None:
            mask = quadrature_mask(attention_mask, (batch, length), hidden_states.dtype)
        return hidden_states, mask, (length,), (float(self.config.max_position_embeddings),)

    def _add_positions_and_types(self, hidden_states, position_ids, token_type_ids, past):
        """Absolute position and token-type embeddings where the config has them (BERT, GPT-2); `position_ids`
        default to `past, past + 1, ...` and `token_type_ids` to 0, as in BERT and GPT-2."""
        embeddings, (batch, length) = self.text_embeddings, hidden_states.shape[:2]
        if embeddings.position_embeddings is None and position_ids is not None:
            raise ValueError(
                "`position_ids` given, but this model has no absolute position embeddings "
                "(`config.position_embedding_type='relative'`: positions are the offsets the kernels see)."
            )
        if embeddings.token_type_embeddings is None and token_type_ids is not None:
            raise ValueError(
                "`token_type_ids` given, but this model has no token-type embeddings (`config.type_vocab_size=0`)."
            )
        if embeddings.position_embeddings is not None:
            if position_ids is None:
                position_ids = torch.arange(past, past + length, device=hidden_states.device)[None]
            check_index_tensor(
                position_ids,
                "position_ids",
                (batch, length),
                self.config.max_position_embeddings,
                "max_position_embeddings",
            )
        if embeddings.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros(1, length, dtype=torch.long, device=hidden_states.device)
            check_index_tensor(
                token_type_ids, "token_type_ids", (batch, length), self.config.type_vocab_size, "type_vocab_size"
            )
        return embeddings.add_positions_and_types(hidden_states, position_ids, token_type_ids)

    def _embed_image(self, pixel_values, interpolate_pos_encoding=False):
        """`[B, C, H, W]` → the tokens `[B, (1 +) h·w, D]` and their segments: `[((h, w), length_scale)]`, after
        `((1,), (1.0,))` for the class token if the config has one."""
        self._require("image", "pixel_values")
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"`pixel_values` must be a torch.Tensor, got {type(pixel_values).__name__}.")
        if pixel_values.ndim == 4 and min(pixel_values.shape[-2:]) < self.config.patch_size:
            raise ValueError(
                f"`pixel_values` images of {pixel_values.shape[-2]}x{pixel_values.shape[-1]} are smaller than one "
                f"patch (patch_size={self.config.patch_size}); height and width must be positive multiples of it."
            )
        tokens, (height, width) = self.image_embeddings.tokens(
            pixel_values.to(self.image_embeddings.projection.weight.dtype), interpolate_pos_encoding
        )
        scale = float(self.config.grid_size)
        segments = [((height, width), (scale, scale))]
        if self.image_embeddings.cls_token is not None:
            segments.insert(0, ((1,), (1.0,)))
        return tokens, segments

    def _embed_image_text(self, input_ids, attention_mask, inputs_embeds, pixel_values, text_extras, interpolate):
        """Text tokens then each image's patches, with their modality embeddings, as `segments`."""
        if self.modality_embeddings is None:
            raise ValueError(f"Image + text inputs need a model with both encoders (modalities={self.modalities}).")
        text, text_mask, text_grid, text_scale = self._embed_text(
            input_ids, attention_mask, inputs_embeds, *text_extras
        )
        images = pixel_values[:, None] if pixel_values.ndim == 4 else pixel_values
        if images.ndim != 5 or images.shape[0] != text.shape[0]:
            raise ValueError(
                f"With text of batch size {text.shape[0]}, `pixel_values` must have shape [{text.shape[0]}, channels, "
                f"height, width] or [{text.shape[0]}, num_images, channels, height, width], got {list(pixel_values.shape)}."
            )
        if images.shape[1] > self.config.max_num_images:
            raise ValueError(
                f"{images.shape[1]} images per input exceed `max_num_images` ({self.config.max_num_images})."
            )
        types = self.modality_embeddings.weight
        tokens, segments = [text + types[0]], [(text_grid, text_scale)]
        for index in range(images.shape[1]):
            patches, image_segments = self._embed_image(images[:, index], interpolate)
            tokens.append(patches + types[1 + index])
            segments.extend(image_segments)
        hidden_states = torch.cat(tokens, dim=1)
        mask = None
        if text_mask is not None:
            image_mask = text_mask.new_ones(text.shape[0], hidden_states.shape[1] - text.shape[1])
            mask = torch.cat([text_mask, image_mask], dim=1)
        return hidden_states, mask, {"segments": segments}

    def _embed_points(self, points, point_features, attention_mask):
        self._require("point", "points")
        inputs = self.point_embeddings.check(points, point_features)
        mask = None
        if attention_mask is not None:
            mask = quadrature_mask(attention_mask, points.shape[:2], points.dtype, " (one weight per point)")
        hidden_states = self.point_embeddings.embed(inputs, mask)
        mask = None if mask is None else mask.to(hidden_states.dtype)
        positions = points.to(hidden_states.dtype)
        cls_token = self.point_embeddings.cls_token
        if cls_token is not None:  # a readout token first, placed at the centroid of the real points
            centroid = point_centroid(positions, mask)
            hidden_states = torch.cat(
                [cls_token.expand(len(points), -1, -1).to(hidden_states.dtype), hidden_states], 1
            )
            positions = torch.cat([centroid, positions], dim=1)
            if mask is not None:
                mask = torch.cat([mask.new_ones(len(points), 1), mask], dim=1)
        return hidden_states, mask, {"positions": positions}

    def _pool(self, hidden_states: torch.Tensor, mask: torch.Tensor | None, modality: str) -> torch.Tensor:
        """`[B, N, D] -> [B, D]` over the real tokens (`mask` `[B, N]`, 1 real, 0 padding), by
        `config.modality_pooling[modality]` if set, else `config.pooling`:

        - `"mean"`:      `Σ_j w_j h_j / Σ_j w_j`
        - `"first"`:     `h_0` (BERT's `[CLS]`, ViT's class token)
        - `"max"`:       `max_j h_j` per channel over the real tokens (PointNet's readout)
        - `"attention"`: `Σ_j softmax_j(a·h_j + log w_j) h_j`, `a` learned (a mean at initialisation)
        """
        pooling = (self.config.modality_pooling or {}).get(modality, self.config.pooling)
        if pooling == "first":
            return hidden_states[:, 0]
        if pooling == "max":
            if mask is None:
                return hidden_states.amax(dim=1)
            return hidden_states.masked_fill(mask.unsqueeze(-1) == 0, -torch.inf).amax(dim=1)
        if pooling == "attention":
            scores = self.attention_pool(hidden_states)  # [B, N, 1]
            if mask is not None:
                scores = scores.masked_fill(mask.unsqueeze(-1) == 0, -torch.inf)
            return (scores.softmax(dim=1) * hidden_states).sum(dim=1)
        if mask is None:
            return hidden_states.mean(dim=1)
        weights = mask.unsqueeze(-1)
        return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    @legacy_cache_argument
    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_features: torch.Tensor | None = None,
        cache: ITNetCache | None = None,
        use_cache: bool | None = None,
        position_ids: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        interpolate_pos_encoding: bool = False,
        past_key_values: ITNetCache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ITNetModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `[B, N]`): token ids (text).
            attention_mask (`torch.Tensor` of shape `[B, N]`, or `[B, T + N]` after `T` cached tokens): 1 for real
                tokens, 0 for padding: text tokens (also with images, which are never padded) or points.
            inputs_embeds (`torch.Tensor` of shape `[B, N, D]`): token embeddings instead of `input_ids`.
            pixel_values (`torch.Tensor` of shape `[B, C, H, W]`, or `[B, K, C, H, W]` with text): images, `H` and
                `W` multiples of `patch_size`.
            points (`torch.Tensor` of shape `[B, N, 3]`): point-cloud coordinates (a point-cloud trunk).
            point_features (`torch.Tensor` of shape `[B, N, config.point_feature_size]`): per-point features.
            cache (`ITNetCache`): the state after the `T` tokens seen so far (causal text models only); the inputs
                continue that sequence, one token at a time at O(1) to O(T) cost each (see `ITNetCache`). It is updated
                in place and returned.
            use_cache (`bool`, defaults to False): when no `cache` is given, start an `ITNetCache` from
                these inputs (the normal full forward, keeping each branch's final state) and return it.
            position_ids (`torch.LongTensor` of shape `[B, N]`): absolute positions of the text tokens (models with
                `config.position_embedding_type="absolute"` only); default `T, T + 1, ...`.
            token_type_ids (`torch.LongTensor` of shape `[B, N]`): segment ids of the text tokens (models with
                `config.type_vocab_size > 0` only); default 0.
            interpolate_pos_encoding (`bool`, defaults to False): with absolute position embeddings, images of another
                size than `config.image_size` interpolate them (as ViT); without, such images raise an error.
            past_key_values: `cache` under its name before transformers 5.24, which 5.23's `generate` passes and
                checks against the signature; `legacy_cache_argument` moves it (or `cache_params`) to `cache`.
        `pooler_output` pools the tokens of this call.
        """
        if (use_cache or cache is not None) and self.training and self.is_activation_checkpointing:
            logger.warning_once("A cache is incompatible with activation checkpointing in training; not using one.")
            use_cache, cache = False, None
        if use_cache and cache is None:
            cache = ITNetCache(self.config)
        past = 0 if cache is None else cache.get_seq_length()
        if cache is not None:
            if not self.config.is_causal:
                raise ValueError("`cache`/`use_cache` continue a sequence causally; set `is_causal=True`.")
            if pixel_values is not None or points is not None:
                raise ValueError(
                    "`cache`/`use_cache` apply to text (`input_ids`/`inputs_embeds`), not images or points."
                )
            new = next((x.shape[1] for x in (input_ids, inputs_embeds) if x is not None and x.ndim > 1), None)
            if past and attention_mask is not None and new is not None:
                if attention_mask.ndim != 2 or attention_mask.shape[1] != past + new:
                    raise ValueError(
                        f"After {past} cached tokens, `attention_mask` must cover them and the {new} new ones: shape "
                        f"[batch, {past + new}], got {list(attention_mask.shape)}."
                    )
                check_attention_mask(attention_mask)  # the whole mask, before keeping the new tokens' part
                attention_mask = attention_mask[:, past:]
        hidden_states, mask, layout = self._embed(
            input_ids, attention_mask, inputs_embeds, pixel_values, points, point_features,
            (position_ids, token_type_ids, past), interpolate_pos_encoding,
        )  # fmt: skip
        if mask is not None and cache is None:
            # Not with a cache: a left-padded prompt filled chunk by chunk may hold only padding so far.
            check_some_real_token(mask)
        if past and past + hidden_states.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"{past} cached and {hidden_states.shape[1]} new tokens exceed `max_position_embeddings` "
                f"({self.config.max_position_embeddings})."
            )
        for layer in self.layers:
            hidden_states = layer(hidden_states, mask, **layout, cache=cache, **kwargs)
        if cache is not None:
            cache.seen_tokens += hidden_states.shape[1]
        hidden_states = apply_norm(self.norm, hidden_states, mask)
        text = input_ids is not None or inputs_embeds is not None
        modality = (
            "points" if points is not None else "text" if pixel_values is None else "image_text" if text else "image"
        )
        pooled = self._pool(hidden_states, mask, modality)
        if self.pooler is not None:
            pooled = self.pooler_act(self.pooler(pooled))
        return ITNetModelOutput(last_hidden_state=hidden_states, pooler_output=pooled, **cache_output(cache))


__all__ = [
    "ITNetCache",
    "ITNetLayer",
    "ITNetModel",
    "ITNetModelOutput",
    "ITNetPointBatchNorm",
    "ITNetPreTrainedModel",
]
