"""Average the weights of the last N checkpoints of a train.py run into a model folder, as the paper does
for its results ("a single model obtained by averaging the last 5 checkpoints", Section 6.1):

    python examples/average_checkpoints.py --run outputs/sst2 --last 5 --output outputs/sst2/averaged
    python examples/evaluate_model.py --model outputs/sst2/averaged --task sst2 --dataset_name ../shared/data/sentiment/sst2 --split dev

Train with --save_every K --keep_checkpoints N so that the last N checkpoints are kept. The averaged
folder takes its configuration and tokenizer from the run's model/ folder.
"""

import argparse
import shutil
import sys
from pathlib import Path


from common.arguments import counted
from common.checkpointing import checkpoints
from common.tasks import get_task
from comparison.baselines import METADATA, load_checkpoint_average, load_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a train.py --output_dir (with checkpoints/ and model/)")
    parser.add_argument("--task", help="default: the task recorded in the run's results.json")
    parser.add_argument("--last", type=counted(1), default=5)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    run = Path(args.run)
    kept = checkpoints(run)[-args.last :]
    if len(kept) < args.last:
        print(f"error: {run / 'checkpoints'} holds {len(kept)} checkpoints, fewer than --last {args.last} "
              "(train with --keep_checkpoints)", file=sys.stderr)
        return 1
    if args.task is None:
        import json

        args.task = json.loads((run / "results.json").read_text(encoding="utf-8"))["task"]
    model = load_model(run / "model", get_task(args.task))
    try:
        load_checkpoint_average(model, kept)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    output = Path(args.output)
    model.save_pretrained(output)
    for item in (run / "model").iterdir():  # the tokenizer and anything else the model folder holds
        if not (output / item.name).exists() and item.name != METADATA and item.is_file():
            shutil.copy(item, output / item.name)
    print(f"averaged {', '.join(c.name for c in kept)} into {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
