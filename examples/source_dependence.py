"""Does a trained sequence-to-sequence model read its source? The loss of each reference given its own
source, against the loss of the same references each given the source of the next record:

    python examples/source_dependence.py --model outputs/aeslc/model --task aeslc --dataset_name ../shared/data/summarization/aeslc --split dev

Takes the data options of train.py. A model that uses its source scores the mismatched pairs worse; one that
has only learnt the language of the targets (writing frequent training targets whatever the input) scores
both alike. Losses are per target token (label smoothing as in training), in nats. Prints JSON.

--attention_entropy also reports how sharp the encoder's self-attention is: per layer, the mean entropy (nats)
of its rows over the sources' tokens and heads, beside that of uniform attention over the same keys (the most
spread out it can be). Near 0, each query attends to one key: the softmax has saturated, and little gradient
passes through it (attention entropy collapse: Zhai et al. 2023, "Stabilizing Transformer Training by
Preventing Attention Entropy Collapse"). For ours and the comparison's encoder-decoders (T5, BERT2BERT).
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer

from common.arguments import DataArguments, option, parse
from common.attention_backend import avoid_per_shape_attention_plans
from common.batching import make_collator, tokenize_records, validation_loss
from common.data import DataError, load_records
from comparison.baselines import Wrapper, load_checkpoint_average, load_model


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
    attention_entropy: bool = option("also report the entropy of the encoder's self-attention, per layer",
                                     default=False)


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


@torch.no_grad()
def encoder_attention_entropy(model, tokenizer, task, records: list[dict], batch_size: int = 32) -> dict:
    """Per encoder layer: the mean entropy of the self-attention rows of the sources' real tokens (every head),
    and the mean entropy of uniform attention over the same keys."""
    network = model.model if isinstance(model, Wrapper) else model
    if not hasattr(network, "get_encoder") or not network.config.is_encoder_decoder:
        raise ValueError(f"{type(network).__name__} has no encoder self-attention to measure")
    network.set_attn_implementation("eager")  # only the written-out attention forms the weights
    network.eval()
    encoder, device = network.get_encoder(), next(network.parameters()).device
    sources = tokenize_records(records, tokenizer, task)["input_ids"]
    entropy, uniform, rows = None, 0.0, 0
    for start in range(0, len(sources), batch_size):
        batch = tokenizer.pad({"input_ids": sources[start:start + batch_size]}, return_tensors="pt").to(device)
        attentions = getattr(encoder(**batch, output_attentions=True), "attentions", None)  # per layer: (B, heads, T, T)
        if not attentions:  # the LSTM's encoder has no self-attention
            raise ValueError(f"{type(network).__name__}'s encoder has no self-attention to measure")
        real = batch["attention_mask"].bool()  # (B, T): the queries that count
        layer_sums = [-(a * a.clamp_min(1e-12).log()).sum(-1).mean(1)[real].sum().item() for a in attentions]
        entropy = layer_sums if entropy is None else [e + x for e, x in zip(entropy, layer_sums)]
        lengths = batch["attention_mask"].sum(1, keepdim=True).expand_as(real)[real]
        uniform += lengths.float().log().sum().item()
        rows += int(real.sum())
    return {"encoder_attention_entropy": [e / rows for e in entropy], "uniform_attention_entropy": uniform / rows}


def main(argv=None) -> int:
    parser, (data, args) = parse([DataArguments, DependenceArguments], argv, __doc__)
    avoid_per_shape_attention_plans()
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
    if args.attention_entropy:
        try:
            report.update(encoder_attention_entropy(model, tokenizer, task, records))
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
