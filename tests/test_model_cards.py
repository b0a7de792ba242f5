"""Every committed model card parses as Hub metadata and quotes the numbers of its committed run.

A card folder holds the card (`README.md`) and the results of the run that wrote it: `results.json` for the
quickstart, `all_results.json` (`Trainer.save_metrics`) for the task examples (`model_cards/train_all.sh` reruns them).
"""

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

ROOT = Path(__file__).resolve().parents[1]
CARD_DIRS = sorted(path for path in (ROOT / "model_cards").iterdir() if path.is_dir())


def results_of(folder: Path) -> dict:
    (path,) = [folder / name for name in ("results.json", "all_results.json") if (folder / name).exists()]
    return json.loads(path.read_text())


def measured(results: dict, metric: str) -> float:
    """The run's value of a card metric: `eval_<metric>` (Trainer), `<metric>` (e.g. perplexity) or `<metric>_after`
    (the quickstart's after-training numbers)."""
    for key in (f"eval_{metric}", metric, f"{metric}_after"):
        if key in results:
            return results[key]
    raise KeyError(metric)


def test_there_are_cards():
    assert len(CARD_DIRS) >= 7  # the quickstart and the six task examples


@pytest.mark.parametrize("folder", CARD_DIRS, ids=lambda p: p.name)
def test_card_metadata_and_metrics(folder):
    assert (folder / "README.md").exists()
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "transformers"
    assert card.data.license == "apache-2.0"
    assert "itnet" in card.data.tags
    results = results_of(folder)
    assert card.data.eval_results
    for evaluation in card.data.eval_results:
        raw = measured(results, evaluation.metric_type)
        value = round(raw, 4)
        assert evaluation.metric_value == value
        assert any(f"{quoted}" in card.text for quoted in (value, f"{value:.3f}", f"{raw:.3f}"))  # 0.73146: 0.731


def test_index_lists_every_card():
    index = (ROOT / "model_cards" / "README.md").read_text()
    script = (ROOT / "model_cards" / "train_all.sh").read_text()
    for folder in CARD_DIRS:
        assert f"`{folder.name}`" in index
        assert folder.name in script
