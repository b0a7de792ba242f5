"""The claim, measured: one shared ITNet configuration (a preset, default `itnet-unified`; per-modality encoders and
heads) against the specialised transformers models a user would otherwise pick, all trained from scratch with the
same parameter count (±10%), data, steps, batch order, optimiser and schedule, each at its own best learning rate.

| task | data | ITNet head | baselines | metric |
|---|---|---|---|---|
| images | Fashion-MNIST (Debian `dataset-fashion-mnist`), else MNIST-5k | ITNetForImageClassification | ViT, ResNet | acc. |
| sentiment | Rotten Tomatoes snippets | ITNetForSequenceClassification | BERT, BiLSTM | accuracy |
| vqa | easy-vqa (32x32 images) | ITNetForVisualQuestionAnswering | ViLT | accuracy |
| nlvr2 | NLVR2-style pairs of easy-vqa images, true/false | ITNetForImagesAndTextClassification | ViLT (NLVR2 head) | acc. |
| lm | Shakespeare (64-token blocks) | ITNetForCausalLM | GPT-2, Mamba, LSTM | perplexity |
| listops | generated ListOps (lengths 100-500) | ITNetForSequenceClassification | BERT | accuracy |
| points | trimesh shapes, 256 points | ITNetForPointCloudClassification | PointNet | accuracy |

    apt-get install dataset-fashion-mnist                           # the image task's data (else MNIST-5k, noted)
    python benchmarks/compare_specialized.py --budget short         # lr grid on validation, then 3 seeds on test
    python benchmarks/compare_specialized.py --budget long --lr_from benchmarks/results/compare_specialized_short_lr.csv
    python benchmarks/compare_specialized.py --quick                # CI: every task, 1 seed, 1 lr, a few steps

Protocol (identical for every model of a task):
1. Learning rate: every model is trained with seed 0 at each rate of `--lr_grid` (default 3e-4, 1e-3, 3e-3, 1e-2)
   and keeps the one with the best metric on the validation split (a split of its own, or rows held out of the
   training split: `specialized_models.VALIDATION_ROWS`). `--lr_from` reuses the rates an earlier run chose (the
   long budget reuses the short budget's, the same rule for every model).
2. Seeds: at that rate, seeds `--seeds` (default 0 1 2; seed 0's selection run is reused) are reported on the test
   split, which no choice has seen. Mean ± std over seeds.
3. Training: AdamW (betas (0.9, 0.999), weight decay 0.01), linear warm-up over 5% of the steps then cosine decay to
   0, gradient clipping at 1.0, the task's batch size, the same batch order per seed for every model. Baseline
   widths are set by `match_width` so that each has ITNet's parameter count ±10% (asserted, recorded).
4. Budgets: `short` (`SHORT_STEPS`) and `long` (10x). The validation metric is recorded at `CURVE_POINTS` points of
   every run (4 short, 10 long; on the first `CURVE_ROWS` validation rows, the last point on all of them;
   `<output>_curves.csv`, the curves PNG). Plateau criterion for the best baseline of a task: its validation metric
   over the last 30% of its steps improves by less than 1% (relative; accuracy: less than 0.01 absolute); the summary
   says whether it held.

Jobs run in `--workers` processes (default 2) of one thread each; seconds per step are measured that way for every
model alike. Writes `<output>.csv` (one row per task, model and seed), `<output>_lr.csv` (the learning-rate
search), `<output>_curves.csv`, `<output>_gates.csv` (ITNet's gate mass per family and layer at the end of each
run), `<output>_summary.csv` (mean ± std, with the plateau check), `<output>.png`, `<output>_curves.png`,
`<output>_gates.png` and `<output>.log`. `--output` defaults to `benchmarks/results/compare_specialized_<budget>`.
"""

import argparse
import csv
import json
import math
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import specialized_models
from specialized_models import (
    PARAMETER_TOLERANCE,
    TASKS,
    count_parameters,
    make_batch,
    match_width,
    split_size,
    within_tolerance,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WEIGHT_DECAY, WARMUP, MAX_GRAD_NORM = 0.01, 0.05, 1.0
LR_GRID = [3e-4, 1e-3, 3e-3, 1e-2]
SHORT_STEPS = {"images": 200, "sentiment": 200, "vqa": 200, "nlvr2": 200, "lm": 60, "listops": 100, "points": 100}
BUDGETS = {"short": SHORT_STEPS, "long": {task: 10 * steps for task, steps in SHORT_STEPS.items()}}
QUICK_STEPS, CURVE_ROWS = 10, 256
CURVE_POINTS = {"short": 4, "long": 10}  # validation points per run (on CURVE_ROWS rows), the last on all
COLUMNS = [
    "task", "dataset", "budget", "model", "seed", "steps", "batch_size", "learning_rate", "parameters",
    "itnet_parameters", "parameter_ratio", "width", "metric", "validation", "test", "final_train_loss",
    "train_seconds", "seconds_per_step", "test_shuffled_images", "answer_prior", "question_prior", "note",
]  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# One training run (in a worker process)

_WORKER_CACHE = {}


def _task_and_data(name: str, itnet: dict, train_needed: int, quick: bool):
    """The task (its models built for the ITNet setting `itnet`) and its data, cached per worker process."""
    key = (name, repr(itnet), quick)
    if key not in _WORKER_CACHE:
        specialized_models.SHARED_ITNET.update(itnet)
        task = TASKS[name]()
        _WORKER_CACHE[key] = (task, task.load(train_needed, quick))
    return _WORKER_CACHE[key]


def build_models(task) -> list[dict]:
    """ITNet first, then every baseline sized to ITNet's parameter count; raises if one is outside ±10%."""
    itnet = count_parameters(task.itnet())
    models = [{"model": "ITNet", "build": task.itnet, "width": 0, "parameters": itnet}]
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
def evaluate(model, task, split: dict, batch_size: int, pad, rows: int | None = None) -> float:
    """Accuracy (VQA: the chosen answer has the top soft score) or perplexity on the first `rows` rows."""
    if task.metric != "perplexity":
        right = correct_rows(model, split, batch_size, pad, rows)
        return right.sum().item() / len(right)
    model.eval()
    size = split_size(split) if rows is None else min(rows, split_size(split))
    loss_sum, tokens = 0.0, 0
    for start in range(0, size, batch_size):
        batch = make_batch(split, torch.arange(start, min(size, start + batch_size)), pad)
        n = batch["input_ids"].numel() - batch["input_ids"].size(0)  # predicted tokens
        loss_sum, tokens = loss_sum + model(**batch).loss.item() * n, tokens + n
    model.train()
    return math.exp(loss_sum / tokens)


@torch.no_grad()
def correct_rows(model, split: dict, batch_size: int, pad, rows: int | None = None) -> torch.Tensor:
    """`[rows]` booleans: whether the model's top class is right on each of the first `rows` rows (VQA: the chosen
    answer has the top soft score)."""
    model.eval()
    size = split_size(split) if rows is None else min(rows, split_size(split))
    right = []
    for start in range(0, size, batch_size):
        batch = make_batch(split, torch.arange(start, min(size, start + batch_size)), pad)
        chosen, labels = model(**batch).logits.argmax(-1), batch["labels"]
        if labels.dim() == 2:
            right.append(labels.gather(1, chosen[:, None])[:, 0] == labels.max(-1).values)
        else:
            right.append(chosen == labels)
    model.train()
    return torch.cat(right)


@torch.no_grad()
def gate_mass(model, task, split: dict, pad) -> list[dict]:
    """ITNet's mean gate value per layer and kernel family on a validation batch (`ITNetMixer` gates)."""
    trunk = next(module for module in model.modules() if type(module).__name__ == "ITNetModel")
    captured = []
    hooks = [
        layer.mixer.register_forward_hook(lambda mixer, args, out, i=i: captured.append((i, mixer, args[0])))
        for i, layer in enumerate(trunk.layers)
    ]
    model.eval()
    model(**make_batch(split, torch.arange(min(32, split_size(split))), pad))
    model.train()
    for hook in hooks:
        hook.remove()
    rows = []
    for layer, mixer, hidden in captured:
        gates = mixer.gate_act(mixer.gate(hidden)).view(*hidden.shape[:2], len(mixer.kernel_families), -1)
        for f, family in enumerate(mixer.kernel_families):
            rows.append({"layer": layer, "family": family, "gate_mean": gates[:, :, f].mean().item()})
    return rows


def vqa_controls(model, task, data: dict, pad) -> dict:
    """The two VQA controls on the test split: the model's accuracy with the images shuffled among the questions
    (a fixed permutation; a model that reads the image falls towards the prior), and the answer prior (always the
    answer with the largest total score in training), scored as `evaluate` scores the model."""
    test = data["test"]
    order = torch.randperm(split_size(test), generator=torch.Generator().manual_seed(0))
    shuffled = {**test, "pixel_values": test["pixel_values"][order]}
    prior = data["train"]["labels"].sum(0).argmax()
    prior_correct = test["labels"][:, prior] == test["labels"].max(-1).values
    return {"test_shuffled_images": evaluate(model, task, shuffled, task.batch_size, pad),
            "answer_prior": prior_correct.float().mean().item(), "question_prior": question_prior(data)}  # fmt: skip


def question_prior(data: dict) -> float:
    """Test accuracy of the question-only model that knows the training set by heart: for each question text, the
    answer with the largest total score among the training rows with that text (the overall prior for a text never
    seen in training)."""
    train, test = data["train"], data["test"]
    totals = {}
    for ids, labels in zip(train["input_ids"], train["labels"]):
        totals[tuple(ids)] = totals.get(tuple(ids), 0) + labels
    overall = train["labels"].sum(0)
    picks = torch.stack([totals.get(tuple(ids), overall).argmax() for ids in test["input_ids"]])
    correct = test["labels"].gather(1, picks[:, None])[:, 0] == test["labels"].max(-1).values
    return correct.float().mean().item()


def train_step(model, optimizer, batch: dict) -> torch.Tensor:
    """One step of the protocol's optimiser on `batch` (gradients clipped at `MAX_GRAD_NORM`); returns the loss."""
    loss = model(**batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    optimizer.step()
    return loss


def fit(build, task, data: dict, steps: int, learning_rate: float, seed: int, checkpoints=(), rows=None) -> tuple:
    """The protocol's training run: `torch.manual_seed(seed)`, then `build()` trained for `steps` steps of the task's
    batch size in `batch_order(seed)` (AdamW, warm-up + cosine, clipping), stopping at a non-finite loss; the
    validation metric (first `rows` rows) at every step of `checkpoints` before the last. Returns the model, the
    losses, the curve `[(step, metric)]` and the seconds spent in training steps alone."""
    pad = data.get("pad_token_id")
    torch.manual_seed(seed)
    model = build().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=WEIGHT_DECAY)
    scheduler = schedule(optimizer, steps)
    batches = batch_order(split_size(data["train"]), steps, task.batch_size, seed)
    losses, curve, train_seconds = [], [], 0.0
    for step, index in enumerate(batches, start=1):
        start = time.perf_counter()
        loss = train_step(model, optimizer, make_batch(data["train"], index, pad))
        scheduler.step()
        train_seconds += time.perf_counter() - start
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
        if step in checkpoints and step < steps:
            curve.append((step, evaluate(model, task, data["validation"], task.batch_size, pad, rows)))
    return model, losses, curve, train_seconds


def search_rates(build, task, data: dict, steps: int, lr_grid, curve_points: int = 0) -> list[dict]:
    """`fit` of `build()` at each rate of `lr_grid` (seed 0) and the validation metric after its last step, for the
    diagnosis scripts: one dict per rate, in the grid's order (`learning_rate`, `validation`, `curve` `[(step,
    metric)]` with `curve_points - 1` points before the last, `seconds_per_step`, `train_loss`: the mean of the last
    20 steps)."""
    pad, every = data.get("pad_token_id"), max(1, steps // max(curve_points, 1))
    results = []
    for learning_rate in lr_grid:
        checkpoints = set(range(every, steps, every)) if curve_points else ()
        model, losses, curve, seconds = fit(build, task, data, steps, learning_rate, 0, checkpoints)
        curve.append((steps, evaluate(model, task, data["validation"], task.batch_size, pad)))
        results.append({"learning_rate": learning_rate, "validation": curve[-1][1], "curve": curve,
                        "seconds_per_step": seconds / len(losses), "train_loss": sum(losses[-20:]) / len(losses[-20:])})  # fmt: skip
    return results


def train_job(job: dict) -> dict:
    """Train one model of one task at one learning rate and seed; returns its metrics, curve and gates."""
    torch.set_num_threads(1)
    task, data = _task_and_data(job["task"], job["itnet"], job["steps"] * job["batch_size"], job["quick"])
    if job["model"] == "ITNet":  # no baselines to size
        entry = {"model": "ITNet", "build": task.itnet, "width": 0, "parameters": count_parameters(task.itnet())}
    else:
        entry = next(m for m in build_models(task) if m["model"] == job["model"])
    pad = data.get("pad_token_id")
    points = 10 if job["quick"] else CURVE_POINTS[job["budget"]]
    checkpoints = {round(job["steps"] * k / points) for k in range(1, points + 1)}
    model, losses, curve, train_seconds = fit(
        entry["build"], task, data, job["steps"], job["learning_rate"], job["seed"], checkpoints, CURVE_ROWS
    )
    finite = all(math.isfinite(x) for x in losses)
    worst = math.inf if task.metric == "perplexity" else 0.0
    validation = evaluate(model, task, data["validation"], task.batch_size, pad) if finite else worst
    curve.append((job["steps"], validation))
    window = max(1, min(20, len(losses) // 5))
    test = None
    controls = {}
    if job["want_test"]:
        test = evaluate(model, task, data["test"], task.batch_size, pad) if finite else worst
        if job["task"] == "vqa":
            controls = vqa_controls(model, task, data, pad) if finite else {}
    return {
        **job,
        "entry": {k: v for k, v in entry.items() if k != "build"},
        "dataset": task.dataset,
        "metric": task.metric,
        "note": task.note,
        "validation": validation,
        "test": test,
        "final_train_loss": sum(losses[-window:]) / window,
        "train_seconds": train_seconds,
        "seconds_per_step": train_seconds / max(1, len(losses)),
        "curve": curve,
        **controls,
        "gates": gate_mass(model, task, data["validation"], pad) if job["model"] == "ITNet" and finite else [],
    }


# --------------------------------------------------------------------------------------------------------------------
# The run


def better(metric: str, a: float, b: float) -> bool:
    return a < b if metric == "perplexity" else a > b


def best_by(results: list[dict], key: str) -> dict:
    """For each value of `results[i][key]`, the run with the best validation metric (the first of equals)."""
    best = {}
    for r in results:
        if r[key] not in best or better(r["metric"], r["validation"], best[r[key]]["validation"]):
            best[r[key]] = r
    return best


def plateaued(metric: str, curve: list[tuple[int, float]]) -> bool:
    """The validation metric over the last 30% of the steps improved by < 1% relative (accuracy: < 0.01)."""
    steps = curve[-1][0]
    start = min(curve, key=lambda point: abs(point[0] - 0.7 * steps))[1]
    end = curve[-1][1]
    if metric == "perplexity":
        return (start - end) / start < 0.01
    return end - start < 0.01


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_lr(path: Path) -> dict:
    with open(path) as handle:
        rows = [r for r in csv.DictReader(handle) if r["chosen"] == "1"]
    return {(r["task"], r["model"]): float(r["learning_rate"]) for r in rows}


def run(tasks, seeds, budget="short", lr_grid=None, lr_from=None, quick=False, output=None, workers=2,
        itnet=None, plot_png=True) -> list[dict]:  # fmt: skip
    """Run the protocol over `tasks`; writes every output file after each finished job and returns the rows."""
    itnet = {"preset": "itnet-unified", "overrides": {}, **(itnet or {})}
    lr_grid = lr_grid or ([1e-3] if quick else LR_GRID)
    output = Path(output) if output else RESULTS / f"compare_specialized_{budget}"
    output.parent.mkdir(parents=True, exist_ok=True)
    steps_of = {t: QUICK_STEPS if quick else BUDGETS[budget][t] for t in tasks}
    chosen_lr = read_lr(Path(lr_from)) if lr_from else {}
    header = (
        f"compare_specialized ({budget}): ITNet {itnet} vs specialised baselines; tasks {tasks}; seeds {seeds}; steps "
        f"{steps_of}; lr {'from ' + str(lr_from) if lr_from else 'grid ' + str(lr_grid)} (chosen on validation); "
        f"AdamW wd {WEIGHT_DECAY}, warm-up {WARMUP:.0%} + cosine, clip {MAX_GRAD_NORM}; {workers} worker(s) x 1 "
        f"thread; torch {torch.__version__}"
    )
    lines, rows, lr_rows, curve_rows, gate_rows = [header], [], [], [], []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)
        output.with_name(output.name + ".log").write_text("\n".join(lines) + "\n")

    log(header)
    total_start = time.perf_counter()
    for name in tasks:
        specialized_models.SHARED_ITNET.update(itnet)
        task = TASKS[name]()
        models = build_models(task)
        log(f"[{name}] {task.dataset}; batch {task.batch_size}; {steps_of[name]} steps; "
            + ", ".join(f"{m['model']} {m['parameters']:,}" + (f" (width {m['width']})" if m["width"] else "")
                        for m in models)
            + (f"; note: {task.note}" if task.note else ""))  # fmt: skip
        base = {"task": name, "itnet": itnet, "steps": steps_of[name], "batch_size": task.batch_size, "quick": quick,
                    "budget": budget}  # fmt: skip
        jobs = []
        for m in models:
            rates = [chosen_lr[(name, m["model"])]] if (name, m["model"]) in chosen_lr else lr_grid
            jobs += [dict(base, model=m["model"], learning_rate=lr, seed=seeds[0], want_test=len(rates) == 1)
                     for lr in rates]  # fmt: skip
        results = run_jobs(jobs, workers)
        best = best_by(results, "model")
        for r in results:
            lr_rows.append({"task": name, "model": r["model"], "learning_rate": r["learning_rate"],
                            "validation": r["validation"], "chosen": int(best[r["model"]] is r)})  # fmt: skip
            log(f"[{name}] lr {r['learning_rate']:g} {r['model']:9s} validation {r['metric']} {r['validation']:.4f}")
        write_csv(output.with_name(output.name + "_lr.csv"), lr_rows)
        # the chosen rate's seed-0 run is reused; it needs its test metric if the search ran without one
        finals = [dict(base, model=k, learning_rate=r["learning_rate"], seed=s, want_test=True)
                  for k, r in best.items() for s in seeds if s != seeds[0] or r["test"] is None]  # fmt: skip
        results = [r for r in best.values() if r["test"] is not None] + run_jobs(finals, workers)
        itnet_parameters = models[0]["parameters"]
        for r in sorted(results, key=lambda r: ([m["model"] for m in models].index(r["model"]), r["seed"])):
            row = {
                "task": name, "dataset": r["dataset"], "budget": budget, "model": r["model"], "seed": r["seed"],
                "steps": r["steps"], "batch_size": r["batch_size"], "learning_rate": r["learning_rate"],
                "parameters": r["entry"]["parameters"], "itnet_parameters": itnet_parameters,
                "parameter_ratio": round(r["entry"]["parameters"] / itnet_parameters, 4), "width": r["entry"]["width"],
                "metric": r["metric"], "validation": r["validation"], "test": r["test"],
                "final_train_loss": r["final_train_loss"], "train_seconds": r["train_seconds"],
                "seconds_per_step": r["seconds_per_step"], "test_shuffled_images": r.get("test_shuffled_images"),
                "answer_prior": r.get("answer_prior"), "question_prior": r.get("question_prior"), "note": r["note"],
            }  # fmt: skip
            rows.append(row)
            curve_rows += [{"task": name, "model": r["model"], "seed": r["seed"], "step": s, "validation": v}
                           for s, v in r["curve"]]  # fmt: skip
            gate_rows += [{"task": name, "seed": r["seed"], **g} for g in r["gates"]]
            log(f"[{name}] seed {r['seed']} {r['model']:9s} lr {r['learning_rate']:g} test {r['metric']} "
                f"{r['test']:.4f} (validation {r['validation']:.4f})  loss {r['final_train_loss']:.4f}  "
                f"{r['seconds_per_step'] * 1000:.0f} ms/step"
                + (f"  shuffled images {r['test_shuffled_images']:.4f}, answer prior {r['answer_prior']:.4f}, "
                   f"question prior {r['question_prior']:.4f}"
                   if "answer_prior" in r else ""))  # fmt: skip
        write_csv(output.with_name(output.name + ".csv"), rows, COLUMNS)
        write_csv(output.with_name(output.name + "_curves.csv"), curve_rows)
        write_csv(output.with_name(output.name + "_gates.csv"), gate_rows)
        summary = summarise(rows, curve_rows)
        write_csv(output.with_name(output.name + "_summary.csv"), summary)
        if plot_png:
            plot(summary, curve_rows, gate_rows, output, budget)
    log(f"total {time.perf_counter() - total_start:.0f} s")
    log("| task | model | params | lr | test metric, mean ± std (seeds) | ms/step | plateau (best baseline) |")
    log("|---|---|---|---|---|---|---|")
    for s in summarise(rows, curve_rows):
        log(f"| {s['task']} | {s['model']} | {s['parameters'] / 1e3:.0f}k | {s['learning_rate']:g} | {s['metric']} "
            f"{s['mean']:.4f} ± {s['std']:.4f} ({s['seeds']}) | {s['seconds_per_step'] * 1000:.0f} | "
            f"{s['best_baseline_plateaued']} |")  # fmt: skip
    return rows


def run_jobs(jobs: list[dict], workers: int) -> list[dict]:
    if workers <= 1 or len(jobs) <= 1:
        return [train_job(job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        return pool.map(train_job, jobs, chunksize=1)


def summarise(rows: list[dict], curve_rows: list[dict]) -> list[dict]:
    groups = {}
    for row in rows:
        groups.setdefault((row["task"], row["model"]), []).append(row)
    summary = []
    for (task, model), group in groups.items():
        values = [r["test"] for r in group]
        summary.append({
            "task": task, "model": model, "metric": group[0]["metric"], "budget": group[0]["budget"],
            "seeds": len(group), "mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "learning_rate": group[0]["learning_rate"],
            "parameters": group[0]["parameters"], "parameter_ratio": group[0]["parameter_ratio"],
            "steps": group[0]["steps"], "seconds_per_step": statistics.mean(r["seconds_per_step"] for r in group),
        })  # fmt: skip
        if group[0].get("answer_prior") is not None:  # VQA's controls
            summary[-1]["test_shuffled_images"] = statistics.mean(r["test_shuffled_images"] for r in group)
            summary[-1]["answer_prior"] = group[0]["answer_prior"]
            summary[-1]["question_prior"] = group[0].get("question_prior")
    for task in dict.fromkeys(s["task"] for s in summary):
        group = [s for s in summary if s["task"] == task]
        baselines = [s for s in group if s["model"] != "ITNet"]
        best = min(baselines, key=lambda s: s["mean"] if s["metric"] == "perplexity" else -s["mean"])
        curves = {}
        for c in curve_rows:
            if c["task"] == task and c["model"] == best["model"]:
                curves.setdefault(c["seed"], []).append((c["step"], c["validation"]))
        held = all(plateaued(best["metric"], sorted(curve)) for curve in curves.values()) if curves else None
        fastest = min(s["seconds_per_step"] for s in baselines)
        for s in group:
            s["best_baseline"] = best["model"]
            s["best_baseline_plateaued"] = held
            s["beats_best_baseline"] = s["mean"] == best["mean"] or better(s["metric"], s["mean"], best["mean"])
            s["step_time_vs_fastest_baseline"] = round(s["seconds_per_step"] / fastest, 2)
    return summary


def plot(summary: list[dict], curve_rows: list[dict], gate_rows: list[dict], output: Path, budget: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(s["task"] for s in summary))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        group = [s for s in summary if s["task"] == task]
        colours = ["tab:red" if s["model"] == "ITNet" else "tab:blue" for s in group]
        ax.bar(range(len(group)), [s["mean"] for s in group], yerr=[s["std"] for s in group], color=colours,
               capsize=3)  # fmt: skip
        ax.set_xticks(
            range(len(group)),
            [f"{s['model']}\n{s['parameters'] / 1e3:.0f}k\n{s['seconds_per_step'] * 1000:.0f} ms/step" for s in group],
            fontsize=7,
        )
        metric = group[0]["metric"]
        ax.set_title(f"{task}: test {metric}{' (lower is better)' if metric == 'perplexity' else ''}\n"
                     f"{group[0]['steps']} steps, {group[0]['seeds']} seed(s)", fontsize=9)  # fmt: skip
        if metric == "perplexity":
            ax.set_yscale("log")
    fig.suptitle(f"ITNet vs specialised models ({budget} budget): ±10% parameters, same data/steps/schedule, "
                 "each at its best lr on validation; mean ± std over seeds", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(output.with_name(output.name + ".png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for model in dict.fromkeys(c["model"] for c in curve_rows if c["task"] == task):
            points = {}
            for c in curve_rows:
                if c["task"] == task and c["model"] == model:
                    points.setdefault(c["step"], []).append(c["validation"])
            steps = sorted(points)
            ax.plot(steps, [statistics.mean(points[s]) for s in steps], marker=".", label=model,
                    color="tab:red" if model == "ITNet" else None)  # fmt: skip
        ax.set_title(f"{task}: validation", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if any(s["metric"] == "perplexity" for s in summary if s["task"] == task):
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output.with_name(output.name + "_curves.png"), dpi=110)
    plt.close(fig)

    if gate_rows:
        families = list(dict.fromkeys(g["family"] for g in gate_rows))
        layers = sorted({g["layer"] for g in gate_rows})
        gate_tasks = list(dict.fromkeys(g["task"] for g in gate_rows))
        fig, axes = plt.subplots(1, len(gate_tasks), figsize=(3.0 * len(gate_tasks), 3.0), squeeze=False)
        for ax, task in zip(axes[0], gate_tasks):
            width = 0.8 / len(families)
            for f, family in enumerate(families):
                values = [statistics.mean([g["gate_mean"] for g in gate_rows
                                           if g["task"] == task and g["family"] == family and g["layer"] == layer]
                                          or [0.0]) for layer in layers]  # fmt: skip
                ax.bar([layer + f * width for layer in layers], values, width, label=family)
            ax.set_xticks([layer + 0.4 - width / 2 for layer in layers], [f"layer {layer}" for layer in layers])
            ax.set_title(f"{task}: mean gate per family", fontsize=9)
            ax.set_ylim(0, 1)
            ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(output.with_name(output.name + "_gates.png"), dpi=110)
        plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="default 0 1 2 (quick: 0)")
    parser.add_argument("--budget", choices=list(BUDGETS), default="short")
    parser.add_argument("--lr_grid", nargs="*", type=float, default=None, help=f"default {LR_GRID} (quick: 1e-3)")
    parser.add_argument("--lr_from", default=None, help="an earlier run's _lr.csv: reuse its chosen rates")
    parser.add_argument("--preset", default="itnet-unified", help="the shared ITNet preset")
    parser.add_argument("--overrides", type=json.loads, default={},
                        help='JSON of ITNetConfig fields over the preset, e.g. \'{"point_stem_size": 64}\'')  # fmt: skip
    parser.add_argument("--quick", action="store_true", help=f"CI: {QUICK_STEPS} steps, 1 seed, small eval splits")
    parser.add_argument("--workers", type=int, default=2, help="processes of one thread each")
    parser.add_argument(
        "--output", default=None, help="path without suffix (default results/compare_specialized_<budget>)"
    )
    args = parser.parse_args()
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    run(args.tasks, seeds, args.budget, args.lr_grid, args.lr_from, args.quick, args.output, args.workers,
        {"preset": args.preset, "overrides": args.overrides})  # fmt: skip


if __name__ == "__main__":
    main()
