"""The task examples run end to end for a few steps on the offline data, as a user would launch them."""

import json
import subprocess
import sys
from pathlib import Path

from transformers import pipeline

import modeling_itnet  # noqa: F401  (registers ITNet and its VQA pipeline)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COMMON = ["--use_cpu", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", "--seed", "0"]


def run_example(script: str, output_dir: Path, *args: str) -> dict:
    command = [sys.executable, str(EXAMPLES / script), "--output_dir", str(output_dir), *COMMON, *args]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads((output_dir / "all_results.json").read_text())


def test_run_vqa(tmp_path):
    results = run_example(
        "run_vqa.py", tmp_path, "--do_train", "--do_eval", "--max_steps", "5", "--per_device_train_batch_size", "8",
        "--max_train_samples", "64", "--max_eval_samples", "32",
    )
    assert {"train_loss", "eval_loss", "eval_vqa_score", "eval_accuracy"} <= set(results)
    assert 0.0 <= results["eval_vqa_score"] <= 1.0
    vqa = pipeline("itnet-visual-question-answering", model=str(tmp_path))
    from offline_data import EASY_VQA_ANSWERS, load_offline

    row = load_offline("easy_vqa")["validation"][0]
    assert vqa(image=row["image"], question=row["question"], top_k=1)[0]["answer"] in EASY_VQA_ANSWERS


def test_run_point_cloud(tmp_path):
    results = run_example(
        "run_point_cloud.py", tmp_path, "--do_train", "--do_eval", "--max_steps", "5", "--per_device_train_batch_size",
        "8", "--max_train_samples", "64", "--max_eval_samples", "32", "--normalize", "true",
    )
    assert {"train_loss", "eval_loss", "eval_accuracy"} <= set(results)
    from modeling_itnet import ITNetForPointCloudClassification

    model = ITNetForPointCloudClassification.from_pretrained(tmp_path)
    assert model.config.id2label[0] == "box" and list(model.itnet.layers[0].mixer.branches) == ["low_rank"]


def test_run_nlvr2(tmp_path):
    results = run_example(
        "run_nlvr2.py", tmp_path, "--do_train", "--do_eval", "--max_steps", "5", "--per_device_train_batch_size", "8",
        "--max_train_samples", "64", "--max_eval_samples", "32",
    )
    assert {"train_loss", "eval_loss", "eval_accuracy"} <= set(results)
    from modeling_itnet import ITNetForImagesAndTextClassification, ITNetProcessor

    model = ITNetForImagesAndTextClassification.from_pretrained(tmp_path)
    processor = ITNetProcessor.from_pretrained(tmp_path)
    from offline_data import load_offline

    row = load_offline("nlvr2_easy")["validation"][0]
    inputs = processor(images=[(row["left_image"], row["right_image"])], text=[row["sentence"]])
    assert model(**inputs).logits.shape == (1, 2)
