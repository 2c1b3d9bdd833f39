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
    shown = [next(path for path in paths if (ROOT / "results" / path).exists())  # each task's current recipe
             for _, paths, _, _ in write_model_card.TASKS]
    assert shown
    for path in shown:
        run = json.loads((ROOT / "results" / path).read_text())
        assert run["command"] in card.text
        for split, scores in run["evaluation"].items():
            main = next(metric for metric in ("bleu", "rouge1", "accuracy") if metric in scores)
            assert indexed[(run["task"], split, main)] == round(scores[main], 2)
            assert f"{scores[main]:.1f}" in card.text


def test_a_changed_result_makes_the_check_fail(tmp_path):
    card = tmp_path / "model_card.md"
    card.write_text((ROOT / "model_card.md").read_text().replace("38.1 [36.5, 39.8]", "99.9 [36.5, 39.8]"))
    assert write_model_card.main(["--card", str(card), "--check"]) == 1
    assert write_model_card.main(["--card", str(card)]) == 0 and write_model_card.main(["--card", str(card), "--check"]) == 0
    assert "99.9" not in card.read_text() and "## Side by side" in card.read_text()
