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
"""ITNet processor: the image processor and the tokenizer in one callable, for image + text models (VQA, NLVR2)."""

from collections.abc import Sequence

from .compat_itnet import BatchFeature, ProcessorMixin


def _is_image(value) -> bool:
    """A single image: a PIL image, or an array/tensor of rank 2 or 3."""
    return not isinstance(value, (list, tuple)) and (hasattr(value, "getpixel") or getattr(value, "ndim", 0) in (2, 3))


class ITNetProcessor(ProcessorMixin):
    r"""Wraps an `ITNetImageProcessor` (or `ITNetImageProcessorPil`) and the ITNet tokenizer.

    `processor(images=..., text=...)` returns `input_ids`, `attention_mask` and `pixel_values` for
    `ITNetForVisualQuestionAnswering` (one image per text: `pixel_values` `[B, C, H, W]`) and
    `ITNetForImagesAndTextClassification` (a group of `K` images per text, e.g. NLVR2's left and right image:
    `pixel_values` `[B, K, C, H, W]`).

    ```python
    >>> from transformers import AutoProcessor
    >>> processor = AutoProcessor.from_pretrained("path/to/itnet-vqa")
    >>> inputs = processor(images=[image], text=["what color is the shape?"], return_tensors="pt")
    >>> pairs = processor(images=[(left, right)], text=["both images contain a circle"], return_tensors="pt")
    ```

    Args:
        image_processor: an ITNet image processor.
        tokenizer: the ITNet tokenizer (`modeling_itnet.tokenizer_path()` ships one).
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)

    def __call__(self, images=None, text=None, **kwargs) -> BatchFeature:
        r"""
        Args:
            images: one image, a list of images (one per text), or a list of groups (lists or tuples) of `K` images
                each (one group per text, the same `K` for all).
            text (`str` or `list[str]`): the questions or sentences, one per image or group.
            return_tensors (`"pt"` or `"np"`, defaults to `"pt"`).
            kwargs: the tokenizer's (`padding`, defaults to `True`; `truncation`, `max_length`, ...) and the image
                processor's (`do_resize`, `size`, ...) arguments, routed as in transformers' processors.

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask` (when `text` is given) and `pixel_values` (when `images`
            are).
        """
        if images is None and text is None:
            raise ValueError("`ITNetProcessor` needs `images`, `text` or both.")
        return_tensors = kwargs.pop("return_tensors", "pt")
        if return_tensors not in ("pt", "np"):
            raise ValueError(
                f"`return_tensors` must be 'pt' or 'np' (arrays of one shape per batch), got {return_tensors!r}."
            )
        kwargs.setdefault("padding", True)
        merged = self._merge_kwargs(tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        for group in ("text_kwargs", "images_kwargs"):
            merged[group].pop("return_tensors", None)
        texts = None
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            if not all(isinstance(t, str) for t in texts):
                raise ValueError(f"`text` must be a string or a list of strings, got {type(text).__name__}.")
        data = {}
        if images is not None:
            groups, per_group = self._group_images(images)
            if texts is not None and len(groups) != len(texts):
                raise ValueError(
                    f"`images` holds {len(groups)} {'groups of images' if per_group else 'images'} but `text` holds "
                    f"{len(texts)} texts; give one image (or one group of images) per text."
                )
            flat = [image for group in groups for image in group]
            pixel_values = self.image_processor(flat, return_tensors="pt", **merged["images_kwargs"])["pixel_values"]
            if per_group:
                pixel_values = pixel_values.view(len(groups), per_group, *pixel_values.shape[1:])
            data["pixel_values"] = pixel_values
        if texts is not None:
            encoded = self.tokenizer(texts, return_tensors="pt", **merged["text_kwargs"])
            data.update({key: encoded[key] for key in ("input_ids", "attention_mask")})
        if return_tensors == "np":
            data = {key: value.numpy() for key, value in data.items()}
        return BatchFeature(data, tensor_type=return_tensors)

    @staticmethod
    def _group_images(images) -> tuple[list[list], int]:
        """`(groups, K)`: one list of images per example, and `K` images per group (0 for single images)."""
        if _is_image(images):
            return [[images]], 0
        if not isinstance(images, Sequence) or len(images) == 0:
            raise ValueError(
                f"`images` must be an image, a list of images or a list of image groups, got {type(images).__name__}."
            )
        if all(_is_image(image) for image in images):
            return [[image] for image in images], 0
        if not all(
            isinstance(group, (list, tuple)) and group and all(_is_image(i) for i in group) for group in images
        ):
            raise ValueError("`images` must be an image, a list of images or a list of non-empty groups of images.")
        sizes = {len(group) for group in images}
        if len(sizes) != 1:
            raise ValueError(
                f"Every group in `images` must hold the same number of images, got sizes {sorted(sizes)}."
            )
        return [list(group) for group in images], sizes.pop()

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]


__all__ = ["ITNetProcessor"]
