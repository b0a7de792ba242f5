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
"""ITNet for Hugging Face Transformers: one learnable integral transform for text, images, image + text and point
clouds.

Importing the package registers every class with the matching Auto class, so `AutoConfig`, `AutoModel`,
`AutoModelForCausalLM`, `AutoModelForMaskedLM`, `AutoModelForSequenceClassification`,
`AutoModelForImageClassification` and `AutoModelForVisualQuestionAnswering` resolve `model_type="itnet"`,
`AutoImageProcessor` resolves it to `ITNetImageProcessor` (torchvision backend) or `ITNetImageProcessorPil`, and
`AutoProcessor` loads `ITNetProcessor` for the folders that saved one (a text-only folder gets its tokenizer, an
image-only one its image processor, as for BERT and ViT). It also registers the `"itnet-visual-question-answering"` pipeline
(`pipeline_itnet`): transformers 5 removed its own visual-question-answering task and refuses that name.

It also registers the classes for remote code (`register_for_auto_class`): `save_pretrained` then copies the module
files beside the weights and writes an `auto_map` naming the config, every head, the image processor and the
processor, so the folder loads with `trust_remote_code=True` where `modeling_itnet` is not installed.

`modeling_itnet.convert_to_itnet(model, relax=False)` turns a transformers BERT, ViT, GPT-2 or Mamba model into the
ITNet model computing the same function (`convert.py`; command line `python -m modeling_itnet.convert`).
"""

import transformers

from .compat_itnet import (
    PIPELINE_REGISTRY,
    AutoConfig,
    AutoImageProcessor,
    AutoModelForVisualQuestionAnswering,
    AutoProcessor,
    AutoVideoProcessor,
)
from .configuration_itnet import ITNetConfig
from .heads_itnet import (
    AUTO_CLASSES,
    ITNetForCausalLM,
    ITNetForImageClassification,
    ITNetForImagesAndTextClassification,
    ITNetForMaskedLM,
    ITNetForPointCloudClassification,
    ITNetForSequenceClassification,
    ITNetForVisualQuestionAnswering,
)
from .image_processing_itnet import ITNetImageProcessor, ITNetImageProcessorPil
from .modeling_itnet import ITNetCache, ITNetModel, ITNetPreTrainedModel
from .pipeline_itnet import ITNetVisualQuestionAnsweringPipeline
from .presets_itnet import CAUSAL_TOKENIZER, list_presets, preset_config, preset_path, tokenizer_path
from .processing_itnet import ITNetProcessor

AutoConfig.register("itnet", ITNetConfig, exist_ok=True)
ITNetConfig.register_for_auto_class("AutoConfig")
for auto_class, head in AUTO_CLASSES.items():
    getattr(transformers, auto_class).register(ITNetConfig, head, exist_ok=True)
    head.register_for_auto_class(auto_class)
AutoImageProcessor.register(
    ITNetConfig,
    image_processor_classes={"torchvision": ITNetImageProcessor, "pil": ITNetImageProcessorPil},
    exist_ok=True,
)
ITNetImageProcessor.register_for_auto_class("AutoImageProcessor")
ITNetImageProcessorPil.register_for_auto_class("AutoImageProcessor")
# ITNet has no video processor, said explicitly: every `pipeline(...)` also tries `AutoVideoProcessor`, which derives a
# remote class from the saved image processor's `auto_map` ("...ImageProcessor" -> "...VideoProcessor") and, finding
# no local one for `ITNetConfig`, would ask on stdin whether to run the folder's code (a 15 s prompt in a terminal).
AutoVideoProcessor.register(ITNetConfig, video_processor_classes={}, exist_ok=True)
# By name only: a folder whose processor_config.json names `ITNetProcessor` (every image + text checkpoint) loads it,
# while a text-only ITNet folder gets its tokenizer from `AutoProcessor`, as a BERT folder does. Keyed by the processor
# class, not by `ITNetConfig`, so that `AutoProcessor` never falls back to it for a folder that does not name it.
AutoProcessor.register(ITNetProcessor, ITNetProcessor, exist_ok=True)
ITNetProcessor.register_for_auto_class("AutoProcessor")
PIPELINE_REGISTRY.register_pipeline(
    "itnet-visual-question-answering",
    pipeline_class=ITNetVisualQuestionAnsweringPipeline,
    pt_model=AutoModelForVisualQuestionAnswering,
    type="multimodal",
)

__version__ = "0.1.0"


def __getattr__(name: str):
    """`convert_to_itnet` (BERT/ViT/GPT-2/Mamba → ITNet, `convert.py`), imported on first use so that
    `python -m modeling_itnet.convert` runs the module once."""
    if name == "convert_to_itnet":
        from .convert import convert_to_itnet

        return convert_to_itnet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CAUSAL_TOKENIZER",
    "ITNetCache",
    "ITNetConfig",
    "ITNetForCausalLM",
    "ITNetForImageClassification",
    "ITNetForImagesAndTextClassification",
    "ITNetForMaskedLM",
    "ITNetForPointCloudClassification",
    "ITNetForSequenceClassification",
    "ITNetForVisualQuestionAnswering",
    "ITNetImageProcessor",
    "ITNetImageProcessorPil",
    "ITNetModel",
    "ITNetPreTrainedModel",
    "ITNetProcessor",
    "ITNetVisualQuestionAnsweringPipeline",
    "convert_to_itnet",
    "list_presets",
    "preset_config",
    "preset_path",
    "tokenizer_path",
]
