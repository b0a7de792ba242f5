"""One layer of ITNet against one layer of the peers a user would pick, through their own transformers classes, at
the same width: forward + backward time and peak memory, every row of a length measured in the same run.

    python benchmarks/peers.py                                   # CPU, width 256, N from 512 to 16K
    python benchmarks/peers.py --lengths 64 --batch 32 --width 64 --output benchmarks/results/peers_tiny
    python benchmarks/peers.py --device cuda                     # the same on a GPU (CSV marked with its name)

Models (`--models`), each `[B, N, D] → [B, N, D]` with its own feed-forward block where its architecture has one:
- `itnet`: `ITNetLayer` of the default preset's families (`spectral` + `low_rank`), FFN 4D;
- `itnet-unified`: `ITNetLayer` of the `itnet-unified` preset's families (`spectral` + `local` + `low_rank`), FFN 4D;
- `bert`: `BertLayer`, SDPA attention (`attn_implementation="sdpa"`), FFN 4D;
- `fnet`: `FNetLayer`, parameter-free 2-D FFT mixing, FFN 4D: the floor of an FFT mixer;
- `mamba`: `MambaBlock` (transformers' own; on CPU its sequential reference scan, as transformers runs it without
  the CUDA kernels), no FFN;
- `mamba2`: `Mamba2Block` (transformers' torch path, chunked), no FFN;
- `fno`: neuraloperator's `SpectralConv` (16 modes) with a skip projection, FFN 4D (`FNOLayer`; needs
  `pip install neuraloperator`, which the package does not depend on).
Each (model, N) runs in a fresh forked child: one warm-up pass (whose resident-set growth is the CPU peak memory;
on CUDA `max_memory_allocated`), then the best of `--repeats` timed passes. A model slower than `--budget_s` per pass
at some N is not run at larger N (its row says so). Writes `<output>.csv` (seconds, peak MB, ratio to ITNet) and
a log-log `<output>.png`.
"""

import argparse
import csv
import importlib.util
import math
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ["itnet", "itnet-unified", "bert", "fnet", "mamba", "mamba2", "fno"]
RESULTS = Path(__file__).resolve().parent / "results"


def make(name: str, width: int, heads: int) -> torch.nn.Module:
    """One layer of `name` at width `width`."""
    if name.startswith("itnet"):
        from modeling_itnet import ITNetConfig
        from modeling_itnet.modeling_itnet import ITNetLayer

        families = ["spectral", "local", "low_rank"] if name == "itnet-unified" else ["spectral", "low_rank"]
        config = ITNetConfig(hidden_size=width, num_attention_heads=heads, intermediate_size=4 * width,
                             kernel_families=families, max_position_embeddings=1 << 16)  # fmt: skip
        layer = ITNetLayer(config)
        layer.grid = lambda n: {"grid_shape": (n,), "length_scale": (float(n),)}
        return layer
    if name == "bert":
        from transformers import BertConfig
        from transformers.models.bert.modeling_bert import BertLayer

        config = BertConfig(hidden_size=width, num_attention_heads=heads, intermediate_size=4 * width,
                            attn_implementation="sdpa", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
        return BertLayer(config)
    if name == "fnet":
        from transformers import FNetConfig
        from transformers.models.fnet.modeling_fnet import FNetLayer

        return FNetLayer(FNetConfig(hidden_size=width, intermediate_size=4 * width, hidden_dropout_prob=0.0))
    if name == "mamba":
        from transformers import MambaConfig
        from transformers.models.mamba.modeling_mamba import MambaBlock

        return MambaBlock(MambaConfig(hidden_size=width, state_size=16, intermediate_size=2 * width), layer_idx=0)
    if name == "mamba2":
        from transformers import Mamba2Config
        from transformers.models.mamba2.modeling_mamba2 import Mamba2Block

        config = Mamba2Config(hidden_size=width, num_heads=2 * width // 32, head_dim=32, state_size=16, n_groups=1,
                              expand=2, chunk_size=64)  # fmt: skip
        return Mamba2Block(config, layer_idx=0)
    if name == "fno":
        return FNOLayer(width, FNO_MODES)
    raise ValueError(f"Unknown model {name!r}; expected one of {MODELS}.")


FNO_MODES = 16


class FNOLayer(torch.nn.Module):
    """One FNO layer as neuraloperator builds it, in the same pre-norm block as the others: `x + W_skip h +
    SpectralConv(h)` (`h = LayerNorm(x)`; neuraloperator's `SpectralConv`, a dense `D x D` complex weight on each of
    the lowest `FNO_MODES` Fourier modes), GELU, then a feed-forward block of 4D. `[B, N, D] → [B, N, D]`."""

    def __init__(self, width: int, modes: int):
        super().__init__()
        try:
            from neuralop.layers.spectral_convolution import SpectralConv
        except ImportError as error:
            raise ImportError("The `fno` row needs neuraloperator: `pip install neuraloperator`.") from error
        self.norm, self.ffn_norm = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.spectral = SpectralConv(width, width, n_modes=(modes,))
        self.skip = torch.nn.Linear(width, width)
        self.ffn = torch.nn.Sequential(
            torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width)
        )

    def forward(self, x):
        h = self.norm(x)
        x = x + torch.nn.functional.gelu(self.spectral(h.transpose(1, 2)).transpose(1, 2) + self.skip(h))
        return x + self.ffn(self.ffn_norm(x))


def run_once(name, width, heads, batch, length, repeats, device, queue):
    torch.manual_seed(0)
    module = make(name, width, heads).to(device)
    x = torch.randn(batch, length, width, device=device, requires_grad=True)

    def step():
        if name.startswith("itnet"):
            out = module(x, **module.grid(length))
        else:
            out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step()
    peak_mb = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    )
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    queue.put((min(times), peak_mb))


def measure(*args) -> tuple[float, float]:
    context = mp.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=run_once, args=(*args, queue))
    process.start()
    process.join()
    return queue.get() if process.exitcode == 0 else (math.nan, math.nan)


def plot(rows: list[dict], output: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in dict.fromkeys(r["model"] for r in rows):
        points = [r for r in rows if r["model"] == name and r["seconds"] == r["seconds"]]
        axes[0].loglog([r["length"] for r in points], [r["seconds"] for r in points], "o-", label=name)
        axes[1].loglog([r["length"] for r in points], [max(r["peak_mb"], 0.1) for r in points], "o-", label=name)
    axes[0].set(xlabel="tokens N", ylabel="forward + backward (s)", title="one layer, same width")
    axes[1].set(xlabel="tokens N", ylabel="peak memory (MB)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(output.with_name(output.name + ".png"), dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    available = [
        m for m in MODELS if m != "fno" or importlib.util.find_spec("neuralop")
    ]  # fno: an optional dependency
    parser.add_argument("--models", nargs="+", default=available, choices=MODELS)
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192, 16384])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget_s", type=float, default=60.0, help="skip larger N for a model slower than this")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, default=RESULTS / "peers")
    args = parser.parse_args()
    machine = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    rows, too_slow = [], set()
    for length in args.lengths:
        itnet = None
        for name in args.models:
            seconds, peak = (math.nan, math.nan)
            if name not in too_slow:
                seconds, peak = measure(name, args.width, args.heads, args.batch, length, args.repeats, args.device)
                if seconds > args.budget_s:
                    too_slow.add(name)
            itnet = seconds if name == "itnet" else itnet
            ratio = seconds / itnet if itnet else math.nan
            rows.append({"model": name, "length": length, "batch": args.batch, "width": args.width,
                         "seconds": seconds, "peak_mb": peak, "vs_itnet": ratio, "machine": machine})  # fmt: skip
            print(f"N={length:6d} {name:14s} {seconds:9.4f} s  {peak:8.1f} MB  {ratio:6.2f}x ITNet", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.with_name(args.output.name + ".csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.output)
    print(
        f"wrote {args.output.with_name(args.output.name + '.csv')} and {args.output.with_name(args.output.name + '.png')} ({machine})"
    )


if __name__ == "__main__":
    main()
