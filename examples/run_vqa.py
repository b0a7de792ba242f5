"""Fine-tune or train ITNet for visual question answering (VQAv2 layout), in the style of transformers' examples.

    python examples/run_vqa.py --output_dir outputs/vqa --do_train --do_eval --max_steps 300 \
        --per_device_train_batch_size 32 --learning_rate 3e-3

Data: `--dataset_name offline:easy_vqa` (the default: real easy-VQA questions and images shipped by PyPI `easy-vqa`,
see `offline_data.py`) or any dataset with the VQAv2 fine-tuning layout used by ViLT (`question`, `image`, `label` =
`{"ids": [...], "weights": [...]}` soft scores) by Hub name or local path, with its answer vocabulary in
`--answers_file` (a JSON list, index = label id).

Model: `--model_name_or_path` (a saved ITNet, e.g. to continue training) or a fresh model from the preset
`--config_name` (default `itnet-unified`) with `--image_size`/`--patch_size`. Metrics: `vqa_score` (the soft score of the
predicted answer, VQAv2's accuracy when the weights are `min(1, votes / 3)`) and `accuracy` (the predicted answer has
the largest weight). Writes `all_results.json`, the model, its `ITNetProcessor`, and pushes with `--push_to_hub`.

With `--do_eval` it also writes a model card, `README.md` with the eval metrics as Hub metadata (`model_card.py`),
and `--push_to_hub` pushes it in place of the card `Trainer.push_to_hub` generates.
"""

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import load_dataset
from transformers import AutoTokenizer, HfArgumentParser, Trainer, TrainingArguments, set_seed

from modeling_itnet import (
    ITNetForVisualQuestionAnswering,
    ITNetImageProcessorPil,
    ITNetProcessor,
    preset_config,
    tokenizer_path,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_card import push_model_card, write_model_card
from offline_data import EASY_VQA_ANSWERS, load_offline

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "A saved ITNet VQA model to start from."})
    config_name: str = field(
        default="itnet-unified", metadata={"help": "Preset of a new model (modeling_itnet.list_presets())."}
    )
    image_size: int = field(
        default=32, metadata={"help": "Side the images are resized to (a new model's image_size)."}
    )
    patch_size: int = field(default=4, metadata={"help": "Patch side of a new model."})


@dataclass
class DataTrainingArguments:
    dataset_name: str = field(
        default="offline:easy_vqa", metadata={"help": "offline:easy_vqa, a Hub name or a local path."}
    )
    answers_file: str | None = field(
        default=None, metadata={"help": "JSON list of answers (needed for non-offline data)."}
    )
    max_question_length: int = field(default=32, metadata={"help": "Questions are truncated to this many tokens."})
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)


def load_data(args: DataTrainingArguments):
    """The dataset and its answer vocabulary."""
    if args.dataset_name.startswith("offline:"):
        return load_offline(args.dataset_name), list(EASY_VQA_ANSWERS)
    if args.answers_file is None:
        raise ValueError(
            "`--answers_file` (a JSON list of the answers) is required for a dataset not named offline:..."
        )
    return load_dataset(args.dataset_name), json.loads(Path(args.answers_file).read_text())


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    set_seed(training_args.seed)

    data, answers = load_data(data_args)
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if limit is not None and split in data:
            data[split] = data[split].select(range(min(limit, len(data[split]))))

    if model_args.model_name_or_path:
        model = ITNetForVisualQuestionAnswering.from_pretrained(model_args.model_name_or_path)
        processor = ITNetProcessor.from_pretrained(model_args.model_name_or_path)
        if [model.config.id2label[i] for i in range(model.config.num_labels)] != answers:
            raise ValueError("The model's `id2label` differs from the dataset's answer vocabulary.")
    else:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
        config = preset_config(
            model_args.config_name,
            vocab_size=len(tokenizer),
            image_size=model_args.image_size,
            patch_size=model_args.patch_size,
            num_labels=len(answers),
            id2label=dict(enumerate(answers)),
            label2id={answer: i for i, answer in enumerate(answers)},
        )
        model = ITNetForVisualQuestionAnswering(config)
        size = {"height": model_args.image_size, "width": model_args.image_size}
        processor = ITNetProcessor(ITNetImageProcessorPil(size=size, do_convert_rgb=True), tokenizer)
    logger.info("ITNetForVisualQuestionAnswering: %.2fM parameters", model.num_parameters() / 1e6)

    def collate(rows: list[dict]) -> dict:
        """Questions and images -> model inputs; `{"ids", "weights"}` -> soft scores `[B, num_answers]`."""
        batch = processor(
            images=[row["image"] for row in rows],
            text=[row["question"] for row in rows],
            truncation=True,
            max_length=data_args.max_question_length,
        )
        batch["labels"] = torch.zeros(len(rows), len(answers))
        for i, row in enumerate(rows):
            batch["labels"][i, row["label"]["ids"]] = torch.tensor(row["label"]["weights"], dtype=torch.float)
        return batch

    def compute_metrics(prediction) -> dict:
        logits, targets = prediction.predictions, prediction.label_ids
        chosen = logits.argmax(-1)
        score = targets[np.arange(len(chosen)), chosen]
        return {"vqa_score": float(score.mean()), "accuracy": float((score == targets.max(-1)).mean())}

    training_args.remove_unused_columns = False  # the collator reads the raw `image` and `question` columns
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data["train"] if training_args.do_train else None,
        eval_dataset=data["validation"] if training_args.do_eval else None,
        data_collator=collate,
        compute_metrics=compute_metrics,
    )
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()
        processor.save_pretrained(training_args.output_dir)
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
            pipeline_tag="visual-question-answering",
            task_type="visual-question-answering",
            dataset_id=data_args.dataset_name,
            split="validation",
            metrics={"vqa_score": metrics["eval_vqa_score"], "accuracy": metrics["eval_accuracy"]},
            description=f"An ITNet VQA model: question and image in one sequence, {len(answers)} answers.",
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(finetuned_from=model_args.model_name_or_path, tasks="visual-question-answering")
        if card is not None:
            push_model_card(trainer, card, token=training_args.hub_token)


if __name__ == "__main__":
    main()
