"""Does a trained sequence-to-sequence model read its source? The loss of each reference given its own
source, against the loss of the same references each given the source of the next record:

    python examples/source_dependence.py --model outputs/aeslc/model --task aeslc --dataset_name ../shared/data/summarization/aeslc --split dev

Takes the data options of train.py. A model that uses its source scores the mismatched pairs worse; one that
has only learnt the language of the targets (writing frequent training targets whatever the input) scores
both alike. Losses are per target token (label smoothing as in training), in nats. Prints JSON.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer

from common.arguments import DataArguments, option, parse
from common.batching import make_collator, tokenize_records, validation_loss
from common.data import DataError, load_records
from comparison.baselines import load_checkpoint_average, load_model


@dataclass
class DependenceArguments:
    model: str = option("a model folder saved by train.py or average_checkpoints.py", required=True)
    split: str = option("the split to read (a file-name stem, or train / validation / test for given files)",
                        required=True)
    checkpoint: str | None = option("a training checkpoint of the same run (<output_dir>/checkpoints/step-N): its "
                                    "weights replace the model folder's")
    max_records: int | None = option("the first N records only", minimum=1)
    max_tokens: int = option("padded tokens per batch", default=8192, minimum=1)
    bf16: bool = option("run under bfloat16 autocast", default=False)


def mismatched(data: dict) -> dict:
    """The same targets, each paired with the next record's source (the last with the first)."""
    return {"input_ids": data["input_ids"][1:] + data["input_ids"][:1], "labels": data["labels"]}


def source_dependence(model, tokenizer, task, records: list[dict], max_tokens: int, bf16: bool) -> dict:
    data = tokenize_records(records, tokenizer, task)
    device = next(model.parameters()).device

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    collator = make_collator(tokenizer, task)
    losses = {name: validation_loss(model, pairs, collator, max_tokens, device, autocast)
              for name, pairs in [("matched", data), ("mismatched", mismatched(data))]}
    return {"matched_loss": losses["matched"], "mismatched_loss": losses["mismatched"],
            "difference": losses["mismatched"] - losses["matched"]}


def main(argv=None) -> int:
    parser, (data, args) = parse([DataArguments, DependenceArguments], argv, __doc__)
    try:
        task = data.load_task()
    except ValueError as error:
        parser.error(str(error))
    if task.head != "seq2seq":
        print(f"error: task {task.name} is classification; this compares sources of a sequence-to-sequence "
              "model", file=sys.stderr)
        return 1
    try:
        records = load_records(task, data.data_source(task), args.split)[: args.max_records]
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if len(records) < 2:
        print(f"error: {len(records)} record(s) in split {args.split}; mismatching sources needs at least 2",
              file=sys.stderr)
        return 1
    model = load_model(args.model, task)
    if args.checkpoint:
        load_checkpoint_average(model, [Path(args.checkpoint)])  # the mean of one checkpoint: its weights
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    report = {"model": args.model, "checkpoint": args.checkpoint, "task": task.name, "split": args.split,
              "records": len(records),
              **source_dependence(model, tokenizer, task, records, args.max_tokens, args.bf16)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
