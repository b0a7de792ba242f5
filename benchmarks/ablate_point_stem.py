"""The per-point MLP stem (`point_stem_size`) on the point-cloud task: none, 16 and 64 wide, at learning rates 1e-3
and 3e-3, mean pooling without the readout token; ITNet only, the short budget (100 steps), seed 0, validation.

    python benchmarks/ablate_point_stem.py > benchmarks/results/ablate_point_stem.log

Prints one line per run: stem, learning rate, validation accuracy, final training loss, validation curve.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_specialized import BUDGETS, train_job

BASE = {"modality_pooling": {"points": "mean"}, "point_cls_token": False}


def run_points(name: str, overrides: dict, learning_rate: float, label_width: int = 8) -> None:
    """Train `itnet-unified` with `overrides` on the points task (short budget, seed 0) and print its line."""
    job = {"task": "points", "itnet": {"preset": "itnet-unified", "overrides": overrides},
           "steps": BUDGETS["short"]["points"], "batch_size": 32, "quick": False, "budget": "short",
           "model": "ITNet", "learning_rate": learning_rate, "seed": 0, "want_test": False}  # fmt: skip
    r = train_job(job)
    curve = " ".join(f"{step}:{value:.3f}" for step, value in r["curve"])
    print(f"{name:{label_width}s} lr {learning_rate:g} validation {r['validation']:.4f} "
          f"loss {r['final_train_loss']:.3f} curve {curve}", flush=True)  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name, extra in [("none", {}), ("stem=64", {"point_stem_size": 64}), ("stem=16", {"point_stem_size": 16})]:
        for lr in (1e-3, 3e-3):
            run_points(name, {**BASE, **extra}, lr)
