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
"""Input validation and checkpoint forensics of the ITNet models: each check raises a clear error naming the
argument and what was expected. Value checks (token ids in range, 0/1 masks, label ranges) are skipped while
`torch.compile` or `torch.export` traces; shapes and dtypes are checked always."""

import os

import torch

from .configuration_itnet import ITNetConfig


def check_attention_mask(attention_mask: torch.Tensor):
    """Raise unless `attention_mask` is a bool, integer or float tensor of 0s and 1s: the model uses it as the
    quadrature weights `w_j`, so any other value would silently re-weight tokens."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"`attention_mask` must be a torch.Tensor of 0s and 1s, got {type(attention_mask).__name__}.")
    if attention_mask.is_complex():
        raise TypeError(f"`attention_mask` must hold 0s and 1s (bool, integer or float), got {attention_mask.dtype}.")
    checkable = attention_mask.dtype != torch.bool and attention_mask.numel() and not torch.compiler.is_compiling()
    if checkable and not ((attention_mask == 0) | (attention_mask == 1)).all():
        bad = attention_mask[(attention_mask != 0) & (attention_mask != 1)].flatten()[0].item()
        raise ValueError(
            f"`attention_mask` must hold only 0 (padding) and 1 (real token), got the value {bad}: it is used as "
            "the quadrature weights of the integral transform, so other values would re-weight tokens."
        )


def quadrature_mask(
    attention_mask: torch.Tensor, shape: tuple[int, int], dtype: torch.dtype, unit: str = ""
) -> torch.Tensor:
    """The quadrature weights `[B, N]` in `dtype` from an `attention_mask` that must have `shape` and hold only 0s and
    1s (`check_attention_mask`); `unit` ends the shape error, e.g. "(one weight per point)"."""
    if tuple(attention_mask.shape) != tuple(shape):
        raise ValueError(f"`attention_mask` must have shape {list(shape)}{unit}, got {list(attention_mask.shape)}.")
    check_attention_mask(attention_mask)
    return attention_mask.to(dtype)


def check_some_real_token(mask: torch.Tensor, argument: str = "attention_mask"):
    """Raise when a row of `mask` `[B, N]` has no real (non-zero) entry: its outputs would be undefined."""
    if torch.compiler.is_compiling():
        return
    empty = ~(mask != 0).any(dim=-1)
    if empty.any():
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(f"`{argument}` rows {rows} are all padding (no real token); every row needs at least one 1.")


def check_classification_labels(labels, config, batch_size: int | None):
    """Validate `labels` for `ForSequenceClassificationLoss` before any compute, following `config.problem_type` (or
    the type that loss would infer when it is None). Raises a `TypeError`/`ValueError` naming `labels`."""
    if labels is None:
        return
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}.")
    num_labels = config.num_labels
    problem_type = config.problem_type
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    shape = list(labels.shape)
    if batch_size is not None and (labels.ndim == 0 or labels.shape[0] != batch_size):
        raise ValueError(f"`labels` must have batch size {batch_size} (one row per input), got shape {shape}.")
    if problem_type == "single_label_classification":
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(
                f"`labels` for single-label classification must be integer class indices, got {labels.dtype}."
            )
        if labels.ndim != 1:
            raise ValueError(f"`labels` for single-label classification must have shape [batch], got {shape}.")
        bad = ((labels < 0) | (labels >= num_labels)) & (labels != -100)
        if not torch.compiler.is_compiling() and bad.any():
            raise ValueError(
                f"`labels` must be class indices in [0, num_labels={num_labels}) or -100 (ignored), got "
                f"{labels[bad].flatten()[0].item()}."
            )
    elif problem_type == "multi_label_classification":
        if labels.ndim != 2 or labels.shape[1] != num_labels:
            raise ValueError(
                f"`labels` for multi-label classification must have shape [batch, num_labels={num_labels}], got {shape}."
            )
    elif problem_type == "regression":
        if not labels.is_floating_point():
            raise TypeError(f"`labels` for regression must be a float tensor of targets, got {labels.dtype}.")
        if num_labels == 1:
            ok = labels.ndim == 1 or (labels.ndim == 2 and shape[1] == 1)
        else:
            ok = labels.ndim == 2 and shape[1] == num_labels
        if not ok:
            expected = "[batch] or [batch, 1]" if num_labels == 1 else f"[batch, num_labels={num_labels}]"
            raise ValueError(f"`labels` for regression must have shape {expected}, got {shape}.")


def check_token_labels(labels, input_ids, inputs_embeds, vocab_size: int):
    """`labels` of a language-modelling head: integer token ids of the inputs' shape `[B, N]`, in `[0, vocab_size)`
    or -100 (ignored)."""
    if labels is None:
        return
    if (
        not isinstance(labels, torch.Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or labels.dtype == torch.bool
    ):
        got = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise TypeError(f"`labels` must be an integer tensor of token ids, got {got}.")
    reference = input_ids if input_ids is not None else inputs_embeds
    if reference is not None and tuple(labels.shape) != tuple(reference.shape[:2]):
        raise ValueError(
            f"`labels` must have the inputs' shape {list(reference.shape[:2])}, got {list(labels.shape)}."
        )
    bad = ((labels < 0) | (labels >= vocab_size)) & (labels != -100)
    if not torch.compiler.is_compiling() and bad.any():
        raise ValueError(
            f"`labels` must be token ids in [0, vocab_size={vocab_size}) or -100 (ignored), got "
            f"{labels[bad].flatten()[0].item()}."
        )


def safetensors_files(path) -> list[str]:
    """The `*.safetensors` files of a local checkpoint folder (empty for a Hub id or a missing folder)."""
    path = str(path)
    if not os.path.isdir(path):
        return []
    return [os.path.join(path, name) for name in sorted(os.listdir(path)) if name.endswith(".safetensors")]


def describe_mismatch(model_class, path, config=None, limit: int = 5) -> str:
    """The first tensors of a local checkpoint whose shapes differ from those of `model_class(config)`."""
    try:
        from safetensors import safe_open

        if not isinstance(config, ITNetConfig):
            config = ITNetConfig.from_pretrained(path)
        with torch.device("meta"):
            expected = {name: list(t.shape) for name, t in model_class(config).state_dict().items()}
        lines = []
        for file in safetensors_files(path):
            with safe_open(file, framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a dict: keys() but no __iter__)
                    shape = list(handle.get_slice(name).get_shape())
                    key = next(
                        (k for k in (name, f"itnet.{name}", name.removeprefix("itnet.")) if k in expected), None
                    )
                    if key is not None and expected[key] != shape:
                        lines.append(
                            f"{os.path.basename(file)}: {name!r} has shape {shape}, the config expects {expected[key]}"
                        )
        if lines:
            more = f" (and {len(lines) - limit} more)" if len(lines) > limit else ""
            return "; ".join(lines[:limit]) + more + "."
    except (OSError, KeyError, ValueError, RuntimeError, TypeError):  # best effort; the original error is chained
        return "tensor shapes in the weights file differ from those the config describes."
    return "tensor shapes in the weights file differ from those the config describes."


def batch_size_of(*inputs) -> int | None:
    return next((x.shape[0] for x in inputs if isinstance(x, torch.Tensor) and x.ndim > 0), None)


def check_index_tensor(tensor, argument: str, shape: tuple[int, ...], size: int, field: str):
    """`tensor` must be an integer tensor of `shape` (a leading 1 broadcasts over the batch) with values in
    `[0, size)`, `size` the config field `field`."""
    if (
        not isinstance(tensor, torch.Tensor)
        or tensor.is_floating_point()
        or tensor.is_complex()
        or tensor.dtype == torch.bool
    ):
        got = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise TypeError(f"`{argument}` must be an integer tensor, got {got}.")
    if tensor.ndim != 2 or tensor.shape[1] != shape[1] or tensor.shape[0] not in (1, shape[0]):
        raise ValueError(f"`{argument}` must have shape {list(shape)} (or [1, {shape[1]}]), got {list(tensor.shape)}.")
    if not torch.compiler.is_compiling() and (tensor.min() < 0 or tensor.max() >= size):
        raise ValueError(
            f"`{argument}` must hold values in [0, {field}={size}), got values in [{tensor.min().item()}, "
            f"{tensor.max().item()}]."
        )


__all__ = [
    "batch_size_of",
    "check_attention_mask",
    "check_classification_labels",
    "check_index_tensor",
    "check_some_real_token",
    "check_token_labels",
    "describe_mismatch",
    "quadrature_mask",
    "safetensors_files",
]
