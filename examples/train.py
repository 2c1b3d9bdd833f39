"""Train a Transformer on a translation, summarization or classification task with Accelerate; the same
script runs unchanged under

    python examples/train.py --task multi30k-en-de --dataset_name ../shared/data/translation/multi30k ...
    python examples/train.py --task translation --source_lang fi --target_lang sv --train_file train.jsonl ...
    accelerate launch examples/train.py ...                              # one GPU
    accelerate launch --multi_gpu --num_processes 8 examples/train.py ... # several GPUs (DDP)
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 examples/train.py ...  # CPU processes

Follows the paper where it says something (Section 5): Adam with betas (0.9, 0.98) and eps 1e-9, linear
warm-up then inverse-square-root decay, label smoothing 0.1, dropout 0.1, batches of sentences of similar
length. The loss of a step is the mean over all target tokens (or examples) of all processes and
accumulation steps, so a run on N processes computes the same numbers as one process accumulating N
micro-batches.

Writes to --output_dir: checkpoints/step-N (accelerator.save_state; --resume continues from the newest
one, exactly), tensorboard/ (Accelerate's tracker), model/ (the Hub-ready model folder of the best
validation checkpoint), results.json, learning_curves.png, and per evaluated split the predictions, one line
per record in the split's order (predictions_<split>.txt), for paired significance tests between runs.
"""

import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast_object_list, set_seed
from tqdm.auto import tqdm
from transformers import get_inverse_sqrt_schedule

from common.arguments import DataArguments, option, parse
from common.attention_backend import avoid_per_shape_attention_plans
from common.batching import collate, count_items, count_tokens, length_grouped_batches, make_collator
from common.batching import tokenize_records, validation_loss
from common.checkpointing import Progress, checkpoints, save_checkpoint, save_model_folder
from common.data import DataError, encode_labels, infer_labels, load_records
from common.evaluation import evaluate_records, write_predictions
from common.models import apply_overrides, build_model, build_optimizer
from common.peak_memory import peak_memory_since, start_peak_memory
from common.run_info import git_commit, write_results
from comparison.baselines import (BaselineSizeError, build_baseline, from_hub, is_hub_id, load_checkpoint_average,
                                  load_model)
from vanilla_transformer.configuration import VanillaTransformerConfig
from vanilla_transformer.modeling import VanillaTransformerPreTrainedModel, enable_cpu_kernels
from vanilla_transformer.modeling.model_card_vanilla_transformer import folder_card
from vanilla_transformer.tokenization import VanillaTransformerTokenizer

logger = logging.getLogger("train")


@dataclass
class ModelArguments:
    baseline: str = option("ours, or an architecture to compare with, built at our size and trained from scratch "
                           "(t5, gpt2, bert, lstm; see examples/comparison/baselines.py), or a Hub model id / model "
                           "folder to fine-tune with its own tokenizer", default="ours")
    vocab_size: int | None = option("BPE vocabulary size, trained on the training split", minimum=1)
    add_prefix_space: bool | None = option("encode the first word of the text and of each line with a leading "
                                           "space, so a word is one token wherever it stands (default: the "
                                           "task's)", nargs="?", const=True)
    config_overrides: str = option("VanillaTransformerConfig fields, e.g. 'd_model=512,encoder_layers=6,dropout=0.3' "
                                   "(PreTrainedConfig.update_from_string)", default="")


@dataclass
class TrainingOptions:
    output_dir: str = option("checkpoints, TensorBoard logs, the model folder and results.json go here",
                             required=True)
    resume: bool = option("continue from the newest checkpoint in --output_dir", default=False)
    resume_from_checkpoint: str | None = option("continue from this checkpoint folder (checkpoints/step-N)")
    num_train_epochs: float | None = option("stop after this many passes over the data", minimum="positive",
                                            aliases=["--epochs"])
    max_steps: int | None = option("stop after this many optimizer steps (whichever comes first)", minimum=1)
    max_tokens: int | None = option("padded source + target tokens per micro-batch and process", minimum=1)
    gradient_accumulation_steps: int = option("micro-batches per optimizer step", default=1, minimum=1)
    learning_rate: float | None = option("peak learning rate, reached at the end of warm-up", minimum="positive",
                                         aliases=["--lr"])
    warmup_steps: int | None = option("linear warm-up steps", minimum=0)
    max_grad_norm: float = option("gradient clipping (0: off)", default=1.0, minimum=0)
    weight_decay: float = option("decoupled weight decay (AdamW) on the weight matrices; 0: the paper's Adam",
                                 default=0.0, minimum=0)
    optim: str = option("adam (the paper's) or adafactor (T5's: each step scaled to its parameter's size; "
                        "weight decay is then Adafactor's own)", default="adam", choices=["adam", "adafactor"])
    cpu_kernels: bool = option("train ours on a CPU with the opt-in speed-ups of enable_cpu_kernels "
                               "(--no_cpu_kernels: without)", default=True)
    mixed_precision: str = option("no, bf16 or fp16", default="bf16", choices=["no", "bf16", "fp16"])
    seed: int = option("random seed", default=0)
    save_every: int = option("checkpoint every N steps (and at the end)", default=500, minimum=1,
                             aliases=["--save_steps"])
    keep_checkpoints: int = option("checkpoints kept (at least --average_last)", default=2, minimum=1,
                                   aliases=["--save_total_limit"])
    average_last: int | None = option("score and save the average of the last N checkpoints (the paper's Section "
                                      "6.1) instead of the best validated one", minimum=1)
    eval_every: int = option("validation every N steps (0: only at the end)", default=500, minimum=0,
                             aliases=["--eval_steps"])
    log_every: int = option("log the training loss every N steps", default=50, minimum=1,
                            aliases=["--logging_steps"])
    early_stopping_patience: int | None = option("stop once N validations in a row have not improved on the best "
                                                 "score (as transformers' EarlyStoppingCallback)", minimum=1)
    min_train_epochs: float = option("with --early_stopping_patience: never stop before this many epochs",
                                     default=0, minimum=0)
    eval_splits: list[str] | None = option("splits scored at the end with the best model (default: the validation "
                                           "split, and the test split when a test file is given)", nargs="*")
    eval_max_records: int | None = option("validate on the first N records only", minimum=1)
    final_eval_max_records: int | None = option("score the --eval_splits on their first N records only", minimum=1)
    max_train_records: int | None = option("use the first N training records", minimum=1,
                                           aliases=["--max_train_samples"])


class TrainingDiverged(RuntimeError):
    pass


class UnsupportedSetup(ValueError):
    pass


def parse_args(argv=None):
    """(task, data, model, training) arguments; the task's recipe fills in what was not given."""
    parser, (data, model, training) = parse([DataArguments, ModelArguments, TrainingOptions], argv, __doc__)
    try:
        task = data.load_task()
    except ValueError as error:
        parser.error(str(error))
    for name, value in task.defaults.items():
        for arguments in (model, training):
            if getattr(arguments, name, False) is None:
                setattr(arguments, name, value)
    if training.max_steps is None and training.num_train_epochs is None:
        parser.error("give --num_train_epochs or --max_steps")
    training.keep_checkpoints = max(training.keep_checkpoints, training.average_last or 0)
    try:
        apply_overrides(VanillaTransformerConfig(), model.config_overrides)  # a bad override fails here, at once
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    return task, data, model, training


def load_data(task, data_args, model_args, options, accelerator):
    """The task (with its labels), tokenizer, records and token ids of the training and validation splits."""
    source = data_args.data_source(task)
    with accelerator.main_process_first():  # the first process fills datasets' cache, the others read it
        train_records = load_records(task, source, "train")[: options.max_train_records]
        valid_records = load_records(task, source, task.validation_split)[: options.eval_max_records]
    if task.kind == "classification":
        task = task if task.labels else replace(task, labels=infer_labels(train_records))
        train_records, valid_records = encode_labels(task, train_records), encode_labels(task, valid_records)
    output_dir = Path(options.output_dir)
    resuming = options.resume or options.resume_from_checkpoint
    pretrained = None
    if is_hub_id(model_args.baseline):
        pretrained, tokenizer = from_hub(model_args.baseline, task, label_smoothing=0.1)
    elif resuming and (output_dir / "tokenizer").exists():
        tokenizer = VanillaTransformerTokenizer.from_pretrained(output_dir / "tokenizer")
    else:
        texts = [r["source"] for r in train_records]
        if task.head == "seq2seq":
            texts += [r["target"] for r in train_records]  # one vocabulary for source and target (Section 5.1)
        tokenizer = VanillaTransformerTokenizer.train_from_iterator(
            texts, vocab_size=model_args.vocab_size, model_max_length=task.max_source_length,
            add_prefix_space=bool(model_args.add_prefix_space))
        if accelerator.is_main_process:
            tokenizer.save_pretrained(output_dir / "tokenizer")
    return task, tokenizer, pretrained, source, train_records, valid_records


def train(task, data_args, model_args, options) -> dict:
    started, commit = time.time(), git_commit()  # the code this run started with
    avoid_per_shape_attention_plans()
    output_dir = Path(options.output_dir)
    # step_scheduler_with_optimizer=False: the schedule counts optimizer steps whatever the number of
    # processes (by default Accelerate would advance it once per process at every step).
    accelerator = Accelerator(mixed_precision=options.mixed_precision, log_with="tensorboard",
                              project_dir=str(output_dir), step_scheduler_with_optimizer=False,
                              gradient_accumulation_steps=options.gradient_accumulation_steps)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    # save_state stores tied weights once and says so at every checkpoint; they are re-tied on load (tested).
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
    if accelerator.is_main_process and os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and \
            accelerator.distributed_type != DistributedType.FSDP:  # Accelerate turns FSDP on for GPU-like devices only
        logger.warning("FSDP was asked for, but Accelerate runs %s: the weights are not sharded",
                       accelerator.distributed_type)
    set_seed(options.seed)
    task, tokenizer, model, source, train_records, valid_records = load_data(
        task, data_args, model_args, options, accelerator)
    train_data, valid_data = (tokenize_records(r, tokenizer, task) for r in (train_records, valid_records))
    collator = make_collator(tokenizer, task)

    size_knob = {}
    if accelerator.distributed_type == DistributedType.FSDP and model_args.baseline != "ours":
        raise UnsupportedSetup(f"--baseline {model_args.baseline}: under FSDP, train.py trains ours only")
    if model is None:
        model = build_model(task, tokenizer, model_args.config_overrides)
        if model_args.baseline != "ours":  # the same task, tokenizer and data, another architecture at our size
            model, size_knob = build_baseline(model_args.baseline, model, task, tokenizer,
                                              label_smoothing=model.config.label_smoothing)
    if options.cpu_kernels and accelerator.device.type == "cpu" and isinstance(model, VanillaTransformerPreTrainedModel):
        enable_cpu_kernels(model)
    optimizer = build_optimizer(model, options.learning_rate, options.weight_decay, options.optim)
    scheduler = get_inverse_sqrt_schedule(optimizer, num_warmup_steps=options.warmup_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    progress = Progress()
    accelerator.register_for_checkpointing(progress)
    resume_from = options.resume_from_checkpoint
    if resume_from is None and options.resume and checkpoints(output_dir):
        resume_from = checkpoints(output_dir)[-1]
    if resume_from:
        accelerator.load_state(str(resume_from))
        started -= progress.wall_seconds  # wall time counts the processes before this one too
        logger.info("resumed from %s (step %d, epoch %d)", resume_from, progress.step, progress.epoch)
    elif options.resume:
        logger.info("--resume: no checkpoint in %s, starting from scratch", output_dir / "checkpoints")

    settings = {k: v for a in (data_args, model_args, options) for k, v in vars(a).items()
                if isinstance(v, (int, float, str, bool))}
    accelerator.init_trackers("tensorboard", config=settings)
    logger.info("task %s, model %s%s: %d training records, %d validation; %s parameters; vocabulary %d; "
                "%d process(es)", task.name, model_args.baseline, f" {size_knob}" if size_knob else "",
                len(train_records), len(valid_records), f"{accelerator.unwrap_model(model).num_parameters():,}",
                len(tokenizer), accelerator.num_processes)

    processes, accumulation = accelerator.num_processes, options.gradient_accumulation_steps
    micro_batches_per_step = processes * accumulation
    max_steps = options.max_steps or math.inf
    steps_per_epoch = len(length_grouped_batches(train_data, options.max_tokens, options.seed, 0)) // \
        micro_batches_per_step
    total_steps = min(max_steps, steps_per_epoch * (options.num_train_epochs or math.inf))  # for the time left
    bar = tqdm(total=math.ceil(total_steps), initial=progress.step, disable=not accelerator.is_main_process,
               desc="training")
    model.train()
    memory_start = start_peak_memory(accelerator.device)

    def validate_now():
        run_validation(model, tokenizer, task, valid_records, valid_data, collator, accelerator, options, progress)

    def note_peak_memory():  # kept in the checkpoints, so a resumed run reports the peak of its earlier processes
        progress.peak_memory_bytes = max(progress.peak_memory_bytes,
                                         peak_memory_since(memory_start, accelerator.device))

    while progress.step < max_steps and not progress.stopped_early:
        if options.num_train_epochs is not None and progress.epoch >= options.num_train_epochs:
            break
        batches = length_grouped_batches(train_data, options.max_tokens, options.seed, progress.epoch)
        steps_in_epoch = len(batches) // micro_batches_per_step
        if options.num_train_epochs is not None and options.num_train_epochs - progress.epoch < 1:
            steps_in_epoch = int(steps_in_epoch * (options.num_train_epochs - progress.epoch))  # a fractional epoch
        while progress.batch_in_epoch < steps_in_epoch and progress.step < max_steps:
            step_started = time.time()
            first = progress.batch_in_epoch * micro_batches_per_step
            # Micro-batch a of this process is global batch first + a * processes + rank.
            micro = [collate(collator, train_data, batches[first + a * processes + accelerator.process_index])
                     for a in range(accumulation)]
            local = torch.tensor([sum(count_items(b) for b in micro), sum(count_tokens(b) for b in micro)],
                                 device=accelerator.device, dtype=torch.float64)
            global_items, global_tokens = accelerator.reduce(local, reduction="sum").tolist()
            # DDP averages gradients over processes and accelerator.backward divides by the accumulation steps:
            # dividing each micro-batch's summed loss by global_items / (processes x accumulation) makes the
            # step's gradient that of the mean over every target token of the step.
            items_per_micro_batch = global_items / micro_batches_per_step
            step_loss = torch.zeros((), device=accelerator.device, dtype=torch.float64)
            for batch in micro:
                with accelerator.accumulate(model):  # processes exchange gradients after the last micro-batch
                    with accelerator.autocast():
                        loss = model(**{k: v.to(accelerator.device) for k, v in batch.items()},
                                     num_items_in_batch=items_per_micro_batch).loss
                    accelerator.backward(loss)
                step_loss += loss.detach().double() / micro_batches_per_step
            step_loss = accelerator.reduce(step_loss, reduction="sum").item()
            if not math.isfinite(step_loss):
                last_good = checkpoints(output_dir)
                raise TrainingDiverged(
                    f"the training loss became {step_loss} at step {progress.step + 1}; stopping. "
                    + (f"The last good checkpoint is {last_good[-1]} (resume with --resume, perhaps with a "
                       "lower --learning_rate or longer --warmup_steps)." if last_good
                       else "No checkpoint was saved yet."))
            if options.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), options.max_grad_norm)
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
            if progress.step % options.log_every == 0:
                record = {"step": progress.step, "train_loss": progress.window_loss / progress.window_items,
                          "lr": scheduler.get_last_lr()[0],
                          "tokens_per_second": progress.tokens / progress.train_seconds,
                          "epoch": progress.epoch + progress.batch_in_epoch / max(steps_in_epoch, 1)}
                progress.history.append(record)
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=progress.step)
                bar.set_postfix(loss=f"{record['train_loss']:.3f}", lr=f"{record['lr']:.2e}")
                progress.window_loss, progress.window_items = 0.0, 0
            if options.eval_every and progress.step % options.eval_every == 0:
                validate_now()
                epochs_done = progress.epoch + progress.batch_in_epoch / max(steps_in_epoch, 1)
                if (options.early_stopping_patience and epochs_done >= options.min_train_epochs
                        and progress.validations_since_best >= options.early_stopping_patience):
                    progress.stopped_early = True
                    logger.info("early stop at step %d: %d validations without improving on step %d",
                                progress.step, progress.validations_since_best, progress.best_step)
            if progress.step % options.save_every == 0 or progress.stopped_early:
                progress.wall_seconds = time.time() - started
                note_peak_memory()
                save_checkpoint(accelerator, output_dir, progress.step, options.keep_checkpoints)
            if progress.stopped_early:
                break
        if progress.step < max_steps and not progress.stopped_early:
            progress.epoch += 1
            progress.batch_in_epoch = 0
    bar.close()
    note_peak_memory()  # of training: the final validation below is not counted

    # Taken from the state every process shares: a decision that leads to collective operations must be
    # the same on every process, or one of them waits forever.
    if progress.validated_step != progress.step:
        validate_now()
    if not checkpoints(output_dir) or checkpoints(output_dir)[-1].name != f"step-{progress.step}":
        progress.wall_seconds = time.time() - started
        save_checkpoint(accelerator, output_dir, progress.step, options.keep_checkpoints)

    results = None
    if accelerator.is_main_process:
        results = finish(task, source, (data_args, model_args, options), tokenizer, accelerator, progress, started,
                         {"commit": commit, "peak_memory_bytes": progress.peak_memory_bytes, "size_knob": size_knob,
                          "stopped_early": progress.stopped_early})
    accelerator.wait_for_everyone()
    # Free the wrapped model (DDP's reducer holds the process group) while the group is still registered, so
    # that end_training's destroy_process_group frees the group, which it does without holding the GIL. Freed
    # last by the reducer, the gloo group joins its worker threads with the GIL held, and a worker that needs
    # the GIL to free a tensor waits forever (pytorch/pytorch#56297): a two-process run hung at exit now and then.
    model, optimizer, scheduler = accelerator.free_memory(model, optimizer, scheduler)
    accelerator.end_training()  # last: it also destroys the process group that wait_for_everyone needs
    return results


def evaluation_model(model, accelerator):
    """The model the main process validates and saves. Under FSDP each process holds a shard of the weights,
    so every process takes part in gathering them (a collective), and the main process gets an unsharded copy."""
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.distributed_type != DistributedType.FSDP:
        return unwrapped
    state = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return None
    copy = type(unwrapped)(unwrapped.config)
    copy.load_state_dict(state, strict=False)  # tied weights are named once
    copy.tie_weights()
    return copy.to(accelerator.device)


def run_validation(model, tokenizer, task, records, data, collator, accelerator, options, progress) -> None:
    """Validate on the main process; keep the model folder of the best score so far in output_dir/best."""
    unwrapped = evaluation_model(model, accelerator)
    if accelerator.is_main_process:
        metrics = {"valid_loss": validation_loss(unwrapped, data, collator, options.max_tokens, accelerator.device,
                                                 accelerator.autocast)}
        scores, _ = evaluate_records(unwrapped, tokenizer, task, records, num_beams=1, autocast=accelerator.autocast)
        metrics.update({k: v for k, v in scores.items() if not isinstance(v, str)})
        model.train()
        record = {"step": progress.step, "train_seconds": progress.train_seconds, "train_tokens": progress.tokens,
                  **metrics}
        if progress.history and progress.history[-1]["step"] == progress.step:
            progress.history[-1].update(record)
        else:
            progress.history.append(record)
        accelerator.log(metrics, step=progress.step)
        logger.info("step %d validation: %s", progress.step, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if progress.best_metric is None or metrics[task.main_metric] > progress.best_metric:
            progress.best_metric, progress.best_step = metrics[task.main_metric], progress.step
            save_model_folder(unwrapped, tokenizer, Path(options.output_dir) / "best")
    # Every process must agree on the best metric, since it is part of the saved state.
    best = (progress.best_metric, progress.best_step)
    progress.best_metric, progress.best_step = broadcast_object_list([best])[0] if accelerator.num_processes > 1 \
        else best
    progress.validated_step = progress.step
    progress.validations_since_best = 0 if progress.best_step == progress.step else progress.validations_since_best + 1
    accelerator.wait_for_everyone()


def finish(task, source, arguments, tokenizer, accelerator, progress, started, measurements: dict) -> dict:
    """Score the best model on the evaluation splits (beam search, 95% bootstrap intervals); write model/,
    results.json and the plot."""
    data_args, model_args, options = arguments
    output_dir = Path(options.output_dir)
    if (output_dir / "model").exists():
        shutil.rmtree(output_dir / "model")
    shutil.copytree(output_dir / "best", output_dir / "model")
    model = load_model(output_dir / "model", task)
    if options.average_last:
        kept = checkpoints(output_dir)[-options.average_last:]
        load_checkpoint_average(model, kept)
        save_model_folder(model, tokenizer, output_dir / "model")
        measurements["checkpoint"] = (f"the average of the last {len(kept)} checkpoints "
                                      f"({', '.join(folder.name for folder in kept)})")
    model = model.to(accelerator.device)
    splits = options.eval_splits or [task.validation_split] + ([task.test_split] if data_args.test_file else [])
    evaluation = {}
    for split in splits:
        records = load_records(task, source, split)[: options.final_eval_max_records]
        records = encode_labels(task, records) if task.kind == "classification" else records
        evaluation_started = time.time()
        scores, predictions = evaluate_records(model, tokenizer, task, records, n_bootstrap=1000,
                                               autocast=accelerator.autocast)
        scores["ms_per_record"] = 1000 * (time.time() - evaluation_started) / max(len(records), 1)
        evaluation[split] = scores
        write_predictions(output_dir / f"predictions_{split}.txt", predictions)
        logger.info("%s (%d records, %s): %s", split, len(records),
                    measurements.get("checkpoint", f"best model from step {progress.best_step}"),
                    ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))
    results = write_results(output_dir, task, model, arguments, accelerator, progress, started, measurements,
                            evaluation, source.describe())
    if isinstance(model, VanillaTransformerPreTrainedModel):  # the folder's card: its training data and scores
        card = folder_card(model, location=str(output_dir / "model"), results=results)
        (output_dir / "model" / "README.md").write_text(card, encoding="utf-8")
    return results


def main(argv=None) -> int:
    arguments = parse_args(argv)
    try:
        train(*arguments)
    except (DataError, TrainingDiverged, BaselineSizeError, UnsupportedSetup) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
