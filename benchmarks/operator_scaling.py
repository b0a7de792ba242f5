"""Forward+backward time and peak memory of ITNet's token mixers against SDPA and a bare FFT convolution.

    python benchmarks/operator_scaling.py [--lengths 1024 2048 ... 65536] [--width 256] [--heads 4]
        [--repeats 3] [--sdpa_max_length 16384] [--output benchmarks/results/operator_scaling]

For each sequence length N (batch 1, width D), times one forward and backward pass of:
- `spectral`, `spectral-causal`: the spectral kernel family alone (kernel MLP + FFT transform), an `ITNetMixer`;
- `low_rank`, `low_rank-causal`: the low-rank content family alone;
- `itnet-mixer`: the default mixer (spectral + low-rank, gated), bidirectional;
- `sdpa`: `torch.nn.functional.scaled_dot_product_attention` with the same width and heads (plus the same
  q/k/v/output projections), the quadratic baseline;
- `fft-conv`: a bare depthwise FFT convolution of the same shape with a fixed kernel, the floor any FFT operator
  pays;
- `projections`: the default mixer's dense layers alone (values, gates, queries/keys, output; no transform), the
  floor of any mixer with those projections;
- `spectral-transform`: the spectral family's transform alone, `ITNetSpectralBranch` (kernel MLP at every offset,
  decay window, FFT convolution), no projections: the operator against the bare FFT convolution.
Peak memory is the peak resident-set growth of a forked child running one pass (CPU has no allocator counters);
each configuration runs in a fresh child process. Writes `<output>.csv` and a log-log `<output>.png`.

`--malloc_mmap_threshold BYTES` re-runs the script under glibc's `MALLOC_MMAP_THRESHOLD_` and
`MALLOC_TRIM_THRESHOLD_` set to BYTES. By default glibc serves every allocation above 32 MB by a fresh `mmap`, so
each such temporary (at N = 16K and width 256, every tensor of `2N x 256` floats) pays its page faults again at
every pass; with a high threshold freed memory is reused, as with jemalloc or tcmalloc, which PyTorch's CPU
performance guide recommends. Every operator runs under the same setting.
"""

import argparse
import csv
import math
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import torch
from torch import nn

from modeling_itnet.branches_grid_itnet import ITNetSpectralBranch
from modeling_itnet.branches_itnet import ITNetLayout
from modeling_itnet.layers_itnet import ITNetMixer


class SDPABlock(nn.Module):
    """Multi-head softmax attention with the same projections as the mixer: `[B, N, D] → [B, N, D]`."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.output = nn.Linear(width, width)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.output(out.transpose(1, 2).reshape(batch, length, width))


class FFTConv(nn.Module):
    """Bare depthwise FFT convolution with a fixed (parameter) kernel, channels first, no masking, no kernel
    generation: `[B, N, D] → [B, N, D]`. The floor any FFT integral transform pays."""

    def __init__(self, width: int, length: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(width, 2 * length - 1) / length)

    def forward(self, x):
        length = x.shape[1]
        size = 2 ** math.ceil(math.log2(2 * length - 1))
        spectrum = torch.fft.rfft(x.transpose(1, 2), n=size) * torch.fft.rfft(
            self.kernel.roll(-(length - 1), -1), n=size
        )
        return torch.fft.irfft(spectrum, n=size)[..., :length].transpose(1, 2)


class Projections(nn.Module):
    """The default mixer's dense layers alone, same shapes (values `D`, two families' gates `2D`, the low-rank
    family's queries and keys `2D`, output `D`), with no transform between them: `[B, N, D] → [B, N, D]`."""

    def __init__(self, width: int):
        super().__init__()
        self.value, self.output = nn.Linear(width, width), nn.Linear(width, width)
        self.gate, self.query_key = nn.Linear(width, 2 * width), nn.Linear(width, 2 * width)

    def forward(self, x):
        side = (self.gate(x) + self.query_key(x)).unflatten(-1, (2, -1)).sum(-2)
        return self.output(self.value(x) + side)


def make(name: str, width: int, heads: int, length: int) -> nn.Module:
    if name == "sdpa":
        return SDPABlock(width, heads)
    if name == "fft-conv":
        return FFTConv(width, length)
    if name == "projections":
        return Projections(width)
    if name == "spectral-transform":
        return ITNetSpectralBranch(width, num_frequencies=16, kernel_mlp_size=64, activation="gelu", is_causal=False)
    families = {"spectral": ["spectral"], "low_rank": ["low_rank"], "itnet-mixer": ["spectral", "low_rank"]}
    base, causal = name.removesuffix("-causal"), name.endswith("-causal")
    return ITNetMixer(width, heads, families[base], causal, num_frequencies=16, kernel_mlp_size=64)


def run_once(name: str, width: int, heads: int, length: int, repeats: int, queue):
    torch.manual_seed(0)
    module = make(name, width, heads, length)
    x = torch.randn(1, length, width, requires_grad=True)

    def step():
        if name in ("sdpa", "fft-conv", "projections"):
            out = module(x)
        elif name == "spectral-transform":
            out = module(None, x, None, ITNetLayout((length,), (float(length),)))
        else:
            out = module(x, None, (length,), (float(length),))
        out.sum().backward()

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # warm-up, also the memory measurement
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    queue.put((min(times), peak_mb))


def measure(name, width, heads, length, repeats):
    queue = mp.get_context("fork").Queue()
    process = mp.get_context("fork").Process(target=run_once, args=(name, width, heads, length, repeats, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        return math.nan, math.nan
    return queue.get()


def plot(rows, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in dict.fromkeys(r["operator"] for r in rows):
        points = [(r["length"], r["seconds"], r["peak_mb"]) for r in rows if r["operator"] == name]
        lengths = [p[0] for p in points]
        axes[0].loglog(lengths, [p[1] for p in points], marker="o", label=name)
        axes[1].loglog(lengths, [max(p[2], 1e-1) for p in points], marker="o", label=name)
    axes[0].set(xlabel="sequence length N", ylabel="forward + backward (s)", title="time")
    axes[1].set(xlabel="sequence length N", ylabel="peak RSS growth (MB)", title="memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384, 32768, 65536])
    parser.add_argument(
        "--operators",
        nargs="+",
        default=[
            "fft-conv",
            "projections",
            "spectral-transform",
            "spectral",
            "spectral-causal",
            "low_rank",
            "low_rank-causal",
            "itnet-mixer",
            "sdpa",
        ],
    )
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sdpa_max_length", type=int, default=16384, help="skip SDPA above this length (quadratic)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/operator_scaling"))
    parser.add_argument("--malloc_mmap_threshold", type=int, default=0, help="bytes; 0 keeps glibc's default")
    args = parser.parse_args()
    if args.malloc_mmap_threshold and os.environ.get("MALLOC_MMAP_THRESHOLD_") != str(args.malloc_mmap_threshold):
        # glibc reads these at process start: run the script again under them
        threshold = str(args.malloc_mmap_threshold)
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=threshold, MALLOC_TRIM_THRESHOLD_=threshold)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    args.output.parent.mkdir(parents=True, exist_ok=True)

    rows = []
    malloc = f"MALLOC_MMAP_THRESHOLD_={args.malloc_mmap_threshold}" if args.malloc_mmap_threshold else "glibc default"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, width {args.width}, heads {args.heads}, batch 1, malloc: {malloc}"
    )
    print(f"{'operator':>16} {'N':>7} {'seconds':>9} {'peak MB':>9}")
    for name in args.operators:
        for length in args.lengths:
            if name == "sdpa" and length > args.sdpa_max_length:
                continue
            seconds, peak_mb = measure(name, args.width, args.heads, length, args.repeats)
            rows.append({"operator": name, "length": length, "seconds": seconds, "peak_mb": peak_mb})
            print(f"{name:>16} {length:>7} {seconds:>9.4f} {peak_mb:>9.1f}", flush=True)
    with open(args.output.with_name(args.output.name + ".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["operator", "length", "seconds", "peak_mb"])
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.output.with_name(args.output.name + ".png"))
    print(
        f"wrote {args.output.with_name(args.output.name + '.csv')} and {args.output.with_name(args.output.name + '.png')}"
    )


if __name__ == "__main__":
    main()
