"""Accuracy as an `evaluate` metric module, loadable offline: `evaluate.load("examples/metrics/accuracy")`.

Same name, inputs and output as the Hub's `evaluate-metric/accuracy`: the fraction of `predictions` equal to
`references`, optionally weighted by `sample_weight`.
"""

import datasets
import evaluate
import numpy as np


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Proportion of correct predictions.",
            citation="",
            inputs_description="predictions: list of int; references: list of int; sample_weight: optional list of float",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, sample_weight=None):
        correct = np.asarray(predictions) == np.asarray(references)
        weights = np.ones(len(correct)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        return {"accuracy": float((correct * weights).sum() / weights.sum())}
