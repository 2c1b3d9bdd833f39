"""Train a Transformer on one task with Accelerate; the same script runs unchanged under

    python examples/train.py --task multi30k-en-de --data ../shared/data/translation/multi30k
    accelerate launch examples/train.py ...                              # one GPU
    accelerate launch --multi_gpu --num_processes 8 examples/train.py ... # several GPUs (DDP)
    accelerate launch --num_machines 2 --machine_rank R --main_process_ip H ... examples/train.py ...
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 examples/train.py ...  # CPU processes

Follows the paper where it says something (Section 5): Adam with betas (0.9, 0.98) and eps 1e-9, linear
warm-up then inverse-square-root decay, label smoothing 0.1, dropout 0.1, batches of sentences of similar
length. The loss of a step is the mean over all target tokens (or examples) of all processes and
accumulation steps, so a run on N processes computes the same numbers as one process accumulating N
micro-batches.

Writes to --output-dir: checkpoints/step-N (accelerator.save_state; --resume continues from the newest
one, exactly), tensorboard/ (Accelerate's tracker), model/ (the Hub-ready model folder of the best
validation checkpoint), results.json and learning_curves.png.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_inverse_sqrt_schedule

from arguments import counted, positive_number
from baselines import BaselineSizeError, build_baseline, from_hub, is_hub_id, load_model
from evaluation import evaluate_records
from peak_memory import peak_memory_since, start_peak_memory
from tasks import DataError, Task, get_task, load_records
from vanilla_transformer.configuration import VanillaTransformerConfig
from vanilla_transformer.modeling import (
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
)
from vanilla_transformer.tokenization import VanillaTransformerTokenizer

logger = logging.getLogger("train")


class TrainingDiverged(RuntimeError):
    pass


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="one of: multi30k-en-de, multi30k-de-en, multi30k-en-fr, "
                        "samsum, aeslc, sst2")
    parser.add_argument("--data", required=True, help="a dataset folder laid out as in ../shared/data, or a Hub "
                        "dataset id")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    parser.add_argument("--eval-splits", nargs="*", default=None,
                        help="splits scored at the end with the best model (default: the validation split)")
    group = parser.add_argument_group("model (defaults: the task's; see examples/tasks.py)")
    group.add_argument("--baseline", default="ours",
                       help="ours, or an architecture to compare with, built at our size and trained from scratch "
                       "(t5, gpt2, bert, lstm; see examples/baselines.py), or a Hub model id / model folder to "
                       "fine-tune with its own tokenizer")
    group.add_argument("--vocab-size", type=counted(1), help="BPE vocabulary size, trained on the training split")
    group.add_argument("--add-prefix-space", action=argparse.BooleanOptionalAction, default=None,
                       help="encode the first word of the text and of each line with a leading space, so a word is "
                            "one token wherever it stands (default: the task's)")
    group.add_argument("--config-overrides", default="",
                       help="VanillaTransformerConfig fields, e.g. 'd_model=512,encoder_layers=6,dropout=0.3'")
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=positive_number, help="stop after this many passes over the data")
    group.add_argument("--max-steps", type=counted(1),
                       help="stop after this many optimizer steps (whichever comes first)")
    group.add_argument("--max-tokens", type=counted(1),
                       help="padded source + target tokens per micro-batch and process")
    group.add_argument("--gradient-accumulation-steps", type=counted(1), default=1)
    group.add_argument("--lr", type=positive_number, help="peak learning rate, reached at the end of warm-up")
    group.add_argument("--warmup-steps", type=counted(0))
    group.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (0: off)")
    group.add_argument("--weight-decay", type=float, default=0.0,
                       help="decoupled weight decay (AdamW) on the weight matrices; 0 (default): the paper's Adam")
    group.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default="bf16")
    group.add_argument("--seed", type=int, default=0)
    group = parser.add_argument_group("bookkeeping")
    group.add_argument("--save-every", type=counted(1), default=500, help="checkpoint every N steps (and at the end)")
    group.add_argument("--keep-checkpoints", type=counted(1), default=2)
    group.add_argument("--eval-every", type=counted(0), default=500,
                       help="validation every N steps (0: only at the end)")
    group.add_argument("--eval-max-records", type=counted(1), default=None, help="validate on the first N records only")
    group.add_argument("--final-eval-max-records", type=counted(1), default=None,
                       help="score the --eval-splits at the end on their first N records only (default: all)")
    group.add_argument("--log-every", type=counted(1), default=50)
    group.add_argument("--max-train-records", type=counted(1), default=None, help="use the first N training records")
    args = parser.parse_args(argv)
    task = get_task(args.task)
    for name, value in task.defaults.items():
        if name != "model" and getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.max_steps is None and args.epochs is None:
        parser.error("give --epochs or --max-steps")
    return args


def parse_overrides(text: str) -> dict:
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--config-overrides: {item!r} is not name=value")
        try:
            overrides[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[name.strip()] = value.strip()
    return overrides


# ---------------------------------------------------------------------------------------------------
# Data: records -> token ids -> batches of similar length
# ---------------------------------------------------------------------------------------------------


def tokenize_records(records: list[dict], tokenizer, task: Task) -> dict:
    """Token ids with truncation to the task's lengths; `labels` are target ids (seq2seq) or label ids."""
    from datasets import Dataset

    dataset = Dataset.from_list([{"source": r["source"], "target": r["target"]} for r in records])

    def encode(batch):
        encoded = tokenizer(batch["source"], truncation=True, max_length=task.max_source_length)
        if task.head == "classification":
            return {"input_ids": encoded["input_ids"], "labels": batch["target"]}
        targets = tokenizer(batch["target"], truncation=True, max_length=task.max_target_length)["input_ids"]
        # Generation learns to stop only from a final end-of-sequence token (GPT-2's tokenizer appends none).
        eos = tokenizer.eos_token_id
        targets = [ids if ids[-1:] == [eos] else ids[: task.max_target_length - 1] + [eos] for ids in targets]
        return {"input_ids": encoded["input_ids"], "labels": targets}

    dataset = dataset.map(encode, batched=True, remove_columns=["source", "target"])
    return {"input_ids": dataset["input_ids"], "labels": dataset["labels"]}


def length_grouped_batches(data: dict, max_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffle, sort by length within pools of many batches, cut into batches of at most `max_tokens` padded
    tokens, shuffle the batches. A pure function of (seed, epoch): a resumed run sees the same order."""
    rng = np.random.default_rng([seed, epoch])
    source_lengths = np.array([len(ids) for ids in data["input_ids"]])
    target_lengths = (np.array([len(ids) for ids in data["labels"]]) if isinstance(data["labels"][0], list)
                      else np.zeros_like(source_lengths))
    order = rng.permutation(len(source_lengths))
    pool = 100 * max(1, max_tokens // max(1, int(np.median(source_lengths + target_lengths))))
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(source_lengths[chunk] + target_lengths[chunk], kind="stable")]
        batch, longest_source, longest_target = [], 0, 0
        for index in chunk:
            new_source = max(longest_source, source_lengths[index])
            new_target = max(longest_target, target_lengths[index])
            if batch and (len(batch) + 1) * (new_source + new_target) > max_tokens:
                batches.append(batch)
                batch, new_source, new_target = [], source_lengths[index], target_lengths[index]
            batch.append(int(index))
            longest_source, longest_target = new_source, new_target
        if batch:
            batches.append(batch)
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(data: dict, indices: list[int], pad_token_id: int) -> dict:
    def pad(sequences, value):
        longest = max(len(s) for s in sequences)
        return torch.tensor([s + [value] * (longest - len(s)) for s in sequences])

    input_ids = pad([data["input_ids"][i] for i in indices], pad_token_id)
    batch = {"input_ids": input_ids, "attention_mask": (input_ids != pad_token_id).long()}
    labels = [data["labels"][i] for i in indices]
    batch["labels"] = pad(labels, -100) if isinstance(labels[0], list) else torch.tensor(labels)
    return batch


def count_items(batch: dict) -> int:
    """What the loss averages over: target tokens (seq2seq) or examples (classification)."""
    labels = batch["labels"]
    return int((labels != -100).sum()) if labels.dim() == 2 else labels.numel()


def count_tokens(batch: dict) -> int:
    tokens = int(batch["attention_mask"].sum())
    return tokens + (int((batch["labels"] != -100).sum()) if batch["labels"].dim() == 2 else 0)


# ---------------------------------------------------------------------------------------------------
# Progress, checkpoints
# ---------------------------------------------------------------------------------------------------


class Progress:
    """Where training stands; saved in every checkpoint next to model, optimizer, scheduler and RNG states."""

    def __init__(self):
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.tokens, self.train_seconds = 0, 0.0
        self.wall_seconds = 0.0  # since the run first started, up to the newest checkpoint (across resumes)
        self.best_metric, self.best_step = None, None
        self.window_loss, self.window_items = 0.0, 0  # the training loss since the last log line
        self.history: list[dict] = []

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a checkpoint is renamed into place only once fully written)."""
    folder = output_dir / "checkpoints"
    return sorted(folder.glob("step-*[0-9]"), key=lambda p: int(p.name.split("-")[1])) if folder.exists() else []


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, keep: int) -> Path:
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


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+uncommitted changes" if dirty else "")


def hardware(accelerator: Accelerator) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_threads": torch.get_num_threads(), "processes": accelerator.num_processes,
            "device": str(accelerator.device), "distributed_type": str(accelerator.distributed_type),
            "mixed_precision": accelerator.mixed_precision, "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


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


# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------


def build_model(task: Task, tokenizer, args):
    model_config = {**task.defaults.get("model", {}), **parse_overrides(args.config_overrides)}
    model_config.setdefault("max_position_embeddings", max(task.max_source_length, task.max_target_length))
    common = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                  bos_token_id=tokenizer.bos_token_id, decoder_start_token_id=tokenizer.bos_token_id)
    if task.head == "classification":
        return VanillaTransformerForSequenceClassification(
            VanillaTransformerConfig(**common, **model_config, **task.label_config()))
    config = VanillaTransformerConfig(**common, **{"label_smoothing": 0.1, **model_config})
    model = VanillaTransformerForConditionalGeneration(config)
    model.generation_config.update(num_beams=task.num_beams, length_penalty=task.length_penalty,
                                   max_new_tokens=task.max_new_tokens, max_length=None)
    return model


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam with betas (0.9, 0.98) and eps 1e-9 (Section 5.3). With weight decay: AdamW's decoupled decay,
    on the weight matrices and embeddings only (decaying biases and LayerNorm gains only shrinks them)."""
    adam = dict(lr=lr, betas=(0.9, 0.98), eps=1e-9)
    if not weight_decay:
        return torch.optim.Adam(model.parameters(), **adam)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": weight_decay},
                              {"params": vectors, "weight_decay": 0.0}], **adam)


@torch.no_grad()
def validation_loss(model, data: dict, accelerator: Accelerator, max_tokens: int, pad_token_id: int) -> float:
    model.eval()
    total, items = 0.0, 0
    for indices in length_grouped_batches(data, max_tokens, seed=0, epoch=0):
        batch = {k: v.to(accelerator.device) for k, v in collate(data, indices, pad_token_id).items()}
        n = count_items(batch)
        with accelerator.autocast():
            total += model(**batch, num_items_in_batch=1).loss.item()
        items += n
    return total / max(items, 1)


def validate(model, tokenizer, task, records, data, accelerator, args) -> dict:
    """Loss and the task's metric (greedy decoding, for speed) on the validation split; main process only."""
    model = accelerator.unwrap_model(model)
    metrics = {"valid_loss": validation_loss(model, data, accelerator, args.max_tokens, tokenizer.pad_token_id)}
    scores, _ = evaluate_records(model, tokenizer, task, records, num_beams=1, autocast=accelerator.autocast)
    metrics.update({k: v for k, v in scores.items() if not isinstance(v, str)})
    model.train()
    return metrics


def train(args: argparse.Namespace) -> dict:
    started, commit = time.time(), git_commit()  # the code this run started with
    task = get_task(args.task)
    output_dir = Path(args.output_dir)
    # step_scheduler_with_optimizer=False: the schedule counts optimizer steps whatever the number of
    # processes (by default Accelerate would advance it once per process at every step).
    accelerator = Accelerator(mixed_precision=args.mixed_precision, log_with="tensorboard",
                              project_dir=str(output_dir), step_scheduler_with_optimizer=False)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    # save_state stores tied weights once and says so at every checkpoint; they are re-tied on load (tested).
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
    set_seed(args.seed)

    train_records = load_records(task, args.data, "train")[: args.max_train_records]
    valid_records = load_records(task, args.data, task.validation_split)[: args.eval_max_records]
    tokenizer_dir = output_dir / "tokenizer"
    pretrained = None
    if is_hub_id(args.baseline):
        pretrained, tokenizer = from_hub(args.baseline, task, label_smoothing=0.1)
    elif args.resume and tokenizer_dir.exists():
        tokenizer = VanillaTransformerTokenizer.from_pretrained(tokenizer_dir)
    else:
        texts = [r["source"] for r in train_records]
        if task.head == "seq2seq":
            texts += [r["target"] for r in train_records]  # one vocabulary for source and target (Section 5.1)
        tokenizer = VanillaTransformerTokenizer.train_from_iterator(
            texts, vocab_size=args.vocab_size, model_max_length=task.max_source_length,
            add_prefix_space=bool(args.add_prefix_space))
        if accelerator.is_main_process:
            tokenizer.save_pretrained(tokenizer_dir)
    train_data = tokenize_records(train_records, tokenizer, task)
    valid_data = tokenize_records(valid_records, tokenizer, task)

    model, size_knob = pretrained, {}
    if model is None:
        model = build_model(task, tokenizer, args)
        if args.baseline != "ours":  # the same task, tokenizer and data, another architecture at our size
            model, size_knob = build_baseline(args.baseline, model, task, tokenizer,
                                              label_smoothing=model.config.label_smoothing)
    optimizer = build_optimizer(model, args.lr, args.weight_decay)
    scheduler = get_inverse_sqrt_schedule(optimizer, num_warmup_steps=args.warmup_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    progress = Progress()
    accelerator.register_for_checkpointing(progress)

    if args.resume and checkpoints(output_dir):
        checkpoint = checkpoints(output_dir)[-1]
        accelerator.load_state(str(checkpoint))
        started -= progress.wall_seconds  # wall time counts the processes before this one too
        logger.info("resumed from %s (step %d, epoch %d)", checkpoint, progress.step, progress.epoch)
    elif args.resume:
        logger.info("--resume: no checkpoint in %s, starting from scratch", output_dir / "checkpoints")

    hyperparameters = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
    accelerator.init_trackers("tensorboard", config=hyperparameters)
    unwrapped = accelerator.unwrap_model(model)
    logger.info("task %s, model %s%s: %d training records, %d validation; %s parameters; vocabulary %d; "
                "%d process(es)", task.name, args.baseline, f" {size_knob}" if size_knob else "",
                len(train_records), len(valid_records), f"{unwrapped.num_parameters():,}", len(tokenizer),
                accelerator.num_processes)

    micro_batches_per_step = accelerator.num_processes * args.gradient_accumulation_steps
    max_steps = args.max_steps or math.inf
    bar = tqdm(total=None if max_steps == math.inf else max_steps, initial=progress.step,
               disable=not accelerator.is_main_process, desc="training")
    model.train()
    memory_start = start_peak_memory(accelerator.device)
    done = progress.step >= max_steps
    while not done:
        batches = length_grouped_batches(train_data, args.max_tokens, args.seed, progress.epoch)
        steps_in_epoch = len(batches) // micro_batches_per_step
        if args.epochs is not None and progress.epoch >= args.epochs:
            break
        if args.epochs is not None and args.epochs - progress.epoch < 1:  # a fractional last epoch
            steps_in_epoch = int(steps_in_epoch * (args.epochs - progress.epoch))
        while progress.batch_in_epoch < steps_in_epoch and progress.step < max_steps:
            step_started = time.time()
            first = progress.batch_in_epoch * micro_batches_per_step
            # Micro-batch a of this process is global batch first + a * processes + rank.
            micro = [collate(train_data, batches[first + a * accelerator.num_processes + accelerator.process_index],
                             tokenizer.pad_token_id) for a in range(args.gradient_accumulation_steps)]
            local = torch.tensor([sum(count_items(b) for b in micro), sum(count_tokens(b) for b in micro)],
                                 device=accelerator.device, dtype=torch.float64)
            global_items, global_tokens = accelerator.reduce(local, reduction="sum").tolist()
            # DDP averages gradients over processes; scaling by the process count makes the step's
            # gradient that of sum(loss) / global_items, the mean over every target token of the step.
            items_per_process = global_items / accelerator.num_processes
            step_loss = torch.zeros((), device=accelerator.device, dtype=torch.float64)
            for a, batch in enumerate(micro):
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                last = a == len(micro) - 1  # processes exchange gradients once, after the last micro-batch
                with accelerator.no_sync(model) if not last else contextlib.nullcontext():
                    with accelerator.autocast():
                        loss = model(**batch, num_items_in_batch=items_per_process).loss
                    accelerator.backward(loss)
                step_loss += loss.detach().double() / accelerator.num_processes
            step_loss = accelerator.reduce(step_loss, reduction="sum").item()
            if not math.isfinite(step_loss):
                last_good = checkpoints(output_dir)
                raise TrainingDiverged(
                    f"the training loss became {step_loss} at step {progress.step + 1}; stopping. "
                    + (f"The last good checkpoint is {last_good[-1]} (resume with --resume, perhaps with a "
                       "lower --lr or longer --warmup-steps)." if last_good else "No checkpoint was saved yet.")
                )
            if args.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            progress.step += 1
            progress.batch_in_epoch += 1
            progress.tokens += int(global_tokens)
            progress.train_seconds += time.time() - step_started
            progress.window_loss += step_loss * global_items
            progress.window_items += global_items
            bar.update(1)

            if progress.step % args.log_every == 0:
                record = {"step": progress.step, "train_loss": progress.window_loss / progress.window_items,
                          "lr": scheduler.get_last_lr()[0], "tokens_per_second": progress.tokens / progress.train_seconds,
                          "epoch": progress.epoch + progress.batch_in_epoch / max(steps_in_epoch, 1)}
                progress.history.append(record)
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=progress.step)
                bar.set_postfix(loss=f"{record['train_loss']:.3f}", lr=f"{record['lr']:.2e}")
                progress.window_loss, progress.window_items = 0.0, 0
            if args.eval_every and progress.step % args.eval_every == 0:
                run_validation(model, tokenizer, task, valid_records, valid_data, accelerator, args, progress)
            if progress.step % args.save_every == 0:
                progress.wall_seconds = time.time() - started
                save_checkpoint(accelerator, output_dir, progress.step, args.keep_checkpoints)
        if progress.step >= max_steps:
            done = True
        else:
            progress.epoch += 1
            progress.batch_in_epoch = 0
    bar.close()
    peak_memory = peak_memory_since(memory_start, accelerator.device)

    if not progress.history or progress.history[-1].get("step") != progress.step or task.main_metric not in \
            progress.history[-1]:
        run_validation(model, tokenizer, task, valid_records, valid_data, accelerator, args, progress)
    if not checkpoints(output_dir) or checkpoints(output_dir)[-1].name != f"step-{progress.step}":
        progress.wall_seconds = time.time() - started
        save_checkpoint(accelerator, output_dir, progress.step, args.keep_checkpoints)

    results = None
    if accelerator.is_main_process:
        results = finish(args, task, tokenizer, accelerator, progress, started, commit,
                         {"peak_memory_bytes": peak_memory, "size_knob": size_knob})
    accelerator.wait_for_everyone()
    accelerator.end_training()  # last: it also destroys the process group that wait_for_everyone needs
    return results


def run_validation(model, tokenizer, task, records, data, accelerator, args, progress) -> None:
    """Validate on the main process; keep the model folder of the best score so far in output_dir/best."""
    if accelerator.is_main_process:
        metrics = validate(model, tokenizer, task, records, data, accelerator, args)
        record = {"step": progress.step, "train_seconds": progress.train_seconds, **metrics}
        if progress.history and progress.history[-1]["step"] == progress.step:
            progress.history[-1].update(record)
        else:
            progress.history.append(record)
        accelerator.log(metrics, step=progress.step)
        logger.info("step %d validation: %s", progress.step,
                    ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if progress.best_metric is None or metrics[task.main_metric] > progress.best_metric:
            progress.best_metric, progress.best_step = metrics[task.main_metric], progress.step
            save_model_folder(accelerator.unwrap_model(model), tokenizer, Path(args.output_dir) / "best")
    # Every process must agree on the best metric, since it is part of the saved state.
    progress.best_metric, progress.best_step = broadcast_object((progress.best_metric, progress.best_step),
                                                                accelerator)
    accelerator.wait_for_everyone()


def broadcast_object(value, accelerator):
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0] if accelerator.num_processes > 1 else value


def save_model_folder(model, tokenizer, folder: Path) -> None:
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(partial, folder)


def finish(args, task, tokenizer, accelerator, progress, started, commit, measurements: dict) -> dict:
    """Score the best model on the evaluation splits (beam search), write model/, results.json and the plot."""
    output_dir = Path(args.output_dir)
    model_dir = output_dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(output_dir / "best", model_dir)
    model = load_model(model_dir, task).to(accelerator.device)
    evaluation = {}
    for split in args.eval_splits or [task.validation_split]:
        records = load_records(task, args.data, split)[: args.final_eval_max_records]
        evaluation_started = time.time()
        scores, predictions = evaluate_records(model, tokenizer, task, records, autocast=accelerator.autocast)
        scores["ms_per_record"] = 1000 * (time.time() - evaluation_started) / max(len(records), 1)
        evaluation[split] = scores
        with open(output_dir / f"predictions_{split}.txt", "w", encoding="utf-8") as f:
            f.writelines(f"{p}\n" for p in predictions)
        logger.info("%s (%d records, best model from step %d): %s", split, len(records), progress.best_step,
                    ", ".join(f"{k} {v:.4g}" if not isinstance(v, str) else f"{k} {v}" for k, v in scores.items()))
    results = {
        "task": task.name,
        "baseline": args.baseline,
        "data": str(args.data),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv[0] else None,
        "commit": commit,
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
        "arguments": vars(args),
        "config": model.config.to_diff_dict(),
        "history": progress.history,
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot_learning_curves(progress.history, task, output_dir / "learning_curves.png")
    logger.info("wrote %s, %s and %s", model_dir, output_dir / "results.json", output_dir / "learning_curves.png")
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except (DataError, TrainingDiverged, BaselineSizeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
