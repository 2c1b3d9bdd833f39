"""Every task end to end on a few dozen records (train, save, score, draw), the data checks, and batching."""

import contextlib
import gzip
import json
from dataclasses import replace

import numpy as np
import pytest
from huggingface_hub import ModelCard
import torch
from tiny_datasets import DATASETS, multi30k, samsum, sst2, train_arguments, write_gzip
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

import attention_maps
import evaluate_model
import train
from common.batching import collate, count_items, count_tokens, length_grouped_batches, make_collator
from common.batching import validation_loss
from common.data import DataError, DataSource, load_records
from common.models import apply_overrides, build_optimizer
from common.tasks import get_task
from vanilla_transformer.configuration import VanillaTransformerConfig


def records(task_name, folder, split):
    return load_records(get_task(task_name), DataSource(str(folder)), split)

EXPECTED_METRICS = {"translation": {"bleu", "chrf", "bleu_signature"}, "summarization": {"rouge1", "rouge2", "rougeL"},
                    "classification": {"accuracy", "macro_f1"}}


@pytest.mark.parametrize("task_name", list(DATASETS))
def test_task_trains_saves_and_scores_end_to_end(task_name, tmp_path):
    task = get_task(task_name)
    data = DATASETS[task_name](tmp_path / "data")
    output = tmp_path / "run"
    assert train.main(train_arguments(task_name, data, output, "--max_steps", "3", "--save_every", "2")) == 0

    results = json.loads((output / "results.json").read_text())
    assert results["steps"] == 3 and results["task"] == task_name
    assert EXPECTED_METRICS[task.metric] <= set(results["evaluation"][task.validation_split])
    assert [h["step"] for h in results["history"] if "train_loss" in h] == [1, 2, 3]
    validated = [h for h in results["history"] if task.main_metric in h]  # plotted against time and tokens
    assert validated[-1]["train_tokens"] == results["train_tokens"] > 0 and validated[-1]["train_seconds"] > 0
    assert results["tokens_per_second"] > 0 and results["hardware"]["processes"] == 1
    assert (output / "learning_curves.png").stat().st_size > 0
    assert list((output / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard log"
    assert [p.name for p in train.checkpoints(output)] == ["step-2", "step-3"]

    auto_class = AutoModelForSequenceClassification if task.head == "classification" else AutoModelForSeq2SeqLM
    model = auto_class.from_pretrained(output / "model")
    assert model.config.vocab_size <= 300
    # the task's tokenizer choice reaches the published folder (SAMSum: speaker names with a prefix space)
    assert AutoTokenizer.from_pretrained(output / "model").add_prefix_space == task.defaults.get("add_prefix_space", False)
    # the folder's card names its training data and carries its scores, in text and in the Hub's model-index
    card = ModelCard.load(output / "model" / "README.md")
    assert str(data) in card.text and results["command"] in card.text
    main_score = results["evaluation"][task.validation_split][task.main_metric]
    indexed = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert indexed[(task.validation_split, task.main_metric)] == round(main_score, 2)
    assert f"{main_score:.1f}" in card.text
    best_card = (output / "best" / "README.md").read_text()  # written under a temporary name, then renamed
    assert f"from_pretrained({str(output / 'best')!r}" in best_card and ".partial" not in best_card

    report = tmp_path / "eval" / "metrics.json"
    split = task.test_split if task.kind == "translation" else task.validation_split
    assert evaluate_model.main(["--model", str(output / "model"), "--task", task_name, "--dataset_name", str(data),
                                "--split", split, "--num_beams", "2", "--n_bootstrap", "50",
                                "--output", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert scores["records"] == len(records(task_name, data, split))
    main = task.main_metric
    assert scores[f"{main}_ci95"][0] <= scores[main] <= scores[f"{main}_ci95"][1]
    assert EXPECTED_METRICS[task.metric] <= set(scores)
    assert len(report.with_suffix(".predictions.txt").read_text().splitlines()) == scores["records"]
    # where the scores came from: the command, the code and the machine, and how it decoded
    assert scores["command"].startswith("evaluate_model.py --model ") and "--num_beams 2" in scores["command"]
    assert scores["commit"] and scores["hardware"]["cpu"] and scores["hardware"]["torch"]
    if task.head != "classification":
        assert (scores["num_beams"], scores["length_penalty"]) == (2, task.length_penalty)


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
    first = {name: records(name, data, "train")[0] for name in ["multi30k-en-de", "multi30k-de-en", "multi30k-en-fr"]}
    assert first["multi30k-en-de"]["source"] == first["multi30k-en-fr"]["source"].strip()
    assert (first["multi30k-de-en"]["source"], first["multi30k-de-en"]["target"]) == (
        first["multi30k-en-de"]["target"], first["multi30k-en-de"]["source"])
    assert first["multi30k-en-fr"]["target"] != first["multi30k-en-de"]["target"]


# ---------------------------------------------------------------------------------------------------
# Malformed input: a clear error naming the file and line
# ---------------------------------------------------------------------------------------------------


def test_misaligned_parallel_files_name_both_files(tmp_path):
    data = multi30k(tmp_path)
    write_gzip(data / "train.de.gz", "Eins.\nZwei.\n")
    with pytest.raises(DataError, match=r"train\.en\.gz has 40 lines but .*train\.de\.gz has 2"):
        records("multi30k-en-de", data, "train")


def test_empty_sentence_in_parallel_file_names_file_and_line(tmp_path):
    data = multi30k(tmp_path)
    lines = gzip.open(data / "train.de.gz", "rt").read().splitlines()
    lines[6] = "  "
    write_gzip(data / "train.de.gz", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train\.de\.gz:7: empty sentence"):
        records("multi30k-en-de", data, "train")


def test_unknown_label_names_file_and_line(tmp_path):
    from common.data import encode_labels

    data = sst2(tmp_path)
    lines = (data / "train.tsv").read_text().splitlines()
    lines[3] = "a fine film \tsuperb"
    (data / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train\.tsv:4: unknown label 'superb'; the labels are negative, positive"):
        encode_labels(get_task("sst2"), records("sst2", data, "train"))


def test_missing_column_and_missing_field_are_reported(tmp_path):
    data = sst2(tmp_path)
    (data / "dev.tsv").write_text("text\tlabel\nok \t1\n")
    with pytest.raises(DataError, match=r"dev\.tsv: no column 'sentence'; its columns are: text, label"):
        records("sst2", data, "dev")
    (data / "dev.tsv").write_text("sentence\tlabel\nok \t1\nno label here\n")
    with pytest.raises(DataError, match=r"dev\.tsv:3: empty 'label'"):  # a row without the field: an empty cell
        records("sst2", data, "dev")


def test_invalid_json_and_missing_field_are_reported(tmp_path):
    data = samsum(tmp_path)
    write_gzip(data / "val.json.gz", '[{"id": "1",\n "dialogue": "hi", "summary": }]')
    with pytest.raises(DataError, match=r"val\.json\.gz:2: not valid JSON"):
        records("samsum", data, "val")
    write_gzip(data / "val.json.gz", json.dumps([{"id": "1", "dialogue": "hi"}]))
    with pytest.raises(DataError, match=r"val\.json\.gz: no column 'summary'; its columns are: id, dialogue"):
        records("samsum", data, "val")


def test_empty_record_is_skipped_with_a_warning_naming_it_where_the_preset_says_so(tmp_path, caplog):
    data = samsum(tmp_path)
    items = json.load(gzip.open(data / "train.json.gz", "rt"))
    items[4]["dialogue"] = ""
    write_gzip(data / "train.json.gz", json.dumps(items))
    loaded = records("samsum", data, "train")
    assert len(loaded) == len(items) - 1
    assert "train.json.gz record 5" in caplog.text


def test_missing_split_lists_the_splits_that_exist(tmp_path):
    data = multi30k(tmp_path)
    with pytest.raises(DataError, match=r"no file for split 'test_2017' .*; splits here: test_2016_flickr, train, val"):
        records("multi30k-en-de", data, "test_2017")


def test_training_command_reports_data_errors_without_a_traceback(tmp_path, capsys):
    data = multi30k(tmp_path / "data")
    write_gzip(data / "train.de.gz", "Eins.\n")
    assert train.main(train_arguments("multi30k-en-de", data, tmp_path / "run", "--max_steps", "1")) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "train.de.gz has 1" in error and "Traceback" not in error


def test_unknown_task_and_bad_override_are_named():
    with pytest.raises(ValueError, match="unknown task 'wmt14'; a task kind .* or a preset .*multi30k-en-de"):
        get_task("wmt14")
    with pytest.raises(ValueError, match="--config_overrides: 'd_model' is not name=value"):
        apply_overrides(VanillaTransformerConfig(), "d_model")
    with pytest.raises(ValueError, match="--config_overrides: key d_modle isn't in the original config dict"):
        apply_overrides(VanillaTransformerConfig(), "d_modle=64")
    with pytest.raises(ValueError, match="d_model=100: must be divisible by num_attention_heads=8"):
        apply_overrides(VanillaTransformerConfig(), "d_model=100")
    config = VanillaTransformerConfig()
    assert apply_overrides(config, "d_model=64,dropout=0.3,attention_window=8,attn_implementation=eager") == "eager"
    assert (config.d_model, config.dropout, config.attention_window) == (64, 0.3, 8)


@pytest.mark.parametrize("option, value, message", [
    ("--save_every", "0", "argument --save_every: 0 is less than 1"),  # was a ZeroDivisionError at step 1
    ("--log-every", "-5", "argument --log_every: -5 is less than 1"),
    ("--eval_every", "-1", "argument --eval_every: -1 is less than 0"),
    ("--max_tokens", "ten", "invalid int value: 'ten'"),
    ("--epochs", "0", "argument --num_train_epochs: 0.0 is not above 0"),
    ("--config_overrides", "d_model=100", "must be divisible by num_attention_heads"),
])
def test_out_of_range_training_options_are_named_before_anything_runs(option, value, message, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "sst2", "--data", "unused", "--output_dir", "unused", "--max_steps", "3",
                          option, value])
    assert message in capsys.readouterr().err
    task, data, model, training = train.parse_args(["--task", "sst2", "--data", "unused", "--output-dir", "unused",
                                                    "--max-steps", "3", "--eval-every", "0"])
    assert training.eval_every == 0 and training.max_steps == 3  # 0: validate only at the end
    assert training.learning_rate == 5e-4 and model.vocab_size == 8000  # the preset's recipe fills in the rest


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
    batches = length_grouped_batches(data, max_tokens=1024, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(2000))
    assert all(padded_tokens(data, [b]) <= 1024 for b in batches)


def test_length_grouped_batches_keep_padding_small():
    data = random_lengths_data()
    real = sum(len(ids) for ids in data["input_ids"]) + sum(len(ids) for ids in data["labels"])
    batches = length_grouped_batches(data, max_tokens=1024, seed=0, epoch=0)
    size = round(np.mean([len(b) for b in batches]))
    shuffled = np.random.default_rng(1).permutation(2000).tolist()
    random_batches = [shuffled[i : i + size] for i in range(0, 2000, size)]
    assert padded_tokens(data, batches) < 1.1 * real < padded_tokens(data, random_batches)


def test_batch_order_is_a_function_of_seed_and_epoch():
    data = random_lengths_data()
    assert length_grouped_batches(data, 1024, 0, 3) == length_grouped_batches(data, 1024, 0, 3)
    assert length_grouped_batches(data, 1024, 0, 3) != length_grouped_batches(data, 1024, 0, 4)


def test_collate_pads_sources_with_pad_and_labels_with_ignore_index(tokenizer):
    data = {"input_ids": [[7, 8, 2], [9, 2]], "labels": [[10, 2], [11, 12, 13, 2]]}
    batch = collate(make_collator(tokenizer, get_task("multi30k-en-de")), data, [0, 1])
    assert batch["input_ids"].tolist() == [[7, 8, 2], [9, 2, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[10, 2, -100, -100], [11, 12, 13, 2]]
    assert count_items(batch) == 6 and count_tokens(batch) == 11
    classification = make_collator(tokenizer, get_task("sst2"))
    assert torch.equal(collate(classification, {"input_ids": [[5, 2]], "labels": [1]}, [0])["labels"], torch.tensor([1]))


def test_hub_dataset_ids_map_splits_and_columns_to_the_task_fields(monkeypatch):
    """Offline, `datasets.load_dataset` is replaced by a stand-in that returns what the Hub dataset holds."""
    import datasets

    requested = []

    def fake_load_dataset(dataset_id, config_name, split):
        requested.append((dataset_id, split))
        return datasets.Dataset.from_dict({"id": ["1", "2"], "email_body": ["Hi, lunch at noon?", "x"],
                                           "subject_line": ["lunch", ""]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = replace(get_task("aeslc"), skip_empty_records=True)
    loaded = load_records(task, DataSource("Yale-LILY/aeslc"), "dev")
    assert requested == [("Yale-LILY/aeslc", "validation")]
    assert [(r["source"], r["target"]) for r in loaded] == [("Hi, lunch at noon?", "lunch")]  # empty target dropped


def test_weight_decay_shrinks_weight_matrices_only_and_zero_is_the_papers_adam():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    assert type(build_optimizer(model, lr=0.1, weight_decay=0.0)) is torch.optim.Adam
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = build_optimizer(model, lr=0.1, weight_decay=0.5)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)  # no gradient: only the decay moves a parameter
    optimizer.step()
    for old, new in zip(before, model.parameters()):
        expected = old * (1 - 0.1 * 0.5) if old.dim() >= 2 else old
        torch.testing.assert_close(new.detach(), expected)


def test_validation_loss_builds_no_autograd_graph(tokenizer):
    from types import SimpleNamespace

    class RecordsGradMode(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight, self.grad_enabled = torch.nn.Parameter(torch.ones(())), []

        def forward(self, input_ids, labels, num_items_in_batch=None, **kwargs):
            self.grad_enabled.append(torch.is_grad_enabled())
            return SimpleNamespace(loss=self.weight * labels.ne(-100).sum())

    model = RecordsGradMode()
    data = {"input_ids": [[5, 6, 7], [5, 6]], "labels": [[8, 9], [8]]}
    loss = validation_loss(model, data, make_collator(tokenizer, get_task("multi30k-en-de")), max_tokens=100,
                           device="cpu", autocast=contextlib.nullcontext)
    assert loss == 1.0 and model.grad_enabled and not any(model.grad_enabled)


def test_an_unreachable_hub_dataset_is_a_data_error_saying_what_to_give_instead(monkeypatch):
    import datasets

    def offline(dataset_id, config_name, split):
        raise ConnectionError(f"Couldn't reach '{dataset_id}' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"stanfordnlp/sst2: cannot load split 'train' from the Hub .*offline, give "
                                        r"--dataset_name a local folder"):
        load_records(get_task("sst2"), DataSource("stanfordnlp/sst2"), "train")


def test_average_last_saves_and_scores_the_mean_of_the_last_checkpoints(tmp_path):
    from safetensors.torch import load_file

    data = DATASETS["multi30k-en-de"](tmp_path / "data")
    output = tmp_path / "run"
    assert train.main(train_arguments("multi30k-en-de", data, output, "--max_steps", "4", "--save_every", "1",
                                      "--keep_checkpoints", "1", "--average_last", "3")) == 0
    kept = train.checkpoints(output)
    assert [p.name for p in kept] == ["step-2", "step-3", "step-4"]  # --average_last keeps what it averages
    saved = [load_file(folder / "model.safetensors") for folder in kept]
    model = AutoModelForSeq2SeqLM.from_pretrained(output / "model")
    name = "model.encoder.layers.0.fc1.weight" if "model.encoder.layers.0.fc1.weight" in saved[0] else next(
        n for n in saved[0] if n.endswith("fc1.weight"))
    mean = sum(state[name].float() for state in saved) / 3
    torch.testing.assert_close(model.state_dict()[name].float(), mean)
    assert not torch.equal(saved[0][name], saved[-1][name])  # the steps did change the weights
    results = json.loads((output / "results.json").read_text())
    assert results["checkpoint"] == "the average of the last 3 checkpoints (step-2, step-3, step-4)"
    assert "the average of the last 3 checkpoints" in (output / "model" / "README.md").read_text()


@pytest.mark.parametrize("flag, expected", [([], True), (["--no_cpu_kernels"], False)])
def test_training_on_a_cpu_switches_the_cpu_kernels_on_unless_told_not_to(tmp_path, monkeypatch, flag, expected):
    enabled = []
    original = train.enable_cpu_kernels
    monkeypatch.setattr(train, "enable_cpu_kernels", lambda model: enabled.append(model) or original(model))
    data = DATASETS["sst2"](tmp_path / "data")
    assert train.main(train_arguments("sst2", data, tmp_path / "run", "--max_steps", "1", *flag)) == 0
    assert bool(enabled) == expected
    if expected:  # what ran was the model with the kernels: its config says so
        assert enabled[0].config._attn_implementation == "cpu_written_out"


def test_early_stopping_waits_for_the_minimum_epochs_then_stops_after_patience_validations(tmp_path):
    """The comparison protocol: at least N epochs, then stop after `patience` validations without improvement;
    the stop is saved, so resuming a stopped run trains no further."""
    data = sst2(tmp_path / "data")
    output = tmp_path / "run"
    arguments = train_arguments("sst2", data, output, "--num_train_epochs", "200", "--eval_every", "1",
                                "--early_stopping_patience", "2", "--min_train_epochs", "6", "--keep_checkpoints", "1")
    assert train.main(arguments) == 0
    results = json.loads((output / "results.json").read_text())
    validated = [h for h in results["history"] if "accuracy" in h]
    assert results["stopped_early"] and results["epochs"] < 200 and results["epochs"] >= 6  # 1 step per epoch here
    scores = [h["accuracy"] for h in validated]
    best = scores.index(max(scores))  # the first best: a later equal score is no improvement
    assert len(validated) - 1 - best >= 2, "stopped before two validations without improvement"
    assert results["best_step"] == validated[best]["step"]
    assert train.main(arguments + ["--resume"]) == 0
    assert json.loads((output / "results.json").read_text())["steps"] == results["steps"]


def test_adafactor_steps_in_proportion_to_each_parameters_size_where_adam_steps_alike():
    def step_sizes(name):
        torch.manual_seed(0)
        large, small = torch.nn.Parameter(torch.randn(64, 64)), torch.nn.Parameter(0.01 * torch.randn(64, 64))
        before = [large.detach().clone(), small.detach().clone()]
        optimizer = build_optimizer(torch.nn.ParameterList([large, small]), lr=1e-3, weight_decay=0.0, name=name)
        gradient = torch.randn(64, 64)
        large.grad, small.grad = gradient.clone(), gradient.clone()
        optimizer.step()
        return [(p.detach() - b).pow(2).mean().sqrt().item() for p, b in zip([large, small], before)]

    adam_large, adam_small = step_sizes("adam")
    assert adam_large == pytest.approx(adam_small, rel=1e-3)
    adafactor_large, adafactor_small = step_sizes("adafactor")
    assert adafactor_large / adafactor_small == pytest.approx(100, rel=0.1)
    with pytest.raises(ValueError, match="sgd"):
        build_optimizer(torch.nn.Linear(2, 2), lr=1e-3, weight_decay=0.0, name="sgd")


def test_training_and_evaluation_turn_off_attention_that_plans_per_shape(tmp_path):
    """cuDNN's attention builds a plan for every new shape, and the scripts' shapes change at every step: train.py and
    evaluate_model.py switch it off (on a GPU that is what keeps a step from paying for a plan)."""
    data = DATASETS["sst2"](tmp_path / "data")
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        assert train.main(train_arguments("sst2", data, tmp_path / "run", "--max_steps", "1")) == 0
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        torch.backends.cuda.enable_cudnn_sdp(True)
        assert evaluate_model.main(["--model", str(tmp_path / "run" / "model"), "--task", "sst2", "--dataset_name",
                                    str(data), "--split", "dev", "--output", str(tmp_path / "m.json")]) == 0
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(True)
