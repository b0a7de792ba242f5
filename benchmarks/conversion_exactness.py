"""How exactly `convert_to_itnet` reproduces BERT, ViT, GPT-2 and Mamba: the max abs difference of the outputs
(logits; hidden states and pooled output for the bare models) on random inputs with a right-padded row, and whether
greedy generation of a left-padded batch gives the same tokens, for random-initialised transformers models at two
sizes, converted exactly and relaxed (`relax=True`), in fp32.

    python benchmarks/conversion_exactness.py            # writes benchmarks/results/conversion_exactness.csv
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_specialized import RESULTS, write_csv

from modeling_itnet.convert import SUPPORTED, convert_to_itnet, max_difference, random_inputs

SIZES = {  # hidden, layers, heads, feed-forward
    "small": (32, 2, 2, 37),
    "base-width": (256, 4, 4, 1024),
}


def build(name: str, size: str):
    hidden, layers, heads, ffn = SIZES[size]
    common = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
    }
    tokens = {"vocab_size": 1000, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    if name.startswith("Bert"):
        config = transformers.BertConfig(**common, vocab_size=1000, max_position_embeddings=128, num_labels=3)
    elif name.startswith("ViT"):
        config = transformers.ViTConfig(**common, image_size=32, patch_size=4, num_labels=10)
    elif name == "GPT2LMHeadModel":
        config = transformers.GPT2Config(
            n_embd=hidden, n_layer=layers, n_head=heads, n_inner=ffn, n_positions=128, **tokens
        )
    else:
        config = transformers.MambaConfig(hidden_size=hidden, num_hidden_layers=layers, state_size=16, **tokens)
    return getattr(transformers, name)(config).eval()


@torch.no_grad()
def same_generation(source, itnet) -> bool:
    input_ids = torch.randint(3, 1000, (3, 9), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :3] = attention_mask[2, :5] = 0
    options = {"attention_mask": attention_mask, "max_new_tokens": 16, "do_sample": False, "pad_token_id": 0}
    ids = input_ids.masked_fill(attention_mask == 0, 0)
    return torch.equal(source.generate(ids, **options), itnet.generate(ids, **options))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(RESULTS / "conversion_exactness.csv"))
    args = parser.parse_args()
    rows = []
    for size in SIZES:
        for name in SUPPORTED:
            torch.manual_seed(0)
            source = build(name, size)
            for relax in (False, True):
                start = time.perf_counter()
                itnet = convert_to_itnet(source, relax=relax)
                row = {
                    "source": name, "size": size, "relax": relax, "itnet": type(itnet).__name__,
                    "families": "+".join(itnet.config.kernel_families),
                    "source_parameters": source.num_parameters(), "itnet_parameters": itnet.num_parameters(),
                    "max_abs_difference": max_difference(source, itnet, random_inputs(source)),
                    "same_greedy_tokens": same_generation(source, itnet) if name.endswith("CausalLM") or
                    name == "GPT2LMHeadModel" else "",
                    "seconds": round(time.perf_counter() - start, 2),
                }  # fmt: skip
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_csv(Path(args.output), rows)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
