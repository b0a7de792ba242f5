"""TRL on an ITNet causal LM, as its docs run a Hugging Face model: `SFTTrainer` and `DPOTrainer` train it (their
losses fall over a few steps on a small repeated dataset), and SFT's tokenized sequences end in exactly one EOS (the
causal tokenizer adds no `[CLS] … [SEP]` template that would double it)."""

import pytest
import torch
from datasets import Dataset
from itnet_testing import tokenizer_config
from transformers import AutoTokenizer

from modeling_itnet import CAUSAL_TOKENIZER, ITNetForCausalLM, tokenizer_path

TEXTS = ["to be or not to be", "the king of denmark", "a witty and charming film", "all the world's a stage"]


def tiny_lm(tokenizer) -> ITNetForCausalLM:
    torch.manual_seed(0)
    config = tokenizer_config(tokenizer, is_causal=True, kernel_families=["spectral", "low_rank"])
    return ITNetForCausalLM(config)


def common(output_dir) -> dict:
    return {
        "output_dir": str(output_dir), "max_steps": 30, "per_device_train_batch_size": 4, "learning_rate": 1e-2,
        "logging_steps": 1, "report_to": "none", "use_cpu": True, "save_strategy": "no", "disable_tqdm": True, "seed": 0,
    }  # fmt: skip


def losses(trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_sft_loss_falls_and_sequences_end_in_one_eos(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path(CAUSAL_TOKENIZER))
    from trl import SFTConfig, SFTTrainer

    trainer = SFTTrainer(
        model=tiny_lm(tokenizer),
        args=SFTConfig(**common(tmp_path), max_length=32),
        train_dataset=Dataset.from_dict({"text": TEXTS * 8}),
        processing_class=tokenizer,
    )
    for ids in trainer.train_dataset["input_ids"]:
        assert ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1
        assert tokenizer.bos_token_id not in ids
    trainer.train()
    history = losses(trainer)
    assert sum(history[-5:]) / 5 < sum(history[:5]) / 5 - 2.0, history  # nats; it starts at ln(8192) = 9.0


def test_dpo_loss_falls(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path(CAUSAL_TOKENIZER))
    from trl import DPOConfig, DPOTrainer

    pairs = {
        "prompt": ["to be or not", "the king of", "a witty and", "all the world's"] * 8,
        "chosen": [" to be", " denmark", " charming film", " a stage"] * 8,
        "rejected": [" a stage", " a stage", " a stage", " to be"] * 8,
    }
    tiny_lm(tokenizer).save_pretrained(tmp_path / "model")  # by path, as TRL's docs: it loads the reference from it
    trainer = DPOTrainer(
        model=str(tmp_path / "model"),
        args=DPOConfig(**common(tmp_path), max_length=32),
        train_dataset=Dataset.from_dict(pairs),
        processing_class=tokenizer,
    )
    trainer.train()
    history = losses(trainer)
    assert history[0] == pytest.approx(0.6931, abs=0.01)  # log 2: the policy starts as its own reference
    assert sum(history[-5:]) / 5 < 0.5, history
