"""Models, data and the parameter-matching routine of `benchmarks/compare_specialized.py`.

Every task has a `Task` with: the ITNet model (one shared configuration, `SHARED_ITNET`, plus the task's head and
input settings) and the specialised baselines, each a builder `width -> nn.Module` whose width `match_width` tunes so
that its parameter count is within ±10% of the ITNet model's. Baselines are transformers' own classes (small configs)
or, for the LSTM and PointNet, the small `nn.Module`s below. All models take a batch dict and return an object with
`.loss` and `.logits` (the hand-written ones return a `SimpleNamespace`).
"""

import itertools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

# One ITNet configuration for every task: a preset (and, for ablations, overrides of its fields). Point clouds build
# the preset's content families only (the model drops the grid families itself).
SHARED_ITNET = {"preset": "itnet-unified", "overrides": {}}
PARAMETER_TOLERANCE = 0.10
VALIDATION_ROWS = {
    "images": 2000,
    "vqa": 1000,
    "nlvr2": 1000,
    "points": 300,
}  # carved from the end of train where no split exists


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, tied weights counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def match_width(
    build: Callable[[int], nn.Module], target: int, low: int = 4, high: int = 1024, multiple: int = 4
) -> tuple[int, int]:
    """The width (a multiple of `multiple` in [low, high]) whose `build(width)` has the parameter count closest to
    `target`, by bisection (parameter counts grow with width). Returns `(width, parameters)`."""
    counts = {}

    def count(width: int) -> int:
        if width not in counts:
            counts[width] = count_parameters(build(width))
        return counts[width]

    lo, hi = max(1, low // multiple), max(1, high // multiple)
    while lo < hi:  # smallest width whose count >= target
        mid = (lo + hi) // 2
        if count(mid * multiple) < target:
            lo = mid + 1
        else:
            hi = mid
    candidates = [w * multiple for w in {max(low // multiple, lo - 1), lo} if w >= 1]
    best = min(candidates, key=lambda w: abs(count(w) - target))
    return best, count(best)


def within_tolerance(parameters: int, target: int, tolerance: float = PARAMETER_TOLERANCE) -> bool:
    return abs(parameters - target) <= tolerance * target


# --------------------------------------------------------------------------------------------------------------------
# Hand-written baselines


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of `hidden` `[B, T, D]` over the tokens where `mask` `[B, T]` is 1, `[B, D]`."""
    return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


class LSTMClassifier(nn.Module):
    """Embedding -> 1-layer bidirectional LSTM -> masked mean -> linear."""

    def __init__(self, vocab_size: int, width: int, num_labels: int, pad_token_id: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=pad_token_id)
        self.lstm = nn.LSTM(width, width // 2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(width, num_labels)

    def forward(self, input_ids, attention_mask=None, labels=None, **_):
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        hidden, _ = self.lstm(self.embed(input_ids))
        pooled = masked_mean(hidden, mask)
        logits = self.head(pooled)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return SimpleNamespace(loss=loss, logits=logits)


class LSTMLanguageModel(nn.Module):
    """Embedding -> 2-layer LSTM -> output layer tied to the embedding."""

    def __init__(self, vocab_size: int, width: int, num_layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.lstm = nn.LSTM(width, width, num_layers=num_layers, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)
        self.head.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=0.02)  # as GPT-2: N(0, 1) tied output logits start far too large

    def forward(self, input_ids, labels=None, **_):
        hidden, _ = self.lstm(self.embed(input_ids))
        logits = self.head(self.norm(hidden))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1))
        return SimpleNamespace(loss=loss, logits=logits)


class PointNet(nn.Module):
    """PointNet (Qi et al. 2017) without the T-nets: shared per-point MLP 3 -> w -> w -> 2w (1x1 convs, batch norm),
    max pooling over the points, MLP head 2w -> w -> classes."""

    def __init__(self, width: int, num_labels: int):
        super().__init__()
        dims = [3, width, width, 2 * width]
        layers = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Conv1d(a, b, 1), nn.BatchNorm1d(b), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, num_labels))

    def forward(self, points, attention_mask=None, labels=None, **_):
        features = self.features(points.transpose(1, 2))  # [B, C, N]
        if attention_mask is not None:
            features = features.masked_fill(~attention_mask.bool().unsqueeze(1), -math.inf)
        logits = self.head(features.max(-1).values)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return SimpleNamespace(loss=loss, logits=logits)


# --------------------------------------------------------------------------------------------------------------------
# Tasks


@dataclass
class Task:
    name: str
    dataset: str
    metric: str  # "accuracy" or "perplexity"
    batch_size: int
    itnet: Callable[[], nn.Module]
    baselines: dict[str, Callable[[int], nn.Module]]
    load: Callable[[int, bool], dict]  # (train samples needed, quick) -> {"train", "validation", "test"}
    multiples: dict[str, int] = field(default_factory=dict)
    note: str = ""


def _itnet_config(**overrides):
    """The shared preset with the task's head and input settings, under `SHARED_ITNET["overrides"]` (a command's
    `--overrides` win over the task's settings: `{"patch_size": 7}` changes the images task's patches)."""
    from modeling_itnet import preset_config

    return preset_config(SHARED_ITNET["preset"], **{**overrides, **SHARED_ITNET["overrides"]})


def _tokenizer():
    from transformers import AutoTokenizer

    from modeling_itnet import tokenizer_path

    return AutoTokenizer.from_pretrained(tokenizer_path())


def _normalise(images: np.ndarray) -> torch.Tensor:
    return (torch.as_tensor(images, dtype=torch.float32) / 255.0 - 0.5) / 0.5


def _take(n: int, limit: int | None) -> int:
    return n if limit is None else min(n, limit)


def _three_splits(data, task: str, test_key: str, validation_key: str | None, quick: bool, limits: dict):
    """`{"train", "validation", "test"}` row selections: the dataset's own validation split, or the last
    `VALIDATION_ROWS[task]` rows of its train split (then not trained on); `limits` caps each split (quick: 300)."""
    train = data["train"]
    if validation_key is None:
        cut = len(train) - VALIDATION_ROWS[task]
        splits = {"train": train.select(range(cut)), "validation": train.select(range(cut, len(train)))}
    else:
        splits = {"train": train, "validation": data[validation_key]}
    splits["test"] = data[test_key]
    out = {}
    for split, rows in splits.items():
        limit = 300 if quick and split != "train" else limits.get(split)
        out[split] = rows.select(range(_take(len(rows), limit)))
    return out


# images --------------------------------------------------------------------------------------------------------------


def image_dataset_name() -> str:
    from offline_data import FASHION_MNIST_DIR

    return "fashion_mnist" if FASHION_MNIST_DIR.exists() else "mnist"


def load_images(train_needed: int, quick: bool) -> dict:
    from offline_data import load_offline

    data = load_offline(image_dataset_name())
    out = {}
    for split, rows in _three_splits(data, "images", "test", None, quick, {"train": train_needed}).items():
        images = np.stack([np.asarray(image, dtype=np.uint8) for image in rows["image"]])[:, None]
        out[split] = {"pixel_values": _normalise(images), "labels": torch.tensor(rows["label"])}
    return out


def images_task() -> Task:
    from transformers import ResNetConfig, ResNetForImageClassification, ViTConfig, ViTForImageClassification

    from modeling_itnet import ITNetForImageClassification

    image = {"image_size": 28, "patch_size": 4, "num_channels": 1}
    return Task(
        name="images",
        dataset=f"offline:{image_dataset_name()}",
        metric="accuracy",
        batch_size=64,
        itnet=lambda: ITNetForImageClassification(_itnet_config(num_labels=10, **image)),
        baselines={
            "ViT": lambda w: ViTForImageClassification(
                ViTConfig(
                    hidden_size=w,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=2 * w,
                    num_labels=10,
                    hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0,
                    **image,
                )
            ),
            "ResNet": lambda w: ResNetForImageClassification(
                ResNetConfig(
                    num_channels=1,
                    embedding_size=w,
                    hidden_sizes=[w, 2 * w, 4 * w],
                    depths=[1, 1, 1],
                    layer_type="basic",
                    downsample_in_first_stage=False,
                    num_labels=10,
                )
            ),
        },
        load=load_images,
        multiples={"ResNet": 2},
        note="" if image_dataset_name() == "fashion_mnist" else "Fashion-MNIST absent: MNIST-5k used",
    )


# sentiment -----------------------------------------------------------------------------------------------------------

TEXT_MAX_LENGTH = 64


def load_sentiment(train_needed: int, quick: bool) -> dict:
    from offline_data import load_offline

    data = load_offline("rotten_tomatoes")
    tokenizer = _tokenizer()
    out = {}
    for split, rows in _three_splits(data, "sentiment", "test", "validation", quick, {}).items():
        encoded = tokenizer(list(rows["sentence"]), truncation=True, max_length=TEXT_MAX_LENGTH)
        out[split] = {"input_ids": encoded["input_ids"], "labels": torch.tensor(rows["label"])}
    out["pad_token_id"] = tokenizer.pad_token_id
    return out


def _bert(vocab_size, num_labels, max_positions, w):
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(
        BertConfig(
            vocab_size=vocab_size,
            hidden_size=w,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=2 * w,
            max_position_embeddings=max_positions,
            type_vocab_size=1,
            num_labels=num_labels,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    )


def sentiment_task() -> Task:
    from modeling_itnet import ITNetForSequenceClassification

    vocab = len(_tokenizer())
    return Task(
        name="sentiment",
        dataset="offline:rotten_tomatoes",
        metric="accuracy",
        batch_size=32,
        itnet=lambda: ITNetForSequenceClassification(_itnet_config(vocab_size=vocab, num_labels=2)),
        baselines={
            "BERT": lambda w: _bert(vocab, 2, TEXT_MAX_LENGTH, w),
            "LSTM": lambda w: LSTMClassifier(vocab, w, 2),
        },
        load=load_sentiment,
        multiples={"LSTM": 2},
    )


# VQA -----------------------------------------------------------------------------------------------------------------

VQA_IMAGE_SIZE, VQA_PATCH_SIZE, VQA_QUESTION_LENGTH = 32, 4, 32


def _vilt_config(vocab: int, width: int, **extra):
    """ViLT at width `width` on the 32 x 32 easy-VQA images (2 layers, 4 heads, no dropout), `extra` on top."""
    from transformers import ViltConfig

    return ViltConfig(
        vocab_size=vocab,
        hidden_size=width,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=2 * width,
        image_size=VQA_IMAGE_SIZE,
        patch_size=VQA_PATCH_SIZE,
        max_position_embeddings=VQA_QUESTION_LENGTH,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **extra,
    )


def load_vqa(train_needed: int, quick: bool) -> dict:
    from offline_data import EASY_VQA_ANSWERS, load_offline

    data = load_offline("easy_vqa")
    tokenizer = _tokenizer()
    out = {}
    limits = {"train": train_needed, "test": 3000}
    for split, rows in _three_splits(data, "vqa", "validation", None, quick, limits).items():
        images = np.stack(
            [np.asarray(image.convert("RGB").resize((VQA_IMAGE_SIZE,) * 2)) for image in rows["image"]]
        ).transpose(0, 3, 1, 2)
        scores = torch.zeros(len(rows), len(EASY_VQA_ANSWERS))
        for i, label in enumerate(rows["label"]):
            scores[i, label["ids"]] = torch.tensor(label["weights"], dtype=torch.float)
        encoded = tokenizer(list(rows["question"]), truncation=True, max_length=VQA_QUESTION_LENGTH)
        out[split] = {"input_ids": encoded["input_ids"], "pixel_values": _normalise(images), "labels": scores}
    out["pad_token_id"] = tokenizer.pad_token_id
    return out


def vqa_task() -> Task:
    from offline_data import EASY_VQA_ANSWERS
    from transformers import ViltForQuestionAnswering

    from modeling_itnet import ITNetForVisualQuestionAnswering

    vocab, answers = len(_tokenizer()), list(EASY_VQA_ANSWERS)
    labels = {"num_labels": len(answers), "id2label": dict(enumerate(answers)),
                  "label2id": {a: i for i, a in enumerate(answers)}}  # fmt: skip
    return Task(
        name="vqa",
        dataset="offline:easy_vqa",
        metric="accuracy",
        batch_size=32,
        itnet=lambda: ITNetForVisualQuestionAnswering(
            _itnet_config(vocab_size=vocab, image_size=VQA_IMAGE_SIZE, patch_size=VQA_PATCH_SIZE, **labels)
        ),
        baselines={
            "ViLT": lambda w: ViltForQuestionAnswering(_vilt_config(vocab, w, **labels)),
        },
        load=load_vqa,
    )


# image pairs + text (NLVR2-style) -----------------------------------------------------------------------------------

NLVR2_TRAIN_PAIRS = 16000  # the cached `nlvr2_easy` has 4,000: drawn again, larger, with its generator and seed


def load_nlvr2(train_needed: int, quick: bool, templates: list[str] | None = None) -> dict:
    """Pairs of easy-vqa images with a true/false statement: train and validation drawn from its train images (the
    last `VALIDATION_ROWS["nlvr2"]` rows held out), test the cached `nlvr2_easy` validation split (its test images,
    never seen in training). `templates`: the statement templates of the training and validation pairs (default all;
    the test split always has all of them)."""
    from datasets import DatasetDict
    from offline_data import nlvr2_easy_pairs

    pairs = 600 + VALIDATION_ROWS["nlvr2"] if quick else NLVR2_TRAIN_PAIRS
    train = nlvr2_easy_pairs("train", pairs, seed=0, templates=templates)
    data = DatasetDict(train=train, test=nlvr2_easy_pairs("test", 1000, seed=1))
    tokenizer = _tokenizer()
    out = {}
    for split, rows in _three_splits(data, "nlvr2", "test", None, quick, {"train": train_needed}).items():
        images = np.stack(
            [
                np.stack([np.asarray(image.convert("RGB").resize((VQA_IMAGE_SIZE,) * 2)) for image in pair])
                for pair in zip(rows["left_image"], rows["right_image"])
            ]
        ).transpose(0, 1, 4, 2, 3)  # [N, 2, C, H, W]
        encoded = tokenizer(list(rows["sentence"]), truncation=True, max_length=VQA_QUESTION_LENGTH)
        out[split] = {"input_ids": encoded["input_ids"], "pixel_values": _normalise(images),
                      "labels": torch.tensor(rows["label"])}  # fmt: skip
    out["pad_token_id"] = tokenizer.pad_token_id
    return out


def nlvr2_task() -> Task:
    from offline_data import NLVR2_EASY_LABELS
    from transformers import ViltForImagesAndTextClassification

    from modeling_itnet import ITNetForImagesAndTextClassification

    vocab, names = len(_tokenizer()), list(NLVR2_EASY_LABELS)
    labels = {"num_labels": len(names), "id2label": dict(enumerate(names)),
              "label2id": {a: i for i, a in enumerate(names)}}  # fmt: skip
    return Task(
        name="nlvr2",
        dataset="offline:nlvr2_easy",
        metric="accuracy",
        batch_size=32,
        itnet=lambda: ITNetForImagesAndTextClassification(
            _itnet_config(
                vocab_size=vocab, image_size=VQA_IMAGE_SIZE, patch_size=VQA_PATCH_SIZE, max_num_images=2, **labels
            )
        ),
        baselines={
            "ViLT": lambda w: ViltForImagesAndTextClassification(
                # text, left image, right image: ViLT's NLVR2 setting
                _vilt_config(vocab, w, num_images=2, modality_type_vocab_size=3, **labels)
            ),
        },
        load=load_nlvr2,
        note=f"train/validation: {NLVR2_TRAIN_PAIRS:,} pairs of easy-vqa train images; test: 1,000 of its test images",
    )


# language modelling --------------------------------------------------------------------------------------------------

LM_BLOCK = 64


def load_shakespeare(train_needed: int, quick: bool) -> dict:
    from offline_data import load_offline

    data = load_offline("shakespeare")
    tokenizer = _tokenizer()
    out = {}
    eval_blocks = 16 if quick else 128
    for split, key, blocks in (("train", "train", train_needed), ("validation", "validation", eval_blocks),
                               ("test", "test", eval_blocks)):  # fmt: skip
        ids, lines = [], list(data[key]["text"])
        for start in range(0, len(lines), 2000):  # tokenise only what the run needs
            chunk = tokenizer("\n".join(lines[start : start + 2000]), add_special_tokens=False)["input_ids"]
            ids.extend(chunk)
            if len(ids) >= blocks * LM_BLOCK:
                break
        count = min(blocks, len(ids) // LM_BLOCK)
        out[split] = {"input_ids": torch.tensor(ids[: count * LM_BLOCK]).view(count, LM_BLOCK)}
        out[split]["labels"] = out[split]["input_ids"]
    return out


def lm_task() -> Task:
    from transformers import GPT2Config, GPT2LMHeadModel, MambaConfig, MambaForCausalLM

    from modeling_itnet import ITNetForCausalLM

    tokenizer = _tokenizer()
    vocab = len(tokenizer)
    return Task(
        name="lm",
        dataset="offline:shakespeare",
        metric="perplexity",
        batch_size=8,
        itnet=lambda: ITNetForCausalLM(
            _itnet_config(
                is_causal=True, vocab_size=vocab, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id
            )
        ),
        baselines={
            "GPT-2": lambda w: GPT2LMHeadModel(
                GPT2Config(
                    vocab_size=vocab,
                    n_positions=LM_BLOCK,
                    n_embd=w,
                    n_layer=2,
                    n_head=4,
                    n_inner=2 * w,
                    resid_pdrop=0.0,
                    embd_pdrop=0.0,
                    attn_pdrop=0.0,
                )
            ),
            "Mamba": lambda w: MambaForCausalLM(
                MambaConfig(
                    vocab_size=vocab,
                    hidden_size=w,
                    num_hidden_layers=2,
                    state_size=16,
                    expand=2,
                    tie_word_embeddings=True,
                    use_mambapy=False,
                )
            ),
            "LSTM": lambda w: LSTMLanguageModel(vocab, w),
        },
        load=load_shakespeare,
    )


# ListOps -------------------------------------------------------------------------------------------------------------

LISTOPS = {"min_length": 100, "max_length": 500}  # shorter than LRA's 500-2000 so a CPU run fits the budget
LISTOPS_SPLITS = (10000, 500, 500)  # train / validation / test rows


def listops_tokenizer():
    from run_lra import build_listops_tokenizer

    return build_listops_tokenizer(LISTOPS["max_length"])


def load_listops_tensors(train_needed: int, quick: bool) -> dict:
    from offline_data import load_listops

    data = load_listops(*LISTOPS_SPLITS, **LISTOPS)
    tokenizer = listops_tokenizer()
    out = {}
    for split, rows in _three_splits(data, "listops", "test", "validation", quick, {}).items():
        encoded = tokenizer(list(rows["Source"]), truncation=True, max_length=LISTOPS["max_length"])
        out[split] = {"input_ids": encoded["input_ids"], "labels": torch.tensor(rows["Target"])}
    out["pad_token_id"] = tokenizer.pad_token_id
    return out


def listops_task() -> Task:
    from modeling_itnet import ITNetForSequenceClassification

    tokenizer = listops_tokenizer()
    vocab = len(tokenizer)
    return Task(
        name="listops",
        dataset="load_listops({}, {}, {}, min_length={min_length}, max_length={max_length})".format(
            *LISTOPS_SPLITS, **LISTOPS
        ),
        metric="accuracy",
        batch_size=16,
        itnet=lambda: ITNetForSequenceClassification(
            _itnet_config(vocab_size=vocab, num_labels=10, pad_token_id=tokenizer.pad_token_id)
        ),
        baselines={"BERT": lambda w: _bert(vocab, 10, LISTOPS["max_length"], w)},
        load=load_listops_tensors,
        note="held-out test split; lengths 100-500 (LRA: 500-2000)",
    )


# point clouds --------------------------------------------------------------------------------------------------------


def load_points(train_needed: int, quick: bool) -> dict:
    from offline_data import load_offline

    data = load_offline("point_clouds")
    out = {}
    for split, rows in _three_splits(data, "points", "validation", None, quick, {}).items():
        out[split] = {
            "points": torch.as_tensor(np.asarray(rows["points"], dtype=np.float32)),
            "labels": torch.tensor(rows["label"]),
        }
    return out


def points_task() -> Task:
    from offline_data import POINT_CLOUD_CLASSES

    from modeling_itnet import ITNetForPointCloudClassification

    classes = len(POINT_CLOUD_CLASSES)
    return Task(
        name="points",
        dataset="offline:point_clouds",
        metric="accuracy",
        batch_size=32,
        itnet=lambda: ITNetForPointCloudClassification(_itnet_config(num_labels=classes)),
        baselines={"PointNet": lambda w: PointNet(w, classes)},
        load=load_points,
        multiples={"PointNet": 2},
        note="ITNet builds the preset's content families only (no grid for the FFT and window kernels)",
    )


TASKS = {
    "images": images_task,
    "sentiment": sentiment_task,
    "vqa": vqa_task,
    "nlvr2": nlvr2_task,
    "lm": lm_task,
    "listops": listops_task,
    "points": points_task,
}


# --------------------------------------------------------------------------------------------------------------------
# Batching


def make_batch(split: dict, index: torch.Tensor, pad_token_id: int | None) -> dict:
    """Rows `index` of a split: tensors are indexed, token lists padded to the longest row with an attention mask."""
    batch = {}
    for key, value in split.items():
        if isinstance(value, torch.Tensor):
            batch[key] = value[index]
        else:  # list of token id lists
            rows = [value[i] for i in index.tolist()]
            length = max(len(r) for r in rows)
            ids = torch.full((len(rows), length), pad_token_id or 0, dtype=torch.long)
            mask = torch.zeros(len(rows), length, dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
            batch[key], batch["attention_mask"] = ids, mask
    return batch


def split_size(split: dict) -> int:
    value = next(iter(split.values()))
    return len(value)
