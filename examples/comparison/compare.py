"""Side by side: ours and the baselines of examples/comparison/baselines.py trained by train.py on one task, with the
same tokenizer, data, number of steps (so the same training tokens), optimiser, schedule and decoding.

    python examples/comparison/compare.py --task sst2 --dataset_name ../shared/data/sentiment/sst2 --seeds 0 1 2 \\
        -- --num_train_epochs 2 --config_overrides d_model=128,encoder_layers=2,ffn_dim=512

Everything after `--` goes to every train.py run. Each run is a fresh process (so that its peak memory is
its own) writing to --output_dir/<task>/<model>-seed<N>; a run whose results.json exists is not repeated, and
one stopped part-way continues from its newest checkpoint.
The results.json of every run is copied to --results_dir/<task>/ (committed: the raw results), and the
tables and plots in model_card.md are regenerated from everything in --results_dir (comparison/report.py).
A --baseline may also be a Hub model id, to compare with pretrained checkpoints when online.

A fair learning rate for every model: with --learning_rates, each model first trains a short run (seed 0,
the shared options followed by --sweep_args) per peak rate, scored on the validation split; its main runs then
use the rate that scored best (--next_learning_rate is tried too when the largest rate wins):

    python examples/comparison/compare.py --task multi30k-en-de --dataset_name ../shared/data/translation/multi30k \
        --learning_rates 3e-4 1e-3 2e-3 --next_learning_rate 5e-3 --sweep_args="--num_train_epochs 1" -- ...

The sweep's runs go to --output_dir/lr-sweep/<task>/<model>-lr<rate> and --results_dir/lr-sweep/<task>/.

An ablation is a variant run beside the comparison and tabled apart from it, e.g. ours pre-LN:

    python examples/comparison/compare.py --task multi30k-en-de --dataset_name ../shared/data/translation/multi30k \
        --baselines ours --ablation pre-ln -- --max_steps 500 --config_overrides normalize_before=true

Its runs are <model>-<name>-seed<N> under --output_dir/ablations/<task>/ and --results_dir/ablations/<task>/.
"""

import argparse
import json
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/, for the shared modules in common/

from common.checkpointing import checkpoints  # noqa: E402
from comparison.baselines import ARCHITECTURES  # noqa: E402
from comparison.report import best_learning_rate, load_sweep, write_report  # noqa: E402

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "train.py"


def run_name(baseline: str, seed: int | None = None, learning_rate: float | None = None,
             ablation: str | None = None) -> str:
    """<model>-seed<N> for a main run, <model>-lr<rate> for a run of the learning-rate sweep, <model>-<ablation>-seed<N>
    for a run of an ablation."""
    suffix = f"-seed{seed}" if learning_rate is None else f"-lr{learning_rate:g}"
    return baseline.replace("/", "--") + (f"-{ablation}" if ablation else "") + suffix


def run_training(train_argv: list[str], in_process: bool) -> int:
    if in_process:  # the script's main() in this process: its namespace, without running it as __main__
        return runpy.run_path(str(TRAIN_SCRIPT), run_name="train_in_process")["main"](train_argv)
    return subprocess.run([sys.executable, str(TRAIN_SCRIPT), *train_argv]).returncode


def train_and_collect(name: str, output: Path, train_argv: list[str], results_dir: Path, in_process: bool,
                      with_predictions: bool = True) -> bool:
    """Train unless `output` holds a finished run; copy its results (and, for the paired tests of report.py, its
    predictions; report.py reads the references from the data again) to `results_dir`."""
    if not (output / "results.json").exists():
        if checkpoints(output):  # a run stopped part-way (killed, or the machine went down): continue it
            train_argv = [*train_argv, "--resume"]
        print(f"[compare] {name}: train.py {' '.join(train_argv)}", flush=True)
        started = time.time()
        if run_training(train_argv, in_process) != 0:
            return False
        print(f"[compare] {name}: done in {time.time() - started:.0f} s", flush=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    copy_whole(output / "results.json", results_dir / f"{name}.json")
    for predictions in output.glob("predictions_*.txt") if with_predictions else ():
        split = predictions.stem.removeprefix("predictions_")
        copy_whole(predictions, results_dir / f"{name}.predictions_{split}.txt")
    return True


def copy_whole(source: Path, target: Path) -> None:
    """Copy under a temporary name, then rename: another compare.py sharing `target`'s folder (reading the sweep's
    results) never reads a half-written file."""
    partial = target.with_name(target.name + ".partial")
    shutil.copy(source, partial)
    partial.replace(target)


def sweep_learning_rate(args, baseline: str, train_args: list[str]) -> float:
    """The short run of each rate (seed 0), then the rate with the best validation score. A run that fails
    (diverges) is recorded as failed and loses."""
    results_dir = Path(args.results_dir) / "lr-sweep" / args.task
    results_dir.mkdir(parents=True, exist_ok=True)
    rates = list(args.learning_rates)
    if args.next_learning_rate is not None:
        rates.append(args.next_learning_rate)
    def best(swept):  # only this sweep's rates: results_dir may hold runs of an earlier sweep (another commit)
        runs = load_sweep(Path(args.results_dir))[args.task][baseline]
        return best_learning_rate({rate: runs[rate] for rate in swept if rate in runs})

    for index, rate in enumerate(rates):
        name = run_name(baseline, learning_rate=rate)
        if index == len(args.learning_rates) and best(args.learning_rates) != max(args.learning_rates):
            stale = results_dir / f"{name}.json"  # the next rate: only when the largest listed one won
            if stale.exists():
                print(f"[compare] {baseline}: {stale} is not part of this sweep; removed", flush=True)
                stale.unlink()
            del rates[index:]
            break
        output = Path(args.output_dir) / "lr-sweep" / args.task / name
        train_argv = ["--task", args.task, "--dataset_name", args.data, "--output_dir", str(output),
                      "--baseline", baseline, "--seed", "0", *train_args, *shlex.split(args.sweep_args),
                      "--learning_rate", f"{rate:g}"]
        if not train_and_collect(name, output, train_argv, results_dir, args.in_process, with_predictions=False):
            failed = {"task": args.task, "baseline": baseline, "learning_rate": rate, "failed": True,
                      "command": "python examples/train.py " + shlex.join(train_argv)}
            (results_dir / f"{name}.json").write_text(json.dumps(failed, indent=1), encoding="utf-8")
    rate = best(rates)
    if rate is None:
        raise SystemExit(f"[compare] {baseline}: every learning rate of the sweep failed; see {results_dir}")
    print(f"[compare] {baseline}: learning rate {rate:g} (best validation score of the sweep)", flush=True)
    return rate


def check_finished_rate(output: Path, rate: float | None) -> None:
    """A finished run is reused only if it trained at the rate the sweep chose."""
    if rate is None or not (output / "results.json").exists():
        return
    trained = json.loads((output / "results.json").read_text(encoding="utf-8"))["arguments"]["learning_rate"]
    if trained != rate:
        raise SystemExit(f"[compare] {output} was trained with --learning_rate {trained:g}, but the sweep chose "
                         f"{rate:g}: remove that folder to train it again")


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
    parser.add_argument("--learning_rates", "--learning-rates", dest="learning_rates", nargs="+", type=float,
                        help="sweep: the peak rates each model tries in a short run before its main runs")
    parser.add_argument("--next_learning_rate", "--next-learning-rate", dest="next_learning_rate", type=float,
                        help="sweep: also tried when the largest of --learning_rates scores best")
    parser.add_argument("--sweep_args", "--sweep-args", dest="sweep_args", default="",
                        help="train.py options of the sweep's short runs, after the shared ones "
                        "(e.g. --sweep_args='--num_train_epochs 1')")
    parser.add_argument("--ablation", help="name of a variant (say, other --config_overrides after --): its runs and "
                        "results go to ablations/<task>/ beside the comparison's and are tabled apart")
    parser.add_argument("--sweep_only", "--sweep-only", dest="sweep_only", action="store_true",
                        help="stop after the sweep (its table is written; the main runs are left for later)")
    args = parser.parse_args(argv)
    if (args.next_learning_rate is not None or args.sweep_only) and not args.learning_rates:
        parser.error("--next_learning_rate and --sweep_only need --learning_rates")
    if args.ablation is not None and not re.fullmatch(r"[A-Za-z0-9._]+(-[A-Za-z0-9._]+)*", args.ablation):
        parser.error(f"--ablation {args.ablation!r}: use letters, digits, '.', '_' and single '-' (it names files)")

    variant = Path("ablations") if args.ablation else Path()
    results_dir = Path(args.results_dir) / variant / args.task
    failed = []
    rates = {baseline: sweep_learning_rate(args, baseline, train_args) for baseline in args.baselines
             } if args.learning_rates else {}
    for seed in [] if args.sweep_only else args.seeds:
        for baseline in args.baselines:
            name = run_name(baseline, seed, ablation=args.ablation)
            output = Path(args.output_dir) / variant / args.task / name
            rate = ["--learning_rate", f"{rates[baseline]:g}"] if baseline in rates else []
            check_finished_rate(output, rates.get(baseline))
            train_argv = ["--task", args.task, "--dataset_name", args.data, "--output_dir", str(output),
                          "--baseline", baseline, "--seed", str(seed), *train_args, *rate]
            if not train_and_collect(name, output, train_argv, results_dir, args.in_process):
                failed.append(name)
    if args.model_card:
        write_report(Path(args.results_dir), Path(args.model_card), Path(args.figures_dir))
    if failed:
        print(f"[compare] failed runs: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
