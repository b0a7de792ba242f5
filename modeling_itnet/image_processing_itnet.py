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
"""Image processors for ITNet: images -> `pixel_values [B, C, H, W]` for `ITNetForImageClassification`.

Two backends with the same settings and the same outputs, named as transformers 5.x names its own:

| class | backend | works on | needs |
|---|---|---|---|
| `ITNetImageProcessor` | `TorchvisionBackend` | `torch.Tensor`, batched by shape, any device | torch, torchvision |
| `ITNetImageProcessorPil` | `PilBackend` | `np.ndarray`, one image at a time, CPU | Pillow |

`AutoImageProcessor` (and so `pipeline("image-classification")`) takes the torchvision backend when torchvision is
installed and the PIL backend otherwise; `backend="pil"` or `backend="torchvision"` picks one. Both save the same
`preprocessor_config.json` (`"image_processor_type": "ITNetImageProcessor"`, the PIL class drops its suffix), so a
saved processor loads into either backend.

Inputs: PIL images, arrays or tensors `[H, W]`, `[C, H, W]` or `[H, W, C]` (`C` in 1, 3, 4), lists of them, or
`[B, C, H, W]` batches. Steps, in order:

1. channels, to match the model's `config.num_channels`:
   - `num_channels=None` (default) with `do_convert_rgb=None` (default): images keep their channels, as in
     transformers' ViT processor;
   - `do_convert_rgb=True`: grayscale -> 3 equal channels, RGBA composited on white, palette images decoded
     (transformers' own rule, as in CLIP);
   - `num_channels=3`: the same as `do_convert_rgb=True`;
   - `num_channels=1`: as for 3, then RGB -> luma `0.299 R + 0.587 G + 0.114 B` (ITU-R 601-2, the weights of
     PIL's `convert("L")`), rounded for integer images; a grayscale image comes back unchanged. Needed for a
     `num_channels=1` model behind `pipeline("image-classification")`, which opens every image as RGB;
2. `do_resize`: resize to `size` (default `{"height": 32, "width": 32}`, the default `ITNetConfig.image_size`) with
   `resample` (bilinear);
3. `do_rescale`: multiply by `rescale_factor` (1/255): uint8 [0, 255] -> [0, 1];
4. `do_normalize`: `(x - image_mean) / image_std` (0.5 and 0.5: [0, 1] -> [-1, 1]). A number applies to every
   channel; a list needs one entry per channel.
"""

import numpy as np

from .compat_itnet import (
    ImageInput,
    ImagesKwargs,
    PilBackend,
    PILImageResampling,
    TorchvisionBackend,
    Unpack,
    is_pil_image,
    is_torchvision_available,
    is_valid_image,
)

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL's convert("L")


class ITNetImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    num_channels (`int`, *optional*, defaults to `self.num_channels`):
        Channels of the output, 1 or 3 (the model's `config.num_channels`); `None` keeps each image's channels.
    """

    num_channels: int | None


def add_channel_axis(images: ImageInput) -> ImageInput:
    """Grayscale arrays or tensors `[H, W]` (alone or in nested lists) -> `[1, H, W]`; anything else unchanged.

    transformers accepts `[H, W]` only as a PIL image; this lets `[H, W]` arrays and tensors in as well.
    """
    if isinstance(images, (list, tuple)):
        return [add_channel_axis(image) for image in images]
    if is_valid_image(images) and not is_pil_image(images) and images.ndim == 2:
        return images[None]
    return images


def rgb_to_luma(image):
    """`[3, H, W]` RGB array or tensor -> `[1, H, W]` luma of the same type and dtype.

    Integer images are rounded to the nearest integer; an image whose three channels are equal gives its first channel
    exactly.
    """
    if (image[0] == image[1]).all() and (image[1] == image[2]).all():
        return image[:1]
    if isinstance(image, np.ndarray):
        rgb = image.astype(np.float32)
        is_integer = np.issubdtype(image.dtype, np.integer)
    else:
        rgb = image.float()
        is_integer = not image.is_floating_point()
    luma = sum(weight * rgb[c : c + 1] for c, weight in enumerate(LUMA_WEIGHTS))
    if is_integer:
        luma = luma.round()
    return luma.astype(image.dtype) if isinstance(image, np.ndarray) else luma.to(image.dtype)


class ITNetImageProcessingMixin:
    """Settings and channel handling shared by both backends; the backend class follows this one in the bases."""

    valid_kwargs = ITNetImageProcessorKwargs
    resample = PILImageResampling.BILINEAR
    image_mean = 0.5
    image_std = 0.5
    size = {"height": 32, "width": 32}  # noqa: RUF012 (transformers reads image processor defaults as class attributes)
    do_resize = True
    do_rescale = True
    do_normalize = True
    num_channels = None

    def _prepare_images_structure(self, images: ImageInput, expected_ndims: int = 3) -> ImageInput:
        """Flat list of images, each `[C, H, W]`, `[H, W, C]` or PIL, with `[H, W]` arrays/tensors given a channel."""
        return super()._prepare_images_structure(add_channel_axis(images), expected_ndims=expected_ndims)

    def _standardize_kwargs(self, num_channels: int | None = None, **kwargs) -> dict:
        """transformers' standardisation, and `num_channels` checked (at construction and at each call)."""
        if num_channels not in (None, 1, 3):
            raise ValueError(f"`num_channels` must be 1, 3 or None, got {num_channels!r}.")
        return {**super()._standardize_kwargs(**kwargs), "num_channels": num_channels}

    def process_image(
        self, image: ImageInput, do_convert_rgb: bool | None = None, num_channels: int | None = None, **kwargs
    ):
        """One raw image -> the backend's `[C, H, W]` (`C = num_channels` when given) array or tensor."""
        image = super().process_image(image, do_convert_rgb=do_convert_rgb or num_channels is not None, **kwargs)
        return rgb_to_luma(image) if num_channels == 1 else image


class ITNetImageProcessor(ITNetImageProcessingMixin, TorchvisionBackend):
    """ITNet image processor, torchvision backend: images -> `pixel_values [B, C, size["height"], size["width"]]`.

    Needs torchvision; without it, construction raises `ImportError` (use `ITNetImageProcessorPil`, which gives the
    same outputs, or `AutoImageProcessor`, which picks it). See the module docstring for the steps and defaults.
    """

    def __init__(self, **kwargs: Unpack[ITNetImageProcessorKwargs]):
        if not is_torchvision_available():
            raise ImportError(
                "ITNetImageProcessor is the torchvision backend and needs `torchvision`, which is not installed. "
                "Use ITNetImageProcessorPil (same outputs), or AutoImageProcessor.from_pretrained(path) (picks the "
                'PIL backend without torchvision; backend="pil" asks for it), or install a torchvision built for '
                "your torch."
            )
        super().__init__(**kwargs)


class ITNetImageProcessorPil(ITNetImageProcessingMixin, PilBackend):
    """ITNet image processor, PIL/NumPy backend: images -> `pixel_values [B, C, size["height"], size["width"]]`.

    Same settings, defaults and outputs as `ITNetImageProcessor`; needs only Pillow. See the module docstring.
    """


__all__ = ["ITNetImageProcessor", "ITNetImageProcessorPil"]
