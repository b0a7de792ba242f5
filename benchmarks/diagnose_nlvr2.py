"""Why do ITNet and ViLT both stay at chance on the NLVR2-style task (0.500 at 2,000 steps, training loss ln 2)?
Change what each model is asked to learn, one thing at a time, on both sides.

The task mixes 11 statement templates (`offline_data._nlvr2_statements`); every template is True and False equally
often, so the sentence alone says nothing and the only signal is the conjunction of the words with both images.
Hypotheses, each with the runs that test it:

1. The learning rate: the comparison's search chose 3e-4 by a tie (every rate at chance). At 1e-3 / 3e-3 the models
   leave ln 2 on all templates (`all`).
2. Grounding and left / right: a single-image template (`left_color`: "the left image has a red shape", a yes/no
   colour question about one image, which easy-VQA's models answer) is learned; so is the pair of them
   (`left_right_color`), which needs the image's position. If these stay at chance, the models cannot tell the images
   apart or see the colour; if they are learned, the mixture is what stalls training.
3. The mixture: half of the training pairs from the four single-image templates and half from all of them
   (`easy_half`; validated on all templates), so that grounding is learned first and the two-image templates build on
   it, raises the accuracy on the standard test split (all templates, easy-vqa's test images).

Every run: the comparison's protocol (`compare_specialized.fit`: AdamW, warm-up + cosine, clipping 1.0, batch 32,
its batch order), 16,000 training pairs of the run's templates (1,000 held out for validation), `--steps` steps,
seed 0; validation accuracy (the run's templates) and test accuracy (all templates), with the test accuracy per
template; ms/step of training alone. Jobs run in 2 processes of one thread each.

    python benchmarks/diagnose_nlvr2.py --steps 1000 > benchmarks/results/diagnose_nlvr2_1000.log
"""

import argparse
import functools
import multiprocessing
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import specialized_models
from compare_specialized import build_models, correct_rows, evaluate, fit

SINGLE_IMAGE = ["left_color", "right_color", "left_both", "right_both"]
RUNS = {  # name -> templates of the training pairs (None: all)
    "all": None,
    "left_color": ["left_color"],
    "left_right_color": ["left_color", "right_color"],
    "easy_half": "easy_half",
}


@functools.cache
def templates_of_test_pairs() -> list[str]:
    """The template name of every test pair (`load_nlvr2`'s test split), from its statement's text."""
    from offline_data import EASY_VQA_COLORS, EASY_VQA_SHAPES, _nlvr2_statements, nlvr2_easy_pairs

    attributes = [(s, c) for s in EASY_VQA_SHAPES for c in EASY_VQA_COLORS]
    template_of = {
        text: name
        for left in attributes
        for right in attributes
        for name, options in _nlvr2_statements(left, right).items()
        for text, _ in options
    }
    return [template_of[sentence] for sentence in nlvr2_easy_pairs("test", 1000, seed=1)["sentence"]]


@functools.cache
def load(run: str) -> dict:
    templates = RUNS[run]
    if templates != "easy_half":
        return specialized_models.load_nlvr2(None, False, templates)
    easy = specialized_models.load_nlvr2(None, False, SINGLE_IMAGE)
    everything = specialized_models.load_nlvr2(None, False)
    half = specialized_models.NLVR2_TRAIN_PAIRS // 2
    a, b = easy["train"], everything["train"]
    train = {key: torch.cat([a[key][:half], b[key][:half]]) if isinstance(a[key], torch.Tensor)
             else a[key][:half] + b[key][:half] for key in a}  # fmt: skip
    return {**everything, "train": train}  # validated on all templates, as tested


@torch.no_grad()
def per_template(model, test: dict, pad, names: list[str]) -> dict[str, float]:
    right = correct_rows(model, test, 32, pad).float()
    return {name: right[[i for i, n in enumerate(names) if n == name]].mean().item() for name in sorted(set(names))}


def job(args: tuple) -> str:
    run, model_name, learning_rate, steps = args
    torch.set_num_threads(1)
    task = specialized_models.nlvr2_task()
    data = load(run)
    entry = next(m for m in build_models(task) if m["model"] == model_name)
    model, losses, _, seconds = fit(entry["build"], task, data, steps, learning_rate, seed=0)
    pad = data["pad_token_id"]
    validation = evaluate(model, task, data["validation"], 32, pad)
    test = evaluate(model, task, data["test"], 32, pad)
    templates = per_template(model, data["test"], pad, templates_of_test_pairs())
    loss = sum(losses[-20:]) / len(losses[-20:])
    by_template = " ".join(f"{k}:{v:.2f}" for k, v in templates.items())
    return (f"{run:17s} {model_name:5s} lr {learning_rate:g}  train loss {loss:.4f}  validation {validation:.4f}  "
            f"test {test:.4f}  {seconds / steps * 1000:.0f} ms/step  test per template: {by_template}")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr_grid", nargs="*", type=float, default=[1e-3, 3e-3])
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--models", nargs="*", default=["ITNet", "ViLT"])
    args = parser.parse_args()
    jobs = [(run, m, lr, args.steps) for run in args.runs for m in args.models for lr in args.lr_grid]
    print(f"diagnose_nlvr2: {args.steps} steps, batch 32, seed 0, lr grid {args.lr_grid}", flush=True)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for line in pool.imap(job, jobs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
