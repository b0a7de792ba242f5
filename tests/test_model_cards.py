"""Every committed model card parses as Hub metadata and quotes the numbers of its committed run."""

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard


CARDS = sorted((Path(__file__).resolve().parents[1] / "model_cards").glob("*/README.md"))


def test_there_are_cards():
    assert CARDS


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.parent.name)
def test_card_metadata_and_metrics(path):
    card = ModelCard.load(path)
    assert card.data.library_name == "transformers"
    assert card.data.license == "apache-2.0"
    assert "itnet" in card.data.tags
    results = json.loads((path.parent / "results.json").read_text())
    (evaluation,) = card.data.eval_results
    assert evaluation.metric_type == "accuracy"
    assert evaluation.metric_value == round(results["accuracy_after"], 4)
    assert f"{results['accuracy_after']:.3f}" in card.text
