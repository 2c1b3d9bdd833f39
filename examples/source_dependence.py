"""Does a trained sequence-to-sequence model read its source? The loss of each reference given its own
source, against the loss of the same references each given the source of the next record:

    python examples/source_dependence.py --model outputs/aeslc/model --task aeslc --data ../shared/data/summarization/aeslc --split dev

A model that uses its source scores the mismatched pairs worse; one that has only learnt the language of
the targets (writing frequent training targets whatever the input) scores both alike. Losses are per
target token (label smoothing as in training), in nats. Prints JSON.
"""

import argparse
import json
import sys

import torch
from accelerate import Accelerator
from transformers import AutoTokenizer

from arguments import counted
from baselines import load_model
from tasks import DataError, get_task, load_records
from train import tokenize_records, validation_loss


def mismatched(data: dict) -> dict:
    """The same targets, each paired with the next record's source (the last with the first)."""
    return {"input_ids": data["input_ids"][1:] + data["input_ids"][:1], "labels": data["labels"]}


def source_dependence(model, tokenizer, task, records: list[dict], max_tokens: int, bf16: bool) -> dict:
    data = tokenize_records(records, tokenizer, task)
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no")
    with torch.no_grad():
        losses = {name: validation_loss(model, pairs, accelerator, max_tokens, tokenizer.pad_token_id)
                  for name, pairs in [("matched", data), ("mismatched", mismatched(data))]}
    return {"matched_loss": losses["matched"], "mismatched_loss": losses["mismatched"],
            "difference": losses["mismatched"] - losses["matched"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder saved by train.py or average_checkpoints.py")
    parser.add_argument("--task", required=True)
    parser.add_argument("--data", required=True, help="a dataset folder, or a Hub dataset id")
    parser.add_argument("--split", required=True)
    parser.add_argument("--max-records", type=counted(1), default=None, help="the first N records only")
    parser.add_argument("--max-tokens", type=counted(1), default=8192, help="padded tokens per batch")
    parser.add_argument("--bf16", action="store_true", help="run under bfloat16 autocast")
    args = parser.parse_args(argv)

    task = get_task(args.task)
    if task.head != "seq2seq":
        print(f"error: task {task.name} is classification; this compares sources of a sequence-to-sequence "
              "model", file=sys.stderr)
        return 1
    try:
        records = load_records(task, args.data, args.split)[: args.max_records]
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if len(records) < 2:
        print(f"error: {len(records)} record(s) in split {args.split}; mismatching sources needs at least 2",
              file=sys.stderr)
        return 1
    model = load_model(args.model, task)
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    report = {"model": args.model, "task": task.name, "split": args.split, "records": len(records),
              **source_dependence(model, tokenizer, task, records, args.max_tokens, args.bf16)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
