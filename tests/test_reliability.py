"""Reliability: clear errors for bad input and damaged checkpoints, FFT-boundary lengths, determinism, batch
invariance and numerical stability (bf16 autocast, large inputs, a 64K-token sequence)."""

import json
import math
import time

import pytest
import torch
from itnet_testing import tiny_builders
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification

from modeling_itnet import (
    ITNetForCausalLM,
    ITNetForImageClassification,
    ITNetForImagesAndTextClassification,
    ITNetForMaskedLM,
    ITNetForPointCloudClassification,
    ITNetForSequenceClassification,
    ITNetForVisualQuestionAnswering,
    ITNetModel,
)
from modeling_itnet.compat_itnet import cache_of
from modeling_itnet.configuration_itnet import KERNEL_FAMILIES
from modeling_itnet.kernels_itnet import spectral_conv

ALL_FAMILIES = list(KERNEL_FAMILIES)
VOCAB = 50


tiny_config, build = tiny_builders(vocab_size=VOCAB, max_position_embeddings=64, num_labels=3)


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one table, each case (model, inputs, exception type, message fragment naming the argument)
# ---------------------------------------------------------------------------------------------------------------

MODELS = {
    "seq": lambda: build(ITNetForSequenceClassification),
    "seq_single": lambda: build(ITNetForSequenceClassification, problem_type="single_label_classification"),
    "seq_multi": lambda: build(ITNetForSequenceClassification, problem_type="multi_label_classification"),
    "seq_reg": lambda: build(ITNetForSequenceClassification, num_labels=1),
    "img": lambda: build(ITNetForImageClassification),
    "nlvr": lambda: build(ITNetForImagesAndTextClassification, num_labels=2),
    "vqa": lambda: build(ITNetForVisualQuestionAnswering),
    "points": lambda: build(ITNetForPointCloudClassification, kernel_families=["low_rank"]),
    "lm": lambda: build(ITNetForCausalLM, is_causal=True, kernel_families=["spectral", "low_rank"]),
    "mlm": lambda: build(ITNetForMaskedLM),
}
_built = {}


def model_for(key):
    if key not in _built:
        _built[key] = MODELS[key]()
    return _built[key]


def ids(batch=2, length=6):
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(0))


def pixels(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def cached_step_with_short_mask(model):
    cache = cache_of(model(input_ids=ids(), use_cache=True))
    return model(input_ids=ids(2, 1), attention_mask=torch.ones(2, 3), cache=cache)


def processor_mismatch(_model):
    from PIL import Image
    from transformers import AutoTokenizer

    from modeling_itnet import ITNetImageProcessorPil, ITNetProcessor, tokenizer_path

    processor = ITNetProcessor(ITNetImageProcessorPil(), AutoTokenizer.from_pretrained(tokenizer_path()))
    image = Image.new("RGB", (8, 8))
    return processor(images=[image, image], text=["one question"])


# (id, model key, call(model), exception, regex fragment)
BAD_INPUTS = [
    # text
    ("float input_ids", "seq", lambda m: m(input_ids=ids().float()), TypeError, "input_ids.*integer"),
    ("bool input_ids", "seq", lambda m: m(input_ids=ids() > 3), TypeError, "input_ids"),
    ("negative input_ids", "seq", lambda m: m(input_ids=ids() - 30), ValueError, r"input_ids.*vocab_size=50"),
    ("input_ids >= vocab_size", "seq", lambda m: m(input_ids=ids() + VOCAB), ValueError, r"input_ids.*vocab_size=50"),
    ("input_ids 1-D", "seq", lambda m: m(input_ids=ids()[0]), ValueError, r"input_ids.*\[batch, sequence_length\]"),
    ("empty input_ids", "seq", lambda m: m(input_ids=ids()[:, :0]), ValueError, "input_ids.*empty"),
    (
        "empty inputs_embeds",
        "seq",
        lambda m: m(inputs_embeds=torch.randn(2, 0, 32)),
        ValueError,
        "inputs_embeds.*empty",
    ),
    ("inputs_embeds width", "seq", lambda m: m(inputs_embeds=torch.randn(2, 5, 7)), ValueError, r"inputs_embeds.*32"),
    (
        "integer inputs_embeds",
        "seq",
        lambda m: m(inputs_embeds=torch.ones(2, 5, 32, dtype=torch.long)),
        TypeError,
        "inputs_embeds.*float",
    ),
    (
        "input_ids and inputs_embeds",
        "seq",
        lambda m: m(input_ids=ids(), inputs_embeds=torch.randn(2, 6, 32)),
        ValueError,
        "either `input_ids` or `inputs_embeds`",
    ),
    ("no input", "seq", lambda m: m(), ValueError, "input_ids"),
    ("too long", "seq", lambda m: m(input_ids=ids(1, 65)), ValueError, "max_position_embeddings"),
    (
        "attention_mask shape",
        "seq",
        lambda m: m(input_ids=ids(), attention_mask=torch.ones(2, 5)),
        ValueError,
        r"attention_mask.*shape",
    ),
    (
        "attention_mask value 2",
        "seq",
        lambda m: m(input_ids=ids(), attention_mask=torch.full((2, 6), 2)),
        ValueError,
        "attention_mask.*only 0.*1",
    ),
    (
        "attention_mask value 0.5",
        "seq",
        lambda m: m(input_ids=ids(), attention_mask=torch.full((2, 6), 0.5)),
        ValueError,
        "attention_mask.*only 0.*1",
    ),
    (
        "attention_mask value -1",
        "seq",
        lambda m: m(input_ids=ids(), attention_mask=-torch.ones(2, 6)),
        ValueError,
        "attention_mask.*only 0.*1",
    ),
    (
        "all-padding row",
        "seq",
        lambda m: m(input_ids=ids(), attention_mask=torch.tensor([[1] * 6, [0] * 6])),
        ValueError,
        r"attention_mask.*\[1\].*all padding",
    ),
    # sequence-classification labels
    (
        "label >= num_labels",
        "seq",
        lambda m: m(input_ids=ids(), labels=torch.tensor([0, 3])),
        ValueError,
        r"labels.*num_labels=3",
    ),
    (
        "label < 0 (not -100)",
        "seq",
        lambda m: m(input_ids=ids(), labels=torch.tensor([-2, 1])),
        ValueError,
        r"labels.*-100",
    ),
    (
        "labels [B, 1]",
        "seq_single",
        lambda m: m(input_ids=ids(), labels=torch.tensor([[0], [1]])),
        ValueError,
        r"labels.*\[batch\]",
    ),
    (
        "labels batch size",
        "seq",
        lambda m: m(input_ids=ids(), labels=torch.tensor([0, 1, 2])),
        ValueError,
        "labels.*batch size 2",
    ),
    (
        "float single-label labels",
        "seq_single",
        lambda m: m(input_ids=ids(), labels=torch.tensor([0.0, 1.0])),
        TypeError,
        "labels.*integer",
    ),
    (
        "multi-label labels width",
        "seq_multi",
        lambda m: m(input_ids=ids(), labels=torch.ones(2, 2)),
        ValueError,
        r"labels.*num_labels=3",
    ),
    (
        "multi-label labels 1-D",
        "seq_multi",
        lambda m: m(input_ids=ids(), labels=torch.ones(2)),
        ValueError,
        r"labels.*multi-label",
    ),
    (
        "regression labels shape",
        "seq_reg",
        lambda m: m(input_ids=ids(), labels=torch.ones(2, 2)),
        ValueError,
        "labels.*regression",
    ),
    (
        "regression integer labels",
        "seq_reg",
        lambda m: m(input_ids=ids(), labels=torch.tensor([1, 0])),
        TypeError,
        "labels.*float",
    ),
    # images
    ("pixel_values 3-D", "img", lambda m: m(pixel_values=pixels(3, 16, 16)), ValueError, "pixel_values.*shape"),
    (
        "pixel_values channels",
        "img",
        lambda m: m(pixel_values=pixels(2, 1, 16, 16)),
        ValueError,
        r"pixel_values.*\[batch, 3",
    ),
    (
        "image not a multiple of the patch",
        "img",
        lambda m: m(pixel_values=pixels(2, 3, 18, 16)),
        ValueError,
        "pixel_values.*patch_size=4",
    ),
    (
        "image smaller than a patch",
        "img",
        lambda m: m(pixel_values=pixels(2, 3, 2, 2)),
        ValueError,
        "pixel_values.*smaller than one patch",
    ),
    (
        "empty image",
        "img",
        lambda m: m(pixel_values=pixels(2, 3, 0, 0)),
        ValueError,
        "pixel_values.*smaller than one patch",
    ),
    (
        "attention_mask with images",
        "img",
        lambda m: m.itnet(pixel_values=pixels(2, 3, 16, 16), attention_mask=torch.ones(2, 16)),
        ValueError,
        "attention_mask",
    ),
    (
        "image label >= num_labels",
        "img",
        lambda m: m(pixel_values=pixels(2, 3, 16, 16), labels=torch.tensor([5, 0])),
        ValueError,
        "labels.*num_labels=3",
    ),
    (
        "image labels shape",
        "img",
        lambda m: m(pixel_values=pixels(2, 3, 16, 16), labels=torch.tensor([[0, 1]])),
        ValueError,
        "labels",
    ),
    # images + text
    (
        "NLVR2 pixel_values 4-D",
        "nlvr",
        lambda m: m(input_ids=ids(), pixel_values=pixels(2, 3, 16, 16)),
        ValueError,
        "pixel_values.*num_images",
    ),
    (
        "NLVR2 too many images",
        "nlvr",
        lambda m: m(input_ids=ids(), pixel_values=pixels(2, 3, 3, 16, 16)),
        ValueError,
        "max_num_images",
    ),
    (
        "NLVR2 batch mismatch",
        "nlvr",
        lambda m: m(input_ids=ids(3), pixel_values=pixels(2, 2, 3, 16, 16)),
        ValueError,
        "pixel_values",
    ),
    (
        "NLVR2 label >= num_labels",
        "nlvr",
        lambda m: m(input_ids=ids(), pixel_values=pixels(2, 2, 3, 16, 16), labels=torch.tensor([0, 2])),
        ValueError,
        "labels.*num_labels=2",
    ),
    (
        "NLVR2 negative input_ids",
        "nlvr",
        lambda m: m(input_ids=-ids(), pixel_values=pixels(2, 2, 3, 16, 16)),
        ValueError,
        "input_ids.*vocab_size",
    ),
    (
        "VQA targets width",
        "vqa",
        lambda m: m(input_ids=ids(), pixel_values=pixels(2, 3, 16, 16), labels=torch.ones(2, 4)),
        ValueError,
        r"labels.*num_labels=3",
    ),
    (
        "VQA integer targets",
        "vqa",
        lambda m: m(input_ids=ids(), pixel_values=pixels(2, 3, 16, 16), labels=torch.ones(2, 3, dtype=torch.long)),
        ValueError,
        "labels.*float",
    ),
    ("VQA without pixel_values", "vqa", lambda m: m(input_ids=ids()), ValueError, "pixel_values"),
    (
        "VQA float attention_mask 0.5",
        "vqa",
        lambda m: m(input_ids=ids(), attention_mask=torch.full((2, 6), 0.5), pixel_values=pixels(2, 3, 16, 16)),
        ValueError,
        "attention_mask",
    ),
    # points
    (
        "points last dim",
        "points",
        lambda m: m(points=torch.randn(2, 10, 2)),
        ValueError,
        r"points.*\[batch, num_points, 3\]",
    ),
    ("points NaN", "points", lambda m: m(points=torch.full((2, 10, 3), math.nan)), ValueError, "points.*NaN"),
    ("points inf", "points", lambda m: m(points=torch.full((2, 10, 3), math.inf)), ValueError, "points.*infinite"),
    (
        "integer points",
        "points",
        lambda m: m(points=torch.ones(2, 10, 3, dtype=torch.long)),
        ValueError,
        "points.*float",
    ),
    ("empty cloud", "points", lambda m: m(points=torch.randn(2, 0, 3)), ValueError, "points.*no points"),
    (
        "point_features not configured",
        "points",
        lambda m: m(points=torch.randn(2, 10, 3), point_features=torch.randn(2, 10, 2)),
        ValueError,
        "point_features",
    ),
    (
        "points attention_mask shape",
        "points",
        lambda m: m(points=torch.randn(2, 10, 3), attention_mask=torch.ones(2, 9)),
        ValueError,
        "attention_mask",
    ),
    (
        "points attention_mask value 3",
        "points",
        lambda m: m(points=torch.randn(2, 10, 3), attention_mask=torch.full((2, 10), 3)),
        ValueError,
        "attention_mask.*only 0.*1",
    ),
    (
        "all-padding cloud",
        "points",
        lambda m: m(points=torch.randn(2, 10, 3), attention_mask=torch.zeros(2, 10)),
        ValueError,
        "attention_mask.*all padding",
    ),
    (
        "point label >= num_labels",
        "points",
        lambda m: m(points=torch.randn(2, 10, 3), labels=torch.tensor([1, 7])),
        ValueError,
        "labels.*num_labels=3",
    ),
    # language models
    (
        "generate past max_position_embeddings",
        "lm",
        lambda m: m.generate(ids(1, 60), max_new_tokens=10, do_sample=False),
        ValueError,
        "max_position_embeddings",
    ),
    ("cached step mask length", "lm", cached_step_with_short_mask, ValueError, "attention_mask"),
    ("LM labels shape", "lm", lambda m: m(input_ids=ids(), labels=ids(2, 5)), ValueError, r"labels.*\[2, 6\]"),
    (
        "LM labels >= vocab_size",
        "lm",
        lambda m: m(input_ids=ids(), labels=ids() + VOCAB),
        ValueError,
        "labels.*vocab_size=50",
    ),
    ("LM float labels", "lm", lambda m: m(input_ids=ids(), labels=ids().float()), TypeError, "labels"),
    ("MLM labels < 0 (not -100)", "mlm", lambda m: m(input_ids=ids(), labels=-ids()), ValueError, "labels.*-100"),
    ("MLM input_ids >= vocab_size", "mlm", lambda m: m(input_ids=ids() * 10), ValueError, "input_ids.*vocab_size"),
    # processor
    ("processor images vs questions", None, processor_mismatch, ValueError, "images.*2.*text.*1"),
]


@pytest.mark.parametrize(
    "key, call, error, fragment", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_gets_a_clear_error_before_any_block_runs(key, call, error, fragment):
    model = model_for(key) if key else None
    calls = []
    hooks = []
    if model is not None:
        trunk = model if isinstance(model, ITNetModel) else model.itnet
        hooks = [layer.register_forward_pre_hook(lambda *_: calls.append(1)) for layer in trunk.layers]
    try:
        with pytest.raises(error, match=fragment):
            call(model)
    finally:
        for hook in hooks:
            hook.remove()
    if key not in ("lm",):  # the cached-step case runs a prompt pass first, on purpose
        assert not calls, "the error came after an Integral Transform Block ran"


def test_the_table_has_at_least_30_cases():
    assert len(BAD_INPUTS) >= 30
    assert len({case[0] for case in BAD_INPUTS}) == len(BAD_INPUTS)


def test_valid_edge_inputs_still_work():
    """What the checks must keep accepting: -100 labels, bool and float 0/1 masks, int32 ids, [B, 1] regression."""
    seq = model_for("seq")
    out = seq(
        input_ids=ids().int(),
        attention_mask=torch.tensor([[True] * 6, [True] * 3 + [False] * 3]),
        labels=torch.tensor([-100, 2]),
    )
    assert torch.isfinite(out.loss)
    assert model_for("seq_reg")(input_ids=ids(), labels=torch.ones(2, 1)).loss.isfinite()
    assert model_for("seq_multi")(input_ids=ids(), labels=torch.ones(2, 3)).loss.isfinite()
    # an image + text row whose question is all padding still has its image tokens
    out = model_for("vqa")(
        input_ids=ids(), attention_mask=torch.tensor([[1] * 6, [0] * 6]), pixel_values=pixels(2, 3, 16, 16)
    )
    assert torch.isfinite(out.logits).all()


def test_left_padded_generation_within_the_limit_still_works():
    model = model_for("lm")
    input_ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 10]])
    mask = (input_ids != 0).long()
    out = model.generate(input_ids, attention_mask=mask, max_new_tokens=60, do_sample=False, pad_token_id=0)
    assert out.shape == (2, 64)  # exactly max_position_embeddings


# ---------------------------------------------------------------------------------------------------------------
# Length 1 and FFT-boundary lengths
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 2, 63, 64, 65, 127, 128, 129])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("side", ["left", "right"])
def test_boundary_lengths_work_and_padding_is_exact(length, causal, side):
    model = build(
        ITNetModel, kernel_families=ALL_FAMILIES, is_causal=causal, max_position_embeddings=256, num_hidden_layers=1
    )
    sequence = torch.randint(1, VOCAB, (1, length), generator=torch.Generator().manual_seed(length))
    pad = 7
    padded = torch.zeros(1, length + pad, dtype=torch.long)
    mask = torch.zeros(1, length + pad, dtype=torch.long)
    span = slice(pad, pad + length) if side == "left" else slice(0, length)
    padded[0, span], mask[0, span] = sequence[0], 1
    with torch.no_grad():
        alone = model(input_ids=sequence).last_hidden_state
        batched = model(input_ids=padded, attention_mask=mask).last_hidden_state
    assert alone.shape == (1, length, 32)
    assert torch.isfinite(alone).all()
    torch.testing.assert_close(batched[:, span], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", [(4, 4), (4, 8), (12, 4), (16, 20)])
def test_image_grid_sizes_around_the_configured_one(side):
    model = build(ITNetModel, kernel_families=["spectral", "local", "ssm", "low_rank"])
    with torch.no_grad():
        out = model(pixel_values=pixels(1, 3, *side)).last_hidden_state
    assert out.shape == (1, (side[0] // 4) * (side[1] // 4), 32) and torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("itnet")
    build(ITNetForSequenceClassification).save_pretrained(folder)
    return folder


def damaged_copy(checkpoint, tmp_path, weights=None, config=None):
    target = tmp_path / "damaged"
    target.mkdir()
    data = (checkpoint / "model.safetensors").read_bytes()
    (target / "model.safetensors").write_bytes(weights(data) if weights else data)
    values = json.loads((checkpoint / "config.json").read_text())
    if config:
        values.update(config)
    (target / "config.json").write_text(json.dumps(values))
    return target


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: data[:100],  # truncated inside the header
        lambda data: b"",  # empty
        lambda data: b"\xff" * 8 + data[8:],  # header length corrupted
        lambda data: data[:8] + b"#" * 16 + data[24:],  # header JSON corrupted
    ],
    ids=["half", "header", "empty", "length", "json"],
)
def test_corrupted_weights_file_is_named(checkpoint, tmp_path, damage):
    folder = damaged_copy(checkpoint, tmp_path, weights=damage)
    with pytest.raises(OSError, match=r"model\.safetensors is truncated or corrupted"):
        AutoModelForSequenceClassification.from_pretrained(folder)
    with pytest.raises(OSError, match=r"model\.safetensors"):
        ITNetForSequenceClassification.from_pretrained(folder)


def test_non_finite_weights_are_refused(checkpoint, tmp_path):
    folder = damaged_copy(checkpoint, tmp_path)
    tensors = load_file(folder / "model.safetensors")
    tensors["classifier.weight"][0, 0] = math.nan
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"NaN or infinite.*classifier\.weight"):
        ITNetForSequenceClassification.from_pretrained(folder)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"kernel_families": ["spectral", "wavelet"]}, "kernel_families.*'wavelet'"),
        ({"kernel_families": []}, "kernel_families"),
        ({"hidden_size": 30}, "hidden_size.*num_attention_heads"),
        ({"num_hidden_layers": 0}, "num_hidden_layers.*positive"),
        ({"image_size": 18}, "image_size.*patch_size"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"recurrent_discretization": "rk4"}, "recurrent_discretization"),
    ],
    ids=["unknown family", "no family", "heads", "layers", "patch", "dropout", "discretization"],
)
def test_invalid_config_json_names_the_file_and_field(checkpoint, tmp_path, change, fragment):
    folder = damaged_copy(checkpoint, tmp_path, config=change)
    with pytest.raises(ValueError, match=r"config\.json.*" + fragment):
        AutoModelForSequenceClassification.from_pretrained(folder)
    with pytest.raises(ValueError, match=fragment):
        ITNetForSequenceClassification.from_pretrained(folder)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"hidden_size": 64, "intermediate_size": 96}, r"has shape \[.*32\], the config expects \[.*64\]"),
        ({"vocab_size": 60}, r"word_embeddings\.weight' has shape \[50, 32\], the config expects \[60, 32\]"),
        ({"intermediate_size": 40}, r"fc1\.weight' has shape \[48, 32\], the config expects \[40, 32\]"),
    ],
    ids=["hidden_size", "vocab_size", "intermediate_size"],
)
def test_checkpoint_shapes_not_matching_the_config_are_named(checkpoint, tmp_path, change, fragment):
    folder = damaged_copy(checkpoint, tmp_path, config=change)
    with pytest.raises(RuntimeError, match=r"model\.safetensors: .*" + fragment):
        AutoModelForSequenceClassification.from_pretrained(folder)
    # the documented way out still works: the mismatched tensors are re-initialised
    model = ITNetForSequenceClassification.from_pretrained(folder, ignore_mismatched_sizes=True)
    assert model.config.intermediate_size == change.get("intermediate_size", 48)


# ---------------------------------------------------------------------------------------------------------------
# Determinism and batch invariance
# ---------------------------------------------------------------------------------------------------------------


def train_a_few_steps(seed, steps=3):
    torch.manual_seed(seed)
    model = ITNetForSequenceClassification(tiny_config(kernel_families=ALL_FAMILIES, hidden_dropout_prob=0.1)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(steps):
        generator = torch.Generator().manual_seed(100 + step)
        input_ids = torch.randint(1, VOCAB, (4, 12), generator=generator)
        mask = torch.ones(4, 12, dtype=torch.long)
        mask[1, 8:] = 0
        labels = torch.randint(0, 3, (4,), generator=generator)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return model.state_dict()


def test_same_seed_gives_bit_identical_training_on_cpu():
    first, second = train_a_few_steps(0), train_a_few_steps(0)
    for name in first:
        assert torch.equal(first[name], second[name]), name
    other = train_a_few_steps(1)
    assert any(not torch.equal(first[name], other[name]) for name in first)


def test_monte_carlo_kernel_is_deterministic_in_eval_mode():
    model = build(ITNetModel, kernel_families=["mlp"], mlp_kernel_samples=8)
    input_ids = ids(3, 20)
    with torch.no_grad():
        first = model(input_ids=input_ids).last_hidden_state
        torch.manual_seed(123)  # the global generator does not matter in eval mode
        second = model(input_ids=input_ids).last_hidden_state
    assert torch.equal(first, second)
    model.train()
    with torch.no_grad():
        assert not torch.equal(
            model(input_ids=input_ids).last_hidden_state, model(input_ids=input_ids).last_hidden_state
        )


INVARIANCE_FAMILIES = [[family] for family in ALL_FAMILIES] + [ALL_FAMILIES]


@pytest.mark.parametrize("families", INVARIANCE_FAMILIES, ids=lambda f: "+".join(f))
@pytest.mark.parametrize("padding", ["none", "left", "right"])
def test_a_sample_does_not_depend_on_the_rest_of_the_batch(families, padding):
    model = build(ITNetModel, kernel_families=families)
    generator = torch.Generator().manual_seed(3)
    lengths = [10, 10, 10] if padding == "none" else [10, 4, 7]
    width = max(lengths)
    probe = torch.randint(1, VOCAB, (lengths[0],), generator=generator)
    outputs = []
    for _ in range(2):  # the same first sample, two different sets of companions
        input_ids = torch.zeros(len(lengths), width, dtype=torch.long)
        mask = torch.zeros(len(lengths), width, dtype=torch.long)
        for row, n in enumerate(lengths):
            span = slice(width - n, width) if padding == "left" else slice(0, n)
            input_ids[row, span] = probe if row == 0 else torch.randint(1, VOCAB, (n,), generator=generator)
            mask[row, span] = 1
        with torch.no_grad():
            outputs.append(model(input_ids=input_ids, attention_mask=mask).last_hidden_state[0])
        with torch.no_grad():
            alone = model(input_ids=probe[None]).last_hidden_state[0]
        torch.testing.assert_close(outputs[-1], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=0)


def test_an_image_does_not_depend_on_the_rest_of_the_batch():
    model = build(ITNetForImageClassification, kernel_families=ALL_FAMILIES)
    images = pixels(4, 3, 16, 16)
    with torch.no_grad():
        batched = model(pixel_values=images).logits
        for row in range(4):
            torch.testing.assert_close(
                batched[row], model(pixel_values=images[row : row + 1]).logits[0], atol=1e-5, rtol=0
            )


# ---------------------------------------------------------------------------------------------------------------
# Numerical stability
# ---------------------------------------------------------------------------------------------------------------

BF16_TOLERANCE = 5e-2  # max abs error of layer-normed outputs (unit scale) under bf16 autocast vs fp32


@pytest.mark.parametrize("causal", [False, True])
def test_fft_computes_in_float32_under_bf16_and_returns_the_input_dtype(causal):
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(2, 100, 8, generator=generator)
    kernel = torch.randn(199, 8, generator=generator) * 0.1
    reference = spectral_conv(values, kernel, causal=causal) if causal else spectral_conv(values, kernel)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = (
            spectral_conv(values.bfloat16(), kernel.bfloat16(), causal=causal)
            if causal
            else spectral_conv(values.bfloat16(), kernel.bfloat16())
        )
    assert low.dtype == torch.bfloat16
    # the inputs' bf16 rounding (~4e-3 relative) is the only loss: the FFT itself runs in float32
    exact_from_rounded = (
        spectral_conv(values.bfloat16().float(), kernel.bfloat16().float(), causal=causal)
        if causal
        else spectral_conv(values.bfloat16().float(), kernel.bfloat16().float())
    )
    torch.testing.assert_close(
        low.float(), exact_from_rounded, atol=2e-2 * exact_from_rounded.abs().max().item(), rtol=0
    )
    torch.testing.assert_close(low.float(), reference, atol=5e-2 * reference.abs().max().item(), rtol=0)


@pytest.mark.parametrize(
    "families", [["spectral", "low_rank"], ["ssm", "local"], ALL_FAMILIES], ids=lambda f: "+".join(f)
)
def test_bf16_autocast_agrees_with_fp32(families):
    model = build(ITNetModel, kernel_families=families, max_position_embeddings=256)
    input_ids = ids(2, 100)
    with torch.no_grad():
        reference = model(input_ids=input_ids).last_hidden_state
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(input_ids=input_ids).last_hidden_state
        bf16_model = build(ITNetModel, kernel_families=families, max_position_embeddings=256).to(torch.bfloat16)
        pure = bf16_model(input_ids=input_ids).last_hidden_state
    assert pure.dtype == torch.bfloat16
    for out in (low, pure):
        assert torch.isfinite(out).all()
        assert (out.float() - reference).abs().max().item() < BF16_TOLERANCE * 4, (out.float() - reference).abs().max()
    assert (low.float() - reference).abs().mean().item() < BF16_TOLERANCE / 5


FP16_TOLERANCE = (
    1e-2  # max abs error of layer-normed outputs under fp16 autocast vs fp32 (fp16 has 3 more mantissa bits)
)


@pytest.mark.parametrize(
    "families", [["spectral", "low_rank"], ["ssm", "local"], ALL_FAMILIES], ids=lambda f: "+".join(f)
)
def test_fp16_autocast_runs_ffts_in_float32_and_agrees_with_fp32(families, monkeypatch):
    """Under float16 autocast on CPU every FFT sees float32 (complex64) inputs, and the outputs agree with fp32."""
    seen = []
    for name in ("rfft", "irfft", "rfftn", "irfftn", "fft", "ifft"):
        original = getattr(torch.fft, name)

        def spy(input, *args, _original=original, **kwargs):
            seen.append(input.dtype)
            return _original(input, *args, **kwargs)

        monkeypatch.setattr(torch.fft, name, spy)
    model = build(ITNetModel, kernel_families=families, max_position_embeddings=256)
    input_ids = ids(2, 100)
    with torch.no_grad():
        reference = model(input_ids=input_ids).last_hidden_state
        seen.clear()
        with torch.autocast("cpu", dtype=torch.float16):
            low = model(input_ids=input_ids).last_hidden_state
    assert seen and set(seen) <= {torch.float32, torch.complex64}, set(seen)
    assert torch.isfinite(low).all()
    assert (low.float() - reference).abs().max().item() < FP16_TOLERANCE, (low.float() - reference).abs().max()


@pytest.mark.parametrize("families", [[family] for family in ALL_FAMILIES], ids=lambda f: f[0])
@pytest.mark.parametrize("causal", [False, True])
def test_large_inputs_stay_finite(families, causal):
    model = build(ITNetModel, kernel_families=families, is_causal=causal)
    with torch.no_grad():
        text = model(
            inputs_embeds=torch.randn(2, 40, 32, generator=torch.Generator().manual_seed(0)) * 1e4
        ).last_hidden_state
        image = model(pixel_values=pixels(2, 3, 16, 16) * 1e4).last_hidden_state
    assert torch.isfinite(text).all() and torch.isfinite(image).all()


def test_a_64k_token_sequence_stays_finite():
    length = 65536
    torch.manual_seed(0)
    config = tiny_config(
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=16,
        num_hidden_layers=1,
        max_position_embeddings=length,
        kernel_families=["spectral", "low_rank"],
    )
    model = ITNetModel(config).eval()
    input_ids = torch.randint(1, VOCAB, (1, length), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.no_grad():
        out = model(input_ids=input_ids)
    assert time.perf_counter() - start < 60
    assert out.last_hidden_state.shape == (1, length, 16)
    assert torch.isfinite(out.last_hidden_state).all() and torch.isfinite(out.pooler_output).all()


@pytest.mark.parametrize("preset", ["itnet-tiny", "itnet-conv-only", "itnet-recurrent-only", "itnet-attention-only"])
def test_presets_train_on_real_text_without_nan(preset):
    """The short CI version of `benchmarks/stability.py`: a few steps of each preset's mixer families (narrowed to
    2 blocks of width 64 to stay fast) on Rotten Tomatoes at the benchmark's learning rate, with no clipping."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "stability.py"
    spec = importlib.util.spec_from_file_location("itnet_stability_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    figures = benchmark.run_preset(
        preset,
        steps=6,
        batch_size=8,
        max_length=32,
        max_grad_norm=None,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        max_position_embeddings=256,
    )
    assert figures["nonfinite_step"] is None, figures
    assert figures["steps"] == 6 and math.isfinite(figures["last_loss"])
