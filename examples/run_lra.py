"""Train ITNet on a Long Range Arena task (Tay et al. 2020), in the style of transformers' examples.

    python examples/run_lra.py --task listops --output_dir outputs/listops --do_train --do_eval --do_predict \
        --max_steps 600 --per_device_train_batch_size 32 --learning_rate 3e-3 --use_cpu

Tasks: `listops` only for now. The other LRA tasks (text: IMDb bytes, retrieval: AAN, image: CIFAR-10 grey pixels,
pathfinder) need their data, which is not available offline; they are not implemented here.

Data (listops): by default generated locally with LRA's rules (`offline_data.generate_listops`, after
`lra_benchmarks/data/listops.py`): MIN / MAX / MED / SM (sum modulo 10) over digits, trees at most `--max_depth` deep
(10), at most `--max_args` arguments per operator (10), kept when `--min_length` < tokens < `--max_length`, 10 classes
(the value), splits of `--train_size` / `--validation_size` / `--test_size` expressions, cached on disk as `datasets`.
The defaults are a quick CPU run: 20 < tokens < 100, 10,000 / 500 / 500 expressions (seconds to generate),
`--max_seq_length 128`. LRA's setting (a GPU job: 500-2000 tokens take seconds per step on a few CPU cores):

    --min_length 500 --max_length 2000 --max_seq_length 2000 --train_size 96000 --validation_size 2000 --test_size 2000

`--dataset_name offline:listops` is the cached `load_offline("offline:listops")`: LRA's lengths at 2,000 / 200 / 200.
The layout is that of LRA's TSVs: `Source` (the expression, with LRA's binary-tree parentheses) and `Target` (the
value, a `ClassLabel` "0".."9"). `--data_dir` reads LRA's own release instead
(`lra_release/listops-1000/basic_{train,val,test}.tsv`), `--dataset_name` a Hub dataset or local path with the same
columns.

Tokens are those of LRA: whitespace-separated digits, operators (`[MIN`, `[MAX`, `[MED`, `[SM`) and the closing
bracket `]`; the parentheses carry nothing and are dropped (as LRA's length count and later ports do). The tokenizer
is a word-level `tokenizers` model wrapped as `PreTrainedTokenizerFast` (`build_listops_tokenizer`), saved with the
model so that `AutoTokenizer.from_pretrained(output_dir)` loads it. Sequences are truncated to `--max_seq_length`
(LRA: 2000, longer than any expression) and padded per batch; the classifier reads the first token's state (the
`itnet-unified` preset: a masked mean dilutes the one position that holds the answer over hundreds of tokens, and
does not learn ListOps).

Model: `--model_name_or_path` or a fresh `ITNetForSequenceClassification` from the preset `--config_name` (default
`itnet-unified`), with `--kernel_families` (comma-separated; default: the preset's, `spectral,local,low_rank`). Metric:
accuracy (validation as `eval_accuracy`, test as `test_accuracy` with `--do_predict`). Writes `all_results.json`,
the model and its tokenizer; pushes with `--push_to_hub`. With `--do_eval` it also writes a model card, `README.md`
with the validation accuracy as Hub metadata (`model_card.py`), which `--push_to_hub` pushes in place of the card
`Trainer.push_to_hub` generates.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, DatasetDict, Features, Value, load_dataset
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import (
    AutoTokenizer,
    DataCollatorWithPadding,
    HfArgumentParser,
    PreTrainedTokenizerFast,
    Trainer,
    TrainingArguments,
    set_seed,
)

from modeling_itnet import ITNetForSequenceClassification, preset_config

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))
from model_card import push_model_card, write_model_card
from offline_data import LISTOPS_END, LISTOPS_LABELS, LISTOPS_OPERATORS, load_listops, load_offline

logger = logging.getLogger(__name__)

TASKS = ("listops",)
SPECIAL_TOKENS = {
    "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"
}  # fmt: skip
LRA_SPLIT_FILES = {"train": "basic_train.tsv", "validation": "basic_val.tsv", "test": "basic_test.tsv"}


def build_listops_tokenizer(max_length: int = 2000) -> PreTrainedTokenizerFast:
    """LRA's ListOps vocabulary as a word-level tokenizer: `[PAD]` (id 0), `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`, the
    digits 0-9, the four operators and `]`. Parentheses are removed by the normaliser; no special tokens are added
    around a sequence (LRA adds none; `itnet-unified` reads the first token, the outermost operator)."""
    vocabulary = list(SPECIAL_TOKENS.values()) + LISTOPS_LABELS + list(LISTOPS_OPERATORS) + [LISTOPS_END]
    tokenizer = Tokenizer(models.WordLevel({token: i for i, token in enumerate(vocabulary)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Replace("(", " "), normalizers.Replace(")", " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=max_length, **SPECIAL_TOKENS)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved ITNet sequence classifier (with its tokenizer) to start from."}
    )
    config_name: str = field(
        default="itnet-unified", metadata={"help": "Preset of a new model (modeling_itnet.list_presets())."}
    )
    kernel_families: str | None = field(
        default=None, metadata={"help": "Comma-separated kernel families of a new model (default: the preset's)."}
    )


@dataclass
class DataTrainingArguments:
    task: str = field(default="listops", metadata={"help": f"LRA task: {', '.join(TASKS)}."})
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "None: generated with the flags below; offline:listops (LRA lengths, 2000/200/200); a Hub name "
            "or path with Source and Target."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "LRA's listops folder with basic_{train,val,test}.tsv (overrides dataset_name)."},
    )
    train_size: int = field(default=10000, metadata={"help": "Generated training expressions (LRA: 96000)."})
    validation_size: int = field(default=500, metadata={"help": "Generated validation expressions (LRA: 2000)."})
    test_size: int = field(default=500, metadata={"help": "Generated test expressions (LRA: 2000)."})
    min_length: int = field(default=20, metadata={"help": "Generated expressions have more tokens (LRA: 500)."})
    max_length: int = field(default=100, metadata={"help": "... and fewer tokens than this (LRA: 2000)."})
    max_depth: int = field(default=10, metadata={"help": "Maximum tree depth, the root at depth 1 (LRA: 10)."})
    max_args: int = field(default=10, metadata={"help": "Maximum arguments per operator (LRA: 10)."})
    listops_seed: int = field(default=0, metadata={"help": "Seed of the generator."})
    max_seq_length: int = field(default=128, metadata={"help": "Inputs are truncated to this many tokens (LRA: 2000)"})
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    max_predict_samples: int | None = field(default=None)


def load_data(args: DataTrainingArguments) -> DatasetDict:
    if args.task not in TASKS:
        raise ValueError(f"Unknown LRA task {args.task!r}: only {TASKS} (the other tasks need their data).")
    if args.data_dir is not None:
        files = {split: str(Path(args.data_dir) / name) for split, name in LRA_SPLIT_FILES.items()}
        data = load_dataset("csv", data_files=files, delimiter="\t")
        return data.cast(Features({"Source": Value("string"), "Target": ClassLabel(names=LISTOPS_LABELS)}))
    if args.dataset_name is None:
        return load_listops(
            args.train_size, args.validation_size, args.test_size, min_length=args.min_length,
            max_length=args.max_length, max_depth=args.max_depth, max_args=args.max_args, seed=args.listops_seed,
        )  # fmt: skip
    if args.dataset_name.startswith("offline:"):
        if args.dataset_name != "offline:listops":
            raise ValueError(f"{args.dataset_name!r} is not ListOps: the offline ListOps data is `offline:listops`.")
        return load_offline(args.dataset_name)
    return load_dataset(args.dataset_name)


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    set_seed(training_args.seed)

    data = load_data(data_args)
    if data_args.data_dir is not None:
        dataset_id, dataset_description = "lra-listops", f"LRA ListOps release ({data_args.data_dir})"
    elif data_args.dataset_name is None:
        dataset_id = "offline:listops"
        dataset_description = (
            f"ListOps generated with LRA's rules (`offline_data.generate_listops`): {data_args.min_length} < tokens < "
            f"{data_args.max_length}, depth <= {data_args.max_depth}, <= {data_args.max_args} arguments, "
            f"{data_args.train_size:,} / {data_args.validation_size:,} / {data_args.test_size:,} expressions, "
            f"seed {data_args.listops_seed}"
        )
        if data_args.max_length - 1 > data_args.max_seq_length:
            logger.warning(
                "Expressions of up to %d tokens are truncated to --max_seq_length %d: their labels may be unreadable.",
                data_args.max_length - 1, data_args.max_seq_length,
            )  # fmt: skip
    elif data_args.dataset_name == "offline:listops":
        dataset_id = data_args.dataset_name
        dataset_description = (
            "offline:listops: ListOps generated with LRA's rules (500 < tokens < 2000), 2,000 / 200 / 200"
        )
    else:
        dataset_id = dataset_description = data_args.dataset_name
    limits = {
        "train": data_args.max_train_samples,
        "validation": data_args.max_eval_samples,
        "test": data_args.max_predict_samples,
    }
    for split, limit in limits.items():
        if limit is not None and split in data:
            data[split] = data[split].select(range(min(limit, len(data[split]))))

    if model_args.model_name_or_path:
        tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
        model = ITNetForSequenceClassification.from_pretrained(model_args.model_name_or_path)
        if model.config.num_labels != len(LISTOPS_LABELS):
            raise ValueError(f"The model has {model.config.num_labels} labels, ListOps needs {len(LISTOPS_LABELS)}.")
    else:
        tokenizer = build_listops_tokenizer(data_args.max_seq_length)
        overrides = {"kernel_families": model_args.kernel_families.split(",")} if model_args.kernel_families else {}
        config = preset_config(
            model_args.config_name,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            num_labels=len(LISTOPS_LABELS),
            id2label=dict(enumerate(LISTOPS_LABELS)),
            label2id={label: i for i, label in enumerate(LISTOPS_LABELS)},
            problem_type="single_label_classification",
            **overrides,
        )
        config.max_position_embeddings = max(config.max_position_embeddings, data_args.max_seq_length)
        model = ITNetForSequenceClassification(config)
    logger.info(
        "ITNetForSequenceClassification: %.2fM parameters, kernel families %s",
        model.num_parameters() / 1e6, model.config.kernel_families,
    )  # fmt: skip

    def tokenize(batch: dict) -> dict:
        encoded = tokenizer(batch["Source"], truncation=True, max_length=data_args.max_seq_length)
        encoded["labels"] = batch["Target"]
        return encoded

    encoded = {
        split: data[split].map(
            tokenize, batched=True, remove_columns=data[split].column_names, desc=f"tokenizing {split}"
        )
        for split in ("train", "validation", "test")
        if split in data
    }

    import evaluate  # here, so that importing this module (tests, `build_listops_tokenizer`) stays light

    accuracy = evaluate.load(str(EXAMPLES / "metrics" / "accuracy"))

    def compute_metrics(prediction) -> dict:
        return accuracy.compute(predictions=prediction.predictions.argmax(-1), references=prediction.label_ids)

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=encoded["train"] if training_args.do_train else None,
        eval_dataset=encoded["validation"] if training_args.do_eval else None,
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
            dataset_id=dataset_id,
            dataset_name=dataset_description,
            split="validation",
            metrics={"accuracy": metrics["eval_accuracy"]},
            description="An ITNet classifier for ListOps (Long Range Arena): the value 0-9 of a nested MIN / MAX / "
            "MED / SM expression.",
            language=None,
        )
    if training_args.do_predict and "test" in encoded:
        metrics = trainer.evaluate(encoded["test"], metric_key_prefix="test")
        trainer.log_metrics("test", metrics)
        trainer.save_metrics("test", metrics)
    if training_args.push_to_hub:
        trainer.push_to_hub(
            finetuned_from=model_args.model_name_or_path,
            tasks="text-classification",
            dataset_tags="lra-listops",
            dataset=dataset_description,
        )
        if card is not None:
            push_model_card(trainer, card, token=training_args.hub_token)


if __name__ == "__main__":
    main()
