"""Tiny ITNet configurations and models, and small helpers, shared by the test files."""

import socket

import torch

from modeling_itnet import (
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

TINY = {
    "vocab_size": 50,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 48,
    "image_size": 16,
    "patch_size": 4,
    "kernel_num_frequencies": 4,
    "kernel_mlp_size": 16,
}


def tokenizer_config(tokenizer, **overrides) -> ITNetConfig:
    """A tiny ITNet config over a real tokenizer's vocabulary and special token ids, for the tests of the libraries
    that load checkpoints with their tokenizer (lm-eval, TRL, sentence-transformers, setfit, evaluate)."""
    defaults = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    sizes = {
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 24,
        "kernel_num_frequencies": 4,
        "kernel_mlp_size": 8,
    }
    return ITNetConfig(**{**sizes, **defaults, **overrides})


def tiny_builders(**defaults):
    """`(tiny_config, build)` for a test file: `tiny_config(**overrides)` is an `ITNetConfig` of `TINY`, then the
    file's `defaults`, then `overrides`; `build(model_class, seed=0, **overrides)` seeds torch and returns
    `model_class(tiny_config(**overrides))` in eval mode."""

    def tiny_config(**overrides) -> ITNetConfig:
        return ITNetConfig(**{**TINY, **defaults, **overrides})

    def build(model_class, seed=0, **overrides):
        torch.manual_seed(seed)
        return model_class(tiny_config(**overrides)).eval()

    return tiny_config, build


def tiny_text(batch=2, length=8) -> dict:
    """Random `input_ids` of `TINY`'s vocabulary `[B, N]` with an `attention_mask` whose last row is padded."""
    generator = torch.Generator().manual_seed(1)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[-1, length - 3 :] = 0
    return {
        "input_ids": torch.randint(0, TINY["vocab_size"], (batch, length), generator=generator),
        "attention_mask": attention_mask,
    }


def tiny_pixels(*shape) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(2))


HEAD_CASES = {
    "model-text": (ITNetModel, {}, lambda: tiny_text(), "last_hidden_state"),
    "model-image": (ITNetModel, {}, lambda: {"pixel_values": tiny_pixels(2, 3, 16, 16)}, "last_hidden_state"),
    "sequence-classification": (ITNetForSequenceClassification, {}, lambda: tiny_text(), "logits"),
    "image-classification": (
        ITNetForImageClassification,
        {},
        lambda: {"pixel_values": tiny_pixels(2, 3, 16, 16)},
        "logits",
    ),
    "causal-lm": (ITNetForCausalLM, {"is_causal": True}, lambda: tiny_text(), "logits"),
    "masked-lm": (ITNetForMaskedLM, {}, lambda: tiny_text(), "logits"),
    "visual-question-answering": (
        ITNetForVisualQuestionAnswering,
        {"num_labels": 5},
        lambda: {**tiny_text(), "pixel_values": tiny_pixels(2, 3, 16, 16)},
        "logits",
    ),
    "images-and-text": (
        ITNetForImagesAndTextClassification,
        {},
        lambda: {**tiny_text(), "pixel_values": tiny_pixels(2, 2, 3, 16, 16)},
        "logits",
    ),
    "point-cloud": (
        ITNetForPointCloudClassification,
        {"num_labels": 7},
        lambda: {"points": tiny_pixels(2, 20, 3), "attention_mask": torch.tensor([[1] * 20, [1] * 15 + [0] * 5])},
        "logits",
    ),
}
"""Every head once (the base model with text and with an image): `name: (class, config overrides over TINY,
make_inputs() -> tiny random inputs (padded where the head takes a mask), the output compared)`."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (for a server or `torch.distributed` launch)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
