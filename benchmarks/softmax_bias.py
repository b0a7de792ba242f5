"""The `softmax` family's relative-position bias against plain SDPA: forward + backward of one `ITNetSoftmaxBranch`
(width 256, 4 heads of 64) on a 1-D sequence, without a bias, with the `"kernel_mlp"` bias (an `[H, N, N]` table
added to the scores) and with the `"fourier"` bias (folded into the queries and keys, `softmax_fourier_transform`),
at `R = softmax_bias_frequencies` of 4, 8 and 16. Median of `--repeats` timed runs after one warm-up, one thread.

    python benchmarks/softmax_bias.py > benchmarks/results/softmax_bias.log

Prints one line per setting with the time and its ratio to plain SDPA's.
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


def step_seconds(branch, batch: int, length: int, repeats: int) -> float:
    hidden = torch.randn(batch, length, 256, requires_grad=True)
    values = torch.randn(batch, length, 256, requires_grad=True)
    layout = ITNetLayout(grid_shape=(length,), length_scale=(2048.0,))
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        branch(hidden, values, None, layout).sum().backward()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"softmax_bias: one ITNetSoftmaxBranch, width 256, 4 heads, forward + backward, median of {args.repeats}, "
          f"1 thread, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}")  # fmt: skip
    for batch, length in [(8, 512), (2, 2048)]:
        torch.manual_seed(0)
        plain = step_seconds(ITNetSoftmaxBranch(256, 256, 4, False, False, 8, 32, "gelu"), batch, length, args.repeats)
        print(f"{batch} x {length}: no bias {plain * 1000:.0f} ms", flush=True)
        for frequencies in (4, 8, 16):
            for form in ("kernel_mlp", "fourier"):
                branch = ITNetSoftmaxBranch(
                    256, 256, 4, False, True, 16, 32, "gelu", bias_form=form, bias_frequencies=frequencies
                )
                seconds = step_seconds(branch, batch, length, args.repeats)
                print(f"{batch} x {length}: {form:10s} R = {frequencies:2d}  {seconds * 1000:.0f} ms  "
                      f"({seconds / plain:.2f}x plain SDPA)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
