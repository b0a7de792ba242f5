"""Tiny ITNet configurations and models shared by the test files."""

import torch

from modeling_itnet import ITNetConfig


TINY = dict(
    vocab_size=50,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=48,
    image_size=16,
    patch_size=4,
    spectral_num_frequencies=4,
    spectral_mlp_size=16,
)


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
