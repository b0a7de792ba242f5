"""`ITNetPointBatchNorm` (`point_norm_type="batch_norm"`) against `nn.BatchNorm1d` on the real points: outputs,
gradients and running statistics; PointNet's shared MLP as the point embedding (`point_stem_type="pointnet"`, whose
layers take it) against the same MLP of `nn.BatchNorm1d`; and the point-cloud model with them: padding, point order,
save/load. (Their invalid values: `test_modeling_itnet.py::test_config_literal_fields_name_the_field_and_its_choices`
and `test_config_rejects_impossible_values_naming_the_field`.)"""

import pytest
import torch
from itnet_testing import tiny_builders
from torch import nn

from modeling_itnet import ITNetForPointCloudClassification, ITNetModel
from modeling_itnet.modeling_itnet import ITNetPointBatchNorm

_, build = tiny_builders(num_labels=3)


def _pair(channels=5, momentum=0.1):
    ours = ITNetPointBatchNorm(channels, momentum=momentum).double()
    reference = nn.BatchNorm1d(channels, momentum=momentum).double()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(0))
        ours.bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(1))
    reference.load_state_dict(ours.state_dict())
    return ours, reference


def _states(shape=(3, 11, 5)):
    gen = torch.Generator().manual_seed(2)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * 3 + 1).requires_grad_(True)


@pytest.mark.parametrize("momentum", [0.1, None])  # None: the cumulative average
@pytest.mark.parametrize("padded", [False, True])
def test_training_step_equals_batch_norm_on_the_real_points(padded, momentum):
    ours, reference = _pair(momentum=momentum)
    states = _states()
    mask = torch.ones(3, 11, dtype=torch.float64)
    if padded:
        mask[0, 7:], mask[2, 4:] = 0, 0
    real = mask.bool()
    for _ in range(2):  # twice: the running statistics move as nn.BatchNorm1d's do
        out = ours(states, mask if padded else None)
        expected = reference(states[real])
        torch.testing.assert_close(out[real], expected, atol=1e-12, rtol=1e-12)
        weights = torch.randn(expected.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        grads = torch.autograd.grad((out[real] * weights).sum(), [states, ours.weight, ours.bias])
        expected_grads = torch.autograd.grad((expected * weights).sum(), [states, reference.weight, reference.bias])
        for a, b in zip(grads, expected_grads):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(ours, name), getattr(reference, name), atol=1e-12, rtol=1e-12)
    assert not torch.equal(ours.running_mean, torch.zeros(5, dtype=torch.float64))


def test_evaluation_uses_the_running_statistics_per_point():
    ours, reference = _pair()
    states = _states()
    ours(states), reference(states.reshape(-1, 5))
    ours.eval(), reference.eval()
    with torch.no_grad():
        out = ours(states, torch.ones(3, 11))
        torch.testing.assert_close(out, reference(states.reshape(-1, 5)).view_as(states), atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(ours(states[:1]), out[:1])  # one cloud alone: the same, batch-independent


def _model(**overrides):
    return build(
        ITNetForPointCloudClassification, kernel_families=["low_rank"], point_norm_type="batch_norm", **overrides
    )


POINTNET_STEM = {"point_stem_size": 6, "point_stem_type": "pointnet", "modality_pooling": {"points": "max"}}
STEMS = pytest.mark.parametrize("stem", [{}, POINTNET_STEM], ids=["linear", "pointnet-stem"])


@pytest.mark.parametrize("padded", [False, True])
def test_pointnet_stem_is_pointnets_shared_mlp_on_the_real_points(padded):
    model = _model(**POINTNET_STEM).double()
    embeddings = model.itnet.point_embeddings.train()
    assert embeddings.projection is None and model.get_input_embeddings() is embeddings.stem[0]  # no linear map
    reference = nn.Sequential()
    for linear, norm in zip(embeddings.stem, embeddings.stem_norms):
        batch_norm = nn.BatchNorm1d(norm.num_features, eps=norm.eps).double()
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-1, 1)
        batch_norm.load_state_dict(norm.state_dict())
        reference.extend([linear, batch_norm, nn.ReLU()])
    assert [tuple(m.weight.shape) for m in embeddings.stem] == [(6, 3), (6, 6), (32, 6)]  # 3 -> S -> S -> D
    points = _states((3, 11, 3))
    mask = torch.ones(3, 11, dtype=torch.float64)
    if padded:
        mask[0, 7:], mask[2, 4:] = 0, 0
    real = mask.bool()
    out = embeddings(points, mask=mask if padded else None)
    expected = reference(points[real])
    torch.testing.assert_close(out[real], expected, atol=1e-12, rtol=1e-12)
    weights = torch.randn(expected.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    layers = [p for pair in zip(embeddings.stem, embeddings.stem_norms) for m in pair for p in m.parameters()]
    grads = torch.autograd.grad((out[real] * weights).sum(), [points, *layers])
    expected_grads = torch.autograd.grad((expected * weights).sum(), [points, *reference.parameters()])
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    for norm, batch_norm in zip(embeddings.stem_norms, reference[1::3]):
        torch.testing.assert_close(norm.running_var, batch_norm.running_var, atol=1e-12, rtol=1e-12)


def _clouds():
    return torch.randn(4, 30, 3, generator=torch.Generator().manual_seed(5))


def test_point_trunk_takes_the_batch_norm_and_other_trunks_do_not():
    model = _model()
    norms = [model.itnet.norm] + [n for layer in model.itnet.layers for n in (layer.mixer_norm, layer.ffn_norm)]
    assert all(isinstance(norm, ITNetPointBatchNorm) for norm in norms)
    text_and_images = build(ITNetModel, kernel_families=["low_rank"], point_norm_type="batch_norm")
    assert not any(isinstance(m, ITNetPointBatchNorm) for m in text_and_images.modules())
    default = build(ITNetForPointCloudClassification, kernel_families=["low_rank"])
    assert isinstance(default.itnet.norm, nn.LayerNorm)


@pytest.mark.parametrize("training", [False, True])
@STEMS
def test_padding_changes_nothing_in_training_or_evaluation(training, stem):
    model = _model(**stem).train(training)
    points = _clouds()
    padded = torch.cat([points, torch.randn(4, 6, 3) * 5], dim=1)
    mask = torch.cat([torch.ones(4, 30), torch.zeros(4, 6)], dim=1)
    labels = torch.tensor([0, 1, 2, 0])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    unpadded = model(points=points, labels=labels)
    model.load_state_dict(state)  # the same running statistics before the second pass
    with_padding = model(points=padded, attention_mask=mask, labels=labels)
    torch.testing.assert_close(with_padding.logits, unpadded.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(with_padding.loss, unpadded.loss, atol=1e-5, rtol=1e-5)


@STEMS
def test_output_does_not_depend_on_the_order_of_the_points(stem):
    model = _model(**stem).eval()
    points = _clouds()
    order = torch.randperm(30, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(model(points=points).logits, model(points=points[:, order]).logits)


@STEMS
def test_running_statistics_survive_save_and_load(tmp_path, stem):
    model = _model(**stem).train()  # three training passes move the running statistics
    for _ in range(3):
        model(points=_clouds(), labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    norms = [model.itnet.norm] + [n for layer in model.itnet.layers for n in (layer.mixer_norm, layer.ffn_norm)]
    norms += list(model.itnet.point_embeddings.stem_norms or [])
    assert all(
        n.num_batches_tracked.item() == 3 and not torch.equal(n.running_var, torch.ones_like(n.running_var))
        for n in norms
    )
    model.eval().save_pretrained(tmp_path)
    loaded = ITNetForPointCloudClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.point_norm_type == "batch_norm"
    saved, restored = model.state_dict(), loaded.state_dict()
    for name in [n for n in saved if n.endswith(("running_mean", "running_var", "num_batches_tracked"))]:
        assert torch.equal(restored[name], saved[name]), name
    with torch.no_grad():
        assert torch.equal(loaded(points=_clouds()).logits, model(points=_clouds()).logits)


def test_fresh_model_starts_with_unit_statistics():
    norm = _model().itnet.layers[0].mixer_norm
    assert torch.equal(norm.weight, torch.ones(norm.num_features)) and torch.equal(
        norm.bias, torch.zeros(norm.num_features)
    )
    assert torch.equal(norm.running_var, torch.ones(norm.num_features)) and norm.num_batches_tracked.item() == 0
