"""Predictions and metrics for every task. The metrics come from their reference libraries (sacreBLEU,
rouge_score, scikit-learn); `evaluate.load(...)` would fetch the same metrics from the Hub, which fails
offline, so the libraries are called directly and nothing is re-implemented."""

import contextlib

import torch

from tasks import Task


def translation_metrics(predictions: list[str], references: list[list[str]]) -> dict:
    """Corpus BLEU and chrF on detokenised, cased text (sacreBLEU's defaults: 13a tokenisation inside)."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    streams = [list(stream) for stream in zip(*references)]  # sacreBLEU wants one list per reference
    bleu_score, chrf_score = bleu.corpus_score(predictions, streams), chrf.corpus_score(predictions, streams)
    return {
        "bleu": bleu_score.score,
        "chrf": chrf_score.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def summarization_metrics(predictions: list[str], references: list[list[str]]) -> dict:
    """Mean ROUGE-1/2/L F1 x 100 (rouge_score with the Porter stemmer); with several references, the best."""
    from rouge_score import rouge_scorer

    names = ["rouge1", "rouge2", "rougeL"]
    scorer = rouge_scorer.RougeScorer(names, use_stemmer=True)
    totals = dict.fromkeys(names, 0.0)
    for prediction, refs in zip(predictions, references):
        scores = scorer.score_multi(refs, prediction)
        for name in names:
            totals[name] += scores[name].fmeasure
    return {name: 100 * total / max(len(predictions), 1) for name, total in totals.items()}


def classification_metrics(predictions: list[int], labels: list[int]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": 100 * accuracy_score(labels, predictions),
        "macro_f1": 100 * f1_score(labels, predictions, average="macro"),
    }


def batches_by_length(texts: list[str], batch_size: int) -> list[list[int]]:
    """Indices in batches of similar length, so that little padding is computed."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


@torch.no_grad()
def predict(model, tokenizer, task: Task, sources: list[str], batch_size: int = 64, num_beams: int | None = None,
            autocast=contextlib.nullcontext) -> list:
    """Generated texts (seq2seq) or predicted label ids (classification), in the order of `sources`."""
    model.eval()
    device = next(model.parameters()).device
    predictions = [None] * len(sources)
    for indices in batches_by_length(sources, batch_size):
        batch = tokenizer([sources[i] for i in indices], return_tensors="pt", padding=True, truncation=True,
                          max_length=task.max_source_length).to(device)
        with autocast():
            if task.head == "classification":
                outputs = model(**batch).logits.argmax(dim=-1).tolist()
            else:
                beams = num_beams or task.num_beams
                search = {"num_beams": beams, "length_penalty": task.length_penalty} if beams > 1 else {
                    "num_beams": 1, "length_penalty": None}
                generated = model.generate(**batch, **search, max_new_tokens=task.max_new_tokens)
                outputs = tokenizer.batch_decode(generated, skip_special_tokens=True)
        for i, output in zip(indices, outputs):
            predictions[i] = output.strip() if isinstance(output, str) else output
    return predictions


def score(task: Task, predictions: list, records: list[dict]) -> dict:
    if task.metric == "classification":
        return classification_metrics(predictions, [record["target"] for record in records])
    references = [record.get("references") or [record["target"]] for record in records]
    if task.metric == "translation":
        return translation_metrics(predictions, references)
    return summarization_metrics(predictions, references)


def evaluate_records(model, tokenizer, task: Task, records: list[dict], **predict_kwargs) -> tuple[dict, list]:
    predictions = predict(model, tokenizer, task, [record["source"] for record in records], **predict_kwargs)
    return score(task, predictions, records), predictions
