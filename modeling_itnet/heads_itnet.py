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
"""The task heads on the ITNet trunk (`modeling_itnet.ITNetModel`): sequence classification, causal and masked
language modelling, image classification, visual question answering, image(s) + text classification (NLVR2) and
point-cloud classification, and `AUTO_CLASSES`, the transformers Auto class of each head that has one."""

from typing import ClassVar

import torch
from torch import nn

from .compat_itnet import (
    ACT2FN,
    CausalLMOutputWithPast,
    GenerationMixin,
    ImageClassifierOutput,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TransformersKwargs,
    Unpack,
    cache_of,
    cache_output,
    can_return_tuple,
    legacy_cache_argument,
    slice_logits_to_keep,
)
from .configuration_itnet import ITNetConfig
from .modeling_itnet import ITNetCache, ITNetModel, ITNetPreTrainedModel
from .validation_itnet import batch_size_of, check_classification_labels, check_token_labels


def classification_loss(loss_function, labels, logits, config, num_items_in_batch=None, **kwargs) -> torch.Tensor:
    """`loss_function` (`ForSequenceClassificationLoss`) normalised by the Trainer's `num_items_in_batch` for every
    `config.problem_type`. The single-label cross-entropy divides its sum by it already; the regression (MSE) and
    multi-label (BCE) losses are means over the label elements, which is what the Trainer counts
    (`labels.ne(-100).sum()` over all accumulated micro-batches), so they are rescaled to `sum / num_items_in_batch`:
    gradient accumulation then equals the larger batch instead of being `accumulation_steps` times too large."""
    loss = loss_function(labels, logits, config, num_items_in_batch=num_items_in_batch, **kwargs)
    if num_items_in_batch is not None and config.problem_type != "single_label_classification":
        loss = loss * labels.numel() / num_items_in_batch
    return loss


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
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        labels (`torch.Tensor` of shape `[B]` or `[B, num_labels]`): class indices, regression targets or
            multi-hot labels, following `config.problem_type`.
        token_type_ids, position_ids: as in `ITNetModel.forward` (converted BERT models).
        """
        check_classification_labels(labels, self.config, batch_size_of(input_ids, inputs_embeds))
        outputs = self.itnet(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
            token_type_ids=token_type_ids, position_ids=position_ids, **kwargs,
        )  # fmt: skip
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = classification_loss(self.loss_function, labels, logits, self.config, **kwargs)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class ITNetForCausalLM(ITNetPreTrainedModel, GenerationMixin):
    r"""ITNet with a language-modelling head, for next-token prediction and `generate()`.

    Needs causal kernels (`config.is_causal=True`). The output embedding is tied to the input embedding unless
    `config.tie_word_embeddings=False`. Generation keeps an `ITNetCache` (returned as the output's `cache`): every new
    token continues each branch's state instead of re-running the prompt, and cached decoding gives the logits of
    the full forward (to float rounding). Left-padded batches generate as each prompt alone: padded positions have
    quadrature weight 0 and keep their place on the 1-D grid, so the offsets between real tokens are unchanged. The
    Monte Carlo `"mlp"` kernel (`mlp_kernel_samples > 0`) has no cached form equal to the full forward and refuses
    to generate.
    """

    input_modalities = ("text",)
    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "itnet.text_embeddings.word_embeddings.weight"}

    def __init__(self, config: ITNetConfig):
        if not config.is_causal:
            raise ValueError(
                "ITNetForCausalLM predicts the next token and needs causal kernels: set `is_causal=True` in the "
                "config."
            )
        super().__init__(config)
        self.itnet = ITNetModel(config, modalities=("text",))
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Module):
        self.lm_head = new_embeddings

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """False: `generate` must not build a `DynamicCache` (key/value layers); the model creates its own
        `ITNetCache` on the first forward with `use_cache=True`."""
        return False

    def _validate_generated_length(self, generation_config, input_ids_length, has_default_max_length):
        """`GenerationMixin`'s checks, then refuse up front (not after some tokens) a `max_length` past
        `config.max_position_embeddings`, the longest sequence the model accepts."""
        super()._validate_generated_length(generation_config, input_ids_length, has_default_max_length)
        limit = self.config.max_position_embeddings
        if generation_config.max_length is not None and generation_config.max_length > limit:
            raise ValueError(
                f"Generation would reach {generation_config.max_length} tokens (prompt of {input_ids_length} plus new "
                f"tokens), past `max_position_embeddings` ({limit}), the longest sequence this model accepts. Lower "
                "`max_new_tokens`/`max_length` or shorten the prompt."
            )

    def prepare_inputs_for_generation(
        self, input_ids, attention_mask=None, inputs_embeds=None, is_first_iteration=False, **kwargs
    ):
        """`GenerationMixin`'s: once a cache exists only the new token is passed, with the whole 2-D
        `attention_mask` (the `ITNetCache` is not compileable, so the mask stays 2-D); `inputs_embeds` serve the
        prompt pass; `position_ids` only for absolute position embeddings. Refuses the Monte Carlo `"mlp"` kernel
        first. The cache arrives under the installed `generate`'s name (`cache`, or `past_key_values` before 5.24)
        and is passed on under it, so this override names none."""
        if "mlp" in self.config.kernel_families and self.config.mlp_kernel_samples > 0:
            raise ValueError(
                "Generation with the Monte Carlo 'mlp' kernel "
                f"(`mlp_kernel_samples={self.config.mlp_kernel_samples}`) is not supported: its estimate is drawn "
                "anew at every call, so cached and uncached decoding would differ. Use `mlp_kernel_samples=0` (the "
                "exact tiled kernel)."
            )
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        # CODEPATH: relative: native ITNet (positions through the kernels); absolute: converted BERT, GPT-2.
        if self.config.position_embedding_type == "relative":  # `generate` makes them for every model taking them
            model_inputs.pop("position_ids", None)
        return model_inputs

    @legacy_cache_argument
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: ITNetCache | None = None,
        use_cache: bool | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        position_ids: torch.LongTensor | None = None,
        past_key_values: ITNetCache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast:
        r"""
        input_ids, attention_mask, inputs_embeds, cache, use_cache, past_key_values: as in `ITNetModel.forward`.
        labels (`torch.LongTensor` of shape `[B, N]`): the tokens to predict, shifted inside (`labels = input_ids`
            trains next-token prediction); -100 is ignored. The loss is `self.loss_function` (`ForCausalLMLoss`),
            normalised by `num_items_in_batch` when the Trainer passes it.
        logits_to_keep (`int` or `torch.Tensor`): compute the logits of the last `logits_to_keep` positions only
            (0: all), or of the given positions.
        position_ids (`torch.LongTensor` of shape `[B, N]`): absolute positions (converted GPT-2 models only;
            `generate` passes them, counting real tokens as GPT-2's generation does).

        Returns `logits` `[B, N or logits_to_keep, vocab_size]` and, with a cache, the `ITNetCache` (`cache`, or
        `past_key_values` before transformers 5.24).
        """
        check_token_labels(labels, input_ids, inputs_embeds, self.config.vocab_size)
        outputs = self.itnet(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            cache=cache,
            use_cache=use_cache,
            position_ids=position_ids,
            **kwargs,
        )
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, **cache_output(cache_of(outputs))
        )


class ITNetForMaskedLM(ITNetPreTrainedModel):
    r"""ITNet with a masked-language-modelling head (BERT-style pretraining, the `fill-mask` pipeline).

    Bidirectional kernels (`config.is_causal=False`). The head is `decoder(LayerNorm(act(dense(h))))` as in BERT;
    the decoder weight is tied to the input embedding unless `config.tie_word_embeddings=False`.
    """

    input_modalities = ("text",)
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "lm_head.decoder.weight": "itnet.text_embeddings.word_embeddings.weight"
    }

    def __init__(self, config: ITNetConfig):
        if config.is_causal:
            raise ValueError(
                "ITNetForMaskedLM reads both sides of a masked token: set `is_causal=False` in the config."
            )
        super().__init__(config)
        self.itnet = ITNetModel(config, modalities=("text",))
        self.lm_head = ITNetMaskedLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Module):
        self.lm_head.decoder = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MaskedLMOutput:
        r"""
        labels (`torch.LongTensor` of shape `[B, N]`): the original tokens at masked positions, -100 elsewhere.
        token_type_ids, position_ids: as in `ITNetModel.forward` (converted BERT models).
        """
        check_token_labels(labels, input_ids, inputs_embeds, self.config.vocab_size)
        outputs = self.itnet(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
            token_type_ids=token_type_ids, position_ids=position_ids, **kwargs,
        )  # fmt: skip
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class ITNetMaskedLMHead(nn.Module):
    """`[B, N, D] → [B, N, vocab_size]`: dense, activation, layer norm, decoder (with bias)."""

    def __init__(self, config: ITNetConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(hidden_states))))


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
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ImageClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `[B]`): class indices (or targets, following `config.problem_type`).
        interpolate_pos_encoding (`bool`): as in `ITNetModel.forward` (converted ViT models).
        """
        check_classification_labels(labels, self.config, batch_size_of(pixel_values))
        outputs = self.itnet(pixel_values=pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = classification_loss(self.loss_function, labels, logits, self.config, **kwargs)
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class ITNetClassifierHead(nn.Module):
    """ViLT's answer classifier: `Linear(D, 2D) → LayerNorm → GELU → Linear(2D, num_labels)`, `[B, D] → [B, L]`."""

    def __init__(self, config: ITNetConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, 2 * config.hidden_size)
        self.norm = nn.LayerNorm(2 * config.hidden_size, eps=config.layer_norm_eps)
        self.act = ACT2FN["gelu"]
        self.output = nn.Linear(2 * config.hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.output(self.act(self.norm(self.dense(pooled))))


class ITNetForVisualQuestionAnswering(ITNetPreTrainedModel):
    r"""ITNet reading an image and a question in one sequence, with an answer classifier on the pooled states (as
    ViLT for VQAv2). The answer vocabulary is `config.id2label`; targets are soft scores `[B, num_labels]` (VQAv2's
    answer scores, in [0, 1]) and the loss is ViLT's: binary cross-entropy with logits, times the number of answers.
    The loss is a mean over the batch, so `Trainer` scales it under gradient accumulation itself
    (`accepts_loss_kwargs = False`).
    """

    input_modalities = ("image", "text")
    accepts_loss_kwargs = False

    def __init__(self, config: ITNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.itnet = ITNetModel(config, modalities=("text", "image"))
        self.classifier = ITNetClassifierHead(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        pixel_values (`torch.Tensor` of shape `[B, C, H, W]`): the images the questions ask about.
        labels (`torch.FloatTensor` of shape `[B, num_labels]`): soft scores of every answer in `config.id2label`.
        """
        if pixel_values is None or (input_ids is None and inputs_embeds is None):
            raise ValueError("Visual question answering needs both the question (`input_ids`) and `pixel_values`.")
        if labels is not None and (
            labels.ndim != 2 or labels.shape[1] != self.num_labels or not labels.is_floating_point()
        ):
            raise ValueError(
                f"`labels` must be float soft scores of shape [batch, num_labels={self.num_labels}] (one per answer in "
                f"`config.id2label`), got {labels.dtype} {list(labels.shape)}."
            )
        outputs = self.itnet(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            pixel_values=pixel_values,
            **kwargs,
        )
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype)) * labels.shape[1]
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class ITNetForImagesAndTextClassification(ITNetPreTrainedModel):
    r"""ITNet reading a sentence and several images in one sequence, classifying the pair (NLVR2: is the sentence
    true of the left and right images?). `pixel_values` `[B, K, C, H, W]`, `K ≤ config.max_num_images`, image `k`
    marked by its own modality embedding (so "left" and "right" are told apart). Classification loss following
    `config.problem_type`, as `ITNetForSequenceClassification`.
    """

    input_modalities = ("image", "text")

    def __init__(self, config: ITNetConfig):
        super().__init__(config)
        self.loss_type = "ForSequenceClassification"
        self.num_labels = config.num_labels
        self.itnet = ITNetModel(config, modalities=("text", "image"))
        self.classifier = ITNetClassifierHead(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        pixel_values (`torch.Tensor` of shape `[B, K, C, H, W]`): the `K` images of each example.
        labels (`torch.LongTensor` of shape `[B]`): class indices (or targets, following `config.problem_type`).
        """
        if pixel_values is None or pixel_values.ndim != 5:
            shape = None if pixel_values is None else list(pixel_values.shape)
            raise ValueError(
                f"`pixel_values` must have shape [batch, num_images, channels, height, width], got {shape}."
            )
        check_classification_labels(labels, self.config, batch_size_of(input_ids, inputs_embeds, pixel_values))
        outputs = self.itnet(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            pixel_values=pixel_values,
            **kwargs,
        )
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = classification_loss(self.loss_function, labels, logits, self.config, **kwargs)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class ITNetForPointCloudClassification(ITNetPreTrainedModel):
    r"""ITNet on point clouds (ModelNet40-style shape classification): a linear head on the mean of the final point
    states. The trunk uses the content kernel families of the config (see `ITNetModel`), so the output is invariant
    to the order of the points. Classification loss following `config.problem_type`.
    """

    main_input_name = "points"
    input_modalities = ("points",)

    def __init__(self, config: ITNetConfig):
        super().__init__(config)
        self.loss_type = "ForSequenceClassification"
        self.num_labels = config.num_labels
        self.itnet = ITNetModel(config, modalities=("points",))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        points: torch.Tensor | None = None,
        point_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        points (`torch.Tensor` of shape `[B, N, 3]`): coordinates (normalised, e.g. to the unit ball).
        point_features (`torch.Tensor` of shape `[B, N, config.point_feature_size]`): per-point features, if the
            config takes any.
        attention_mask (`torch.Tensor` of shape `[B, N]`): 1 for real points, 0 for padding (clouds of different
            sizes in one batch).
        labels (`torch.LongTensor` of shape `[B]`): class indices (or targets, following `config.problem_type`).
        """
        if points is None:
            raise ValueError("Point-cloud classification needs `points` of shape [batch, num_points, 3].")
        check_classification_labels(labels, self.config, batch_size_of(points))
        outputs = self.itnet(points=points, point_features=point_features, attention_mask=attention_mask, **kwargs)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = classification_loss(self.loss_function, labels, logits, self.config, **kwargs)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


AUTO_CLASSES = {
    "AutoModel": ITNetModel,
    "AutoModelForSequenceClassification": ITNetForSequenceClassification,
    "AutoModelForCausalLM": ITNetForCausalLM,
    "AutoModelForMaskedLM": ITNetForMaskedLM,
    "AutoModelForImageClassification": ITNetForImageClassification,
    "AutoModelForVisualQuestionAnswering": ITNetForVisualQuestionAnswering,
}
"""The transformers Auto class of each head that has one. `ITNetForImagesAndTextClassification` and
`ITNetForPointCloudClassification` have no Auto class in transformers: without the package, load them with
`transformers.dynamic_module_utils.get_class_from_dynamic_module("heads_itnet.<class>", path)`."""


__all__ = [
    "AUTO_CLASSES",
    "ITNetForCausalLM",
    "ITNetForImageClassification",
    "ITNetForImagesAndTextClassification",
    "ITNetForMaskedLM",
    "ITNetForPointCloudClassification",
    "ITNetForSequenceClassification",
    "ITNetForVisualQuestionAnswering",
]
