"""The task examples run end to end for a few steps on the offline data, as a user would launch them."""

import json
import subprocess
import sys
from pathlib import Path

from huggingface_hub import ModelCard
from transformers import AutoConfig, AutoTokenizer, GenerationConfig, pipeline

import modeling_itnet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COMMON = ["--use_cpu", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", "--seed", "0"]


def run_example(script: str, output_dir: Path, *args: str) -> dict:
    command = [sys.executable, str(EXAMPLES / script), "--output_dir", str(output_dir), *COMMON, *args]
    subprocess.run(command, check=True, capture_output=True, text=True)
    results = json.loads((output_dir / "all_results.json").read_text())
    card = ModelCard.load(output_dir / "README.md")  # `examples/model_card.py`: Hub metadata with the eval metrics
    assert "itnet" in card.data.tags and card.data.eval_results
    for evaluation in card.data.eval_results:
        value = results.get(f"eval_{evaluation.metric_type}", results.get(evaluation.metric_type))
        assert evaluation.metric_value == round(value, 4)
    return results


def test_run_vqa(tmp_path):
    results = run_example(
        "run_vqa.py",
        tmp_path,
        "--do_train",
        "--do_eval",
        "--max_steps",
        "5",
        "--per_device_train_batch_size",
        "8",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "32",
    )
    assert {"train_loss", "eval_loss", "eval_vqa_score", "eval_accuracy"} <= set(results)
    assert 0.0 <= results["eval_vqa_score"] <= 1.0
    vqa = pipeline("itnet-visual-question-answering", model=str(tmp_path))
    from offline_data import EASY_VQA_ANSWERS, load_offline

    row = load_offline("easy_vqa")["validation"][0]
    assert vqa(image=row["image"], question=row["question"], top_k=1)[0]["answer"] in EASY_VQA_ANSWERS


def test_run_point_cloud(tmp_path):
    results = run_example(
        "run_point_cloud.py",
        tmp_path,
        "--do_train",
        "--do_eval",
        "--max_steps",
        "5",
        "--per_device_train_batch_size",
        "8",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "32",
        "--normalize",
        "true",
    )
    assert {"train_loss", "eval_loss", "eval_accuracy"} <= set(results)
    from modeling_itnet import ITNetForPointCloudClassification

    model = ITNetForPointCloudClassification.from_pretrained(tmp_path)
    assert model.config.id2label[0] == "box" and list(model.itnet.layers[0].mixer.branches) == ["low_rank"]


def test_run_nlvr2(tmp_path):
    results = run_example(
        "run_nlvr2.py",
        tmp_path,
        "--do_train",
        "--do_eval",
        "--max_steps",
        "5",
        "--per_device_train_batch_size",
        "8",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "32",
    )
    assert {"train_loss", "eval_loss", "eval_accuracy"} <= set(results)
    from modeling_itnet import ITNetForImagesAndTextClassification, ITNetProcessor

    model = ITNetForImagesAndTextClassification.from_pretrained(tmp_path)
    processor = ITNetProcessor.from_pretrained(tmp_path)
    from offline_data import load_offline

    row = load_offline("nlvr2_easy")["validation"][0]
    inputs = processor(images=[(row["left_image"], row["right_image"])], text=[row["sentence"]])
    assert model(**inputs).logits.shape == (1, 2)


def test_run_clm(tmp_path):
    results = run_example(
        "run_clm.py",
        tmp_path,
        "--do_train",
        "--do_eval",
        "--max_steps",
        "5",
        "--per_device_train_batch_size",
        "4",
        "--block_size",
        "64",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "16",
    )
    assert {"train_loss", "eval_loss", "perplexity"} <= set(results)
    assert abs(results["perplexity"] - __import__("math").exp(results["eval_loss"])) < 1e-6 * results["perplexity"]
    generator = pipeline("text-generation", model=str(tmp_path))
    out = generator("To be, or not", max_new_tokens=4, do_sample=False)
    assert out[0]["generated_text"].startswith("To be, or not")
    # the checkpoint carries the causal tokenizer (no [CLS] … [SEP] template) and its EOS, which generate stops at
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer("to be")["input_ids"] == tokenizer("to be", add_special_tokens=False)["input_ids"]
    config = AutoConfig.from_pretrained(tmp_path)
    assert (config.bos_token_id, config.eos_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert GenerationConfig.from_pretrained(tmp_path).eos_token_id == tokenizer.eos_token_id


def test_run_clm_separates_documents_with_eos():
    """One EOS before each play's title (` = Title = `, wikitext's article heading): 34 in the training split."""
    sys.path.insert(0, str(EXAMPLES))
    from offline_data import load_offline
    from run_clm import is_article_heading, tokenize_lines

    assert is_article_heading(" = Hamlet = \n") and not is_article_heading(" = = Act I = = \n")
    assert not is_article_heading("To be, or not to be")
    tokenizer = AutoTokenizer.from_pretrained(modeling_itnet.tokenizer_path(modeling_itnet.CAUSAL_TOKENIZER))
    train = load_offline("shakespeare")["train"]["text"]
    ids = [i for row in tokenize_lines(tokenizer, train)["input_ids"] for i in row]
    assert ids.count(tokenizer.eos_token_id) == sum(map(is_article_heading, train)) == 34
    assert ids.count(tokenizer.bos_token_id) == 0  # no [CLS] … [SEP] template


def test_run_glue(tmp_path):
    results = run_example(
        "run_glue.py",
        tmp_path,
        "--task_name",
        "sst2",
        "--dataset_name",
        "offline:rotten_tomatoes",
        "--do_train",
        "--do_eval",
        "--max_steps",
        "5",
        "--per_device_train_batch_size",
        "8",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "32",
    )
    assert {"train_loss", "eval_loss", "eval_accuracy"} <= set(results)
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    classifier = pipeline("text-classification", model=str(tmp_path), device="cpu")
    id2label = classifier.model.config.id2label
    assert set(id2label.values()) == {"negative", "positive"}
    assert classifier("a warm, funny and beautifully acted film")[0]["label"] in id2label.values()


def test_run_image_classification(tmp_path):
    from offline_data import FASHION_MNIST_DIR, load_offline

    # fashion_mnist needs the Debian package `dataset-fashion-mnist`; else the mnist-5k digits (the script's default)
    name = "fashion_mnist" if FASHION_MNIST_DIR.exists() else "mnist"
    results = run_example(
        "run_image_classification.py",
        tmp_path,
        "--dataset_name",
        f"offline:{name}",
        "--do_train",
        "--do_eval",
        "--max_steps",
        "5",
        "--per_device_train_batch_size",
        "8",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "32",
    )
    assert {"train_loss", "eval_loss", "eval_accuracy"} <= set(results)
    classifier = pipeline("image-classification", model=str(tmp_path), device="cpu")
    names = load_offline(name)["test"].features["label"].names
    assert [classifier.model.config.id2label[i] for i in range(len(names))] == names
    image = load_offline(name)["test"][0]["image"]
    assert classifier(image, top_k=1)[0]["label"] in names


def test_run_lra_listops(tmp_path, monkeypatch):
    monkeypatch.setenv("ITNET_DATA_CACHE", str(tmp_path / "data"))  # the generated expressions are cached there
    results = run_example(
        "run_lra.py",
        tmp_path / "out",
        "--task",
        "listops",
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--max_steps",
        "5",
        "--per_device_train_batch_size",
        "8",
        "--train_size",
        "64",
        "--validation_size",
        "16",
        "--test_size",
        "16",
        "--min_length",
        "10",
        "--max_length",
        "40",
        "--max_seq_length",
        "48",
        "--kernel_families",
        "low_rank,local",
    )
    assert {"train_loss", "eval_loss", "eval_accuracy", "test_accuracy"} <= set(results)
    assert 0.0 <= results["test_accuracy"] <= 1.0
    from offline_data import listops_tokens
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    assert type(model).__name__ == "ITNetForSequenceClassification"
    assert model.config.id2label == {i: str(i) for i in range(10)} and list(model.itnet.layers[0].mixer.branches) == [
        "low_rank", "local"
    ]  # fmt: skip
    source = "( ( ( [MAX 4 ) ( ( ( [MIN 2 ) 3 ) ] ) ) ] )"  # LRA's TSV form: the parentheses are dropped
    ids = tokenizer(source)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == listops_tokens(source) == ["[MAX", "4", "[MIN", "2", "3", "]", "]"]
    assert ids == tokenizer("[MAX 4 [MIN 2 3 ] ]")["input_ids"]
    batch = tokenizer([source, "[SM 1 2 ]"], padding=True, return_tensors="pt")
    assert model(**batch).logits.shape == (2, 10)
