"""Score a saved model folder on any split of a dataset, with the data options of train.py:

    python examples/evaluate_model.py --model outputs/multi30k-en-de/model --task multi30k-en-de \\
        --dataset_name ../shared/data/translation/multi30k --split test_2016_flickr
    python examples/evaluate_model.py --model outputs/reviews/model --task classification \\
        --test_file reviews_test.csv --text_column_name review --label_column_name stars --split test

The split is a file-name stem of the dataset folder (or the split of --train_file / --validation_file /
--test_file: train, validation, test), so a model can be scored on test sets it never saw during development.
Prints the metrics as JSON, with 95% bootstrap intervals (and sacreBLEU's signature for translation), and
writes them, with the predictions, next to --output if given.
"""

import json
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from common.arguments import DataArguments, option, parse
from common.attention_backend import avoid_per_shape_attention_plans
from common.data import DataError, encode_labels, load_records
from common.evaluation import evaluate_records, write_predictions
from common.run_info import git_commit, machine
from comparison.baselines import METADATA, load_model


@dataclass
class EvaluationArguments:
    model: str = option("a saved model folder (or a Hub model id)", required=True)
    split: str = option("the split to score: a file-name stem in the folder (e.g. test_2016_flickr), or "
                        "train / validation / test for the files given", required=True)
    num_beams: int | None = option("beam size (default: the task's, 4)", minimum=1)
    batch_size: int = option("records per batch", default=64, minimum=1)
    bf16: bool = option("run under bfloat16 autocast", default=False)
    n_bootstrap: int = option("bootstrap resamples for the 95% intervals (0: none)", default=1000, minimum=0)
    output: str | None = option("write the metrics JSON here, the predictions next to it")


def main(argv=None) -> int:
    parser, (data, args) = parse([DataArguments, EvaluationArguments], argv, __doc__)
    avoid_per_shape_attention_plans()
    try:
        task = data.load_task()
    except ValueError as error:
        parser.error(str(error))
    if (Path(args.model) / METADATA).exists():  # a baseline trained by train.py --baseline
        model = load_model(args.model, task)
    else:
        auto_class = AutoModelForSequenceClassification if task.head == "classification" else AutoModelForSeq2SeqLM
        model = auto_class.from_pretrained(args.model, trust_remote_code=True)
    if task.kind == "classification":  # the model's classes, in the model's order
        task = replace(task, labels=tuple(model.config.id2label[i] for i in range(model.config.num_labels)))
    try:
        records = load_records(task, data.data_source(task), args.split)
        records = encode_labels(task, records) if task.kind == "classification" else records
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)

    def autocast():
        return torch.autocast(device, dtype=torch.bfloat16, enabled=args.bf16)

    started = time.time()
    metrics, predictions = evaluate_records(model, tokenizer, task, records, n_bootstrap=args.n_bootstrap,
                                            batch_size=args.batch_size, num_beams=args.num_beams, autocast=autocast)
    decoding = {} if task.head == "classification" else task.decoding(args.num_beams)
    report = {"model": args.model, "task": task.name, "split": args.split, "records": len(records), **decoding,
              "bf16": args.bf16, "seconds": round(time.time() - started, 1), **metrics,
              "command": shlex.join(["evaluate_model.py", *(sys.argv[1:] if argv is None else argv)]),
              "commit": git_commit(), "hardware": {**machine(), "device": device}}
    print(json.dumps(report, indent=2))
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        write_predictions(output.with_suffix(".predictions.txt"), predictions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
