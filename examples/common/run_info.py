"""What a run records about itself: the commit of the code it ran, the hardware, its learning curves."""

import platform
import subprocess
from pathlib import Path

import torch

from .tasks import Task


def git_commit() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+uncommitted changes" if dirty else "")


def short_commit(commit: str) -> str:
    """A recorded commit as reports print it: the short hash, and whether the tree differed from it."""
    return commit[:7] + (" + uncommitted changes" if "uncommitted" in commit else "")


def hardware_of(run: dict) -> str:
    """A run's machine as reports print it: the GPU, else the CPU and its thread count."""
    hardware = run["hardware"]
    threads = hardware["cpu_threads"]
    return hardware.get("gpu") or f"{hardware['cpu']}, {threads} thread{'' if threads == 1 else 's'}"


def cpu_name() -> str:
    """The processor's model name (Linux), else what the platform module knows."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine() -> dict:
    """The processor, its PyTorch threads, the GPU if any, and the PyTorch version."""
    info = {"cpu": cpu_name(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def hardware(accelerator) -> dict:
    return {**machine(), "processes": accelerator.num_processes, "device": str(accelerator.device),
            "distributed_type": str(accelerator.distributed_type), "mixed_precision": accelerator.mixed_precision}


def plot_learning_curves(history: list[dict], task: Task, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [h for h in history if "train_loss" in h]
    main_metric = task.main_metric
    valid = [h for h in history if main_metric in h]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot([h["step"] for h in train], [h["train_loss"] for h in train], label="training")
    loss_axis.plot([h["step"] for h in valid], [h["valid_loss"] for h in valid], "o-", label="validation")
    loss_title = "cross-entropy per example" if task.head == "classification" else "label-smoothed, per target token"
    loss_axis.set(xlabel="step", ylabel="loss", title=f"loss ({loss_title})")
    loss_axis.legend()
    metric_axis.plot([h["step"] for h in valid], [h[main_metric] for h in valid], "o-")
    metric_axis.set(xlabel="step", ylabel=main_metric, title=f"validation {main_metric}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_results(output_dir: Path, task: Task, model, arguments, accelerator, progress, started: float,
                  measurements: dict, evaluation: dict, data: str) -> dict:
    """results.json (the run's numbers, settings, commit, hardware and history) and learning_curves.png."""
    import json
    import sys
    import time

    data_args, model_args, options = arguments
    results = {
        "task": task.name,
        "kind": task.kind,
        "baseline": model_args.baseline,
        "data": data,
        "hub_dataset": task.hub_dataset,
        "languages": [task.source, task.target] if task.kind == "translation" else None,
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv[0] else None,
        "hardware": hardware(accelerator),
        "wall_seconds": time.time() - started,
        "train_seconds": progress.train_seconds,
        "tokens_per_second": progress.tokens / max(progress.train_seconds, 1e-9),
        "train_tokens": progress.tokens,
        **measurements,
        "steps": progress.step,
        "epochs": progress.epoch + (progress.batch_in_epoch > 0),
        "best_step": progress.best_step,
        "parameters": model.num_parameters(),
        "evaluation": evaluation,
        "decoding": None if task.head == "classification" else task.decoding(),
        "arguments": {**vars(data_args), **vars(model_args), **vars(options)},
        "config": model.config.to_diff_dict(),
        "history": progress.history,
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot_learning_curves(progress.history, task, output_dir / "learning_curves.png")
    return results
