"""ITNet for Hugging Face Transformers: one learnable integral transform for text, images and more.

Importing the package registers every class with the matching Auto class, so `AutoConfig`, `AutoModel`,
`AutoModelForCausalLM`, `AutoModelForMaskedLM`, `AutoModelForSequenceClassification` and `AutoModelForImageClassification` resolve
`model_type="itnet"`, and `AutoImageProcessor` resolves it to `ITNetImageProcessor` (torchvision backend) or
`ITNetImageProcessorPil`.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
)

from .configuration_itnet import ITNetConfig
from .image_processing_itnet import ITNetImageProcessor, ITNetImageProcessorPil
from .modeling_itnet import (
    ITNetCache,
    ITNetForCausalLM,
    ITNetForImageClassification,
    ITNetForMaskedLM,
    ITNetForSequenceClassification,
    ITNetModel,
    ITNetPreTrainedModel,
)
from .presets_itnet import list_presets, preset_config, preset_path, tokenizer_path


AutoConfig.register("itnet", ITNetConfig, exist_ok=True)
AutoModel.register(ITNetConfig, ITNetModel, exist_ok=True)
AutoModelForCausalLM.register(ITNetConfig, ITNetForCausalLM, exist_ok=True)
AutoModelForMaskedLM.register(ITNetConfig, ITNetForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(ITNetConfig, ITNetForSequenceClassification, exist_ok=True)
AutoModelForImageClassification.register(ITNetConfig, ITNetForImageClassification, exist_ok=True)
AutoImageProcessor.register(
    ITNetConfig,
    image_processor_classes={"torchvision": ITNetImageProcessor, "pil": ITNetImageProcessorPil},
    exist_ok=True,
)

__version__ = "0.1.0"

__all__ = [
    "ITNetCache",
    "ITNetConfig",
    "ITNetForCausalLM",
    "ITNetForImageClassification",
    "ITNetForMaskedLM",
    "ITNetForSequenceClassification",
    "ITNetImageProcessor",
    "ITNetImageProcessorPil",
    "ITNetModel",
    "ITNetPreTrainedModel",
    "list_presets",
    "preset_config",
    "preset_path",
    "tokenizer_path",
]
