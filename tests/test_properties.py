"""Property tests (hypothesis) over random shapes, lengths, masks and kernel families: a padded batch gives each
sequence's unpadded outputs, and outputs are finite. Few examples and no deadline, to stay fast on CPU."""

import functools

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeling_itnet import ITNetConfig, ITNetForPointCloudClassification, ITNetModel
from modeling_itnet.branches_itnet import FAMILIES

ALL_FAMILIES = tuple(FAMILIES)
SETTINGS = settings(
    max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@functools.cache
def text_model(families: tuple[str, ...], causal: bool) -> ITNetModel:
    torch.manual_seed(0)
    config = ITNetConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=96,
        image_size=16,
        patch_size=4,
        kernel_num_frequencies=4,
        kernel_mlp_size=8,
        state_size=8,
        kernel_families=list(families),
        is_causal=causal,
    )
    return ITNetModel(config).eval()


families_strategy = st.lists(st.sampled_from(ALL_FAMILIES), min_size=1, max_size=3, unique=True).map(
    lambda fams: tuple(sorted(fams))
)


@SETTINGS
@given(
    families=families_strategy,
    causal=st.booleans(),
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    extra=st.integers(0, 9),
    left=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_padded_batch_equals_unpadded_sequences(families, causal, lengths, extra, left, seed):
    model = text_model(families, causal)
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths) + extra
    input_ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    sequences = [torch.randint(1, 40, (n,), generator=generator) for n in lengths]
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        input_ids[row, span], mask[row, span] = seq, 1
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=mask)
        assert torch.isfinite(batched.last_hidden_state).all() and torch.isfinite(batched.pooler_output).all()
        for row, seq in enumerate(sequences):
            span = slice(width - len(seq), width) if left else slice(0, len(seq))
            alone = model(input_ids=seq[None])
            torch.testing.assert_close(
                batched.last_hidden_state[row, span], alone.last_hidden_state[0], atol=1e-5, rtol=0
            )
            torch.testing.assert_close(batched.pooler_output[row], alone.pooler_output[0], atol=1e-5, rtol=0)


@SETTINGS
@given(
    families=families_strategy,
    causal=st.booleans(),
    batch=st.integers(1, 3),
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**16),
)
def test_images_of_any_patch_grid_give_finite_outputs(families, causal, batch, height, width, scale, seed):
    model = text_model(families, causal)
    pixels = torch.randn(batch, 3, 4 * height, 4 * width, generator=torch.Generator().manual_seed(seed)) * scale
    with torch.no_grad():
        out = model(pixel_values=pixels)
    assert out.last_hidden_state.shape == (batch, height * width, 16)
    assert torch.isfinite(out.last_hidden_state).all() and torch.isfinite(out.pooler_output).all()


@functools.cache
def point_model(families: tuple[str, ...]) -> ITNetForPointCloudClassification:
    torch.manual_seed(0)
    config = ITNetConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        kernel_mlp_size=8,
        kernel_num_frequencies=4,
        kernel_families=list(families),
        num_labels=3,
    )
    return ITNetForPointCloudClassification(config).eval()


@SETTINGS
@given(
    families=st.lists(st.sampled_from(("low_rank", "softmax", "mlp")), min_size=1, max_size=2, unique=True).map(
        lambda fams: tuple(sorted(fams))
    ),
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_padded_point_clouds_equal_each_cloud_alone_and_ignore_order(families, sizes, seed):
    model = point_model(families)
    generator = torch.Generator().manual_seed(seed)
    width = max(sizes)
    points = torch.zeros(len(sizes), width, 3)
    mask = torch.zeros(len(sizes), width, dtype=torch.long)
    clouds = [torch.rand(n, 3, generator=generator) * 2 - 1 for n in sizes]
    for row, cloud in enumerate(clouds):
        points[row, : len(cloud)], mask[row, : len(cloud)] = cloud, 1
    with torch.no_grad():
        batched = model(points=points, attention_mask=mask).logits
        assert torch.isfinite(batched).all()
        for row, cloud in enumerate(clouds):
            alone = model(points=cloud[None]).logits[0]
            shuffled = model(points=cloud[torch.randperm(len(cloud), generator=generator)][None]).logits[0]
            torch.testing.assert_close(batched[row], alone, atol=1e-5, rtol=0)
            torch.testing.assert_close(shuffled, alone, atol=1e-5, rtol=0)
