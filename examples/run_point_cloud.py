"""Train ITNet for point-cloud classification (ModelNet40 layout), in the style of transformers' examples.

    python examples/run_point_cloud.py --output_dir outputs/points --do_train --do_eval --max_steps 300 \
        --per_device_train_batch_size 32 --learning_rate 3e-3

Data: `--dataset_name offline:point_clouds` (the default: shapes generated from `trimesh` primitives, randomly
rotated, 256 surface points in the unit ball; see `offline_data.py`) or any dataset with `points` (`[N, 3]` per
example) and a `ClassLabel` `label`, by Hub name or local path. Clouds of different sizes are padded in the batch with
an `attention_mask` (padding is exact). `--normalize` centres each cloud and scales it into the unit ball.

Model: `--model_name_or_path` or a fresh model from the preset `--config_name` (default `itnet-unified`) with
`--kernel_families` (default: the preset's; point clouds use its content families only, `low_rank`). Writes `all_results.json`
(accuracy) and the model; pushes with `--push_to_hub`.

With `--do_eval` it also writes a model card, `README.md` with the eval metrics as Hub metadata (`model_card.py`),
and `--push_to_hub` pushes it in place of the card `Trainer.push_to_hub` generates.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import load_dataset
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

from modeling_itnet import ITNetForPointCloudClassification, preset_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_card import push_model_card, write_model_card
from offline_data import load_offline

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "A saved ITNet point-cloud model."})
    config_name: str = field(default="itnet-unified", metadata={"help": "Preset of a new model."})
    kernel_families: str | None = field(
        default=None, metadata={"help": "Comma-separated: low_rank, softmax, mlp (default: the preset's)."}
    )


@dataclass
class DataTrainingArguments:
    dataset_name: str = field(
        default="offline:point_clouds", metadata={"help": "offline:point_clouds, a Hub name or a path."}
    )
    normalize: bool = field(default=False, metadata={"help": "Centre each cloud and scale it into the unit ball."})
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    set_seed(training_args.seed)

    name = data_args.dataset_name
    data = load_offline(name) if name.startswith("offline:") else load_dataset(name)
    eval_split = "validation" if "validation" in data else "test"
    for split, limit in (("train", data_args.max_train_samples), (eval_split, data_args.max_eval_samples)):
        if limit is not None and split in data:
            data[split] = data[split].select(range(min(limit, len(data[split]))))
    labels = data["train"].features["label"].names

    if model_args.model_name_or_path:
        model = ITNetForPointCloudClassification.from_pretrained(model_args.model_name_or_path)
    else:
        config = preset_config(
            model_args.config_name,
            **({"kernel_families": model_args.kernel_families.split(",")} if model_args.kernel_families else {}),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        model = ITNetForPointCloudClassification(config)
    logger.info("ITNetForPointCloudClassification: %.2fM parameters", model.num_parameters() / 1e6)

    def collate(rows: list[dict]) -> dict:
        """Clouds `[N_b, 3]` -> `points [B, N_max, 3]` zero-padded, `attention_mask [B, N_max]`, `labels [B]`."""
        clouds = [torch.as_tensor(np.asarray(row["points"], dtype=np.float32)) for row in rows]
        if data_args.normalize:
            clouds = [c - c.mean(0) for c in clouds]
            clouds = [c / c.norm(dim=-1).max().clamp_min(1e-12) for c in clouds]
        length = max(len(c) for c in clouds)
        points = torch.zeros(len(clouds), length, 3)
        mask = torch.zeros(len(clouds), length)
        for i, c in enumerate(clouds):
            points[i, : len(c)], mask[i, : len(c)] = c, 1
        return {"points": points, "attention_mask": mask, "labels": torch.tensor([row["label"] for row in rows])}

    def compute_metrics(prediction) -> dict:
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    training_args.remove_unused_columns = False
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data["train"] if training_args.do_train else None,
        eval_dataset=data[eval_split] if training_args.do_eval else None,
        data_collator=collate,
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
            pipeline_tag=None,  # no transformers pipeline for point clouds
            task_type="point-cloud-classification",
            dataset_id=name,
            split=eval_split,
            metrics={"accuracy": metrics["eval_accuracy"]},
            description=f"An ITNet point-cloud classifier ({len(labels)} classes).",
            language=None,
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(finetuned_from=model_args.model_name_or_path)
        if card is not None:
            push_model_card(trainer, card, token=training_args.hub_token)


if __name__ == "__main__":
    main()
