"""A count given on the command line of an example script is checked when it is parsed: 0 or a negative
number is an error naming the option, before any data or model is loaded."""

import pytest
import tiny_datasets  # noqa: F401  (puts examples/ on sys.path)

import average_checkpoints
import evaluate_model
import source_dependence
import train
from benchmark import benchmark
from comparison import compare

MODEL_ARGS = ["--model", "unused", "--task", "multi30k-en-de", "--data", "unused", "--split", "val"]


@pytest.mark.parametrize("main, argv, message", [
    # --last 0 took checkpoints[-0:], every checkpoint of the run, and averaged them all
    (average_checkpoints.main, ["--run", "unused", "--output", "unused", "--last", "0"],
     "argument --last: 0 is less than 1"),
    (evaluate_model.main, [*MODEL_ARGS, "--batch-size", "0"], "argument --batch_size: 0 is less than 1"),
    (evaluate_model.main, [*MODEL_ARGS, "--num_beams", "-1"], "argument --num_beams: -1 is less than 1"),
    (source_dependence.main, [*MODEL_ARGS, "--max-tokens", "0"], "argument --max_tokens: 0 is less than 1"),
    (benchmark.main, ["--repeats", "0"], "argument --repeats: 0 is less than 1"),
    (benchmark.main, ["--window", "two"], "argument --window: invalid integer >= 1 value: 'two'"),
])
def test_a_count_below_its_minimum_is_an_error_naming_the_option(main, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2  # argparse's usage error
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("main", [train.main, evaluate_model.main, source_dependence.main, average_checkpoints.main,
                                  benchmark.main, compare.main])
def test_help_prints_every_option(main, capsys):
    """--help works (a '%' in an option's help, as in "95% intervals", once made argparse fail)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--help" in out
