"""Inference engines side by side, in one run: ours in transformers (float32, and bf16 autocast), Marian in
transformers at the same size, and ours exported to CTranslate2 (float32, int8, and bfloat16 where the CPU
has it). For each: target tokens per second at batch 32 (throughput) and milliseconds per sentence at batch 1
(latency), greedy and beam 4.

    python examples/benchmark/benchmark_ctranslate2.py --model outputs/multi30k-en-de/model \\
        --dataset_name ../shared/data/translation/multi30k --output results/benchmark-ctranslate2.json

- "small": the trained model given as --model (the README's Multi30k en-de model), translating the test
  split; each engine's BLEU on it is reported next to its speed (Marian, with random weights, has none).
- "base": the paper's base size (d_model 512, 8 heads, FFN 2048, 6 + 6 layers) with random weights; every
  engine writes exactly --fixed-length tokens per sentence, so the speeds compare the same work.

Threads come from the machine (`translator_threads`): CTranslate2 gets one translation per core, each on one
thread (inter_threads = cores, intra_threads = 1); PyTorch keeps its default (one thread per core).
CTranslate2 reads a batch-32 workload through `translate_iterable`, which keeps every translation thread busy.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/, for the shared modules in common/

from common.arguments import counted  # noqa: E402
from common.data import DataSource, load_records  # noqa: E402
from common.evaluation import batches_by_length, score  # noqa: E402
from common.generated_sections import replace_section  # noqa: E402
from common.model_sizes import SIZES, build  # noqa: E402
from common.run_info import cpu_name, git_commit, short_commit  # noqa: E402
from common.tasks import get_task  # noqa: E402
from vanilla_transformer.modeling.export_ctranslate2_vanilla_transformer import (  # noqa: E402
    export_ctranslate2,
    translator_threads,
)

DECODING = {"greedy": 1, "beam 4": 4}
# CTranslate2's beam search stops once beam_size hypotheses have finished (patience 1), as generate() does with
# early_stopping=True; generate()'s default goes on while a running beam may still win. With patience 2 the
# two gave identical translations of the first 400 test_2016_flickr sentences (with patience 1: 4 differed).
GENERATE_LIKE_BEAM_SEARCH = {"patience": 2}


def transformers_engine(model, tokenizer, bf16: bool, fixed_length: int | None, max_new_tokens: int,
                        length_penalty: float):
    """translate(texts, beams, batch_size) -> (outputs as token-id lists, seconds)."""
    model.eval()
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id}
    lengths = ({"min_new_tokens": fixed_length, "max_new_tokens": fixed_length} if fixed_length
               else {"max_new_tokens": max_new_tokens})

    @torch.no_grad()
    def translate(texts, beams, batch_size):
        outputs = [None] * len(texts)
        started = time.perf_counter()
        for indices in batches_by_length(texts, batch_size):
            batch = tokenizer([texts[i] for i in indices], return_tensors="pt", padding=True, truncation=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                search = {"num_beams": beams, "length_penalty": length_penalty if beams > 1 else None}
                generated = model.generate(**batch, **search, do_sample=False, **lengths)
            for i, row in zip(indices, generated.tolist()):
                outputs[i] = [t for t in row[1:] if t not in special] if not fixed_length else row[1:]
        return outputs, time.perf_counter() - started

    return translate


def ctranslate2_engine(folder, tokenizer, compute_type: str, fixed_length: int | None, max_new_tokens: int,
                       length_penalty: float):
    import ctranslate2

    translator = ctranslate2.Translator(str(folder), device="cpu", compute_type=compute_type, **translator_threads())
    lengths = ({"min_decoding_length": fixed_length, "max_decoding_length": fixed_length} if fixed_length
               else {"max_decoding_length": max_new_tokens})
    lengths.update(GENERATE_LIKE_BEAM_SEARCH)

    def translate(texts, beams, batch_size):
        sources = [tokenizer.convert_ids_to_tokens(tokenizer(text, truncation=True)["input_ids"]) for text in texts]
        started = time.perf_counter()
        if batch_size == 1:
            results = [translator.translate_batch([source], beam_size=beams, length_penalty=length_penalty,
                                                  **lengths)[0]
                       for source in sources]
        else:
            results = list(translator.translate_iterable(sources, max_batch_size=batch_size, beam_size=beams,
                                                         length_penalty=length_penalty, **lengths))
        seconds = time.perf_counter() - started
        return [tokenizer.convert_tokens_to_ids(result.hypotheses[0]) for result in results], seconds

    return translate


def measure(translate, texts, latency_texts, tokenizer, task, records, batch_size, repeats) -> dict:
    row = {}
    for name, beams in DECODING.items():
        translate(texts[:batch_size], beams, batch_size)  # warm-up
        outputs, seconds = min((translate(texts, beams, batch_size) for _ in range(repeats)), key=lambda r: r[1])
        tokens = sum(len(ids) for ids in outputs)
        row[name] = {"tokens_per_second": tokens / seconds, "target_tokens": tokens, "seconds": seconds}
        if records is not None:
            predictions = [text.strip() for text in tokenizer.batch_decode(outputs, skip_special_tokens=True)]
            row[name]["bleu"] = score(task, predictions, records)["bleu"]
            row[name]["predictions"] = predictions
        _, latency_seconds = translate(latency_texts, beams, 1)
        row[name]["ms_per_sentence_batch_1"] = 1000 * latency_seconds / len(latency_texts)
    return row


def identical_share(a: list[str], b: list[str]) -> float:
    return sum(x == y for x, y in zip(a, b)) / max(len(a), 1)


BEGIN = "<!-- ctranslate2: generated by examples/benchmark/benchmark_ctranslate2.py from its results JSON -->"
END = "<!-- ctranslate2: end -->"


def report(results: dict, json_path: str) -> str:
    """The markdown section of the performance file, from the results JSON alone."""
    lines = [BEGIN, "", f"`{results['command']}` at commit `{short_commit(results['commit'])}`, {results['cpu']}, "
             f"{results['cores']} cores (CTranslate2: "
             + ", ".join(f"{k}={v}" for k, v in results["ctranslate2_threads"].items())
             + f"; PyTorch "
             f"{results['torch_threads']} threads), CTranslate2 {results['ctranslate2']}; wall "
             f"{results['wall_seconds'] / 60:.1f} min; raw numbers in `{json_path}`. Throughput at batch "
             f"{results.get('batch_size', 32)}, latency at batch 1 over the first {results['latency_records']} "
             "sentences; ratios against ours in transformers, float32."]
    for size_name, size in results["sizes"].items():
        d = size["dimensions"]
        what = (f"the trained model, {size['records']} sentences of {results['split']}" if size["fixed_length"] is None
                else f"random weights, {size['records']} sentences of {size['fixed_length']} tokens each")
        lines += ["", f"**{size_name}** (d_model {d['d_model']}, {d['heads']} heads, FFN {d['ffn']}, "
                  f"{d['layers']} + {d['layers']} layers; {what}):", "",
                  "| engine | greedy tokens/s | beam 4 tokens/s | beam 4 throughput ratio "
                  "| beam 4 ms/sentence, batch 1 "
                  "| latency ratio | BLEU, beam 4 | sentences identical to transformers float32 |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, row in size["engines"].items():
            greedy, beam = row["greedy"], row["beam 4"]
            bleu = f"{beam['bleu']:.2f}" if "bleu" in beam else ""
            same = f"{100 * beam['identical_to_transformers_float32']:.1f}%" if "identical_to_transformers_float32" \
                in beam else ""
            lines.append(f"| {name} | {greedy['tokens_per_second']:,.0f} | {beam['tokens_per_second']:,.0f} | "
                         f"{beam['throughput_vs_transformers_float32']:.2f}x | {beam['ms_per_sentence_batch_1']:.1f} | "
                         f"{beam['latency_vs_transformers_float32']:.2f}x | {bleu} | {same} |")
    return "\n".join(lines + ["", END])


def write_report(results: dict, json_path: str, path: Path) -> None:
    """Replaces the generated section of the performance file (or appends it)."""
    replace_section(path, BEGIN, END, report(results, json_path), new_file="# Performance\n",
                    heading="## CTranslate2\n\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained translation model folder (train.py's model/)")
    parser.add_argument("--task", default="multi30k-en-de")
    parser.add_argument("--dataset_name", "--data", dest="data", default=None,
                        help="the dataset of the task (default: the preset's Hub dataset)")
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--max_records", type=counted(1), default=None, help="translate the first N records only")
    parser.add_argument("--latency_records", type=counted(1), default=100, help="sentences timed one by one")
    parser.add_argument("--batch_size", type=counted(1), default=32)
    parser.add_argument("--fixed_length", type=counted(1), default=24, help="tokens per sentence at the base size")
    parser.add_argument("--base_records", type=counted(1), default=256, help="sentences translated at the base size")
    parser.add_argument("--sizes", nargs="+", choices=["small", "base"], default=["small", "base"])
    parser.add_argument("--length_penalty", type=float, default=None,
                        help="beam search's length penalty, the same for every engine (default: the task's, 0.6)")
    parser.add_argument("--repeats", type=counted(1), default=1, help="timings per measurement (the fastest counts)")
    parser.add_argument("--output", required=True, help="the results JSON")
    parser.add_argument("--report", default=None, help="write the summary table into this markdown file")
    args = parser.parse_args(argv)

    import ctranslate2
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    started = time.time()
    task = get_task(args.task)
    penalty = task.length_penalty if args.length_penalty is None else args.length_penalty
    records = load_records(task, DataSource(args.data or task.hub_dataset), args.split)[: args.max_records]
    texts = [record["source"] for record in records]
    latency_texts = texts[: args.latency_records]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    compute_types = ["float32", "int8"] + (["bfloat16"] if "bfloat16" in ctranslate2.get_supported_compute_types("cpu")
                                           else [])
    results = {"command": " ".join(["examples/benchmark/benchmark_ctranslate2.py", *(argv or sys.argv[1:])]),
               "commit": git_commit(), "cpu": cpu_name(), "cores": translator_threads()["inter_threads"],
               "torch_threads": torch.get_num_threads(),
               "ctranslate2": ctranslate2.__version__, "ctranslate2_threads": translator_threads(),
               "ctranslate2_compute_types": sorted(ctranslate2.get_supported_compute_types("cpu")),
               "split": args.split, "records": len(records), "latency_records": len(latency_texts),
               "batch_size": args.batch_size, "length_penalty": penalty, "sizes": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for size_name in args.sizes:
            print(f"[{size_name}]", flush=True)
            if size_name == "small":
                model = AutoModelForSeq2SeqLM.from_pretrained(args.model)
                folder, size_texts, size_records, fixed = Path(args.model), texts, records, None
                config = model.config
                size = dict(vocab=config.vocab_size, d_model=config.d_model, heads=config.num_attention_heads,
                            ffn=config.ffn_dim, layers=config.encoder_layers)
            else:
                size = {**SIZES["base"], "vocab": len(tokenizer)}
                torch.manual_seed(0)
                model = build("ours", size)
                folder = Path(scratch) / "base"
                model.save_pretrained(folder)
                tokenizer.save_pretrained(folder)
                size_texts, size_records, fixed = texts[: args.base_records], None, args.fixed_length
            settings = (fixed, task.max_new_tokens, penalty)
            engines = {"ours, transformers, float32": transformers_engine(model, tokenizer, False, *settings),
                       "ours, transformers, bf16": transformers_engine(model, tokenizer, True, *settings)}
            marian = build("marian", size)
            engines["Marian, transformers, float32 (random weights)"] = transformers_engine(
                marian, tokenizer, False, fixed or args.fixed_length, task.max_new_tokens, penalty)
            for compute_type in compute_types:
                exported = export_ctranslate2(folder, Path(scratch) / f"{size_name}-{compute_type}",
                                              quantization=compute_type)
                engines[f"ours, CTranslate2, {compute_type}"] = ctranslate2_engine(
                    exported, tokenizer, compute_type, *settings)
            rows = {}
            for name, translate in engines.items():
                scored = size_records if "Marian" not in name else None
                rows[name] = measure(translate, size_texts, latency_texts, tokenizer, task, scored, args.batch_size,
                                     args.repeats)
                print(f"  {name}: " + ", ".join(f"{d} {r['tokens_per_second']:,.0f} tokens/s, "
                                                f"{r['ms_per_sentence_batch_1']:.1f} ms/sentence"
                                                + (f", BLEU {r['bleu']:.2f}" if "bleu" in r else "")
                                                for d, r in rows[name].items()), flush=True)
            reference = rows["ours, transformers, float32"]
            for name, row in rows.items():
                for decoding, measured in row.items():
                    measured["throughput_vs_transformers_float32"] = (measured["tokens_per_second"]
                                                                      / reference[decoding]["tokens_per_second"])
                    measured["latency_vs_transformers_float32"] = (reference[decoding]["ms_per_sentence_batch_1"]
                                                                   / measured["ms_per_sentence_batch_1"])
                    if "predictions" in measured:
                        measured["identical_to_transformers_float32"] = identical_share(
                            measured["predictions"], reference[decoding]["predictions"])
            for row in rows.values():
                for measured in row.values():
                    measured.pop("predictions", None)
            results["sizes"][size_name] = {"dimensions": size, "fixed_length": fixed, "records": len(size_texts),
                                           "engines": rows}
    results["wall_seconds"] = time.time() - started
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.report:
        write_report(results, args.output, Path(args.report))
    print(f"wrote {args.output} in {results['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
