r"""PyTorch ITNet: a stack of Integral Transform Blocks over text tokens (a 1-D grid) or image patches (a 2-D grid).

Each block is pre-norm:

    h = h + Dropout(Mixer(LayerNorm(h)))          the integral transform, `layers_itnet.ITNetMixer`
    h = h + Dropout(FeedForward(LayerNorm(h)))

Positions enter only through the relative (stationary) kernels, so padding is exact: padded tokens get
quadrature weight 0, no sum sees them, and the real tokens' outputs equal those of the unpadded sequence.
"""

import math

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    SequenceClassifierOutput,
)
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_itnet import ITNetConfig
from .layers_itnet import (
    ITNetFeedForward,
    ITNetLocalBranch,
    ITNetMixer,
    ITNetRecurrentBranch,
    ITNetSSMBranch,
    ITNetPatchEmbeddings,
    ITNetSpectralKernel,
    ITNetTextEmbeddings,
)


MODALITIES = ("text", "image")


class ITNetLayer(GradientCheckpointingLayer):
    """One Integral Transform Block: `[B, N, D] → [B, N, D]`."""

    def __init__(self, config: ITNetConfig):
        super().__init__()
        self.mixer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mixer = ITNetMixer(
            hidden_size=config.hidden_size,
            num_heads=config.num_attention_heads,
            kernel_families=config.kernel_families,
            is_causal=config.is_causal,
            num_frequencies=config.spectral_num_frequencies,
            kernel_mlp_size=config.spectral_mlp_size,
            activation=config.hidden_act,
            local_window=config.local_window,
            softmax_relative_bias=config.softmax_relative_bias,
            state_size=config.state_size,
            recurrent_discretization=config.recurrent_discretization,
            mlp_kernel_samples=config.mlp_kernel_samples,
            mlp_kernel_tile_size=config.mlp_kernel_tile_size,
            kernel_spectral_norm=config.kernel_spectral_norm,
        )
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = ITNetFeedForward(config.hidden_size, config.intermediate_size, config.hidden_act)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None = None,
        grid_shape: tuple[int, ...] = (),
        length_scale: tuple[float, ...] = (),
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        mixed = self.mixer(self.mixer_norm(hidden_states), mask, grid_shape, length_scale)
        hidden_states = hidden_states + self.dropout(mixed)
        return hidden_states + self.dropout(self.ffn(self.ffn_norm(hidden_states)))


class ITNetPreTrainedModel(PreTrainedModel):
    config: ITNetConfig
    base_model_prefix = "itnet"
    main_input_name = "input_ids"
    input_modalities = ("text", "image")
    supports_gradient_checkpointing = True
    _no_split_modules = ["ITNetLayer"]
    _can_record_outputs = {"hidden_states": ITNetLayer}

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, ITNetSpectralKernel):
            # decay rates log-spaced from 1 (a window of about one token) to 1 / max_position_embeddings (global)
            rates = torch.linspace(0.0, -math.log(self.config.max_position_embeddings), module.log_decay.numel())
            init.copy_(module.log_decay, rates)
        elif isinstance(module, ITNetLocalBranch):
            init.normal_(module.table, std=1.0 / module.window)
        elif isinstance(module, ITNetRecurrentBranch):
            # Mamba-2: A uniform in [1, 16], Δ = softplus(dt_bias) log-uniform in [1e-3, 1e-1]
            heads = module.A_log.numel()
            init.copy_(module.A_log, torch.log(torch.linspace(1.0, 16.0, heads)))
            dt = torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), heads))
            init.copy_(module.dt_bias, dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        elif isinstance(module, ITNetSSMBranch):
            # S4D-Lin: A_n = −1/2 + iπn, B = 1, C ~ N(0, 1/2) complex, Δ log-uniform in [1e-3, 1e-1], D = 1
            channels, modes = module.A_log.shape
            init.constant_(module.A_log, math.log(0.5))
            init.copy_(module.A_imag, math.pi * torch.arange(modes, dtype=torch.float32).expand(channels, modes))
            init.copy_(module.B, torch.stack([torch.ones(channels, modes), torch.zeros(channels, modes)], dim=-1))
            init.normal_(module.C, std=0.5**0.5)
            init.copy_(module.log_dt, torch.linspace(math.log(1e-3), math.log(1e-1), channels))
            init.ones_(module.skip)


class ITNetModel(ITNetPreTrainedModel):
    r"""The bare ITNet trunk: modality encoders, Integral Transform Blocks, a final layer norm.

    `pooler_output` is the mean of the final hidden states over the real (unmasked) tokens.

    Args:
        config: the model configuration.
        modalities: the encoders to build, among `"text"` (`input_ids`/`inputs_embeds`) and `"image"`
            (`pixel_values`). Task heads build only the encoders they use, so every parameter they hold is trained.
    """

    def __init__(self, config: ITNetConfig, modalities: tuple[str, ...] = MODALITIES):
        super().__init__(config)
        unknown = set(modalities) - set(MODALITIES)
        if unknown or not modalities:
            raise ValueError(f"`modalities` must be a non-empty subset of {MODALITIES}, got {modalities}.")
        self.modalities = tuple(modalities)
        self.text_embeddings = (
            ITNetTextEmbeddings(config.vocab_size, config.hidden_size) if "text" in modalities else None
        )
        self.image_embeddings = (
            ITNetPatchEmbeddings(config.num_channels, config.hidden_size, config.patch_size)
            if "image" in modalities
            else None
        )
        self.layers = nn.ModuleList([ITNetLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        if self.text_embeddings is not None:
            return self.text_embeddings.word_embeddings
        return self.image_embeddings.projection

    def set_input_embeddings(self, value: nn.Module):
        if self.text_embeddings is None:
            raise ValueError("This ITNetModel has no text encoder; build it with `modalities` including 'text'.")
        self.text_embeddings.word_embeddings = value

    def _embed(self, input_ids, attention_mask, inputs_embeds, pixel_values):
        """Returns `hidden_states [B, N, D]`, the quadrature mask `[B, N]` or None, the grid and its length scale."""
        given = [name for name, x in (("input_ids", input_ids), ("inputs_embeds", inputs_embeds), ("pixel_values", pixel_values)) if x is not None]
        if len(given) != 1:
            raise ValueError(f"Pass exactly one of `input_ids`, `inputs_embeds` or `pixel_values`; got {given or 'none'}.")
        if pixel_values is not None:
            if self.image_embeddings is None:
                raise ValueError(f"`pixel_values` given, but this model has no image encoder (modalities={self.modalities}).")
            if attention_mask is not None:
                raise ValueError("`attention_mask` applies to text inputs; images are never padded, pass None.")
            grid = self.image_embeddings(pixel_values.to(self.image_embeddings.projection.weight.dtype))
            batch, height, width, channels = grid.shape
            scale = float(self.config.image_size // self.config.patch_size)
            return grid.reshape(batch, height * width, channels), None, (height, width), (scale, scale)

        if self.text_embeddings is None:
            raise ValueError(f"Text input given, but this model has no text encoder (modalities={self.modalities}).")
        if input_ids is not None:
            if input_ids.ndim != 2:
                raise ValueError(f"`input_ids` must have shape [batch, sequence_length], got {list(input_ids.shape)}.")
            hidden_states = self.text_embeddings(input_ids)
        else:
            if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
                raise ValueError(
                    f"`inputs_embeds` must have shape [batch, sequence_length, {self.config.hidden_size}], "
                    f"got {list(inputs_embeds.shape)}."
                )
            hidden_states = inputs_embeds
        batch, length = hidden_states.shape[:2]
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"Sequence length {length} exceeds `max_position_embeddings` ({self.config.max_position_embeddings})."
            )
        mask = None
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (batch, length):
                raise ValueError(f"`attention_mask` must have shape {[batch, length]}, got {list(attention_mask.shape)}.")
            mask = attention_mask.to(hidden_states.dtype)
        return hidden_states, mask, (length,), (float(self.config.max_position_embeddings),)

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `[B, N]`): token ids (text).
            attention_mask (`torch.Tensor` of shape `[B, N]`): 1 for real tokens, 0 for padding (text only).
            inputs_embeds (`torch.Tensor` of shape `[B, N, D]`): token embeddings instead of `input_ids`.
            pixel_values (`torch.Tensor` of shape `[B, C, H, W]`): images, `H` and `W` multiples of `patch_size`.
        """
        hidden_states, mask, grid_shape, length_scale = self._embed(input_ids, attention_mask, inputs_embeds, pixel_values)
        for layer in self.layers:
            hidden_states = layer(hidden_states, mask, grid_shape, length_scale, **kwargs)
        hidden_states = self.norm(hidden_states)
        if mask is None:
            pooled = hidden_states.mean(dim=1)
        else:
            weights = mask.unsqueeze(-1)
            pooled = (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return BaseModelOutputWithPooling(last_hidden_state=hidden_states, pooler_output=pooled)


class ITNetForSequenceClassification(ITNetPreTrainedModel):
    """ITNet with a linear head on the masked mean of the final hidden states: regression, single- or multi-label
    classification following `config.problem_type` (as in BERT)."""

    input_modalities = ("text",)

    def __init__(self, config: ITNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.itnet = ITNetModel(config, modalities=("text",))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        labels (`torch.Tensor` of shape `[B]` or `[B, num_labels]`): class indices, regression targets or
            multi-hot labels, following `config.problem_type`.
        """
        outputs = self.itnet(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class ITNetForImageClassification(ITNetPreTrainedModel):
    """ITNet with a linear head on the mean of the final patch states."""

    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: ITNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.itnet = ITNetModel(config, modalities=("image",))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ImageClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `[B]`): class indices (or targets, following `config.problem_type`).
        """
        outputs = self.itnet(pixel_values=pixel_values, **kwargs)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


__all__ = [
    "ITNetForImageClassification",
    "ITNetForSequenceClassification",
    "ITNetModel",
    "ITNetPreTrainedModel",
]
