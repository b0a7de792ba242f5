"""Why does ITNet lose to the BiLSTM on sentiment (0.761 against 0.777 at 2,000 steps)? Change one thing at a time.

Two hypotheses were rejected by `ablate_unified.py` at the long budget (README, "Why sentiment loses"): regularisation
(dropout 0.1 and 0.3 leave ITNet within ±0.01) and a readout, gate or family choice of the shared preset. Both models
fit the 10k training snippets (training loss 0.02-0.06 for ITNet, 0.002 for the LSTM), so the LSTM generalises better
from the same fit. Hypotheses, each with the run that tests it:

1. The word embedding's initial scale. Both models hold about 85% of their parameters in the 8,192-word table. The
   LSTM's `nn.Embedding` starts at N(0, 1) and trains at lr 1e-2, so a word's vector moves by about 1% of its norm
   per step and rare words keep much of their random, mutually distinct start; ITNet's starts at N(0, 0.02)
   (`initializer_range`) and moves by about 5% per step at 1e-3, so its table is mostly learned, and rare words are
   free to memorise their training labels. ITNet with its word embeddings drawn from N(0, 1) (`ITNet embed-std=1`)
   rises towards the LSTM.
2. The learning rate is the LSTM's edge: the LSTM at ITNet's rate, 1e-3 (`LSTM` with `--lr_grid 1e-3`), falls
   towards ITNet; ITNet at the LSTM's 1e-2 (`ITNet` with `--lr_grid 1e-2`) rises towards it.
3. (Hypothesis 7 of the README's list; 6, the n-gram features, ran in `ablate_unified.py`.) The LSTM's lead is its
   word table's fit, not its sequence model: a bag of words at the same parameter count (`BoW`: the word embeddings,
   their masked mean, a linear classifier; width matched as the LSTM's) reaches the LSTM. If it does, ITNet's trunk
   costs what the table alone would score.

Every run: the comparison's protocol (`compare_specialized.py`: AdamW, warm-up + cosine, clipping 1.0, batch 32, its
batch order and data), `--steps` steps, seed 0, validation accuracy, each learning rate of `--lr_grid` (the best
kept); ms/step of training alone.

    python benchmarks/diagnose_sentiment.py --steps 2000 --lr_grid 1e-3 3e-3 --runs "ITNet embed-std=1" \
        > benchmarks/results/diagnose_sentiment_2000_embed.log
    python benchmarks/diagnose_sentiment.py --steps 2000 --lr_grid 1e-3 1e-2 --runs LSTM \
        > benchmarks/results/diagnose_sentiment_2000_lstm_lr.log
    python benchmarks/diagnose_sentiment.py --steps 2000 --lr_grid 1e-2 --runs ITNet \
        > benchmarks/results/diagnose_sentiment_2000_itnet_lr.log
    python benchmarks/diagnose_sentiment.py --steps 2000 --lr_grid 1e-3 1e-2 3e-2 --runs BoW \
        > benchmarks/results/diagnose_sentiment_2000_bow.log
"""

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import specialized_models
from compare_specialized import search_rates
from specialized_models import LSTMClassifier, count_parameters, masked_mean, match_width


class BagOfWordsClassifier(nn.Module):
    """Embedding -> masked mean over the tokens -> linear: a bag of words, no sequence model."""

    def __init__(self, vocab_size: int, width: int, num_labels: int, pad_token_id: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=pad_token_id)
        self.head = nn.Linear(width, num_labels)

    def forward(self, input_ids, attention_mask=None, labels=None, **_):
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        pooled = masked_mean(self.embed(input_ids), mask)
        logits = self.head(pooled)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return SimpleNamespace(loss=loss, logits=logits)


def itnet(task, embedding_std: float | None = None):
    def build():
        model = task.itnet()
        if embedding_std is not None:
            with torch.no_grad():
                model.itnet.text_embeddings.word_embeddings.weight.normal_(0.0, embedding_std)
        return model

    return build


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr_grid", nargs="*", type=float, default=[1e-3, 3e-3])
    parser.add_argument("--runs", nargs="*", default=None, help="names of the runs to do (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = specialized_models.sentiment_task()
    data = task.load(args.steps * task.batch_size, False)
    target = count_parameters(task.itnet())
    vocab = task.itnet().config.vocab_size
    width, _ = match_width(lambda w: LSTMClassifier(vocab, w, 2), target, multiple=2)
    bow_width, _ = match_width(lambda w: BagOfWordsClassifier(vocab, w, 2), target, multiple=2)
    runs = {
        "ITNet": itnet(task),
        "ITNet embed-std=1": itnet(task, 1.0),
        "LSTM": lambda: LSTMClassifier(vocab, width, 2),
        "BoW": lambda: BagOfWordsClassifier(vocab, bow_width, 2),
    }
    print(f"diagnose_sentiment: {args.steps} steps, batch {task.batch_size}, seed 0, lr grid {args.lr_grid}; "
          f"ITNet {target:,} params, LSTM width {width}")  # fmt: skip
    for name, build in runs.items():
        if args.runs and name not in args.runs:
            continue
        results = search_rates(build, task, data, args.steps, args.lr_grid)
        best = max(results, key=lambda r: r["validation"])
        tried = " ".join(f"{r['learning_rate']:g}:{r['validation']:.4f} (loss {r['train_loss']:.3f})" for r in results)
        print(f"{name:18s} {count_parameters(build()):>7,} params  lr {best['learning_rate']:g} validation "
              f"{best['validation']:.4f}  train loss {best['train_loss']:.3f}  "
              f"{best['seconds_per_step'] * 1000:.0f} ms/step  ({tried})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
