"""Speed and memory of our model against transformers' MarianMTModel and BartForConditionalGeneration built
at exactly the same size from a config (no download), measured in the same run, printed as ratios, with
ours both as it is and with the opt-in CPU speed-ups (`enable_cpu_kernels`), all of them and each alone.

    .venv/bin/python examples/benchmark/benchmark.py --report performance.md   # about 6 minutes on 2 CPU cores
    .venv/bin/python examples/benchmark/benchmark.py --quick                   # tiny sizes: checks the script runs

Measured, for each model: training tokens/s (forward + backward + AdamW step) in float32 and under bf16
autocast; greedy and 4-beam generation in ms per generated token (exactly --new-tokens tokens; the kernels
change training only); peak memory of training (in a fresh process: on a CPU the peak resident set above the
one before the first step, on a GPU the allocator's peak); model FLOPs utilisation against the measured
matrix-multiply ceiling of the same machine and precision. Then an encoder length sweep, global attention
against local attention computed in blocks (window 64, attn_implementation="blocked_local"): time and peak
memory per length, with a log-log plot. Results go to --output (JSON) and the terminal, and with --report
into a generated section of that markdown file. On a GPU the paper's base size (d_model 512, 8 heads, FFN
2048, 6 + 6 layers) is measured too, its training in bf16 only and on batches like the paper's
(GPU_BASE_BATCH).

FLOP formula (per training step = 3 x forward, the backward pass costing twice the forward):
  forward = 2 * sum over matrix multiplies of (rows x inner x columns)
          = 2 * [ B*S * L_enc * (4 d^2 + 2 d f)                       encoder projections and FFN
                + B*T * L_dec * (6 d^2 + 2 d f) + B*S * L_dec * 2 d^2   decoder (self q,k,v,o; cross q,o; FFN) + cross k,v
                + B*T * d * V ]                                        output projection
          + 4 * B * d * (L_enc * S^2 + L_dec * (T^2 + T*S))             attention scores and weighted sums
with batch B, source length S, target length T, width d, FFN width f, vocabulary V. Causal masking is not
discounted (the kernels compute the full square).
"""

import argparse
import ctypes
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/, for the shared modules in common/
from common.arguments import counted  # noqa: E402
from common.model_sizes import SIZES, build  # noqa: E402
from common.peak_memory import peak_memory_since, start_peak_memory  # noqa: E402
from vanilla_transformer.configuration import VanillaTransformerConfig
from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration
from common.generated_sections import replace_section  # noqa: E402
from common.run_info import cpu_name, git_commit, short_commit  # noqa: E402

def sweep_variants(window: int) -> list[tuple]:
    """(label, attention window, attention implementation) of the encoder length sweep. Global attention
    twice: the fused SDPA kernel (keeps no L x L weights) and the eager path (the full L x L matrix)."""
    return [("global (sdpa)", None, "sdpa"), ("global (eager)", None, "eager"),
            (f"local w={window}", window, "blocked_local")]


# On a GPU the base size trains on batches like the paper's, about 25,000 source and 25,000 target tokens
# (Section 5.1): a batch of 32 x 32 tokens would keep a GPU busy for well under a millisecond per matrix
# multiply, so its timings would measure kernel launches rather than the model.
GPU_BASE_BATCH = dict(batch=192, source=128, target=128)  # 24,576 + 24,576 tokens


def sizes_to_measure(device: str, quick: bool, size_name: str | None) -> dict:
    """{size name: dimensions and batch}: on a CPU the small size, on a GPU the small and the base size, the
    base one with the paper's batch; --quick the tiny one; --size one of them."""
    if quick:
        return {"quick": SIZES["quick"]}
    names = [size_name] if size_name else ["small", "base"] if device == "cuda" else ["small"]
    return {name: {**SIZES[name], **(GPU_BASE_BATCH if device == "cuda" and name == "base" else {})}
            for name in names}


def training_flops(size: dict) -> float:
    b, s, t, d, f, v, n = (size[k] for k in ("batch", "source", "target", "d_model", "ffn", "vocab", "layers"))
    matmul = b * s * n * (4 * d * d + 2 * d * f) + b * t * n * (6 * d * d + 2 * d * f) + b * s * n * 2 * d * d
    matmul += b * t * d * v
    attention = 4 * b * d * (n * s * s + n * (t * t + t * s))
    return 3 * (2 * matmul + attention)


def batch_for(size: dict, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    source = torch.randint(4, size["vocab"], (size["batch"], size["source"]), generator=generator)
    target = torch.randint(4, size["vocab"], (size["batch"], size["target"]), generator=generator)
    return {"input_ids": source, "attention_mask": torch.ones_like(source), "labels": target}


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse in this process: no mmap for large blocks (each is
    unmapped again when freed) and no trimming of the heap. With glibc's defaults a training step's large
    tensors (the 1,024 x 8,000 float32 logits and their gradients, 33 MB each) come back from the kernel as
    fresh pages every step: 10,000-50,000 minor page faults per step for each model here (2-core VM),
    whose cost moved the training ratios between runs by more than the margins they are judged by. It
    applies to every model alike (PyTorch's CPU tuning guide suggests jemalloc or tcmalloc for the same
    reason). Not used where peak memory is measured: the peak resident set is only honest with the defaults.
    Returns whether it took effect (False where the C library is not glibc)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library this process already uses
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>; mallopt's value is a C int, hence 2**31 - 1
    return libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2**31 - 1) == 1


def device_autocast(device: str, bf16: bool):
    return torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_time(step, repeats: int, warmup: int, device: str) -> float:
    return interleaved_median_times({"step": step}, repeats, warmup, device)["step"]


def interleaved_median_times(steps: dict, repeats: int, warmup: int, device: str) -> dict:
    """Median seconds of each step. The steps take turns, one timing each per round, so a slow spell of a
    noisy machine falls on all of them alike and the ratios between them hold."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize(device)
            started = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def training_step_fn(model, batch, device: str, bf16: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        with device_autocast(device, bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def measure_training(names, size, device, bf16, repeats, warmup, compiled=()) -> dict:
    """Training tokens/s and FLOP/s of each model (`compiled`: names also measured under torch.compile)."""
    batch = {k: v.to(device) for k, v in batch_for(size).items()}
    steps = {}
    for name in [*names, *(f"{name} (compiled)" for name in compiled)]:
        torch.manual_seed(0)
        model = build(name.removesuffix(" (compiled)"), size).to(device)
        steps[name] = training_step_fn(torch.compile(model) if name.endswith("(compiled)") else model,
                                       batch, device, bf16)
    seconds = interleaved_median_times(steps, repeats, warmup + 2 * bool(compiled), device)
    tokens = size["batch"] * (size["source"] + size["target"])
    return {name: {"tokens_per_second": tokens / s, "flops_per_second": training_flops(size) / s}
            for name, s in seconds.items()}


def measure_generation(names, size, device, num_beams, new_tokens, repeats, warmup) -> dict:
    """Milliseconds per generated token of each model (float32; exactly `new_tokens` tokens)."""
    batch = batch_for({**size, "batch": 8})
    inputs = {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}

    def generation_step(model):
        def step():
            with torch.no_grad():
                generated = model.generate(**inputs, num_beams=num_beams, min_new_tokens=new_tokens,
                                           max_new_tokens=new_tokens, do_sample=False, early_stopping=False)
            assert generated.shape[1] == new_tokens + 1, generated.shape
        return step

    steps = {}
    for name in names:
        torch.manual_seed(0)
        steps[name] = generation_step(build(name, size).to(device).eval())
    seconds = interleaved_median_times(steps, repeats, warmup, device)
    return {name: 1000 * s / new_tokens for name, s in seconds.items()}


def matmul_ceiling(device: str, dtype: torch.dtype, n: int, repeats: int) -> float:
    """FLOP/s of a large square matrix multiply: the ceiling the model's matrix multiplies are held against."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / median_time(lambda: a @ b, repeats, 2, device)


# ---------------------------------------------------------------------------------------------------
# Peak memory: each measurement in a fresh process (on a CPU, RSS is the only honest peak)
# ---------------------------------------------------------------------------------------------------


def child(spec: dict) -> dict:
    """One measurement in this fresh process: ours against ours under torch.compile (a compiled model in the
    main process slowed the other models' bf16 timings by 10-25%), or the peak memory of a training step or
    an encoder."""
    if spec["kind"] == "compiled-training":
        if spec["keep_freed_memory"]:
            keep_freed_memory()
        training = measure_training(["ours"], spec["size"], spec["device"], spec["bf16"], spec["repeats"],
                                    spec["warmup"], compiled=["ours"])
        return {name: row["tokens_per_second"] for name, row in training.items()}
    return peak_memory_child(spec)


def peak_memory_child(spec: dict) -> dict:
    device = spec["device"]
    if spec["kind"] == "training":
        size = spec["size"]
        torch.manual_seed(0)
        model = build(spec["model"], size).to(device)
        batch = {k: v.to(device) for k, v in batch_for(size).items()}
        step = training_step_fn(model, batch, device, spec["bf16"])
    else:  # one encoder forward + backward at a length
        size, length = spec["size"], spec["length"]
        config = VanillaTransformerConfig(vocab_size=size["vocab"], d_model=size["d_model"], encoder_layers=size["layers"],
                                          decoder_layers=1, num_attention_heads=size["heads"], ffn_dim=size["ffn"],
                                          max_position_embeddings=length, attention_window=spec["window"], dropout=0.0,
                                          attn_implementation=spec["attn_implementation"])
        torch.manual_seed(0)
        encoder = VanillaTransformerForConditionalGeneration(config).get_encoder().to(device)
        input_ids = torch.randint(4, size["vocab"], (1, length), device=device)

        def step():
            with device_autocast(device, spec["bf16"]):
                hidden = encoder(input_ids=input_ids).last_hidden_state
            hidden.float().sum().backward()

    start = start_peak_memory(device)
    seconds = median_time(step, spec["repeats"], 1, device)
    return {"peak_bytes": peak_memory_since(start, device), "seconds": seconds}


def in_fresh_process(spec: dict) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"measurement {spec} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------


def plot_sweep(sweep: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for label in sorted({row["attention"] for row in sweep}):
        rows = [row for row in sweep if row["attention"] == label]
        lengths = [row["length"] for row in rows]
        time_axis.loglog(lengths, [row["seconds"] for row in rows], "o-", label=label)
        memory_axis.loglog(lengths, [row["peak_bytes"] / 2**20 for row in rows], "o-", label=label)
    time_axis.set(xlabel="sequence length", ylabel="seconds (forward + backward)", title="encoder time")
    memory_axis.set(xlabel="sequence length", ylabel="peak MiB", title="encoder peak memory")
    time_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


KERNEL_VARIANTS = ["ours+dropout", "ours+attention"]  # each CPU kernel alone
REFERENCES = ("marian", "bart")


def training_models(device: str) -> list[str]:
    """On a CPU: ours, ours with all CPU kernels and with each alone, Marian, BART; on a GPU the kernels are
    not measured (they are for CPUs)."""
    return ["ours", *(["ours+kernels", *KERNEL_VARIANTS] if device == "cpu" else []), *REFERENCES]


def ratios_for(table: dict) -> dict:
    """ours and ours+kernels against each reference, each kernel against ours; > 1: the first is better."""
    pairs = [(ours, reference) for ours in ("ours", "ours+kernels") for reference in REFERENCES]
    pairs += [(variant, "ours") for variant in ["ours+kernels", *KERNEL_VARIANTS]]
    ratios = {}
    for first, second in pairs:
        for key, value in table.get(first, {}).items():
            if key in table[second] and key != "parameters" and not key.startswith("mfu"):
                lower_is_better = "ms_per_token" in key or "bytes" in key
                numerator, denominator = (table[second][key], value) if lower_is_better else (value, table[second][key])
                ratios[f"{key}: {first} vs {second}"] = numerator / denominator if denominator else None
    for name in ("ours", "ours+kernels", "marian"):
        if {"train_tokens_per_second_bf16", "train_tokens_per_second_float32"} <= table.get(name, {}).keys():
            ratios[f"{name} bf16 vs {name} float32"] = (table[name]["train_tokens_per_second_bf16"]
                                                        / table[name]["train_tokens_per_second_float32"])
    return ratios


def markers(section: str) -> tuple[str, str]:
    """The lines around a generated section of the report; one file holds one section per name (CPU, GPU)."""
    return (f"<!-- {section}: generated by examples/benchmark/benchmark.py from its results JSON -->",
            f"<!-- {section}: end -->")


ROWS = [("train_tokens_per_second_float32", "training tokens/s, float32", "{:,.0f}"),
        ("train_tokens_per_second_bf16", "training tokens/s, bf16 autocast", "{:,.0f}"),
        ("greedy_ms_per_token", "greedy generation, ms per token (batch 8)", "{:.2f}"),
        ("beam4_ms_per_token", "beam 4, ms per token (batch 8)", "{:.2f}"),
        ("train_peak_bytes_float32", "peak training memory, float32 (MiB)", "{:.0f}")]


def report(results: dict, json_path: str, section: str = "benchmark") -> str:
    """The generated section of the performance file: what ran, and a table per size."""
    begin, end = markers(section)
    lines = [begin, "", f"`{results['command']}` at commit `{short_commit(results['commit'])}`, "
             f"{results['device']}, {results['threads']} thread{'' if results['threads'] == 1 else 's'}, "
             f"PyTorch {results['torch']}; wall {results['wall_seconds'] / 60:.1f} min; "
             f"raw numbers in `{json_path}`. Medians of {results['repeats']} timings; the models take turns within "
             "each round. Ratios > 1: the first named is better (faster, or less memory).", ""]
    for size_name, size in results["sizes"].items():
        d = size["dimensions"]
        models = size["models"]
        names = [name for name in ("ours", "ours+kernels", *REFERENCES) if name in models]
        versus_names = [name for name in ("ours", "ours+kernels") if name in models]
        lines += [f"**{size_name}** (d_model {d['d_model']}, {d['heads']} heads, FFN {d['ffn']}, {d['layers']} + "
                  f"{d['layers']} layers, vocabulary {d['vocab']:,}, batch {d['batch']} x ({d['source']} + "
                  f"{d['target']}) tokens):", "",
                  "| measure | " + " | ".join(names) + " | " + " | ".join(f"{n} / Marian" for n in versus_names) + " |",
                  "|---|" + "---|" * (len(names) + len(versus_names))]
        ratios = size["ratios (>1: ours better)"]
        for key, label, form in ROWS:
            if not any(key in models[name] for name in names):
                continue  # not measured at this size (float32 training at the GPU base size)
            cells = []
            for name in names:
                value = models[name].get(key)
                value = value / 2**20 if value is not None and "bytes" in key else value
                cells.append(form.format(value) if value is not None else "")
            versus = [ratios.get(f"{key}: {name} vs marian") for name in versus_names]
            lines.append(f"| {label} | " + " | ".join(cells) + " | "
                         + " | ".join(f"{r:.2f}x" if r else "" for r in versus) + " |")
        kernel_rows = [(variant, ratios.get(f"{key}: {variant} vs ours")) for variant in KERNEL_VARIANTS
                       for key in ("train_tokens_per_second_float32", "train_tokens_per_second_bf16")]
        if any(r for _, r in kernel_rows):
            lines += ["", "Each CPU kernel alone, training tokens/s against ours without kernels (float32 / bf16): "
                      + "; ".join(f"{variant.removeprefix('ours+')} "
                                  f"{ratios[f'train_tokens_per_second_float32: {variant} vs ours']:.2f}x / "
                                  f"{ratios[f'train_tokens_per_second_bf16: {variant} vs ours']:.2f}x"
                                  for variant in KERNEL_VARIANTS) + "."]
        lines.append("")
    if results.get("sweep_ratios_at_longest"):
        lines.append("Encoder sweep (float32, forward + backward) at the longest length, against local attention in "
                     "blocks: " + "; ".join(
                         f"{label} takes {r['speed']:.2f}x its time and {r['memory']:.2f}x its peak memory at "
                         f"{r['length']} tokens" for label, r in results["sweep_ratios_at_longest"].items()) + ".")
        lines.append("")
    return "\n".join(lines + [end])


def write_report(path: Path, results: dict, json_path: str, section: str = "benchmark") -> None:
    replace_section(path, *markers(section), report(results, json_path, section), new_file="# Performance\n",
                    heading="## Training and generation in transformers\n\n")


def main(argv=None) -> int:
    started = time.time()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition (CI)")
    parser.add_argument("--size", choices=["small", "base"], default=None,
                        help="default: small on a CPU; small and base on a GPU (base there trains in bf16 "
                             "only, on batches like the paper's: GPU_BASE_BATCH)")
    parser.add_argument("--repeats", type=counted(1), default=5)
    parser.add_argument("--new-tokens", type=counted(1), default=32)
    parser.add_argument("--lengths", default="128,256,512,1024,2048,4096,8192")
    parser.add_argument("--window", type=counted(1), default=64)
    parser.add_argument("--compile", action="store_true",
                        help="also measure ours under torch.compile (against ours, in a separate process)")
    parser.add_argument("--default-allocator", action="store_true",
                        help="time with glibc's default malloc settings (see keep_freed_memory)")
    parser.add_argument("--output", default="outputs/benchmark.json")
    parser.add_argument("--report", help="a markdown file (performance.md) whose generated section is rewritten")
    parser.add_argument("--report-from", metavar="JSON", help="only rewrite --report's section from this results JSON")
    parser.add_argument("--section", default="benchmark",
                        help="the name of --report's generated section, so that one file keeps a table per machine "
                             "(performance.md: 'benchmark' for the CPU, 'benchmark-gpu' for the GPU)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.report_from:
        results = json.loads(Path(args.report_from).read_text(encoding="utf-8"))
        write_report(Path(args.report), results, args.report_from, args.section)
        return 0

    device = "cuda" if torch.cuda.is_available() else "cpu"
    kept = device == "cpu" and not args.default_allocator and keep_freed_memory()
    repeats, warmup, new_tokens = (1, 1, 4) if args.quick else (args.repeats, 2, args.new_tokens)
    lengths = [int(n) for n in ("64" if args.quick else args.lengths).split(",")]
    window = 4 if args.quick else args.window
    results = {"device": torch.cuda.get_device_name() if device == "cuda" else cpu_name(),
               "threads": torch.get_num_threads(), "torch": torch.__version__, "commit": git_commit(),
               "repeats": repeats,
               "allocator": "glibc malloc, freed memory kept (keep_freed_memory)" if kept else "default",
               "sizes": {}, "sweep": []}
    ceiling_n = 256 if args.quick else 8192 if device == "cuda" else 2048  # a GPU needs a large product to fill
    results["matmul_ceiling_flops"] = {
        "float32": matmul_ceiling(device, torch.float32, ceiling_n, repeats),
        "bfloat16": matmul_ceiling(device, torch.bfloat16, ceiling_n, repeats),
    }
    ceilings = results["matmul_ceiling_flops"]
    print(f"device {results['device']}; matmul ceiling float32 {ceilings['float32'] / 1e9:.0f}, "
          f"bfloat16 {ceilings['bfloat16'] / 1e9:.0f} GFLOP/s; allocator: {results['allocator']}")

    for size_name, size in sizes_to_measure(device, args.quick, args.size).items():
        models = training_models(device)
        table = {name: {} for name in models}
        for precision, bf16 in [("float32", False), ("bf16", True)]:
            if device == "cuda" and size_name == "base" and not bf16:
                continue
            training = measure_training(models, size, device, bf16, repeats, warmup)
            ceiling = results["matmul_ceiling_flops"]["bfloat16" if bf16 else "float32"]
            for name in models:
                table[name][f"train_tokens_per_second_{precision}"] = training[name]["tokens_per_second"]
                table[name][f"mfu_{precision}"] = training[name]["flops_per_second"] / ceiling
            if args.compile:
                compiled = in_fresh_process({"kind": "compiled-training", "size": size, "device": device,
                                             "bf16": bf16, "repeats": repeats, "warmup": warmup,
                                             "keep_freed_memory": kept})
                table["ours"][f"train_tokens_per_second_{precision}_compiled"] = compiled["ours (compiled)"]
        for key, num_beams in [("greedy_ms_per_token", 1), ("beam4_ms_per_token", 4)]:
            for name, ms in measure_generation(["ours", *REFERENCES], size, device, num_beams, new_tokens,
                                               repeats, warmup).items():
                table[name][key] = ms
        for name in ["ours", *(["ours+kernels"] if device == "cpu" else []), *REFERENCES]:
            memory = in_fresh_process({"kind": "training", "model": name, "size": size, "device": device,
                                       "bf16": False, "repeats": 2})
            table[name]["train_peak_bytes_float32"] = memory["peak_bytes"]
            table[name]["parameters"] = sum(p.numel() for p in build(name, size).parameters() if p.requires_grad)
        for name in models:
            print(f"[{size_name}] {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in table[name].items()))
        ratios = ratios_for(table)
        results["sizes"][size_name] = {"dimensions": size, "models": table, "ratios (>1: ours better)": ratios}
        for key, value in ratios.items():
            print(f"[{size_name}] {key}: " + (f"{value:.2f}x" if value is not None else "n/a (too small to measure)"))

    sweep_size = SIZES["quick" if args.quick else "small"]
    for length in lengths:
        for label, attention_window, implementation in sweep_variants(window):
            row = in_fresh_process({"kind": "encoder", "size": sweep_size, "length": length, "window": attention_window,
                                    "attn_implementation": implementation, "device": device, "bf16": False,
                                    "repeats": repeats})
            results["sweep"].append({"attention": label, "length": length, **row})
            print(f"encoder length {length:5d} {label:>12}: {row['seconds'] * 1000:9.1f} ms, "
                  f"{row['peak_bytes'] / 2**20:8.1f} MiB")
    longest = {row["attention"]: row for row in results["sweep"] if row["length"] == lengths[-1]}
    local_row = longest[f"local w={window}"]
    results["sweep_ratios_at_longest"] = {}
    for label, global_row in longest.items():
        if label.startswith("global"):
            ratio = {"length": lengths[-1], "speed": global_row["seconds"] / local_row["seconds"],
                     "memory": global_row["peak_bytes"] / max(local_row["peak_bytes"], 1)}
            results["sweep_ratios_at_longest"][label] = ratio
            print(f"local vs {label} at {lengths[-1]}: {ratio['speed']:.2f}x faster, "
                  f"{ratio['memory']:.2f}x less peak memory")

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    results["command"] = " ".join(["examples/benchmark/benchmark.py", *(argv if argv is not None else sys.argv[1:])])
    results["wall_seconds"] = time.time() - started
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot_sweep(results["sweep"], output.with_suffix(".png"))
    print(f"wrote {output} and {output.with_suffix('.png')}")
    if args.report:
        write_report(Path(args.report), results, args.output, args.section)
        print(f"wrote the benchmark section of {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
