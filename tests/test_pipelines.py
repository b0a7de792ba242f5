"""`transformers.pipeline` on ITNet: text classification on a tiny model trained on real offline sentiment data,
fill-mask and text generation."""

import numpy as np
import pytest
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, pipeline, set_seed

from modeling_itnet import ITNetConfig, ITNetForCausalLM, ITNetForMaskedLM, ITNetForSequenceClassification, tokenizer_path
from offline_data import load_offline


@pytest.fixture(scope="module")
def sentiment_model(tmp_path_factory):
    """ITNet trained 200 steps on the Rotten Tomatoes snippets (SST-2 layout), saved with its tokenizer."""
    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    data = load_offline("offline:rotten_tomatoes")
    encoded = data.map(lambda b: tokenizer(b["sentence"], truncation=True, max_length=64), batched=True)
    encoded = encoded.remove_columns(["sentence", "idx"])
    config = ITNetConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        spectral_num_frequencies=8, spectral_mlp_size=32, max_position_embeddings=256,
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
    )
    output_dir = tmp_path_factory.mktemp("sentiment")
    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=200, per_device_train_batch_size=32, learning_rate=3e-3,
        warmup_steps=20, lr_scheduler_type="cosine", report_to=[], save_strategy="no", use_cpu=True, seed=0,
    )
    trainer = Trainer(
        model=ITNetForSequenceClassification(config), args=args, train_dataset=encoded["train"],
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    trainer.train()
    trainer.save_model(str(output_dir / "model"))
    tokenizer.save_pretrained(output_dir / "model")
    return output_dir / "model", data["validation"].select(range(400))


def test_text_classification_pipeline(sentiment_model):
    path, validation = sentiment_model
    classifier = pipeline("text-classification", model=str(path))
    predictions = classifier(list(validation["sentence"]), batch_size=64, truncation=True, max_length=256)
    assert {p["label"] for p in predictions} <= {"negative", "positive"}
    assert all(0.5 <= p["score"] <= 1.0 for p in predictions)
    labels = list(validation["label"])
    accuracy = np.mean([p["label"] == ("positive" if y else "negative") for p, y in zip(predictions, labels)])
    majority = max(np.mean(labels), 1 - np.mean(labels))  # 0.55
    assert accuracy > majority + 0.05, (accuracy, majority)
    both = classifier("a gorgeous, witty, seductive movie.", top_k=None)
    assert sorted(p["label"] for p in both) == ["negative", "positive"]
    assert abs(sum(p["score"] for p in both) - 1.0) < 1e-5


def test_fill_mask_pipeline(tmp_path):
    """`fill-mask` ranks vocabulary tokens for the `[MASK]` position; scores are probabilities."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    set_seed(0)
    config = ITNetConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, intermediate_size=48, max_position_embeddings=64)
    ITNetForMaskedLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    unmasker = pipeline("fill-mask", model=str(tmp_path))
    predictions = unmasker("the film is [MASK] and witty.", top_k=5)
    assert len(predictions) == 5
    assert all(p["token"] < len(tokenizer) and p["sequence"].startswith("the film is") for p in predictions)
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-6


def test_masked_lm_head_ties_and_refuses_causal_kernels():
    config = ITNetConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, intermediate_size=48)
    model = ITNetForMaskedLM(config)
    assert model.lm_head.decoder.weight is model.itnet.text_embeddings.word_embeddings.weight
    untied = ITNetForMaskedLM(ITNetConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, intermediate_size=48, tie_word_embeddings=False))
    assert untied.lm_head.decoder.weight is not untied.itnet.text_embeddings.word_embeddings.weight
    with pytest.raises(ValueError, match="is_causal"):
        ITNetForMaskedLM(ITNetConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, is_causal=True))


def test_text_generation_pipeline(tmp_path):
    """`text-generation` drives `generate()` with the ITNetCache; greedy output equals `model.generate`. The WordPiece
    tokenizer wraps a text in [CLS] ... [SEP] by default: a causal prompt is tokenized without them."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    set_seed(0)
    config = ITNetConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, intermediate_size=48,
        max_position_embeddings=64, is_causal=True, pad_token_id=tokenizer.pad_token_id,
    )
    model = ITNetForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path))
    out = generator("the film is", max_new_tokens=6, do_sample=False, return_full_text=False, add_special_tokens=False)
    prompt = tokenizer("the film is", return_tensors="pt", add_special_tokens=False)
    expected = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert out[0]["generated_text"] == tokenizer.decode(expected[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
