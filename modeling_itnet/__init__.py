"""ITNet for Hugging Face Transformers: one learnable integral transform for text, images and more.

Importing the package registers every class with the matching Auto class, so `AutoConfig`, `AutoModel`,
`AutoModelForSequenceClassification` and `AutoModelForImageClassification` resolve `model_type="itnet"`.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from .configuration_itnet import ITNetConfig
from .modeling_itnet import (
    ITNetForImageClassification,
    ITNetForSequenceClassification,
    ITNetModel,
    ITNetPreTrainedModel,
)
from .presets_itnet import list_presets, preset_config, preset_path, tokenizer_path


AutoConfig.register("itnet", ITNetConfig, exist_ok=True)
AutoModel.register(ITNetConfig, ITNetModel, exist_ok=True)
AutoModelForSequenceClassification.register(ITNetConfig, ITNetForSequenceClassification, exist_ok=True)
AutoModelForImageClassification.register(ITNetConfig, ITNetForImageClassification, exist_ok=True)

__version__ = "0.1.0"

__all__ = [
    "ITNetConfig",
    "ITNetForImageClassification",
    "ITNetForSequenceClassification",
    "ITNetModel",
    "ITNetPreTrainedModel",
    "list_presets",
    "preset_config",
    "preset_path",
    "tokenizer_path",
]
