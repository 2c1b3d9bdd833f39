"""Every task end to end on a few dozen records (train, save, score, draw), the data checks, and batching."""

import gzip
import json

import numpy as np
import pytest
import torch
from tiny_datasets import DATASETS, multi30k, samsum, sst2, train_arguments, write_gzip
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

import attention_maps
import evaluate_model
import train
from tasks import DataError, get_task, load_records

EXPECTED_METRICS = {"translation": {"bleu", "chrf", "bleu_signature"}, "summarization": {"rouge1", "rouge2", "rougeL"},
                    "classification": {"accuracy", "macro_f1"}}


@pytest.mark.parametrize("task_name", list(DATASETS))
def test_task_trains_saves_and_scores_end_to_end(task_name, tmp_path):
    task = get_task(task_name)
    data = DATASETS[task_name](tmp_path / "data")
    output = tmp_path / "run"
    assert train.main(train_arguments(task_name, data, output, "--max-steps", "3", "--save-every", "2")) == 0

    results = json.loads((output / "results.json").read_text())
    assert results["steps"] == 3 and results["task"] == task_name
    assert EXPECTED_METRICS[task.metric] <= set(results["evaluation"][task.validation_split])
    assert [h["step"] for h in results["history"] if "train_loss" in h] == [1, 2, 3]
    assert results["tokens_per_second"] > 0 and results["hardware"]["processes"] == 1
    assert (output / "learning_curves.png").stat().st_size > 0
    assert list((output / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard log"
    assert [p.name for p in train.checkpoints(output)] == ["step-2", "step-3"]

    auto_class = AutoModelForSequenceClassification if task.head == "classification" else AutoModelForSeq2SeqLM
    model = auto_class.from_pretrained(output / "model")
    assert model.config.vocab_size <= 300
    # the task's tokenizer choice reaches the published folder (SAMSum: speaker names with a prefix space)
    assert AutoTokenizer.from_pretrained(output / "model").add_prefix_space == task.defaults.get("add_prefix_space", False)

    report = tmp_path / "eval" / "metrics.json"
    split = "test_2016_flickr" if task.data_format == "parallel" else task.validation_split
    assert evaluate_model.main(["--model", str(output / "model"), "--task", task_name, "--data", str(data),
                                "--split", split, "--num-beams", "2", "--output", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert scores["records"] == len(load_records(task, str(data), split))
    assert EXPECTED_METRICS[task.metric] <= set(scores)
    assert len(report.with_suffix(".predictions.txt").read_text().splitlines()) == scores["records"]


@pytest.mark.parametrize("task_name", ["multi30k-en-de", "sst2"])
def test_attention_maps_draws_one_png_per_layer_and_kind(task_name, tmp_path):
    data = DATASETS[task_name](tmp_path / "data")
    assert train.main(train_arguments(task_name, data, tmp_path / "run", "--max-steps", "1")) == 0
    pictures = tmp_path / "pictures"
    assert attention_maps.main(["--model", str(tmp_path / "run" / "model"), "--text", "The cat sleeps.",
                                "--output-dir", str(pictures)]) == 0
    expected = {"encoder_layer1.png"} if task_name == "sst2" else {
        "encoder_layer1.png", "decoder_layer1.png", "cross_layer1.png"}
    assert {p.name for p in pictures.glob("*.png")} == expected


def test_translation_tasks_read_the_language_pair_they_name(tmp_path):
    data = multi30k(tmp_path)
    first = {name: load_records(get_task(name), str(data), "train")[0]
             for name in ["multi30k-en-de", "multi30k-de-en", "multi30k-en-fr"]}
    assert first["multi30k-en-de"]["source"] == first["multi30k-en-fr"]["source"].strip()
    assert first["multi30k-de-en"] == {"source": first["multi30k-en-de"]["target"],
                                       "target": first["multi30k-en-de"]["source"]}
    assert first["multi30k-en-fr"]["target"] != first["multi30k-en-de"]["target"]


# ---------------------------------------------------------------------------------------------------
# Malformed input: a clear error naming the file and line
# ---------------------------------------------------------------------------------------------------


def test_misaligned_parallel_files_name_both_files(tmp_path):
    data = multi30k(tmp_path)
    write_gzip(data / "train.de.gz", "Eins.\nZwei.\n")
    with pytest.raises(DataError, match=r"train\.en\.gz has 40 lines but .*train\.de\.gz has 2"):
        load_records(get_task("multi30k-en-de"), str(data), "train")


def test_empty_sentence_in_parallel_file_names_file_and_line(tmp_path):
    data = multi30k(tmp_path)
    lines = gzip.open(data / "train.de.gz", "rt").read().splitlines()
    lines[6] = "  "
    write_gzip(data / "train.de.gz", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train\.de\.gz:7: empty sentence"):
        load_records(get_task("multi30k-en-de"), str(data), "train")


def test_bad_label_names_file_and_line(tmp_path):
    data = sst2(tmp_path)
    lines = (data / "train.tsv").read_text().splitlines()
    lines[3] = "a fine film \tpositive"
    (data / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train\.tsv:4: label 'positive' is not one of 0\.\.1"):
        load_records(get_task("sst2"), str(data), "train")


def test_wrong_header_and_missing_tab_are_reported(tmp_path):
    data = sst2(tmp_path)
    (data / "dev.tsv").write_text("text\tlabel\nok \t1\n")
    with pytest.raises(DataError, match=r"dev\.tsv:1: expected the header 'sentence<TAB>label'"):
        load_records(get_task("sst2"), str(data), "dev")
    (data / "dev.tsv").write_text("sentence\tlabel\nok \t1\nno label here\n")
    with pytest.raises(DataError, match=r"dev\.tsv:3: expected 2 tab-separated fields, got 1"):
        load_records(get_task("sst2"), str(data), "dev")


def test_invalid_json_and_missing_field_are_reported(tmp_path):
    data = samsum(tmp_path)
    write_gzip(data / "val.json.gz", '[{"id": "1",\n "dialogue": "hi", "summary": }]')
    with pytest.raises(DataError, match=r"val\.json\.gz:2: not valid JSON"):
        load_records(get_task("samsum"), str(data), "val")
    write_gzip(data / "val.json.gz", json.dumps([{"id": "1", "dialogue": "hi"}]))
    with pytest.raises(DataError, match=r"val\.json\.gz record 1: expected an object with fields 'dialogue' and "
                                        r"'summary'"):
        load_records(get_task("samsum"), str(data), "val")


def test_empty_record_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    data = samsum(tmp_path)
    records = json.load(gzip.open(data / "train.json.gz", "rt"))
    records[4]["dialogue"] = ""
    write_gzip(data / "train.json.gz", json.dumps(records))
    loaded = load_records(get_task("samsum"), str(data), "train")
    assert len(loaded) == len(records) - 1
    assert "train.json.gz record 5" in caplog.text


def test_missing_split_lists_the_splits_that_exist(tmp_path):
    data = multi30k(tmp_path)
    with pytest.raises(DataError, match=r"no file test_2017\.en\[\.gz\]; splits here: test_2016_flickr, train, val"):
        load_records(get_task("multi30k-en-de"), str(data), "test_2017")


def test_training_command_reports_data_errors_without_a_traceback(tmp_path, capsys):
    data = multi30k(tmp_path / "data")
    write_gzip(data / "train.de.gz", "Eins.\n")
    assert train.main(train_arguments("multi30k-en-de", data, tmp_path / "run", "--max-steps", "1")) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "train.de.gz has 1" in error and "Traceback" not in error


def test_unknown_task_and_bad_override_are_named():
    with pytest.raises(ValueError, match="unknown task 'wmt14'; known tasks: multi30k-en-de"):
        get_task("wmt14")
    with pytest.raises(ValueError, match="--config-overrides: 'd_model' is not name=value"):
        train.parse_overrides("d_model")


@pytest.mark.parametrize("option, value, message", [
    ("--save-every", "0", "argument --save-every: 0 is less than 1"),  # was a ZeroDivisionError at step 1
    ("--log-every", "-5", "argument --log-every: -5 is less than 1"),
    ("--eval-every", "-1", "argument --eval-every: -1 is less than 0"),
    ("--max-tokens", "ten", "argument --max-tokens: invalid integer >= 1 value: 'ten'"),
    ("--epochs", "0", "argument --epochs: 0 is not above 0"),
])
def test_out_of_range_training_options_are_named_before_anything_runs(option, value, message, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "sst2", "--data", "unused", "--output-dir", "unused", "--max-steps", "3",
                          option, value])
    assert message in capsys.readouterr().err
    assert train.parse_args(["--task", "sst2", "--data", "unused", "--output-dir", "unused", "--max-steps", "3",
                             "--eval-every", "0"]).eval_every == 0  # 0: validate only at the end


# ---------------------------------------------------------------------------------------------------
# Batching by similar length
# ---------------------------------------------------------------------------------------------------


def random_lengths_data(count=2000, seed=0):
    rng = np.random.default_rng(seed)
    source_lengths = rng.integers(3, 60, count)
    target_lengths = source_lengths + rng.integers(-2, 3, count)  # as in translation: lengths go together
    return {"input_ids": [[5] * int(n) for n in source_lengths], "labels": [[6] * int(n) for n in target_lengths]}


def padded_tokens(data, batches):
    return sum(len(b) * (max(len(data["input_ids"][i]) for i in b) + max(len(data["labels"][i]) for i in b))
               for b in batches)


def test_length_grouped_batches_cover_every_example_once_within_the_token_budget():
    data = random_lengths_data()
    batches = train.length_grouped_batches(data, max_tokens=1024, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(2000))
    assert all(padded_tokens(data, [b]) <= 1024 for b in batches)


def test_length_grouped_batches_keep_padding_small():
    data = random_lengths_data()
    real = sum(len(ids) for ids in data["input_ids"]) + sum(len(ids) for ids in data["labels"])
    batches = train.length_grouped_batches(data, max_tokens=1024, seed=0, epoch=0)
    size = round(np.mean([len(b) for b in batches]))
    shuffled = np.random.default_rng(1).permutation(2000).tolist()
    random_batches = [shuffled[i : i + size] for i in range(0, 2000, size)]
    assert padded_tokens(data, batches) < 1.1 * real < padded_tokens(data, random_batches)


def test_batch_order_is_a_function_of_seed_and_epoch():
    data = random_lengths_data()
    assert train.length_grouped_batches(data, 1024, 0, 3) == train.length_grouped_batches(data, 1024, 0, 3)
    assert train.length_grouped_batches(data, 1024, 0, 3) != train.length_grouped_batches(data, 1024, 0, 4)


def test_collate_pads_sources_with_pad_and_labels_with_ignore_index():
    data = {"input_ids": [[7, 8, 2], [9, 2]], "labels": [[10, 2], [11, 12, 13, 2]]}
    batch = train.collate(data, [0, 1], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[7, 8, 2], [9, 2, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[10, 2, -100, -100], [11, 12, 13, 2]]
    assert train.count_items(batch) == 6 and train.count_tokens(batch) == 11
    assert torch.equal(train.collate({"input_ids": [[5, 2]], "labels": [1]}, [0], 0)["labels"], torch.tensor([1]))


def test_hub_dataset_ids_map_splits_and_columns_to_the_task_fields(monkeypatch):
    """Offline, `datasets.load_dataset` is replaced by a stand-in that returns what the Hub dataset holds."""
    import datasets

    requested = []

    def fake_load_dataset(dataset_id, split):
        requested.append((dataset_id, split))
        return datasets.Dataset.from_dict({"id": ["1", "2"], "email_body": ["Hi, lunch at noon?", "x"],
                                           "subject_line": ["lunch", ""]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    records = load_records(get_task("aeslc"), "Yale-LILY/aeslc", "dev")
    assert requested == [("Yale-LILY/aeslc", "validation")]
    assert [(r["source"], r["target"]) for r in records] == [("Hi, lunch at noon?", "lunch")]  # empty target dropped


def test_weight_decay_shrinks_weight_matrices_only_and_zero_is_the_papers_adam():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    assert type(train.build_optimizer(model, lr=0.1, weight_decay=0.0)) is torch.optim.Adam
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = train.build_optimizer(model, lr=0.1, weight_decay=0.5)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)  # no gradient: only the decay moves a parameter
    optimizer.step()
    for old, new in zip(before, model.parameters()):
        expected = old * (1 - 0.1 * 0.5) if old.dim() >= 2 else old
        torch.testing.assert_close(new.detach(), expected)


def test_validation_loss_builds_no_autograd_graph():
    from types import SimpleNamespace

    from accelerate import Accelerator

    class RecordsGradMode(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight, self.grad_enabled = torch.nn.Parameter(torch.ones(())), []

        def forward(self, input_ids, labels, num_items_in_batch=None, **kwargs):
            self.grad_enabled.append(torch.is_grad_enabled())
            return SimpleNamespace(loss=self.weight * labels.ne(-100).sum())

    model = RecordsGradMode()
    data = {"input_ids": [[5, 6, 7], [5, 6]], "labels": [[8, 9], [8]]}
    loss = train.validation_loss(model, data, Accelerator(cpu=True), max_tokens=100, pad_token_id=0)
    assert loss == 1.0 and model.grad_enabled and not any(model.grad_enabled)
