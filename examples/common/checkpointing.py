"""Checkpoints that survive a kill: each is written under a temporary name and renamed into place when
complete, so a run killed at any moment (even with SIGKILL) leaves the previous checkpoint usable.

Accelerate's own naming and rotation (`ProjectConfiguration(automatic_checkpoint_naming=True,
total_limit=N)`) writes straight into the final `checkpoint_N` folder and resumes from the newest folder,
complete or not, so a kill during a save could leave a run that cannot resume; hence the rename here."""

import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from vanilla_transformer.modeling import VanillaTransformerPreTrainedModel
from vanilla_transformer.modeling.model_card_vanilla_transformer import folder_card

logger = logging.getLogger(__name__)


class Progress:
    """Where training stands; saved in every checkpoint next to model, optimizer, scheduler and RNG states.
    Every process holds the same values, so decisions taken from it are the same on every process."""

    def __init__(self):
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.tokens, self.train_seconds = 0, 0.0
        self.wall_seconds = 0.0  # since the run first started, up to the newest checkpoint (across resumes)
        # the highest peak memory of the run's processes so far (across resumes; this process's own, where the
        # processes of a distributed run differ)
        self.peak_memory_bytes = 0
        self.best_metric, self.best_step = None, None
        self.validated_step = None  # the last step validated
        self.validations_since_best = 0  # for early stopping
        self.stopped_early = False
        self.window_loss, self.window_items = 0.0, 0  # the training loss since the last log line
        self.history: list[dict] = []  # filled on the main process only

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a checkpoint is renamed into place only once fully written)."""
    folder = Path(output_dir) / "checkpoints"
    return sorted(folder.glob("step-*[0-9]"), key=lambda p: int(p.name.split("-")[1])) if folder.exists() else []


def save_checkpoint(accelerator, output_dir: Path, step: int, keep: int) -> Path:
    final = output_dir / "checkpoints" / f"step-{step}"
    partial = final.with_name(final.name + ".partial")
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)  # atomic: a kill leaves either the old set of checkpoints or the new one
        for old in checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def save_model_folder(model, tokenizer, folder: Path) -> None:
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(partial, folder)
    if isinstance(model, VanillaTransformerPreTrainedModel):  # its card was written for the temporary name
        (folder / "README.md").write_text(folder_card(model, location=str(folder)), encoding="utf-8")


def average_state_dicts(paths: list[Path]) -> dict:
    """The element-wise mean of the tensors of several safetensors files (in float32, cast back)."""
    first = load_file(paths[0])
    total = {name: tensor.float() for name, tensor in first.items()}
    for path in paths[1:]:
        for name, tensor in load_file(path).items():
            total[name] += tensor.float()
    return {name: (tensor / len(paths)).to(first[name].dtype) for name, tensor in total.items()}


def load_averaged_weights(target: torch.nn.Module, checkpoint_folders: list[Path], prefix: str = "") -> None:
    """Load the mean of the checkpoints' model weights into `target`, as the paper does for its results
    ("a single model obtained by averaging the last 5 checkpoints", Section 6.1). `prefix` is removed from
    the checkpoints' names (a wrapped baseline's are "model.<name>")."""
    averaged = average_state_dicts([folder / "model.safetensors" for folder in checkpoint_folders])
    averaged = {name.removeprefix(prefix): tensor for name, tensor in averaged.items()}
    missing, unexpected = target.load_state_dict(averaged, strict=False)
    if unexpected:
        raise ValueError(f"the checkpoints do not match the model: unexpected {sorted(unexpected)}")
    untied = set(missing) - set(getattr(target, "all_tied_weights_keys", {}) or {})  # tied copies are not saved
    if untied:  # e.g. BERT's pooler, which a BERT2BERT never uses: it keeps the model folder's values
        logger.warning("not in the checkpoints, kept as in the model folder: %s", ", ".join(sorted(untied)))
    target.tie_weights()
