"""Fine-tune or train ITNet on a GLUE task (text classification or regression), in the style of transformers' examples.

    python examples/run_glue.py --task_name sst2 --dataset_name offline:rotten_tomatoes --output_dir outputs/sst2 \
        --do_train --do_eval --max_steps 300 --per_device_train_batch_size 32 --learning_rate 3e-3

Data: `--task_name` is one of sst2, cola, mrpc, qqp, stsb, mnli, qnli, rte, wnli. With `--dataset_name` unset the
task is loaded from the Hub as `load_dataset("nyu-mll/glue", task_name)` (needs the network); offline,
`--task_name sst2 --dataset_name offline:rotten_tomatoes` uses real Rotten Tomatoes critics' snippets in the sst2 layout
(`sentence`, `label`, `idx`; see `offline_data.py`). Any other Hub name or local path with the task's GLUE columns
works too. Inputs follow the GLUE column conventions (`sentence`; `sentence1` + `sentence2`; `question` + `sentence`;
`question1` + `question2`; `premise` + `hypothesis`), pairs are encoded as one sequence with the tokenizer's
separator, truncated to `--max_seq_length` tokens and padded per batch (`DataCollatorWithPadding`). mnli is evaluated
on `validation_matched`; stsb is a regression (`num_labels=1`).

Model: `--model_name_or_path` (a saved ITNet sequence classifier and its tokenizer) or a fresh
`ITNetForSequenceClassification` from the preset `--config_name` (default `itnet-unified`) with the tokenizer shipped
with `modeling_itnet`. Metrics: `accuracy` (from the offline `evaluate` module in `examples/metrics/accuracy`), plus
`f1` for mrpc/qqp, `matthews_correlation` for cola, `pearson`/`spearmanr` for stsb (computed here with numpy).
Writes `all_results.json`, the model with its tokenizer (so `pipeline("text-classification", model=output_dir)`
works), and pushes with `--push_to_hub`.

With `--do_eval` it also writes a model card, `README.md` with the eval metrics as Hub metadata (`model_card.py`),
and `--push_to_hub` pushes it in place of the card `Trainer.push_to_hub` generates.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import evaluate
import numpy as np
from datasets import load_dataset
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    set_seed,
)

from modeling_itnet import ITNetForSequenceClassification, preset_config, tokenizer_path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))
from model_card import push_model_card, write_model_card
from offline_data import load_offline

logger = logging.getLogger(__name__)

TASK_KEYS = {  # the text columns of each GLUE task: (first, second or None)
    "cola": ("sentence", None),
    "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
}
GLUE_HUB_NAME = "nyu-mll/glue"
CARD_METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr")  # eval metrics on the model card


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved ITNet sequence classifier (with its tokenizer) to start from."}
    )
    config_name: str = field(
        default="itnet-unified", metadata={"help": "Preset of a new model (modeling_itnet.list_presets())."}
    )


@dataclass
class DataTrainingArguments:
    task_name: str = field(default="sst2", metadata={"help": f"GLUE task: {', '.join(TASK_KEYS)}."})
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": f"None: {GLUE_HUB_NAME} with the task as config; offline:rotten_tomatoes (sst2 layout); a Hub name or path."
        },
    )
    max_seq_length: int = field(default=128, metadata={"help": "Inputs are truncated to this many tokens."})
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)


def load_data(args: DataTrainingArguments):
    if args.task_name not in TASK_KEYS:
        raise ValueError(f"Unknown GLUE task {args.task_name!r}; choose from {list(TASK_KEYS)}.")
    if args.dataset_name is None:
        return load_dataset(GLUE_HUB_NAME, args.task_name)
    if args.dataset_name.startswith("offline:"):
        if args.task_name != "sst2":
            raise ValueError("The offline data (offline:rotten_tomatoes) has the sst2 layout: use `--task_name sst2`.")
        return load_offline(args.dataset_name)
    return load_dataset(args.dataset_name)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of `x` (0-based), tied values sharing their average rank (as scipy.stats.rankdata, minus 1)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x))
    _, groups = np.unique(x, return_inverse=True)
    return (np.bincount(groups, weights=ranks) / np.bincount(groups))[groups]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def _f1(predictions: np.ndarray, references: np.ndarray) -> float:
    """F1 of the positive class (label 1), as GLUE reports for mrpc and qqp."""
    tp = float(((predictions == 1) & (references == 1)).sum())
    fp = float(((predictions == 1) & (references != 1)).sum())
    fn = float(((predictions != 1) & (references == 1)).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0


def _matthews(predictions: np.ndarray, references: np.ndarray) -> float:
    """Matthews correlation for binary labels (cola); 0 when a marginal is empty."""
    tp = float(((predictions == 1) & (references == 1)).sum())
    tn = float(((predictions == 0) & (references == 0)).sum())
    fp = float(((predictions == 1) & (references == 0)).sum())
    fn = float(((predictions == 0) & (references == 1)).sum())
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator > 0 else 0.0


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    set_seed(training_args.seed)

    task = data_args.task_name
    is_regression = task == "stsb"
    data = load_data(data_args)
    eval_split = "validation_matched" if task == "mnli" and "validation_matched" in data else "validation"
    for split, limit in (("train", data_args.max_train_samples), (eval_split, data_args.max_eval_samples)):
        if limit is not None and split in data:
            data[split] = data[split].select(range(min(limit, len(data[split]))))

    if is_regression:
        labels = None
    else:
        labels = list(data["train"].features["label"].names)

    if model_args.model_name_or_path:
        tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
        model = ITNetForSequenceClassification.from_pretrained(model_args.model_name_or_path)
        expected = 1 if is_regression else len(labels)
        if model.config.num_labels != expected:
            raise ValueError(f"The model has {model.config.num_labels} labels, the task {task!r} needs {expected}.")
        if labels and list(model.config.id2label.values()) == [f"LABEL_{i}" for i in range(expected)]:
            # a fresh head (e.g. from `python -m modeling_itnet.convert --num_labels`): name its labels after the task
            model.config.id2label = dict(enumerate(labels))
            model.config.label2id = {label: i for i, label in enumerate(labels)}
    else:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
        label_kwargs = (
            {"num_labels": 1, "problem_type": "regression"}
            if is_regression
            else {
                "num_labels": len(labels),
                "id2label": dict(enumerate(labels)),
                "label2id": {label: i for i, label in enumerate(labels)},
                "problem_type": "single_label_classification",
            }
        )
        config = preset_config(model_args.config_name, vocab_size=len(tokenizer), **label_kwargs)
        model = ITNetForSequenceClassification(config)
    logger.info("ITNetForSequenceClassification: %.2fM parameters", model.num_parameters() / 1e6)

    first, second = TASK_KEYS[task]

    def tokenize(batch: dict) -> dict:
        texts = (batch[first],) if second is None else (batch[first], batch[second])
        encoded = tokenizer(*texts, truncation=True, max_length=data_args.max_seq_length)
        encoded["labels"] = [float(x) for x in batch["label"]] if is_regression else batch["label"]
        return encoded

    splits = [s for s in ("train", eval_split) if s in data]
    encoded = {
        split: data[split].map(
            tokenize, batched=True, remove_columns=data[split].column_names, desc=f"tokenizing {split}"
        )
        for split in splits
    }

    accuracy = evaluate.load(str(EXAMPLES / "metrics" / "accuracy"))

    def compute_metrics(prediction) -> dict:
        logits, references = prediction.predictions, prediction.label_ids
        if is_regression:
            scores, references = np.squeeze(logits, -1).astype(np.float64), references.astype(np.float64)
            pearson = _pearson(scores, references)
            spearman = _pearson(_ranks(scores), _ranks(references))
            return {"pearson": pearson, "spearmanr": spearman, "combined_score": (pearson + spearman) / 2}
        predictions = logits.argmax(-1)
        metrics = accuracy.compute(predictions=predictions, references=references)
        if task in ("mrpc", "qqp"):
            metrics["f1"] = _f1(predictions, references)
        if task == "cola":
            metrics["matthews_correlation"] = _matthews(predictions, references)
        return metrics

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=encoded["train"] if training_args.do_train else None,
        eval_dataset=encoded[eval_split] if training_args.do_eval else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,  # saved beside the weights by `save_model`
        compute_metrics=compute_metrics,
    )
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    card = None
    if training_args.do_eval:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        card = write_model_card(
            trainer,
            pipeline_tag="text-classification",
            task_type="text-classification",
            dataset_id=data_args.dataset_name or GLUE_HUB_NAME,
            split=eval_split,
            metrics={k: metrics[f"eval_{k}"] for k in CARD_METRICS if f"eval_{k}" in metrics},
            description=f"An ITNet text classifier for the GLUE task `{task}`.",
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(
            finetuned_from=model_args.model_name_or_path,
            tasks="text-classification",
            dataset_tags=data_args.dataset_name or GLUE_HUB_NAME,
            dataset_args=task,
        )
        if card is not None:
            push_model_card(trainer, card, token=training_args.hub_token)


if __name__ == "__main__":
    main()
