"""Image + text (VQA, NLVR2) and point-cloud models: layout, padding exactness, invariances, losses, errors."""

import math

import pytest
import torch
from itnet_testing import tiny_builders
from transformers import AutoModelForVisualQuestionAnswering

from modeling_itnet import (
    ITNetForImagesAndTextClassification,
    ITNetForPointCloudClassification,
    ITNetForVisualQuestionAnswering,
    ITNetModel,
)
from modeling_itnet.branches_content_itnet import ITNetSoftmaxBranch
from modeling_itnet.branches_itnet import ITNetLayout, point_families
from modeling_itnet.configuration_itnet import KERNEL_FAMILIES
from modeling_itnet.kernels_itnet import relative_position_bias, softmax_transform_naive

ALL_FAMILIES = list(KERNEL_FAMILIES)


tiny_config, build = tiny_builders(max_position_embeddings=64, num_labels=5)


def question_batch(batch=3, length=9, images=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, 3, 16, 16) if images is None else (batch, images, 3, 16, 16)
    return torch.randint(1, 50, (batch, length), generator=generator), torch.randn(*shape, generator=generator)


# ---------------------------------------------------------------------------------------------------------------
# Image + text
# ---------------------------------------------------------------------------------------------------------------


MLP_LEFT_PADDING = pytest.mark.xfail(
    strict=True,
    reason="known: the mlp kernel sees cross-modal offsets between a text token's absolute position and the image "
    "grid, so left padding shifts them (errors ~3e-5 on the logits); right padding is exact",
)


@pytest.mark.parametrize(
    "families, side",
    [
        (families, side)
        for families in (["spectral", "low_rank"], [f for f in ALL_FAMILIES if f != "mlp"])
        for side in ("left", "right")
    ]
    + [pytest.param(["mlp"], "left", marks=MLP_LEFT_PADDING), (["mlp"], "right")],
)
def test_padded_questions_give_the_unpadded_answer(families, side):
    model = build(ITNetForVisualQuestionAnswering, kernel_families=families)
    input_ids, pixel_values = question_batch()
    lengths = [9, 6, 4]
    padded, mask = torch.zeros_like(input_ids), torch.zeros_like(input_ids)
    for row, n in enumerate(lengths):
        where = slice(9 - n, 9) if side == "left" else slice(0, n)
        padded[row, where], mask[row, where] = input_ids[row, :n], 1
    with torch.no_grad():
        batched = model(input_ids=padded, attention_mask=mask, pixel_values=pixel_values).logits
        for row, n in enumerate(lengths):
            alone = model(input_ids=input_ids[row : row + 1, :n], pixel_values=pixel_values[row : row + 1]).logits
            torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-5, rtol=1e-5)


def test_grid_kernels_stay_within_a_modality_and_content_kernels_cross():
    input_ids, pixel_values = question_batch()
    other_image = pixel_values.flip(-1)
    for families, crosses in (
        (["spectral", "local", "ssm", "recurrent"], False),
        (["low_rank"], True),
        (["mlp"], True),
    ):
        model = build(ITNetModel, kernel_families=families)
        with torch.no_grad():
            text = model(input_ids=input_ids, pixel_values=pixel_values).last_hidden_state[:, :9]
            text_other = model(input_ids=input_ids, pixel_values=other_image).last_hidden_state[:, :9]
        assert torch.equal(text, text_other) is not crosses, families


def test_segment_softmax_bias_is_block_diagonal_and_matches_naive():
    torch.manual_seed(0)
    branch = ITNetSoftmaxBranch(16, 16, 4, False, True, 4, 16, "gelu")
    segments = [((5,), (64.0,)), ((3, 3), (4.0, 4.0)), ((3, 3), (4.0, 4.0))]
    hidden = torch.randn(2, 23, 16, requires_grad=True)
    values = torch.randn(2, 23, 16, requires_grad=True)
    mask = torch.ones(2, 23)
    mask[1, 3:5] = 0
    out = branch(hidden, values, mask, ITNetLayout.of_segments(segments, 2, hidden.device))

    bias = torch.zeros(4, 23, 23)
    start = 0
    for grid, scale in segments:
        end = start + math.prod(grid)
        bias[:, start:end, start:end] = relative_position_bias(
            branch.bias_kernel.on_grid(grid, scale, None).movedim(-1, 0), grid
        )
        start = end
    query, key = (t.view(2, 23, 4, 4).transpose(1, 2) for t in branch.query_key(hidden).chunk(2, dim=-1))
    heads = values.view(2, 23, 4, 4).transpose(1, 2)
    reference = softmax_transform_naive(query, key, heads, mask, False, bias).transpose(1, 2).reshape(2, 23, 16)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (hidden, values))
    reference_grads = torch.autograd.grad(reference.square().sum(), (hidden, values))
    for grad, reference_grad in zip(grads, reference_grads):
        torch.testing.assert_close(grad, reference_grad, atol=1e-5, rtol=1e-5)
    assert bias[:, :5, 5:].abs().sum() == 0 and bias[:, 5:14, 14:].abs().sum() == 0


def test_the_left_and_right_images_are_told_apart():
    model = build(ITNetForImagesAndTextClassification, num_labels=2)
    input_ids, pixel_values = question_batch(images=2)
    with torch.no_grad():
        logits = model(input_ids=input_ids, pixel_values=pixel_values).logits
        swapped = model(input_ids=input_ids, pixel_values=pixel_values.flip(1)).logits
    assert not torch.allclose(logits, swapped, atol=1e-4)


def test_vqa_loss_is_vilts_binary_cross_entropy():
    model = build(ITNetForVisualQuestionAnswering)
    input_ids, pixel_values = question_batch()
    scores = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0.3, 0.6, 0, 0], [0, 0, 0, 0, 0]])
    out = model(input_ids=input_ids, pixel_values=pixel_values, labels=scores)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, scores) * 5
    torch.testing.assert_close(out.loss, expected)
    assert ITNetForVisualQuestionAnswering.accepts_loss_kwargs is False


def test_vqa_and_nlvr2_round_trip_through_save_and_auto(tmp_path):
    model = build(ITNetForVisualQuestionAnswering, id2label={i: f"answer {i}" for i in range(5)})
    input_ids, pixel_values = question_batch()
    model.save_pretrained(tmp_path / "vqa")
    loaded = AutoModelForVisualQuestionAnswering.from_pretrained(tmp_path / "vqa").eval()
    assert type(loaded) is ITNetForVisualQuestionAnswering and loaded.config.id2label[3] == "answer 3"
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(input_ids=input_ids, pixel_values=pixel_values).logits,
            model(input_ids=input_ids, pixel_values=pixel_values).logits,
            atol=0,
            rtol=0,
        )
    pairs = build(ITNetForImagesAndTextClassification, num_labels=2)
    input_ids, pixel_values = question_batch(images=2)
    pairs.save_pretrained(tmp_path / "nlvr2")
    reloaded = ITNetForImagesAndTextClassification.from_pretrained(tmp_path / "nlvr2").eval()
    with torch.no_grad():
        assert torch.equal(
            reloaded(input_ids=input_ids, pixel_values=pixel_values).logits,
            pairs(input_ids=input_ids, pixel_values=pixel_values).logits,
        )


@pytest.mark.parametrize(
    "head, kwargs, message",
    [
        (ITNetForVisualQuestionAnswering, {"labels": torch.zeros(3, 4)}, "num_labels=5"),
        (ITNetForVisualQuestionAnswering, {"labels": torch.zeros(3, 5, dtype=torch.long)}, "float soft scores"),
        (ITNetForVisualQuestionAnswering, {"pixel_values": None}, "both the question"),
        (ITNetForVisualQuestionAnswering, {"input_ids": None}, "both the question"),
        (ITNetForImagesAndTextClassification, {}, r"\[batch, num_images"),
        (ITNetForImagesAndTextClassification, {"pixel_values": torch.randn(3, 3, 3, 16, 16)}, "max_num_images"),
    ],
)
def test_image_text_heads_reject_bad_inputs(head, kwargs, message):
    model = build(head)
    input_ids, pixel_values = question_batch()
    inputs = {"input_ids": input_ids, "pixel_values": pixel_values, **kwargs}
    with pytest.raises(ValueError, match=message):
        model(**inputs)


# ---------------------------------------------------------------------------------------------------------------
# Point clouds
# ---------------------------------------------------------------------------------------------------------------

POINT_FAMILIES = [[family] for family in point_families()] + [list(point_families())]


def cloud(batch=2, points=40, seed=0):
    return torch.rand(batch, points, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("families", POINT_FAMILIES)
def test_point_cloud_logits_ignore_the_order_of_points(families):
    model = build(ITNetForPointCloudClassification, kernel_families=families)
    points = cloud()
    order = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(
            model(points=points).logits, model(points=points[:, order]).logits, atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("families", POINT_FAMILIES)
@pytest.mark.parametrize("radius", [False, True])
def test_padded_point_clouds_give_the_unpadded_logits(families, radius):
    model = build(ITNetForPointCloudClassification, kernel_families=families, point_radius_feature=radius)
    points = cloud()
    padded = torch.cat([points, torch.randn(2, 7, 3)], dim=1)
    mask = torch.cat([torch.ones(2, 40), torch.zeros(2, 7)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(
            model(points=padded, attention_mask=mask).logits, model(points=points).logits, atol=1e-5, rtol=1e-5
        )


def test_point_cloud_model_keeps_only_content_kernels_and_depends_on_geometry():
    model = build(ITNetForPointCloudClassification, kernel_families=ALL_FAMILIES)
    assert list(model.itnet.layers[0].mixer.branches) == ["low_rank", "softmax", "mlp"]
    assert model.itnet.layers[0].mixer.branches["softmax"].bias_kernel.num_axes == 3
    points = cloud()
    with torch.no_grad():
        assert not torch.allclose(model(points=points).logits, model(points=points * 0.5).logits, atol=1e-4)
    with pytest.raises(ValueError, match="kernel_families"):
        build(ITNetForPointCloudClassification, kernel_families=["spectral", "local"])


def test_point_radius_feature_is_the_squared_distance_from_the_centroid():
    model = build(ITNetForPointCloudClassification, point_radius_feature=True)
    embeddings = model.itnet.point_embeddings
    assert embeddings.projection.in_features == 4
    points = cloud()
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(3)))
    moved = points @ rotation.T + torch.tensor([1.0, -2.0, 0.5])  # rotated and translated: the same radii
    weight, bias = embeddings.projection.weight, embeddings.projection.bias

    def radius_part(cloud_points):  # the embedding is W [x, y, z, r²] + b: its r² column, read back
        rest = embeddings(cloud_points) - cloud_points @ weight[:, :3].T - bias
        return rest @ weight[:, 3] / weight[:, 3].square().sum()

    with torch.no_grad():
        expected = (points - points.mean(1, keepdim=True)).square().sum(-1)
        torch.testing.assert_close(radius_part(points), expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(radius_part(moved), expected, atol=1e-4, rtol=1e-4)


def test_point_features_are_used_and_checked():
    model = build(ITNetForPointCloudClassification, point_feature_size=2)
    points, features = cloud(), torch.randn(2, 40, 2)
    with torch.no_grad():
        assert not torch.equal(
            model(points=points, point_features=features).logits, model(points=points, point_features=-features).logits
        )
    with pytest.raises(ValueError, match=r"`point_features` must have shape \[2, 40, 2\]"):
        model(points=points)
    with pytest.raises(ValueError, match="takes none"):
        build(ITNetForPointCloudClassification)(points=points, point_features=features)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"points": torch.randn(2, 10, 2)}, r"\[batch, num_points, 3\]"),
        ({"points": torch.ones(2, 10, 3, dtype=torch.long)}, "float tensor"),
        ({"points": torch.full((2, 10, 3), float("nan"))}, "NaN or infinite"),
        ({"points": torch.randn(2, 0, 3)}, "no points"),
        ({"points": torch.randn(2, 10, 3), "attention_mask": torch.ones(2, 9)}, "one weight per point"),
        ({}, "needs `points`"),
    ],
)
def test_point_cloud_head_rejects_bad_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(ITNetForPointCloudClassification)(**kwargs)


def test_point_cloud_loss_and_backward():
    model = build(ITNetForPointCloudClassification).train()
    out = model(points=cloud(), labels=torch.tensor([1, 4]))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([1, 4])))
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_point_cloud_classifier_learns_shapes_with_trainer(tmp_path):
    """100 `Trainer` steps on the generated ModelNet-style clouds (7 shapes, 256 points, random rotations), with the
    point encoder and trunk of `itnet-unified` (PointNet's shared MLP as the embedding, batch norm, max pooling): the
    validation accuracy is well above chance (1/7; 0.45 with the linear embedding and mean pooling, 0.57 now). The
    content kernel `low_rank` keeps the run short; the softmax bias and the mlp kernel evaluate an MLP on all N² point
    offsets of each cloud (see the README)."""
    from offline_data import POINT_CLOUD_CLASSES, load_offline
    from transformers import Trainer, TrainingArguments, set_seed

    set_seed(0)
    data = load_offline("offline:point_clouds").with_format("torch")
    config = tiny_config(
        hidden_size=64,
        intermediate_size=128,
        kernel_families=["low_rank"],
        point_norm_type="batch_norm",
        point_stem_size=64,
        point_stem_type="pointnet",
        pooling="max",
        num_labels=len(POINT_CLOUD_CLASSES),
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=100,
        per_device_train_batch_size=32,
        learning_rate=3e-3,
        warmup_steps=10,
        lr_scheduler_type="cosine",
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        logging_steps=20,
        disable_tqdm=True,
    )
    trainer = Trainer(model=ITNetForPointCloudClassification(config), args=args, train_dataset=data["train"])
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert losses[-1] < losses[0], losses
    predictions = trainer.predict(data["validation"])
    accuracy = (predictions.predictions.argmax(-1) == predictions.label_ids).mean()
    assert accuracy > 0.4, accuracy
