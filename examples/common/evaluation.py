"""Predictions and metrics for every task kind. The metrics are `evaluate` modules kept in this repository
(`common/metric_modules/`, loaded from their folder, so nothing is fetched from the Hub), computing with the
reference libraries: sacreBLEU (BLEU, chrF), rouge_score (ROUGE-1/2/L), scikit-learn (accuracy, macro-F1).
The same modules score `train.py`, `evaluate_model.py` and a `Seq2SeqTrainer` (`trainer_compute_metrics`)."""

import contextlib
import functools
from pathlib import Path

import numpy as np
import torch

from .tasks import Task

METRIC_MODULES = Path(__file__).resolve().parent / "metric_modules"
MODULE_OF_KIND = {"translation": "bleu_chrf", "summarization": "rouge", "classification": "accuracy_macro_f1"}


@functools.cache
def load_metric(kind: str):
    """The `evaluate` module that scores a task kind."""
    import evaluate

    return evaluate.load(str(METRIC_MODULES / MODULE_OF_KIND[kind]))


def references_of(task: Task, records: list[dict]) -> list:
    """What each record is scored against: its label, or the list of its references (AESLC has several)."""
    if task.kind == "classification":
        return [record["target"] for record in records]
    return [record.get("references") or [record["target"]] for record in records]


def score(task: Task, predictions: list, records: list[dict], n_bootstrap: int = 0) -> dict:
    """The task's metrics; with n_bootstrap, also their 95% bootstrap intervals (`<metric>_ci95`)."""
    return load_metric(task.kind).compute(predictions=predictions, references=references_of(task, records),
                                          n_bootstrap=n_bootstrap)


def write_predictions(path: Path, predictions: list) -> None:
    """One line per record, so that runs' predictions pair up line by line (a generated text's line breaks
    become spaces, as the metrics' tokenizers read them)."""
    path.write_text("".join(f"{' '.join(p.splitlines()) if isinstance(p, str) else p}\n" for p in predictions),
                    encoding="utf-8")


def trainer_compute_metrics(task: Task, tokenizer):
    """A `compute_metrics` for `Seq2SeqTrainer(..., compute_metrics=...)` (with `predict_with_generate=True`)
    or, for classification, `Trainer`: the same metric modules as train.py."""

    def compute_metrics(evaluation) -> dict:
        predictions, labels = evaluation.predictions, evaluation.label_ids
        if task.kind == "classification":
            predictions = np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions)
            return load_metric(task.kind).compute(predictions=predictions.argmax(-1), references=labels)
        pad = tokenizer.pad_token_id
        texts = tokenizer.batch_decode(np.where(predictions < 0, pad, predictions), skip_special_tokens=True)
        references = tokenizer.batch_decode(np.where(labels < 0, pad, labels), skip_special_tokens=True)
        return load_metric(task.kind).compute(predictions=[t.strip() for t in texts],
                                              references=[[r.strip()] for r in references])

    return compute_metrics


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
                # the task's guard, also where the model's generation config has another (0 turns it off)
                generated = model.generate(**batch, **search, no_repeat_ngram_size=task.no_repeat_ngram_size,
                                           max_new_tokens=task.max_new_tokens)
                outputs = tokenizer.batch_decode(generated, skip_special_tokens=True)
        for i, output in zip(indices, outputs):
            predictions[i] = output.strip() if isinstance(output, str) else output
    return predictions


def evaluate_records(model, tokenizer, task: Task, records: list[dict], n_bootstrap: int = 0,
                     **predict_kwargs) -> tuple[dict, list]:
    predictions = predict(model, tokenizer, task, [record["source"] for record in records], **predict_kwargs)
    return score(task, predictions, records, n_bootstrap), predictions
