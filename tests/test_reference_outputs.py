"""Outputs are bit-identical to those committed before the kernel-family refactor (`reference/`): every preset and
every head built at a fixed seed, every optional path, two checkpoints saved before it, and cached generation.
Rebuild the reference only for a change that is meant to change outputs: `python tests/reference/make_reference_outputs.py`.

Bit-identical on the CPU the reference was computed on (its SIMD level and model name, `cpu_signature`, recorded in the
file); on another (AVX2 against AVX-512, or an AVX-512 AMD EPYC against an AVX-512 Xeon) float32 reductions round
differently, and the outputs must agree to 1e-5."""

import pytest
import torch
from reference_cases import CHECKPOINTS, HERE, build_case, cpu_signature, generate_tokens, reference_cases, run_case
from safetensors import safe_open
from safetensors.torch import load_file

from modeling_itnet import ITNetForCausalLM, ITNetForVisualQuestionAnswering

REFERENCE = load_file(HERE / "outputs.safetensors")
with safe_open(HERE / "outputs.safetensors", "pt") as handle:
    REFERENCE_CPU = (handle.metadata() or {}).get("cpu")
SAME_CPU = REFERENCE_CPU == cpu_signature()


def assert_reproduces(output: torch.Tensor, reference: torch.Tensor) -> None:
    if SAME_CPU:
        assert torch.equal(output, reference)
    else:
        torch.testing.assert_close(output, reference, rtol=1e-5, atol=1e-5)


LOADERS = {"causal-lm-all-families": ITNetForCausalLM, "vqa-all-families": ITNetForVisualQuestionAnswering}


@pytest.fixture(autouse=True)
def one_thread():
    """The reference was computed at one thread; reductions split over threads may round differently."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_case_has_a_reference():
    assert set(reference_cases()) | {f"checkpoint/{name}" for name in CHECKPOINTS} | {"generate"} == set(REFERENCE)


@pytest.mark.parametrize("name", reference_cases())
def test_fresh_model_is_bit_identical(name):
    model, inputs = build_case(name)
    assert_reproduces(run_case(model, inputs), REFERENCE[name])


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_checkpoint_saved_before_the_refactor_loads_bit_identical(name):
    model = LOADERS[name].from_pretrained(HERE / "checkpoints" / name).eval()
    assert_reproduces(run_case(model, CHECKPOINTS[name][1]()), REFERENCE[f"checkpoint/{name}"])


def test_cached_generation_is_bit_identical():
    model = ITNetForCausalLM.from_pretrained(HERE / "checkpoints" / "causal-lm-all-families").eval()
    assert torch.equal(generate_tokens(model), REFERENCE["generate"])
