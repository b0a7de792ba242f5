"""Train ITNet on NLVR2-style image-pair reasoning (is the sentence true of the two images?), in the style of
transformers' examples.

    python examples/run_nlvr2.py --output_dir outputs/nlvr2 --do_train --do_eval --max_steps 2000 \
        --per_device_train_batch_size 32 --learning_rate 3e-4

Data: `--dataset_name offline:nlvr2_easy` (the default: pairs of real easy-VQA images with generated statements,
balanced True/False; see `offline_data.py`) or any dataset with the NLVR2 columns `left_image`, `right_image`,
`sentence` and a `label` (0 = False, 1 = True), by Hub name or local path.

Model: `--model_name_or_path` or a fresh `ITNetForImagesAndTextClassification` from the preset `--config_name`
(default `itnet-unified`) with `--image_size`/`--patch_size`: the sentence and both images in one sequence, each image
with its own modality embedding (so "left" and "right" mean something). Writes `all_results.json` (accuracy), the
model and its `ITNetProcessor`; pushes with `--push_to_hub`.

With `--do_eval` it also writes a model card, `README.md` with the eval metrics as Hub metadata (`model_card.py`),
and `--push_to_hub` pushes it in place of the card `Trainer.push_to_hub` generates.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import load_dataset
from transformers import AutoTokenizer, HfArgumentParser, Trainer, TrainingArguments, set_seed

from modeling_itnet import (
    ITNetForImagesAndTextClassification,
    ITNetImageProcessorPil,
    ITNetProcessor,
    preset_config,
    tokenizer_path,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_card import push_model_card, write_model_card
from offline_data import NLVR2_EASY_LABELS, load_offline

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "A saved ITNet NLVR2 model to start from."})
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
        default="offline:nlvr2_easy", metadata={"help": "offline:nlvr2_easy, a Hub name or a path."}
    )
    max_sentence_length: int = field(default=48, metadata={"help": "Sentences are truncated to this many tokens."})
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    set_seed(training_args.seed)

    name = data_args.dataset_name
    data = load_offline(name) if name.startswith("offline:") else load_dataset(name)
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if limit is not None and split in data:
            data[split] = data[split].select(range(min(limit, len(data[split]))))

    if model_args.model_name_or_path:
        model = ITNetForImagesAndTextClassification.from_pretrained(model_args.model_name_or_path)
        processor = ITNetProcessor.from_pretrained(model_args.model_name_or_path)
    else:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
        config = preset_config(
            model_args.config_name,
            vocab_size=len(tokenizer),
            image_size=model_args.image_size,
            patch_size=model_args.patch_size,
            num_labels=2,
            id2label=dict(enumerate(NLVR2_EASY_LABELS)),
            label2id={label: i for i, label in enumerate(NLVR2_EASY_LABELS)},
        )
        model = ITNetForImagesAndTextClassification(config)
        size = {"height": model_args.image_size, "width": model_args.image_size}
        processor = ITNetProcessor(ITNetImageProcessorPil(size=size, do_convert_rgb=True), tokenizer)
    logger.info("ITNetForImagesAndTextClassification: %.2fM parameters", model.num_parameters() / 1e6)

    def collate(rows: list[dict]) -> dict:
        """Sentences and image pairs -> `input_ids`, `attention_mask`, `pixel_values [B, 2, C, H, W]`, `labels [B]`."""
        batch = processor(
            images=[(row["left_image"], row["right_image"]) for row in rows],
            text=[row["sentence"] for row in rows],
            truncation=True,
            max_length=data_args.max_sentence_length,
        )
        batch["labels"] = torch.tensor([int(row["label"]) for row in rows])
        return batch

    def compute_metrics(prediction) -> dict:
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    training_args.remove_unused_columns = False  # the collator reads the raw image and sentence columns
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
            pipeline_tag=None,  # no transformers pipeline for a sentence about an image pair
            task_type="visual-reasoning",
            dataset_id=name,
            split="validation",
            metrics={"accuracy": metrics["eval_accuracy"]},
            description="An ITNet NLVR2-style classifier: is the sentence true of the left and right images?",
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(finetuned_from=model_args.model_name_or_path)
        if card is not None:
            push_model_card(trainer, card, token=training_args.hub_token)


if __name__ == "__main__":
    main()
