"""Records -> token ids -> batches of sentences of similar length (Section 5.1 of the paper), padded by
transformers' data collators. The token-budget batch sampler is ours: transformers has none."""

import numpy as np
import torch
from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

from .tasks import Task


def tokenize_records(records: list[dict], tokenizer, task: Task) -> dict:
    """Token ids with truncation to the task's lengths; `labels` are target ids (seq2seq) or label ids."""
    sources = [record["source"] for record in records]
    input_ids = tokenizer(sources, truncation=True, max_length=task.max_source_length)["input_ids"] if records else []
    if task.head == "classification":
        return {"input_ids": input_ids, "labels": [record["target"] for record in records]}
    targets = [record["target"] for record in records]
    labels = tokenizer(targets, truncation=True, max_length=task.max_target_length)["input_ids"] if records else []
    # Generation learns to stop only from a final end-of-sequence token (GPT-2's tokenizer appends none).
    eos = tokenizer.eos_token_id
    labels = [ids if ids[-1:] == [eos] else ids[: task.max_target_length - 1] + [eos] for ids in labels]
    return {"input_ids": input_ids, "labels": labels}


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


def make_collator(tokenizer, task: Task):
    """Pads sources with the pad token (and an attention mask), target labels with -100."""
    if task.head == "classification":
        return DataCollatorWithPadding(tokenizer)
    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)


def collate(collator, data: dict, indices: list[int]) -> dict:
    return dict(collator([{"input_ids": data["input_ids"][i], "labels": data["labels"][i]} for i in indices]))


def count_items(batch: dict) -> int:
    """What the loss averages over: target tokens (seq2seq) or examples (classification)."""
    labels = batch["labels"]
    return int((labels != -100).sum()) if labels.dim() == 2 else labels.numel()


def count_tokens(batch: dict) -> int:
    tokens = int(batch["attention_mask"].sum())
    return tokens + (int((batch["labels"] != -100).sum()) if batch["labels"].dim() == 2 else 0)


@torch.no_grad()
def validation_loss(model, data: dict, collator, max_tokens: int, device, autocast) -> float:
    """The loss per target token (or example) over a whole split."""
    model.eval()
    total, items = 0.0, 0
    for indices in length_grouped_batches(data, max_tokens, seed=0, epoch=0):
        batch = {k: v.to(device) for k, v in collate(collator, data, indices).items()}
        with autocast():
            total += model(**batch, num_items_in_batch=1).loss.item()
        items += count_items(batch)
    return total / max(items, 1)
