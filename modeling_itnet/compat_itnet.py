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
"""Everything in ITNet that depends on the installed transformers version, in one place.

Tested range: `TESTED_TRANSFORMERS` (the same specifier as `pyproject.toml`; CI runs the whole suite at the newest
version it allows and the conformance, remote-code, generation, Trainer and example tests at the oldest).

What differs inside the range:

| transformers | cache in `forward` and in model outputs | `generate` passes / reads |
|---|---|---|
| 5.23 | `past_key_values` | `past_key_values=` / `outputs.past_key_values` |
| 5.24 | `cache` (old names rewritten by a shim, with a deprecation warning) | `cache=` / `outputs.cache` |

ITNet follows 5.24: its forwards take `cache`, and `legacy_cache_argument` maps the older names onto it (silently
on 5.23, where they are what `generate` passes; with transformers' own deprecation warning from 5.24 on). Outputs
carry the cache under `CACHE_FIELD`, the name the installed `generate` reads; `cache_of(output)` reads it on any
version.

Remote code runs this file under whatever transformers the Hub user has: `check_transformers_version()` logs one
warning naming the tested range outside it, and a transformers API that ITNet imports but the installed version lacks
raises an `ImportError` here that names the API and the range, instead of a traceback from deep inside.
"""

import functools
from dataclasses import fields

import transformers
from packaging.specifiers import SpecifierSet
from packaging.version import Version

TESTED_TRANSFORMERS = ">=5.23,<5.26"

try:  # every transformers API that ITNet's modules use (convert.py aside), so that a missing one fails here, clearly
    from huggingface_hub.dataclasses import strict
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModelForVisualQuestionAnswering,
        AutoProcessor,
        GenerationMixin,
        Pipeline,
        PreTrainedConfig,
        PreTrainedModel,
    )
    from transformers import initialization as init
    from transformers.activations import ACT2FN
    from transformers.dynamic_module_utils import custom_object_save
    from transformers.feature_extraction_utils import BatchFeature
    from transformers.image_processing_backends import PilBackend, TorchvisionBackend
    from transformers.image_utils import ImageInput, PILImageResampling, is_pil_image, is_valid_image, load_image
    from transformers.modeling_layers import GradientCheckpointingLayer
    from transformers.modeling_outputs import (
        BaseModelOutputWithPoolingAndCrossAttentions,
        CausalLMOutputWithPast,
        ImageClassifierOutput,
        MaskedLMOutput,
        SequenceClassifierOutput,
    )
    from transformers.modeling_utils import slice_logits_to_keep
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor  # the top level's needs torchvision
    from transformers.pipelines import PIPELINE_REGISTRY
    from transformers.processing_utils import ImagesKwargs, ProcessorMixin, Unpack
    from transformers.utils import TransformersKwargs, is_torchvision_available, logging
    from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
    from transformers.utils.output_capturing import capture_outputs
except ImportError as error:
    raise ImportError(
        f"ITNet needs a transformers API that transformers {transformers.__version__} does not have ({error}). "
        f"ITNet is tested with transformers {TESTED_TRANSFORMERS}: `pip install 'transformers{TESTED_TRANSFORMERS}'`."
    ) from error

logger = logging.get_logger(__name__)
LEGACY_CACHE_NAMES = ("past_key_values", "cache_params")


def check_transformers_version(version: str | None = None) -> bool:
    """True when `version` (default: the installed transformers) is inside `TESTED_TRANSFORMERS`; outside it, log
    one warning that names the range, and return False."""
    version = version or transformers.__version__
    if Version(version) in SpecifierSet(TESTED_TRANSFORMERS, prereleases=True):
        return True
    logger.warning_once(
        f"ITNet is tested with transformers {TESTED_TRANSFORMERS}; transformers {version} is installed. Install a "
        f"tested version (`pip install 'transformers{TESTED_TRANSFORMERS}'`) if anything fails."
    )
    return False


check_transformers_version()
CACHE_FIELD = "cache" if "cache" in {field.name for field in fields(CausalLMOutputWithPast)} else "past_key_values"


def cache_output(cache) -> dict:
    """`{CACHE_FIELD: cache}`: the keyword under which a model output carries the cache for this transformers."""
    return {CACHE_FIELD: cache}


def cache_of(output):
    """The cache a model output carries (`output.cache` on 5.24, `output.past_key_values` on 5.23), or None."""
    return output.get(CACHE_FIELD)


def legacy_cache_argument(forward):
    """Let `forward(cache=...)` also be called with `past_key_values=` or `cache_params=` (5.23's names): they are
    moved to `cache` before `forward` runs. A forward that 5.23's `generate` calls also lists `past_key_values` in
    its signature (5.23 checks the keywords it passes against it); it always receives None there."""

    @functools.wraps(forward)
    def wrapper(*args, **kwargs):
        for old in LEGACY_CACHE_NAMES:
            if old not in kwargs:
                continue
            value = kwargs.pop(old)
            if kwargs.get("cache") is not None and value is not None and value is not kwargs["cache"]:
                raise ValueError(f"Got both `cache` and `{old}`; pass the cache once, as `cache`.")
            if kwargs.get("cache") is None:
                kwargs["cache"] = value
            if CACHE_FIELD == "cache" and value is not None:
                logger.warning_once(f"`{old}` is deprecated since transformers 5.24. Use `cache` instead.")
        return forward(*args, **kwargs)

    return wrapper


__all__ = [  # ITNet's own helpers, then the transformers APIs its modules import from here
    "ACT2FN",
    "CACHE_FIELD",
    "LEGACY_CACHE_NAMES",
    "PIPELINE_REGISTRY",
    "TESTED_TRANSFORMERS",
    "AutoConfig",
    "AutoImageProcessor",
    "AutoModelForVisualQuestionAnswering",
    "AutoProcessor",
    "AutoVideoProcessor",
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "BatchFeature",
    "CausalLMOutputWithPast",
    "GenerationMixin",
    "GradientCheckpointingLayer",
    "ImageClassifierOutput",
    "ImageInput",
    "ImagesKwargs",
    "MaskedLMOutput",
    "PILImageResampling",
    "PilBackend",
    "Pipeline",
    "PreTrainedConfig",
    "PreTrainedModel",
    "ProcessorMixin",
    "SequenceClassifierOutput",
    "TorchvisionBackend",
    "TransformersKwargs",
    "Unpack",
    "cache_of",
    "cache_output",
    "can_return_tuple",
    "capture_outputs",
    "check_transformers_version",
    "custom_object_save",
    "init",
    "is_pil_image",
    "is_torchvision_available",
    "is_valid_image",
    "legacy_cache_argument",
    "load_image",
    "logging",
    "merge_with_config_defaults",
    "slice_logits_to_keep",
    "strict",
]
