"""accelerate's `device_map`: a checkpoint loaded with `device_map="auto"` and with a layer offloaded to disk gives
the plain model's logits and greedy tokens bit for bit, for every kernel family (each branch reads its own weights
inside accelerate's hooks, `branches_itnet.with_weights`)."""

import pytest
import torch
from itnet_testing import HEAD_CASES, tiny_builders

from modeling_itnet import ITNetForCausalLM, ITNetForVisualQuestionAnswering
from modeling_itnet.branches_itnet import FAMILIES

tiny_config, build = tiny_builders(kernel_families=list(FAMILIES))
DISK = {"itnet.text_embeddings": "cpu", "itnet.layers.0": "cpu", "itnet.layers.1": "disk", "itnet.norm": "cpu"}
OPTIONS = {
    "short-conv": {"short_conv_size": 3},
    "spectral-norm-channel-decay": {"kernel_spectral_norm": True, "recurrent_decay": "channel"},
}


@pytest.mark.parametrize("device_map", ["auto", "disk"])
@pytest.mark.parametrize("options", list(OPTIONS))
def test_causal_lm_offloaded_gives_the_same_logits_and_tokens(options, device_map, tmp_path):
    model = build(ITNetForCausalLM, is_causal=True, **OPTIONS[options])
    model.save_pretrained(tmp_path / "model")
    inputs = HEAD_CASES["causal-lm"][2]()
    with torch.no_grad():
        logits = model(**inputs).logits
    tokens = model.generate(inputs["input_ids"][:1], max_new_tokens=6, do_sample=False)
    placement = {**DISK, "lm_head": "cpu"} if device_map == "disk" else "auto"
    loaded = ITNetForCausalLM.from_pretrained(
        tmp_path / "model", device_map=placement, offload_folder=str(tmp_path / "offload")
    ).eval()
    if device_map == "disk":
        assert loaded.itnet.layers[1].mixer.value.weight.device.type == "meta"  # really offloaded
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, logits)
    assert torch.equal(loaded.generate(inputs["input_ids"][:1], max_new_tokens=6, do_sample=False), tokens)


def test_vqa_with_a_layer_on_disk_gives_the_same_logits(tmp_path):
    model = build(ITNetForVisualQuestionAnswering, num_labels=5)
    model.save_pretrained(tmp_path / "model")
    inputs = HEAD_CASES["visual-question-answering"][2]()
    with torch.no_grad():
        logits = model(**inputs).logits
    placement = {**DISK, "itnet.image_embeddings": "cpu", "itnet.modality_embeddings": "cpu", "classifier": "cpu"}
    loaded = ITNetForVisualQuestionAnswering.from_pretrained(
        tmp_path / "model", device_map=placement, offload_folder=str(tmp_path / "offload")
    ).eval()
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, logits)
