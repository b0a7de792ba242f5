"""Transformers' own conformance suite (`ModelTesterMixin`, `ConfigTester`) run over ITNet.

The common tests come from the transformers sdist of the installed version, fetched at test time by
`transformers_suite.py` (never committed). Three testers, as transformers writes them for its own models:
text (`ITNetModel`, `ITNetForSequenceClassification` on `input_ids`/`attention_mask`), image (`ITNetModel`,
`ITNetForImageClassification` on `pixel_values`) and causal language modelling (`ITNetModel` and
`ITNetForCausalLM` with `is_causal=True`). The causal tester inherits `GenerationTesterMixin`, as upstream requires of
a model that can generate; that mixin is a stand-in here (the real one is not in the sdist), and
`tests/test_generation.py` runs ITNet's generation tests. VQA, NLVR2 and point-cloud testers cover the multimodal
heads, and one text tester per registered kernel family (`_family_tester`) runs the whole suite over that family alone.

ITNet computes no attention maps (`has_attentions = False`), so upstream skips its tests of attention outputs and
attention implementations (sdpa, flash, flex) by itself; it also skips what needs an accelerator, deepspeed, RoPE,
experts or a TP plan. The image tester leaves out what presupposes a token vocabulary, as transformers' ViT test
does: `inputs_embeds` (it stands for `input_ids`) and resizing token embeddings, and checks the patch projection
as the input embedding.
"""

import os
import sys
import unittest
from typing import ClassVar
from unittest import mock

import pytest
import torch
from torch import nn
from transformers.models.auto import modeling_auto

from modeling_itnet import (
    ITNetCache,
    ITNetConfig,
    ITNetForCausalLM,
    ITNetForImageClassification,
    ITNetForImagesAndTextClassification,
    ITNetForMaskedLM,
    ITNetForPointCloudClassification,
    ITNetForSequenceClassification,
    ITNetForVisualQuestionAnswering,
    ITNetModel,
)
from modeling_itnet.branches_itnet import FAMILIES

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transformers_suite

try:
    common = transformers_suite.load_common_tests()
except transformers_suite.TransformersTestsUnavailable as error:
    # Fail loudly, with the reason, in every test of the testers below (no collection error, no skip).
    common = None
    ModelTesterMixin = transformers_suite.unavailable_mixin(error)
    GenerationTesterMixin = type("GenerationTesterMixin", (), {})
else:
    ModelTesterMixin = common.ModelTesterMixin
    GenerationTesterMixin = common.test_modeling_common.GenerationTesterMixin


# `ModelTesterMixin._prepare_for_class` picks labels by looking class names up in the `MODEL_*_MAPPING_NAMES`
# of transformers' Auto classes; `AutoModel.register` fills only the mappings' extra content. Not added to
# `CONFIG_MAPPING_NAMES`: the lazy mappings would then try to import `transformers.models.itnet`.
AUTO_MAPPING_NAMES = {
    "MODEL_MAPPING_NAMES": "ITNetModel",
    "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES": "ITNetForSequenceClassification",
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": "ITNetForCausalLM",
    "MODEL_FOR_MASKED_LM_MAPPING_NAMES": "ITNetForMaskedLM",
    "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES": "ITNetForImageClassification",
    "MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES": "ITNetForVisualQuestionAnswering",
}


@pytest.fixture(autouse=True, scope="module")
def itnet_in_auto_mapping_names():
    patches = [
        mock.patch.dict(getattr(modeling_auto, name), {"itnet": cls}) for name, cls in AUTO_MAPPING_NAMES.items()
    ]
    for patch in patches:
        patch.start()
    yield
    for patch in reversed(patches):
        patch.stop()


TINY_CONFIG = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "image_size": 16,
    "patch_size": 4,
    "num_channels": 3,
    "initializer_range": 0.02,
    "kernel_num_frequencies": 4,
    "kernel_mlp_size": 16,
}


class ITNetModelTester:
    """Builds the tiny config and the inputs of one modality: `"text"`, `"image"`, `"vqa"` (an image and a question),
    `"nlvr2"` (two images and a sentence) or `"points"` (a padded batch of point clouds)."""

    def __init__(self, parent, modality, batch_size=13, seq_length=7, is_training=True, num_labels=3, **config):
        self.parent = parent
        self.modality = modality
        self.batch_size = batch_size
        self.is_training = is_training
        self.num_labels = num_labels
        self.type_sequence_label_size = num_labels
        self.config_kwargs = {**TINY_CONFIG, **config}
        for name, value in self.config_kwargs.items():
            setattr(self, name, value)
        # tokens the trunk sees: text tokens, patches of the image(s), or points
        patches = (self.image_size // self.patch_size) ** 2
        self.text_length = seq_length
        self.num_points = 20
        self.seq_length = {
            "text": seq_length,
            "image": patches,
            "vqa": seq_length + patches,
            "nlvr2": seq_length + 2 * patches,
            "points": self.num_points,
        }[modality]

    def get_config(self):
        return ITNetConfig(**self.config_kwargs, num_labels=self.num_labels)

    def prepare_config_and_inputs(self):
        image = [self.num_channels, self.image_size, self.image_size]
        inputs = {}
        if self.modality in ("text", "vqa", "nlvr2"):
            inputs["input_ids"] = common.ids_tensor([self.batch_size, self.text_length], self.vocab_size)
            inputs["attention_mask"] = common.random_attention_mask([self.batch_size, self.text_length])
        if self.modality in ("image", "vqa"):
            inputs["pixel_values"] = common.floats_tensor([self.batch_size, *image])
        if self.modality == "nlvr2":
            inputs["pixel_values"] = common.floats_tensor([self.batch_size, 2, *image])
        if self.modality == "points":
            inputs["points"] = common.floats_tensor([self.batch_size, self.num_points, 3]) * 2 - 1
            inputs["attention_mask"] = common.random_attention_mask([self.batch_size, self.num_points])
        labels = common.ids_tensor([self.batch_size], self.num_labels)
        return self.get_config(), inputs, labels

    def prepare_config_and_inputs_for_common(self):
        config, inputs, _ = self.prepare_config_and_inputs()
        return config, inputs

    def create_and_check_model(self, config, inputs):
        model = ITNetModel(config, modalities=("points",) if self.modality == "points" else ("text", "image")).eval()
        with torch.no_grad():
            result = model(**inputs)
        self.parent.assertEqual(result.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size))
        self.parent.assertEqual(result.pooler_output.shape, (self.batch_size, self.hidden_size))

    def create_and_check_for_classification(self, model_class, config, inputs, labels):
        model = model_class(config).eval()
        if model_class is ITNetForVisualQuestionAnswering:
            labels = torch.rand(self.batch_size, self.num_labels)  # soft answer scores
        with torch.no_grad():
            result = model(**inputs, labels=labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.num_labels))
        self.parent.assertEqual(result.loss.shape, ())

    def create_and_check_for_causal_lm(self, config, inputs):
        model = ITNetForCausalLM(config).eval()
        with torch.no_grad():
            result = model(**inputs, labels=inputs["input_ids"])
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.seq_length, self.vocab_size))
        self.parent.assertEqual(result.loss.shape, ())
        self.parent.assertTrue(torch.isfinite(result.loss))


class ITNetCommonTestsMixin:
    """What every tester shares: the ConfigTester run and the tester's own shape checks."""

    has_attentions = False  # the integral transform computes no attention maps
    # Upstream runs this only for models whose config file carries a copyright year >= 2023; ITNet's does not.
    test_can_init_all_missing_weights_before_2023 = True
    config_tester_kwargs: ClassVar[dict] = {}
    tester_kwargs: ClassVar[dict] = {}  # config values of this tester beyond TINY_CONFIG

    def setUp(self):
        super().setUp()
        self.model_tester = ITNetModelTester(self, self.modality, **self.tester_kwargs)
        self.config_tester = common.ConfigTester(self, config_class=ITNetConfig, **self.config_tester_kwargs)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        config, inputs, _ = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_model(config, inputs)


class ITNetClassificationTestsMixin(ITNetCommonTestsMixin):
    """The classification testers: the head's logits and loss."""

    def test_for_classification(self):
        config, inputs, labels = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_for_classification(self.classification_class, config, inputs, labels)

    def test_bc_cache_name_forward(self):
        """Upstream's (5.24) passes `use_cache=True` to every model whose forward takes `cache`. ITNet's
        bidirectional models refuse a cache, which continues a sequence causally: a `ValueError` under the new name
        and the old ones alike. The causal tester runs upstream's test; `tests/test_compat.py` checks that the old
        names continue a sequence as `cache` does."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config).eval()
            for name in ("use_cache", "cache", "past_key_values", "cache_params"):
                value = True if name == "use_cache" else ITNetCache(config)
                with self.subTest(model_class.__name__, argument=name), self.assertRaisesRegex(ValueError, "causal"):
                    model(**inputs, **{name: value})


class ITNetTextModelTest(ITNetClassificationTestsMixin, ModelTesterMixin, unittest.TestCase):
    modality = "text"
    classification_class = ITNetForSequenceClassification
    all_model_classes = (ITNetModel, ITNetForSequenceClassification, ITNetForMaskedLM)
    config_tester_kwargs: ClassVar[dict] = {"hidden_size": 40, "num_attention_heads": 5, "vocab_size": 77}


class ITNetImageModelTest(ITNetClassificationTestsMixin, ModelTesterMixin, unittest.TestCase):
    modality = "image"
    classification_class = ITNetForImageClassification
    all_model_classes = (ITNetModel, ITNetForImageClassification)
    config_tester_kwargs: ClassVar[dict] = {
        "has_text_modality": False,
        "hidden_size": 40,
        "num_attention_heads": 5,
        "image_size": 24,
        "patch_size": 6,
    }
    test_resize_embeddings = False  # the input embedding is a patch projection, not a vocabulary

    def test_model_get_set_embeddings(self):
        # As transformers' ViT test: the image head's input embedding is the patch projection (a `Conv2d`), which
        # the upstream test's `nn.Embedding` check and swap do not apply to. The trunk keeps the upstream check.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), nn.Module)
            if model_class is ITNetForImageClassification:
                self.assertIsInstance(model.get_input_embeddings(), nn.Conv2d)
                with self.assertRaises(ValueError):
                    model.set_input_embeddings(nn.Embedding(10, 10))
            else:
                self.assertIsInstance(model.get_input_embeddings(), nn.Embedding)
                embedding = nn.Embedding(10, 10)
                model.set_input_embeddings(embedding)
                self.assertIs(model.get_input_embeddings(), embedding)
            x = model.get_output_embeddings()
            self.assertTrue(x is None or isinstance(x, nn.Linear))

    @unittest.skip(reason="`inputs_embeds` replaces `input_ids`; pixel inputs have none (the text tester runs it)")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="`inputs_embeds` replaces `input_ids`; pixel inputs have none (the text tester runs it)")
    def test_inputs_embeds_matches_input_ids(self):
        pass


class ITNetCausalLMModelTest(ITNetCommonTestsMixin, ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    modality = "text"
    tester_kwargs: ClassVar[dict] = {"is_causal": True}
    all_model_classes = (ITNetModel, ITNetForCausalLM)
    config_tester_kwargs: ClassVar[dict] = {
        "hidden_size": 40,
        "num_attention_heads": 5,
        "vocab_size": 77,
        "is_causal": True,
    }

    def test_for_causal_lm(self):
        config, inputs, _ = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_for_causal_lm(config, inputs)


class ITNetMultimodalTestsMixin(ITNetClassificationTestsMixin):
    """Image + text and point-cloud heads: labels for the heads no Auto mapping describes, as transformers' ViLT
    test adds them (VQA: soft scores `[B, num_labels]`; NLVR2 and point clouds: class indices `[B]`)."""

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and model_class is ITNetForVisualQuestionAnswering:
            inputs_dict["labels"] = torch.zeros(self.model_tester.batch_size, self.model_tester.num_labels)
        elif return_labels and model_class in (ITNetForImagesAndTextClassification, ITNetForPointCloudClassification):
            inputs_dict["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
        return inputs_dict


class ITNetVisualQuestionAnsweringModelTest(ITNetMultimodalTestsMixin, ModelTesterMixin, unittest.TestCase):
    modality = "vqa"
    classification_class = ITNetForVisualQuestionAnswering
    all_model_classes = (ITNetModel, ITNetForVisualQuestionAnswering)
    tester_kwargs: ClassVar[dict] = {"kernel_families": ["spectral", "local", "low_rank", "softmax"]}
    config_tester_kwargs: ClassVar[dict] = {"hidden_size": 40, "num_attention_heads": 5, "vocab_size": 77}


class ITNetImagesAndTextModelTest(ITNetMultimodalTestsMixin, ModelTesterMixin, unittest.TestCase):
    modality = "nlvr2"
    classification_class = ITNetForImagesAndTextClassification
    all_model_classes = (ITNetModel, ITNetForImagesAndTextClassification)
    tester_kwargs: ClassVar[dict] = {"kernel_families": ["spectral", "low_rank", "mlp"]}
    config_tester_kwargs: ClassVar[dict] = {"hidden_size": 40, "num_attention_heads": 5, "vocab_size": 77}


class ITNetPointCloudModelTest(ITNetMultimodalTestsMixin, ModelTesterMixin, unittest.TestCase):
    modality = "points"
    classification_class = ITNetForPointCloudClassification
    all_model_classes = (ITNetForPointCloudClassification,)
    tester_kwargs: ClassVar[dict] = {"kernel_families": ["spectral", "low_rank", "softmax", "mlp"]}
    config_tester_kwargs: ClassVar[dict] = {"has_text_modality": False, "hidden_size": 40, "num_attention_heads": 5}
    test_resize_embeddings = False  # the input embedding is a linear map of coordinates, not a vocabulary

    def test_model_get_set_embeddings(self):
        # As the image tester: the input embedding is the point projection (a `Linear`), no `nn.Embedding` to swap.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        model = ITNetForPointCloudClassification(config)
        self.assertIsInstance(model.get_input_embeddings(), nn.Linear)
        with self.assertRaises(ValueError):
            model.set_input_embeddings(nn.Embedding(10, 10))
        self.assertIsNone(model.get_output_embeddings())

    @unittest.skip(reason="`inputs_embeds` replaces `input_ids`; point clouds have none (the text tester runs it)")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="`inputs_embeds` replaces `input_ids`; point clouds have none (the text tester runs it)")
    def test_inputs_embeds_matches_input_ids(self):
        pass


def _family_tester(family: str) -> type:
    """The text tester over one registered family alone (`kernel_families=[family]`): upstream's whole suite per
    family, as timm runs its contract over every registered model. A family registered later gets one by itself."""
    name = "".join(part.title() for part in family.split("_"))
    return type(
        f"ITNet{name}FamilyModelTest",
        (ITNetClassificationTestsMixin, ModelTesterMixin, unittest.TestCase),
        {
            "__doc__": f"Upstream's common tests over `kernel_families=[{family!r}]` (text, bidirectional).",
            "__module__": __name__,
            "modality": "text",
            "classification_class": ITNetForSequenceClassification,
            "all_model_classes": (ITNetModel, ITNetForSequenceClassification),
            "tester_kwargs": {"kernel_families": [family]},
            "config_tester_kwargs": {"hidden_size": 40, "num_attention_heads": 5, "vocab_size": 77},
        },
    )


for _family in FAMILIES:
    _tester = _family_tester(_family)
    globals()[_tester.__name__] = _tester
