"""The cases of `reference/make_reference_outputs.py` and `tests/test_reference_outputs.py`: how each model is built and run."""

import platform
from pathlib import Path

import torch
from itnet_testing import HEAD_CASES, TINY

from modeling_itnet import (
    ITNetConfig,
    ITNetForCausalLM,
    ITNetForVisualQuestionAnswering,
    list_presets,
    preset_config,
)

HERE = Path(__file__).resolve().parent / "reference"


def cpu_signature() -> str:
    """The SIMD level torch dispatches to and the CPU's model name: float32 reductions round the same way only where
    both agree (an AVX-512 AMD EPYC and an AVX-512 Intel Xeon pick different kernels in the same torch build)."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        model = names[0] if names else ""
    return f"{torch.backends.cpu.get_cpu_capability()} {model or platform.processor()}".strip()


ALL = ["spectral", "local", "low_rank", "softmax", "recurrent", "ssm", "mlp"]  # the families before the refactor
VARIANTS = {
    "all-families": {"kernel_families": ALL},
    "all-families-causal": {"kernel_families": ALL, "is_causal": True},
    "options": {
        "kernel_families": ALL,
        "short_conv_size": 3,
        "recurrent_decay": "channel",
        "mlp_kernel_samples": 5,
        "gate_activation": "silu",
        "pooling": "attention",
        "image_cls_token": True,
        "point_cls_token": True,
        "recurrent_discretization": "zoh",
        "kernel_spectral_norm": True,
        "norm_position": "post",
    },
}
"""Tiny configurations (over `TINY`) run with every head of `HEAD_CASES`."""


def reference_cases() -> list[str]:
    """`<variant or preset>/<head>` for every variant and preset and every head it can build."""
    names = [
        f"{variant}/{head}"
        for variant in VARIANTS
        for head in HEAD_CASES
        if not (head == "masked-lm" and VARIANTS[variant].get("is_causal"))  # a masked LM reads both sides
    ]
    for preset in list_presets():
        families = preset_config(preset).kernel_families
        for head in HEAD_CASES:
            if head == "point-cloud" and not set(families) & {"low_rank", "softmax", "mlp"}:
                continue  # conv-only, recurrent-only: no family works on points
            names.append(f"{preset}/{head}")
    return names


def case_config(name: str) -> tuple[type, ITNetConfig, dict]:
    """`(model class, config, inputs)` of a case. Presets run at `TINY`'s image and vocabulary sizes (the same layers,
    small inputs), the masked LM bidirectional; point-cloud variants drop the short convolution, which needs a grid."""
    source, head = name.split("/")
    model_class, overrides, make_inputs, _ = HEAD_CASES[head]
    if source in VARIANTS:
        fields = {**TINY, **VARIANTS[source], **overrides}
        if head == "point-cloud":
            fields["short_conv_size"] = 0
        config = ITNetConfig(**fields)
    else:
        small = {key: TINY[key] for key in ("vocab_size", "image_size", "patch_size")}
        if head == "masked-lm":
            overrides = {**overrides, "is_causal": False}  # recurrent-only is causal; its masked LM is not
        config = preset_config(source, **small, **overrides)
    return model_class, config, make_inputs()


def build_case(name: str):
    model_class, config, inputs = case_config(name)
    torch.manual_seed(0)
    return model_class(config).eval(), inputs


def run_case(model, inputs) -> torch.Tensor:
    """The head's main output (`logits`, or the base model's `last_hidden_state`) in eval mode."""
    with torch.no_grad():
        out = model(**inputs)
    return out.logits if "logits" in out else out.last_hidden_state


def _tiny_all_families(model_class, **overrides):
    def make():
        torch.manual_seed(0)
        return model_class(ITNetConfig(**{**TINY, "kernel_families": ALL, **overrides})).eval()

    return make


CHECKPOINTS = {
    "causal-lm-all-families": (_tiny_all_families(ITNetForCausalLM, is_causal=True), HEAD_CASES["causal-lm"][2]),
    "vqa-all-families": (
        _tiny_all_families(ITNetForVisualQuestionAnswering, num_labels=5),
        HEAD_CASES["visual-question-answering"][2],
    ),
}
"""Checkpoints saved before the refactor: `name: (make() -> model, make_inputs())`."""


def generate_tokens(model) -> torch.Tensor:
    """Greedy cached generation of 6 new tokens from a fixed left-padded prompt."""
    inputs = {key: value.flip(1) for key, value in HEAD_CASES["causal-lm"][2]().items()}
    with torch.no_grad():
        return model.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=0)
