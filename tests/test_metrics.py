"""The metric modules (evaluate modules kept in examples/common/metric_modules, loaded offline) give exactly
what their reference libraries give when called directly, and bootstrap intervals that hold the score."""

import random

import numpy as np
import pytest
import tiny_datasets  # noqa: F401  (puts examples/ on sys.path)
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF
from sklearn.metrics import accuracy_score, f1_score

from common.evaluation import load_metric, score, trainer_compute_metrics
from common.tasks import get_task

WORDS = "the a cat dog sat ran on under mat table quickly slowly red blue".split()


def sentences(count, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(count)]


def test_bleu_and_chrf_equal_sacrebleu():
    predictions, references = sentences(60, 0), sentences(60, 1)
    for i in range(0, 60, 3):
        predictions[i] = references[i]  # some exact matches, so BLEU is well above 0
    result = load_metric("translation").compute(predictions=predictions, references=[[r] for r in references],
                                                n_bootstrap=200)
    bleu, chrf = BLEU(), CHRF()
    assert result["bleu"] == bleu.corpus_score(predictions, [references]).score
    assert result["chrf"] == chrf.corpus_score(predictions, [references]).score
    assert result["bleu_signature"] == str(bleu.get_signature())
    cased = [p.capitalize() if i % 2 else p for i, p in enumerate(predictions)]  # case differences only
    cased_result = load_metric("translation").compute(predictions=cased, references=[[r] for r in references])
    assert cased_result["bleu_lowercase"] == BLEU(lowercase=True).corpus_score(cased, [references]).score
    assert cased_result["bleu_lowercase"] == result["bleu_lowercase"] > cased_result["bleu"]
    assert "case:lc" in cased_result["bleu_lowercase_signature"]
    for name in ("bleu", "chrf", "bleu_lowercase"):
        low, high = result[f"{name}_ci95"]
        assert low < result[name] < high


def test_rouge_equals_rouge_score_with_the_best_of_several_references():
    predictions, first, second = sentences(40, 2), sentences(40, 3), sentences(40, 4)
    result = load_metric("summarization").compute(predictions=predictions,
                                                  references=[[a, b] for a, b in zip(first, second)], n_bootstrap=200)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    direct = [scorer.score_multi([a, b], p) for p, a, b in zip(predictions, first, second)]
    for name in ("rouge1", "rouge2", "rougeL"):
        assert result[name] == pytest.approx(100 * np.mean([s[name].fmeasure for s in direct]), abs=1e-9)
        low, high = result[f"{name}_ci95"]
        assert low <= result[name] <= high and low < high


def test_accuracy_and_macro_f1_equal_scikit_learn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    predictions = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 3, 200))
    result = load_metric("classification").compute(predictions=predictions, references=labels, n_bootstrap=200)
    assert result["accuracy"] == pytest.approx(100 * accuracy_score(labels, predictions))
    assert result["macro_f1"] == pytest.approx(100 * f1_score(labels, predictions, average="macro"))
    assert result["accuracy_ci95"][0] < result["accuracy"] < result["accuracy_ci95"][1]


def test_records_are_scored_against_all_their_references():
    task = get_task("aeslc")
    records = [{"source": "x", "target": "lunch", "references": ["lunch at noon", "noon lunch"]}]
    assert score(task, ["lunch at noon"], records)["rouge1"] == 100.0


def test_trainer_compute_metrics_decodes_generated_ids_and_labels(tokenizer):
    from transformers import EvalPrediction

    texts = ["The cat sat on the mat.", "Two dogs play in the snow."]
    ids = tokenizer(texts, padding=True, return_tensors="np")["input_ids"]
    labels = np.where(ids == tokenizer.pad_token_id, -100, ids)  # as DataCollatorForSeq2Seq pads labels
    compute_metrics = trainer_compute_metrics(get_task("translation"), tokenizer)
    assert compute_metrics(EvalPrediction(predictions=ids, label_ids=labels))["bleu"] == pytest.approx(100.0)
    worse = compute_metrics(EvalPrediction(predictions=ids[::-1].copy(), label_ids=labels))
    assert worse["bleu"] < 50


def test_the_length_penalty_option_reaches_beam_search(tokenizer):
    """`--length_penalty` (train.py, evaluate_model.py) replaces the task's alpha in the beam search that scores
    a model: a larger one favours longer outputs. The model here ends a sentence often (its end-of-sequence
    embedding, shared with the output layer, scaled up), so the beams end at different lengths."""
    import torch
    from conftest import CORPUS, tiny_config
    from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration

    from common.arguments import DataArguments
    from common.evaluation import predict

    torch.manual_seed(0)
    model = VanillaTransformerForConditionalGeneration(
        tiny_config(vocab_size=len(tokenizer), max_position_embeddings=128)).eval()  # up to 96 new tokens
    with torch.no_grad():
        model.get_input_embeddings().weight[tokenizer.eos_token_id] *= 3

    def mean_length(**option):
        task = DataArguments(task="multi30k-de-en", **option).load_task()  # the paper's 0.6
        outputs = predict(model, tokenizer, task, CORPUS * 2)
        return task.length_penalty, sum(len(tokenizer.tokenize(o)) for o in outputs) / len(outputs)

    (default, short), (given, long) = mean_length(), mean_length(length_penalty=5.0)
    assert (default, given) == (0.6, 5.0) and long > short + 10


def test_the_no_repeat_ngram_size_option_stops_loops_in_scoring_and_in_the_saved_model(tokenizer, tmp_path):
    """A model built for a task with a decoding guard (`--no_repeat_ngram_size`) keeps it in its generation config,
    so a plain generate() of the saved folder never repeats a token pair; the search that scores a model uses the
    task's setting, also where it differs from the model's (0: off). An untrained model loops, so without the
    guard its outputs repeat token pairs."""
    import torch
    from conftest import CORPUS
    from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration

    from common.arguments import DataArguments
    from common.evaluation import predict
    from common.models import build_model

    def repeated_pairs(rows):  # in each output up to its end-of-sequence token
        outputs = [ids[: ids.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in ids else ids
                   for ids in (row.tolist() for row in rows)]
        return sum(len(pairs) - len(set(pairs)) for pairs in (list(zip(ids, ids[1:])) for ids in outputs))

    unguarded = DataArguments(task="summarization").load_task()
    guarded = DataArguments(task="summarization", no_repeat_ngram_size=2).load_task()
    assert (unguarded.no_repeat_ngram_size, guarded.no_repeat_ngram_size) == (0, 2)
    torch.manual_seed(0)
    model = build_model(guarded, tokenizer, "d_model=32,encoder_layers=1,decoder_layers=1,ffn_dim=64,dropout=0")
    model.save_pretrained(tmp_path)
    model = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path).eval()
    sources = CORPUS[:4]
    batch = tokenizer(sources, return_tensors="pt", padding=True)
    with torch.no_grad():
        plain = model.generate(**batch, num_beams=1, max_new_tokens=guarded.max_new_tokens)
        loops = model.generate(**batch, num_beams=1, max_new_tokens=guarded.max_new_tokens, no_repeat_ngram_size=0)
        beams = model.generate(**batch, max_new_tokens=guarded.max_new_tokens)  # the saved config's beam 4
    assert repeated_pairs(loops) > 0 and repeated_pairs(plain) == 0 and repeated_pairs(beams) == 0

    def texts(ids):
        return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    assert predict(model, tokenizer, guarded, sources, num_beams=1) == texts(plain)
    assert predict(model, tokenizer, unguarded, sources, num_beams=1) == texts(loops)
