"""Ablations of the shared ITNet preset (`itnet-unified`), per task: each kernel family off (`no_<family>`; and `+softmax`, `+mlp`, `+recurrent` on),
each pooling, a convolutional image stem on, the gate initialisation, and the previous shared preset
(`itnet-tiny`) for reference. ITNet only, a budget of `compare_specialized.py` (`--budget`, short by default), seed 0,
each variant at its best learning rate of `--lr_grid` on the validation split (the same protocol as the comparison's
search).

    python benchmarks/ablate_unified.py                          # every task and variant
    python benchmarks/ablate_unified.py --tasks images --variants unified no_local
    python benchmarks/ablate_unified.py --tasks sentiment --variants unified dropout=0.1 --budget long

Writes `<output>.csv` (task, variant, learning rate, validation metric, ms/step), `<output>.log` and `<output>.png`
(`--output` defaults to `benchmarks/results/ablate_unified`).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_specialized import BUDGETS, RESULTS, best_by, run_jobs, write_csv
from specialized_models import TASKS

FAMILIES = ["spectral", "local", "low_rank"]  # itnet-unified's
TEXT, IMAGES, VQA, LM, LISTOPS, POINTS = "sentiment", "images", "vqa", "lm", "listops", "points"
ALL = (TEXT, IMAGES, VQA, LM, LISTOPS, POINTS)
POOLED = (TEXT, IMAGES, VQA, LISTOPS, POINTS)  # the language model reads every token: no pooling to ablate
VARIANTS = {  # name: (overrides of itnet-unified, or None for itnet-tiny as it was; the tasks it applies to)
    "unified": ({}, ALL),
    "no_spectral": ({"kernel_families": [f for f in FAMILIES if f != "spectral"]}, ALL),
    "no_local": ({"kernel_families": [f for f in FAMILIES if f != "local"]}, ALL),
    "no_low_rank": ({"kernel_families": [f for f in FAMILIES if f != "low_rank"]}, ALL[:-1]),  # points need it
    "+softmax": ({"kernel_families": FAMILIES + ["softmax"], "softmax_relative_bias": False}, ALL),
    # with its relative-position bias (3-D on points: 31x the step time, see ablate_unified_points.log)
    "+softmax_bias": ({"kernel_families": FAMILIES + ["softmax"]}, ALL[:-1]),
    "+mlp": ({"kernel_families": FAMILIES + ["mlp"]}, (IMAGES, TEXT)),  # O(N^2 h): the short tasks only
    "+recurrent": ({"kernel_families": FAMILIES + ["recurrent"]}, (LM,)),  # keeps a state only when causal
    # on text, also bidirectional (a forward and a backward scan: a linear BiLSTM-like encoder); channel: Mamba-1's decay
    "+recurrent_bi": ({"kernel_families": FAMILIES + ["recurrent"]}, (TEXT,)),
    "+recurrent_channel": ({"kernel_families": FAMILIES + ["recurrent"], "recurrent_decay": "channel"}, (TEXT, LM)),
    # one pooling for every modality (`modality_pooling` cleared, so that `pooling` applies to images and points too)
    "pool=first": ({"pooling": "first", "modality_pooling": None}, POOLED),
    "pool=mean": ({"pooling": "mean", "modality_pooling": None}, POOLED),
    "pool=max": ({"pooling": "max", "modality_pooling": None}, POOLED),
    "pool=attention": ({"pooling": "attention", "modality_pooling": None}, POOLED),
    "stem=16": ({"image_stem_channels": 16}, (IMAGES, VQA)),
    "patch=7": ({"patch_size": 7}, (IMAGES,)),  # 16 patches of 28 x 28 instead of 49: a third of the tokens
    "window=5": ({"local_window": 5}, (TEXT, IMAGES, VQA, LM, LISTOPS)),  # the local family's window side
    "window=7": ({"local_window": 7}, (TEXT,)),
    # sentiment's n-gram features (hypothesis 6): a nonlinear short convolution before the kernels (Mamba's), and the
    # local family alone at short range
    "short_conv=3": ({"short_conv_size": 3}, (TEXT, LM)),
    "no_spectral,window=5": ({"kernel_families": ["local", "low_rank"], "local_window": 5}, (TEXT,)),
    # sentiment's trunk against a bag of words (hypothesis 8): less depth, no feed-forward blocks
    "layers=1": ({"num_hidden_layers": 1}, (TEXT,)),
    "no_ffn": ({"intermediate_size": 0}, (TEXT,)),
    "frequencies=16": ({"kernel_num_frequencies": 16}, (TEXT, IMAGES, VQA, LM, LISTOPS)),  # spectral kernel detail
    "gate=+2": ({"gate_bias_init": 2.0}, ALL),
    "gate=-2": ({"gate_bias_init": -2.0}, ALL),
    "dropout=0.1": ({"hidden_dropout_prob": 0.1}, ALL),
    "dropout=0.3": ({"hidden_dropout_prob": 0.3}, ALL),
    "itnet-tiny": (None, ALL),  # the previous shared preset, as it was
    # the initialisation scale (std of every linear and embedding; diagnose_points.py hypothesis 14)
    "init=0.1": ({"initializer_range": 0.1}, ALL),
    "init=0.2": ({"initializer_range": 0.2}, ALL),
    # the same scale in the feed-forward blocks alone, and everywhere but there (diagnose_points.py hypothesis 15)
    "ffn_init=0.2": ({"feed_forward_initializer_range": 0.2}, ALL),
    "init=0.2,ffn_init=0.02": ({"initializer_range": 0.2, "feed_forward_initializer_range": 0.02}, ALL),
    # per-modality readouts (`modality_pooling`) and a per-point MLP stem, on the preset before it had them
    "image=max": ({"modality_pooling": {"image": "max"}}, (IMAGES,)),
    "image=max,stem=16": ({"modality_pooling": {"image": "max"}, "image_stem_channels": 16}, (IMAGES,)),
    "points=mean": ({"modality_pooling": {"points": "mean"}, "point_cls_token": False}, (POINTS,)),
    "points=max": ({"modality_pooling": {"points": "max"}, "point_cls_token": False}, (POINTS,)),
    "points=mean,pstem=64": (
        {"modality_pooling": {"points": "mean"}, "point_cls_token": False, "point_stem_size": 64},
        (POINTS,),
    ),
    "points=max,pstem=64": (
        {"modality_pooling": {"points": "max"}, "point_cls_token": False, "point_stem_size": 64},
        (POINTS,),
    ),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(ALL), choices=list(ALL))  # NLVR2 has no ablation
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--lr_grid", nargs="*", type=float, default=[3e-3, 1e-2])
    parser.add_argument("--budget", choices=list(BUDGETS), default="short", help="the comparison's steps per task")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", default=str(RESULTS / "ablate_unified"))
    args = parser.parse_args()
    output = Path(args.output)
    rows, lines = [], [(f"ablate_unified: tasks {args.tasks}; variants {args.variants}; lr grid {args.lr_grid}; "
                       f"{args.budget} budget {BUDGETS[args.budget]}; seed 0; {args.workers} worker(s) x 1 thread")]  # fmt: skip
    print(lines[0], flush=True)
    start = time.perf_counter()
    for task in args.tasks:
        jobs, batch_size = [], TASKS[task]().batch_size
        for variant in args.variants:
            overrides, tasks = VARIANTS[variant]
            if task not in tasks:
                continue
            itnet = {"preset": "itnet-tiny", "overrides": {}} if overrides is None else {
                "preset": "itnet-unified", "overrides": overrides}  # fmt: skip
            jobs += [{"task": task, "itnet": itnet, "steps": BUDGETS[args.budget][task], "batch_size": batch_size, "quick": False,
                          "budget": args.budget, "model": "ITNet", "learning_rate": lr, "seed": 0, "want_test": False, "variant": variant}
                     for lr in args.lr_grid]  # fmt: skip
        results = run_jobs(jobs, args.workers)
        for variant, best in best_by(results, "variant").items():
            tried = [r for r in results if r["variant"] == variant]
            rows.append({"task": task, "variant": variant, "learning_rate": best["learning_rate"],
                         "metric": best["metric"], "validation": best["validation"],
                         "parameters": best["entry"]["parameters"],
                         "ms_per_step": round(best["seconds_per_step"] * 1000, 1),
                         "all_lrs": " ".join(f"{r['learning_rate']:g}:{r['validation']:.4f}"
                                             for r in tried)})  # fmt: skip
            lines.append(f"[{task}] {variant:11s} lr {best['learning_rate']:g} validation {best['metric']} "
                         f"{best['validation']:.4f}  {best['entry']['parameters']:,} params  "
                         f"{best['seconds_per_step'] * 1000:.0f} ms/step  ({rows[-1]['all_lrs']})")  # fmt: skip
            print(lines[-1], flush=True)
        write_csv(output.with_name(output.name + ".csv"), rows)
        output.with_name(output.name + ".log").write_text("\n".join(lines) + "\n")
    lines.append(f"total {time.perf_counter() - start:.0f} s")
    output.with_name(output.name + ".log").write_text("\n".join(lines) + "\n")
    plot(rows, output.with_name(output.name + ".png"))


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 4.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        group = [r for r in rows if r["task"] == task]
        ax.barh(range(len(group)), [r["validation"] for r in group],
                color=["tab:red" if r["variant"] == "unified" else "tab:gray" for r in group])  # fmt: skip
        ax.set_yticks(range(len(group)), [r["variant"] for r in group], fontsize=7)
        ax.invert_yaxis()
        metric = group[0]["metric"]
        ax.set_title(f"{task}: validation {metric}", fontsize=9)
        if metric == "perplexity":
            ax.set_xscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
