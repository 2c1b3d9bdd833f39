"""Score a saved model folder on any split of a dataset folder laid out as in ../shared/data:

    python examples/evaluate_model.py --model outputs/multi30k-en-de/model --task multi30k-en-de \\
        --data ../shared/data/translation/multi30k --split test_2016_flickr

The split is a file-name stem, so a model can be scored on test sets it never saw during development.
Prints the metrics as JSON (with sacreBLEU's signature for translation) and writes them, with the
predictions, next to --output if given.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from arguments import counted
from baselines import METADATA, load_model
from evaluation import evaluate_records
from tasks import DataError, get_task, load_records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved model folder (or a Hub model id)")
    parser.add_argument("--task", required=True)
    parser.add_argument("--data", required=True, help="a dataset folder, or a Hub dataset id")
    parser.add_argument("--split", required=True, help="a file-name stem in the folder, e.g. test_2016_flickr")
    parser.add_argument("--num-beams", type=counted(1), default=None, help="default: the task's (4)")
    parser.add_argument("--batch-size", type=counted(1), default=64)
    parser.add_argument("--bf16", action="store_true", help="run under bfloat16 autocast")
    parser.add_argument("--output", help="write metrics JSON here, predictions next to it")
    args = parser.parse_args(argv)

    task = get_task(args.task)
    try:
        records = load_records(task, args.data, args.split)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if (Path(args.model) / METADATA).exists():  # a baseline trained by train.py --baseline
        model = load_model(args.model, task)
    else:
        model_class = AutoModelForSequenceClassification if task.head == "classification" else AutoModelForSeq2SeqLM
        model = model_class.from_pretrained(args.model, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)

    def autocast():
        return torch.autocast(device, dtype=torch.bfloat16, enabled=args.bf16)

    started = time.time()
    metrics, predictions = evaluate_records(model, tokenizer, task, records, batch_size=args.batch_size,
                                            num_beams=args.num_beams, autocast=autocast)
    report = {"model": args.model, "task": task.name, "split": args.split, "records": len(records),
              "seconds": round(time.time() - started, 1), **metrics}
    print(json.dumps(report, indent=2))
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        output.with_suffix(".predictions.txt").write_text("".join(f"{p}\n" for p in predictions), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
