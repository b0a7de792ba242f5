"""`transformers.pipeline` on ITNet: text classification and visual question answering on tiny models trained on
real offline data (Rotten Tomatoes, easy-VQA), fill-mask and text generation."""

import collections

import numpy as np
import pytest
import torch
from offline_data import EASY_VQA_ANSWERS, load_offline
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, pipeline, set_seed

from modeling_itnet import (
    ITNetConfig,
    ITNetForCausalLM,
    ITNetForMaskedLM,
    ITNetForSequenceClassification,
    ITNetForVisualQuestionAnswering,
    ITNetImageProcessorPil,
    ITNetProcessor,
    tokenizer_path,
)


@pytest.fixture(scope="module")
def sentiment_model(tmp_path_factory):
    """ITNet trained 200 steps on the Rotten Tomatoes snippets (SST-2 layout), saved with its tokenizer."""
    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    data = load_offline("offline:rotten_tomatoes")
    encoded = data.map(lambda b: tokenizer(b["sentence"], truncation=True, max_length=64), batched=True)
    encoded = encoded.remove_columns(["sentence", "idx"])
    config = ITNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        kernel_num_frequencies=8,
        kernel_mlp_size=32,
        max_position_embeddings=256,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    output_dir = tmp_path_factory.mktemp("sentiment")
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=200,
        per_device_train_batch_size=32,
        learning_rate=3e-3,
        warmup_steps=20,
        lr_scheduler_type="cosine",
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(
        model=ITNetForSequenceClassification(config),
        args=args,
        train_dataset=encoded["train"],
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
    config = ITNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        intermediate_size=48,
        max_position_embeddings=64,
    )
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
    untied = ITNetForMaskedLM(
        ITNetConfig(
            vocab_size=50, hidden_size=32, num_hidden_layers=1, intermediate_size=48, tie_word_embeddings=False
        )
    )
    assert untied.lm_head.decoder.weight is not untied.itnet.text_embeddings.word_embeddings.weight
    with pytest.raises(ValueError, match="is_causal"):
        ITNetForMaskedLM(ITNetConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, is_causal=True))


def test_text_generation_pipeline(tmp_path):
    """`text-generation` drives `generate()` with the ITNetCache; greedy output equals `model.generate`. The WordPiece
    tokenizer wraps a text in [CLS] ... [SEP] by default: a causal prompt is tokenized without them."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    set_seed(0)
    config = ITNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        intermediate_size=48,
        max_position_embeddings=64,
        is_causal=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = ITNetForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path))
    out = generator("the film is", max_new_tokens=6, do_sample=False, return_full_text=False, add_special_tokens=False)
    prompt = tokenizer("the film is", return_tensors="pt", add_special_tokens=False)
    expected = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert out[0]["generated_text"] == tokenizer.decode(
        expected[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True
    )


@pytest.fixture(scope="module")
def vqa_model(tmp_path_factory):
    """ITNet trained 300 steps with `Trainer` on easy-VQA (VQAv2 layout: question, image, soft-score answers),
    saved with its processor."""
    set_seed(0)
    processor = ITNetProcessor(
        ITNetImageProcessorPil(size={"height": 32, "width": 32}), AutoTokenizer.from_pretrained(tokenizer_path())
    )
    data = load_offline("offline:easy_vqa")
    config = ITNetConfig(
        vocab_size=len(processor.tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        image_size=32,
        patch_size=4,
        kernel_num_frequencies=8,
        kernel_mlp_size=32,
        max_position_embeddings=64,
        num_labels=len(EASY_VQA_ANSWERS),
        id2label=dict(enumerate(EASY_VQA_ANSWERS)),
        label2id={answer: i for i, answer in enumerate(EASY_VQA_ANSWERS)},
    )

    def collate(rows):
        batch = processor(images=[row["image"] for row in rows], text=[row["question"] for row in rows])
        batch["labels"] = torch.zeros(len(rows), config.num_labels)
        for i, row in enumerate(rows):
            batch["labels"][i, row["label"]["ids"]] = torch.tensor(row["label"]["weights"])
        return batch

    output_dir = tmp_path_factory.mktemp("vqa")
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=300,
        per_device_train_batch_size=32,
        learning_rate=3e-3,
        warmup_steps=30,
        lr_scheduler_type="cosine",
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        remove_unused_columns=False,
        logging_steps=50,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=ITNetForVisualQuestionAnswering(config), args=args, train_dataset=data["train"], data_collator=collate
    )
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    trainer.save_model(str(output_dir / "model"))
    processor.save_pretrained(output_dir / "model")
    return output_dir / "model", data["validation"].shuffle(seed=0).select(range(300)), losses, data["train"]


def question_only_baselines(train, validation) -> tuple[float, float]:
    """Accuracies on `validation` of two guesses that never look at the image: the most frequent training answer,
    and the most frequent training answer of each exact question string (every validation question occurs in train)."""
    answers = collections.Counter()
    per_question = collections.defaultdict(collections.Counter)
    for question, label in zip(train["question"], train["label"]):
        answers[label["ids"][0]] += 1
        per_question[question][label["ids"][0]] += 1
    targets = [label["ids"][0] for label in validation["label"]]
    majority = np.mean([t == answers.most_common(1)[0][0] for t in targets])
    prior = np.mean([t == per_question[q].most_common(1)[0][0] for q, t in zip(validation["question"], targets)])
    return majority, prior


def test_visual_question_answering_pipeline(vqa_model):
    """The registered `itnet-visual-question-answering` pipeline answers from the model's answer vocabulary.

    Trained 300 steps, the model learns the question prior, not grounding: on these 300 questions the most frequent
    answer scores 0.43 and the most frequent answer of each question string 0.62; the model scores about 0.65, and
    about 0.64 with the images shuffled among the questions. So it is asserted to beat the answer-majority guess by a
    margin and to come near the question-only guess, not to beat it. The image path itself works (the same model trained on the colour questions
    alone answers them from the image within a few hundred steps); on easy-VQA's mix, three quarters yes/no, 300
    steps are too few for the image to matter.
    """
    path, validation, losses, train = vqa_model
    assert losses[-1] < losses[0] / 2, losses
    vqa = pipeline("itnet-visual-question-answering", model=str(path))
    inputs = [{"image": row["image"], "question": row["question"]} for row in validation]
    predictions = vqa(inputs, top_k=3)
    assert all(
        len(p) == 3 and [a["score"] for a in p] == sorted((a["score"] for a in p), reverse=True) for p in predictions
    )
    assert all(a["answer"] in EASY_VQA_ANSWERS and 0 <= a["score"] <= 1 for p in predictions for a in p)
    correct = [p[0]["answer"] == EASY_VQA_ANSWERS[row["label"]["ids"][0]] for p, row in zip(predictions, validation)]
    majority, question_prior = question_only_baselines(train, validation)  # 0.43, 0.62
    assert np.mean(correct) > majority + 0.1, (np.mean(correct), majority, question_prior)
    assert np.mean(correct) > question_prior - 0.1, (np.mean(correct), majority, question_prior)
    single = vqa(image=validation[0]["image"], question=validation[0]["question"], top_k=1)
    assert single[0]["answer"] == predictions[0][0]["answer"]
    with pytest.raises(ValueError, match="top_k"):
        vqa(image=validation[0]["image"], question="what shape?", top_k=0)
