"""The two-process checks (tests/multiprocess_checks.py: synchronised gradients and parameters, and the
training script's 2-process run equal to a 1-process run with the same global batch) run in a fresh
pytest process: forking two workers from a process that other tests have filled with threads hung."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = Path(__file__).resolve().parent / "multiprocess_checks.py"


def test_two_process_checks_pass_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CHECKS)],
                            capture_output=True, text=True, timeout=600, cwd=CHECKS.parent.parent)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "3 passed" in result.stdout, result.stdout[-2000:]


def test_readme_cpu_launch_with_accumulation_equals_one_process(tmp_path):
    """The README's launch command for CPU processes (2 processes x 2 accumulated micro-batches) gives the
    losses of 1 process accumulating 4, and finishes cleanly (exit 0, results written)."""
    from tiny_datasets import EXAMPLES, multi30k, train_arguments

    import train

    data = multi30k(tmp_path / "data", count=80)
    common = ["--max-steps", "3", "--max-tokens", "100", "--save-every", "3"]
    launcher = Path(sys.executable).parent / "accelerate"
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0",
               str(EXAMPLES / "train.py"), *train_arguments("multi30k-en-de", data, tmp_path / "two", *common,
                                                            "--gradient-accumulation-steps", "2")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "ACCELERATE_USE_CPU": "true"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert train.main(train_arguments("multi30k-en-de", data, tmp_path / "one", *common,
                                      "--gradient-accumulation-steps", "4")) == 0
    two, one = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("two", "one"))
    assert two["hardware"]["processes"] == 2 and two["hardware"]["distributed_type"] == "DistributedType.MULTI_CPU"
    losses = [[h["train_loss"] for h in run["history"] if "train_loss" in h] for run in (two, one)]
    assert len(losses[0]) == 3
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


@pytest.mark.parametrize("task_name", ["multi30k-en-de", "sst2"])
def test_cpu_launch_whose_last_step_is_an_evaluation_step_exits(task_name, tmp_path):
    """Every process must take the same decision on a final validation (a collective operation): when only the
    main process knew that the last step had been validated, the other one waited for it forever."""
    from tiny_datasets import DATASETS, EXAMPLES, train_arguments

    data = DATASETS[task_name](tmp_path / "data", count=80)
    launcher = Path(sys.executable).parent / "accelerate"
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0",
               str(EXAMPLES / "train.py"), *train_arguments(task_name, data, tmp_path / "run", "--max_steps", "4",
                                                            "--eval_every", "2", "--max_tokens", "100")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "ACCELERATE_USE_CPU": "true"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["hardware"]["processes"] == 2
    main_metric = "bleu" if task_name.startswith("multi30k") else "accuracy"
    assert [h["step"] for h in results["history"] if main_metric in h] == [2, 4]


def test_launched_processes_free_the_ddp_wrapper_before_the_process_group(tmp_path):
    """Each process of a launched run frees its DDP wrapper before destroying the process group: a wrapper
    alive then frees the group through its reducer with the GIL held, and a run hung at exit now and then."""
    from tiny_datasets import multi30k, train_arguments

    data = multi30k(tmp_path / "data", count=40)
    launcher = Path(sys.executable).parent / "accelerate"
    recording = Path(__file__).resolve().parent / "train_recording_teardown.py"
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0",
               str(recording), *train_arguments("multi30k-en-de", data, tmp_path / "run", "--max_steps", "2",
                                                "--max_tokens", "100")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "ACCELERATE_USE_CPU": "true"})
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads((tmp_path / "run" / f"teardown-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [record["ddp_alive"] for record in records] == [0, 0]
