"""The claim, measured: one ITNet configuration (the `itnet-tiny` preset: hidden 64, 2 blocks, spectral + low-rank
kernels; per-modality encoders and heads) against the specialised transformers models a user would otherwise pick,
all trained from scratch with the same parameter count (±10%), data, steps, optimiser, schedule and batch.

| task | data | ITNet head | baselines | metric |
|---|---|---|---|---|
| images | Fashion-MNIST (Debian), else MNIST-5k `offline:mnist` | ITNetForImageClassification | ViT, ResNet | acc. |
| sentiment | Rotten Tomatoes snippets | ITNetForSequenceClassification | BERT, BiLSTM | accuracy |
| vqa | easy-vqa (32x32 images) | ITNetForVisualQuestionAnswering | ViLT | accuracy |
| lm | Shakespeare (64-token blocks) | ITNetForCausalLM | GPT-2, Mamba, LSTM | perplexity |
| listops | generated ListOps, held-out test | ITNetForSequenceClassification | BERT | accuracy |
| points | trimesh shapes, 256 points | ITNetForPointCloudClassification | PointNet | accuracy |

    python benchmarks/compare_specialized.py                      # every task, 3 seeds, default budgets
    python benchmarks/compare_specialized.py --quick              # CI: every task, 1 seed, a few steps
    python benchmarks/compare_specialized.py --tasks images lm --seeds 0 1 2 --steps 1000

Training (identical for every model of a task): AdamW (lr 1e-3, betas (0.9, 0.999), weight decay 0.01), linear
warm-up over 5% of the steps then cosine decay to 0, gradient clipping at 1.0, the task's batch size, the same batch
order per seed. No per-model learning rates. Baseline widths are set by `match_width` so that each baseline's
parameter count is within ±10% of the ITNet model of its task (asserted before training, recorded in the CSV).
Text models use the shipped tokenizer (`modeling_itnet.tokenizer_path()`); ListOps its own vocabulary
(`examples/run_lra.py`'s `build_listops_tokenizer`).

Writes `<output>.csv` (one row per task, model and seed), `<output>_summary.csv` (mean ± std over seeds),
`<output>.png` and `<output>.log`; `--output` defaults to `benchmarks/results/compare_specialized`.
"""

import argparse
import csv
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from specialized_models import (  # noqa: E402
    PARAMETER_TOLERANCE,
    SHARED_ITNET,
    TASKS,
    count_parameters,
    make_batch,
    match_width,
    split_size,
    within_tolerance,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LEARNING_RATE, WEIGHT_DECAY, WARMUP, MAX_GRAD_NORM = 1e-3, 0.01, 0.05, 1.0
# the default run (3 seeds) took 442 s on 2 idle CPU cores (README); larger budgets with --steps
DEFAULT_STEPS = {"images": 200, "sentiment": 200, "vqa": 200, "lm": 60, "listops": 100, "points": 100}
QUICK_STEPS = 10
COLUMNS = [
    "task", "dataset", "model", "seed", "steps", "batch_size", "learning_rate", "parameters", "itnet_parameters",
    "parameter_ratio", "width", "metric", "value", "final_train_loss", "train_seconds", "seconds_per_step",
    "eval_seconds", "note",
]  # fmt: skip


def build_models(task) -> list[dict]:
    """ITNet first, then every baseline sized to ITNet's parameter count; raises if one is outside ±10%."""
    itnet = count_parameters(task.itnet())
    models = [{"model": "ITNet", "build": task.itnet, "width": 64, "parameters": itnet}]
    for name, build in task.baselines.items():
        width, parameters = match_width(build, itnet, multiple=task.multiples.get(name, 4))
        if not within_tolerance(parameters, itnet):
            raise AssertionError(
                f"{task.name}/{name}: {parameters:,} parameters at width {width}, outside ±{PARAMETER_TOLERANCE:.0%} "
                f"of ITNet's {itnet:,}"
            )
        models.append({"model": name, "build": lambda w=width, b=build: b(w), "width": width,
                       "parameters": parameters})  # fmt: skip
    return models


def schedule(optimizer, steps: int):
    warmup = max(1, int(WARMUP * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def batch_order(size: int, steps: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """The same `steps` batches of row indices for every model of a task (reshuffled every epoch)."""
    generator = torch.Generator().manual_seed(seed)
    order, batches = torch.empty(0, dtype=torch.long), []
    while len(batches) < steps:
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(size, generator=generator)])
        batches.append(order[:batch_size])
        order = order[batch_size:]
    return batches


@torch.no_grad()
def evaluate(model, task, data: dict, batch_size: int) -> float:
    model.eval()
    split, pad = data["eval"], data.get("pad_token_id")
    size = split_size(split)
    correct, total, loss_sum, tokens = 0.0, 0, 0.0, 0
    for start in range(0, size, batch_size):
        batch = make_batch(split, torch.arange(start, min(size, start + batch_size)), pad)
        output = model(**batch)
        if task.metric == "perplexity":
            n = batch["input_ids"].numel() - batch["input_ids"].size(0)  # predicted tokens
            loss_sum, tokens = loss_sum + output.loss.item() * n, tokens + n
        else:
            chosen = output.logits.argmax(-1)
            labels = batch["labels"]
            if labels.dim() == 2:  # VQA soft scores: correct when the chosen answer has the top score
                correct += (labels.gather(1, chosen[:, None])[:, 0] == labels.max(-1).values).sum().item()
            else:
                correct += (chosen == labels).sum().item()
            total += len(chosen)
    model.train()
    return math.exp(loss_sum / tokens) if task.metric == "perplexity" else correct / total


def train_one(entry: dict, task, data: dict, steps: int, seed: int, progress: bool = True) -> dict:
    torch.manual_seed(seed)
    model = entry["build"]().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    scheduler = schedule(optimizer, steps)
    batches = batch_order(split_size(data["train"]), steps, task.batch_size, seed)
    losses = []
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc=f"{task.name}/{entry['model']}/seed {seed}", leave=False, mininterval=2)
    start = time.perf_counter()
    for index in iterator:
        loss = model(**make_batch(data["train"], index, data.get("pad_token_id"))).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    value = evaluate(model, task, data, task.batch_size)
    window = max(1, min(20, len(losses) // 5))
    return {
        "value": value,
        "final_train_loss": sum(losses[-window:]) / window,
        "train_seconds": train_seconds,
        "seconds_per_step": train_seconds / max(1, steps),
        "eval_seconds": time.perf_counter() - start,
    }


def summarise(rows: list[dict]) -> list[dict]:
    groups = {}
    for row in rows:
        groups.setdefault((row["task"], row["model"]), []).append(row)
    summary = []
    for (task, model), group in groups.items():
        values = [r["value"] for r in group]
        summary.append({
            "task": task, "model": model, "metric": group[0]["metric"], "seeds": len(group),
            "mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "parameters": group[0]["parameters"], "parameter_ratio": group[0]["parameter_ratio"],
            "steps": group[0]["steps"], "mean_train_seconds": statistics.mean(r["train_seconds"] for r in group),
            "seconds_per_step": statistics.mean(r["seconds_per_step"] for r in group),
        })  # fmt: skip
    return summary


def plot(summary: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(s["task"] for s in summary))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        group = [s for s in summary if s["task"] == task]
        colours = ["tab:red" if s["model"] == "ITNet" else "tab:blue" for s in group]
        ax.bar(range(len(group)), [s["mean"] for s in group], yerr=[s["std"] for s in group], color=colours,
               capsize=3)  # fmt: skip
        ax.set_xticks(range(len(group)), [f"{s['model']}\n{s['parameters'] / 1e3:.0f}k" for s in group], fontsize=8)
        metric = group[0]["metric"]
        ax.set_title(f"{task}: {metric}{' (lower is better)' if metric == 'perplexity' else ''}\n"
                     f"{group[0]['steps']} steps, {group[0]['seeds']} seed(s)", fontsize=9)
        if metric == "perplexity":
            ax.set_yscale("log")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def run(tasks, seeds, steps=None, quick=False, output=None, progress=True, plot_png=True) -> list[dict]:
    """Train every model of `tasks` for every seed; writes the CSVs, PNG and log under `output` (a path without
    suffix) after each run, and returns the per-run rows."""
    output = Path(output) if output else RESULTS / "compare_specialized"
    output.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"compare_specialized: ITNet preset {SHARED_ITNET['preset']} vs specialised baselines; tasks {tasks}; seeds "
        f"{seeds}; steps {steps or (QUICK_STEPS if quick else {t: DEFAULT_STEPS[t] for t in tasks})}; AdamW lr "
        f"{LEARNING_RATE}, wd {WEIGHT_DECAY}, warm-up {WARMUP:.0%} + cosine, clip {MAX_GRAD_NORM}; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads"
    )
    lines, rows = [header], []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)
        output.with_suffix(".log").write_text("\n".join(lines) + "\n")

    log(header)
    total_start = time.perf_counter()
    for name in tasks:
        task = TASKS[name]()
        task_steps = steps or (QUICK_STEPS if quick else DEFAULT_STEPS[name])
        models = build_models(task)
        itnet_parameters = models[0]["parameters"]
        log(f"[{name}] {task.dataset}; batch {task.batch_size}; {task_steps} steps; "
            + ", ".join(f"{m['model']} {m['parameters']:,} (width {m['width']})" for m in models)
            + (f"; note: {task.note}" if task.note else ""))  # fmt: skip
        start = time.perf_counter()
        data = task.load(task_steps * task.batch_size, quick)  # rows (LM: 128-token blocks) the run needs
        log(f"[{name}] data: {split_size(data['train'])} train / {split_size(data['eval'])} eval rows "
            f"({time.perf_counter() - start:.1f} s)")  # fmt: skip
        for seed in seeds:
            for entry in models:
                result = train_one(entry, task, data, task_steps, seed, progress)
                row = {
                    "task": name, "dataset": task.dataset, "model": entry["model"], "seed": seed, "steps": task_steps,
                    "batch_size": task.batch_size, "learning_rate": LEARNING_RATE, "parameters": entry["parameters"],
                    "itnet_parameters": itnet_parameters,
                    "parameter_ratio": round(entry["parameters"] / itnet_parameters, 4), "width": entry["width"],
                    "metric": task.metric, **result, "note": task.note,
                }  # fmt: skip
                rows.append(row)
                log(
                    f"[{name}] seed {seed} {entry['model']:9s} {task.metric} {result['value']:.4f}  loss "
                    f"{result['final_train_loss']:.4f}  train {result['train_seconds']:.1f} s "
                    f"({result['seconds_per_step'] * 1000:.0f} ms/step)  eval {result['eval_seconds']:.1f} s"
                )
                write_csv(output.with_suffix(".csv"), rows, COLUMNS)
    summary = summarise(rows)
    write_csv(output.with_name(output.name + "_summary.csv"), summary, list(summary[0]))
    log(f"total {time.perf_counter() - total_start:.0f} s")
    log("| task | model | params | metric | mean ± std (seeds) | train s/run |")
    log("|---|---|---|---|---|---|")
    for s in summary:
        log(f"| {s['task']} | {s['model']} | {s['parameters'] / 1e3:.0f}k ({s['parameter_ratio']:.2f}x) "
            f"| {s['metric']} "
            f"| {s['mean']:.4f} ± {s['std']:.4f} ({s['seeds']}) | {s['mean_train_seconds']:.1f} |")  # fmt: skip
    if plot_png:
        plot(summary, output.with_suffix(".png"), f"ITNet ({SHARED_ITNET['preset']}) vs specialised models at ±10% "
             "parameters, same data/steps/AdamW schedule; mean ± std over seeds")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="default 0 1 2 (quick: 0)")
    parser.add_argument("--steps", type=int, default=None, help=f"steps per run, every task (default {DEFAULT_STEPS})")
    parser.add_argument("--quick", action="store_true", help=f"CI: {QUICK_STEPS} steps, 1 seed, small eval splits")
    parser.add_argument("--output", default=None, help="path without suffix (default results/compare_specialized)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    run(args.tasks, seeds, args.steps, args.quick, args.output, not args.no_progress)


if __name__ == "__main__":
    main()
