"""The recurrence family: decayed low-rank kernels (GLA / RetNet / Mamba-2), gated linear recurrences (minGRU) and
LTI state spaces (S4D), each fast path against its references, forward and backward; plus the exact special cases
written from their published equations, and a GRU, which is not an integral transform."""

import math

import pytest
import torch

from modeling_itnet.kernels_itnet import (
    causal_kernel_layout,
    decay_low_rank_recurrent_naive,
    decay_low_rank_step,
    decay_low_rank_transform,
    decay_low_rank_transform_naive,
    local_conv,
    low_rank_transform,
    mlp_kernel_transform,
    monte_carlo_transform,
    s4d_discretize,
    softmax_transform,
    spectral_conv,
    ssm_kernel,
    ssm_transform,
    ssm_transform_naive,
)

LENGTHS = [1, 17, 63, 65, 130]


def gated_linear_recurrence(
    gate_log_decay: torch.Tensor,
    inputs: torch.Tensor,
    mask: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""(A helper of these tests.) Elementwise gated linear recurrence (minGRU, diagonal linear RNNs) as a causal integral transform.

        h_t = a_t ⊙ h_{t−1} + w_t x_t,   a_t = exp(gate_log_decay_t)     ⇔     h_t = Σ_{s≤t} w_s (Π_{s<τ≤t} a_τ) ⊙ x_s

    minGRU (Feng et al. 2024) is the case `a_t = 1 − z_t`, `x_t = z_t ⊙ h̃_t`, `z_t = σ(W_z u_t)`, `h̃_t = W_h u_t`,
    with `log(1 − z_t) = logsigmoid(−W_z u_t)`. Each channel is its own scalar-decay head of rank `R = E = 1` of
    `decay_low_rank_transform` (query = key = 1, value = x); equivalently the per-feature-decay transform with
    `R = E = D` read on the diagonal of its state.

    Steps:
        1. channels to heads: `[B, N, D] → [B, D, N, 1]`, query = key = 1;
        2. `decay_low_rank_transform` with scalar decay per head (padded steps keep the state);
        3. heads back to channels.

    Args:
        gate_log_decay: `[B, N, D]`, `log a_t ≤ 0`.
        inputs: `[B, N, D]`, the gated input `x_t`.
        mask: optional `[B, N]` quadrature weights (0 for padding).
        initial_state: optional `[B, D]` hidden state `h_{−1}`.

    Returns:
        `(h [B, N, D], final_state [B, D])`.
    """
    if gate_log_decay.shape != inputs.shape:
        raise ValueError(
            "`gate_log_decay` and `inputs` must have the same shape [B, N, D], "
            f"got {list(gate_log_decay.shape)} and {list(inputs.shape)}."
        )
    # 1. one head per channel
    value = inputs.transpose(1, 2).unsqueeze(-1)  # [B, D, N, 1]
    ones = torch.ones_like(value)
    state0 = None if initial_state is None else initial_state[:, :, None, None]
    # 2. scalar-decay transform
    out, final = decay_low_rank_transform(
        ones, ones, value, gate_log_decay.transpose(1, 2), mask, state0, chunk_size=chunk_size
    )
    # 3. back to channels
    return out[..., 0].transpose(1, 2), final[:, :, 0, 0]


def _grads(fn, *tensors):
    """Output(s) of `fn` and the gradients of a fixed random projection of them w.r.t. every input."""
    tensors = [t.detach().clone().requires_grad_(True) for t in tensors]
    outs = fn(*tensors)
    outs = outs if isinstance(outs, tuple) else (outs,)
    gen = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    loss.backward()
    return [o.detach() for o in outs], [t.grad for t in tensors]


def _decay_inputs(batch, heads, length, rank, width, per_feature, gen, dtype=torch.float64, strength=1.0):
    query = torch.randn(batch, heads, length, rank, generator=gen, dtype=dtype)
    key = torch.randn(batch, heads, length, rank, generator=gen, dtype=dtype)
    value = torch.randn(batch, heads, length, width, generator=gen, dtype=dtype)
    shape = (batch, heads, length, rank) if per_feature else (batch, heads, length)
    log_decay = -strength * torch.nn.functional.softplus(torch.randn(shape, generator=gen, dtype=dtype) - 1)
    return query, key, value, log_decay


def _random_mask(batch, length, gen):
    mask = (torch.rand(batch, length, generator=gen) > 0.3).to(torch.float64)
    mask[:, 0] = 1.0
    return mask


def _max_err(a, b):
    return (a - b).abs().max().item()


# --------------------------------------------------------------------------------------------------------------
# Decayed low-rank kernel: chunked == recurrent == naive
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("per_feature", [False, True], ids=["scalar", "per_feature"])
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("chunk_size", [7, 16])
def test_decay_low_rank_chunked_recurrent_naive_agree(length, per_feature, padded, with_state, chunk_size):
    gen = torch.Generator().manual_seed(length)
    batch, heads, rank, width = 2, 2, 3, 4
    inputs = list(_decay_inputs(batch, heads, length, rank, width, per_feature, gen))
    if with_state:
        inputs.append(torch.randn(batch, heads, rank, width, generator=gen, dtype=torch.float64))
    mask = _random_mask(batch, length, gen) if padded else None

    def call(fn, **kw):
        return lambda q, k, v, g, *s: fn(q, k, v, g, mask, s[0] if s else None, **kw)

    fast, fast_grads = _grads(call(decay_low_rank_transform, chunk_size=chunk_size), *inputs)
    rec, rec_grads = _grads(call(decay_low_rank_recurrent_naive), *inputs)
    ref, ref_grads = _grads(call(decay_low_rank_transform_naive), *inputs)
    for other, other_grads in ((rec, rec_grads), (ref, ref_grads)):
        for a, b in zip(fast, other):  # output and final state
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
        for a, b in zip(fast_grads, other_grads):  # q, k, v, log-decay (and initial state)
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("per_feature", [False, True], ids=["scalar", "per_feature"])
def test_decay_low_rank_float32_close_to_float64(per_feature):
    gen = torch.Generator().manual_seed(0)
    inputs = _decay_inputs(2, 2, 150, 8, 8, per_feature, gen)
    ref_out, ref_state = decay_low_rank_transform_naive(*inputs)
    out, state = decay_low_rank_transform(*(t.float() for t in inputs), chunk_size=32)
    assert out.dtype == state.dtype == torch.float32
    torch.testing.assert_close(out, ref_out.float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, ref_state.float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("per_feature", [False, True], ids=["scalar", "per_feature"])
def test_decay_low_rank_strong_decay_is_finite(per_feature):
    """Log-decays of −40 per step: cumulative products reach e^−12000, which `exp(±cumsum)` tricks turn into
    inf/NaN; the chunked form only ever exponentiates sums of non-positive numbers over a chunk."""
    gen = torch.Generator().manual_seed(0)
    query, key, value, log_decay = _decay_inputs(1, 2, 300, 4, 3, per_feature, gen, dtype=torch.float32, strength=40)
    log_decay = log_decay.requires_grad_(True)
    out, state = decay_low_rank_transform(query, key, value, log_decay, chunk_size=64)
    rec, _ = decay_low_rank_recurrent_naive(query, key, value, log_decay.detach())
    assert torch.isfinite(out).all() and torch.isfinite(state).all()
    torch.testing.assert_close(out, rec, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert torch.isfinite(log_decay.grad).all()


@pytest.mark.parametrize("per_feature", [False, True], ids=["scalar", "per_feature"])
@pytest.mark.parametrize("impl", ["chunked", "recurrent", "naive"])
def test_decay_low_rank_padding_equals_each_sequence_alone(per_feature, impl):
    """Left- and right-padded rows of a batch give exactly each sequence's outputs and final state: a padded step
    neither adds its k v^T nor decays the state."""
    fn = {
        "chunked": lambda *a: decay_low_rank_transform(*a, chunk_size=8),
        "recurrent": decay_low_rank_recurrent_naive,
        "naive": decay_low_rank_transform_naive,
    }[impl]
    gen = torch.Generator().manual_seed(0)
    heads, rank, width, total = 2, 3, 4, 40
    lengths, sides = (17, 30, 40), ("left", "right", "right")
    seqs = [_decay_inputs(1, heads, n, rank, width, per_feature, gen) for n in lengths]
    states = [torch.randn(1, heads, rank, width, generator=gen, dtype=torch.float64) for _ in lengths]
    batch = [torch.zeros((len(lengths), heads, total) + t.shape[3:], dtype=torch.float64) for t in seqs[0]]
    batch[3] = batch[3] - 5.0  # padded steps get a strong decay, which the mask must cancel
    mask = torch.zeros(len(lengths), total, dtype=torch.float64)
    spans = []
    for row, (n, side, seq) in enumerate(zip(lengths, sides, seqs)):
        span = slice(total - n, total) if side == "left" else slice(0, n)
        for full, part in zip(batch, seq):
            full[row, :, span] = part[0]
        mask[row, span] = 1.0
        spans.append(span)
    out, final = fn(*batch, mask, torch.cat(states))
    for row, (seq, state, span) in enumerate(zip(seqs, states, spans)):
        alone, alone_final = fn(*seq, None, state)
        torch.testing.assert_close(out[row : row + 1, :, span], alone, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(final[row : row + 1], alone_final, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("per_feature", [False, True], ids=["scalar", "per_feature"])
def test_decay_low_rank_does_not_leak_bit_for_bit(per_feature):
    """Changing any input after position t leaves every output at positions <= t bit-for-bit unchanged."""
    gen = torch.Generator().manual_seed(0)
    inputs = _decay_inputs(2, 2, 200, 4, 3, per_feature, gen, dtype=torch.float32)
    state0 = torch.randn(2, 2, 4, 3, generator=gen)
    mask = torch.ones(2, 200)
    mask[1, :5] = 0
    before, _ = decay_low_rank_transform(*inputs, mask, state0, chunk_size=64)
    for t in (0, 63, 64, 100, 198):
        changed = [x.clone() for x in inputs]
        for x in changed[:3]:
            x[:, :, t + 1 :] = torch.randn(x[:, :, t + 1 :].shape, generator=gen) * 100
        changed[3][:, :, t + 1 :] = -10 * torch.rand(changed[3][:, :, t + 1 :].shape, generator=gen)
        after, _ = decay_low_rank_transform(*changed, mask, state0, chunk_size=64)
        assert torch.equal(before[:, :, : t + 1], after[:, :, : t + 1]), f"output at <= {t} changed"
        assert not torch.equal(before[:, :, t + 1 :], after[:, :, t + 1 :])


@pytest.mark.parametrize("per_feature", [False, True], ids=["scalar", "per_feature"])
def test_decay_low_rank_prefix_then_steps_equals_full(per_feature):
    """Generation with a recurrent-state cache: the chunked form on a (left-padded) prompt, then one
    `decay_low_rank_step` per new token, gives the outputs of the chunked form on the whole sequence."""
    gen = torch.Generator().manual_seed(0)
    q, k, v, g = _decay_inputs(2, 2, 50, 3, 4, per_feature, gen)
    mask = torch.ones(2, 50, dtype=torch.float64)
    mask[1, :7] = 0
    full, full_state = decay_low_rank_transform(q, k, v, g, mask, chunk_size=16)
    prompt = 33
    out, state = decay_low_rank_transform(
        q[:, :, :prompt], k[:, :, :prompt], v[:, :, :prompt], g[:, :, :prompt], mask[:, :prompt], chunk_size=16
    )
    torch.testing.assert_close(out, full[:, :, :prompt], atol=1e-12, rtol=1e-12)
    for t in range(prompt, 50):
        y, state = decay_low_rank_step(q[:, :, t], k[:, :, t], v[:, :, t], g[:, :, t], state, mask[:, t])
        torch.testing.assert_close(y, full[:, :, t], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(state, full_state, atol=1e-12, rtol=1e-12)


def test_decay_low_rank_rejects_mismatched_shapes():
    q, k, v = torch.rand(1, 2, 4, 3), torch.rand(1, 2, 4, 3), torch.rand(1, 2, 4, 5)
    with pytest.raises(ValueError, match="`log_decay` must have shape"):
        decay_low_rank_transform(q, k, v, torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match="`initial_state` must have shape"):
        decay_low_rank_transform(q, k, v, torch.zeros(1, 2, 4), initial_state=torch.zeros(1, 2, 5, 3))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        decay_low_rank_recurrent_naive(q, k, v, torch.zeros(1, 2, 4), mask=torch.ones(1, 3))


# --------------------------------------------------------------------------------------------------------------
# LTI / S4D stationary kernel
# --------------------------------------------------------------------------------------------------------------


def _s4d_parameters(channels, states, gen, dtype=torch.float64):
    """S4D-Lin initialisation (Gu et al. 2022): A_n = −1/2 + iπn, Δ log-uniform in [1e-3, 1e-1], B = 1, C ~ N(0, 1)
    complex; plus a random skip D."""
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    log_dt = math.log(1e-3) + torch.rand(channels, generator=gen, dtype=dtype) * (math.log(1e-1) - math.log(1e-3))
    A = torch.complex(
        -0.5 * torch.ones(channels, states, dtype=dtype),
        math.pi * torch.arange(states, dtype=dtype).expand(channels, states),
    )
    B = torch.ones(channels, states, dtype=cdtype)
    C = torch.complex(
        torch.randn(channels, states, generator=gen, dtype=dtype),
        torch.randn(channels, states, generator=gen, dtype=dtype),
    ) / math.sqrt(2 * states)
    skip = torch.randn(channels, generator=gen, dtype=dtype)
    return log_dt, A, B.to(cdtype), C.to(cdtype), skip


def _discrete_parameters(channels, states, gen, dtype=torch.float64):
    """Random stable discrete diagonal SSM: |A| in (0.5, 0.99), random phases, complex B and C."""
    radius = 0.5 + 0.49 * torch.rand(channels, states, generator=gen, dtype=dtype)
    angle = math.pi * (2 * torch.rand(channels, states, generator=gen, dtype=dtype) - 1)
    A = torch.polar(radius, angle)
    B = torch.complex(
        torch.randn(channels, states, generator=gen, dtype=dtype),
        torch.randn(channels, states, generator=gen, dtype=dtype),
    )
    C = torch.complex(
        torch.randn(channels, states, generator=gen, dtype=dtype),
        torch.randn(channels, states, generator=gen, dtype=dtype),
    ) / (2 * states)
    skip = torch.randn(channels, generator=gen, dtype=dtype)
    return A, B, C, skip


def _cast(x, dtype):
    """Real tensors to `dtype`, complex ones to the matching complex dtype, anything else unchanged."""
    if not torch.is_tensor(x):
        return x
    if x.is_complex():
        return x.to(torch.complex128 if dtype == torch.float64 else torch.complex64)
    return x.to(dtype)


def ssm_recurrence(u, A_bar, B_bar, C, skip=None):
    """Direct step-by-step complex recurrence x_t = Ā x_{t−1} + B̄ u_t, y_t = Re(C x_t) + D u_t; `u` `[B, N, D]`."""
    x = torch.zeros(u.shape[0], *A_bar.shape, dtype=A_bar.dtype)
    ys = []
    for t in range(u.shape[1]):
        x = A_bar * x + B_bar * u[:, t, :, None]
        y = (C * x).sum(-1).real
        if skip is not None:
            y = y + skip * u[:, t]
        ys.append(y)
    return torch.stack(ys, dim=1)


@pytest.mark.parametrize("length", [1, 63, 200])
@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "s4d_zoh"])
def test_ssm_kernel_is_the_impulse_response_of_the_recurrence(length, continuous):
    gen = torch.Generator().manual_seed(length)
    channels, states = 3, 8
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        if continuous:
            log_dt, A, B, C, _ = _s4d_parameters(channels, states, gen)
            A_bar, B_bar = s4d_discretize(log_dt, A, B)
            args = (A, B, C, length, log_dt.exp())
        else:
            A, B, C, _ = _discrete_parameters(channels, states, gen)
            A_bar, B_bar = A, B
            args = (A, B, C, length)
        impulse = torch.zeros(1, length, channels, dtype=torch.float64)
        impulse[:, 0] = 1.0
        truth = ssm_recurrence(impulse, A_bar, B_bar, C)[0]  # float64
        kernel = ssm_kernel(*(_cast(a, dtype) for a in args))
        assert kernel.shape == (length, channels) and kernel.dtype == dtype
        torch.testing.assert_close(kernel, truth.to(dtype), atol=tol, rtol=tol)


@pytest.mark.parametrize("length", [1, 63, 200])
@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "s4d_zoh"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ssm_transform_matches_recurrence_on_random_inputs(length, continuous, dtype):
    """`ssm_kernel` laid out at offsets δ ≥ 0 and applied by the bit-exact causal FFT of `spectral_conv` equals the
    complex recurrence with skip, in float64 (tight) and float32 (≤ 1e-5 against the float64 recurrence)."""
    gen = torch.Generator().manual_seed(length)
    channels, states = 4, 8
    if continuous:
        log_dt, A, B, C, skip = _s4d_parameters(channels, states, gen)
        A_bar, B_bar = s4d_discretize(log_dt, A, B)
        step = log_dt.exp()
    else:
        A, B, C, skip = _discrete_parameters(channels, states, gen)
        A_bar, B_bar, step = A, B, None
    u = torch.randn(2, length, channels, generator=gen, dtype=torch.float64)
    truth = ssm_recurrence(u, A_bar, B_bar, C, skip)
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    out = ssm_transform(
        u.to(dtype),
        A.to(cdtype),
        B.to(cdtype),
        C.to(cdtype),
        skip=skip.to(dtype),
        step=None if step is None else step.to(dtype),
    )
    assert out.dtype == dtype
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out, truth.to(dtype), atol=tol, rtol=tol)
    # the same through the public pieces: kernel, layout, causal spectral_conv
    kernel = ssm_kernel(A, B, C, length, step)
    kernel = torch.cat([kernel[:1] + skip, kernel[1:]])
    via_conv = spectral_conv(u, causal_kernel_layout(kernel), causal=True)
    torch.testing.assert_close(via_conv, truth, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("length", [1, 63, 130])
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded"])
def test_ssm_transform_matches_naive_forward_and_backward(length, padded):
    """Gradients w.r.t. the inputs and every real S4D parameter (log Δ, Re A, Im A, C, D) through the Vandermonde
    kernel and the FFT agree with the explicit Toeplitz kernel built by repeated multiplication."""
    gen = torch.Generator().manual_seed(0)
    channels, states = 3, 6
    log_dt, A, B, C, skip = _s4d_parameters(channels, states, gen)
    u = torch.randn(2, length, channels, generator=gen, dtype=torch.float64)
    mask = _random_mask(2, length, gen) if padded else None

    def make(fn):
        def run(u, log_dt, a_re, a_im, c_re, c_im, skip):
            return fn(u, torch.complex(a_re, a_im), B, torch.complex(c_re, c_im), mask, skip, log_dt.exp())

        return run

    params = (u, log_dt, A.real, A.imag, C.real, C.imag, skip)
    fast, fast_grads = _grads(make(ssm_transform), *params)
    ref, ref_grads = _grads(make(ssm_transform_naive), *params)
    torch.testing.assert_close(fast[0], ref[0], atol=1e-10, rtol=1e-10)
    for a, b in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_s4d_discretize_is_zero_order_hold():
    """ZOH by the matrix exponential of the augmented system: exp(Δ [[A, B], [0, 0]]) = [[Ā, B̄], [0, 1]]."""
    gen = torch.Generator().manual_seed(0)
    log_dt, A, _, _, _ = _s4d_parameters(3, 5, gen)
    B = torch.complex(
        torch.randn(3, 5, generator=gen, dtype=torch.float64), torch.randn(3, 5, generator=gen, dtype=torch.float64)
    )
    A_bar, B_bar = s4d_discretize(log_dt, A, B)
    dt = log_dt.exp()
    for d in range(3):
        for n in range(5):
            block = torch.zeros(2, 2, dtype=torch.complex128)
            block[0, 0], block[0, 1] = A[d, n] * dt[d], B[d, n] * dt[d]
            expm = torch.linalg.matrix_exp(block)
            # complex matrix_exp itself is only good to ~4e-10 here (ours is within 4e-16 of a 40-digit mpmath value)
            torch.testing.assert_close(A_bar[d, n], expm[0, 0], atol=1e-9, rtol=1e-9)
            torch.testing.assert_close(B_bar[d, n], expm[0, 1], atol=1e-9, rtol=1e-9)


def test_ssm_kernel_matches_s4d_published_kernel():
    """S4D's kernel (Gu et al. 2022, reference `s4d.py`): with B = 1 and N/2 conjugate pairs,
    K = 2 · Re(Σ_n C_n (exp(Δ A_n) − 1)/A_n · exp(Δ A_n t)); ours is the same with C ← 2C."""
    gen = torch.Generator().manual_seed(0)
    log_dt, A, B, C, _ = _s4d_parameters(4, 16, gen)
    length = 300
    dt = log_dt.exp()
    dtA = A * dt.unsqueeze(-1)
    published = (
        2
        * torch.einsum(
            "hn,hnl->hl", C * (torch.exp(dtA) - 1.0) / A, torch.exp(dtA.unsqueeze(-1) * torch.arange(length))
        ).real
    )
    torch.testing.assert_close(ssm_kernel(A, B, 2 * C, length, step=dt), published.T, atol=1e-12, rtol=1e-10)


def test_ssm_transform_does_not_leak_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    log_dt, A, B, C, skip = (
        t.to(torch.complex64) if t.is_complex() else t.float() for t in _s4d_parameters(4, 8, gen)
    )
    u = torch.randn(2, 300, 4, generator=gen)
    before = ssm_transform(u, A, B, C, skip=skip, step=log_dt.exp())
    for t in (0, 63, 64, 100, 298):
        changed = u.clone()
        changed[:, t + 1 :] = torch.randn(changed[:, t + 1 :].shape, generator=gen) * 1e3
        after = ssm_transform(changed, A, B, C, skip=skip, step=log_dt.exp())
        assert torch.equal(before[:, : t + 1], after[:, : t + 1]), f"output at <= {t} changed"


# --------------------------------------------------------------------------------------------------------------
# Exact special cases from their published equations
# --------------------------------------------------------------------------------------------------------------


def mamba2_ssd_reference(x, dt, A, B, C, D, initial_state=None):
    """Mamba-2's selective state space (Dao & Gu 2024, SSD with one group), as a plain loop over time:

        a_t = exp(Δ_t A_h),   h_t = a_t h_{t−1} + Δ_t x_t B_tᵀ,   y_t = h_t C_t + D_h x_t

    x `[B, N, H, P]`, dt (Δ, after softplus) `[B, N, H]`, A `[H]` (negative), B and C `[B, N, S]` (shared across the
    heads and each head's P channels), D `[H]`; state h `[B, H, P, S]`.
    """
    batch, length, heads, width = x.shape
    h = x.new_zeros(batch, heads, width, B.shape[-1]) if initial_state is None else initial_state
    ys = []
    for t in range(length):
        a = torch.exp(dt[:, t] * A)  # [B, H]
        h = a[:, :, None, None] * h + (dt[:, t, :, None, None] * x[:, t, :, :, None]) * B[:, t, None, None, :]
        ys.append(torch.einsum("bhps,bs->bhp", h, C[:, t]) + D[:, None] * x[:, t])
    return torch.stack(ys, dim=1), h


@pytest.mark.parametrize("length", [1, 63, 130])
@pytest.mark.parametrize("chunk_size", [16, 64])
def test_mamba2_ssd_is_decay_low_rank_transform(length, chunk_size):
    """query = C, key = Δ·B, value = x, log_decay = Δ·A (scalar per head and step), plus the skip D x."""
    gen = torch.Generator().manual_seed(length)
    batch, heads, width, states = 2, 3, 4, 8
    x = torch.randn(batch, length, heads, width, generator=gen)
    dt = torch.nn.functional.softplus(torch.randn(batch, length, heads, generator=gen) - 1 + 0.5)
    A = -torch.exp(torch.log(torch.empty(heads).uniform_(1, 16, generator=gen)))  # Mamba-2's A init in [1, 16]
    B = torch.randn(batch, length, states, generator=gen)
    C = torch.randn(batch, length, states, generator=gen)
    D = torch.randn(heads, generator=gen)
    h0 = torch.randn(batch, heads, width, states, generator=gen)
    ref, ref_state = mamba2_ssd_reference(x, dt, A, B, C, D, h0)

    query = C[:, None].expand(batch, heads, length, states)
    key = dt.transpose(1, 2)[..., None] * B[:, None]
    value = x.transpose(1, 2)
    log_decay = (dt * A).transpose(1, 2)
    out, state = decay_low_rank_transform(
        query, key, value, log_decay, initial_state=h0.transpose(-1, -2), chunk_size=chunk_size
    )
    out = out.transpose(1, 2) + D[:, None] * x
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state.transpose(-1, -2), ref_state, atol=1e-5, rtol=1e-5)


def min_gru_reference(u, W_z, W_h, h0=None):
    """minGRU (Feng et al. 2024, "Were RNNs all we needed?"), sequential mode:

    z_t = σ(W_z u_t),   h̃_t = W_h u_t,   h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t
    """
    h = u.new_zeros(u.shape[0], W_z.shape[0]) if h0 is None else h0
    hs = []
    for t in range(u.shape[1]):
        z = torch.sigmoid(u[:, t] @ W_z.T)
        h_tilde = u[:, t] @ W_h.T
        h = (1 - z) * h + z * h_tilde
        hs.append(h)
    return torch.stack(hs, dim=1)


def _min_gru_setup(length, gen):
    batch, inputs, channels = 2, 5, 6
    u = torch.randn(batch, length, inputs, generator=gen)
    W_z = torch.randn(channels, inputs, generator=gen) / math.sqrt(inputs)
    W_h = torch.randn(channels, inputs, generator=gen) / math.sqrt(inputs)
    h0 = torch.randn(batch, channels, generator=gen)
    return u, W_z, W_h, h0


@pytest.mark.parametrize("length", [1, 63, 130])
def test_min_gru_is_gated_linear_recurrence(length):
    """log(1 − z_t) = logsigmoid(−W_z u_t) is the per-channel log-decay, z_t ⊙ h̃_t the input."""
    gen = torch.Generator().manual_seed(length)
    u, W_z, W_h, h0 = _min_gru_setup(length, gen)
    ref = min_gru_reference(u, W_z, W_h, h0)
    pre = u @ W_z.T
    h, final = gated_linear_recurrence(
        torch.nn.functional.logsigmoid(-pre), torch.sigmoid(pre) * (u @ W_h.T), initial_state=h0, chunk_size=16
    )
    torch.testing.assert_close(h, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(final, ref[:, -1], atol=1e-5, rtol=1e-5)


def test_min_gru_is_per_feature_decay_transform_read_on_the_diagonal():
    """The same recurrence as the per-feature-decay kernel with R = E = channels: key = 1, value = z ⊙ h̃,
    log-decay log(1 − z) on the feature axis gives S_t[r, e] = (1 − z_t[r]) S_{t−1}[r, e] + x_t[e], whose diagonal
    S_t[d, d] is h_t[d]; one head per channel d with query e_d reads row d, and its entry e = d is h_t[d]."""
    gen = torch.Generator().manual_seed(0)
    u, W_z, W_h, h0 = _min_gru_setup(40, gen)
    ref = min_gru_reference(u, W_z, W_h, h0)
    batch, length, channels = ref.shape
    pre = u @ W_z.T
    log_decay = torch.nn.functional.logsigmoid(-pre)[:, None].expand(batch, channels, length, channels)
    value = (torch.sigmoid(pre) * (u @ W_h.T))[:, None].expand(batch, channels, length, channels)
    key = torch.ones(batch, channels, length, channels)
    query = torch.eye(channels)[None, :, None, :].expand(batch, channels, length, channels)
    state0 = torch.diag_embed(h0)[:, None].expand(batch, channels, channels, channels)  # diagonal h_0
    out, final = decay_low_rank_transform(query, key, value, log_decay, initial_state=state0, chunk_size=16)
    diagonal = out.diagonal(dim1=1, dim2=3)  # out[b, d, t, d] -> [B, N, D]
    torch.testing.assert_close(diagonal, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(final[:, 0].diagonal(dim1=-2, dim2=-1), ref[:, -1], atol=1e-5, rtol=1e-5)


def test_gated_linear_recurrence_padding_equals_each_sequence_alone():
    gen = torch.Generator().manual_seed(0)
    gates = -torch.rand(2, 30, 4, generator=gen, dtype=torch.float64)
    inputs = torch.randn(2, 30, 4, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    mask = torch.ones(2, 30, dtype=torch.float64)
    mask[0, :12] = 0  # left padding
    mask[1, 25:] = 0  # right padding
    h, final = gated_linear_recurrence(gates, inputs, mask, h0, chunk_size=8)
    alone0, final0 = gated_linear_recurrence(gates[:1, 12:], inputs[:1, 12:], None, h0[:1])
    alone1, final1 = gated_linear_recurrence(gates[1:, :25], inputs[1:, :25], None, h0[1:])
    torch.testing.assert_close(h[:1, 12:], alone0, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(h[1:, :25], alone1, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(final, torch.cat([final0, final1]), atol=1e-12, rtol=1e-12)


# --------------------------------------------------------------------------------------------------------------
# What is NOT exact: a GRU
# --------------------------------------------------------------------------------------------------------------


def _gru(seed=0):
    torch.manual_seed(seed)
    return torch.nn.GRU(input_size=3, hidden_size=5, batch_first=True).double()


def test_gru_is_not_an_integral_transform():
    """A GRU is not an integral transform of its input sequence.

    Its gates read the state: r_t = σ(W_r x_t + U_r h_{t−1}), z_t = σ(W_z x_t + U_z h_{t−1}), and the candidate
    h̃_t = tanh(W x_t + r_t ⊙ (U h_{t−1})) is a saturating function of the state. So h_t is not Σ_s K(t, s) v_s
    for any kernel computable from the inputs alone: the output is not linear in the input sequence
    (superposition fails), its Jacobian changes with the input, and even with the input held fixed it is not
    affine in the initial state. Every ITNet family (see `test_every_itnet_family_is_linear_in_values`) is linear
    in v for a fixed kernel, and the recurrence family is affine in its initial state.
    """
    gru = _gru()
    gen = torch.Generator().manual_seed(0)
    x1, x2 = (torch.randn(2, 20, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    h1, h2 = (torch.randn(1, 2, 5, generator=gen, dtype=torch.float64) for _ in range(2))
    zero_x, zero_h = torch.zeros_like(x1), torch.zeros_like(h1)
    with torch.no_grad():
        run = lambda x, h=zero_h: gru(x, h)[0]
        # 1. superposition in the input sequence fails
        defect = run(x1 + x2) - run(x1) - run(x2) + run(zero_x)
        assert defect.abs().max() > 1e-2
        # 2. affine in the initial state, for a fixed input? No: the gates read h_{t−1}
        state_defect = run(x1, h1 + h2) - run(x1, h1) - run(x1, h2) + run(x1, zero_h)
        assert state_defect.abs().max() > 1e-2
    # 3. the Jacobian w.r.t. the input depends on the input
    jac = [torch.autograd.functional.jacobian(lambda x: gru(x[None])[0][0], x[0]) for x in (x1, x2)]
    assert (jac[0] - jac[1]).abs().max() > 1e-2


def test_every_itnet_family_is_linear_in_values():
    """For fixed queries, keys, decays, positions and kernels, every family's output is linear in the values
    (f(α v₁ + β v₂) = α f(v₁) + β f(v₂) to rounding), and the recurrence family is affine in its initial state."""
    gen = torch.Generator().manual_seed(0)
    f64 = {"generator": gen, "dtype": torch.float64}
    batch, heads, length, rank, width, channels = 2, 2, 37, 3, 4, 5
    q, k = torch.rand(batch, heads, length, rank, **f64), torch.rand(batch, heads, length, rank, **f64)
    log_decay = -torch.rand(batch, heads, length, rank, **f64)
    mask = _random_mask(batch, length, gen)
    kernel = torch.randn(2 * length - 1, channels, **f64)
    table = torch.randn(5, channels, **f64)
    positions, left, right = (
        torch.randn(batch, length, 2, **f64),
        torch.randn(batch, length, 3, **f64),
        torch.randn(batch, length, 3, **f64),
    )
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, heads)).double()
    kernel_fn = lambda d, a, b: mlp(torch.cat([d, a, b], dim=-1))
    log_proposal = torch.randn(batch, length, **f64)
    A, B, C, skip = _discrete_parameters(channels, 6, gen)
    gates = -torch.rand(batch, length, channels, **f64)

    def mc(v):
        return monte_carlo_transform(
            positions, left, right, v, kernel_fn, log_proposal, 7, mask, True, torch.Generator().manual_seed(3)
        )

    per_head = (batch, heads, length, width)
    per_channel = (batch, length, channels)
    families = {
        "spectral": (per_channel, lambda v: spectral_conv(v, kernel, mask)),
        "spectral_causal": (per_channel, lambda v: spectral_conv(v, kernel, mask, causal=True)),
        "local": (per_channel, lambda v: local_conv(v, table, (-2,), mask)),
        "low_rank": (per_head, lambda v: low_rank_transform(q, k, v, mask)),
        "low_rank_causal": (per_head, lambda v: low_rank_transform(q, k, v, mask, causal=True, chunk_size=8)),
        "softmax": (per_head, lambda v: softmax_transform(q, k, v, mask, causal=True)),
        "mlp": (per_head, lambda v: mlp_kernel_transform(positions, left, right, v, kernel_fn, mask, tile_size=16)),
        "monte_carlo": (per_head, mc),
        "decay_low_rank": (per_head, lambda v: decay_low_rank_transform(q, k, v, log_decay, mask, chunk_size=8)[0]),
        "ssm": (per_channel, lambda v: ssm_transform(v, A, B, C, mask, skip)),
        "gated_linear": (per_channel, lambda v: gated_linear_recurrence(gates, v, mask)[0]),
    }
    with torch.no_grad():
        for name, (shape, f) in families.items():
            v1, v2 = torch.randn(shape, **f64), torch.randn(shape, **f64)
            combined = f(1.5 * v1 - 0.7 * v2)
            torch.testing.assert_close(combined, 1.5 * f(v1) - 0.7 * f(v2), atol=1e-10, rtol=1e-10, msg=name)
            assert f(v1).abs().max() > 1e-3, name
        # affine in the initial state for fixed inputs
        v = torch.randn(per_head, **f64)
        s1, s2 = torch.randn(batch, heads, rank, width, **f64), torch.randn(batch, heads, rank, width, **f64)
        run = lambda s: torch.cat(
            [t.flatten() for t in decay_low_rank_transform(q, k, v, log_decay, mask, s, chunk_size=8)]
        )
        torch.testing.assert_close(
            run(s1 + s2) - run(s1) - run(s2) + run(None), torch.zeros_like(run(None)), atol=1e-10, rtol=0
        )
