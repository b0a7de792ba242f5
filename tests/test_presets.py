"""Contract suite over every named preset (timm style): it loads, holds only config fields, builds every head."""

import json

import pytest
import torch
from transformers import AutoConfig

import modeling_itnet
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
    list_presets,
    preset_config,
    preset_path,
)
from modeling_itnet.branches_itnet import point_families


def test_presets_are_listed():
    assert {"itnet-tiny", "itnet-small", "itnet-base"} <= set(list_presets())


def test_presets_resolve_inside_an_installed_package():
    package_dir = preset_path("itnet-tiny").parent
    if "site-packages" in modeling_itnet.__file__:  # a normal `pip install .`, as in CI
        assert package_dir.name == "presets" and package_dir.parent.name == "modeling_itnet"


@pytest.mark.parametrize("name", list_presets())
def test_preset_contract(name):
    path = preset_path(name)
    keys = set(json.loads((path / "config.json").read_text())) - {"model_type"}
    assert keys <= set(ITNetConfig.__dataclass_fields__), (
        f"{name}: unknown keys {keys - set(ITNetConfig.__dataclass_fields__)}"
    )
    config = preset_config(name, num_labels=3)
    assert AutoConfig.from_pretrained(path).to_dict()["hidden_size"] == config.hidden_size
    text = {"input_ids": torch.randint(0, config.vocab_size, (1, 16))}
    image = torch.randn(1, config.num_channels, config.image_size, config.image_size)
    heads = (
        (ITNetModel, config, text),
        (ITNetForSequenceClassification, config, text),
        (ITNetForMaskedLM, preset_config(name, is_causal=False), text),
        (ITNetForCausalLM, preset_config(name, is_causal=True), text),
        (ITNetForImageClassification, config, {"pixel_values": image}),
        (ITNetForVisualQuestionAnswering, config, {**text, "pixel_values": image}),
        (ITNetForImagesAndTextClassification, config, {**text, "pixel_values": torch.stack([image, image], dim=1)}),
        (ITNetForPointCloudClassification, config, {"points": torch.randn(1, 64, 3)}),
    )
    for model_class, head_config, inputs in heads:
        if model_class is ITNetForPointCloudClassification and not set(config.kernel_families) & set(point_families()):
            with pytest.raises(ValueError, match="kernel_families"):  # conv-only, recurrent-only: grid kernels only
                model_class(head_config)
            continue
        model = model_class(head_config).eval()
        with torch.no_grad():
            out = model(**inputs)
        assert all(torch.isfinite(t).all() for t in out.values() if isinstance(t, torch.Tensor)), (name, model_class)


def test_base_preset_is_the_papers_scale():
    parameters = sum(p.numel() for p in ITNetModel(preset_config("itnet-base")).parameters())
    assert 25e6 < parameters < 31e6, parameters  # the paper reports 28M


def test_unknown_preset_and_unknown_keys_are_rejected(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="Unknown ITNet preset 'itnet-huge'"):
        preset_path("itnet-huge")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"model_type": "itnet", "hidden_sise": 8}))
    monkeypatch.setattr(modeling_itnet.presets_itnet, "presets_dir", lambda: tmp_path)
    with pytest.raises(ValueError, match="hidden_sise"):
        preset_config("bad")
