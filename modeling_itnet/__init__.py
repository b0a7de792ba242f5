"""ITNet for Hugging Face Transformers: one learnable integral transform for text, images, image + text and point
clouds.

Importing the package registers every class with the matching Auto class, so `AutoConfig`, `AutoModel`,
`AutoModelForCausalLM`, `AutoModelForMaskedLM`, `AutoModelForSequenceClassification`,
`AutoModelForImageClassification` and `AutoModelForVisualQuestionAnswering` resolve `model_type="itnet"`,
`AutoImageProcessor` resolves it to `ITNetImageProcessor` (torchvision backend) or `ITNetImageProcessorPil`, and
`AutoProcessor` to `ITNetProcessor`. It also registers the `"itnet-visual-question-answering"` pipeline
(`pipeline_itnet`): transformers 5 removed its own visual-question-answering task and refuses that name.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForVisualQuestionAnswering,
    AutoProcessor,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_itnet import ITNetConfig
from .image_processing_itnet import ITNetImageProcessor, ITNetImageProcessorPil
from .modeling_itnet import (
    ITNetCache,
    ITNetForCausalLM,
    ITNetForImageClassification,
    ITNetForImagesAndTextClassification,
    ITNetForMaskedLM,
    ITNetForPointCloudClassification,
    ITNetForSequenceClassification,
    ITNetForVisualQuestionAnswering,
    ITNetModel,
    ITNetPreTrainedModel,
)
from .pipeline_itnet import ITNetVisualQuestionAnsweringPipeline
from .presets_itnet import list_presets, preset_config, preset_path, tokenizer_path
from .processing_itnet import ITNetProcessor


AutoConfig.register("itnet", ITNetConfig, exist_ok=True)
AutoModel.register(ITNetConfig, ITNetModel, exist_ok=True)
AutoModelForCausalLM.register(ITNetConfig, ITNetForCausalLM, exist_ok=True)
AutoModelForMaskedLM.register(ITNetConfig, ITNetForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(ITNetConfig, ITNetForSequenceClassification, exist_ok=True)
AutoModelForImageClassification.register(ITNetConfig, ITNetForImageClassification, exist_ok=True)
AutoModelForVisualQuestionAnswering.register(ITNetConfig, ITNetForVisualQuestionAnswering, exist_ok=True)
AutoImageProcessor.register(
    ITNetConfig,
    image_processor_classes={"torchvision": ITNetImageProcessor, "pil": ITNetImageProcessorPil},
    exist_ok=True,
)
AutoProcessor.register(ITNetConfig, ITNetProcessor, exist_ok=True)
PIPELINE_REGISTRY.register_pipeline(
    "itnet-visual-question-answering",
    pipeline_class=ITNetVisualQuestionAnsweringPipeline,
    pt_model=AutoModelForVisualQuestionAnswering,
    type="multimodal",
)

__version__ = "0.1.0"

__all__ = [
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
    "list_presets",
    "preset_config",
    "preset_path",
    "tokenizer_path",
]
