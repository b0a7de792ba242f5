"""How close does a small causal ITNet get to a GRU it cannot represent exactly? (A benchmark, not a test.)

    python benchmarks/fit_gru.py [--steps 1500] [--hidden 32] [--length 64] [--output benchmarks/results/fit_gru]

A GRU's gates read its own state, so it is not an integral transform (see `special_cases_itnet`). This script
takes a randomly initialised `nn.GRU` (the teacher), feeds it random input sequences and trains causal ITNet
operators to reproduce its output sequence (mean squared error, Adam), for:
- `itnet-recurrent`: two pre-norm blocks of `recurrent` + `local` kernels (selective state space + short conv);
- `itnet-mixed`: two blocks of `recurrent` + `local` + `spectral` + `low_rank`;
- `minGRU` exact-form baseline: the closest exact special case, a single `mixer_from_mingru`-shaped operator
  trained from scratch.
It reports the relative error ‖ŷ − y‖² / ‖y − ȳ‖² (1 = predicting the mean, 0 = exact) on held-out sequences
every 100 steps, writes `<output>.csv` and a PNG of the curves.
"""

import argparse
import csv
from pathlib import Path

import torch
from torch import nn

from modeling_itnet.layers_itnet import ITNetMixer
from modeling_itnet.special_cases_itnet import MinGRU, mixer_from_mingru


class Student(nn.Module):
    """Input projection, `depth` pre-norm mixer blocks, output projection: `[B, N, I] → [B, N, H]`."""

    def __init__(self, inputs: int, hidden: int, families: list[str], depth: int = 2):
        super().__init__()
        self.embed = nn.Linear(inputs, hidden)
        self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(depth)])
        self.mixers = nn.ModuleList(
            [
                ITNetMixer(hidden, 4, families, is_causal=True, state_size=16, kernel_mlp_size=32, num_frequencies=8)
                for _ in range(depth)
            ]
        )
        self.head = nn.Linear(hidden, hidden)

    def forward(self, x):
        h = self.embed(x)
        length = x.shape[1]
        for norm, mixer in zip(self.norms, self.mixers):
            h = h + mixer(norm(h), None, (length,), (float(length),))
        return self.head(h)


class MinGRUStudent(nn.Module):
    def __init__(self, inputs: int, hidden: int):
        super().__init__()
        self.mixer = mixer_from_mingru(MinGRU(inputs, hidden))

    def forward(self, x):
        return self.mixer(x, None, (x.shape[1],), (float(x.shape[1]),))


def relative_error(prediction, target):
    return (((prediction - target) ** 2).sum() / ((target - target.mean(dim=(0, 1))) ** 2).sum()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/fit_gru"))
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    teacher = nn.GRU(args.inputs, args.hidden, batch_first=True)
    for p in teacher.parameters():
        p.requires_grad_(False)
    held_out = torch.randn(256, args.length, args.inputs)
    held_out_target = teacher(held_out)[0]
    students = {
        "itnet-recurrent": Student(args.inputs, args.hidden, ["recurrent", "local"]),
        "itnet-mixed": Student(args.inputs, args.hidden, ["recurrent", "local", "spectral", "low_rank"]),
        "minGRU (exact form)": MinGRUStudent(args.inputs, args.hidden),
    }
    rows = []
    for name, student in students.items():
        torch.manual_seed(1)
        optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
        for step in range(1, args.steps + 1):
            x = torch.randn(args.batch, args.length, args.inputs)
            loss = nn.functional.mse_loss(student(x), teacher(x)[0])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            if step % 100 == 0 or step == 1:
                with torch.no_grad():
                    error = relative_error(student(held_out), held_out_target)
                rows.append({"model": name, "step": step, "relative_error": error})
                print(f"{name:>20} step {step:>5}  held-out relative error {error:.4f}", flush=True)
    with open(args.output.with_name(args.output.name + ".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["model", "step", "relative_error"])
        writer.writeheader()
        writer.writerows(rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in students:
        points = [(r["step"], r["relative_error"]) for r in rows if r["model"] == name]
        ax.semilogy([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    ax.set(xlabel="training step", ylabel="held-out relative error", title=f"fitting a GRU (hidden {args.hidden})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.output.with_name(args.output.name + ".png"), dpi=120)


if __name__ == "__main__":
    main()
