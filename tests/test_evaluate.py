"""`evaluate.evaluator("text-classification")` on an ITNet checkpoint given as its folder path (the call the README
documents; evaluate's pipeline-object path still imports transformers 4 names): its accuracy equals the hand
computation from the same pipeline's predictions."""

from pathlib import Path

import evaluate
import torch
from datasets import ClassLabel, Dataset, Features, Value
from itnet_testing import tokenizer_config
from transformers import AutoTokenizer, pipeline

from modeling_itnet import ITNetForSequenceClassification, tokenizer_path

ACCURACY = Path(__file__).resolve().parents[1] / "examples" / "metrics" / "accuracy"
TEXTS = ["a witty film", "a dull film", "a charming story", "a boring story", "a clever movie", "a tedious movie"]


def test_evaluator_on_a_folder_path_equals_the_hand_accuracy(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    torch.manual_seed(0)
    config = tokenizer_config(
        tokenizer, num_hidden_layers=1, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1}
    )
    model = ITNetForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)  # predictions that differ between texts
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    labels = [1, 0, 1, 0, 1, 0]
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    data = Dataset.from_dict({"text": TEXTS, "label": labels}, features=features)
    result = evaluate.evaluator("text-classification").compute(
        model_or_pipeline=str(tmp_path), data=data, metric=evaluate.load(str(ACCURACY)),
        label_mapping={"neg": 0, "pos": 1}, device=-1,
    )  # fmt: skip
    predicted = [config.label2id[p["label"]] for p in pipeline("text-classification", model=str(tmp_path))(TEXTS)]
    assert result["accuracy"] == sum(p == t for p, t in zip(predicted, labels)) / len(labels)
