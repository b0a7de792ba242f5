"""The unconstrained MLP kernel: tiled kernel fusion vs the materialised kernel, and the Monte Carlo estimator.

    python benchmarks/mlp_kernel.py [--lengths 256 512 1024 2048 4096] [--naive_max_length 2048]
        [--output benchmarks/results/mlp_kernel]

Part 1, scaling: forward + backward time and peak memory (RSS growth of a fresh forked child) of
`mlp_kernel_transform` (tiles of 128, recomputed in backward), `mlp_kernel_transform_naive` (the `[B, N, N, H]`
kernel materialised) and `monte_carlo_transform` with M = 32 samples, batch 1, 4 heads, kernel MLP width 64.

Part 2, the estimator: the variance of `monte_carlo_transform` around its mean over 400 draws, for
M = 4, 16, 64, 256 at N = 512, against the exact tiled value; unbiasedness shows as |mean − exact| shrinking like
the standard error, and the variance as ∝ 1/M.

Writes `<output>_scaling.csv`, `<output>_variance.csv` and `<output>.png`.
"""

import argparse
import csv
import math
import multiprocessing as mp
import resource
import time
from pathlib import Path

import torch
from torch import nn

from modeling_itnet.kernels_itnet import mlp_kernel_transform, mlp_kernel_transform_naive, monte_carlo_transform

HEADS, WIDTH, HIDDEN, SAMPLES = 4, 16, 64, 32


class Kernel(nn.Module):
    """`K_h = W_2 gelu(W_p γ(δ) + a_i + b_j)`: the shape of `ITNetMLPKernelBranch.kernel_fn`."""

    def __init__(self):
        super().__init__()
        self.position = nn.Linear(1, HIDDEN)
        self.out = nn.Linear(HIDDEN, HEADS)

    def forward(self, offsets, left_i, right_j):
        return self.out(nn.functional.gelu(self.position(offsets) + left_i + right_j))


def inputs(length: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    positions = torch.arange(length, dtype=torch.float32).view(1, length, 1) / length
    left = torch.randn(1, length, HIDDEN, generator=gen) * 0.5
    right = torch.randn(1, length, HIDDEN, generator=gen) * 0.5
    value = torch.randn(1, HEADS, length, WIDTH, generator=gen)
    log_proposal = torch.randn(1, length, generator=gen)
    return positions, left, right, value, log_proposal


def run_once(name, length, queue):
    torch.manual_seed(0)
    kernel = Kernel()
    positions, left, right, value, log_proposal = inputs(length)
    value.requires_grad_(True)
    if name == "tiled":
        fn = lambda: mlp_kernel_transform(positions, left, right, value, kernel, tile_size=128)
    elif name == "naive":
        fn = lambda: mlp_kernel_transform_naive(positions, left, right, value, kernel)
    else:
        fn = lambda: monte_carlo_transform(positions, left, right, value, kernel, log_proposal, SAMPLES)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn().sum().backward()
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    start = time.perf_counter()
    fn().sum().backward()
    queue.put((time.perf_counter() - start, peak_mb))


def measure(name, length):
    context = mp.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=run_once, args=(name, length, queue))
    process.start()
    process.join()
    return queue.get() if process.exitcode == 0 else (math.nan, math.nan)


def variance_table(length=512, draws=400):
    torch.manual_seed(0)
    kernel = Kernel()
    positions, left, right, value, log_proposal = inputs(length)
    with torch.no_grad():
        exact = mlp_kernel_transform(positions, left, right, value, kernel)
        rows = []
        for samples in (4, 16, 64, 256):
            gen = torch.Generator().manual_seed(samples)
            estimates = torch.stack(
                [
                    monte_carlo_transform(positions, left, right, value, kernel, log_proposal, samples, generator=gen)
                    for _ in range(draws)
                ]
            )
            variance = estimates.var(dim=0).mean().item()
            bias = (estimates.mean(dim=0) - exact).abs().mean().item()
            standard_error = (estimates.var(dim=0) / draws).sqrt().mean().item()
            rows.append(
                {
                    "samples": samples,
                    "variance": variance,
                    "mean_abs_bias": bias,
                    "mean_standard_error": standard_error,
                }
            )
            print(
                f"M = {samples:>4}: variance {variance:.3e}, M x variance {samples * variance:.3e}, |mean - exact| {bias:.2e} (standard error {standard_error:.2e})",
                flush=True,
            )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--naive_max_length", type=int, default=2048)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/mlp_kernel"))
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, {HEADS} heads, value width {WIDTH}, kernel MLP width {HIDDEN}"
    )
    scaling = []
    for name in ("tiled", "naive", "monte-carlo"):
        for length in args.lengths:
            if name == "naive" and length > args.naive_max_length:
                continue
            seconds, peak_mb = measure(name, length)
            scaling.append({"operator": name, "length": length, "seconds": seconds, "peak_mb": peak_mb})
            print(f"{name:>12} N={length:>5}: {seconds:8.3f} s  peak {peak_mb:8.1f} MB", flush=True)
    variance = variance_table()

    with open(f"{args.output}_scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["operator", "length", "seconds", "peak_mb"])
        writer.writeheader()
        writer.writerows(scaling)
    with open(f"{args.output}_variance.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["samples", "variance", "mean_abs_bias", "mean_standard_error"])
        writer.writeheader()
        writer.writerows(variance)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name in dict.fromkeys(r["operator"] for r in scaling):
        points = [r for r in scaling if r["operator"] == name]
        axes[0].loglog([p["length"] for p in points], [p["seconds"] for p in points], marker="o", label=name)
        axes[1].loglog([p["length"] for p in points], [max(p["peak_mb"], 0.1) for p in points], marker="o", label=name)
    axes[0].set(xlabel="N", ylabel="forward + backward (s)", title="time")
    axes[1].set(xlabel="N", ylabel="peak RSS growth (MB)", title="memory")
    axes[2].loglog([r["samples"] for r in variance], [r["variance"] for r in variance], marker="o", label="variance")
    axes[2].loglog(
        [r["samples"] for r in variance], [r["mean_abs_bias"] for r in variance], marker="s", label="|mean − exact|"
    )
    axes[2].set(xlabel="samples M", title="Monte Carlo estimator (N = 512, 400 draws)")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{args.output}.png", dpi=120)


if __name__ == "__main__":
    main()
