"""Generation speed: `generate()` of an ITNet causal LM per kernel family against GPT-2 with its `DynamicCache`, at
the same width, depth and vocabulary, at contexts of 256 to 16K tokens.

    python benchmarks/generation_speed.py                        # CPU, contexts 256 2048 16384
    python benchmarks/generation_speed.py --device cuda          # the same on a GPU (CSV marked with its name)

For each model and context `T`: a random prompt of `T` tokens, greedy `generate` of `1 + new` tokens with a
streamer that notes when each token comes out, the best of `--repeats`: the prefill is the time to the first new
token, the per-token latency the mean time between the first and the last, tokens per second its inverse. Models (`--models`): ITNet with one family each (`low_rank` and `recurrent` keep an O(1) state per token,
`ssm` too; `spectral` keeps the past values, O(t) per token) and the default preset's `spectral` + `low_rank`, and
GPT-2 (SDPA, `DynamicCache`: O(t) per token). Each (model, context) runs in a fresh forked child. Writes
`<output>.csv` and `<output>.png` (per-token latency against context, log-log).
"""

import argparse
import csv
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
ITNET_MODELS = {
    "itnet-low_rank": ["low_rank"],
    "itnet-recurrent": ["recurrent"],
    "itnet-ssm": ["ssm"],
    "itnet-spectral+low_rank": ["spectral", "low_rank"],
}
MODELS = [*ITNET_MODELS, "gpt2"]


def make(name: str, args, positions: int) -> torch.nn.Module:
    if name in ITNET_MODELS:
        from modeling_itnet import ITNetConfig, ITNetForCausalLM

        config = ITNetConfig(vocab_size=args.vocab, hidden_size=args.width, num_hidden_layers=args.layers,
                             num_attention_heads=args.heads, intermediate_size=4 * args.width, is_causal=True,
                             kernel_families=ITNET_MODELS[name], max_position_embeddings=positions)  # fmt: skip
        return ITNetForCausalLM(config)
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=args.vocab, n_embd=args.width, n_layer=args.layers, n_head=args.heads,
                        n_positions=positions, bos_token_id=1, eos_token_id=2, attn_implementation="sdpa")  # fmt: skip
    return GPT2LMHeadModel(config)


class Clock:
    """A `generate` streamer that notes the time of each `put`: the prompt first, then every new token."""

    def __init__(self):
        self.times = []

    def put(self, value):
        self.times.append(time.perf_counter())

    def end(self):
        pass


def timed_generate(model, prompt, new_tokens: int, repeats: int, device) -> tuple[float, float]:
    """`(prefill, per-token)` seconds, the best of `repeats`: the time to the first new token, and the mean time
    between the first and the last of the `new_tokens`."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        clock = Clock()
        start = time.perf_counter()
        model.generate(prompt, attention_mask=torch.ones_like(prompt), min_new_tokens=new_tokens,
                       max_new_tokens=new_tokens, do_sample=False, pad_token_id=0, streamer=clock)  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()  # the streamer's clock waits for nothing: on CUDA read it as a lower bound
        first, last = clock.times[1], clock.times[-1]
        best = min(best[0], first - start), min(best[1], (last - first) / (new_tokens - 1))
    return best


def measure(name: str, context: int, args, queue) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = make(name, args, context + args.new_tokens + 1).to(device).eval()
    prompt = torch.randint(1, args.vocab, (1, context), generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        timed_generate(model, prompt, 2, 1, device)  # warm-up
        prefill, per_token = timed_generate(model, prompt, 1 + args.new_tokens, args.repeats, device)
    queue.put({"model": name, "context": context, "parameters": sum(p.numel() for p in model.parameters()),
               "prefill_s": round(prefill, 5), "per_token_ms": round(per_token * 1e3, 4),
               "tokens_per_s": round(1.0 / per_token, 2)})  # fmt: skip


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == name]
        ax.plot([r["context"] for r in group], [r["per_token_ms"] for r in group], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("per-token latency of generate (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=MODELS, choices=MODELS)
    parser.add_argument("--contexts", nargs="*", type=int, default=[256, 2048, 16384])
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=str(RESULTS / "generation_speed"))
    args = parser.parse_args()
    output = Path(args.output)
    if args.device.startswith("cuda"):
        output = output.with_name(f"{output.name}_{torch.cuda.get_device_name().replace(' ', '_')}")
    rows = []
    context_mp = mp.get_context("fork")
    for context in args.contexts:
        for name in args.models:
            queue = context_mp.Queue()
            child = context_mp.Process(target=measure, args=(name, context, args, queue))
            child.start()
            row = queue.get()
            child.join()
            row["device"] = args.device if args.device == "cpu" else torch.cuda.get_device_name()
            rows.append(row)
            print(f"{name:24s} context {context:6d}  prefill {row['prefill_s']:8.3f} s  per token "
                  f"{row['per_token_ms']:8.2f} ms  ({row['tokens_per_s']:7.1f} tokens/s)  {row['parameters']:,} params",
                  flush=True)  # fmt: skip
            with open(output.with_name(output.name + ".csv"), "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    plot(rows, output.with_name(output.name + ".png"),
         f"generate(): width {args.width}, {args.layers} layers, {args.new_tokens} new tokens, {args.device}, "
         f"{args.threads} thread(s)")  # fmt: skip


if __name__ == "__main__":
    main()
