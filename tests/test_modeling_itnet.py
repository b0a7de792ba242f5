"""ITNet models: padding exactness, causal no-leak, save/load, Auto classes, dtypes, checkpointing, losses, config."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassError
from itnet_testing import tiny_builders
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from modeling_itnet import (
    ITNetConfig,
    ITNetForCausalLM,
    ITNetForImageClassification,
    ITNetForPointCloudClassification,
    ITNetForSequenceClassification,
    ITNetModel,
)
from modeling_itnet.branches_itnet import point_families
from modeling_itnet.configuration_itnet import KERNEL_FAMILIES

tiny_config, build = tiny_builders(max_position_embeddings=128, num_channels=3)


FAMILIES = [
    ["spectral"],
    ["local"],
    ["low_rank"],
    ["softmax"],
    ["recurrent"],
    ["ssm"],
    ["mlp"],
    list(KERNEL_FAMILIES),
]


@pytest.mark.parametrize("families", FAMILIES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("model_class", [ITNetModel, ITNetForSequenceClassification])
def test_padded_batch_equals_each_sequence_alone(families, causal, side, model_class):
    model = build(model_class, kernel_families=families, is_causal=causal)
    gen = torch.Generator().manual_seed(1)
    lengths = [13, 7, 1, 20]
    sequences = [torch.randint(1, 50, (n,), generator=gen) for n in lengths]
    width = max(lengths)
    input_ids = torch.zeros(len(lengths), width, dtype=torch.long)
    attention_mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        input_ids[row, span] = seq
        attention_mask[row, span] = 1
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask)
        for row, seq in enumerate(sequences):
            alone = model(input_ids=seq[None])
            span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
            if model_class is ITNetModel:
                torch.testing.assert_close(
                    batched.last_hidden_state[row, span], alone.last_hidden_state[0], atol=1e-5, rtol=0
                )
                torch.testing.assert_close(batched.pooler_output[row], alone.pooler_output[0], atol=1e-5, rtol=0)
            else:
                torch.testing.assert_close(batched.logits[row], alone.logits[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("families", FAMILIES)
def test_causal_text_model_does_not_leak_bit_for_bit(families):
    model = build(ITNetModel, kernel_families=families, is_causal=True, max_position_embeddings=512)
    input_ids = torch.randint(1, 50, (2, 300), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(input_ids=input_ids).last_hidden_state
        for t in (0, 64, 150, 298):
            changed = input_ids.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 7) % 50
            out = model(input_ids=changed).last_hidden_state
            assert torch.equal(out[:, : t + 1], reference[:, : t + 1]), f"causal leak into positions <= {t}"
            assert not torch.equal(out[:, t + 1 :], reference[:, t + 1 :])


def test_causal_image_model_is_raster_causal_bit_for_bit():
    model = build(ITNetModel, is_causal=True)
    pixels = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(pixel_values=pixels).last_hidden_state  # 4x4 patches, raster order
        changed = pixels.clone()
        changed[:, :, 8:12, 4:8] += 5.0  # patch (row 2, col 1) = raster index 9
        out = model(pixel_values=changed).last_hidden_state
    assert torch.equal(out[:, :9], reference[:, :9])
    assert not torch.equal(out[:, 9:], reference[:, 9:])


def test_bidirectional_model_sees_the_future():
    model = build(ITNetModel)
    input_ids = torch.randint(1, 50, (1, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(input_ids=input_ids).last_hidden_state
        changed = input_ids.clone()
        changed[0, -1] = (changed[0, -1] + 1) % 50
        assert not torch.equal(model(input_ids=changed).last_hidden_state[:, 0], reference[:, 0])


@pytest.mark.parametrize(
    "model_class, auto_class, inputs",
    [
        (ITNetModel, AutoModel, {"input_ids": torch.randint(1, 50, (2, 9))}),
        (
            ITNetForSequenceClassification,
            AutoModelForSequenceClassification,
            {"input_ids": torch.randint(1, 50, (2, 9))},
        ),
        (ITNetForImageClassification, AutoModelForImageClassification, {"pixel_values": torch.randn(2, 3, 16, 16)}),
    ],
)
def test_save_and_load_round_trip_is_bit_exact(tmp_path, model_class, auto_class, inputs):
    model = build(model_class)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "itnet"
    reloaded = auto_class.from_pretrained(tmp_path).eval()
    assert type(reloaded) is model_class
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name
    with torch.no_grad():
        a, b = model(**inputs), reloaded(**inputs)
    key = "last_hidden_state" if model_class is ITNetModel else "logits"
    assert torch.equal(a[key], b[key])


def test_bfloat16_loads_and_runs(tmp_path):
    build(ITNetForImageClassification).save_pretrained(tmp_path)
    model = AutoModelForImageClassification.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    fp32 = AutoModelForImageClassification.from_pretrained(tmp_path)
    pixels = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
        reference = fp32(pixel_values=pixels).logits
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), reference, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("causal", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(causal):
    model = build(ITNetForSequenceClassification, is_causal=causal).train()
    input_ids = torch.randint(1, 50, (3, 11))
    labels = torch.tensor([0, 1, 1])

    def grads():
        model.zero_grad()
        model(input_ids=input_ids, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    checkpointed = grads()
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "problem_type, num_labels, labels, expected_loss",
    [
        ("regression", 1, torch.tensor([0.5, -1.0]), torch.nn.functional.mse_loss),
        ("single_label_classification", 3, torch.tensor([2, 0]), torch.nn.functional.cross_entropy),
        (
            "multi_label_classification",
            3,
            torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]),
            torch.nn.functional.binary_cross_entropy_with_logits,
        ),
    ],
)
def test_sequence_classification_problem_types(problem_type, num_labels, labels, expected_loss):
    model = build(ITNetForSequenceClassification, num_labels=num_labels, problem_type=problem_type)
    out = model(input_ids=torch.randint(1, 50, (2, 6)), labels=labels)
    assert out.logits.shape == (2, num_labels)
    torch.testing.assert_close(
        out.loss, expected_loss(out.logits.squeeze(-1) if num_labels == 1 else out.logits, labels)
    )


def test_hidden_states_and_tuple_outputs():
    model = build(ITNetModel)
    input_ids = torch.randint(1, 50, (2, 6))
    out = model(input_ids=input_ids, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert out.hidden_states[0].shape == (2, 6, 32)
    as_tuple = model(input_ids=input_ids, return_dict=False)
    assert torch.equal(as_tuple[0], out.last_hidden_state)


def test_image_model_accepts_other_image_sizes():
    model = build(ITNetForImageClassification)
    with torch.no_grad():
        for size in [(16, 16), (24, 16), (32, 32), (4, 4)]:
            assert model(pixel_values=torch.randn(1, 3, *size)).logits.shape == (1, 2)


def test_kernels_are_the_same_function_of_the_offset_when_the_grid_changes():
    """Position handling for other image sizes: no interpolation is needed, since the spectral kernel and the softmax
    bias are continuous functions of the offset in units of the configured grid (`image_size // patch_size`); a
    6x6 patch grid sees the 4x4 grid's kernel at the offsets they share, and more offsets beyond."""
    model = build(ITNetForImageClassification, kernel_families=["spectral", "softmax"])
    mixer = model.itnet.layers[0].mixer
    scale = (float(model.config.grid_size),) * 2
    for generator in (mixer.branches["spectral"].kernel, mixer.branches["softmax"].bias_kernel):
        small, large = (
            generator.on_grid((4, 4), scale, None),
            generator.on_grid((6, 6), scale, None),
        )  # offsets -3..3, -5..5
        torch.testing.assert_close(large[2:9, 2:9], small, atol=1e-6, rtol=1e-6)


def test_heads_hold_only_their_modality():
    assert build(ITNetForSequenceClassification).itnet.image_embeddings is None
    assert build(ITNetForImageClassification).itnet.text_embeddings is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_ids": torch.ones(1, 4, dtype=torch.long), "inputs_embeds": torch.randn(1, 4, 32)}, "not both"),
        ({}, "Pass `input_ids`"),
        ({"input_ids": torch.ones(1, 4, dtype=torch.long), "pixel_values": torch.randn(2, 3, 16, 16)}, "pixel_values"),
        (
            {"input_ids": torch.ones(1, 4, dtype=torch.long), "pixel_values": torch.randn(1, 3, 3, 16, 16)},
            "max_num_images",
        ),
        ({"pixel_values": torch.randn(1, 2, 3, 16, 16)}, "go with text"),
        ({"input_ids": torch.ones(1, 4, dtype=torch.long), "points": torch.randn(1, 5, 3)}, "modality of their own"),
        ({"points": torch.randn(1, 5, 3)}, "no point encoder"),
        ({"input_ids": torch.ones(1, 200, dtype=torch.long)}, "max_position_embeddings"),
        ({"input_ids": torch.ones(4, dtype=torch.long)}, "input_ids"),
        ({"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": torch.ones(2, 5)}, "attention_mask"),
        ({"inputs_embeds": torch.randn(1, 4, 7)}, "inputs_embeds"),
        ({"pixel_values": torch.randn(1, 1, 16, 16)}, "pixel_values"),
        ({"pixel_values": torch.randn(1, 3, 15, 16)}, "patch_size"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    model = build(ITNetModel)
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size"),
        ({"hidden_size": -8}, "hidden_size"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"intermediate_size": -1}, "intermediate_size"),
        ({"image_size": 18}, "image_size"),
        ({"patch_size": 0}, "patch_size"),
        ({"kernel_families": ["spectral", "fourier"]}, "kernel_families"),
        ({"kernel_families": []}, "kernel_families"),
        ({"kernel_families": ["spectral", "spectral"]}, "kernel_families"),
        ({"hidden_act": "swishy"}, "hidden_act"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
        ({"feed_forward_initializer_range": 0.0}, "feed_forward_initializer_range"),
        ({"point_stem_type": "pointnet"}, "point_stem_type='pointnet'"),
        ({"kernel_num_frequencies": 0}, "kernel_num_frequencies"),
    ],
)
def test_config_rejects_impossible_values_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        tiny_config(**overrides)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("norm_position", "middle"),
        ("pooling", "sum"),
        ("gate_activation", "tanh"),
        ("recurrent_decay", "token"),
        ("point_norm_type", "group_norm"),
        ("point_stem_type", "conv"),
    ],
)
def test_config_literal_fields_name_the_field_and_its_choices(field, value):
    with pytest.raises(StrictDataclassError, match=f"'{field}' expected one of"):
        tiny_config(**{field: value})
    with pytest.raises(ValueError, match=f"(?s)Invalid ITNet configuration.*'{field}' expected one of"):
        ITNetConfig.from_dict({**tiny_config().to_dict(), field: value})


def test_config_loads_the_generated_kernels_settings_under_their_old_names(tmp_path):
    config = tiny_config(spectral_num_frequencies=3, spectral_mlp_size=12)
    assert (config.kernel_num_frequencies, config.kernel_mlp_size) == (3, 12)
    config.save_pretrained(tmp_path)
    saved = (tmp_path / "config.json").read_text()
    assert '"kernel_mlp_size": 12' in saved and "spectral_mlp_size" not in saved
    old = ITNetConfig.from_dict({**tiny_config().to_dict(), "spectral_mlp_size": 7})
    assert old.kernel_mlp_size == 7


@pytest.mark.parametrize(
    ("modality_pooling", "message"),
    [({"pixels": "max"}, "`modality_pooling` keys"), ({"image": "sum"}, r"`modality_pooling\['image'\]`")],
)
def test_config_rejects_unknown_modality_poolings(modality_pooling, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(modality_pooling=modality_pooling)


def test_modality_pooling_reads_each_modality_its_own_way():
    model = build(ITNetModel, pooling="mean", modality_pooling={"image": "max", "points": "first"})
    input_ids = torch.randint(1, 50, (2, 7), generator=torch.Generator().manual_seed(3))
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        text = model(input_ids=input_ids)
        image = model(pixel_values=pixels)
    torch.testing.assert_close(text.pooler_output, text.last_hidden_state.mean(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(image.pooler_output, image.last_hidden_state.amax(1), atol=1e-6, rtol=0)


def test_point_stem_is_a_shared_per_point_mlp():
    model = build(ITNetForPointCloudClassification, kernel_families=["low_rank"], point_stem_size=6, num_labels=3)
    embeddings = model.itnet.point_embeddings
    points = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(5))
    stem = embeddings.stem
    # PyTorch's default scale, U(±1/√fan_in), not initializer_range: the raw coordinates keep their scale
    assert stem[0].weight.abs().max() <= 3**-0.5 and stem[0].weight.std() > 0.25
    assert not stem[4].weight.any() and not stem[4].bias.any()  # a residual branch that starts at zero
    torch.testing.assert_close(embeddings(points), embeddings.projection(points), atol=0, rtol=0)
    with torch.no_grad():
        stem[4].weight.normal_()
    expected = embeddings.projection(points) + stem[4](F.gelu(stem[2](F.gelu(stem[0](points)))))
    torch.testing.assert_close(embeddings(points), expected, atol=1e-6, rtol=0)
    with torch.no_grad():  # still a function of the set: the order of the points does not matter
        order = torch.randperm(5, generator=torch.Generator().manual_seed(6))
        torch.testing.assert_close(
            model(points=points).logits, model(points=points[:, order]).logits, atol=1e-5, rtol=0
        )


def test_feed_forward_initializer_range_scales_the_feed_forward_blocks_alone():
    torch.manual_seed(0)
    default = build(ITNetModel, hidden_size=64, intermediate_size=256)
    torch.manual_seed(0)
    model = build(ITNetModel, hidden_size=64, intermediate_size=256, feed_forward_initializer_range=0.2)
    for name, parameter in model.named_parameters():
        if parameter.dim() < 2 or name.endswith("position_embeddings.weight"):
            continue
        expected = 0.2 if ".ffn." in name else 0.02
        assert abs(parameter.std().item() - expected) < 0.15 * expected, name
    torch.manual_seed(0)
    unset = build(ITNetModel, hidden_size=64, intermediate_size=256, feed_forward_initializer_range=None)
    for (name, a), b in zip(default.state_dict().items(), unset.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)  # None draws exactly what the default draws


def test_config_round_trips_through_json(tmp_path):
    config = tiny_config(kernel_families=["low_rank"], is_causal=True)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, ITNetConfig)
    assert {k: v for k, v in loaded.to_dict().items() if k != "_name_or_path"} == {
        k: v for k, v in config.to_dict().items() if k != "_name_or_path"
    }


# A changed value of each field must change the model: its parameter shapes, or its outputs on text or images.
FIELD_CHANGES = {
    "vocab_size": 60,
    "hidden_size": 48,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "intermediate_size": 40,
    "hidden_act": "relu",
    "hidden_dropout_prob": 0.5,
    "max_position_embeddings": 64,
    "image_size": 8,
    "patch_size": 2,
    "num_channels": 1,
    "layer_norm_eps": 0.5,
    "initializer_range": 0.2,
    "feed_forward_initializer_range": 0.2,
    "kernel_families": ["low_rank"],
    "is_causal": True,
    "kernel_num_frequencies": 6,
    "kernel_mlp_size": 20,
    "local_window": 5,
    "window_softmax_size": 2,
    "softmax_relative_bias": False,
    "softmax_bias_form": "fourier",
    "softmax_bias_frequencies": 3,
    "state_size": 8,
    "recurrent_discretization": "zoh",
    "mlp_kernel_samples": 4,
    "mlp_kernel_tile_size": 3,
    "kernel_spectral_norm": True,
    "tie_word_embeddings": False,
    "max_num_images": 3,
    "point_feature_size": 3,
    "norm_position": "post",
    "norm_type": "rms_norm",
    "position_embedding_type": "absolute",
    "type_vocab_size": 2,
    "embedding_norm": True,
    "image_cls_token": True,
    "image_stem_channels": 4,
    "point_cls_token": True,
    "point_stem_size": 4,
    "point_stem_type": "pointnet",
    "point_radius_feature": True,
    "point_norm_type": "batch_norm",
    "gate_bias_init": 2.0,
    "pooling": "first",
    "modality_pooling": {"text": "max"},
    "pooler_activation": "tanh",
    "gate_activation": "silu",
    "value_size": 16,
    "short_conv_size": 3,
    "recurrent_decay": "channel",
    "recurrent_dt_rank": 3,
}
# Fields that act only when their family (or head) is in use: the configuration both fingerprints are taken in.
FIELD_CONTEXT = {
    "local_window": {"kernel_families": ["local", "low_rank"]},
    "window_softmax_size": {"kernel_families": ["window_softmax"]},
    "softmax_relative_bias": {"kernel_families": ["softmax"]},
    "softmax_bias_form": {"kernel_families": ["softmax"]},
    "softmax_bias_frequencies": {"kernel_families": ["softmax"]},
    "state_size": {"kernel_families": ["recurrent", "ssm"]},
    "recurrent_discretization": {"kernel_families": ["recurrent"]},
    "mlp_kernel_samples": {"kernel_families": ["mlp"]},
    "mlp_kernel_tile_size": {"kernel_families": ["mlp"], "kernel_spectral_norm": True},
    "tie_word_embeddings": {"is_causal": True},
    "short_conv_size": {"kernel_families": ["spectral"]},
    "recurrent_decay": {"kernel_families": ["recurrent"]},
    "recurrent_dt_rank": {"kernel_families": ["recurrent"], "recurrent_decay": "channel"},
    "point_stem_size": {"kernel_families": ["low_rank"]},
    "point_stem_type": {"kernel_families": ["low_rank"], "point_stem_size": 4},
    "point_radius_feature": {"kernel_families": ["low_rank"]},
    "point_norm_type": {"kernel_families": ["low_rank"]},
}


def _fingerprint(config: ITNetConfig):
    torch.manual_seed(0)
    model = ITNetModel(config).train(config.hidden_dropout_prob > 0)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    torch.manual_seed(1)
    text_out = model(input_ids=torch.arange(1, 21).view(2, 10) % 50)
    text = torch.cat([text_out.last_hidden_state.flatten(), text_out.pooler_output.flatten()])
    pixels = torch.randn(
        1, config.num_channels, config.image_size, config.image_size, generator=torch.Generator().manual_seed(2)
    )
    image = model(pixel_values=pixels).last_hidden_state
    if set(config.kernel_families) & set(point_families()):  # the point-cloud trunk's parameters and outputs too
        torch.manual_seed(0)
        points = ITNetModel(config, modalities=("points",)).train(config.hidden_dropout_prob > 0)
        shapes.update({f"points.{name}": tuple(p.shape) for name, p in points.named_parameters()})
        cloud = torch.randn(1, 9, 3, generator=torch.Generator().manual_seed(3))
        features = torch.ones(1, 9, config.point_feature_size) if config.point_feature_size else None
        image = torch.cat([image.flatten(), points(points=cloud, point_features=features).last_hidden_state.flatten()])
    if config.is_causal:  # the language-modelling head's parameters too (an untied head has its own matrix)
        torch.manual_seed(0)
        shapes.update({f"lm.{name}": tuple(p.shape) for name, p in ITNetForCausalLM(config).named_parameters()})
    return shapes, text, image


def test_every_config_field_changes_the_model():
    own_fields = {f.name for f in dataclasses.fields(ITNetConfig)} - {
        f.name for f in dataclasses.fields(ITNetConfig.__mro__[1])
    }
    assert own_fields == set(FIELD_CHANGES), "every ITNetConfig field needs an entry in FIELD_CHANGES"
    for field, value in FIELD_CHANGES.items():
        context = FIELD_CONTEXT.get(field, {})
        base_shapes, base_text, base_image = _fingerprint(tiny_config(**context))
        shapes, text, image = _fingerprint(tiny_config(**context, **{field: value}))
        changed = (
            shapes != base_shapes
            or text.shape != base_text.shape
            or image.shape != base_image.shape
            or not torch.equal(text, base_text)
            or not torch.equal(image, base_image)
        )
        assert changed, f"config field {field!r} has no effect on the model"


@pytest.mark.parametrize("pooling", ["mean", "first", "max", "attention"])
def test_pooling_reads_only_the_real_tokens(pooling):
    model = build(ITNetModel, pooling=pooling, kernel_families=["spectral", "local", "low_rank", "softmax"])
    input_ids = torch.randint(1, 50, (1, 7), generator=torch.Generator().manual_seed(3))
    padded = torch.cat([input_ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 4)], dim=1)
    with torch.no_grad():
        alone = model(input_ids=input_ids)
        with_padding = model(input_ids=padded, attention_mask=mask)
    torch.testing.assert_close(with_padding.pooler_output, alone.pooler_output, atol=1e-6, rtol=0)
    states = alone.last_hidden_state[0]
    expected = {
        "mean": states.mean(0),
        "first": states[0],
        "max": states.max(0).values,
        "attention": (model.attention_pool(states).softmax(0) * states).sum(0) if pooling == "attention" else None,
    }[pooling]
    torch.testing.assert_close(alone.pooler_output[0], expected, atol=1e-6, rtol=0)


def test_point_cloud_readouts_ignore_the_order_of_the_points():
    for pooling, readout in (("max", False), ("attention", False), ("first", True)):
        model = build(ITNetForPointCloudClassification, pooling=pooling, kernel_families=["low_rank", "softmax"],
                      point_cls_token=readout, num_labels=3)  # fmt: skip
        points = torch.randn(2, 30, 3, generator=torch.Generator().manual_seed(4))
        order = torch.randperm(30, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            torch.testing.assert_close(model(points=points[:, order]).logits, model(points=points).logits,
                                       atol=1e-5, rtol=0)  # fmt: skip


def test_the_convolutional_stem_sees_inside_each_patch():
    plain = build(ITNetModel, image_stem_channels=0)
    stem = build(ITNetModel, image_stem_channels=8)
    assert plain.image_embeddings.stem is None and stem.image_embeddings.stem[0].out_channels == 8
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    shifted = pixels.clone()
    shifted[:, :, 4:8, 4:8] = pixels[:, :, 4:8, 4:8].flip(-1)  # one patch's pixels mirrored inside it
    with torch.no_grad():
        assert stem(pixel_values=pixels).last_hidden_state.shape == plain(pixel_values=pixels).last_hidden_state.shape
        assert not torch.equal(
            stem(pixel_values=shifted).last_hidden_state, stem(pixel_values=pixels).last_hidden_state
        )


def test_a_stem_per_image_encoder():
    stems = {"image": 8}
    classifier = build(ITNetForImageClassification, image_stem_channels=stems, num_labels=3)
    joint = build(ITNetModel, image_stem_channels=stems)  # text and images: the image + text encoder's stem
    assert classifier.itnet.image_embeddings.stem[0].out_channels == 8 and joint.image_embeddings.stem is None
    assert build(ITNetModel, image_stem_channels={"image_text": 8}).image_embeddings.stem[0].out_channels == 8
    torch.manual_seed(0)
    plain = ITNetForImageClassification(tiny_config(image_stem_channels=8, num_labels=3))
    torch.manual_seed(0)
    keyed = ITNetForImageClassification(tiny_config(image_stem_channels={"image": 8, "image_text": 0}, num_labels=3))
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert torch.equal(keyed(pixel_values=pixels).logits, plain(pixel_values=pixels).logits)


@pytest.mark.parametrize(
    ("image_stem_channels", "message"),
    [
        ({"pixels": 8}, "`image_stem_channels` keys"),
        ({"image": -1}, r"`image_stem_channels\['image'\]` must be an integer >= 0"),
        (-2, "`image_stem_channels` must be an integer >= 0"),
    ],
)
def test_config_rejects_bad_image_stems(image_stem_channels, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(image_stem_channels=image_stem_channels)


def test_gate_bias_init_sets_every_mixer_gate():
    model = build(ITNetModel, gate_bias_init=2.0)
    for layer in model.layers:
        assert torch.equal(layer.mixer.gate.bias, torch.full_like(layer.mixer.gate.bias, 2.0))
    assert torch.equal(build(ITNetModel).layers[0].mixer.gate.bias, torch.zeros_like(model.layers[0].mixer.gate.bias))


def test_the_point_readout_token_sits_at_the_centroid_and_ignores_padding():
    model = build(ITNetForPointCloudClassification, pooling="first", point_cls_token=True,
                  kernel_families=["low_rank", "softmax"], num_labels=3)  # fmt: skip
    points = torch.randn(1, 9, 3, generator=torch.Generator().manual_seed(7))
    padded = torch.cat([points, torch.full((1, 3, 3), 50.0)], dim=1)  # far-away padding must not move the centroid
    mask = torch.cat([torch.ones(1, 9), torch.zeros(1, 3)], dim=1)
    trunk = model.itnet
    _, _, layout = trunk._embed_points(padded, None, mask)
    torch.testing.assert_close(layout["positions"][0, 0], points[0].mean(0))
    with torch.no_grad():
        torch.testing.assert_close(model(points=padded, attention_mask=mask).logits, model(points=points).logits,
                                   atol=1e-5, rtol=0)  # fmt: skip
