"""Mean ROUGE-1/2/L F1 x 100 of rouge_score (with the Porter stemmer); with several references, the best
one counts. On request, 95% bootstrap confidence intervals (rouge_score's BootstrapAggregator)."""

import datasets
import evaluate
from rouge_score import rouge_scorer, scoring

USAGE = """
Args:
    predictions: list of summaries.
    references: list of lists of references (any number per prediction).
    n_bootstrap: 0 for none, else the number of bootstrap resamples for the 95% intervals (1000 is usual).
Returns:
    rouge1, rouge2, rougeL; with n_bootstrap, rouge1_ci95, rouge2_ci95, rougeL_ci95 as [low, high].
"""
NAMES = ["rouge1", "rouge2", "rougeL"]


@evaluate.utils.file_utils.add_start_docstrings(__doc__, USAGE)
class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Lin (2004), ROUGE: A Package for Automatic Evaluation of Summaries",
            inputs_description=USAGE,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
        )

    def _compute(self, predictions, references, n_bootstrap=0):
        scorer = rouge_scorer.RougeScorer(NAMES, use_stemmer=True)
        scores = [scorer.score_multi(refs, prediction) for prediction, refs in zip(predictions, references)]
        results = {name: 100 * sum(s[name].fmeasure for s in scores) / max(len(scores), 1) for name in NAMES}
        if n_bootstrap and scores:
            aggregator = scoring.BootstrapAggregator(confidence_interval=0.95, n_samples=n_bootstrap)
            for s in scores:
                aggregator.add_scores(s)
            for name, interval in aggregator.aggregate().items():
                results[f"{name}_ci95"] = [float(100 * interval.low.fmeasure), float(100 * interval.high.fmeasure)]
        return results
