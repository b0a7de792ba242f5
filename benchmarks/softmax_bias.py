"""The `softmax` family's relative-position bias against plain SDPA: forward + backward of one `ITNetSoftmaxBranch`
(width 256, 4 heads of 64) on a 1-D sequence, without a bias, with the `"kernel_mlp"` bias (an `[H, N, N]` table
added to the scores) and with the `"fourier"` bias (folded into the queries and keys, `softmax_fourier_transform`) at
`R = softmax_bias_frequencies` of 4, 8 and 16. All settings of a shape are timed in interleaved rounds after one
warm-up (each round times every setting once), one thread: a time is the median over the rounds, a ratio the median
of the rounds' ratios to plain SDPA, so that a shared machine's drift cancels out of the ratios.

    python benchmarks/softmax_bias.py > benchmarks/results/softmax_bias.log

Prints one line per setting.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from modeling_itnet.branches_content_itnet import ITNetSoftmaxBranch
from modeling_itnet.branches_itnet import ITNetLayout


def one_step(branch, hidden, values, layout) -> float:
    start = time.perf_counter()
    branch(hidden, values, None, layout).sum().backward()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"softmax_bias: one ITNetSoftmaxBranch, width 256, 4 heads, forward + backward, {args.rounds} interleaved "
          f"rounds (median), 1 thread, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}")  # fmt: skip
    for batch, length in [(8, 512), (2, 2048)]:
        torch.manual_seed(0)
        branches = {
            "no bias": ITNetSoftmaxBranch(256, 256, 4, False, False, 8, 32, "gelu"),
            "kernel_mlp R =  8": ITNetSoftmaxBranch(256, 256, 4, False, True, 8, 32, "gelu"),
        }
        for frequencies in (4, 8, 16):
            branches[f"fourier    R = {frequencies:2d}"] = ITNetSoftmaxBranch(
                256, 256, 4, False, True, 16, 32, "gelu", bias_form="fourier", bias_frequencies=frequencies
            )
        hidden = torch.randn(batch, length, 256, requires_grad=True)
        values = torch.randn(batch, length, 256, requires_grad=True)
        layout = ITNetLayout(grid_shape=(length,), length_scale=(2048.0,))
        for branch in branches.values():
            one_step(branch, hidden, values, layout)
        times = {name: [] for name in branches}
        for _ in range(args.rounds):
            for name, branch in branches.items():
                times[name].append(one_step(branch, hidden, values, layout))
        for name, seconds in times.items():
            ratio = statistics.median(t / plain for t, plain in zip(seconds, times["no bias"]))
            print(f"{batch} x {length}: {name:18s} {statistics.median(seconds) * 1000:6.0f} ms  "
                  f"({ratio:.2f}x plain SDPA)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
