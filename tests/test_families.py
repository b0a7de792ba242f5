"""One contract suite over every registered kernel family (timm style): a family added with `register_family` gets
all of it. Per family: its capabilities are declared and agree with the config; the branch's prefill then steps equal
its full causal forward; padding (left and right) does not change the real tokens' outputs; causal outputs do not
read later tokens; points work where declared and fail clearly where not; a model built on it saves and loads
exactly. The README's family table is the registry's."""

import pytest
import torch
from itnet_testing import tiny_builders
from sync_readme import README, readme_table

from modeling_itnet import ITNetForPointCloudClassification, ITNetForSequenceClassification, ITNetModel
from modeling_itnet.branches_itnet import (
    FAMILIES,
    BranchState,
    ITNetBranch,
    ITNetLayout,
    ITNetMixerOptions,
    family_table,
    grid_families,
    point_families,
)
from modeling_itnet.configuration_itnet import KERNEL_FAMILIES
from modeling_itnet.layers_itnet import ITNetMixer

tiny_config, build = tiny_builders(num_hidden_layers=1, max_position_embeddings=64)


def options(causal: bool) -> ITNetMixerOptions:
    return ITNetMixerOptions(
        hidden_size=16,
        value_size=16,
        num_heads=2,
        is_causal=causal,
        num_frequencies=4,
        kernel_mlp_size=8,
        state_size=4,
    )


def test_config_families_are_the_registry():
    assert tuple(FAMILIES) == KERNEL_FAMILIES  # the config file is loaded alone by remote code, so it keeps its list


def test_readme_family_table_is_the_registry():
    text = README.read_text()
    start, end = readme_table(text)
    assert text[start:end] == family_table(), "the README's family table is stale: run `python tests/sync_readme.py`"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_capabilities_are_declared(family):
    branch_class = FAMILIES[family]
    assert branch_class.family == family
    assert branch_class.kernel_formula and branch_class.evaluated_by and branch_class.cost
    assert branch_class.needs_grid != branch_class.on_points  # a family runs on a grid's order or on any positions
    if branch_class.cacheable:
        assert branch_class.state and branch_class.token_cost
    branch = branch_class.from_options(options(causal=True))
    assert isinstance(branch, ITNetBranch) and branch.family == family


@pytest.mark.parametrize("family", [f for f in FAMILIES if FAMILIES[f].cacheable])
@pytest.mark.parametrize("prompt", [1, 7])
def test_prefill_then_steps_equal_the_full_forward(family, prompt):
    torch.manual_seed(0)
    branch = FAMILIES[family].from_options(options(causal=True))
    for parameter in branch.parameters():  # away from the zero initial values some families start at
        parameter.data.normal_(0, 0.3)
    length = 13
    hidden, values = torch.randn(2, length, 16), torch.randn(2, length, 16)
    mask = torch.ones(2, length)
    mask[1, :3] = 0  # left padding in the prompt
    mask[0, 9] = 0  # and a padded step
    full = branch(hidden, values, mask, ITNetLayout((length,), (16.0,)))
    out, state = branch.prefill(
        hidden[:, :prompt], values[:, :prompt], mask[:, :prompt], ITNetLayout((prompt,), (16.0,))
    )
    outputs = [out]
    for t in range(prompt, length):
        out_t, state = branch.step(hidden[:, t], values[:, t], mask[:, t], state, ITNetLayout(length_scale=(16.0,)))
        assert isinstance(state, BranchState)
        outputs.append(out_t[:, None])
    torch.testing.assert_close(torch.cat(outputs, dim=1), full, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_prefill_refuses_a_bidirectional_branch(family):
    branch = FAMILIES[family].from_options(options(causal=False))
    with pytest.raises((ValueError, NotImplementedError), match=family):
        branch.prefill(torch.randn(1, 4, 16), torch.randn(1, 4, 16), None, ITNetLayout((4,), (4.0,)))


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_padding_does_not_change_real_tokens(family, causal):
    model = build(ITNetModel, kernel_families=[family], is_causal=causal)
    ids = torch.randint(1, 50, (1, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        alone = model(input_ids=ids).last_hidden_state
        for side in ("left", "right"):
            pad = torch.zeros(1, 4, dtype=torch.long)
            padded = torch.cat([pad, ids], 1) if side == "left" else torch.cat([ids, pad], 1)
            mask = (torch.arange(13) >= 4) if side == "left" else (torch.arange(13) < 9)
            out = model(input_ids=padded, attention_mask=mask[None].long()).last_hidden_state[:, mask]
            torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-4, msg=f"{family} {side}")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_causal_outputs_do_not_read_later_tokens(family):
    model = build(ITNetModel, kernel_families=[family], is_causal=True)
    ids = torch.randint(1, 50, (1, 12), generator=torch.Generator().manual_seed(0))
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 50
    with torch.no_grad():
        before = model(input_ids=ids).last_hidden_state[:, :7]
        after = model(input_ids=changed).last_hidden_state[:, :7]
    assert torch.equal(before, after)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_points_where_declared(family):
    points = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(0))
    if FAMILIES[family].on_points:
        model = build(ITNetForPointCloudClassification, kernel_families=[family], num_labels=3)
        order = torch.randperm(10, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            torch.testing.assert_close(
                model(points=points).logits, model(points=points[:, order]).logits, atol=1e-5, rtol=1e-4
            )
        return
    with pytest.raises(ValueError, match="kernel_families"):
        build(ITNetForPointCloudClassification, kernel_families=[family], num_labels=3)
    mixer = ITNetMixer(16, 2, [family], is_causal=False, num_frequencies=4, kernel_mlp_size=8, state_size=4)
    with pytest.raises(ValueError, match=family):
        mixer(torch.randn(2, 10, 16), None, positions=points)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_save_and_load_are_exact(family, tmp_path):
    model = build(ITNetForSequenceClassification, kernel_families=[family], num_labels=3)
    model.save_pretrained(tmp_path)
    loaded = ITNetForSequenceClassification.from_pretrained(tmp_path).eval()
    ids = torch.randint(1, 50, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)


def test_multimodal_routing_follows_needs_grid():
    assert set(grid_families()) | set(point_families()) == set(FAMILIES)
    mixer = ITNetMixer(16, 2, list(FAMILIES), is_causal=False, num_frequencies=4, kernel_mlp_size=8, state_size=4)
    calls = {}
    for family, branch in mixer.branches.items():
        branch.register_forward_hook(
            lambda module, args, out, f=family: calls.setdefault(f, []).append(args[0].shape[1])
        )
    segments = [((5,), (8.0,)), ((2, 2), (2.0, 2.0))]
    mixer(torch.randn(1, 9, 16), None, segments=segments)
    for family in FAMILIES:
        expected = [5, 4] if FAMILIES[family].needs_grid else [9]  # grid families per segment, content over all
        assert calls[family] == expected, family


@pytest.mark.parametrize("layout", ["1d", "2d", "points"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias_frequencies", [None, 2])
def test_softmax_fourier_bias_fused_equals_its_table(layout, causal, bias_frequencies):
    """`softmax_bias_form="fourier"`: the fused branch (bias folded into q and k) equals attention with the bias as an
    explicit `[H, N, N]` table (`relative_bias`), padded, at an odd length; with `R` from `num_frequencies` (5) or its
    own `bias_frequencies`."""
    from modeling_itnet.branches_content_itnet import ITNetSoftmaxBranch
    from modeling_itnet.branches_itnet import ITNetLayout, _merge_heads, _split_heads
    from modeling_itnet.kernels_itnet import softmax_transform_naive

    torch.manual_seed(0)
    dims = 3 if layout == "points" else 2
    branch = ITNetSoftmaxBranch(16, 16, 4, causal, True, 5, 8, "gelu", dims, "fourier", bias_frequencies)
    assert branch.bias_kernel is None and branch.fourier_bias is not None
    assert branch.fourier_bias.frequencies.shape == (bias_frequencies or 5, dims)
    with torch.no_grad():
        for p in branch.fourier_bias.parameters():
            p.normal_()
    grid = {"1d": (15,), "2d": (3, 5), "points": None}[layout]
    positions = torch.randn(2, 15, 3) if layout == "points" else None
    layout = ITNetLayout(
        grid_shape=grid, length_scale=None if grid is None else (8.0,) * len(grid), positions=positions
    )
    hidden, values = torch.randn(2, 15, 16), torch.randn(2, 15, 16)
    mask = torch.ones(2, 15)
    mask[1, -4:] = 0
    out = branch(hidden, values, mask, layout)
    query, key = (_split_heads(t, 4) for t in branch.query_key(hidden).chunk(2, dim=-1))
    bias = branch.relative_bias(layout.grid_shape, layout.length_scale, layout.positions, None, "cpu")
    expected = _merge_heads(softmax_transform_naive(query, key, _split_heads(values, 4), mask, causal, bias))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
