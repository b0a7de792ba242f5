"""`examples/plot_kernels.py`: the PNG of learned kernels and gates that the quickstart writes."""

import torch
from plot_kernels import describe, plot_kernels, profile, spectral_kernels

from modeling_itnet import (
    ITNetConfig,
    ITNetForImageClassification,
    ITNetForSequenceClassification,
    ITNetForVisualQuestionAnswering,
)


def tiny(model_class, **overrides):
    torch.manual_seed(0)
    config = ITNetConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        kernel_num_frequencies=4,
        kernel_mlp_size=8,
        image_size=16,
        patch_size=4,
        num_labels=3,
        max_position_embeddings=128,
        **overrides,
    )
    return model_class(config).eval()


def models_and_batches():
    text = {"input_ids": torch.randint(1, 50, (2, 12)), "attention_mask": torch.tensor([[1] * 12, [1] * 7 + [0] * 5])}
    pixels = torch.randn(2, 3, 16, 16)
    models = {
        "images": tiny(ITNetForImageClassification),
        "text": tiny(ITNetForSequenceClassification),
        "vqa": tiny(ITNetForVisualQuestionAnswering),
    }
    batches = {"images": {"pixel_values": pixels}, "text": text, "vqa": {**text, "pixel_values": pixels}}
    return models, batches


def test_writes_png_of_kernels_and_gates(tmp_path):
    models, batches = models_and_batches()
    path = tmp_path / "kernels.png"
    drawn = plot_kernels(models, path, batches=batches, text_length=10)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert set(drawn["images"]["kernels"]) == {"image"}
    assert set(drawn["text"]["kernels"]) == {"text"}
    assert set(drawn["vqa"]["kernels"]) == {"text", "image"}
    for name in models:
        gates = drawn[name]["gates"]
        assert list(gates) == ["spectral", "low_rank"]
        assert all(values.shape == (2,) and ((values > 0) & (values < 1)).all() for values in gates.values())
    lines = describe(drawn)
    assert any(line.startswith("vqa image: kernel reach in patches") for line in lines)


def test_plotted_kernels_are_the_models_own():
    """The drawn values are `ITNetSpectralKernel` at the grid's offsets (tokens in units of
    `max_position_embeddings`, patches in units of `grid_size`), and the heatmap/curve is their mean |k| scaled."""
    models, _ = models_and_batches()
    for model in models.values():
        kernels = spectral_kernels(model, text_length=10)
        for kind, layers in kernels.items():
            if kind == "text":
                offsets = torch.arange(-9, 10, dtype=torch.float32)[:, None]
                scale = (128.0,)
            else:
                axis = torch.arange(-3, 4, dtype=torch.float32)  # a 4x4 patch grid: offsets -3 .. 3 per axis
                offsets = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1)
                scale = (4.0, 4.0)
            for layer, plotted in zip(model.itnet.layers, layers):
                expected = layer.mixer.branches["spectral"].kernel(offsets, scale)
                torch.testing.assert_close(plotted["offsets"], offsets)
                torch.testing.assert_close(plotted["kernel"], expected.detach(), rtol=0, atol=0)
                shown = profile(plotted["kernel"])
                torch.testing.assert_close(
                    shown, expected.detach().abs().mean(-1) / expected.detach().abs().mean(-1).max()
                )


def test_gates_are_the_mixers_sigmoid(tmp_path):
    """With every gate layer a constant (weight 0, bias c), each family's mean gate is σ(c)."""
    models, batches = models_and_batches()
    model = models["vqa"]
    with torch.no_grad():
        for i, layer in enumerate(model.itnet.layers):
            layer.mixer.gate.weight.zero_()
            layer.mixer.gate.bias.fill_(float(i) - 0.5)
    drawn = plot_kernels({"vqa": model}, tmp_path / "k.png", batches={"vqa": batches["vqa"]}, text_length=10)
    for values in drawn["vqa"]["gates"].values():
        torch.testing.assert_close(torch.tensor(values), torch.sigmoid(torch.tensor([-0.5, 0.5], dtype=torch.float64)))
