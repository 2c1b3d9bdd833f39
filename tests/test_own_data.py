"""Training on one's own files, as with transformers' run_translation.py / run_summarization.py /
run_classification.py: each task kind from files the test writes, trained for a few steps into a folder that
loads with the Auto classes; and every malformed input stopping the run with one line naming file and line."""

import csv
import gzip
import json
import random

import pytest
from tiny_datasets import ANIMALS, TINY_MODEL
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

import evaluate_model
import train
from common.data import DataError, DataSource, load_records
from common.tasks import get_task

FINNISH = {"cat": "kissa", "dog": "koira", "bird": "lintu", "horse": "hevonen", "fish": "kala", "cow": "lehmä"}
SWEDISH = {"cat": "katt", "dog": "hund", "bird": "fågel", "horse": "häst", "fish": "fisk", "cow": "ko"}
SETTINGS = ["--vocab_size", "300", "--config_overrides", TINY_MODEL, "--max_tokens", "256", "--learning_rate", "3e-3",
            "--warmup_steps", "2", "--mixed_precision", "no", "--log_every", "1", "--eval_every", "0",
            "--max_steps", "3", "--save_every", "3"]


def write_jsonl(path, rows):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return path


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def finnish_swedish(count, seed=0):
    rng = random.Random(seed)
    return [{"translation": {"fi": f"{FINNISH[a]} nukkuu.", "sv": f"{SWEDISH[a]} sover."}}
            for a in (rng.choice(ANIMALS) for _ in range(count))]


def reviews(count, seed=0):
    """(review, verdict) with three string labels."""
    rng = random.Random(seed)
    words = {"good": "a lovely", "bad": "an awful", "mixed": "an uneven"}
    rows = []
    for _ in range(count):
        verdict = rng.choice(sorted(words))
        rows.append([f"{words[verdict]} film about a {rng.choice(ANIMALS)}", verdict])
    return rows


def run_training(tmp_path, *arguments):
    return train.main([*arguments, "--output_dir", str(tmp_path / "run"), *SETTINGS])


def test_translation_between_two_other_languages_from_json_lines(tmp_path):
    write_jsonl(tmp_path / "train.jsonl.gz", finnish_swedish(40))
    write_jsonl(tmp_path / "valid.jsonl", finnish_swedish(6, seed=1))
    assert run_training(tmp_path, "--task", "translation", "--source_lang", "fi", "--target_lang", "sv",
                        "--train-file", str(tmp_path / "train.jsonl.gz"),  # dashes work as well as underscores
                        "--validation_file", str(tmp_path / "valid.jsonl")) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["task"] == "translation"
    assert {"bleu", "chrf", "bleu_ci95"} <= set(results["evaluation"]["validation"])
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "model")
    assert tokenizer.decode(tokenizer("lehmä sover.")["input_ids"], skip_special_tokens=True) == "lehmä sover."
    generated = model.generate(**tokenizer(["kissa nukkuu."], return_tensors="pt"), max_new_tokens=5)
    assert generated.shape[0] == 1


def test_summarization_from_a_csv_with_its_own_column_names(tmp_path):
    rng = random.Random(0)
    rows = [[f"Yesterday a {a} walked into the town hall and stayed for lunch.", f"{a} visits town hall"]
            for a in (rng.choice(ANIMALS) for _ in range(30))]
    write_csv(tmp_path / "train.csv", ["article", "headline"], rows)
    write_csv(tmp_path / "dev.csv", ["article", "headline"], rows[:5])
    write_csv(tmp_path / "test.csv", ["article", "headline"], rows[5:9])
    assert run_training(tmp_path, "--task", "summarization", "--text_column", "article", "--summary_column",
                        "headline", "--train_file", str(tmp_path / "train.csv"), "--validation_file",
                        str(tmp_path / "dev.csv"), "--test_file", str(tmp_path / "test.csv")) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["evaluation"]) == {"validation", "test"}  # a test file is scored at the end
    assert {"rouge1", "rouge2", "rougeL", "rouge1_ci95"} <= set(results["evaluation"]["test"])
    assert len((tmp_path / "run" / "predictions_test.txt").read_text().splitlines()) == 4
    assert AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / "model").config.vocab_size <= 300


def test_classification_with_three_string_labels_keeps_them_in_the_model(tmp_path):
    write_csv(tmp_path / "train.tsv", ["review", "verdict"], reviews(45), delimiter="\t")
    write_csv(tmp_path / "valid.tsv", ["review", "verdict"], reviews(6, seed=1), delimiter="\t")
    assert run_training(tmp_path, "--task", "classification", "--text_column_name", "review",
                        "--label_column_name", "verdict", "--train_file", str(tmp_path / "train.tsv"),
                        "--validation_file", str(tmp_path / "valid.tsv")) == 0
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    assert model.config.id2label == {0: "bad", 1: "good", 2: "mixed"}
    assert model.config.label2id == {"bad": 0, "good": 1, "mixed": 2}
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {"accuracy", "macro_f1", "accuracy_ci95"} <= set(results["evaluation"]["validation"])
    # scored again on a file of string labels, through the labels the model keeps
    assert evaluate_model.main(["--model", str(tmp_path / "run" / "model"), "--task", "classification",
                                "--text_column_name", "review", "--label_column_name", "verdict", "--test_file",
                                str(tmp_path / "valid.tsv"), "--split", "test", "--n_bootstrap", "0",
                                "--output", str(tmp_path / "scores.json")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["records"] == 6
    assert scores["accuracy"] == pytest.approx(results["evaluation"]["validation"]["accuracy"])


def test_a_local_folder_of_split_files_works_like_a_preset_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for split, count in [("train", 30), ("validation", 5)]:
        (folder / f"{split}.fi").write_text("".join(r["translation"]["fi"] + "\n" for r in finnish_swedish(count)))
        (folder / f"{split}.sv").write_text("".join(r["translation"]["sv"] + "\n" for r in finnish_swedish(count)))
    task = get_task("translation", source="fi", target="sv")
    loaded = load_records(task, DataSource(str(folder)), "train")
    assert len(loaded) == 30 and loaded[0]["target"].endswith("sover.")
    assert run_training(tmp_path, "--task", "translation", "--source_lang", "fi", "--target_lang", "sv",
                        "--dataset_name", str(folder)) == 0


# ---------------------------------------------------------------------------------------------------
# Malformed input: one line naming the file and line, no traceback
# ---------------------------------------------------------------------------------------------------


def malformed_cases(tmp_path):
    """(arguments, the message expected) for each kind of bad input."""
    fi_sv = ["--task", "translation", "--source_lang", "fi", "--target_lang", "sv"]
    labels = ["--task", "classification", "--text_column_name", "review", "--label_column_name", "verdict"]
    summaries = ["--task", "summarization"]
    good_jsonl = write_jsonl(tmp_path / "good.jsonl", finnish_swedish(6))
    good_tsv = write_csv(tmp_path / "good.tsv", ["review", "verdict"], reviews(20), delimiter="\t")
    good_summaries = write_jsonl(tmp_path / "summaries.jsonl", [{"text": "a b c", "summary": "a"}] * 4)

    misaligned = tmp_path / "misaligned"
    misaligned.mkdir()
    (misaligned / "train.fi").write_text("yksi\nkaksi\nkolme\n")
    (misaligned / "train.sv").write_text("ett\ntvå\n")

    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"translation": {"fi": "yksi", "sv": "ett"}}\n{"translation": {"fi": "kaksi", "sv": }}\n')
    unknown_label = write_csv(tmp_path / "unknown.tsv", ["review", "verdict"], reviews(3) + [["fine", "superb"]],
                              delimiter="\t")
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"text": "a b", "summary": "a"}, {"text": "c d"}])
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"text": "a b", "summary": "a"}, {"text": "c d", "summary": " "}])
    return [
        ([*fi_sv, "--dataset_name", str(misaligned), "--validation_file", str(good_jsonl)],
         f"{misaligned / 'train.fi'} has 3 lines but {misaligned / 'train.sv'} has 2"),
        ([*fi_sv, "--train_file", str(bad_json), "--validation_file", str(good_jsonl)],
         f"{bad_json}:2: not valid JSON"),
        ([*labels, "--train_file", str(good_tsv), "--validation_file", str(unknown_label)],
         f"{unknown_label}:5: unknown label 'superb'; the labels are bad, good, mixed"),
        ([*summaries, "--train_file", str(missing), "--validation_file", str(good_summaries)],
         f"{missing}:2: missing 'summary'"),
        ([*summaries, "--train_file", str(empty), "--validation_file", str(good_summaries)],
         f"{empty}:2: empty 'summary'"),
        ([*labels[:2], "--label_column_name", "verdict", "--text_column_name", "text", "--train_file", str(good_tsv),
          "--validation_file", str(good_tsv)], f"{good_tsv}: no column 'text'; its columns are: review, verdict"),
        ([*fi_sv, "--train_file", str(good_jsonl)],
         "no data for split 'validation': give --dataset_name (a Hub id or a folder) or the split's file"),
    ]


def test_each_malformed_input_stops_with_one_line_naming_file_and_line(tmp_path, capsys):
    for arguments, message in malformed_cases(tmp_path):
        assert run_training(tmp_path, *arguments) == 1, message
        error = capsys.readouterr().err.strip()
        assert error == f"error: {message}" or (error.startswith(f"error: {message}") and "\n" not in error), error


def test_a_missing_language_names_the_languages_present(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"translation": {"fi": "yksi", "de": "eins"}}])
    message = rf"{path}:1: no 'fi' and 'sv' in its translation \(languages present: fi, de\)"
    with pytest.raises(DataError, match=message):
        load_records(get_task("translation", source="fi", target="sv"), DataSource(files={"train": str(path)}),
                     "train")


def test_line_numbers_count_blank_lines_and_the_header(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "a", "summary": "b"}\n\n{"text": "c", "summary": ""}\n')
    with pytest.raises(DataError, match=rf"{path}:3: empty 'summary'"):
        load_records(get_task("summarization"), DataSource(files={"train": str(path)}), "train")
    path = write_csv(tmp_path / "train.csv", ["text", "summary"], [["a", "b"], ["c", "d"], ["e", ""]])
    with pytest.raises(DataError, match=rf"{path}:4: empty 'summary'"):
        load_records(get_task("summarization"), DataSource(files={"train": str(path)}), "train")
