"""`torch.compile` of every head gives the outputs of eager mode (eval, atol 1e-5), and a compiled training step gives
eager's loss and gradients.

Inductor's cold compile of one tiny head takes ~40-130 s wall (~20-60 s CPU) on 2 shared CPU cores (~10-25 s with a
warm on-disk inductor cache), so by default inductor, the default backend, compiles the image and text classifiers'
forward passes and the image classifier's training step (forward + backward: ~140 s wall cold), and `aot_eager`
(Dynamo capture, AOTAutograd and decompositions, no code generation) the other heads' forward passes.
`ITNET_COMPILE_BACKEND=inductor` compiles every head with inductor (or with any other backend named).

Every head compiles to one graph (`fullgraph=True`: a graph break fails the test). The model's data-dependent input
checks (token ids in range, 0/1 mask values, all-padding rows, label ranges, finite points) are skipped while
tracing (`torch.compiler.is_compiling()`); shapes and dtypes are still checked.
"""

import os

import pytest
import torch
import torch._dynamo
from itnet_testing import HEAD_CASES, tiny_builders

ATOL, RTOL = 1e-5, 1e-4
BACKEND = os.environ.get("ITNET_COMPILE_BACKEND")
INDUCTOR_HEADS = ("image-classification", "sequence-classification")
_, build = tiny_builders()


def backend_for(name):
    return BACKEND or ("inductor" if name in INDUCTOR_HEADS else "aot_eager")


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", list(HEAD_CASES))
def test_compiled_head_matches_eager(name):
    model_class, overrides, make_inputs, key = HEAD_CASES[name]
    model = build(model_class, **overrides)
    inputs = make_inputs()
    with torch.no_grad():
        expected = model(**inputs)[key]
        # no head has a graph break: compile each whole, so a new break fails here
        compiled = torch.compile(model, backend=backend_for(name), dynamic=False, fullgraph=True)
        first = compiled(**inputs)[key]
        second = compiled(**inputs)[key]  # the cached graph
    assert first.shape == expected.shape
    torch.testing.assert_close(first, expected, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(second, expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", ["image-classification"])
def test_compiled_training_step_matches_eager(name):
    """Forward, the head's loss and backward compiled (AOTAutograd's joint graph, one graph): loss and every gradient
    as in eager mode."""
    model_class, overrides, make_inputs, _ = HEAD_CASES[name]
    inputs, labels = make_inputs(), torch.tensor([0, 1])
    results = []
    for compile_it in (False, True):
        model = build(model_class, **overrides).train()
        # inductor (not aot_eager: there, the low-rank branch's backward graph fails at run time with "view size is
        # not compatible with input tensor's size and stride", an op whose real strides differ from the traced ones)
        backend = BACKEND or "inductor"
        forward = torch.compile(model, backend=backend, dynamic=False, fullgraph=True) if compile_it else model
        loss = forward(**inputs, labels=labels).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (eager_loss, eager_grads), (compiled_loss, compiled_grads) = results
    torch.testing.assert_close(compiled_loss, eager_loss, atol=ATOL, rtol=RTOL)
    assert compiled_grads.keys() == eager_grads.keys() and len(eager_grads) > 10
    # the spectral kernel MLP (through the FFT) and the low-rank projections receive gradient
    assert any("spectral.kernel.fc1" in n for n in eager_grads) and any("query_key" in n for n in eager_grads)
    for n in eager_grads:
        torch.testing.assert_close(compiled_grads[n], eager_grads[n], atol=ATOL, rtol=RTOL, msg=n)


def test_compiled_training_step_follows_changing_lengths():
    """`torch.compile(model)` as users call it (dynamic shapes from the second length on, inductor), a training step
    on batches of 40 (the kernel-matrix path of `spectral`), 50 and 61 tokens (its FFT path): eager's loss and
    gradients. Inductor's CPU code
    for `roll` by a dynamic length did not compile (`div_mod` of mixed integer types); the kernel's circular layout
    slices instead."""
    from modeling_itnet import ITNetForSequenceClassification

    model = build(ITNetForSequenceClassification, num_labels=2, kernel_families=["spectral", "local", "low_rank"])
    model.train()
    compiled = torch.compile(model, backend=BACKEND or "inductor", fullgraph=True)
    generator = torch.Generator().manual_seed(0)
    for length in (40, 50, 61):
        inputs = {"input_ids": torch.randint(0, 50, (2, length), generator=generator), "labels": torch.tensor([0, 1])}
        inputs["attention_mask"] = torch.ones(2, length, dtype=torch.long)
        inputs["attention_mask"][1, length - 5 :] = 0
        results = []
        for forward in (model, compiled):
            model.zero_grad()
            loss = forward(**inputs).loss
            loss.backward()
            results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
        (eager_loss, eager_grads), (compiled_loss, compiled_grads) = results
        torch.testing.assert_close(compiled_loss, eager_loss, atol=ATOL, rtol=RTOL)
        for n in eager_grads:
            torch.testing.assert_close(compiled_grads[n], eager_grads[n], atol=ATOL, rtol=RTOL, msg=n)
