"""`convert_to_itnet`: pretrained BERT, ViT, GPT-2 and Mamba models as exact ITNet special cases.

Small random-initialised transformers models of each family are converted and compared on random inputs with
padding (max abs difference ≤ 1e-4 in fp32), greedy generation of the causal models is compared token for token,
relaxed conversions are compared at initialisation and trained with `Trainer` on real offline data.
"""

import json
import subprocess
import sys

import pytest
import torch
import transformers
from itnet_testing import tiny_builders
from offline_data import load_offline
from test_examples import run_example
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
)

from modeling_itnet import ITNetForSequenceClassification, convert_to_itnet, tokenizer_path
from modeling_itnet.convert import RELAXED_FAMILIES, SUPPORTED, max_difference, random_inputs

ATOL = 1e-4
_, build_tiny = tiny_builders()
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}


def bert(cls=transformers.BertForSequenceClassification, **overrides):
    config = transformers.BertConfig(
        **{**SMALL, "vocab_size": 99, "max_position_embeddings": 64, "num_labels": 3, **overrides}
    )
    return cls(config).eval()


def vit(cls=transformers.ViTForImageClassification, **overrides):
    config = transformers.ViTConfig(**{**SMALL, "image_size": 16, "patch_size": 4, "num_labels": 5, **overrides})
    return cls(config).eval()


def gpt2(**overrides):
    config = transformers.GPT2Config(
        **{"n_embd": 32, "n_layer": 2, "n_head": 2, "vocab_size": 99, "n_positions": 64, "bos_token_id": 1,
           "eos_token_id": 2, "pad_token_id": 0, **overrides}
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config).eval()


def mamba(**overrides):
    config = transformers.MambaConfig(
        **{"hidden_size": 32, "num_hidden_layers": 2, "vocab_size": 99, "state_size": 4, "bos_token_id": 1,
           "eos_token_id": 2, "pad_token_id": 0, **overrides}
    )  # fmt: skip
    return transformers.MambaForCausalLM(config).eval()


SOURCES = {
    "BertModel": lambda: bert(transformers.BertModel),
    "BertForSequenceClassification": bert,
    "BertForMaskedLM": lambda: bert(transformers.BertForMaskedLM),
    "ViTModel": lambda: vit(transformers.ViTModel),
    "ViTForImageClassification": vit,
    "GPT2LMHeadModel": gpt2,
    "MambaForCausalLM": mamba,
}


def test_every_supported_source_has_a_case():
    assert set(SOURCES) == set(SUPPORTED)


@pytest.mark.parametrize("relax", [False, True], ids=["exact", "relaxed"])
@pytest.mark.parametrize("name", list(SOURCES))
def test_conversion_computes_the_same_function(name, relax):
    torch.manual_seed(0)
    source = SOURCES[name]()
    itnet = convert_to_itnet(source, relax=relax)
    inputs = random_inputs(source)
    if "attention_mask" in inputs:
        assert inputs["attention_mask"][-1, -3:].sum() == 0  # a padded row
    difference = max_difference(source, itnet, inputs)
    assert difference <= ATOL, f"{name}: {difference}"
    if relax:  # the other families are there, their gates closed
        assert set(itnet.config.kernel_families) > set(RELAXED_FAMILIES[SUPPORTED[name][0]])
    # negative control: the comparison sees a change of one weight
    with torch.no_grad():
        weight = next(p for n, p in itnet.named_parameters() if "layers.1.mixer.output.weight" in n)
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    assert max_difference(source, itnet, inputs) > 10 * ATOL


def test_bert_token_types_and_position_ids():
    torch.manual_seed(0)
    source = bert()
    itnet = convert_to_itnet(source)
    inputs = random_inputs(source)
    inputs["token_type_ids"] = (torch.arange(inputs["input_ids"].shape[1]) >= 5).long().expand_as(inputs["input_ids"])
    inputs["position_ids"] = torch.arange(3, 3 + inputs["input_ids"].shape[1])[None]
    assert max_difference(source, itnet, inputs) <= ATOL
    with pytest.raises(ValueError, match="token_type_ids.*type_vocab_size=2"):
        itnet(input_ids=inputs["input_ids"], token_type_ids=torch.full_like(inputs["input_ids"], 2))
    with pytest.raises(ValueError, match="position_ids.*max_position_embeddings=64"):
        itnet(input_ids=inputs["input_ids"], position_ids=torch.arange(60, 71)[None])


def test_native_models_refuse_absolute_position_inputs():
    """A native (relative-position) ITNet has no table for `position_ids` or `token_type_ids`: an error, not a no-op."""
    model = build_tiny(ITNetForSequenceClassification)
    input_ids = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="position_ids.*no absolute position embeddings"):
        model(input_ids=input_ids, position_ids=torch.arange(5)[None])
    with pytest.raises(ValueError, match="token_type_ids.*type_vocab_size=0"):
        model(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))


def test_vit_interpolates_position_embeddings_as_vit():
    torch.manual_seed(0)
    source = vit()
    itnet = convert_to_itnet(source)
    pixels = torch.randn(2, 3, 24, 20)
    assert max_difference(source, itnet, {"pixel_values": pixels, "interpolate_pos_encoding": True}) <= ATOL
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        itnet(pixel_values=pixels)


@pytest.mark.parametrize("relax", [False, True], ids=["exact", "relaxed"])
@pytest.mark.parametrize("name", ["GPT2LMHeadModel", "MambaForCausalLM"])
def test_generation_gives_the_same_tokens(name, relax):
    """Greedy decoding of a left-padded batch: the same tokens as the source model, and cached == uncached."""
    torch.manual_seed(0)
    source = SOURCES[name]()
    itnet = convert_to_itnet(source, relax=relax)
    input_ids = torch.randint(3, 99, (3, 7), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :2] = attention_mask[2, :4] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    options = {"attention_mask": attention_mask, "max_new_tokens": 12, "do_sample": False, "pad_token_id": 0}
    expected = source.generate(input_ids, **options)
    assert torch.equal(itnet.generate(input_ids, **options), expected)
    assert torch.equal(itnet.generate(input_ids, use_cache=False, **options), expected)


def test_save_and_reload_through_auto_classes(tmp_path):
    torch.manual_seed(0)
    for source, auto in ((bert(), AutoModelForSequenceClassification), (mamba(), AutoModelForCausalLM)):
        itnet = convert_to_itnet(source)
        itnet.save_pretrained(tmp_path / type(source).__name__)
        reloaded = auto.from_pretrained(tmp_path / type(source).__name__).eval()
        assert type(reloaded) is type(itnet)
        assert max_difference(source, reloaded) <= ATOL
        saved = json.loads((tmp_path / type(source).__name__ / "config.json").read_text())
        assert "auto_map" in saved  # loads with trust_remote_code=True without the package


def test_unsupported_sources_are_refused_clearly():
    roberta = transformers.RobertaModel(transformers.RobertaConfig(**SMALL, vocab_size=99))
    with pytest.raises(ValueError, match="Cannot convert RobertaModel.*supports BertModel.*MambaForCausalLM"):
        convert_to_itnet(roberta)
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        convert_to_itnet(gpt2(scale_attn_by_inverse_layer_idx=True))
    with pytest.raises(ValueError, match="hidden_act.*'gelu_fast'"):
        convert_to_itnet(bert(hidden_act="gelu_fast"))


def _opened_gates(itnet, families) -> float:
    """Largest |weight| of the relaxed families' gate rows (0 at conversion)."""
    config = itnet.config
    largest = 0.0
    for layer in itnet.base_model.layers:
        rows = layer.mixer.gate.weight.view(len(config.kernel_families), config.mixer_size, -1)
        for f, family in enumerate(config.kernel_families):
            if family in families:
                largest = max(largest, rows[f].abs().max().item())
    return largest


def _train(model, train, evaluation, collate, tmp_path, steps, lr=2e-3) -> tuple[float, float]:
    """`steps` Trainer steps; the evaluation loss before and after."""
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=16, per_device_eval_batch_size=64,
        learning_rate=lr, warmup_steps=5, report_to=[], use_cpu=True, save_strategy="no", seed=0, disable_tqdm=True,
        remove_unused_columns=False,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation, data_collator=collate)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    return before, trainer.evaluate()["eval_loss"]


def test_relaxed_bert_fine_tunes_on_rotten_tomatoes(tmp_path):
    """A relaxed BERT masked-LM conversion equals BERT at initialisation, then Trainer lowers the masked-LM loss on
    real text (Rotten Tomatoes snippets, the real tokenizer) and opens the closed gates of the added families."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    torch.manual_seed(0)
    source = bert(transformers.BertForMaskedLM, vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    itnet = convert_to_itnet(source, relax=True)
    assert max_difference(source, itnet) <= ATOL
    data = load_offline("rotten_tomatoes")
    encode = lambda rows: tokenizer(rows["sentence"], truncation=True, max_length=64)
    train = data["train"].select(range(1600)).map(encode, batched=True, remove_columns=["sentence", "label", "idx"])
    evaluation = (
        data["validation"].select(range(256)).map(encode, batched=True, remove_columns=["sentence", "label", "idx"])
    )
    collate = transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=0)
    before, after = _train(itnet, train, evaluation, collate, tmp_path, steps=40)
    assert after < before - 0.5, (before, after)
    assert _opened_gates(itnet, RELAXED_FAMILIES["bert"]) > 1e-4


def test_relaxed_vit_fine_tunes_on_mnist(tmp_path):
    torch.manual_seed(0)
    source = vit(image_size=28, patch_size=7, num_channels=1, num_labels=10)
    itnet = convert_to_itnet(source, relax=True)
    assert max_difference(source, itnet) <= ATOL
    data = load_offline("mnist")

    def collate(rows):
        pixels = torch.stack(
            [torch.tensor(list(r["image"].getdata()), dtype=torch.float32).view(1, 28, 28) for r in rows]
        )
        return {"pixel_values": pixels / 127.5 - 1, "labels": torch.tensor([r["label"] for r in rows])}

    before, after = _train(itnet, data["train"], data["test"].select(range(256)), collate, tmp_path, steps=150)
    assert after < before - 0.3, (before, after)
    assert _opened_gates(itnet, RELAXED_FAMILIES["vit"]) > 1e-4


@pytest.mark.parametrize("name", ["GPT2LMHeadModel", "MambaForCausalLM"])
def test_relaxed_causal_models_fine_tune_on_shakespeare(name, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    torch.manual_seed(0)
    source = (
        gpt2(vocab_size=tokenizer.vocab_size) if name == "GPT2LMHeadModel" else mamba(vocab_size=tokenizer.vocab_size)
    )
    itnet = convert_to_itnet(source, relax=True)
    assert max_difference(source, itnet) <= ATOL
    lines = load_offline("shakespeare")["train"].select(range(4000))
    text = " ".join(list(lines["text"]))
    ids = tokenizer(text)["input_ids"]
    blocks = [ids[i : i + 32] for i in range(0, len(ids) - 32, 32)]
    train, evaluation = blocks[:960], blocks[-64:]

    def collate(rows):
        input_ids = torch.tensor(rows)
        return {"input_ids": input_ids, "labels": input_ids}

    before, after = _train(itnet, train, evaluation, collate, tmp_path, steps=40)
    assert after < before - 0.5, (before, after)
    assert _opened_gates(itnet, RELAXED_FAMILIES[SUPPORTED[name][0]]) > 1e-4


def test_command_line_converts_checks_and_saves_then_run_glue_fine_tunes(tmp_path):
    """The README workflow, offline: a BERT checkpoint folder with its tokenizer → `python -m modeling_itnet.convert`
    → `examples/run_glue.py --model_name_or_path` on the converted folder."""
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    source = bert(transformers.BertForMaskedLM, vocab_size=tokenizer.vocab_size)
    source.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    result = subprocess.run(
        [sys.executable, "-m", "modeling_itnet.convert", "--source", str(tmp_path / "bert"), "--output",
         str(tmp_path / "itnet"), "--architecture", "BertForSequenceClassification", "--num_labels", "2", "--relax"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "BertForSequenceClassification -> ITNetForSequenceClassification: max |difference|" in result.stdout
    itnet = AutoModelForSequenceClassification.from_pretrained(tmp_path / "itnet").eval()
    assert itnet.config.num_labels == 2 and "low_rank" in itnet.config.kernel_families
    # the trunk is BERT's: same final hidden states as the source BERT encoder
    inputs = random_inputs(source)
    with torch.no_grad():
        expected = source.bert(**inputs).last_hidden_state
        got = itnet.itnet(**inputs).last_hidden_state
    mask = inputs["attention_mask"].bool()
    assert (expected[mask] - got[mask]).abs().max() <= ATOL
    assert AutoTokenizer.from_pretrained(tmp_path / "itnet").vocab_size == tokenizer.vocab_size
    failed = subprocess.run(
        [sys.executable, "-m", "modeling_itnet.convert", "--source", str(tmp_path / "bert"), "--output",
         str(tmp_path / "no"), "--architecture", "RobertaModel"], check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert failed.returncode != 0 and "supports BertModel" in failed.stderr
    results = run_example(
        "run_glue.py", tmp_path / "glue", "--model_name_or_path", str(tmp_path / "itnet"), "--task_name", "sst2",
        "--dataset_name", "offline:rotten_tomatoes", "--do_train", "--do_eval", "--max_steps", "3",
        "--per_device_train_batch_size", "8", "--max_train_samples", "32", "--max_eval_samples", "16",
    )  # fmt: skip
    assert {"train_loss", "eval_accuracy"} <= set(results)
    tuned = AutoModelForSequenceClassification.from_pretrained(tmp_path / "glue")
    assert tuned.config.norm_position == "post" and set(tuned.config.id2label.values()) == {"negative", "positive"}
