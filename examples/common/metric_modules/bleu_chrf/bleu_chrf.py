"""Corpus BLEU and chrF of sacreBLEU (its defaults: cased, detokenised text, 13a tokenisation inside), and
BLEU on lower-cased text, with
their signatures and, on request, 95% percentile bootstrap confidence intervals (sacreBLEU's resampling)."""

import datasets
import evaluate
import numpy as np
from sacrebleu.metrics import BLEU, CHRF

USAGE = """
Args:
    predictions: list of translations.
    references: list of lists of references (the same number of references for every prediction).
    n_bootstrap: 0 for none, else the number of bootstrap resamples for the 95% intervals (1000 is usual).
Returns:
    bleu, chrf, bleu_lowercase and their signatures (bleu_signature, ...); with n_bootstrap, bleu_ci95,
    chrf_ci95 and bleu_lowercase_ci95 as [low, high].
"""


def percentile_interval(metric, predictions, streams, n_bootstrap: int) -> list[float]:
    """The 2.5th and 97.5th percentiles of the corpus score over resampled sentences, drawn by sacreBLEU's
    own resampling of its sentence statistics (`corpus_score(n_bootstrap=...)` does the same, then fails to
    average scores that mix float and float32 when a resample scores 0)."""
    from sacrebleu.significance import _bootstrap_resample

    _, scores = _bootstrap_resample(metric._extract_corpus_statistics(predictions, streams), metric, n_bootstrap)
    low, high = np.percentile([float(score.score) for score in scores], [2.5, 97.5])
    return [float(low), float(high)]


@evaluate.utils.file_utils.add_start_docstrings(__doc__, USAGE)
class BleuChrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Post (2018), A Call for Clarity in Reporting BLEU Scores",
            inputs_description=USAGE,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
        )

    def _compute(self, predictions, references, n_bootstrap=0):
        streams = [list(stream) for stream in zip(*references)]  # sacreBLEU wants one list per reference
        results = {}
        # lower-cased BLEU too: much of the literature on small translation tasks reports it
        for name, make_metric in (("bleu", BLEU), ("chrf", CHRF), ("bleu_lowercase", lambda: BLEU(lowercase=True))):
            metric = make_metric()
            results[name] = metric.corpus_score(predictions, streams).score
            results[f"{name}_signature"] = str(metric.get_signature())
            if n_bootstrap:
                results[f"{name}_ci95"] = percentile_interval(make_metric(), predictions, streams, n_bootstrap)
        return results
