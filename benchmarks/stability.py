"""Training stability of every preset: N AdamW steps of sequence classification on real offline text (Rotten
Tomatoes sentences, `examples/offline_data.py`) with the shipped tokenizer, checking the loss, every gradient and
every weight for NaN/Inf after each step.

    python benchmarks/stability.py                     # every preset, 1,000 steps (long on CPU)
    python benchmarks/stability.py --steps 20 --presets itnet-tiny itnet-conv-only

Writes `benchmarks/results/<name>.log` and `benchmarks/results/<name>.csv` (one row per preset; `--name`, default
`stability`). Exits with
status 1 when any preset produced a non-finite value. `run_preset` is also the short CI version
(`tests/test_reliability.py`).
"""

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from transformers import AutoTokenizer

from modeling_itnet import ITNetForSequenceClassification, list_presets, preset_config, tokenizer_path

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_LEARNING_RATE = 1e-3  # AdamW, weight decay 0.01, gradient clipping at 1.0 (the Trainer's max_grad_norm)


def text_batches(batch_size: int, max_length: int, seed: int = 0):
    """Endless shuffled batches of tokenized Rotten Tomatoes training sentences (`input_ids`, `attention_mask`,
    `labels`), padded to the longest sentence of the batch."""
    from offline_data import load_offline

    train = load_offline("rotten_tomatoes")["train"]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(train), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            rows = train[order[start : start + batch_size]]
            encoded = tokenizer(
                rows["sentence"], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            yield {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "labels": torch.tensor(rows["label"]),
            }


def run_preset(
    name: str,
    steps: int,
    batch_size: int = 16,
    max_length: int = 64,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    max_grad_norm: float | None = 1.0,
    seed: int = 0,
    **overrides,
) -> dict:
    """Train preset `name` for `steps` steps; returns its figures (`nonfinite_step` is None when every loss,
    gradient and weight stayed finite)."""
    torch.manual_seed(seed)
    model = ITNetForSequenceClassification(preset_config(name, num_labels=2, **overrides)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    batches = text_batches(batch_size, max_length, seed)
    losses, grad_norms, nonfinite_step = [], [], None
    start = time.perf_counter()
    for step in range(steps):
        loss = model(**next(batches)).loss
        optimizer.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm or math.inf)
        finite = torch.isfinite(loss) and torch.isfinite(norm)
        optimizer.step()
        finite = finite and all(torch.isfinite(p).all() for p in model.parameters())
        losses.append(loss.item())
        grad_norms.append(norm.item())
        if not finite:
            nonfinite_step = step
            break
    window = max(1, min(20, len(losses) // 5))
    return {
        "preset": name,
        "steps": len(losses),
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_loss": sum(losses[:window]) / window,
        "last_loss": sum(losses[-window:]) / window,
        "max_loss": max(losses),
        "max_grad_norm": max(grad_norms),
        "nonfinite_step": nonfinite_step,
        "seconds": time.perf_counter() - start,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="*", default=list_presets())
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--name", default="stability", help="file name of the log and CSV under benchmarks/results")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=DEFAULT_LEARNING_RATE)
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="0: no clipping")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    header = (
        f"stability: {args.steps} AdamW steps, lr {args.learning_rate}, clip {args.max_grad_norm or 'none'}, batch "
        f"{args.batch_size}, max length {args.max_length}, Rotten Tomatoes train, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    lines = [header]
    print(header, flush=True)
    for name in args.presets:
        row = run_preset(
            name, args.steps, args.batch_size, args.max_length, args.learning_rate, args.max_grad_norm or None
        )
        rows.append(row)
        line = (
            f"{name:22s} {row['parameters'] / 1e6:5.1f}M  steps {row['steps']:5d}  loss {row['first_loss']:.4f} -> "
            f"{row['last_loss']:.4f} (max {row['max_loss']:.4f})  max grad norm {row['max_grad_norm']:.3f}  "
            f"non-finite: {'none' if row['nonfinite_step'] is None else 'step ' + str(row['nonfinite_step'])}  "
            f"{row['seconds']:.1f} s"
        )
        lines.append(line)
        print(line, flush=True)
        (RESULTS / f"{args.name}.log").write_text("\n".join(lines) + "\n")  # after every preset: partial runs count
    with open(RESULTS / f"{args.name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if any(row["nonfinite_step"] is not None for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
