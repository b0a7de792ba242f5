# Copyright 2026 The modeling_itnet Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
r"""Convert pretrained BERT, ViT, GPT-2 and Mamba models into ITNet models that compute the same function.

ITNet's mixer `y_i = W_o Σ_f g(W_g,f u_i) ⊙ T_f(v)_i` contains each of them as a special case:

| source | kernel families | gates | blocks and embeddings |
|---|---|---|---|
| BERT | `softmax` (no relative bias): `K = softmax_j(q_i·k_j/√d)` | linear, constant 1 | post-norm, absolute positions, token types, embedding norm, `[CLS]` pooler |
| ViT | `softmax` on the class token + patch grid | linear, constant 1 | pre-norm, class token, absolute positions (interpolated as ViT) |
| GPT-2 | causal `softmax` | linear, constant 1 | pre-norm, absolute positions, tied head |
| Mamba | `recurrent` (`recurrent_decay="channel"`: the selective scan, Mamba's discretisation) + `local` (window 1: `D`) | `silu(z)`, Mamba's own gate | short causal convolution of the values, RMSNorm, no feed-forward network |

`convert_to_itnet(model)` maps the weights one to one (GPT-2's `Conv1D` weights transposed, Mamba's `in_proj` split
into values and gate, its convolution and `D` into local kernel tables) and leaves no parameter random: the result
equals the source model to float rounding. `relax=True` also builds the other kernel families (`RELAXED_FAMILIES`)
with their gates at exactly 0 (weight and bias 0; `linear(0) = silu(0) = 0`), so the output is still the source
model's, and fine-tuning can open them: the gradient reaches the zero gates through the branches' outputs.

Command line: load with `from_pretrained`, convert, check equality on random inputs, save a checkpoint that loads
with the Auto classes (and with `trust_remote_code=True` without this package):

    python -m modeling_itnet.convert --source bert-base-uncased --output itnet-bert-base \
        --architecture BertForSequenceClassification --num_labels 2 [--relax]
"""

import argparse
from pathlib import Path

import torch
import transformers

from .branches_itnet import relaxable_families
from .configuration_itnet import HIDDEN_ACTIVATIONS, ITNetConfig
from .heads_itnet import (
    ITNetForCausalLM,
    ITNetForImageClassification,
    ITNetForMaskedLM,
    ITNetForSequenceClassification,
)
from .modeling_itnet import ITNetModel

SUPPORTED = {
    "BertModel": ("bert", ITNetModel, ("text",)),
    "BertForSequenceClassification": ("bert", ITNetForSequenceClassification, None),
    "BertForMaskedLM": ("bert", ITNetForMaskedLM, None),
    "ViTModel": ("vit", ITNetModel, ("image",)),
    "ViTForImageClassification": ("vit", ITNetForImageClassification, None),
    "GPT2LMHeadModel": ("gpt2", ITNetForCausalLM, None),
    "MambaForCausalLM": ("mamba", ITNetForCausalLM, None),
}
"""Source class name → (family, ITNet class, modalities of a bare `ITNetModel`)."""

EXACT_FAMILIES = {"bert": ["softmax"], "vit": ["softmax"], "gpt2": ["softmax"], "mamba": ["local", "recurrent"]}
"""The families that hold each source's layers exactly (Mamba's short convolution is the `local` family)."""

RELAXED_FAMILIES = {
    source: [family for family in relaxable_families() if family not in exact]
    for source, exact in EXACT_FAMILIES.items()
}
"""The families `relax=True` adds: every relaxable family of the registry (`ITNetBranch.relaxable`: all but the
quadratic-cost `"mlp"` kernel) that the source does not already use."""


def _unsupported(message: str):
    supported = ", ".join(SUPPORTED)
    raise ValueError(f"{message} `convert_to_itnet` supports {supported}.")


def _activation(name: str, field: str) -> str:
    if name not in HIDDEN_ACTIVATIONS:
        _unsupported(f"The source model's `{field}` is {name!r}; ITNet's activations are {HIDDEN_ACTIVATIONS}.")
    return name


def _common(source) -> dict:
    """Config fields every conversion copies: labels and special tokens."""
    fields = {"num_labels": source.num_labels, "id2label": dict(source.id2label), "label2id": dict(source.label2id)}
    for name in ("problem_type", "pad_token_id", "bos_token_id", "eos_token_id"):
        if getattr(source, name, None) is not None:
            fields[name] = getattr(source, name)
    return fields


def bert_config(source, has_pooler: bool, families: list[str]) -> ITNetConfig:
    """BERT: softmax attention without relative bias, post-norm, absolute positions, token types, embedding norm."""
    if getattr(source, "position_embedding_type", "absolute") != "absolute":
        _unsupported(f"BERT with position_embedding_type={source.position_embedding_type!r} is not supported.")
    if getattr(source, "is_decoder", False) or getattr(source, "add_cross_attention", False):
        _unsupported("BERT as a decoder (is_decoder / add_cross_attention) is not supported.")
    return ITNetConfig(
        vocab_size=source.vocab_size,
        hidden_size=source.hidden_size,
        num_hidden_layers=source.num_hidden_layers,
        num_attention_heads=source.num_attention_heads,
        intermediate_size=source.intermediate_size,
        hidden_act=_activation(source.hidden_act, "hidden_act"),
        hidden_dropout_prob=source.hidden_dropout_prob,
        max_position_embeddings=source.max_position_embeddings,
        layer_norm_eps=source.layer_norm_eps,
        initializer_range=source.initializer_range,
        kernel_families=families,
        softmax_relative_bias=False,
        norm_position="post",
        position_embedding_type="absolute",
        type_vocab_size=source.type_vocab_size,
        embedding_norm=True,
        pooling="first",
        pooler_activation="tanh" if has_pooler else None,
        gate_activation="linear",
        tie_word_embeddings=source.tie_word_embeddings,
        **_common(source),
    )


def vit_config(source, has_pooler: bool, families: list[str]) -> ITNetConfig:
    """ViT: pre-norm softmax attention over the class token and the patch grid, absolute positions."""
    image_size, patch_size = source.image_size, source.patch_size
    if not isinstance(image_size, int) or not isinstance(patch_size, int):
        _unsupported(f"ViT with non-square image_size={image_size} / patch_size={patch_size} is not supported.")
    return ITNetConfig(
        hidden_size=source.hidden_size,
        num_hidden_layers=source.num_hidden_layers,
        num_attention_heads=source.num_attention_heads,
        intermediate_size=source.intermediate_size,
        hidden_act=_activation(source.hidden_act, "hidden_act"),
        hidden_dropout_prob=source.hidden_dropout_prob,
        image_size=image_size,
        patch_size=patch_size,
        num_channels=source.num_channels,
        layer_norm_eps=source.layer_norm_eps,
        initializer_range=source.initializer_range,
        kernel_families=families,
        softmax_relative_bias=False,
        position_embedding_type="absolute",
        image_cls_token=True,
        pooling="first",
        pooler_activation=_activation(source.pooler_act, "pooler_act") if has_pooler else None,
        gate_activation="linear",
        **_common(source),
    )


def gpt2_config(source, families: list[str]) -> ITNetConfig:
    """GPT-2: pre-norm causal softmax attention, absolute positions, tied output embedding."""
    if source.scale_attn_by_inverse_layer_idx or not source.scale_attn_weights or source.add_cross_attention:
        _unsupported(
            "GPT-2 with scale_attn_by_inverse_layer_idx=True, scale_attn_weights=False or add_cross_attention=True "
            "is not supported."
        )
    return ITNetConfig(
        vocab_size=source.vocab_size,
        hidden_size=source.n_embd,
        num_hidden_layers=source.n_layer,
        num_attention_heads=source.n_head,
        intermediate_size=source.n_inner or 4 * source.n_embd,
        hidden_act=_activation(source.activation_function, "activation_function"),
        hidden_dropout_prob=source.resid_pdrop,
        max_position_embeddings=source.n_positions,
        layer_norm_eps=source.layer_norm_epsilon,
        initializer_range=source.initializer_range,
        kernel_families=families,
        is_causal=True,
        softmax_relative_bias=False,
        position_embedding_type="absolute",
        gate_activation="linear",
        tie_word_embeddings=source.tie_word_embeddings,
        **_common(source),
    )


def mamba_config(source, families: list[str], max_position_embeddings: int) -> ITNetConfig:
    """Mamba: the selective scan as the `"recurrent"` family with a per-channel decay, `D` as a window-1 `"local"`
    kernel, the short causal convolution, the `silu(z)` gate, RMSNorm, no feed-forward network."""
    inner = source.intermediate_size
    heads = inner // 64 if inner % 64 == 0 else 1  # for the relaxed content families only
    return ITNetConfig(
        vocab_size=source.vocab_size,
        hidden_size=source.hidden_size,
        num_hidden_layers=source.num_hidden_layers,
        num_attention_heads=heads,
        intermediate_size=0,
        hidden_act=_activation(source.hidden_act, "hidden_act"),
        max_position_embeddings=max_position_embeddings,
        layer_norm_eps=source.layer_norm_epsilon,
        initializer_range=source.initializer_range,
        kernel_families=families,
        is_causal=True,
        softmax_relative_bias=False,
        local_window=1,
        state_size=source.state_size,
        recurrent_discretization="euler",
        norm_type="rms_norm",
        gate_activation="silu",
        value_size=inner,
        short_conv_size=source.conv_kernel,
        recurrent_decay="channel",
        recurrent_dt_rank=source.time_step_rank,
        tie_word_embeddings=source.tie_word_embeddings,
        **_common(source),
    )


def _linear(weights: dict, target: str, source: dict, name: str, transpose: bool = False):
    """`target.weight` and `target.bias` from the source's `name.weight` / `name.bias` (a missing bias: 0)."""
    weight = source[f"{name}.weight"]
    weights[f"{target}.weight"] = weight.T if transpose else weight
    bias = source.get(f"{name}.bias")
    weights[f"{target}.bias"] = bias if bias is not None else weight.new_zeros(weight.shape[1 if transpose else 0])


def _norm(weights: dict, target: str, source: dict, name: str):
    weights[f"{target}.weight"] = source[f"{name}.weight"]
    if f"{name}.bias" in source:
        weights[f"{target}.bias"] = source[f"{name}.bias"]


def _gates(weights: dict, layer: str, families: list[str], exact: dict[str, tuple], size: int, hidden: int):
    """The gate of every family: `exact[family] = (weight [V, D], bias [V])` for the source's families, zeros (a
    closed gate) for the relaxed ones."""
    rows = [exact.get(family, (torch.zeros(size, hidden), torch.zeros(size))) for family in families]
    weights[f"{layer}.mixer.gate.weight"] = torch.cat([weight for weight, _ in rows])
    weights[f"{layer}.mixer.gate.bias"] = torch.cat([bias for _, bias in rows])


def _constant_gate(size: int, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear gate of exactly 1: weight 0, bias 1."""
    return torch.zeros(size, hidden), torch.ones(size)


def bert_weights(source: dict, config: ITNetConfig, trunk: str, prefix: str) -> dict:
    weights, D = {}, config.hidden_size
    emb = f"{trunk}text_embeddings"
    weights[f"{emb}.word_embeddings.weight"] = source[f"{prefix}embeddings.word_embeddings.weight"]
    weights[f"{emb}.position_embeddings.weight"] = source[f"{prefix}embeddings.position_embeddings.weight"]
    weights[f"{emb}.token_type_embeddings.weight"] = source[f"{prefix}embeddings.token_type_embeddings.weight"]
    _norm(weights, f"{emb}.norm", source, f"{prefix}embeddings.LayerNorm")
    for i in range(config.num_hidden_layers):
        src, dst = f"{prefix}encoder.layer.{i}.", f"{trunk}layers.{i}"
        attention = f"{src}attention.self."
        weights[f"{dst}.mixer.branches.softmax.query_key.weight"] = torch.cat(
            [source[f"{attention}query.weight"], source[f"{attention}key.weight"]]
        )
        weights[f"{dst}.mixer.branches.softmax.query_key.bias"] = torch.cat(
            [source[f"{attention}query.bias"], source[f"{attention}key.bias"]]
        )
        _linear(weights, f"{dst}.mixer.value", source, f"{attention}value")
        _linear(weights, f"{dst}.mixer.output", source, f"{src}attention.output.dense")
        _norm(weights, f"{dst}.mixer_norm", source, f"{src}attention.output.LayerNorm")
        _linear(weights, f"{dst}.ffn.fc1", source, f"{src}intermediate.dense")
        _linear(weights, f"{dst}.ffn.fc2", source, f"{src}output.dense")
        _norm(weights, f"{dst}.ffn_norm", source, f"{src}output.LayerNorm")
        _gates(weights, dst, config.kernel_families, {"softmax": _constant_gate(D, D)}, D, D)
    if config.pooler_activation:
        _linear(weights, f"{trunk}pooler", source, f"{prefix}pooler.dense")
    if "classifier.weight" in source:
        _linear(weights, "classifier", source, "classifier")
    if "cls.predictions.decoder.weight" in source:
        _linear(weights, "lm_head.dense", source, "cls.predictions.transform.dense")
        _norm(weights, "lm_head.norm", source, "cls.predictions.transform.LayerNorm")
        weights["lm_head.decoder.weight"] = source["cls.predictions.decoder.weight"]
        weights["lm_head.decoder.bias"] = source.get(
            "cls.predictions.decoder.bias", source.get("cls.predictions.bias")
        )
    return weights


def vit_weights(source: dict, config: ITNetConfig, trunk: str, prefix: str) -> dict:
    weights, D = {}, config.hidden_size
    emb = f"{trunk}image_embeddings"
    weights[f"{emb}.cls_token"] = source[f"{prefix}embeddings.cls_token"]
    weights[f"{emb}.position_embeddings"] = source[f"{prefix}embeddings.position_embeddings"]
    _linear(weights, f"{emb}.projection", source, f"{prefix}embeddings.patch_embeddings.projection")
    for i in range(config.num_hidden_layers):
        src, dst = f"{prefix}layers.{i}.", f"{trunk}layers.{i}"
        weights[f"{dst}.mixer.branches.softmax.query_key.weight"] = torch.cat(
            [source[f"{src}attention.q_proj.weight"], source[f"{src}attention.k_proj.weight"]]
        )
        weights[f"{dst}.mixer.branches.softmax.query_key.bias"] = torch.cat(
            [source.get(f"{src}attention.{p}_proj.bias", torch.zeros(D)) for p in ("q", "k")]
        )
        _linear(weights, f"{dst}.mixer.value", source, f"{src}attention.v_proj")
        _linear(weights, f"{dst}.mixer.output", source, f"{src}attention.o_proj")
        _norm(weights, f"{dst}.mixer_norm", source, f"{src}layernorm_before")
        _linear(weights, f"{dst}.ffn.fc1", source, f"{src}mlp.fc1")
        _linear(weights, f"{dst}.ffn.fc2", source, f"{src}mlp.fc2")
        _norm(weights, f"{dst}.ffn_norm", source, f"{src}layernorm_after")
        _gates(weights, dst, config.kernel_families, {"softmax": _constant_gate(D, D)}, D, D)
    _norm(weights, f"{trunk}norm", source, f"{prefix}layernorm")
    if config.pooler_activation:
        _linear(weights, f"{trunk}pooler", source, f"{prefix}pooler.dense")
    if "classifier.weight" in source:
        _linear(weights, "classifier", source, "classifier")
    return weights


def gpt2_weights(source: dict, config: ITNetConfig, trunk: str, prefix: str) -> dict:
    weights, D = {}, config.hidden_size
    weights[f"{trunk}text_embeddings.word_embeddings.weight"] = source[f"{prefix}wte.weight"]
    weights[f"{trunk}text_embeddings.position_embeddings.weight"] = source[f"{prefix}wpe.weight"]
    for i in range(config.num_hidden_layers):
        src, dst = f"{prefix}h.{i}.", f"{trunk}layers.{i}"
        qkv_weight, qkv_bias = (
            source[f"{src}attn.c_attn.weight"].T,
            source[f"{src}attn.c_attn.bias"],
        )  # Conv1D: [in, out]
        weights[f"{dst}.mixer.branches.softmax.query_key.weight"] = qkv_weight[: 2 * D]
        weights[f"{dst}.mixer.branches.softmax.query_key.bias"] = qkv_bias[: 2 * D]
        weights[f"{dst}.mixer.value.weight"], weights[f"{dst}.mixer.value.bias"] = (
            qkv_weight[2 * D :],
            qkv_bias[2 * D :],
        )
        _linear(weights, f"{dst}.mixer.output", source, f"{src}attn.c_proj", transpose=True)
        _norm(weights, f"{dst}.mixer_norm", source, f"{src}ln_1")
        _linear(weights, f"{dst}.ffn.fc1", source, f"{src}mlp.c_fc", transpose=True)
        _linear(weights, f"{dst}.ffn.fc2", source, f"{src}mlp.c_proj", transpose=True)
        _norm(weights, f"{dst}.ffn_norm", source, f"{src}ln_2")
        _gates(weights, dst, config.kernel_families, {"softmax": _constant_gate(D, D)}, D, D)
    _norm(weights, f"{trunk}norm", source, f"{prefix}ln_f")
    weights["lm_head.weight"] = source.get("lm_head.weight", source[f"{prefix}wte.weight"])
    return weights


def mamba_weights(source: dict, config: ITNetConfig, trunk: str, prefix: str) -> dict:
    weights, D, V, W = {}, config.hidden_size, config.mixer_size, config.short_conv_size
    weights[f"{trunk}text_embeddings.word_embeddings.weight"] = source[f"{prefix}embeddings.weight"]
    for i in range(config.num_hidden_layers):
        src, dst = f"{prefix}layers.{i}.mixer.", f"{trunk}layers.{i}"
        in_weight = source[f"{src}in_proj.weight"]  # [2V, D]: x, then the gate's z
        in_bias = source.get(f"{src}in_proj.bias", torch.zeros(2 * V))
        weights[f"{dst}.mixer.value.weight"], weights[f"{dst}.mixer.value.bias"] = in_weight[:V], in_bias[:V]
        gate = (in_weight[V:], in_bias[V:])
        _gates(weights, dst, config.kernel_families, {"recurrent": gate, "local": gate}, V, D)
        table = torch.zeros(W, W, V)  # causal 1-D: row 0, tap δ at index δ; Conv1d tap k reads offset W − 1 − k
        table[0] = source[f"{src}conv1d.weight"][:, 0].T.flip(0)
        weights[f"{dst}.mixer.short_conv.table"] = table
        weights[f"{dst}.mixer.short_conv.bias"] = source.get(f"{src}conv1d.bias", torch.zeros(V))
        scan = f"{dst}.mixer.branches.recurrent"
        weights[f"{scan}.x_proj.weight"] = source[f"{src}x_proj.weight"]
        _linear(weights, f"{scan}.dt_proj", source, f"{src}dt_proj")
        weights[f"{scan}.A_log"] = source[f"{src}A_log"]
        weights[f"{dst}.mixer.branches.local.table"] = source[f"{src}D"].view(1, 1, V)
        _linear(weights, f"{dst}.mixer.output", source, f"{src}out_proj")
        _norm(weights, f"{dst}.mixer_norm", source, f"{prefix}layers.{i}.norm")
    _norm(weights, f"{trunk}norm", source, f"{prefix}norm_f")
    weights["lm_head.weight"] = source.get("lm_head.weight", source[f"{prefix}embeddings.weight"])
    return weights


def convert_to_itnet(model, relax: bool = False, max_position_embeddings: int = 2048):
    """The ITNet model computing the same function as `model`, a transformers `BertModel`,
    `BertForSequenceClassification`, `BertForMaskedLM`, `ViTModel`, `ViTForImageClassification`,
    `GPT2LMHeadModel` or `MambaForCausalLM` instance (see the module docstring for the mapping).

    Args:
        model: the source model (its weights are copied; it is not modified).
        relax: also build the other kernel families (`RELAXED_FAMILIES`) with closed gates: still the same function,
            and fine-tuning can open them.
        max_position_embeddings: the longest sequence of a converted Mamba (which has no such limit).

    Returns:
        the ITNet model (`ITNetModel`, `ITNetForSequenceClassification`, `ITNetForMaskedLM`,
        `ITNetForImageClassification` or `ITNetForCausalLM`), in eval mode and the source's dtype.

    Raises:
        ValueError: for other source classes or configurations ITNet does not contain exactly, naming what is
            supported.
    """
    name = type(model).__name__
    if name not in SUPPORTED:
        _unsupported(f"Cannot convert {name}.")
    family, itnet_class, modalities = SUPPORTED[name]
    source = {key: value.detach().float() for key, value in model.state_dict().items()}
    base = getattr(model, "base_model_prefix", "")
    prefix = "" if itnet_class is ITNetModel else f"{base}."
    has_pooler = any(key.startswith(f"{prefix}pooler.") for key in source)
    families = EXACT_FAMILIES[family] + (RELAXED_FAMILIES[family] if relax else [])
    config = {
        "bert": lambda: bert_config(model.config, has_pooler, families),
        "vit": lambda: vit_config(model.config, has_pooler, families),
        "gpt2": lambda: gpt2_config(model.config, families),
        "mamba": lambda: mamba_config(model.config, families, max_position_embeddings),
    }[family]()
    itnet = itnet_class(config, modalities=modalities) if modalities else itnet_class(config)
    trunk = "" if itnet_class is ITNetModel else "itnet."
    weights = {"bert": bert_weights, "vit": vit_weights, "gpt2": gpt2_weights, "mamba": mamba_weights}[family](
        source, config, trunk, prefix
    )
    state = itnet.state_dict()
    unknown = sorted(set(weights) - set(state))
    mismatched = [k for k in weights if k in state and tuple(weights[k].shape) != tuple(state[k].shape)]
    if unknown or mismatched:
        raise RuntimeError(f"Conversion of {name} produced unexpected tensors {unknown} or shapes {mismatched}.")
    relaxed = tuple(f"mixer.branches.{f}." for f in RELAXED_FAMILIES[family] if relax)
    missing = [k for k in state if k not in weights and not any(r in k for r in relaxed)]
    if missing:
        raise RuntimeError(f"Conversion of {name} left parameters without a source value: {missing[:5]}.")
    itnet.load_state_dict({**state, **weights})
    return itnet.to(next(model.parameters()).dtype).eval()


def random_inputs(model, batch: int = 3, length: int = 11, seed: int = 0) -> dict:
    """Inputs to compare a source model and its conversion: text ids with the last row right-padded (3 pads), or
    images at the configured size."""
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    if hasattr(config, "image_size"):
        size = config.image_size
        return {"pixel_values": torch.randn(batch, config.num_channels, size, size, generator=generator)}
    length = min(length, getattr(config, "max_position_embeddings", getattr(config, "n_positions", length)))
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[-1, -3:] = 0
    input_ids = torch.randint(0, config.vocab_size, (batch, length), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@torch.no_grad()
def max_difference(source, itnet, inputs: dict | None = None) -> float:
    """Largest absolute difference between the two models' outputs (logits, or hidden states and pooled output) on
    `inputs` (default `random_inputs`), over the real (unpadded) tokens."""
    inputs = inputs or random_inputs(source)
    source.eval(), itnet.eval()
    expected, got = source(**inputs), itnet(**inputs)
    mask = inputs.get("attention_mask")
    differences = []
    for key in ("logits", "last_hidden_state", "pooler_output"):
        a, b = getattr(expected, key, None), getattr(got, key, None)
        if a is None or b is None:
            continue
        difference = (a.float() - b.float()).abs()
        if mask is not None and difference.ndim == 3:
            difference = difference[mask.bool()]
        differences.append(difference.max().item())
    if not differences:
        raise ValueError(f"No comparable outputs between {type(source).__name__} and {type(itnet).__name__}.")
    return max(differences)


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="a folder or Hub id of a BERT, ViT, GPT-2 or Mamba model")
    parser.add_argument("--output", required=True, help="folder for the ITNet checkpoint")
    parser.add_argument(
        "--architecture", help=f"source class to load, one of {list(SUPPORTED)} (default: the config's)"
    )
    parser.add_argument("--num_labels", type=int, help="labels of a classification head (a new classifier)")
    parser.add_argument("--relax", action="store_true", help="also build the other kernel families, gates closed")
    parser.add_argument("--max_position_embeddings", type=int, default=2048, help="longest sequence (Mamba only)")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest accepted difference on random inputs")
    args = parser.parse_args(argv)

    config = transformers.AutoConfig.from_pretrained(args.source)
    architecture = args.architecture or (config.architectures or [None])[0]
    if architecture not in SUPPORTED:
        _unsupported(f"The source's architecture is {architecture!r}; pass --architecture.")
    kwargs = {} if args.num_labels is None else {"num_labels": args.num_labels}
    source = getattr(transformers, architecture).from_pretrained(args.source, **kwargs).eval()
    itnet = convert_to_itnet(source, relax=args.relax, max_position_embeddings=args.max_position_embeddings)
    difference = max_difference(source, itnet)
    print(f"{architecture} -> {type(itnet).__name__}: max |difference| on random inputs = {difference:.3g}")
    if not difference <= args.atol:
        raise SystemExit(f"The conversion differs by {difference:.3g} > --atol {args.atol}; nothing saved.")
    output = Path(args.output)
    itnet.save_pretrained(output)
    for loader in (transformers.AutoTokenizer, transformers.AutoImageProcessor):
        try:
            loader.from_pretrained(args.source).save_pretrained(output)
        except (OSError, ValueError, KeyError):
            continue
    print(f"saved {output}")
    return difference


if __name__ == "__main__":
    main()
