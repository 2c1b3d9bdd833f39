"""Side by side: ours and the baselines of examples/comparison/baselines.py trained by train.py on one task, with the
same tokenizer, data, number of steps (so the same training tokens), optimiser, schedule and decoding.

    python examples/comparison/compare.py --task sst2 --dataset_name ../shared/data/sentiment/sst2 --seeds 0 1 2 \\
        -- --num_train_epochs 2 --config_overrides d_model=128,encoder_layers=2,ffn_dim=512

Everything after `--` goes to every train.py run. Each run is a fresh process (so that its peak memory is
its own) writing to --output_dir/<task>/<model>-seed<N>; a run whose results.json exists is not repeated.
The results.json of every run is copied to --results_dir/<task>/ (committed: the raw results), and the
tables and plots in model_card.md are regenerated from everything in --results_dir (comparison/report.py).
A --baseline may also be a Hub model id, to compare with pretrained checkpoints when online.
"""

import argparse
import json
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/, for the shared modules in common/

from comparison.baselines import ARCHITECTURES  # noqa: E402
from comparison.report import write_report  # noqa: E402

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "train.py"


def run_name(baseline: str, seed: int) -> str:
    return f"{baseline.replace('/', '--')}-seed{seed}"


def run_training(train_argv: list[str], in_process: bool) -> int:
    if in_process:  # the script's main() in this process: its namespace, without running it as __main__
        return runpy.run_path(str(TRAIN_SCRIPT), run_name="train_in_process")["main"](train_argv)
    return subprocess.run([sys.executable, str(TRAIN_SCRIPT), *train_argv]).returncode


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True)
    parser.add_argument("--dataset_name", "--data", dest="data", required=True,
                        help="a Hub dataset id or a local folder, as train.py's --dataset_name")
    parser.add_argument("--baselines", nargs="+", default=list(ARCHITECTURES),
                        help=f"architectures ({', '.join(ARCHITECTURES)}) or Hub model ids")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--output_dir", "--output-dir", dest="output_dir", default="outputs/compare",
                        help="run folders (checkpoints, models)")
    parser.add_argument("--results_dir", "--results-dir", dest="results_dir", default="results/comparison",
                        help="the raw results.json of each run")
    parser.add_argument("--model_card", "--model-card", dest="model_card", default="model_card.md",
                        help="where the tables go ('' to skip)")
    parser.add_argument("--figures_dir", "--figures-dir", dest="figures_dir", default="figures")
    parser.add_argument("--in_process", "--in-process", dest="in_process", action="store_true",
                        help="run train.py in this process (saves the start-up time of each run; used by the tests; "
                        "the peak memory then includes what earlier runs left allocated)")
    args = parser.parse_args(argv)

    results_dir = Path(args.results_dir) / args.task
    results_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for seed in args.seeds:
        for baseline in args.baselines:
            name = run_name(baseline, seed)
            output = Path(args.output_dir) / args.task / name
            if not (output / "results.json").exists():
                train_argv = ["--task", args.task, "--dataset_name", args.data, "--output_dir", str(output),
                              "--baseline", baseline, "--seed", str(seed), *train_args]
                print(f"[compare] {name}: train.py {' '.join(train_argv)}", flush=True)
                started = time.time()
                if run_training(train_argv, args.in_process) != 0:
                    failed.append(name)
                    continue
                print(f"[compare] {name}: done in {time.time() - started:.0f} s", flush=True)
            shutil.copy(output / "results.json", results_dir / f"{name}.json")
            for predictions in output.glob("predictions_*.txt"):  # for the paired tests of report.py
                split = predictions.stem.removeprefix("predictions_")
                shutil.copy(predictions, results_dir / f"{name}.predictions_{split}.txt")
                if (output / f"references_{split}.txt").exists():
                    shutil.copy(output / f"references_{split}.txt", results_dir / f"references_{split}.txt")
    if args.model_card:
        write_report(Path(args.results_dir), Path(args.model_card), Path(args.figures_dir))
    if failed:
        print(f"[compare] failed runs: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
