"""Accuracy and macro-averaged F1 x 100 of scikit-learn; on request, 95% percentile bootstrap confidence
intervals (scipy.stats.bootstrap, resampling prediction-label pairs)."""

import datasets
import evaluate
import numpy as np
from scipy.stats import bootstrap
from sklearn.metrics import accuracy_score, f1_score

USAGE = """
Args:
    predictions: list of predicted label ids.
    references: list of true label ids.
    n_bootstrap: 0 for none, else the number of bootstrap resamples for the 95% intervals (1000 is usual).
Returns:
    accuracy, macro_f1; with n_bootstrap, accuracy_ci95 and macro_f1_ci95 as [low, high].
"""
SCORES = {"accuracy": accuracy_score, "macro_f1": lambda y, p: f1_score(y, p, average="macro")}


@evaluate.utils.file_utils.add_start_docstrings(__doc__, USAGE)
class AccuracyMacroF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Pedregosa et al. (2011), Scikit-learn: Machine Learning in Python",
            inputs_description=USAGE,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, n_bootstrap=0):
        results = {name: float(100 * score(references, predictions)) for name, score in SCORES.items()}
        if n_bootstrap and len(predictions) > 1:
            pairs = (np.asarray(references), np.asarray(predictions))
            for name, score in SCORES.items():
                interval = bootstrap(pairs, score, paired=True, vectorized=False, n_resamples=n_bootstrap,
                                     method="percentile", random_state=0).confidence_interval
                results[f"{name}_ci95"] = [float(100 * interval.low), float(100 * interval.high)]
        return results
