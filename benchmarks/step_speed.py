"""Training-step time of the shared ITNet preset against every baseline of `compare_specialized.py`, at the
comparison's scale (its tasks, batches and parameter-matched models), one thread, all models of a task timed in
the same process, alternating, so that the ratios share the machine's state; and each model's matrix arithmetic per
training step (`torch.utils.flop_counter`: matmuls, convolutions and attention, forward and backward), the floor
below which no constant-factor work takes a step, and the rate reached (GFLOP/s).

For each task: the models are built as the comparison builds them (`build_models`: ITNet, then each baseline at
ITNet's parameter count ±10%), trained on the same `--batches` batches of the task's training split (AdamW, the
comparison's clipping), `--warmup` steps first; each model's time is the median over `--rounds` rounds of
`--steps` steps. The ratio is ITNet's step time over the fastest baseline's (issue target: at most 1).

    python benchmarks/step_speed.py > benchmarks/results/step_speed.log
    python benchmarks/step_speed.py --compile --output benchmarks/results/step_speed_compiled   # every model compiled
    python benchmarks/step_speed.py --tasks images --overrides '{"patch_size": 7}' --output benchmarks/results/step_speed_images_patch7

`--compile` wraps every model, ITNet and baselines alike, in `torch.compile` (inductor, the default backend) before
the warm-up steps, which then include the compilation.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils import flop_counter

sys.path.insert(0, str(Path(__file__).resolve().parent))

import specialized_models
from compare_specialized import RESULTS, batch_order, build_models, train_step, write_csv
from specialized_models import TASKS, make_batch, split_size


def step_seconds(model, batches: list[dict], steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    start = time.perf_counter()
    for i in range(steps):
        train_step(model, optimizer, batches[i % len(batches)])
    return (time.perf_counter() - start) / steps


def lstm_flops(lstm: torch.nn.LSTM, inputs: torch.Tensor) -> int:
    """An `nn.LSTM`'s matrix arithmetic on `inputs` `[B, T, I]` (batch first), forward and backward (3x forward):
    per token, layer and direction the four gates' products `2 · 4H · (I + H)`. Its fused CPU kernel is one operator
    that `FlopCounterMode` does not count."""
    tokens, hidden, directions = inputs.shape[0] * inputs.shape[1], lstm.hidden_size, 1 + lstm.bidirectional
    width = lstm.input_size
    total = 0
    for _ in range(lstm.num_layers):
        total += directions * 2 * 4 * hidden * (width + hidden) * tokens
        width = directions * hidden
    return 3 * total


# SDPA's fused CPU kernels, which `FlopCounterMode` counts on GPUs only: the same formulas (every score of the [N, M]
# block, a causal mask included, as for the GPU kernels)
CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: (
        lambda query, key, value, *args, out_shape=None, **kwargs: flop_counter.sdpa_flop_count(query, key, value)
    ),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        lambda grad, query, key, value, *args, out_shape=None, **kwargs: flop_counter.sdpa_backward_flop_count(
            grad, query, key, value
        )
    ),
}


def step_gflop(model, batch: dict) -> float:
    """The matrix arithmetic of one training step (forward and backward), in GFLOP: `FlopCounterMode`'s count
    (matmuls, convolutions, attention, with `CPU_ATTENTION`) and the LSTMs' (`lstm_flops`)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)
    counted = []
    hooks = [module.register_forward_hook(lambda m, args, _: counted.append(lstm_flops(m, args[0])))
             for module in model.modules() if isinstance(module, torch.nn.LSTM)]  # fmt: skip
    with flop_counter.FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        train_step(model, optimizer, batch)
    for hook in hooks:
        hook.remove()
    return (counter.get_total_flops() + sum(counted)) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="torch.compile every model (inductor)")
    parser.add_argument("--overrides", type=json.loads, default={},
                        help='JSON of ITNetConfig fields over the shared preset, e.g. \'{"patch_size": 7}\'')  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS / "step_speed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    specialized_models.SHARED_ITNET["overrides"] = args.overrides
    compiled = ", every model compiled (inductor)" if args.compile else ""
    print(f"step_speed: torch {torch.__version__}, 1 thread, {args.rounds} rounds x {args.steps} steps (median)"
          f"{compiled}, ITNet overrides {args.overrides}")  # fmt: skip
    rows = []
    for name in args.tasks:
        task = TASKS[name]()
        data = task.load(args.batches * task.batch_size, True)
        pad = data.get("pad_token_id")
        order = batch_order(split_size(data["train"]), args.batches, task.batch_size, 0)
        batches = [make_batch(data["train"], index, pad) for index in order]
        models = {}
        for entry in build_models(task):
            torch.manual_seed(0)
            module = entry["build"]().train()
            entry["gflop"] = step_gflop(module, batches[0])
            models[entry["model"]] = (entry, torch.compile(module) if args.compile else module)
            step_seconds(models[entry["model"]][1], batches, args.warmup)
        times = {model: [] for model in models}
        for _ in range(args.rounds):
            for model, (_, module) in models.items():
                times[model].append(step_seconds(module, batches, args.steps))
        medians = {model: statistics.median(values) for model, values in times.items()}
        fastest = min((m for m in medians if m != "ITNet"), key=medians.get)
        for model, (entry, _) in models.items():
            row = {"task": name, "model": model, "parameters": entry["parameters"],
                   "ms_per_step": round(medians[model] * 1e3, 2),
                   "vs_fastest_baseline": round(medians[model] / medians[fastest], 2), "fastest_baseline": fastest,
                   "gflop_per_step": round(entry["gflop"], 3),
                   "gflop_vs_fastest": round(entry["gflop"] / models[fastest][0]["gflop"], 2),
                   "gflop_per_second": round(entry["gflop"] / medians[model], 1)}  # fmt: skip
            rows.append(row)
            print(f"{name:9s} {model:9s} {entry['parameters']:>9,} params {row['ms_per_step']:8.1f} ms/step "
                  f"{row['vs_fastest_baseline']:5.2f}x {fastest}  {row['gflop_per_step']:7.3f} GFLOP/step "
                  f"({row['gflop_vs_fastest']:5.2f}x) {row['gflop_per_second']:6.1f} GFLOP/s", flush=True)  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_csv(args.output.with_name(args.output.name + ".csv"), rows)
    print(f"wrote {args.output.with_name(args.output.name + '.csv')}")


if __name__ == "__main__":
    main()
