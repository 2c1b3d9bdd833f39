"""Nothing is lost: a run killed with SIGKILL resumes to the same result as an uninterrupted run, and a run
whose loss becomes NaN stops with a clear message, keeping the last good checkpoint."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from tiny_datasets import EXAMPLES, TINY_MODEL, multi30k, train_arguments

import train
from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration

STEPS = ["--max-steps", "40", "--save-every", "2", "--keep-checkpoints", "3"]


def losses(run_dir):
    history = json.loads((run_dir / "results.json").read_text())["history"]
    return [(h["step"], h["train_loss"], h["lr"]) for h in history if "train_loss" in h]


def test_resume_after_sigkill_gives_the_uninterrupted_result(tmp_path):
    data = multi30k(tmp_path / "data", count=80)
    dropout = ["--config-overrides", TINY_MODEL + ",dropout=0.1"]  # with dropout, the RNG state must resume too
    uninterrupted = tmp_path / "uninterrupted"
    assert train.main(train_arguments("multi30k-en-de", data, uninterrupted, *STEPS, "--max-tokens", "100")
                      + dropout) == 0

    killed = tmp_path / "killed"
    argv = train_arguments("multi30k-en-de", data, killed, *STEPS, "--max-tokens", "100") + dropout
    process = subprocess.Popen([sys.executable, str(EXAMPLES / "train.py"), *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step-6").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "results.json").exists()
    newest = train.checkpoints(killed)[-1]
    assert 6 <= int(newest.name.split("-")[1]) < 40

    assert train.main(argv + ["--resume"]) == 0
    resumed, reference = losses(killed), losses(uninterrupted)
    assert [step for step, _, _ in resumed] == list(range(1, 41))
    assert [value for _, loss, lr in resumed for value in (loss, lr)] == pytest.approx(
        [value for _, loss, lr in reference for value in (loss, lr)], rel=1e-6)
    final = [load_file(run / "checkpoints" / "step-40" / "model.safetensors") for run in (uninterrupted, killed)]
    for name in final[0]:
        torch.testing.assert_close(final[0][name], final[1][name], rtol=1e-6, atol=1e-7)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    forward = VanillaTransformerForConditionalGeneration.forward
    calls = {"n": 0}

    def diverging_forward(self, *args, **kwargs):
        outputs = forward(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] >= 5:  # the fifth training step blows up
                outputs.loss = outputs.loss * float("nan")
        return outputs

    monkeypatch.setattr(VanillaTransformerForConditionalGeneration, "forward", diverging_forward)
    data = multi30k(tmp_path / "data")
    run = tmp_path / "run"
    assert train.main(train_arguments("multi30k-en-de", data, run, "--max-steps", "8", "--save-every", "2")) == 1
    error = capsys.readouterr().err
    assert "the training loss became nan at step 5" in error
    assert f"The last good checkpoint is {run / 'checkpoints' / 'step-4'}" in error
    assert [p.name for p in train.checkpoints(run)] == ["step-2", "step-4"]
    weights = load_file(run / "checkpoints" / "step-4" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())

    monkeypatch.setattr(VanillaTransformerForConditionalGeneration, "forward", forward)
    assert train.main(train_arguments("multi30k-en-de", data, run, "--max-steps", "6", "--save-every", "2",
                                      "--resume")) == 0
    assert [step for step, _, _ in losses(run)] == [1, 2, 3, 4, 5, 6]


def mark_checkpoint(checkpoint, **fields):
    """Overwrite fields of the training state saved in a checkpoint."""
    state_file = checkpoint / "custom_checkpoint_0.pkl"
    state = torch.load(state_file, weights_only=False)
    state.update(fields)
    torch.save(state, state_file)


# A run killed and resumed reports what all its processes did: the first process is marked as if it had run
# for hours, or peaked far above anything the resumed one uses.
@pytest.mark.parametrize("field, mark, allowed", [("wall_seconds", 10_000.0, (10_000, 10_000 + 600)),
                                                  ("peak_memory_bytes", 10**12, (10**12, 10**12))])
def test_a_resumed_run_reports_the_processes_before_it(tmp_path, field, mark, allowed):
    data = multi30k(tmp_path / "data")
    run = tmp_path / "run"
    assert train.main(train_arguments("multi30k-en-de", data, run, "--max-steps", "2", "--save-every", "2")) == 0
    mark_checkpoint(run / "checkpoints" / "step-2", **{field: mark})
    assert train.main(train_arguments("multi30k-en-de", data, run, "--max-steps", "3", "--resume")) == 0
    assert allowed[0] <= json.loads((run / "results.json").read_text())[field] <= allowed[1]
    # kept in the newest checkpoint too, so a second resume would still count the first process
    state = torch.load(run / "checkpoints" / "step-3" / "custom_checkpoint_0.pkl", weights_only=False)
    assert allowed[0] <= state[field] <= allowed[1]


def test_resume_from_a_named_checkpoint_repeats_the_steps_after_it(tmp_path):
    data = multi30k(tmp_path / "data")
    run = tmp_path / "run"
    steps = ["--max_steps", "4", "--save_every", "2", "--keep_checkpoints", "3"]
    assert train.main(train_arguments("multi30k-en-de", data, run, *steps)) == 0
    first = losses(run)
    # a mark: only a run that starts from this checkpoint counts from here
    mark_checkpoint(run / "checkpoints" / "step-2", tokens=10**12)
    assert train.main(train_arguments("multi30k-en-de", data, run, *steps, "--resume_from_checkpoint",
                                      str(run / "checkpoints" / "step-2"))) == 0
    assert json.loads((run / "results.json").read_text())["train_tokens"] > 10**12
    again = losses(run)  # steps 3 and 4 again, from the state of step 2
    assert [step for step, _, _ in again] == [1, 2, 3, 4]
    assert [v for _, loss, lr in again for v in (loss, lr)] == pytest.approx(
        [v for _, loss, lr in first for v in (loss, lr)], rel=1e-6)
