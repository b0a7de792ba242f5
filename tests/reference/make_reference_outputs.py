"""Writes the outputs the refactor must keep bit-identical (`tests/test_reference_outputs.py`).

    python tests/reference/make_reference_outputs.py      # run once, before a change that must not change outputs
    python tests/reference/make_reference_outputs.py --update itnet-unified/   # a deliberate change of those cases
    python tests/reference/make_reference_outputs.py --rounding   # a faster path: the same math, rounded otherwise

`--update PREFIX` recomputes only the cases whose names start with `PREFIX` (a preset whose defaults were changed
on purpose) and keeps every other stored output and the checkpoints as they are. `--this_cpu` recomputes every stored
output (the committed checkpoints loaded, not saved again) on this machine, for a CPU whose SIMD width rounds
differently (run it on the code that wrote the reference). `--rounding` recomputes every stored output the same
way after a change that computes the same math in another order (e.g. another FFT layout): it first checks that
every output agrees with the stored one to float32 rounding (1e-5), refuses to write anything otherwise, and lists
the cases whose bits changed. The file records the CPU it was computed on (`cpu_signature()`: the SIMD level
torch dispatches to and the CPU's model name): `test_reference_outputs.py` asks for bit-identical outputs there and
for agreement to float32 rounding (1e-5) elsewhere.

1. For every case of `reference_cases()` (every preset and every head, plus tiny configurations with every kernel
   family and every optional path), the model is built with `torch.manual_seed(0)` and run on fixed inputs at one
   thread; its output tensor is stored in `outputs.safetensors` under `<case>`.
2. Two tiny checkpoints with every family (a causal LM and a VQA model) are saved in `checkpoints/` with their
   logits, so that checkpoints saved before the change are checked to load and give the same outputs.
3. Greedy cached generation of the causal checkpoint: its tokens are stored under `generate`.
"""

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from reference_cases import CHECKPOINTS, HERE, build_case, cpu_signature, generate_tokens, reference_cases, run_case

LOADERS = {"causal-lm-all-families": "ITNetForCausalLM", "vqa-all-families": "ITNetForVisualQuestionAnswering"}


def save(outputs: dict) -> None:
    metadata = {
        "cpu": cpu_signature(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }
    save_file(outputs, HERE / "outputs.safetensors", metadata=metadata)


def recompute(rounding: bool = False):
    """Every stored output recomputed (the committed checkpoints loaded, not saved again); with `rounding`, only if
    each agrees with the stored one to 1e-5."""
    import modeling_itnet

    outputs = {}
    for name in reference_cases():
        model, inputs = build_case(name)
        outputs[name] = run_case(model, inputs).contiguous()
    for name, (_, inputs) in CHECKPOINTS.items():
        model = getattr(modeling_itnet, LOADERS[name]).from_pretrained(HERE / "checkpoints" / name).eval()
        outputs[f"checkpoint/{name}"] = run_case(model, inputs()).contiguous()
    causal = modeling_itnet.ITNetForCausalLM.from_pretrained(HERE / "checkpoints" / "causal-lm-all-families").eval()
    outputs["generate"] = generate_tokens(causal)
    if rounding:
        stored = load_file(HERE / "outputs.safetensors")
        changed = [name for name in outputs if not torch.equal(outputs[name], stored[name])]
        for name in changed:
            difference = (outputs[name].double() - stored[name].double()).abs().max().item()
            print(f"{name}: changed, largest difference {difference:.1e}")
            torch.testing.assert_close(
                outputs[name], stored[name], atol=1e-5, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}"
            )
        print(f"{len(changed)} of {len(outputs)} outputs changed, all within 1e-5")
    save(outputs)
    print(f"{len(outputs)} outputs recomputed on {cpu_signature()}")


def update(prefix: str):
    outputs = load_file(HERE / "outputs.safetensors")
    names = [name for name in reference_cases() if name.startswith(prefix)]
    if not names:
        raise SystemExit(f"No reference case starts with {prefix!r}.")
    for name in names:
        model, inputs = build_case(name)
        outputs[name] = run_case(model, inputs).contiguous()
        print(f"{name}: {tuple(outputs[name].shape)} (updated)")
    save(outputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", metavar="PREFIX", help="recompute only the cases starting with PREFIX")
    parser.add_argument("--this_cpu", action="store_true", help="recompute every output on this CPU")
    parser.add_argument("--rounding", action="store_true", help="recompute every output if each is within 1e-5")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.update:
        return update(args.update)
    if args.this_cpu or args.rounding:
        return recompute(rounding=args.rounding)
    outputs = {}
    for name in reference_cases():
        model, inputs = build_case(name)
        outputs[name] = run_case(model, inputs).contiguous()
        print(f"{name}: {tuple(outputs[name].shape)}")
    for name, (make, inputs) in CHECKPOINTS.items():
        model = make()
        model.save_pretrained(HERE / "checkpoints" / name)
        for path in (HERE / "checkpoints" / name).glob("*.py"):  # the weights and config are what must load
            path.unlink()
        outputs[f"checkpoint/{name}"] = run_case(model, inputs()).contiguous()
        print(f"checkpoint/{name} saved")
    outputs["generate"] = generate_tokens(CHECKPOINTS["causal-lm-all-families"][0]())
    save(outputs)


if __name__ == "__main__":
    main()
