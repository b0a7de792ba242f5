"""Profile one training step of the shared ITNet preset at the comparison's scale (`compare_specialized.py`'s task,
batch and model), on one thread: the step time, then `torch.profiler`'s operators by self CPU time.

    python benchmarks/profile_step.py --task images > benchmarks/results/profile_step_images.log

`--overrides` takes a JSON of `ITNetConfig` fields over the preset, as `compare_specialized.py --overrides`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

import specialized_models
from specialized_models import TASKS, make_batch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="images", choices=list(TASKS))
    parser.add_argument("--preset", default="itnet-unified")
    parser.add_argument("--overrides", type=json.loads, default={})
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    specialized_models.SHARED_ITNET.update({"preset": args.preset, "overrides": args.overrides})
    task = TASKS[args.task]()
    model = task.itnet().train()
    data = task.load(task.batch_size, True)
    batch = make_batch(data["train"], torch.arange(task.batch_size), data.get("pad_token_id"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    shapes = {key: list(value.shape) for key, value in batch.items()}
    print(f"{args.task}: {args.preset} {args.overrides}, inputs {shapes}, torch {torch.__version__}, 1 thread")
    print(f"{(time.perf_counter() - start) / args.steps * 1e3:.1f} ms per training step (mean of {args.steps})")
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(3):
            step()
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
