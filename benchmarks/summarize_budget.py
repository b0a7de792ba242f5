"""The README's table of one budget from the per-task summaries of `compare_specialized.py`
(`benchmarks/results/compare_specialized_<budget>[_<task>]_summary.csv`; the task-by-task runs write one each).

    python benchmarks/summarize_budget.py --budget long
    python benchmarks/summarize_budget.py --budget long --variant images=images_readout2 points=points_mean

`--variant TASK=NAME` reads that task from `compare_specialized_<budget>_<NAME>_summary.csv` instead (a rerun
with the preset's changed defaults).
"""

import argparse
import csv
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = ["images", "sentiment", "vqa", "nlvr2", "lm", "listops", "points"]


def rows_of(budget: str, variants: dict[str, str]) -> dict[str, list[dict]]:
    """`{task: summary rows}`: the task's variant file if given, else its own file, else the budget's file."""
    found = {}
    for task in TASKS:
        own = variants.get(task, task)
        for path in (RESULTS / f"compare_specialized_{budget}_{own}_summary.csv",
                     RESULTS / f"compare_specialized_{budget}_summary.csv"):  # fmt: skip
            if path.is_file():
                rows = [row for row in csv.DictReader(path.open()) if row["task"] == task]
                if rows:
                    found[task] = rows
                    break
    return found


def cell(row: dict) -> str:
    return f"{float(row['mean']):.3f} ± {float(row['std']):.3f}" if row["metric"] != "perplexity" else (
        f"{float(row['mean']):.0f} ± {float(row['std']):.0f}")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="long", choices=["short", "long"])
    parser.add_argument("--variant", nargs="*", default=[], metavar="TASK=NAME")
    args = parser.parse_args()
    variants = dict(item.split("=", 1) for item in args.variant)
    print(
        "| task (test metric, steps) | ITNet | best specialised | other baselines | best plateaued | ms/step ITNet vs fastest |"
    )
    print("|---|---|---|---|---|---|")
    for task, rows in rows_of(args.budget, variants).items():
        itnet = next(r for r in rows if r["model"] == "ITNet")
        best = next(r for r in rows if r["model"] == itnet["best_baseline"])
        others = ", ".join(f"{r['model']} {cell(r)}" for r in rows if r["model"] not in ("ITNet", best["model"]))
        fastest = min((r for r in rows if r["model"] != "ITNet"), key=lambda r: float(r["seconds_per_step"]))
        wins = itnet["beats_best_baseline"] == "True"
        ours, theirs = (f"**{cell(itnet)}**", cell(best)) if wins else (cell(itnet), f"**{cell(best)}**")
        print(f"| {task} ({itnet['metric']}, {itnet['steps']}) | {ours} | {best['model']} {theirs} | {others or '—'} "
              f"| {best['best_baseline_plateaued']} | {float(itnet['seconds_per_step']) * 1000:.0f} vs "
              f"{float(fastest['seconds_per_step']) * 1000:.0f} ({itnet['step_time_vs_fastest_baseline']}x) |")  # fmt: skip


if __name__ == "__main__":
    main()
