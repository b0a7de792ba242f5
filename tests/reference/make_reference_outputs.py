"""Writes the outputs the refactor must keep bit-identical (`tests/test_reference_outputs.py`).

    python tests/reference/make_reference_outputs.py      # run once, before a change that must not change outputs

1. For every case of `reference_cases()` (every preset and every head, plus tiny configurations with every kernel
   family and every optional path), the model is built with `torch.manual_seed(0)` and run on fixed inputs at one
   thread; its output tensor is stored in `outputs.safetensors` under `<case>`.
2. Two tiny checkpoints with every family (a causal LM and a VQA model) are saved in `checkpoints/` with their
   logits, so that checkpoints saved before the change are checked to load and give the same outputs.
3. Greedy cached generation of the causal checkpoint: its tokens are stored under `generate`.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from reference_cases import CHECKPOINTS, HERE, build_case, generate_tokens, reference_cases, run_case


def main():
    torch.set_num_threads(1)
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
    save_file(outputs, HERE / "outputs.safetensors")


if __name__ == "__main__":
    main()
