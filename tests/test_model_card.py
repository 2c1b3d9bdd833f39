"""The repository's model card comes from the one card template and the committed results JSON."""

import json
from pathlib import Path

from huggingface_hub import ModelCard

import tiny_datasets  # noqa: F401  (puts examples/ on sys.path)
import write_model_card

ROOT = Path(__file__).resolve().parents[1]


def test_model_card_is_what_the_generator_writes_from_the_results_json():
    assert write_model_card.main(["--check"]) == 0, "run python examples/write_model_card.py"


def test_model_card_front_matter_parses_and_indexes_each_tasks_current_recipe():
    card = ModelCard.load(ROOT / "model_card.md")
    assert card.data.license == "apache-2.0" and card.data.library_name == "transformers"
    indexed = {(r.dataset_name, r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    shown = [(heading, next(path for path in paths if (ROOT / "results" / path).exists()))  # current recipes
             for heading, paths, _, _ in write_model_card.TASKS]
    assert shown
    for heading, path in shown:
        run = write_model_card.load_runs([path])[0]
        assert run["command"] in card.text
        # as the preset decodes today: en-de's length penalty was chosen on val after its run
        evaluation = write_model_card.current_scores(heading, run)[0]
        assert evaluation.keys() == run["evaluation"].keys()
        for split, scores in evaluation.items():
            main = next(metric for metric in ("bleu", "rouge1", "accuracy") if metric in scores)
            assert indexed[(run["task"], split, main)] == round(scores[main], 2)
            assert f"{scores[main]:.1f}" in card.text
    assert indexed[("multi30k-en-de", "test_2016_flickr", "bleu")] != round(
        json.loads((ROOT / "results" / shown[0][1]).read_text())["evaluation"]["test_2016_flickr"]["bleu"], 2)


def test_a_changed_result_makes_the_check_fail(tmp_path):
    card = tmp_path / "model_card.md"
    card.write_text((ROOT / "model_card.md").read_text().replace("38.1 [36.5, 39.8]", "99.9 [36.5, 39.8]"))
    assert write_model_card.main(["--card", str(card), "--check"]) == 1
    assert write_model_card.main(["--card", str(card)]) == 0 and write_model_card.main(["--card", str(card), "--check"]) == 0
    assert "99.9" not in card.read_text() and "## Side by side" in card.read_text()


def test_a_redecoded_run_shows_its_val_sweep_and_the_best_val_setting_on_test(tmp_path, monkeypatch):
    """The length penalty is chosen on val (best cased BLEU) and only the chosen one is shown on test."""
    folder = tmp_path / "results" / "task" / "length-penalty"
    folder.mkdir(parents=True)

    def report(split, alpha, bleu):
        scores = {"bleu": bleu, "bleu_ci95": [bleu - 1, bleu + 1], "bleu_lowercase": bleu + 0.1, "chrf": 60.0}
        (folder / f"{split}-{alpha}.json").write_text(json.dumps({
            "split": split, "length_penalty": alpha, "num_beams": 4, "bf16": True, "seconds": 60.0,
            "command": f"evaluate_model.py --split {split} --length_penalty {alpha}", "commit": "a" * 40,
            "hardware": {"cpu": "Some CPU", "cpu_threads": 2}, **scores}))

    for alpha, bleu in [(0.6, 40.1), (2.0, 40.9), (3.0, 40.4)]:
        report("val", alpha, bleu)
    report("test", 0.6, 45.0)  # a better test score must not decide
    report("test", 2.0, 39.7)
    monkeypatch.setattr(write_model_card, "ROOT", tmp_path)
    text = "\n".join(write_model_card.redecoded_text(write_model_card.Redecoding(
        "task/run.json", "length_penalty", "bleu", "task/length-penalty/val-*.json", "task/length-penalty/test-*.json")))
    assert "2.0 scores best" in text and "| 3.0 | 40.40 |" in text
    assert "| test | 39.7 [38.7, 40.7] |" in text and "45.0" not in text
    assert "`evaluate_model.py --split test --length_penalty 2.0`: commit `aaaaaaa`; Some CPU, 2 threads, bf16" in text


def test_a_task_without_a_test_split_is_redecoded_on_validation_and_says_the_score_is_optimistic(tmp_path,
                                                                                                    monkeypatch):
    """A loop guard chosen on dev (best ROUGE-1): the sweep's table, the chosen value's scores, and the warning
    that choosing on the scored split flatters it; the README row takes the chosen report's scores."""
    folder = tmp_path / "results" / "task" / "no-repeat"
    folder.mkdir(parents=True)
    for size, rouge1 in [(0, 10.5), (1, 13.2), (2, 12.8)]:
        (folder / f"dev-{size}.json").write_text(json.dumps({
            "split": "dev", "no_repeat_ngram_size": size, "num_beams": 4, "bf16": False, "seconds": 240.0,
            "rouge1": rouge1, "rouge1_ci95": [rouge1 - 1, rouge1 + 1], "rouge2": 1.5, "rougeL": rouge1 - 0.5,
            "command": f"evaluate_model.py --split dev --no_repeat_ngram_size {size}", "commit": "b" * 40,
            "hardware": {"cpu": "Some CPU", "cpu_threads": 1}}))
    monkeypatch.setattr(write_model_card, "ROOT", tmp_path)
    sweep = write_model_card.Redecoding("task/run.json", "no_repeat_ngram_size", "rouge1", "task/no-repeat/dev-*.json")
    text = "\n".join(write_model_card.redecoded_text(sweep, {"evaluation": {"dev": {"rouge1": 10.5}}}))
    assert "1 scores best" in text and "| 2 | 12.80 | 1.50 | 12.30 |" in text and "optimistic" in text
    assert "| dev | 13.2 [12.2, 14.2] |" in text
    monkeypatch.setitem(write_model_card.REDECODED, "Task", sweep)
    run = {"results_file": "results/task/run.json", "evaluation": {"dev": {"rouge1": 10.5}}}
    scores, where = write_model_card.current_scores("Task", run)
    assert scores["dev"]["rouge1"] == 13.2 and "no_repeat_ngram_size 1 (commit `bbbbbbb`)" in where
    # a later run of the task, decoded by train.py as the preset decodes now, keeps its own scores
    later = {"results_file": "results/task/later.json", "evaluation": {"dev": {"rouge1": 17.0}}}
    assert write_model_card.current_scores("Task", later) == (later["evaluation"], "")


def test_a_runs_source_dependence_reports_are_tabled_under_its_scores():
    report = {"checkpoint": "the scored model (step 500)", "split": "dev", "records": 300, "matched_loss": 6.656,
              "mismatched_loss": 7.92, "difference": 1.264}
    assert write_model_card.dependence_text({"evaluation": {}}) == []
    text = "\n".join(write_model_card.dependence_text({"source_dependence": {"step500-dev": report}}))
    assert "| the scored model (step 500) | dev | 300 | 6.66 | 7.92 | 1.26 |" in text


def test_runs_over_seeds_are_grouped_by_setting_with_mean_and_spread(tmp_path, monkeypatch):
    recipe = "train.py --task sst2 --output_dir runs/{name}-s{seed} --config_overrides d_model=128,dropout=0.3{extra} --seed {seed}"
    hardware = {"cpu": "Some CPU", "cpu_threads": 1}
    for name, extra, scores in [("base", "", [80.0, 82.0, 84.0]), ("wd", ",word_dropout=0.1", [83.0, 83.0, 86.0])]:
        for seed, accuracy in enumerate(scores):
            run = {"command": recipe.format(name=name, seed=seed, extra=extra), "commit": "a" * 40, "hardware": hardware,
                   "arguments": {"seed": seed}, "wall_seconds": 120.0,
                   "evaluation": {"dev": {"accuracy": accuracy, "macro_f1": accuracy - 1}}}
            path = tmp_path / "results" / "task" / f"{name}-s{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(run))
    monkeypatch.setattr(write_model_card, "ROOT", tmp_path)
    rows = [line for line in write_model_card.seeds_text(["task/base-s*.json", "task/wd-s*.json"], "A note.")
            if line.startswith("| ") and "aaaaaaa" in line]
    assert len(rows) == 2  # one row per setting, not per seed
    assert "80.00, 82.00, 84.00 | 82.00 ± 2.00 | 81.00 | 2.0, 2.0, 2.0 |" in rows[0]
    assert rows[1].startswith("| `word_dropout=0.1` |") and "84.00 ± 1.73" in rows[1]
