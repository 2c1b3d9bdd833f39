"""Checkpoint averaging (the paper's Section 6.1): the averaged model holds the mean of the kept checkpoints'
weights, and loads and predicts like any model folder."""

import pytest
import torch
from safetensors.torch import load_file
from tiny_datasets import multi30k, sst2, train_arguments

import average_checkpoints
import train
from common.tasks import get_task
from comparison.baselines import load_model


@pytest.mark.parametrize("task_name, write_data, baseline", [("multi30k-en-de", multi30k, "ours"),
                                                             ("sst2", sst2, "ours"),
                                                             ("multi30k-en-de", multi30k, "t5")])
def test_averaged_model_holds_the_mean_of_the_last_checkpoints(task_name, write_data, baseline, tmp_path):
    data = write_data(tmp_path / "data")
    run = tmp_path / "run"
    assert train.main(train_arguments(task_name, data, run, "--max-steps", "4", "--save-every", "1",
                                      "--keep-checkpoints", "3", "--baseline", baseline)) == 0
    assert average_checkpoints.main(["--run", str(run), "--last", "3", "--output", str(tmp_path / "avg")]) == 0

    states = [load_file(c / "model.safetensors") for c in train.checkpoints(run)[-3:]]  # the en-de preset keeps 5
    assert len(states) == 3
    averaged = load_model(tmp_path / "avg", get_task(task_name))
    weights = dict(averaged.named_parameters())  # a baseline's are "model.<name>", as in its checkpoints
    compared = [name for name in weights if name in states[0]]
    assert len(compared) >= len(weights) - 1  # all but a tied copy are stored in the checkpoints
    for name in compared:
        expected = sum(state[name].float() for state in states) / 3
        torch.testing.assert_close(weights[name].detach().float(), expected)
    assert not torch.equal(states[0][next(iter(states[0]))], states[-1][next(iter(states[-1]))])


def test_too_few_checkpoints_is_a_clear_error(tmp_path, capsys):
    data = sst2(tmp_path / "data")
    assert train.main(train_arguments("sst2", data, tmp_path / "run", "--max-steps", "1")) == 0
    assert average_checkpoints.main(["--run", str(tmp_path / "run"), "--last", "5", "--output", str(tmp_path / "a")]) == 1
    assert "fewer than --last 5" in capsys.readouterr().err
